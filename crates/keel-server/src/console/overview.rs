//! The overview: the backbone at a glance — size, throughput over the last hour, groups and
//! their lag, dead-letter depth, alerts, and the health of listeners and partitions — as a
//! page (`/`) and as `GET /api/overview`, both from [`load`]: the console sampler's last
//! sample and what only an owned log knows.

use std::cmp::Ordering;

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::get;
use keel_log::Log;
use keel_runtime::admin::dead_letters::DeadLetterSummary;
use maud::html;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::groups::sampled_groups;
use super::{PageResult, Viewer, bytes, chart, duration, encode, number, page, rate};
use crate::app::{ApiError, App, blocking_log};
use crate::history::{SampledGroups, Throughput};
use crate::source::Source;

/// Topics listed as the busiest.
const BUSIEST_TOPICS: usize = 10;

pub(super) fn routes() -> Router<App> {
    Router::new().route("/", get(overview_page))
}

pub(super) fn api_routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(overview_api))
}

/// The backbone at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Overview {
    /// What is served: `data directory`, or the Kafka cluster's name.
    pub(crate) source: String,
    /// Topics (internal `__` ones left out).
    pub(crate) topics: usize,
    /// Partitions of those topics.
    pub(crate) partitions: usize,
    /// Events stored.
    pub(crate) events: u64,
    /// Bytes on disk; `null` on a Kafka cluster (its brokers keep them).
    pub(crate) bytes: Option<u64>,
    /// Events in and out per second over the last hour, all topics together.
    pub(crate) throughput: Throughput,
    /// The topics with the most events in over the last sample interval (idle ones left
    /// out).
    pub(crate) busiest: Vec<TopicRate>,
    /// Consumer groups with their lag at the console sampler's last measure.
    pub(crate) groups: SampledGroups,
    /// Dead-letter topics with their depth.
    pub(crate) dead_letters: Vec<DeadLetterSummary>,
    /// What needs an operator now.
    pub(crate) alerts: Vec<Alert>,
    /// Where each listener serves.
    pub(crate) listeners: Vec<Listener>,
    /// Partitions whose tail recovery repaired when the server opened the log.
    pub(crate) repaired: Vec<String>,
    /// Partitions that refuse writes after a failed fsync (until the server restarts).
    pub(crate) failed: Vec<String>,
}

/// One topic's rates.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TopicRate {
    /// The topic.
    pub(crate) topic: String,
    /// Events appended per second.
    pub(crate) in_per_s: f64,
    /// Events consumed per second.
    pub(crate) out_per_s: f64,
}

/// Something that needs an operator.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Alert {
    /// `dead_letters` (a group gave up on events) or `lag` (a group is behind more than the
    /// threshold).
    pub(crate) kind: String,
    /// The group.
    pub(crate) group: String,
    /// What is wrong, in one line.
    pub(crate) message: String,
    /// Where to look.
    pub(crate) link: String,
}

/// A listener and its address.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Listener {
    /// HTTP, Kafka or schema registry.
    pub(crate) name: String,
    /// The bound address, or `null` when not served.
    pub(crate) address: Option<String>,
}

/// What only an owned log knows; empty on a cluster.
#[derive(Debug, Default)]
struct Storage {
    bytes: Option<u64>,
    failed: Vec<String>,
    repaired: Vec<String>,
}

/// Bytes on disk, partitions refusing writes, and what recovery repaired.
fn storage(log: &Log) -> Storage {
    Storage {
        bytes: Some(
            log.topics()
                .iter()
                .flat_map(|t| t.partitions())
                .map(|p| p.size_bytes())
                .sum(),
        ),
        failed: log
            .failed_partitions()
            .into_iter()
            .map(|(topic, partition, error)| format!("{topic}/{partition}: {error}"))
            .collect(),
        repaired: log
            .recovery_report()
            .repaired
            .iter()
            .map(|(topic, partition, recovery)| {
                format!(
                    "{topic}/{partition}: {} bytes cut ({}), {} leftover file(s) removed",
                    recovery.truncated_bytes,
                    recovery
                        .truncation_reason
                        .as_deref()
                        .unwrap_or("no reason recorded"),
                    recovery.removed_files.len()
                )
            })
            .collect(),
    }
}

