//! Where the operator verbs (`keel topics`, `keel groups`, `keel dlq`) run: on the data
//! directory itself, or through the API of the `keel serve` that owns it.
//!
//! A data directory has one owning process. While `keel serve` runs, the CLI cannot open it,
//! so the server writes its HTTP address to [`SERVER_ADDR_FILE`] in the data directory and the
//! verbs use its `/api` instead — the same functions run, in the server. `--server URL`
//! (or `$KEEL_SERVER`) picks a server explicitly, for example on another host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use keel_embedded::admin::audit::{self, AuditEntry};
use keel_embedded::admin::dead_letters::{
    self, CanaryOutcome, DeadLetterFilter, DeadLetterSummary, PurgeReport, ReplayReport,
};
use keel_embedded::admin::groups::{
    self, GroupDeletion, GroupSummary, OffsetReset, PartitionLag, ResetTarget,
};
use keel_embedded::admin::topics::{self, TopicView, topic_view};
use keel_log::{Log, OpenError, TopicConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::store::{existing_topic, open_log, require_data_dir};

/// File in the data directory holding the HTTP address of the `keel serve` that owns it.
pub(crate) const SERVER_ADDR_FILE: &str = "keel-serve.http";

/// How a replay goes: the flags of `keel dlq replay` beyond the selection.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    /// Replay dead letters replayed before, too.
    pub(crate) force: bool,
    /// Replay one, as a canary.
    pub(crate) canary: bool,
    /// Replay to this group only (through `<topic>.retry`).
    pub(crate) to_group: Option<String>,
}

/// Where a read of the server's event API starts in a partition.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventsFrom {
    /// At this offset.
    Offset(u64),
    /// At the first record at or after this time, ms since the epoch.
    Time(i64),
}

/// The data directory, opened here or reached through its server.
pub(crate) enum Control {
    /// This process opened the log.
    Local(Log),
    /// A server owns the log; requests go to its API at this base URL.
    Remote(String),
}

/// File in the data directory holding the schema registry address of the `keel serve` that
/// owns it, for `keel schema` and `keel catalog`.
pub(crate) const REGISTRY_ADDR_FILE: &str = "keel-serve.registry";

/// File in the data directory holding the Kafka listener address of the `keel serve` that
/// owns it, for `keel consume --group` and `keel relay`.
pub(crate) const KAFKA_ADDR_FILE: &str = "keel-serve.kafka";

/// The path of the Kafka address file in `data`.
pub(crate) fn kafka_addr_file(data: &Path) -> PathBuf {
    data.join(KAFKA_ADDR_FILE)
}

/// The Kafka listener of the `keel serve` that owns `data`, if one does.
pub(crate) fn served_kafka(data: &Path) -> Option<String> {
    let addr = std::fs::read_to_string(kafka_addr_file(data)).ok()?;
    // The file outlives a killed server; only a held lock says a server runs.
    match Log::open(data) {
        Err(OpenError::Locked { .. }) => Some(addr.trim().to_string()),
        _ => None,
    }
}

/// The path of the registry address file in `data`.
pub(crate) fn registry_addr_file(data: &Path) -> PathBuf {
    data.join(REGISTRY_ADDR_FILE)
}

/// The path of the server address file in `data`.
pub(crate) fn server_addr_file(data: &Path) -> PathBuf {
    data.join(SERVER_ADDR_FILE)
}

impl Control {
    /// The server at `server` if given; else the log in `data`, or — when a running server
    /// owns it — that server's API.
    pub(crate) fn open(data: &Path, server: Option<&str>) -> anyhow::Result<Control> {
        if let Some(url) = server {
            return Ok(Control::Remote(url.trim_end_matches('/').to_string()));
        }
        require_data_dir(data)?;
        match Log::open(data) {
            Ok(log) => return Ok(Control::Local(log)),
            Err(OpenError::Locked { .. }) => {
                if let Ok(addr) = std::fs::read_to_string(server_addr_file(data)) {
                    return Ok(Control::Remote(format!("http://{}", addr.trim())));
                }
            }
            Err(_) => {}
        }
        // Another short-lived command holds it (or opening failed): wait, and report.
        Ok(Control::Local(open_log(data)?))
    }

