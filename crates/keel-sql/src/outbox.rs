//! The transactional outbox's part that does not depend on the database: what a stored row
//! is ([`OutboxRow`]), how the relay publishes a claimed batch while keeping per-key order
//! ([`publish_rows`]), what it then writes back for each row ([`Settlement`], decided by
//! [`settle`]), the dead-letter record of a row moved aside, the relay's options and its
//! metrics.
//!
//! Not here: SQL (`postgres/outbox.rs`, `sqlite_outbox.rs`) and the relay's loop
//! (`relay.rs`). Everything here is a pure function of its inputs or a metric, so the
//! decisions can be tested without a database.
//!
//! # Decision table for one claimed row
//!
//! | publish outcome | attempts so far (incl. this) | written back |
//! |---|---|---|
//! | acknowledged | any | published: marked (`published_at`) or deleted, per [`AfterPublish`] |
//! | transient failure (transport down, topic missing, outcome unknown) | any | stays pending; `retry_at` = now + backoff(attempts); later rows of its key wait |
//! | rejected (too large, invalid) | < `rejected_attempts_max` | as transient |
//! | rejected | ≥ `rejected_attempts_max` | moved aside (dead) with the reason; the key's later rows go on |
//! | stored envelope unreadable | any | moved aside at once (no transport can take it) |
//! | not attempted (an earlier row of its key failed in this batch) | unchanged | nothing: claimed again next time, after that row |

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use keel_core::{Event, PortError, PortErrorKind, PublishPort};
use keel_runtime::{DeadLetterHeaders, DeadLetterKind, IncompletePayload, PayloadLoss};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::limits::{
    ENQUEUE_BATCH_MAX, ENVELOPE_BYTES_MAX, PUBLISHED_RETENTION_DEFAULT, RELAY_BATCH_ROWS_DEFAULT,
    RELAY_BATCH_ROWS_MAX, RELAY_HOUSEKEEPING_INTERVAL_DEFAULT, RELAY_POLL_INTERVAL_DEFAULT,
    RELAY_POLL_INTERVAL_MAX, RELAY_REJECTED_ATTEMPTS_DEFAULT, RELAY_REJECTED_ATTEMPTS_MAX,
    RELAY_RETRY_DELAY_MAX, RELAY_RETRY_DELAY_MAX_DEFAULT, RELAY_RETRY_DELAY_MIN_DEFAULT,
};

/// The consumer group named in the `keel_dlq_group` header of an outbox dead letter, so
/// `keel dlq` tells them apart from consumers' dead letters.
pub const OUTBOX_DEAD_LETTER_GROUP: &str = "keel-outbox";

/// What the relay does with a row once the transport acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterPublish {
    /// Set `published_at` and keep the row for [`RelayOptions::published_retention`]
    /// (an audit trail of what was sent, and when), then delete it.
    #[default]
    MarkPublished,
    /// Delete the row at once: the smallest table, no trail.
    Delete,
}

/// Settings of a relay, each with a default and a range checked by [`RelayOptions::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOptions {
    /// Most rows claimed per transaction, 1..=[`RELAY_BATCH_ROWS_MAX`].
    pub batch_rows_max: usize,
    /// Longest wait between two looks at the outbox when nothing woke the relay (on
    /// PostgreSQL, `LISTEN`/`NOTIFY` usually wakes it first), at most
    /// [`RELAY_POLL_INTERVAL_MAX`].
    pub poll_interval: Duration,
    /// Mark or delete published rows.
    pub after_publish: AfterPublish,
    /// How long marked rows are kept before the relay deletes them.
    pub published_retention: Duration,
    /// How often the relay refreshes its backlog metrics, deletes old published rows and
    /// copies dead rows to the dead-letter topic.
    pub housekeeping_interval: Duration,
    /// Attempts a row the transport *rejects* gets before it is moved aside,
    /// 1..=[`RELAY_REJECTED_ATTEMPTS_MAX`].
    pub rejected_attempts_max: u32,
    /// First delay before a failed row (or a failed database call) is tried again; doubles
    /// per attempt up to `retry_delay_max`.
    pub retry_delay_min: Duration,
    /// Longest delay between two attempts, at most [`RELAY_RETRY_DELAY_MAX`].
    pub retry_delay_max: Duration,
    /// The relay's name in logs and in the `keel_dlq_handler` header of its dead letters.
    pub name: String,
    /// PostgreSQL: wake on `NOTIFY` from committing enqueues (the default). Off, the relay
    /// only polls — for connections that cannot `LISTEN` (a transaction-pooling proxy), and
    /// as the baseline of the relay-delay benchmark. SQLite always polls.
    pub wake_on_notify: bool,
}

