//! Dead letters: the `<topic>.dlq` record of an event the router gave up on, its
//! `keel_dlq_*` headers, and the [`DeadLetter`] report passed to the alert hook.
//!
//! A dead letter keeps the original key, value and headers (the `ce_*` attributes included,
//! so the event id survives a replay) and adds the headers below. Any `keel_dlq_*` headers
//! the event already carried (from an earlier dead-lettering) are replaced, not repeated.
//!
//! Not here: the decision to dead-letter (`pipeline.rs`), or replay and purge tooling.

use std::sync::Arc;

use bytes::Bytes;
use keel_log::{Header, Log, NewRecord, Record, Topic, TopicConfig, TopicError};

use crate::limits::{DLQ_ERROR_BYTES_MAX, DLQ_SUFFIX};

/// Header: the topic the event was read from.
pub const DLQ_TOPIC_HEADER: &str = "keel_dlq_topic";
/// Header: the partition the event was read from (decimal).
pub const DLQ_PARTITION_HEADER: &str = "keel_dlq_partition";
/// Header: the event's offset in that partition (decimal).
pub const DLQ_OFFSET_HEADER: &str = "keel_dlq_offset";
/// Header: the consumer group that gave up.
pub const DLQ_GROUP_HEADER: &str = "keel_dlq_group";
/// Header: the handler that gave up.
pub const DLQ_HANDLER_HEADER: &str = "keel_dlq_handler";
/// Header: handler attempts made (decimal; 0 when the event could not be decoded).
pub const DLQ_ATTEMPTS_HEADER: &str = "keel_dlq_attempts";
/// Header: wall-clock time of the first failure, milliseconds since the Unix epoch.
pub const DLQ_FIRST_FAILURE_HEADER: &str = "keel_dlq_first_failure_ms";
/// Header: wall-clock time of the last failure, milliseconds since the Unix epoch.
pub const DLQ_LAST_FAILURE_HEADER: &str = "keel_dlq_last_failure_ms";
/// Header: the last error message, one line, at most [`DLQ_ERROR_BYTES_MAX`] bytes.
pub const DLQ_ERROR_HEADER: &str = "keel_dlq_error";
/// Header: `transient` (attempts ran out), `permanent` (the handler said so) or `decode`
/// (not a CloudEvent, or not the event type the handler reads).
pub const DLQ_ERROR_KIND_HEADER: &str = "keel_dlq_error_kind";

/// The dead-letter topic of `topic`: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterKind {
    /// Every attempt failed with a transient error (timeouts and panics included).
    Transient,
    /// The handler returned a permanent error.
    Permanent,
    /// The record is not a valid CloudEvent, or not one the handler can decode (another
    /// type, a newer schema version, data that does not fit): it never reached the handler.
    Decode,
}

impl DeadLetterKind {
    /// The value of the `keel_dlq_error_kind` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterKind::Transient => "transient",
            DeadLetterKind::Permanent => "permanent",
            DeadLetterKind::Decode => "decode",
        }
    }
}

/// A report of one dead letter, given to the alert hook
/// ([`Router::on_dead_letter`](crate::Router::on_dead_letter)) after the dead letter is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event id, when the record was a readable CloudEvent.
    pub event_id: Option<String>,
    /// The topic the event was read from.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// The consumer group.
    pub group: String,
    /// The handler.
    pub handler: String,
    /// Attempts made.
    pub attempts: u32,
    /// First failure, ms since the Unix epoch.
    pub first_failure_ms: i64,
    /// Last failure, ms since the Unix epoch.
    pub last_failure_ms: i64,
    /// The last error message.
    pub error: String,
    /// Why it was given up.
    pub kind: DeadLetterKind,
    /// The dead-letter topic it was written to.
    pub dead_letter_topic: String,
    /// Its offset there.
    pub dead_letter_offset: u64,
    /// Whether this is the first dead letter of this group on this topic since the router
    /// started: the moment to page someone.
    pub first_in_group: bool,
}

/// The alert hook: called once per stored dead letter, on the partition's task, so keep it
/// short (hand work to a channel). A panic in it is caught and logged.
pub type DeadLetterHook = Arc<dyn Fn(&DeadLetter) + Send + Sync>;

/// The dead-letter topic of `source`, created with the source's partition count and fsync
/// policy if it does not exist yet.
pub(crate) fn ensure_topic(log: &Log, source: &Topic) -> Result<Arc<Topic>, TopicError> {
    let name = dead_letter_topic(source.name());
    if let Some(topic) = log.topic(&name) {
        return Ok(topic);
    }
    let config = TopicConfig::new(source.config().partitions).with_fsync(source.config().fsync);
    match log.create_topic(&name, config) {
        Ok(topic) => Ok(topic),
        // Another partition's worker created it first.
        Err(TopicError::AlreadyExists(_)) => log.topic(&name).ok_or(TopicError::NotFound(name)),
        Err(error) => Err(error),
    }
}

/// The dead-letter record of `record`: its key, value and headers unchanged except for the
/// `keel_dlq_*` headers, which are set from `report`.
pub(crate) fn dead_letter_record(record: &Record, report: &DeadLetter, now_ms: i64) -> NewRecord {
    let mut headers: Vec<Header> = record
        .headers
        .iter()
        .filter(|h| !h.key.starts_with("keel_dlq_"))
        .cloned()
        .collect();
    let mut error = report.error.replace(['\n', '\r'], " ");
    if error.len() > DLQ_ERROR_BYTES_MAX {
        let mut cut = DLQ_ERROR_BYTES_MAX;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    let added = [
        (DLQ_TOPIC_HEADER, report.topic.clone()),
        (DLQ_PARTITION_HEADER, report.partition.to_string()),
        (DLQ_OFFSET_HEADER, report.offset.to_string()),
        (DLQ_GROUP_HEADER, report.group.clone()),
        (DLQ_HANDLER_HEADER, report.handler.clone()),
        (DLQ_ATTEMPTS_HEADER, report.attempts.to_string()),
        (
            DLQ_FIRST_FAILURE_HEADER,
            report.first_failure_ms.to_string(),
        ),
        (DLQ_LAST_FAILURE_HEADER, report.last_failure_ms.to_string()),
        (DLQ_ERROR_HEADER, error),
        (DLQ_ERROR_KIND_HEADER, report.kind.as_str().to_string()),
    ];
    headers.extend(added.into_iter().map(|(key, value)| Header {
        key: key.to_string(),
        value: Some(Bytes::from(value)),
    }));
    NewRecord {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
        timestamp_ms: Some(now_ms),
    }
}