    /// Whether requests go to a server.
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, Control::Remote(_))
    }

    /// Every user topic, by name.
    pub(crate) fn topics(&self) -> anyhow::Result<Vec<TopicView>> {
        match self {
            Control::Local(log) => Ok(log.topics().iter().map(|t| topic_view(t)).collect()),
            Control::Remote(url) => get(url, "/api/topics"),
        }
    }

    /// The topic `name`, or an error that says how to create it.
    pub(crate) fn topic(&self, name: &str) -> anyhow::Result<TopicView> {
        match self {
            Control::Local(log) => Ok(topic_view(&*existing_topic(log, name)?)),
            Control::Remote(url) => get(url, &format!("/api/topics/{name}")),
        }
    }

    /// Creates `name` with `config`.
    pub(crate) fn create_topic(&self, name: &str, config: TopicConfig) -> anyhow::Result<()> {
        match self {
            Control::Local(log) => {
                log.create_topic(name, config)?;
                Ok(())
            }
            Control::Remote(url) => {
                let mut settings = topics::settings(&config);
                settings.remove("partitions");
                let body =
                    json!({ "name": name, "partitions": config.partitions, "config": settings });
                post::<Value, _>(url, "/api/topics", &body).map(drop)
            }
        }
    }

    /// Changes the settings `changes` names (`topic.conf` names) of `name`, keeping the rest.
    pub(crate) fn alter_topic(
        &self,
        name: &str,
        changes: &BTreeMap<String, String>,
    ) -> anyhow::Result<TopicView> {
        match self {
            Control::Local(log) => Ok(topics::alter_settings(log, name, changes)?),
            Control::Remote(url) => {
                let path = format!("/api/topics/{name}/config");
                let request = ureq::patch(format!("{url}{path}"))
                    .config()
                    .http_status_as_error(false)
                    .build();
                answer(url, &path, request.send_json(json!({ "config": changes })))
            }
        }
    }

    /// Deletes `name`, its data and its groups' committed offsets.
    pub(crate) fn delete_topic(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Control::Local(log) => Ok(log.delete_topic(name)?),
            Control::Remote(url) => {
                let path = format!("/api/topics/{name}");
                let request = ureq::delete(format!("{url}{path}"))
                    .config()
                    .http_status_as_error(false)
                    .build();
                answer::<Value>(url, &path, request.call()).map(drop)
            }
        }
    }

    /// Sends `event` to the server's produce API, which checks it against its type's schema
    /// and stores it as given; only for a server (a local log is appended to in chunks).
    pub(crate) fn produce_one(&self, topic: &str, event: &keel_core::Event) -> anyhow::Result<()> {
        let Control::Remote(url) = self else {
            bail!("produce_one is for a server; the local log is appended to in chunks")
        };
        let path = format!("/api/topics/{topic}/events");
        post::<Value, _>(url, &path, &event.to_structured_json()).map(drop)
    }

    /// Up to `limit` records of `topic`'s `partition` from `from` on, as the server's
    /// event API answers (`FoundEvent`s); only for a server.
    pub(crate) fn events_from(
        &self,
        topic: &str,
        partition: u32,
        from: EventsFrom,
        limit: usize,
    ) -> anyhow::Result<Vec<Value>> {
        let Control::Remote(url) = self else {
            bail!("events_from is for a server; the local log is read directly")
        };
        let mut query = json!({ "partition": partition, "limit": limit });
        match from {
            EventsFrom::Offset(offset) => {
                query["start"] = json!("offset");
                query["offset"] = json!(offset);
            }
            EventsFrom::Time(time_ms) => {
                query["start"] = json!("time");
                query["time_ms"] = json!(time_ms);
            }
        }
        let page: Value = get_query(url, &format!("/api/topics/{topic}/events"), &query)?;
        serde_json::from_value(page["events"].clone())
            .with_context(|| format!("unexpected answer from {url} to an events query"))
    }

    pub(crate) fn dead_letter_summaries(
        &self,
        now_ms: i64,
    ) -> anyhow::Result<Vec<DeadLetterSummary>> {
        match self {
            Control::Local(log) => Ok(dead_letters::summaries(log, now_ms)?),
            Control::Remote(url) => get(url, "/api/dead-letters"),
        }
    }

    /// Dead letters as the JSON the CLI prints (see `StoredDeadLetter::to_json`).
    pub(crate) fn dead_letters_json(
        &self,
        topic: &str,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<Value>> {
        match self {
            Control::Local(log) => Ok(dead_letters::dead_letters(log, topic, filter, limit)?
                .iter()
                .map(|d| d.to_json())
                .collect()),
            Control::Remote(url) => {
                let mut query = filter_json(filter);
                query["limit"] = json!(limit);
                get_query(url, &format!("/api/dead-letters/{topic}"), &query)
            }
        }
    }

    pub(crate) fn replay(
        &self,
        topic: &str,
        filter: DeadLetterFilter,
        how: &Replay,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<ReplayReport> {
        let Replay {
            force,
            canary,
            to_group,
        } = how.clone();
        match self {
            Control::Local(log) => {
                let plan = dead_letters::plan_replay(log, topic, filter, force, canary, command)?;
                let plan = match to_group {
                    Some(group) => plan.to_group(group),
                    None => plan,
                };
                Ok(dead_letters::replay(log, &plan, now_ms)?)
            }
            // The server's replay API does not take a target group yet; sending the rest
            // would replay to every group, the opposite of what was asked.
            Control::Remote(_) if to_group.is_some() => anyhow::bail!(
                "--to-group is not served by keel serve's API yet: stop the server and run the replay against its data directory"
            ),
            Control::Remote(url) => {
                let mut body = filter_json(&filter);
                body["force"] = json!(force);
                body["canary"] = json!(canary);
                body["command"] = json!(command);
                post(url, &format!("/api/dead-letters/{topic}/replay"), &body)
            }
        }
    }

    pub(crate) fn canary_outcome(&self, id: &str) -> anyhow::Result<CanaryOutcome> {
        match self {
            Control::Local(log) => Ok(dead_letters::canary_outcome(log, id)?),
            Control::Remote(url) => get(url, &format!("/api/dead-letters/canary/{id}")),
        }
    }

    /// Purges when `confirmed`; otherwise reports what would be purged and writes nothing.
    pub(crate) fn purge(
        &self,
        topic: &str,
        filter: &DeadLetterFilter,
        confirmed: bool,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<PurgeReport> {
        match self {
            Control::Local(log) if confirmed => Ok(dead_letters::purge(
                log, topic, filter, true, command, now_ms,
            )?),
            Control::Local(log) => Ok(dead_letters::plan_purge(log, topic, filter)?),
            Control::Remote(url) => {
                let mut body = filter_json(filter);
                body["confirm"] = json!(confirmed);
                body["command"] = json!(command);
                post(url, &format!("/api/dead-letters/{topic}/purge"), &body)
            }
        }
    }

    /// The audit log; only the dead-letter topic of `topic` (it or its source) when given.
    pub(crate) fn history(&self, topic: Option<&str>) -> anyhow::Result<Vec<AuditEntry>> {
        match self {
            Control::Local(log) => {
                let topic = match topic {
                    Some(name) => Some(dead_letters::resolve_topic(log, name)?.name),
                    None => None,
                };
                Ok(audit::history(log, topic.as_deref())?)
            }
            Control::Remote(url) => {
                let topic = topic.map(|t| {
                    if t.ends_with(".dlq") {
                        t.to_string()
                    } else {
                        format!("{t}.dlq")
                    }
                });
                get_query(url, "/api/audit", &json!({ "topic": topic }))
            }
        }
    }

    pub(crate) fn list_groups(&self, now_ms: i64) -> anyhow::Result<Vec<GroupSummary>> {
        match self {
            Control::Local(log) => Ok(groups::list_groups(log, now_ms)?),
            Control::Remote(url) => get(url, "/api/groups"),
        }
    }

    /// Moves `group`'s committed offsets (or with `dry_run` only plans the moves). A server
    /// refuses while members of the group are connected, unless `force`; here no member of
    /// another process can run, since this process owns the log.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reset_group(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        target: ResetTarget,
        dry_run: bool,
        force: bool,
        now_ms: i64,
    ) -> anyhow::Result<Vec<OffsetReset>> {
        match self {
            Control::Local(log) => {
                let plan = groups::plan_reset(log, group, topic, partition, target)?;
                if !dry_run {
                    groups::apply_reset(log, group, &plan, now_ms)?;
                }
                Ok(plan)
            }
            Control::Remote(url) => {
                let mut body = match target {
                    ResetTarget::Earliest => json!({ "to": "earliest" }),
                    ResetTarget::Latest => json!({ "to": "latest" }),
                    ResetTarget::Offset(offset) => json!({ "to": "offset", "offset": offset }),
                    ResetTarget::Time(time_ms) => json!({ "to": "time", "time_ms": time_ms }),
                };
                body["topic"] = json!(topic);
                body["partition"] = json!(partition);
                body["dry_run"] = json!(dry_run);
                body["force"] = json!(force);
                let answer: Value = post(url, &format!("/api/groups/{group}/reset"), &body)?;
                serde_json::from_value(answer["moves"].clone())
                    .with_context(|| format!("unexpected answer from {url} to a reset"))
            }
        }
    }

    /// Deletes `group` and records it in the audit log with `command`. A server refuses
    /// while members of the group run; here no member of another process can run, since
    /// this process owns the log.
    pub(crate) fn delete_group(
        &self,
        group: &str,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<GroupDeletion> {
        match self {
            Control::Local(log) => Ok(groups::delete_group(log, group, command, now_ms)?),
            Control::Remote(url) => {
                let path = format!("/api/groups/{group}");
                let request = ureq::delete(format!("{url}{path}"))
                    .config()
                    .http_status_as_error(false)
                    .build()
                    .query("command", command);
                answer(url, &path, request.call())
            }
        }
    }

    pub(crate) fn group_lag(&self, group: &str, now_ms: i64) -> anyhow::Result<Vec<PartitionLag>> {
        match self {
            Control::Local(log) => Ok(groups::group_lag(log, group, now_ms)?),
            Control::Remote(url) => get(url, &format!("/api/groups/{group}")),
        }
    }
}

/// The filter's set fields as the API's JSON fields (`event_type` is `type` there).
fn filter_json(filter: &DeadLetterFilter) -> Value {
    let mut value = json!({});
    let fields: [(&str, Option<Value>); 7] = [
        ("partition", filter.partition.map(Value::from)),
        ("offset", filter.offset.map(Value::from)),
        ("event_id", filter.event_id.clone().map(Value::from)),
        ("type", filter.event_type.clone().map(Value::from)),
        ("group", filter.group.clone().map(Value::from)),
        ("kind", filter.kind.clone().map(Value::from)),
        ("key", filter.key.clone().map(Value::from)),
    ];
    for (name, field) in fields {
        if let Some(field) = field {
            value[name] = field;
        }
    }
    value
}

fn get<T: DeserializeOwned>(url: &str, path: &str) -> anyhow::Result<T> {
    answer(
        url,
        path,
        ureq::get(format!("{url}{path}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call(),
    )
}

fn get_query<T: DeserializeOwned>(url: &str, path: &str, query: &Value) -> anyhow::Result<T> {
    let mut request = ureq::get(format!("{url}{path}"))
        .config()
        .http_status_as_error(false)
        .build();
    for (name, value) in query.as_object().into_iter().flatten() {
        match value {
            Value::Null => {}
            Value::String(text) => request = request.query(name, text),
            other => request = request.query(name, other.to_string()),
        }
    }
    answer(url, path, request.call())
}

fn post<T: DeserializeOwned, B: Serialize>(url: &str, path: &str, body: &B) -> anyhow::Result<T> {
    let request = ureq::post(format!("{url}{path}"))
        .config()
        .http_status_as_error(false)
        .build();
    answer(url, path, request.send_json(body))
}

/// The body of a 2xx answer as `T`; otherwise the server's one-line error.
fn answer<T: DeserializeOwned>(
    url: &str,
    path: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> anyhow::Result<T> {
    let response = response.with_context(|| format!("cannot reach the server at {url}"))?;
    let status = response.status();
    let mut body = response.into_body();
    if status.is_success() {
        return body
            .read_json()
            .with_context(|| format!("unexpected answer from {url}{path}"));
    }
    let error: Value = body.read_json().unwrap_or(Value::Null);
    match error["error"].as_str() {
        Some(message) => bail!("{message}"),
        None => bail!("the server at {url} answered {status} to {path}"),
    }
}