impl Default for RelayOptions {
    fn default() -> RelayOptions {
        RelayOptions {
            batch_rows_max: RELAY_BATCH_ROWS_DEFAULT,
            poll_interval: RELAY_POLL_INTERVAL_DEFAULT,
            after_publish: AfterPublish::default(),
            published_retention: PUBLISHED_RETENTION_DEFAULT,
            housekeeping_interval: RELAY_HOUSEKEEPING_INTERVAL_DEFAULT,
            rejected_attempts_max: RELAY_REJECTED_ATTEMPTS_DEFAULT,
            retry_delay_min: RELAY_RETRY_DELAY_MIN_DEFAULT,
            retry_delay_max: RELAY_RETRY_DELAY_MAX_DEFAULT,
            name: "relay".to_string(),
            wake_on_notify: true,
        }
    }
}

/// An option out of its range, named as `options.field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relay option '{setting}': {reason}")]
pub struct RelayOptionError {
    /// The option.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl RelayOptions {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), RelayOptionError> {
        let check = |ok: bool, setting: &'static str, reason: String| {
            if ok {
                Ok(())
            } else {
                Err(RelayOptionError { setting, reason })
            }
        };
        check(
            (1..=RELAY_BATCH_ROWS_MAX).contains(&self.batch_rows_max),
            "options.batch_rows_max",
            format!(
                "{} is not in 1..={RELAY_BATCH_ROWS_MAX}",
                self.batch_rows_max
            ),
        )?;
        check(
            !self.poll_interval.is_zero() && self.poll_interval <= RELAY_POLL_INTERVAL_MAX,
            "options.poll_interval",
            format!(
                "{:?} is not in (0, {RELAY_POLL_INTERVAL_MAX:?}]",
                self.poll_interval
            ),
        )?;
        check(
            !self.housekeeping_interval.is_zero(),
            "options.housekeeping_interval",
            "must be above zero".to_string(),
        )?;
        check(
            (1..=RELAY_REJECTED_ATTEMPTS_MAX).contains(&self.rejected_attempts_max),
            "options.rejected_attempts_max",
            format!(
                "{} is not in 1..={RELAY_REJECTED_ATTEMPTS_MAX}",
                self.rejected_attempts_max
            ),
        )?;
        check(
            !self.retry_delay_min.is_zero()
                && self.retry_delay_min <= self.retry_delay_max
                && self.retry_delay_max <= RELAY_RETRY_DELAY_MAX,
            "options.retry_delay_min",
            format!(
                "need 0 < retry_delay_min ({:?}) <= retry_delay_max ({:?}) <= {RELAY_RETRY_DELAY_MAX:?}",
                self.retry_delay_min, self.retry_delay_max
            ),
        )?;
        check(
            !self.name.is_empty() && !self.name.contains(['\n', '\r']),
            "options.name",
            "must be one non-empty line".to_string(),
        )
    }

    /// The delay before attempt `attempts + 1` of something that failed `attempts` times.
    pub(crate) fn retry_delay(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.retry_delay_min
            .saturating_mul(factor)
            .min(self.retry_delay_max)
    }
}