/// Computes the overview from the console sampler's last sample (topics, groups, dead
/// letters: measuring them per request takes minutes on a cluster of hundreds of groups),
/// the history, and what only an owned log knows (sizes, failed and repaired partitions).
pub(crate) async fn load(app: &App) -> Result<Overview, ApiError> {
    let storage = match &app.source {
        Source::Log(bus) => blocking_log(bus, |log| Ok::<_, ApiError>(storage(log))).await?,
        Source::Cluster(_) => Storage::default(),
    };
    let (config, listeners) = (&app.console, app.listeners);
    let stored = app.history.stored().unwrap_or_default();
    let dead_letters = app.history.dead_letters();
    let groups = app.history.groups();
    let mut alerts = Vec::new();
    for summary in &dead_letters {
        for cause in summary.causes.iter().filter(|c| c.pending > 0) {
            alerts.push(Alert {
                kind: "dead_letters".into(),
                group: cause.group.clone(),
                message: format!(
                    "{} dead letter(s) in {} from group '{}' (handler '{}', {}), the oldest {} old",
                    cause.pending,
                    summary.dead_letter_topic,
                    cause.group,
                    cause.handler,
                    cause.kind,
                    duration(summary.oldest_pending_age_ms)
                ),
                link: format!("/dead-letters/{}", encode(&summary.dead_letter_topic)),
            });
        }
    }
    for group in groups
        .groups
        .iter()
        .filter(|g| g.lag_ms > config.lag_alert_ms)
    {
        alerts.push(Alert {
            kind: "lag".into(),
            group: group.group.clone(),
            message: format!(
                "group '{}' is {} behind ({} events), above the alert threshold of {}",
                group.group,
                duration(group.lag_ms),
                group.lag_events,
                duration(config.lag_alert_ms)
            ),
            link: format!("/groups/{}", encode(&group.group)),
        });
    }
    let mut busiest: Vec<TopicRate> = app
        .history
        .latest_rates()
        .into_iter()
        .filter(|(_, (in_per_s, out_per_s))| *in_per_s > 0.0 || *out_per_s > 0.0)
        .map(|(topic, (in_per_s, out_per_s))| TopicRate {
            topic,
            in_per_s,
            out_per_s,
        })
        .collect();
    busiest.sort_by(|a, b| {
        b.in_per_s
            .partial_cmp(&a.in_per_s)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.topic.cmp(&b.topic))
    });
    busiest.truncate(BUSIEST_TOPICS);
    let address = |addr: Option<std::net::SocketAddr>| addr.map(|a| a.to_string());
    Ok(Overview {
        source: source_name(&app.source),
        topics: stored.topics,
        partitions: stored.partitions,
        events: stored.events,
        bytes: storage.bytes,
        throughput: app.history.throughput(None),
        busiest,
        groups,
        dead_letters,
        alerts,
        listeners: vec![
            Listener {
                name: "HTTP (API, console, metrics)".into(),
                address: address(Some(listeners.http)),
            },
            Listener {
                name: "Kafka protocol".into(),
                address: address(listeners.kafka),
            },
            Listener {
                name: "Schema registry".into(),
                address: address(listeners.registry),
            },
        ],
        failed: storage.failed,
        repaired: storage.repaired,
    })
}

/// `data directory` or the cluster's name, as the overview names its source.
fn source_name(source: &Source) -> String {
    match source {
        Source::Log(_) => "data directory".into(),
        Source::Cluster(cluster) => cluster.name.clone(),
    }
}

#[utoipa::path(
    get, path = "/api/overview", tag = "overview",
    responses((status = 200, description = "The backbone at a glance", body = Overview))
)]
async fn overview_api(State(app): State<App>) -> Result<Json<Overview>, ApiError> {
    load(&app).await.map(Json)
}

