//! Dead letters as an operator sees them, on every transport: list the `<topic>.dlq`
//! topics with counts and age, show one with its `keel_dlq_*` headers decoded, and purge
//! some — written once over the ports (reads through `AdminTransport`, audit records
//! through `PublishTransport`), so `keel dlq` answers the same on the embedded log, on
//! `keel serve` and on a Kafka cluster. Replay and its canary are `replay.rs`; the audit
//! log that remembers replays and purges is `audit.rs`.
//!
//! Purge does not delete bytes (the port has no delete-records operation): it names dead
//! letters in the audit log, after which they are hidden from counts and never replayed;
//! retention removes the bytes. Purging needs an explicit confirmation.

use std::collections::BTreeMap;

use keel_core::header_text;
use keel_core::{
    AdminTransport, Event, PublishTransport, Record, SendError, TopicInfo, TransportError,
};
use serde::{Deserialize, Serialize};

use super::audit::{self, AuditAction, AuditEntry, AuditError, AuditItem, AuditState};
use super::groups::age_ms;
use super::scan::scan;
use crate::dead_letter::dead_letter_topic;
use crate::limits::DLQ_SUFFIX;
use crate::{DeadLetterHeaders, IncompletePayload};

/// Header on a replayed record: the dead letter it came from, `<dlq topic>/<partition>/<offset>`.
pub const REPLAY_OF_HEADER: &str = "keel_replay_of";
/// Header on a replayed record: the id of the replay (its audit entry).
pub const REPLAY_ID_HEADER: &str = "keel_replay_id";
/// Most dead letters [`dead_letters`] returns in one call.
pub const LIST_LIMIT_MAX: usize = 10_000;

/// What the audit log says about a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Neither replayed nor purged.
    Pending,
    /// Replayed (or replayed as a canary).
    Replayed,
    /// Purged.
    Purged,
}

/// One stored dead letter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDeadLetter {
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Its partition there.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// When it was dead-lettered, ms since the epoch.
    pub timestamp_ms: i64,
    /// Replayed, purged or pending.
    pub status: DeadLetterStatus,
    /// The decoded `keel_dlq_*` headers; `None` when they are missing or malformed.
    pub headers: Option<DeadLetterHeaders>,
    /// The record key, as (lossy) UTF-8.
    pub key: Option<String>,
    /// The CloudEvent id, when the record is a readable CloudEvent.
    pub event_id: Option<String>,
    /// The CloudEvent type.
    pub event_type: Option<String>,
    /// The decoded CloudEvent.
    #[serde(skip)]
    pub event: Option<Event>,
    /// Why the record is not a readable CloudEvent.
    pub event_error: Option<String>,
    /// The `keel_replay_of` header, when this dead letter is a replayed event that failed
    /// again.
    pub replay_of: Option<String>,
    /// Set when the dead letter does not hold the whole event (never replayed).
    pub incomplete: Option<IncompletePayload>,
    /// The stored record: key, value and every header.
    #[serde(skip)]
    pub record: Record,
}

impl StoredDeadLetter {
    /// This dead letter as JSON: its serde form plus the CloudEvent in structured mode under
    /// `event` (`null` when the record is not a readable CloudEvent). The form the CLI prints
    /// and the server's API answers.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("dead letters serialize");
        value["event"] = self
            .event
            .as_ref()
            .map_or(serde_json::Value::Null, Event::to_structured_json);
        value
    }
}

/// Which dead letters an operation is about. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Partition of the dead-letter topic.
    pub partition: Option<u32>,
    /// Offset in the dead-letter topic.
    pub offset: Option<u64>,
    /// CloudEvent id.
    pub event_id: Option<String>,
    /// CloudEvent type.
    pub event_type: Option<String>,
    /// The group that gave up.
    pub group: Option<String>,
    /// Error kind: `transient`, `permanent` or `decode`.
    pub kind: Option<String>,
    /// Record key.
    pub key: Option<String>,
}

impl DeadLetterFilter {
    /// Whether `dead_letter` matches.
    pub fn matches(&self, dead_letter: &StoredDeadLetter) -> bool {
        let headers = dead_letter.headers.as_ref();
        self.partition.is_none_or(|p| p == dead_letter.partition)
            && self.offset.is_none_or(|o| o == dead_letter.offset)
            && eq(&self.event_id, dead_letter.event_id.as_deref())
            && eq(&self.event_type, dead_letter.event_type.as_deref())
            && eq(&self.group, headers.map(|h| h.group.as_str()))
            && eq(&self.kind, headers.map(|h| h.kind.as_str()))
            && eq(&self.key, dead_letter.key.as_deref())
    }
}

/// Dead letters of one group, handler and error kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CauseCount {
    /// The group (empty for malformed dead letters).
    pub group: String,
    /// The handler.
    pub handler: String,
    /// The error kind.
    pub kind: String,
    /// Pending dead letters.
    pub pending: u64,
}