/// Why an event could not be enqueued. Nothing was written; the caller's transaction is
/// still usable unless the error is [`EnqueueError::Database`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The event breaks a CloudEvents rule.
    #[error("cannot enqueue event for topic '{topic}': {source}")]
    InvalidEvent {
        /// The topic.
        topic: String,
        /// What is wrong.
        source: keel_core::EnvelopeError,
    },
    /// The topic name is empty or not one line.
    #[error("cannot enqueue event {event_id}: topic name {topic:?} is empty or not one line")]
    InvalidTopic {
        /// The event.
        event_id: String,
        /// The topic as given.
        topic: String,
    },
    /// The stored envelope would exceed [`ENVELOPE_BYTES_MAX`].
    #[error(
        "cannot enqueue event {event_id}: its envelope is {size} bytes, above {ENVELOPE_BYTES_MAX}"
    )]
    TooLarge {
        /// The event.
        event_id: String,
        /// Its envelope's size.
        size: usize,
    },
    /// More than [`ENQUEUE_BATCH_MAX`] events in one call.
    #[error("cannot enqueue {count} events in one call; at most {ENQUEUE_BATCH_MAX}")]
    BatchTooLarge {
        /// Events given.
        count: usize,
    },
    /// The database refused the insert; the transaction should be rolled back.
    #[error("cannot enqueue: {0}")]
    Database(String),
}

/// One event ready to store: validated, given a trace, encoded.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) topic: String,
    pub(crate) event_id: String,
    pub(crate) partition_key: Option<String>,
    pub(crate) bytes: Vec<u8>,
}

/// Validates `event` for `topic` and encodes it in structured mode (JSON), the form the
/// outbox stores. An event without a trace gets a root `traceparent` here, so the trace
/// starts in the transaction that caused it.
pub(crate) fn envelope(topic: &str, event: &Event) -> Result<Envelope, EnqueueError> {
    if topic.is_empty() || topic.contains(['\n', '\r']) {
        return Err(EnqueueError::InvalidTopic {
            event_id: event.id.clone(),
            topic: topic.to_string(),
        });
    }
    let mut event = event.clone();
    if event.traceparent.is_none() {
        event.traceparent = Some(keel_core::TraceParent::new_root());
    }
    event
        .validate()
        .map_err(|source| EnqueueError::InvalidEvent {
            topic: topic.to_string(),
            source,
        })?;
    let bytes = event.to_structured_json().to_string().into_bytes();
    if bytes.len() > ENVELOPE_BYTES_MAX {
        return Err(EnqueueError::TooLarge {
            event_id: event.id,
            size: bytes.len(),
        });
    }
    Ok(Envelope {
        topic: topic.to_string(),
        event_id: event.id,
        partition_key: event.partitionkey,
        bytes,
    })
}

/// Checks the size of a batch given to `enqueue_batch`.
pub(crate) fn check_batch(count: usize) -> Result<(), EnqueueError> {
    if count > ENQUEUE_BATCH_MAX {
        return Err(EnqueueError::BatchTooLarge { count });
    }
    Ok(())
}

/// A claimed outbox row, as read back.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    pub(crate) id: i64,
    pub(crate) topic: String,
    pub(crate) partition_key: Option<String>,
    pub(crate) envelope: Vec<u8>,
    /// Failed attempts before this one.
    pub(crate) attempts: u32,
}

impl OutboxRow {
    /// What orders this row among the others: (topic, partition key), or `None` for a row
    /// without a key, which is ordered with nothing.
    fn ordering_key(&self) -> Option<(&str, &str)> {
        self.partition_key
            .as_deref()
            .map(|key| (self.topic.as_str(), key))
    }
}

/// What the relay writes back for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Acknowledged: mark or delete.
    Published { id: i64 },
    /// Failed: try again after `delay`.
    Retry {
        id: i64,
        error: String,
        delay: Duration,
    },
    /// Given up: move aside with the reason.
    Dead {
        id: i64,
        error: String,
        kind: PortErrorKind,
    },
}

/// The outcome of publishing one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Published,
    Failed(PortError),
    /// The stored bytes are not an event.
    Unreadable(String),
    /// Not tried: an earlier row of the same key failed in this batch.
    NotAttempted,
}