async fn overview_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    let o = load(&app).await?;
    let lag_events: u64 = o.groups.groups.iter().map(|g| g.lag_events).sum();
    let pending: u64 = o.dead_letters.iter().map(|d| d.pending).sum();
    let last = |values: &[f64]| values.last().copied().unwrap_or(0.0);
    // Only an owned log has sizes, and partitions this process checks.
    let owns_log = o.bytes.is_some();
    let body = html! {
        section #figures.figures data-live {
            @if o.groups.sampled_at_ms.is_none() {
                p.muted data-figure="first-sample" { "The console's first sample of topics, groups and dead letters is being taken; the figures fill in when it ends." }
            }
            div.figure { span.label { "Topics" } span.value data-figure="topics" { (number(o.topics as u64)) } }
            div.figure { span.label { "Partitions" } span.value data-figure="partitions" { (number(o.partitions as u64)) } }
            div.figure { span.label { "Events stored" } span.value data-figure="events" { (number(o.events)) } }
            @if let Some(size) = o.bytes {
                div.figure { span.label { "Storage" } span.value data-figure="bytes" { (bytes(size)) } }
            }
            div.figure { span.label { "In" } span.value data-figure="in" { (rate(last(&o.throughput.in_per_s))) } }
            div.figure { span.label { "Out" } span.value data-figure="out" { (rate(last(&o.throughput.out_per_s))) } }
            div.figure { span.label { "Groups" } span.value data-figure="groups" { (o.groups.groups.len()) } }
            div.figure class=[(lag_events > 0).then_some("warn")] { span.label { "Lag" } span.value data-figure="lag" { (number(lag_events)) " events" } }
            div.figure class=[(pending > 0).then_some("bad")] { span.label { "Dead letters" } span.value data-figure="dead-letters" { (number(pending)) } }
        }
        section #alerts data-live {
            h2 { "Alerts" }
            @if o.alerts.is_empty() {
                p.ok data-figure="alerts" { "No alerts: no pending dead letters, no group beyond the lag threshold." }
            } @else {
                ul.alerts data-figure="alerts" {
                    @for alert in &o.alerts {
                        li class=(alert.kind) { a href=(alert.link) { (alert.message) } }
                    }
                }
            }
        }
        section #throughput data-live {
            h2 { "Throughput, last hour" }
            div.chart-box {
                (chart(&o.throughput.in_per_s, &o.throughput.out_per_s, "throughput"))
                p.legend { span.in { "— in" } " " span.out { "- - out (committed by groups)" } " · events per second, one point per sample" }
            }
            @if !o.busiest.is_empty() {
                table {
                    thead { tr { th { "Busiest topics" } th.num { "in" } th.num { "out" } } }
                    tbody {
                        @for t in &o.busiest {
                            tr { td { a href=(format!("/topics/{}", encode(&t.topic))) { (t.topic) } } td.num { (rate(t.in_per_s)) } td.num { (rate(t.out_per_s)) } }
                        }
                    }
                }
            }
        }
        section #groups data-live {
            h2 { "Consumer groups" }
            (sampled_groups(&app, &o.groups))
        }
        section #dead-letters data-live {
            h2 { "Dead letters" }
            @if o.dead_letters.is_empty() {
                p.muted { "No dead-letter topic yet." }
            } @else {
                table {
                    thead { tr { th { "dead-letter topic" } th.num { "pending" } th.num { "oldest pending" } th.num { "replayed" } th.num { "purged" } } }
                    tbody {
                        @for d in &o.dead_letters {
                            tr data-dlq=(d.dead_letter_topic) {
                                td { a href=(format!("/dead-letters/{}", encode(&d.dead_letter_topic))) { (d.dead_letter_topic) } }
                                td.num class=[(d.pending > 0).then_some("bad")] data-figure="pending" { (number(d.pending)) }
                                td.num { @if d.pending > 0 { (duration(d.oldest_pending_age_ms)) } @else { "-" } }
                                td.num { (number(d.replayed)) }
                                td.num { (number(d.purged)) }
                            }
                        }
                    }
                }
            }
        }
        section #health data-live {
            h2 { "Health" }
            table {
                thead { tr { th { "listener" } th { "address" } th { "state" } } }
                tbody {
                    @for l in &o.listeners {
                        tr {
                            td { (l.name) }
                            td { (l.address.as_deref().unwrap_or("-")) }
                            td { @if l.address.is_some() { span.ok { "serving" } } @else { span.muted { "not configured" } } }
                        }
                    }
                }
            }
            @if !owns_log {
                p.muted { "Serving the Kafka cluster " strong data-figure="source" { (o.source) } ": partition health is the brokers' (their own metrics)." }
            } @else if o.failed.is_empty() {
                p.ok data-figure="failed-partitions" { "Every partition takes writes." }
            } @else {
                p.bad data-figure="failed-partitions" { (o.failed.len()) " partition(s) refuse writes after a failed fsync (until keel serve restarts):" }
                ul { @for f in &o.failed { li { code { (f) } } } }
            }
            @if owns_log && o.repaired.is_empty() {
                p.ok { "All " (number(o.partitions as u64)) " partitions opened cleanly: recovery repaired nothing." }
            } @else if owns_log {
                p.warn { "Recovery repaired these partitions when the server opened the log:" }
                ul { @for r in &o.repaired { li { code { (r) } } } }
            }
        }
    };
    Ok(page("Overview", "/", viewer, body))
}
