//! The dead-letter audit log: every replay and purge, recorded as JSON records in the topic
//! [`AUDIT_TOPIC`] (one partition, `fsync = always`, never compacted), so `keel dlq history`
//! can say when, what and by which command.
//!
//! The audit log is also the memory that makes replay safe: a dead letter named in a replay
//! entry is not replayed again (unless forced), and one named in a purge entry is hidden.
//! A user topic name is used because `Log::create_topic` keeps `__` names for the log's own
//! topics; `keel.dlq.audit` does not end in `.dlq`, so it is never taken for a dead-letter
//! topic.
//!
//! Record layout: key = the dead-letter topic; value = one [`AuditEntry`] as JSON. One
//! operation writes one or more records with the same `id`, each with at most
//! [`AUDIT_ITEMS_PER_RECORD_MAX`] items, so no record outgrows the topic's batch limit.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use keel_log::{AppendError, Log, NewRecord, ReadError, Topic, TopicConfig, TopicError};
use serde::{Deserialize, Serialize};

use super::scan;

/// The topic holding the audit log.
pub const AUDIT_TOPIC: &str = "keel.dlq.audit";
/// Most items one audit record lists; a larger operation writes several records.
pub const AUDIT_ITEMS_PER_RECORD_MAX: usize = 1000;

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuditAction {
    /// Dead letters appended back to their original topic.
    Replay,
    /// One dead letter replayed as a canary (see `dead_letters::canary_outcome`).
    Canary,
    /// Dead letters marked purged: hidden from listing and never replayed.
    Purge,
}

impl AuditAction {
    /// Lower-case name, as in the JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditAction::Replay => "replay",
            AuditAction::Canary => "canary",
            AuditAction::Purge => "purge",
        }
    }
}

/// One dead letter an operation touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditItem {
    /// Partition of the dead-letter topic.
    pub partition: u32,
    /// Offset in that partition.
    pub offset: u64,
    /// The event id, when the dead letter was a readable CloudEvent.
    pub event_id: Option<String>,
    /// The group that gave up on it.
    pub group: Option<String>,
    /// Where a replay appended it: topic, partition, offset.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<serde_json::Value>>))]
    pub target: Option<(String, u32, u64)>,
}

/// One audit record: a replay, canary or purge (or a part of a large one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// The operation's id, shared by all its records; replayed records carry it in the
    /// `keel_replay_id` header.
    pub id: String,
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// What.
    pub action: AuditAction,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// The dead letters touched.
    pub items: Vec<AuditItem>,
    /// The command line (or caller description) that asked for it.
    pub command: String,
}