/// Publishes `rows` (in id order) through `port`: one [`PublishPort::publish_batch`] per
/// topic, the topics at once, so a transport can store many events per request while
/// keeping each key's order. Returns one outcome per row, in the order of `rows`. Within a
/// topic, once a row of a key failed (or its stored bytes are unreadable), every later row
/// of that key is "not attempted", whatever the port answered for it: the key stops at its
/// first failure and is claimed again from there.
pub(crate) async fn publish_rows(port: &dyn PublishPort, rows: &[OutboxRow]) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::NotAttempted; rows.len()];
    let mut failed: HashSet<(&str, &str)> = HashSet::new();
    let mut topics: BTreeMap<&str, (Vec<usize>, Vec<Event>)> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        let key = row.ordering_key();
        if key.is_some_and(|key| failed.contains(&key)) {
            continue;
        }
        match Event::from_structured_json(&row.envelope) {
            Ok(event) => {
                let (indexes, events) = topics.entry(&row.topic).or_default();
                indexes.push(index);
                events.push(event);
            }
            Err(error) => {
                outcomes[index] = Outcome::Unreadable(error.to_string());
                failed.extend(key);
            }
        }
    }
    let batches = topics
        .into_iter()
        .map(|(topic, (indexes, events))| async move {
            (indexes, port.publish_batch(topic, events).await)
        });
    for (indexes, results) in join_all(batches).await {
        for (index, result) in indexes.into_iter().zip(results) {
            let row = &rows[index];
            let key = row.ordering_key();
            if key.is_some_and(|key| failed.contains(&key)) {
                continue;
            }
            outcomes[index] = match result {
                Ok(()) => Outcome::Published,
                Err(error) => {
                    failed.extend(key);
                    Outcome::Failed(error)
                }
            };
        }
    }
    outcomes
}

/// What to write back for `row` after `outcome` (the module docs' decision table).
pub(crate) fn settle(
    row: &OutboxRow,
    outcome: &Outcome,
    options: &RelayOptions,
) -> Option<Settlement> {
    let attempts = row.attempts.saturating_add(1);
    match outcome {
        Outcome::Published => Some(Settlement::Published { id: row.id }),
        Outcome::NotAttempted => None,
        Outcome::Unreadable(reason) => Some(Settlement::Dead {
            id: row.id,
            error: format!("stored envelope is not a CloudEvent: {reason}"),
            kind: PortErrorKind::Rejected,
        }),
        Outcome::Failed(error)
            if error.kind() == PortErrorKind::Rejected
                && attempts >= options.rejected_attempts_max =>
        {
            Some(Settlement::Dead {
                id: row.id,
                error: error.message().to_string(),
                kind: error.kind(),
            })
        }
        Outcome::Failed(error) => Some(Settlement::Retry {
            id: row.id,
            error: error.to_string(),
            delay: options.retry_delay(attempts),
        }),
    }
}

/// A row moved aside, waiting to be copied to the dead-letter topic.
#[derive(Debug, Clone)]
pub(crate) struct DeadRow {
    pub(crate) id: i64,
    pub(crate) topic: String,
    pub(crate) event_id: String,
    pub(crate) envelope: Vec<u8>,
    pub(crate) attempts: u32,
    pub(crate) error: String,
    pub(crate) first_failure_ms: i64,
    pub(crate) dead_at_ms: i64,
}

