//! Replaying dead letters, on every transport: back to their original topic, or straight
//! to the group that gave up on them, with a canary first if asked — written once over the
//! ports (`AdminTransport` reads the dead letters, the audit log and the group's commits;
//! `PublishTransport` appends the replayed events and the audit records).
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
//!   ([`crate::redelivery`]): that group's router handles it with a full set of attempts,
//!   every other group skips it unread.
//! - **Bounded.** [`plan_replay`] takes each dead-letter partition's high watermark; the
//!   replay never reads past it, so events that fail again while it runs do not loop.
//! - **Whole events only.** A dead letter marked [`IncompletePayload`](crate::IncompletePayload) (its data was dropped
//!   to fit, or it stands in for unreadable bytes) is refused and counted, with where the
//!   original is kept: replaying it would publish an event that is not the one that failed.
//! - **Once.** Every replayed dead letter is named in the audit log ([`super::audit`]) and
//!   skipped by later replays unless forced. The replayed record is appended before its
//!   audit record: a crash between the two can replay a dead letter twice, which the kept
//!   event id lets an inbox absorb, but can never lose one. Two replays of the same dead
//!   letters running at the same moment (two operators on one Kafka cluster) can both
//!   replay them, for the same reason absorbed by an inbox.
//! - **Canary first.** A canary replay appends one event; [`canary_outcome`] then tells
//!   whether the group that gave up on it has now handled it (its committed offset passed
//!   the replayed record) or it landed in the dead letters again.

use bytes::Bytes;
use keel_core::{AdminTransport, Header, NewRecord, PublishTransport, TopicInfo, header_text};
use serde::{Deserialize, Serialize};

use super::audit::{self, AuditAction, AuditEntry, AuditItem};
use super::dead_letters::{
    DeadLetterError, DeadLetterFilter, DeadLetterStatus, REPLAY_ID_HEADER, REPLAY_OF_HEADER,
    StoredDeadLetter, each_dead_letter, resolve_topic,
};
use super::scan::scan;
use crate::DeadLetterHeaders;
use crate::limits::RETRY_SUFFIX;
use crate::redelivery::{Redelivery, is_redelivery_header, retry_topic};

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

