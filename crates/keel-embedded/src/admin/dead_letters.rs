//! Dead letters as an operator sees them: list the `<topic>.dlq` topics with counts and age,
//! show one with its `keel_dlq_*` headers decoded, replay some back to their original topic
//! or straight to the group that gave up on them, purge some, and check a replay canary.
//!
//! Replay is safe by construction:
//!
//! - **The event keeps its identity.** The replayed record has the dead letter's key, value
//!   and headers (the `ce_*` attributes, so the event id) minus the `keel_dlq_*` headers,
//!   plus `keel_replay_of` (`<dlq topic>/<partition>/<offset>`) and `keel_replay_id`. It is
//!   appended to the partition it was read from, so its key keeps its order, and an inbox
//!   still recognises it.
//! - **To one group, if asked.** A replay to the original topic reaches every group of that
//!   topic. [`ReplayPlan::to_group`] instead appends each dead letter of that group to the
//!   topic's redelivery topic `<topic>.retry`, addressed to the group
//!   ([`keel_runtime::redelivery`]):
//!   that group's router handles it with a full set of attempts, every other group skips it
//!   unread.
//! - **Bounded.** [`plan_replay`] takes each dead-letter partition's high watermark; the
//!   replay never reads past it, so events that fail again while it runs do not loop.
//! - **Whole events only.** A dead letter marked [`IncompletePayload`] (its data was dropped
//!   to fit, or it stands in for unreadable bytes) is refused and counted, with where the
//!   original is kept: replaying it would publish an event that is not the one that failed.
//! - **Once.** Every replayed dead letter is named in the audit log ([`super::audit`]) and
//!   skipped by later replays unless forced. The replayed record is appended before its
//!   audit record: a crash between the two can replay a dead letter twice, which the kept
//!   event id lets an inbox absorb, but can never lose one.
//! - **Canary first.** A canary replay appends one event; [`canary_outcome`] then tells
//!   whether the group that gave up on it has now handled it (its committed offset passed
//!   the replayed record) or it landed in the dead letters again.
//!
//! Purge does not delete bytes (the log has no delete-records operation): it names dead
//! letters in the audit log, after which they are hidden from counts and never replayed;
//! retention removes the bytes. Purging needs an explicit confirmation.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use keel_core::Event;
use keel_log::{AppendError, Header, Log, NewRecord, ReadError, Record, Topic};
use serde::{Deserialize, Serialize};

use super::audit::{self, AuditAction, AuditEntry, AuditError, AuditItem, AuditState};
use super::scan;
use keel_core::header_text;
use keel_runtime::dead_letter::dead_letter_topic;
use keel_runtime::limits::{DLQ_SUFFIX, RETRY_SUFFIX};
use keel_runtime::redelivery::{Redelivery, is_redelivery_header, retry_topic};
use keel_runtime::{DeadLetterHeaders, IncompletePayload};

use crate::lag::age_ms;
use crate::publish::ensure_companion_topic;

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

/// A replay, planned: the dead letters it may touch end at `bound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPlan {
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Each partition's high watermark when the plan was made; nothing at or past it is
    /// replayed.
    pub bound: Vec<u64>,
    /// Which dead letters.
    pub filter: DeadLetterFilter,
    /// Replay dead letters that were replayed before, too.
    pub force: bool,
    /// Replay only the first matching dead letter, as a canary.
    pub canary: bool,
    /// Replay to this group only, through the redelivery topic; `None` replays to the
    /// original topic (every group). Set with [`ReplayPlan::to_group`].
    pub target_group: Option<String>,
    /// The command line (or caller description), for the audit log.
    pub command: String,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayReport {
    /// The replay's id (its audit entry; the `keel_replay_id` header).
    pub id: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Whether this was a canary.
    pub canary: bool,
    /// The dead letters replayed and where they went.
    pub replayed: Vec<AuditItem>,
    /// Matching dead letters skipped because they were replayed before.
    pub skipped_replayed: u64,
    /// Matching dead letters skipped because they were purged.
    pub skipped_purged: u64,
    /// Matching records skipped because their `keel_dlq_*` headers are missing.
    pub skipped_malformed: u64,
    /// Matching dead letters refused because they do not hold the whole event.
    #[serde(default)]
    pub refused: Vec<RefusedDeadLetter>,
}