/// Why the audit log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Creating the audit topic failed.
    #[error("cannot create the audit topic '{AUDIT_TOPIC}': {0}")]
    Topic(#[from] TopicError),
    /// Reading it failed.
    #[error("cannot read the audit topic '{AUDIT_TOPIC}': {0}")]
    Read(#[from] ReadError),
    /// Appending to it failed.
    #[error("cannot append to the audit topic '{AUDIT_TOPIC}': {0}")]
    Append(#[from] AppendError),
    /// A record is not an audit entry (someone else wrote to the topic).
    #[error("audit topic '{AUDIT_TOPIC}' offset {offset} is not an audit entry: {reason}")]
    Corrupt {
        /// Its offset.
        offset: u64,
        /// The JSON error.
        reason: String,
    },
}

/// Dead letters already replayed or purged, by (dead-letter topic, partition, offset).
#[derive(Debug, Clone, Default)]
pub struct AuditState {
    replayed: HashSet<(String, u32, u64)>,
    purged: HashSet<(String, u32, u64)>,
}

impl AuditState {
    /// Whether a replay or canary named this dead letter.
    pub fn is_replayed(&self, topic: &str, partition: u32, offset: u64) -> bool {
        self.replayed
            .contains(&(topic.to_string(), partition, offset))
    }

    /// Whether a purge named this dead letter.
    pub fn is_purged(&self, topic: &str, partition: u32, offset: u64) -> bool {
        self.purged
            .contains(&(topic.to_string(), partition, offset))
    }
}

/// Every audit entry, oldest first; entries of `dead_letter_topic` only when given.
pub fn history(log: &Log, dead_letter_topic: Option<&str>) -> Result<Vec<AuditEntry>, AuditError> {
    let Some(topic) = log.topic(AUDIT_TOPIC) else {
        return Ok(Vec::new());
    };
    let partition = &topic.partitions()[0];
    let mut entries = Vec::new();
    scan::<AuditError>(partition, 0, u64::MAX, |record| {
        let value = record.value.unwrap_or_default();
        let entry: AuditEntry =
            serde_json::from_slice(&value).map_err(|e| AuditError::Corrupt {
                offset: record.offset,
                reason: e.to_string(),
            })?;
        if dead_letter_topic.is_none_or(|t| t == entry.dead_letter_topic) {
            entries.push(entry);
        }
        Ok(true)
    })?;
    Ok(entries)
}

/// What the audit log says about every dead letter.
pub fn state(log: &Log) -> Result<AuditState, AuditError> {
    let mut state = AuditState::default();
    for entry in history(log, None)? {
        let set = match entry.action {
            AuditAction::Replay | AuditAction::Canary => &mut state.replayed,
            AuditAction::Purge => &mut state.purged,
        };
        for item in entry.items {
            set.insert((entry.dead_letter_topic.clone(), item.partition, item.offset));
        }
    }
    Ok(state)
}

/// The entries of operation `id`, merged into one (items in order), if it exists.
pub fn entry(log: &Log, id: &str) -> Result<Option<AuditEntry>, AuditError> {
    let mut merged: Option<AuditEntry> = None;
    for entry in history(log, None)? {
        if entry.id != id {
            continue;
        }
        match &mut merged {
            Some(m) => m.items.extend(entry.items),
            None => merged = Some(entry),
        }
    }
    Ok(merged)
}

/// A new operation id: unique in this log because the log has one owner and the audit
/// topic's high watermark grows with every operation that records anything.
pub(crate) fn new_id(log: &Log, action: AuditAction, now_ms: i64) -> String {
    let sequence = log
        .topic(AUDIT_TOPIC)
        .map_or(0, |t| t.partitions()[0].high_watermark());
    format!("{}-{now_ms}-{sequence}", action.as_str())
}

/// Appends `entry`, split into records of at most [`AUDIT_ITEMS_PER_RECORD_MAX`] items.
/// An entry without items is written as one record (a no-op replay is still recorded).
pub(crate) fn record(log: &Log, entry: &AuditEntry) -> Result<(), AuditError> {
    let topic = audit_topic(log)?;
    let partition = &topic.partitions()[0];
    let chunks: Vec<&[AuditItem]> = if entry.items.is_empty() {
        vec![&[]]
    } else {
        entry.items.chunks(AUDIT_ITEMS_PER_RECORD_MAX).collect()
    };
    for chunk in chunks {
        let part = AuditEntry {
            items: chunk.to_vec(),
            ..entry.clone()
        };
        let value = serde_json::to_vec(&part).expect("audit entries serialize");
        partition.append(&[NewRecord {
            key: Some(Bytes::from(entry.dead_letter_topic.clone())),
            value: Some(Bytes::from(value)),
            headers: Vec::new(),
            timestamp_ms: Some(entry.time_ms),
        }])?;
    }
    Ok(())
}

fn audit_topic(log: &Log) -> Result<Arc<Topic>, AuditError> {
    if let Some(topic) = log.topic(AUDIT_TOPIC) {
        return Ok(topic);
    }
    match log.create_topic(AUDIT_TOPIC, TopicConfig::new(1)) {
        Ok(topic) => Ok(topic),
        Err(TopicError::AlreadyExists(_)) => log
            .topic(AUDIT_TOPIC)
            .ok_or_else(|| TopicError::NotFound(AUDIT_TOPIC.into()).into()),
        Err(error) => Err(error.into()),
    }
}
