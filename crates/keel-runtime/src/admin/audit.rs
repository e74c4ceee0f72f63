//! The operator audit log: every dead-letter replay and purge and every consumer group's
//! deletion, recorded as JSON records in the topic [`AUDIT_TOPIC`] (one partition), so
//! `keel dlq history` can say when, what and by which command — on every transport, through
//! the port (read with `AdminTransport::read`, appended with `PublishTransport::send_to`).
//!
//! The audit log is also the memory that makes replay safe: a dead letter named in a replay
//! entry is not replayed again (unless forced), and one named in a purge entry is hidden.
//! The name is a user topic name (the embedded log keeps `__` names for its own topics);
//! `keel.dlq.audit` does not end in `.dlq`, so it is never taken for a dead-letter topic.
//!
//! Record layout: key = the dead-letter topic (the group, for a group's deletion); value =
//! one [`AuditEntry`] as JSON. One
//! operation writes one or more records with the same `id`, each with at most
//! [`AUDIT_ITEMS_PER_RECORD_MAX`] items, so no record outgrows a batch limit. Ids are
//! random ([`new_id`]): several operators (or a server and a CLI on a Kafka cluster) may
//! write the log, so nothing about the log's length can make an id unique.

use std::collections::HashSet;

use bytes::Bytes;
use keel_core::{AdminTransport, NewRecord, PublishTransport, SendError, TransportError};
use serde::{Deserialize, Serialize};

use super::scan::scan;

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
    /// One dead letter replayed as a canary (see `replay::canary_outcome`).
    Canary,
    /// Dead letters marked purged: hidden from listing and never replayed.
    Purge,
    /// A consumer group deleted with its committed offsets (`groups::delete_group`); its
    /// items are the offsets it had, so they can be committed again.
    DeleteGroup,
    /// An action this build does not know, written by a newer Keel sharing the cluster (a
    /// CLI and a server of different versions): listed in the history, never acted on, so
    /// one newer entry cannot make every older reader of the log fail.
    #[serde(other)]
    Unrecognised,
}

impl AuditAction {
    /// Lower-case name, as in the JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditAction::Replay => "replay",
            AuditAction::Canary => "canary",
            AuditAction::Purge => "purge",
            AuditAction::DeleteGroup => "delete_group",
            AuditAction::Unrecognised => "unrecognised",
        }
    }
}

/// One dead letter an operation touched, or one committed offset a group's deletion removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditItem {
    /// The topic of a deleted group's offset; `None` for a dead letter (its topic is the
    /// entry's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Partition of the dead-letter topic (of `topic`, for a deleted group's offset).
    pub partition: u32,
    /// Offset in that partition (the committed offset, for a deleted group's).
    pub offset: u64,
    /// The event id, when the dead letter was a readable CloudEvent.
    pub event_id: Option<String>,
    /// The group that gave up on it.
    pub group: Option<String>,
    /// Where a replay appended it: topic, partition, offset.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<serde_json::Value>>))]
    pub target: Option<(String, u32, u64)>,
}

/// One audit record: a replay, canary, purge or group deletion (or a part of a large one).
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
    /// The dead-letter topic; empty for a group's deletion.
    #[serde(default)]
    pub dead_letter_topic: String,
    /// The group a [`AuditAction::DeleteGroup`] deleted; `None` for dead-letter actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The dead letters touched, or the deleted group's committed offsets.
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
    Topic(TransportError),
    /// Reading it failed.
    #[error("cannot read the audit topic '{AUDIT_TOPIC}': {0}")]
    Read(#[from] TransportError),
    /// Appending to it failed.
    #[error("cannot append to the audit topic '{AUDIT_TOPIC}': {0}")]
    Append(#[from] SendError),
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

impl AuditEntry {
    /// What the entry is about, as the audit pages show it: the dead-letter topic, or
    /// `group <name>` for a group's deletion.
    pub fn subject(&self) -> String {
        match &self.group {
            Some(group) => format!("group {group}"),
            None => self.dead_letter_topic.clone(),
        }
    }
}

/// Every audit entry, oldest first; entries of `dead_letter_topic` only when given.
pub async fn history(
    admin: &dyn AdminTransport,
    dead_letter_topic: Option<&str>,
) -> Result<Vec<AuditEntry>, AuditError> {
    let stored = match admin.partition_offsets(AUDIT_TOPIC).await {
        Ok(stored) => stored,
        // Nothing was ever replayed or purged.
        Err(TransportError::UnknownTopic { .. }) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut entries = Vec::new();
    let Some(stored) = stored.first() else {
        return Ok(Vec::new());
    };
    scan::<AuditError>(admin, AUDIT_TOPIC, stored, 0, u64::MAX, |record| {
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
    })
    .await?;
    Ok(entries)
}

/// What the audit log says about every dead letter.
pub async fn state(admin: &dyn AdminTransport) -> Result<AuditState, AuditError> {
    let mut state = AuditState::default();
    for entry in history(admin, None).await? {
        let set = match entry.action {
            AuditAction::Replay | AuditAction::Canary => &mut state.replayed,
            AuditAction::Purge => &mut state.purged,
            AuditAction::DeleteGroup | AuditAction::Unrecognised => continue,
        };
        for item in entry.items {
            set.insert((entry.dead_letter_topic.clone(), item.partition, item.offset));
        }
    }
    Ok(state)
}

/// The entries of operation `id`, merged into one (items in order), if it exists.
pub async fn entry(admin: &dyn AdminTransport, id: &str) -> Result<Option<AuditEntry>, AuditError> {
    let mut merged: Option<AuditEntry> = None;
    for entry in history(admin, None).await? {
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

/// A new operation id, `<action>-<ms>-<random>`: unique whoever else writes the audit log
/// at the same time, and still sorted by time at a glance.
pub fn new_id(action: AuditAction, now_ms: i64) -> String {
    format!(
        "{}-{now_ms}-{}",
        action.as_str(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Appends `entry`, split into records of at most [`AUDIT_ITEMS_PER_RECORD_MAX`] items,
/// creating the audit topic (one partition) when missing. An entry without items is
/// written as one record (a no-op replay is still recorded).
pub async fn record(
    admin: &dyn AdminTransport,
    publish: &dyn PublishTransport,
    entry: &AuditEntry,
) -> Result<(), AuditError> {
    ensure_topic(admin).await?;
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
        let key = entry.group.as_ref().unwrap_or(&entry.dead_letter_topic);
        let record = NewRecord {
            key: Some(Bytes::from(key.clone())),
            value: Some(Bytes::from(value)),
            headers: Vec::new(),
            timestamp_ms: Some(entry.time_ms),
        };
        publish.send_to(AUDIT_TOPIC, 0, record).await?;
    }
    Ok(())
}

/// Creates the audit topic (one partition) when missing. A replay calls it before it
/// appends anything, so a transport that refuses the audit log refuses the replay whole.
pub async fn ensure_topic(admin: &dyn AdminTransport) -> Result<(), AuditError> {
    admin
        .create_topic(AUDIT_TOPIC, 1)
        .await
        .map(drop)
        .map_err(AuditError::Topic)
}
