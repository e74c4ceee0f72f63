//! Dead letters: the `<topic>.dlq` record of an event the router gave up on, its
//! `keel_dlq_*` headers ([`DeadLetterHeaders`], encoded and decoded here, next to each
//! other), and the [`DeadLetter`] report passed to the alert hook, which embeds them.
//!
//! A dead letter keeps the original key, value and headers (the `ce_*` attributes included,
//! so the event id survives a replay) and adds the headers below. Any `keel_dlq_*` headers
//! the event already carried (from an earlier dead-lettering) are replaced, not repeated.
//!
//! Not here: the decision to dead-letter (`pipeline.rs`), or replay and purge tooling
//! (`keel dlq`, `keel_embedded::admin::dead_letters`, which reads the headers with
//! [`DeadLetterHeaders::decode`]).

use std::sync::Arc;

use bytes::Bytes;
use keel_core::{Event, Header, HeaderName, NewRecord, Record, TraceParent, header_text};
use serde::Serialize;

use crate::limits::{DLQ_ERROR_BYTES_MAX, DLQ_SUFFIX};
use crate::publisher::event_record;
use crate::redelivery::is_redelivery_header;

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

/// Header: set when the dead letter does not hold its event whole, so a replay would
/// publish something else than what failed: `dropped` (its data was removed so the dead
/// letter would fit) or `unreadable` (the stored bytes were no CloudEvent and are kept as
/// the data of a stand-in event). See [`IncompletePayload`].
pub const DLQ_PAYLOAD_HEADER: &str = "keel_dlq_payload";
/// Header: where the whole original is kept when [`DLQ_PAYLOAD_HEADER`] is set, in words an
/// operator can act on (`keel_outbox_dead row 12`).
pub const DLQ_ORIGINAL_HEADER: &str = "keel_dlq_original";

/// The dead-letter topic of `topic`: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Why an event was dead-lettered. Serializes as [`DeadLetterKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

    /// The kind a `keel_dlq_error_kind` header value names, if any.
    pub fn parse(text: &str) -> Option<DeadLetterKind> {
        match text {
            "transient" => Some(DeadLetterKind::Transient),
            "permanent" => Some(DeadLetterKind::Permanent),
            "decode" => Some(DeadLetterKind::Decode),
            _ => None,
        }
    }
}

/// How a dead letter's event differs from the one that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PayloadLoss {
    /// The event's data was removed (the whole event did not fit the dead-letter topic).
    Dropped,
    /// The stored bytes were not a CloudEvent; a stand-in event carries them as its data.
    Unreadable,
}

impl PayloadLoss {
    /// The value of the `keel_dlq_payload` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            PayloadLoss::Dropped => "dropped",
            PayloadLoss::Unreadable => "unreadable",
        }
    }

    fn parse(text: &str) -> Option<PayloadLoss> {
        match text {
            "dropped" => Some(PayloadLoss::Dropped),
            "unreadable" => Some(PayloadLoss::Unreadable),
            _ => None,
        }
    }
}

/// A dead letter that must not be replayed as it is: what it lost and where the whole
/// original is kept. Stored as the `keel_dlq_payload` and `keel_dlq_original` headers; the
/// replay tools refuse such a dead letter and point to the original instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompletePayload {
    /// What the dead letter lost.
    pub loss: PayloadLoss,
    /// Where the whole original is kept.
    pub original: String,
}

impl IncompletePayload {
    /// The two headers.
    pub fn encode(&self) -> Vec<Header> {
        text_headers([
            (DLQ_PAYLOAD_HEADER, self.loss.as_str().to_string()),
            (DLQ_ORIGINAL_HEADER, self.original.clone()),
        ])
    }

    /// The mark among `headers`, if the dead letter carries one. An unknown loss is read as
    /// [`PayloadLoss::Dropped`]: a dead letter marked incomplete is never replayed.
    pub fn decode(headers: &[Header]) -> Option<IncompletePayload> {
        let loss = header_text(headers, DLQ_PAYLOAD_HEADER)?;
        Some(IncompletePayload {
            loss: PayloadLoss::parse(loss).unwrap_or(PayloadLoss::Dropped),
            original: header_text(headers, DLQ_ORIGINAL_HEADER)
                .unwrap_or("unknown")
                .to_string(),
        })
    }
}

/// What a dead letter records about the event it holds, stored as its `keel_dlq_*` headers:
/// where the event was read from, who gave up on it, when and why. The router writes them
/// ([`encode`](DeadLetterHeaders::encode)); the operator tools read them back
/// ([`decode`](DeadLetterHeaders::decode)); the alert hook's [`DeadLetter`] carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterHeaders {
    /// The topic the event was read from.
    pub topic: String,
    /// Its partition there.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// The consumer group that gave up.
    pub group: String,
    /// The handler that gave up.
    pub handler: String,
    /// Handler attempts made (0 when the event could not be decoded).
    pub attempts: u32,
    /// First failure, ms since the Unix epoch.
    pub first_failure_ms: i64,
    /// Last failure, ms since the Unix epoch.
    pub last_failure_ms: i64,
    /// The last error message.
    pub error: String,
    /// Why it was given up.
    pub kind: DeadLetterKind,
}