/// Copies a dead row to its topic's dead-letter destination with `keel_dlq_*` headers: the
/// group is [`OUTBOX_DEAD_LETTER_GROUP`], the handler the relay's name, the partition 0 and
/// the offset the outbox row id (the row never reached a partition). If the transport
/// rejects the full event (the usual reason a row is dead: it is too large), the event is
/// stored without its data, and the error says where the data still is. A dead letter
/// without its data, or standing in for an unreadable row, is marked
/// ([`IncompletePayload`]) so `keel dlq replay` refuses it and names the dead row.
pub(crate) async fn copy_dead_letter(
    port: &dyn PublishPort,
    row: &DeadRow,
    relay: &str,
) -> Result<(), PortError> {
    let original = format!(
        "keel_outbox_dead row {} of the application database",
        row.id
    );
    let (event, unreadable) = match Event::from_structured_json(&row.envelope) {
        Ok(event) => (event, None),
        Err(_) => (
            Event::new("keel-outbox", "keel.outbox.unreadable")
                .with_id(row.event_id.clone())
                .with_data("application/octet-stream", row.envelope.clone()),
            Some(PayloadLoss::Unreadable),
        ),
    };
    let headers = |error: String, loss: Option<PayloadLoss>| {
        let mut headers = DeadLetterHeaders {
            topic: row.topic.clone(),
            partition: 0,
            offset: row.id as u64,
            group: OUTBOX_DEAD_LETTER_GROUP.to_string(),
            handler: relay.to_string(),
            attempts: row.attempts,
            first_failure_ms: row.first_failure_ms,
            last_failure_ms: row.dead_at_ms,
            error,
            kind: DeadLetterKind::Permanent,
        }
        .encode();
        if let Some(loss) = loss {
            headers.extend(
                IncompletePayload {
                    loss,
                    original: original.clone(),
                }
                .encode(),
            );
        }
        headers
            .into_iter()
            .map(|header| {
                (
                    header.key.into(),
                    header.value.map(|v| v.to_vec()).unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    let full = port
        .publish_dead_letter(
            &row.topic,
            event.clone(),
            headers(row.error.clone(), unreadable),
        )
        .await;
    match full {
        Err(error) if error.kind() == PortErrorKind::Rejected && event.data.is_some() => {
            let mut bare = event;
            bare.data = None;
            let error = format!(
                "{} (data dropped from this dead letter: {error}; it is kept in the outbox's dead rows, id {})",
                row.error, row.id
            );
            port.publish_dead_letter(&row.topic, bare, headers(error, Some(PayloadLoss::Dropped)))
                .await
        }
        other => other,
    }
}

/// The relay's Prometheus metrics. Register them where the application's other metrics
/// live ([`OutboxMetrics::register`]); a relay updates them as it goes.
///
/// | name | type | meaning |
/// |---|---|---|
/// | `keel_outbox_backlog_events` | gauge | rows not yet published |
/// | `keel_outbox_oldest_unpublished_age_seconds` | gauge | age of the oldest of them (0 when none) |
/// | `keel_outbox_dead_rows` | gauge | rows moved aside |
/// | `keel_outbox_published_total` | counter | rows published |
/// | `keel_outbox_publish_failures_total{kind}` | counter | failed publishes (`transient`, `rejected`) |
/// | `keel_outbox_dead_lettered_total` | counter | rows moved aside |
///
/// The gauges are refreshed every [`RelayOptions::housekeeping_interval`] from the
/// database, so several relays report the same backlog.
#[derive(Debug, Clone, Default)]
pub struct OutboxMetrics {
    backlog: Gauge,
    oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    dead_rows: Gauge,
    published: Counter,
    failures: Family<KindLabels, Counter>,
    dead_lettered: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The backlog as the database reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Rows not yet published.
    pub pending: u64,
    /// Age of the oldest of them, in milliseconds (0 when none).
    pub oldest_age_ms: u64,
    /// Rows moved aside.
    pub dead: u64,
}

impl OutboxMetrics {
    /// Fresh metrics, all zero.
    pub fn new() -> OutboxMetrics {
        OutboxMetrics::default()
    }

    /// Registers every family into `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "keel_outbox_backlog_events",
            "Outbox rows not yet published",
            self.backlog.clone(),
        );
        registry.register(
            "keel_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row",
            self.oldest_age_seconds.clone(),
        );
        registry.register(
            "keel_outbox_dead_rows",
            "Outbox rows moved aside after the transport rejected them",
            self.dead_rows.clone(),
        );
        registry.register(
            "keel_outbox_published",
            "Outbox rows published",
            self.published.clone(),
        );
        registry.register(
            "keel_outbox_publish_failures",
            "Failed publishes of outbox rows",
            self.failures.clone(),
        );
        registry.register(
            "keel_outbox_dead_lettered",
            "Outbox rows moved aside",
            self.dead_lettered.clone(),
        );
    }

    /// The last backlog the relay measured.
    pub fn backlog(&self) -> Backlog {
        Backlog {
            pending: self.backlog.get().max(0) as u64,
            oldest_age_ms: (self.oldest_age_seconds.get() * 1000.0) as u64,
            dead: self.dead_rows.get().max(0) as u64,
        }
    }

    pub(crate) fn set_backlog(&self, backlog: Backlog) {
        self.backlog.set(backlog.pending as i64);
        self.oldest_age_seconds
            .set(backlog.oldest_age_ms as f64 / 1000.0);
        self.dead_rows.set(backlog.dead as i64);
    }

    pub(crate) fn count(&self, settlements: &[Settlement]) {
        for settlement in settlements {
            match settlement {
                Settlement::Published { .. } => {
                    self.published.inc();
                }
                Settlement::Retry { .. } => {
                    self.failures
                        .get_or_create(&KindLabels { kind: "transient" })
                        .inc();
                }
                Settlement::Dead { kind, .. } => {
                    self.failures
                        .get_or_create(&KindLabels {
                            kind: kind.as_str(),
                        })
                        .inc();
                    self.dead_lettered.inc();
                }
            }
        }
    }

    /// Rows published since these metrics were made.
    pub fn published(&self) -> u64 {
        self.published.get()
    }

    /// Rows moved aside since these metrics were made.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.get()
    }
}

/// A shared handle to the port, as the relay holds it.
pub(crate) type Port = Arc<dyn PublishPort>;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(attempts: u32) -> OutboxRow {
        OutboxRow {
            id: 7,
            topic: "t".into(),
            partition_key: Some("k".into()),
            envelope: Vec::new(),
            attempts,
        }
    }

    #[test]
    fn decisions() {
        let options = RelayOptions {
            rejected_attempts_max: 3,
            ..RelayOptions::default()
        };
        let check = |attempts: u32, outcome: Outcome, expected: &str| {
            let got = match settle(&row(attempts), &outcome, &options) {
                None => "none",
                Some(Settlement::Published { .. }) => "published",
                Some(Settlement::Retry { .. }) => "retry",
                Some(Settlement::Dead { .. }) => "dead",
            };
            assert_eq!(got, expected, "attempts {attempts}, {outcome:?}");
        };
        check(0, Outcome::Published, "published");
        check(9, Outcome::Published, "published");
        check(0, Outcome::NotAttempted, "none");
        check(0, Outcome::Failed(PortError::transient("down")), "retry");
        check(99, Outcome::Failed(PortError::transient("down")), "retry");
        check(0, Outcome::Failed(PortError::rejected("big")), "retry");
        check(1, Outcome::Failed(PortError::rejected("big")), "retry");
        check(2, Outcome::Failed(PortError::rejected("big")), "dead");
        check(0, Outcome::Unreadable("x".into()), "dead");
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let options = RelayOptions {
            retry_delay_min: Duration::from_millis(100),
            retry_delay_max: Duration::from_secs(1),
            ..RelayOptions::default()
        };
        let ms = |attempts| options.retry_delay(attempts).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5), ms(60)],
            [100, 200, 400, 800, 1000, 1000]
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(RelayOptions::default().validate().is_ok());
        let bad = [
            RelayOptions {
                batch_rows_max: 0,
                ..RelayOptions::default()
            },
            RelayOptions {
                poll_interval: Duration::ZERO,
                ..RelayOptions::default()
            },
            RelayOptions {
                rejected_attempts_max: 0,
                ..RelayOptions::default()
            },
            RelayOptions {
                retry_delay_min: Duration::from_secs(60),
                ..RelayOptions::default()
            },
            RelayOptions {
                name: String::new(),
                ..RelayOptions::default()
            },
        ];
        for options in bad {
            assert!(options.validate().is_err(), "{options:?}");
        }
    }
}