/// One dead-letter topic at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterSummary {
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Dead letters neither replayed nor purged.
    pub pending: u64,
    /// Dead letters replayed.
    pub replayed: u64,
    /// Dead letters purged.
    pub purged: u64,
    /// Age of the oldest pending dead letter, ms (0 when none is pending).
    pub oldest_pending_age_ms: u64,
    /// Pending dead letters per group, handler and kind.
    pub causes: Vec<CauseCount>,
}

/// What a purge did (or, unconfirmed, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurgeReport {
    /// The purge's id; empty when not confirmed.
    pub id: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// The dead letters purged (or that would be).
    pub purged: Vec<AuditItem>,
    /// Whether anything was written.
    pub confirmed: bool,
}

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// No dead-letter topic of that name (or of that source topic).
    #[error("no dead-letter topic '{0}' (nothing was dead-lettered there yet?)")]
    TopicNotFound(String),
    /// The topic a dead letter came from no longer exists.
    #[error("the original topic '{0}' of a dead letter does not exist")]
    TargetNotFound(String),
    /// No replay or canary has this id.
    #[error("no canary with id '{0}' in the audit log")]
    CanaryNotFound(String),
    /// A purge was asked for without confirmation; nothing was written.
    #[error("purging {count} dead letter(s) needs confirmation")]
    NotConfirmed {
        /// How many would have been purged.
        count: usize,
    },
    /// Reading the dead letters (or a topic's partitions or a group's offsets) failed.
    #[error("cannot read the dead letters: {0}")]
    Read(#[from] TransportError),
    /// Appending a replayed event failed.
    #[error("cannot append the replayed event: {0}")]
    Append(#[from] SendError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The redelivery topic of a replay to one group could not be created.
    #[error("cannot create the redelivery topic '{topic}': {source}")]
    RedeliveryTopic {
        /// The redelivery topic.
        topic: String,
        /// Why.
        source: TransportError,
    },
}

/// The dead-letter topics (names ending in `.dlq`) with their partition counts, by name.
pub async fn dead_letter_topics(
    admin: &dyn AdminTransport,
) -> Result<Vec<TopicInfo>, DeadLetterError> {
    let mut topics: Vec<TopicInfo> = admin
        .topics()
        .await?
        .into_iter()
        .filter(|t| t.name.ends_with(DLQ_SUFFIX))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// The dead-letter topic called `name`, or the dead-letter topic of the topic `name`, with
/// its partition count.
pub async fn resolve_topic(
    admin: &dyn AdminTransport,
    name: &str,
) -> Result<TopicInfo, DeadLetterError> {
    let topics = admin.topics().await?;
    let find = |wanted: &str| topics.iter().find(|t| t.name == wanted).cloned();
    if name.ends_with(DLQ_SUFFIX)
        && let Some(topic) = find(name)
    {
        return Ok(topic);
    }
    find(&dead_letter_topic(name)).ok_or_else(|| DeadLetterError::TopicNotFound(name.to_string()))
}

/// Every dead-letter topic with its counts, oldest pending age and causes.
pub async fn summaries(
    admin: &dyn AdminTransport,
    now_ms: i64,
) -> Result<Vec<DeadLetterSummary>, DeadLetterError> {
    let state = audit::state(admin).await?;
    let mut out = Vec::new();
    for topic in dead_letter_topics(admin).await? {
        let mut summary = DeadLetterSummary {
            dead_letter_topic: topic.name.clone(),
            pending: 0,
            replayed: 0,
            purged: 0,
            oldest_pending_age_ms: 0,
            causes: Vec::new(),
        };
        let mut causes: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let mut oldest_ms: Option<i64> = None;
        each_dead_letter(admin, &topic, &state, None, |dead_letter| {
            match dead_letter.status {
                DeadLetterStatus::Replayed => summary.replayed += 1,
                DeadLetterStatus::Purged => summary.purged += 1,
                DeadLetterStatus::Pending => {
                    summary.pending += 1;
                    oldest_ms = Some(oldest_ms.map_or(dead_letter.timestamp_ms, |o| {
                        o.min(dead_letter.timestamp_ms)
                    }));
                    let cause = dead_letter.headers.map_or_else(Default::default, |h| {
                        (h.group, h.handler, h.kind.as_str().to_string())
                    });
                    *causes.entry(cause).or_default() += 1;
                }
            }
            Ok(true)
        })
        .await?;
        summary.oldest_pending_age_ms = oldest_ms.map_or(0, |ts| age_ms(now_ms, ts));
        summary.causes = causes
            .into_iter()
            .map(|((group, handler, kind), pending)| CauseCount {
                group,
                handler,
                kind,
                pending,
            })
            .collect();
        out.push(summary);
    }
    Ok(out)
}

/// The dead letters of `topic` (a dead-letter topic or its source) matching `filter`, in
/// partition and offset order, at most `limit` (capped at [`LIST_LIMIT_MAX`]).
pub async fn dead_letters(
    admin: &dyn AdminTransport,
    topic: &str,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<StoredDeadLetter>, DeadLetterError> {
    let topic = resolve_topic(admin, topic).await?;
    let state = audit::state(admin).await?;
    let limit = limit.min(LIST_LIMIT_MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    each_dead_letter(admin, &topic, &state, None, |dead_letter| {
        if filter.matches(&dead_letter) {
            out.push(dead_letter);
        }
        Ok(out.len() < limit)
    })
    .await?;
    Ok(out)
}

/// Marks the dead letters of `topic` matching `filter` (pending or replayed) as purged in
/// the audit log. Without `confirmed` nothing is written and the answer is
/// [`DeadLetterError::NotConfirmed`]; call [`plan_purge`] to see what would go.
pub async fn purge(
    admin: &dyn AdminTransport,
    publish: &dyn PublishTransport,
    topic: &str,
    filter: &DeadLetterFilter,
    confirmed: bool,
    command: impl Into<String>,
    now_ms: i64,
) -> Result<PurgeReport, DeadLetterError> {
    let mut report = plan_purge(admin, topic, filter).await?;
    if !confirmed {
        return Err(DeadLetterError::NotConfirmed {
            count: report.purged.len(),
        });
    }
    report.id = audit::new_id(AuditAction::Purge, now_ms);
    report.confirmed = true;
    let entry = AuditEntry {
        id: report.id.clone(),
        time_ms: now_ms,
        action: AuditAction::Purge,
        dead_letter_topic: report.dead_letter_topic.clone(),
        group: None,
        items: report.purged.clone(),
        command: command.into(),
    };
    audit::record(admin, publish, &entry).await?;
    Ok(report)
}

/// What [`purge`] would mark purged; nothing is written.
pub async fn plan_purge(
    admin: &dyn AdminTransport,
    topic: &str,
    filter: &DeadLetterFilter,
) -> Result<PurgeReport, DeadLetterError> {
    let topic = resolve_topic(admin, topic).await?;
    let state = audit::state(admin).await?;
    let mut purged = Vec::new();
    each_dead_letter(admin, &topic, &state, None, |dead_letter| {
        if filter.matches(&dead_letter) && dead_letter.status != DeadLetterStatus::Purged {
            purged.push(AuditItem {
                topic: None,
                partition: dead_letter.partition,
                offset: dead_letter.offset,
                event_id: dead_letter.event_id,
                group: dead_letter.headers.map(|h| h.group),
                target: None,
            });
        }
        Ok(true)
    })
    .await?;
    Ok(PurgeReport {
        id: String::new(),
        dead_letter_topic: topic.name,
        purged,
        confirmed: false,
    })
}

/// Calls `f` with every dead letter of `topic` (below `bound` per partition, when given),
/// partition by partition, until it returns `Ok(false)`.
pub(crate) async fn each_dead_letter(
    admin: &dyn AdminTransport,
    topic: &TopicInfo,
    state: &AuditState,
    bound: Option<&[u64]>,
    mut f: impl FnMut(StoredDeadLetter) -> Result<bool, DeadLetterError>,
) -> Result<(), DeadLetterError> {
    let mut stopped = false;
    for stored_range in admin.partition_offsets(&topic.name).await? {
        if stopped {
            break;
        }
        let partition = stored_range.partition;
        let end = bound.map_or(u64::MAX, |b| {
            b.get(partition as usize).copied().unwrap_or(0)
        });
        scan::<DeadLetterError>(admin, &topic.name, &stored_range, 0, end, |record| {
            let dead_letter = stored(&topic.name, partition, record, state);
            let go_on = f(dead_letter)?;
            stopped = !go_on;
            Ok(go_on)
        })
        .await?;
    }
    Ok(())
}

fn stored(topic: &str, partition: u32, record: Record, state: &AuditState) -> StoredDeadLetter {
    let status = if state.is_purged(topic, partition, record.offset) {
        DeadLetterStatus::Purged
    } else if state.is_replayed(topic, partition, record.offset) {
        DeadLetterStatus::Replayed
    } else {
        DeadLetterStatus::Pending
    };
    let event = Event::from_record(
        record.key.as_deref(),
        record
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref())),
        record.value.as_deref(),
    );
    let (event, event_error) = match event {
        Ok(event) => (Some(event), None),
        Err(error) => (None, Some(error.to_string())),
    };
    StoredDeadLetter {
        dead_letter_topic: topic.to_string(),
        partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        status,
        headers: DeadLetterHeaders::decode(&record.headers),
        key: record
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        event_id: event.as_ref().map(|e| e.id.clone()),
        event_type: event.as_ref().map(|e| e.ty.clone()),
        event,
        event_error,
        replay_of: header_text(&record.headers, REPLAY_OF_HEADER).map(str::to_string),
        incomplete: IncompletePayload::decode(&record.headers),
        record,
    }
}

fn eq(wanted: &Option<String>, actual: Option<&str>) -> bool {
    wanted.as_deref().is_none_or(|w| Some(w) == actual)
}