impl DeadLetterHeaders {
    /// The `keel_dlq_*` headers, one per field. The error is cut to one line of at most
    /// [`DLQ_ERROR_BYTES_MAX`] bytes.
    pub fn encode(&self) -> Vec<Header> {
        let mut error = self.error.replace(['\n', '\r'], " ");
        if error.len() > DLQ_ERROR_BYTES_MAX {
            let mut cut = DLQ_ERROR_BYTES_MAX;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
        }
        let headers = [
            (DLQ_TOPIC_HEADER, self.topic.clone()),
            (DLQ_PARTITION_HEADER, self.partition.to_string()),
            (DLQ_OFFSET_HEADER, self.offset.to_string()),
            (DLQ_GROUP_HEADER, self.group.clone()),
            (DLQ_HANDLER_HEADER, self.handler.clone()),
            (DLQ_ATTEMPTS_HEADER, self.attempts.to_string()),
            (DLQ_FIRST_FAILURE_HEADER, self.first_failure_ms.to_string()),
            (DLQ_LAST_FAILURE_HEADER, self.last_failure_ms.to_string()),
            (DLQ_ERROR_HEADER, error),
            (DLQ_ERROR_KIND_HEADER, self.kind.as_str().to_string()),
        ];
        text_headers(headers)
    }

    /// Decodes the `keel_dlq_*` headers among `headers`; `None` if one is missing or
    /// malformed (the record was not written by the router).
    pub fn decode(headers: &[Header]) -> Option<DeadLetterHeaders> {
        let text = |name| header_text(headers, name);
        Some(DeadLetterHeaders {
            topic: text(DLQ_TOPIC_HEADER)?.to_string(),
            partition: text(DLQ_PARTITION_HEADER)?.parse().ok()?,
            offset: text(DLQ_OFFSET_HEADER)?.parse().ok()?,
            group: text(DLQ_GROUP_HEADER)?.to_string(),
            handler: text(DLQ_HANDLER_HEADER)?.to_string(),
            attempts: text(DLQ_ATTEMPTS_HEADER)?.parse().ok()?,
            first_failure_ms: text(DLQ_FIRST_FAILURE_HEADER)?.parse().ok()?,
            last_failure_ms: text(DLQ_LAST_FAILURE_HEADER)?.parse().ok()?,
            error: text(DLQ_ERROR_HEADER)?.to_string(),
            kind: DeadLetterKind::parse(text(DLQ_ERROR_KIND_HEADER)?)?,
        })
    }
}

/// A report of one dead letter, given to the alert hook
/// ([`Router::on_dead_letter`](crate::Router::on_dead_letter)) after the dead letter is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event id, when the record was a readable CloudEvent.
    pub event_id: Option<String>,
    /// Where the event came from, who gave up on it and why: what the dead letter's
    /// `keel_dlq_*` headers say.
    pub headers: DeadLetterHeaders,
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

/// Headers with text values, from (name, value) pairs: how every `keel_*` header set is
/// encoded.
pub(crate) fn text_headers<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Vec<Header> {
    fields
        .into_iter()
        .map(|(key, value)| Header::new(HeaderName::interned(key), Some(Bytes::from(value))))
        .collect()
}

/// The dead-letter record of `record`: its key, value and headers unchanged except for the
/// `keel_dlq_*` headers, which are replaced by `dead_letter`'s, and a redelivery's
/// `keel_retry_*` headers, which are dropped (the dead letter names the original origin).
pub(crate) fn dead_letter_record(
    record: &Record,
    dead_letter: &DeadLetterHeaders,
    now_ms: i64,
) -> NewRecord {
    let mut headers: Vec<Header> = record
        .headers
        .iter()
        .filter(|h| !h.key.starts_with("keel_dlq_") && !is_redelivery_header(&h.key))
        .cloned()
        .collect();
    headers.extend(dead_letter.encode());
    NewRecord {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
        timestamp_ms: Some(now_ms),
    }
}

/// The dead-letter record of an event that was never published (what a forwarder such as
/// the outbox relay gives up on, through `PublishPort::publish_dead_letter`): the event's
/// record, with a root trace if it has none, plus `headers`. Every transport's port builds
/// it here, so their dead letters are the same bytes.
pub fn unpublished_dead_letter_record(
    mut event: Event,
    headers: Vec<(String, Vec<u8>)>,
) -> NewRecord {
    if event.traceparent.is_none() {
        event.traceparent = Some(TraceParent::new_root());
    }
    let mut record = event_record(&event);
    record.headers.extend(
        headers
            .into_iter()
            .map(|(key, value)| Header::new(key, Some(Bytes::from(value)))),
    );
    record
}