/// Plans a replay of the dead letters of `topic` matching `filter`, bounded by the
/// dead-letter partitions' current high watermarks.
pub async fn plan_replay(
    admin: &dyn AdminTransport,
    topic: &str,
    filter: DeadLetterFilter,
    force: bool,
    canary: bool,
    command: impl Into<String>,
) -> Result<ReplayPlan, DeadLetterError> {
    let topic = resolve_topic(admin, topic).await?;
    let mut bound = vec![0; topic.partitions as usize];
    for stored in admin.partition_offsets(&topic.name).await? {
        if let Some(b) = bound.get_mut(stored.partition as usize) {
            *b = stored.high_watermark;
        }
    }
    Ok(ReplayPlan {
        dead_letter_topic: topic.name,
        bound,
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
pub async fn replay(
    admin: &dyn AdminTransport,
    publish: &dyn PublishTransport,
    plan: &ReplayPlan,
    now_ms: i64,
) -> Result<ReplayReport, DeadLetterError> {
    let topic = resolve_topic(admin, &plan.dead_letter_topic).await?;
    let state = audit::state(admin).await?;
    let action = if plan.canary {
        AuditAction::Canary
    } else {
        AuditAction::Replay
    };
    let id = audit::new_id(action, now_ms);
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
    // The scan cannot await inside its callback, so it picks the dead letters to replay;
    // they are appended afterwards, in the same order.
    let mut chosen: Vec<(StoredDeadLetter, DeadLetterHeaders)> = Vec::new();
    each_dead_letter(admin, &topic, &state, Some(&plan.bound), |dead_letter| {
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
        chosen.push((dead_letter, headers));
        Ok(!plan.canary)
    })
    .await?;
    let entry = |items: Vec<AuditItem>| AuditEntry {
        id: id.clone(),
        time_ms: now_ms,
        action,
        dead_letter_topic: plan.dead_letter_topic.clone(),
        group: None,
        items,
        command: plan.command.clone(),
    };
    audit::ensure_topic(admin).await?;
    let topics = admin.topics().await?;
    let mut pending_audit: Vec<AuditItem> = Vec::new();
    let mut recorded_any = false;
    for (dead_letter, headers) in &chosen {
        let one = ReplayOne {
            dead_letter,
            headers,
            id: &id,
            target_group: plan.target_group.as_deref(),
            now_ms,
        };
        let item = one.append(publish, &topics).await?;
        report.replayed.push(item.clone());
        pending_audit.push(item);
        if pending_audit.len() >= audit::AUDIT_ITEMS_PER_RECORD_MAX {
            audit::record(admin, publish, &entry(std::mem::take(&mut pending_audit))).await?;
            recorded_any = true;
        }
    }
    if !pending_audit.is_empty() || !recorded_any {
        audit::record(admin, publish, &entry(pending_audit)).await?;
    }
    Ok(report)
}

/// Where the canary replay `id` stands: back in the dead letters, handled by the group that
/// gave up on it, or not yet handled. The group must be running for the answer to change.
pub async fn canary_outcome(
    admin: &dyn AdminTransport,
    id: &str,
) -> Result<CanaryOutcome, DeadLetterError> {
    let entry = audit::entry(admin, id)
        .await?
        .filter(|e| e.action == AuditAction::Canary)
        .ok_or_else(|| DeadLetterError::CanaryNotFound(id.to_string()))?;
    let Some(item) = entry.items.first() else {
        // The canary matched nothing; there is nothing to wait for.
        return Ok(CanaryOutcome::Handled);
    };
    let dlq = resolve_topic(admin, &entry.dead_letter_topic).await?;
    if let Some((_, partition, offset)) = last_of_replay(admin, &dlq, id).await? {
        return Ok(CanaryOutcome::DeadLettered { partition, offset });
    }
    let (Some(target), Some(group)) = (&item.target, &item.group) else {
        return Ok(CanaryOutcome::Pending);
    };
    // A failed attempt of a route with retry topics moves the event on to `<topic>.retry`;
    // the canary is handled only once the group passed its last redelivery there too.
    let retry = if target.0.ends_with(RETRY_SUFFIX) {
        target.0.clone()
    } else {
        retry_topic(&target.0)
    };
    let redelivered = match admin.topics().await?.into_iter().find(|t| t.name == retry) {
        Some(retry) => last_of_replay(admin, &retry, id).await?,
        None => None,
    };
    let (topic, partition, offset) = redelivered.unwrap_or_else(|| target.clone());
    let committed = admin
        .committed(group)
        .await?
        .into_iter()
        .find(|c| c.topic == topic && c.partition == partition)
        .map_or(0, |c| c.offset);
    Ok(if committed > offset {
        CanaryOutcome::Handled
    } else {
        CanaryOutcome::Pending
    })
}

/// The last record of `topic` carrying the replay `id` (the highest offset of the highest
/// partition holding one), as (topic, partition, offset).
async fn last_of_replay(
    admin: &dyn AdminTransport,
    topic: &TopicInfo,
    id: &str,
) -> Result<Option<(String, u32, u64)>, DeadLetterError> {
    let mut last: Option<(String, u32, u64)> = None;
    for stored in admin.partition_offsets(&topic.name).await? {
        let partition = stored.partition;
        scan::<DeadLetterError>(admin, &topic.name, &stored, 0, u64::MAX, |record| {
            if header_text(&record.headers, REPLAY_ID_HEADER) == Some(id) {
                last = Some((topic.name.clone(), partition, record.offset));
            }
            Ok(true)
        })
        .await?;
    }
    Ok(last)
}

/// One dead letter to append back where it came from, or to the redelivery topic addressed
/// to `target_group`.
struct ReplayOne<'a> {
    dead_letter: &'a StoredDeadLetter,
    headers: &'a DeadLetterHeaders,
    id: &'a str,
    target_group: Option<&'a str>,
    now_ms: i64,
}

impl ReplayOne<'_> {
    /// Appends the dead letter; returns its audit item. `topics` are the transport's topics.
    async fn append(
        &self,
        publish: &dyn PublishTransport,
        topics: &[TopicInfo],
    ) -> Result<AuditItem, DeadLetterError> {
        let origin = &self.headers.topic;
        let mut target = topics
            .iter()
            .find(|t| &t.name == origin)
            .cloned()
            .ok_or_else(|| DeadLetterError::TargetNotFound(origin.clone()))?;
        if self.target_group.is_some() {
            let name = retry_topic(origin);
            let partitions = publish
                .ensure_companion(origin, &name)
                .await
                .map_err(|source| DeadLetterError::RedeliveryTopic {
                    topic: name.clone(),
                    source,
                })?;
            target = TopicInfo { name, partitions };
        }
        let record = NewRecord {
            key: self.dead_letter.record.key.clone(),
            value: self.dead_letter.record.value.clone(),
            headers: self.replay_headers(),
            timestamp_ms: None,
        };
        // The partition the event came from keeps its key's order; a topic shrunk since (or
        // a redelivery topic of fewer partitions) gets it where its key maps.
        let published = if self.headers.partition < target.partitions {
            publish
                .send_to(&target.name, self.headers.partition, record)
                .await?
        } else {
            publish.send(&target.name, record).await?
        };
        Ok(AuditItem {
            topic: None,
            partition: self.dead_letter.partition,
            offset: self.dead_letter.offset,
            event_id: self.dead_letter.event_id.clone(),
            group: Some(self.headers.group.clone()),
            target: Some((published.topic, published.partition, published.offset)),
        })
    }

    /// The dead letter's headers without the `keel_dlq_*` ones and any earlier replay's,
    /// plus this replay's, plus a redelivery addressed to the target group.
    fn replay_headers(&self) -> Vec<Header> {
        let dead_letter = self.dead_letter;
        let mut headers: Vec<Header> = dead_letter
            .record
            .headers
            .iter()
            .filter(|h| {
                !h.key.starts_with("keel_dlq_")
                    && h.key != REPLAY_OF_HEADER
                    && h.key != REPLAY_ID_HEADER
            })
            .cloned()
            .collect();
        let replay_of = format!(
            "{}/{}/{}",
            dead_letter.dead_letter_topic, dead_letter.partition, dead_letter.offset
        );
        headers.push(Header::new(REPLAY_OF_HEADER, Some(Bytes::from(replay_of))));
        headers.push(Header::new(
            REPLAY_ID_HEADER,
            Some(Bytes::from(self.id.to_string())),
        ));
        if let Some(group) = self.target_group {
            let redelivery = Redelivery {
                group: group.to_string(),
                attempts: 0,
                due_ms: self.now_ms,
                topic: self.headers.topic.clone(),
                partition: self.headers.partition,
                offset: self.headers.offset,
                first_failure_ms: None,
            };
            headers.retain(|h| !is_redelivery_header(&h.key));
            headers.extend(redelivery.encode());
        }
        headers
    }
}