/// A dead letter a replay refused: it does not hold the event that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusedDeadLetter {
    /// Partition of the dead-letter topic.
    pub partition: u32,
    /// Offset there.
    pub offset: u64,
    /// The CloudEvent id, when readable.
    pub event_id: Option<String>,
    /// What the dead letter lost: `dropped` (its data) or `unreadable` (the event).
    pub loss: String,
    /// Where the whole original is kept.
    pub original: String,
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

/// Where a canary stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CanaryOutcome {
    /// Not handled yet: the group's committed offset has not passed the replayed record.
    Pending,
    /// The group handled it: its committed offset passed the replayed record, and it did
    /// not land in the dead letters again.
    Handled,
    /// It failed again and is back in the dead letters, at this partition and offset.
    DeadLettered {
        /// Partition of the dead-letter topic.
        partition: u32,
        /// Offset there.
        offset: u64,
    },
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
    /// Reading the log failed.
    #[error("cannot read the log: {0}")]
    Read(#[from] ReadError),
    /// Appending a replayed event failed.
    #[error("cannot append the replayed event: {0}")]
    Append(#[from] AppendError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The redelivery topic of a replay to one group could not be created.
    #[error("cannot create the redelivery topic '{topic}': {source}")]
    RedeliveryTopic {
        /// The redelivery topic.
        topic: String,
        /// Why.
        source: keel_log::TopicError,
    },
}

/// The dead-letter topics (names ending in `.dlq`), by name.
pub fn dead_letter_topics(log: &Log) -> Vec<Arc<Topic>> {
    log.topics()
        .into_iter()
        .filter(|t| t.name().ends_with(DLQ_SUFFIX))
        .collect()
}

/// The dead-letter topic called `name`, or the dead-letter topic of the topic `name`.
pub fn resolve_topic(log: &Log, name: &str) -> Result<Arc<Topic>, DeadLetterError> {
    if name.ends_with(DLQ_SUFFIX)
        && let Some(topic) = log.topic(name)
    {
        return Ok(topic);
    }
    log.topic(&dead_letter_topic(name))
        .ok_or_else(|| DeadLetterError::TopicNotFound(name.to_string()))
}

/// Every dead-letter topic with its counts, oldest pending age and causes.
pub fn summaries(log: &Log, now_ms: i64) -> Result<Vec<DeadLetterSummary>, DeadLetterError> {
    let state = audit::state(log)?;
    let mut out = Vec::new();
    for topic in dead_letter_topics(log) {
        let mut summary = DeadLetterSummary {
            dead_letter_topic: topic.name().to_string(),
            pending: 0,
            replayed: 0,
            purged: 0,
            oldest_pending_age_ms: 0,
            causes: Vec::new(),
        };
        let mut causes: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let mut oldest_ms: Option<i64> = None;
        each_dead_letter(&topic, &state, None, |dead_letter| {
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
        })?;
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
pub fn dead_letters(
    log: &Log,
    topic: &str,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<StoredDeadLetter>, DeadLetterError> {
    let topic = resolve_topic(log, topic)?;
    let state = audit::state(log)?;
    let limit = limit.min(LIST_LIMIT_MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    each_dead_letter(&topic, &state, None, |dead_letter| {
        if filter.matches(&dead_letter) {
            out.push(dead_letter);
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// Plans a replay of the dead letters of `topic` matching `filter`, bounded by the
/// dead-letter partitions' current high watermarks.
pub fn plan_replay(
    log: &Log,
    topic: &str,
    filter: DeadLetterFilter,
    force: bool,
    canary: bool,
    command: impl Into<String>,
) -> Result<ReplayPlan, DeadLetterError> {
    let topic = resolve_topic(log, topic)?;
    Ok(ReplayPlan {
        dead_letter_topic: topic.name().to_string(),
        bound: topic
            .partitions()
            .iter()
            .map(|p| p.high_watermark())
            .collect(),
        filter,
        force,
        canary,
        target_group: None,
        command: command.into(),
    })
}

impl ReplayPlan {
    /// Replays to `group` only: the plan then selects only dead letters of that group (its
    /// filter's group is set to it) and appends them to `<topic>.retry` addressed to it, so
    /// no other group of the original topic sees them.
    #[must_use]
    pub fn to_group(mut self, group: impl Into<String>) -> ReplayPlan {
        let group = group.into();
        self.filter.group = Some(group.clone());
        self.target_group = Some(group);
        self
    }
}

/// Runs a planned replay: appends each matching, pending dead letter below the plan's bound
/// to its original topic and partition, then records the replay in the audit log (even when
/// nothing matched). A canary replays only the first one.
pub fn replay(log: &Log, plan: &ReplayPlan, now_ms: i64) -> Result<ReplayReport, DeadLetterError> {
    let topic = resolve_topic(log, &plan.dead_letter_topic)?;
    let state = audit::state(log)?;
    let action = if plan.canary {
        AuditAction::Canary
    } else {
        AuditAction::Replay
    };
    let id = audit::new_id(log, action, now_ms);
    let mut report = ReplayReport {
        id: id.clone(),
        dead_letter_topic: plan.dead_letter_topic.clone(),
        canary: plan.canary,
        replayed: Vec::new(),
        skipped_replayed: 0,
        skipped_purged: 0,
        skipped_malformed: 0,
        refused: Vec::new(),
    };
    let mut pending_audit: Vec<AuditItem> = Vec::new();
    let entry = |items: Vec<AuditItem>| AuditEntry {
        id: id.clone(),
        time_ms: now_ms,
        action,
        dead_letter_topic: plan.dead_letter_topic.clone(),
        items,
        command: plan.command.clone(),
    };
    let mut recorded_any = false;
    each_dead_letter(&topic, &state, Some(&plan.bound), |dead_letter| {
        if !plan.filter.matches(&dead_letter) {
            return Ok(true);
        }
        match dead_letter.status {
            DeadLetterStatus::Purged => {
                report.skipped_purged += 1;
                return Ok(true);
            }
            DeadLetterStatus::Replayed if !plan.force => {
                report.skipped_replayed += 1;
                return Ok(true);
            }
            _ => {}
        }
        let Some(headers) = dead_letter.headers.clone() else {
            report.skipped_malformed += 1;
            return Ok(true);
        };
        if let Some(incomplete) = &dead_letter.incomplete {
            report.refused.push(RefusedDeadLetter {
                partition: dead_letter.partition,
                offset: dead_letter.offset,
                event_id: dead_letter.event_id.clone(),
                loss: incomplete.loss.as_str().to_string(),
                original: incomplete.original.clone(),
            });
            return Ok(true);
        }
        let target_group = plan.target_group.as_deref();
        let item = replay_one(
            log,
            &topic,
            &dead_letter,
            &headers,
            &id,
            target_group,
            now_ms,
        )?;
        report.replayed.push(item.clone());
        pending_audit.push(item);
        if pending_audit.len() >= audit::AUDIT_ITEMS_PER_RECORD_MAX {
            audit::record(log, &entry(std::mem::take(&mut pending_audit)))?;
            recorded_any = true;
        }
        Ok(!plan.canary)
    })?;
    if !pending_audit.is_empty() || !recorded_any {
        audit::record(log, &entry(pending_audit))?;
    }
    Ok(report)
}

/// Marks the dead letters of `topic` matching `filter` (pending or replayed) as purged in
/// the audit log. Without `confirmed` nothing is written and the answer is
/// [`DeadLetterError::NotConfirmed`]; call [`plan_purge`] to see what would go.
pub fn purge(
    log: &Log,
    topic: &str,
    filter: &DeadLetterFilter,
    confirmed: bool,
    command: impl Into<String>,
    now_ms: i64,
) -> Result<PurgeReport, DeadLetterError> {
    let mut report = plan_purge(log, topic, filter)?;
    if !confirmed {
        return Err(DeadLetterError::NotConfirmed {
            count: report.purged.len(),
        });
    }
    report.id = audit::new_id(log, AuditAction::Purge, now_ms);
    report.confirmed = true;
    audit::record(
        log,
        &AuditEntry {
            id: report.id.clone(),
            time_ms: now_ms,
            action: AuditAction::Purge,
            dead_letter_topic: report.dead_letter_topic.clone(),
            items: report.purged.clone(),
            command: command.into(),
        },
    )?;
    Ok(report)
}

/// What [`purge`] would mark purged; nothing is written.
pub fn plan_purge(
    log: &Log,
    topic: &str,
    filter: &DeadLetterFilter,
) -> Result<PurgeReport, DeadLetterError> {
    let topic = resolve_topic(log, topic)?;
    let state = audit::state(log)?;
    let mut purged = Vec::new();
    each_dead_letter(&topic, &state, None, |dead_letter| {
        if filter.matches(&dead_letter) && dead_letter.status != DeadLetterStatus::Purged {
            purged.push(AuditItem {
                partition: dead_letter.partition,
                offset: dead_letter.offset,
                event_id: dead_letter.event_id,
                group: dead_letter.headers.map(|h| h.group),
                target: None,
            });
        }
        Ok(true)
    })?;
    Ok(PurgeReport {
        id: String::new(),
        dead_letter_topic: topic.name().to_string(),
        purged,
        confirmed: false,
    })
}

/// Where the canary replay `id` stands: back in the dead letters, handled by the group that
/// gave up on it, or not yet handled. The group must be running (in this process, or in the
/// owner of the log) for the answer to change.
pub fn canary_outcome(log: &Log, id: &str) -> Result<CanaryOutcome, DeadLetterError> {
    let entry = audit::entry(log, id)?
        .filter(|e| e.action == AuditAction::Canary)
        .ok_or_else(|| DeadLetterError::CanaryNotFound(id.to_string()))?;
    let Some(item) = entry.items.first() else {
        // The canary matched nothing; there is nothing to wait for.
        return Ok(CanaryOutcome::Handled);
    };
    let dlq = resolve_topic(log, &entry.dead_letter_topic)?;
    for (index, partition) in dlq.partitions().iter().enumerate() {
        let mut found = None;
        scan::<ReadError>(partition, 0, u64::MAX, |record| {
            if header_text(&record.headers, REPLAY_ID_HEADER) == Some(id) {
                found = Some(record.offset);
                return Ok(false);
            }
            Ok(true)
        })?;
        if let Some(offset) = found {
            return Ok(CanaryOutcome::DeadLettered {
                partition: index as u32,
                offset,
            });
        }
    }
    let (Some(target), Some(group)) = (&item.target, &item.group) else {
        return Ok(CanaryOutcome::Pending);
    };
    // A failed attempt of a route with retry topics moves the event on to `<topic>.retry`;
    // the canary is handled only once the group passed its last redelivery there too.
    let (topic, partition, offset) = match latest_redelivery(log, &target.0, id)? {
        Some(redelivered) => redelivered,
        None => target.clone(),
    };
    let (topic, partition, offset) = (&topic, &partition, &offset);
    let committed = log
        .group_offsets()
        .fetch(group, topic, *partition)
        .map_or(0, |c| c.offset);
    Ok(if committed > *offset {
        CanaryOutcome::Handled
    } else {
        CanaryOutcome::Pending
    })
}

/// The last record of the replay `id` in the redelivery topic of `target` (or `target`
/// itself when it is one), as (topic, partition, offset).
fn latest_redelivery(
    log: &Log,
    target: &str,
    id: &str,
) -> Result<Option<(String, u32, u64)>, DeadLetterError> {
    let name = if target.ends_with(RETRY_SUFFIX) {
        target.to_string()
    } else {
        retry_topic(target)
    };
    let Some(topic) = log.topic(&name) else {
        return Ok(None);
    };
    let mut latest: Option<(String, u32, u64)> = None;
    for (index, partition) in topic.partitions().iter().enumerate() {
        scan::<ReadError>(partition, 0, u64::MAX, |record| {
            if header_text(&record.headers, REPLAY_ID_HEADER) == Some(id)
                && latest
                    .as_ref()
                    .is_none_or(|l| l.1 != index as u32 || l.2 < record.offset)
            {
                latest = Some((name.clone(), index as u32, record.offset));
            }
            Ok(true)
        })?;
    }
    Ok(latest)
}

/// Appends one dead letter back to where it came from, or to the redelivery topic addressed
/// to `target_group`; returns its audit item.
fn replay_one(
    log: &Log,
    dlq: &Topic,
    dead_letter: &StoredDeadLetter,
    headers: &DeadLetterHeaders,
    id: &str,
    target_group: Option<&str>,
    now_ms: i64,
) -> Result<AuditItem, DeadLetterError> {
    let origin = log
        .topic(&headers.topic)
        .ok_or_else(|| DeadLetterError::TargetNotFound(headers.topic.clone()))?;
    let target = match target_group {
        None => origin,
        Some(_) => {
            let name = retry_topic(origin.name());
            ensure_companion_topic(log, &origin, &name).map_err(|source| {
                DeadLetterError::RedeliveryTopic {
                    topic: name,
                    source,
                }
            })?
        }
    };
    let record = dead_letter.record.clone();
    let partition_index = if headers.partition < target.partitions().len() as u32 {
        headers.partition
    } else {
        target.partition_for(record.key.as_deref())
    };
    let mut replay_headers: Vec<Header> = record
        .headers
        .into_iter()
        .filter(|h| {
            !h.key.starts_with("keel_dlq_")
                && h.key != REPLAY_OF_HEADER
                && h.key != REPLAY_ID_HEADER
        })
        .collect();
    let replay_of = format!(
        "{}/{}/{}",
        dlq.name(),
        dead_letter.partition,
        dead_letter.offset
    );
    replay_headers.push(Header {
        key: REPLAY_OF_HEADER.to_string(),
        value: Some(Bytes::from(replay_of)),
    });
    replay_headers.push(Header {
        key: REPLAY_ID_HEADER.to_string(),
        value: Some(Bytes::from(id.to_string())),
    });
    if let Some(group) = target_group {
        let redelivery = Redelivery {
            group: group.to_string(),
            attempts: 0,
            due_ms: now_ms,
            topic: headers.topic.clone(),
            partition: headers.partition,
            offset: headers.offset,
            first_failure_ms: None,
        };
        replay_headers.retain(|h| !is_redelivery_header(&h.key));
        replay_headers.extend(redelivery.encode());
    }
    let partition = target.partition(partition_index).expect("checked above");
    let info = partition.append(&[NewRecord {
        key: record.key,
        value: record.value,
        headers: replay_headers,
        timestamp_ms: None,
    }])?;
    Ok(AuditItem {
        partition: dead_letter.partition,
        offset: dead_letter.offset,
        event_id: dead_letter.event_id.clone(),
        group: Some(headers.group.clone()),
        target: Some((target.name().to_string(), partition_index, info.base_offset)),
    })
}

/// Calls `f` with every dead letter of `topic` (below `bound` per partition, when given),
/// partition by partition, until it returns `Ok(false)`.
fn each_dead_letter(
    topic: &Topic,
    state: &AuditState,
    bound: Option<&[u64]>,
    mut f: impl FnMut(StoredDeadLetter) -> Result<bool, DeadLetterError>,
) -> Result<(), DeadLetterError> {
    let mut stopped = false;
    for (index, partition) in topic.partitions().iter().enumerate() {
        if stopped {
            break;
        }
        let end = bound.map_or(u64::MAX, |b| b.get(index).copied().unwrap_or(0));
        scan::<DeadLetterError>(partition, 0, end, |record| {
            let dead_letter = stored(topic.name(), index as u32, record, state);
            let go_on = f(dead_letter)?;
            stopped = !go_on;
            Ok(go_on)
        })?;
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
