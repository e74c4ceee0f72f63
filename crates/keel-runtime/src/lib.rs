//! `keel-runtime`: Keel's engine-neutral consumer runtime — a [`Publisher`], handlers of
//! typed events, a [`Router`] that applies middleware in a fixed order, retries, dead
//! letters, key scheduling, metrics — written once against the ports of `keel-core`, so the
//! same routes run on every transport.
//!
//! It is no transport itself (the embedded log is `keel-embedded`, Kafka is
//! `keel-kafka-client`), never imports the storage engine (`keel-log`), holds no SQL (the
//! transactional inbox lives in `keel-sql`) and opens no socket.
//!
//! ```text
//! Transport (a ConsumeTransport + a Publisher on its PublishTransport, from a transport crate)
//!   ├─ Publisher::publish(topic, Event)           binary mode: ce_* headers, key = partitionkey
//!   └─ Router::new(&bus).route(Route::new(topic, group, Handler::typed(name, f))).start()
//!        └─ one group member per route → one worker task per assigned partition, which polls
//!           the middleware chains of its running events (up to `concurrency`, different keys)
//! ```
//!
//! # Delivery guarantee: at-least-once
//!
//! An offset is committed only after every event below it *finished*: it was handled, found
//! to be a duplicate by the dedupe step, or stored in the dead-letter topic. The committed
//! offset is the lowest unfinished offset of the partition, so it never passes an event that
//! is waiting, running or being retried. Progress is committed every
//! [`ConsumerPolicy::commit_interval`], when a partition is revoked, and on graceful
//! shutdown. After a crash (or a dropped [`RouterHandle`]) every event above the last commit
//! is delivered again — including ones that were handled: handlers must be idempotent, or sit
//! behind an inbox. Effects are exactly-once only where a transactional inbox covers them.
//!
//! # Transactional processing: exactly-once on Kafka without an inbox
//!
//! [`Route::with_transactions`] asks the transport to commit, per batch of a partition, the
//! handler's publishes (and the route's redeliveries and dead letters) together with the
//! consumed offsets, in one transaction (on Kafka and `keel serve`; every other transport
//! refuses the route when the router starts). `read_committed` readers then see every
//! input's outputs exactly once, whatever crashes; a failed attempt aborts its batch, whose
//! events run again, the failed one retried or dead-lettered as on the plain path. Effects
//! outside the transport still need an inbox.
//!
//! # Middleware order
//!
//! Fixed, in the order the steps meet an event:
//!
//! 1. **trace/correlation** — the record is decoded as a CloudEvent and handling runs in a
//!    `tracing` span named per the OpenTelemetry messaging conventions (`otel.name = "<topic>
//!    process"`, `messaging.system`, `messaging.destination.name`,
//!    `messaging.consumer.group.name`, `messaging.message.id`, `cloudevents.event_type`,
//!    `keel.correlation_id`, `trace_id`), so every log line of the handler names its event.
//!    A record that is not a CloudEvent, or that the handler's typed event cannot decode
//!    (another type, a newer schema version, data that does not fit) goes to the dead letters
//!    with the reason and never reaches the handler.
//! 2. **dedupe** — if the route has an [`Inbox`], an event this consumer already processed is
//!    dropped (and counts as finished); a handled event is marked processed.
//! 3. **timeout** — each attempt is bounded by [`TimeoutPolicy::attempt_timeout`]; an attempt
//!    that runs over is cancelled and counts as a transient failure. A panicking handler is
//!    caught and counts as a transient failure too.
//! 4. **retry** — a transient failure is retried after an exponential backoff with full
//!    jitter ([`RetryPolicy`]), up to `attempts_max` attempts in all. A permanent failure
//!    ([`HandlerError::permanent`]) is not retried. By default the retry waits in place,
//!    holding the key; with [`RetryMode::Topic`] ([`Route::with_retry_mode`]) the event moves
//!    to `<topic>.retry` for its next attempt and the key goes on ([`redelivery`] module).
//! 5. **dead letter** — after the last attempt or a permanent failure the record goes to
//!    `<topic>.dlq` (created with the topic's partition count) with its key, value and
//!    headers unchanged plus `keel_dlq_*` headers ([`dead_letter`] module), and an alert is
//!    raised at once: an error-level log line with the event id and the
//!    [`Router::on_dead_letter`] hook, whose report says whether it is the group's first.
//!
//! # Ordering
//!
//! Within a partition, events with the same key (`partitionkey`) are handled strictly in
//! offset order: the next one starts only when the previous one finished, retries included
//! (retries are *blocking* for their key, unless the route chose [`RetryMode::Topic`],
//! which gives up the order of a failing key's events). Events with different keys run in
//! parallel, up to
//! [`ConsumerPolicy::concurrency`] per partition; a key that is being retried holds back only
//! its own later events, never the rest of the partition. Events without a key have no order.
//! At most [`ConsumerPolicy::in_flight_max`] fetched, unfinished events are held per
//! partition; when that is reached, fetching pauses (backpressure). There is no order across
//! partitions.
//!
//! # Redelivery
//!
//! Every route also consumes `<topic>.retry` (created when the router starts) as its group.
//! Records there are addressed to one group by a `keel_retry_group` header: retry-topic
//! retries, and dead letters replayed to the group that gave up on them
//! (`keel dlq replay --to-group`). The
//! addressed group handles such a record when it is due, with the attempts it has left;
//! every other group finishes it without handling it. A record waiting for its due time
//! takes none of the partition's [`ConsumerPolicy::concurrency`] (it counts against
//! `in_flight_max`), so long backoffs do not hold up due redeliveries.
//!
//! # Consumer groups
//!
//! Every group sees every event of its topic. Members of one group (routes with the same
//! group and topic, in one or several routers and processes) share the partitions: the
//! transport assigns them ([`GroupPolicy`] sets the session and rebalance timing every
//! transport honours). A partition moves only after its old owner drained it (finished
//! running attempts and committed) and gave it back, so no partition is handled by two
//! members at once; a member whose commit is refused (fenced) stops the partition at once.
//!
//! # Transports
//!
//! A router consumes through a [`Transport`]: the consuming half of the port
//! (`keel_core::ConsumeTransport`) and a [`Publisher`] on its publishing half. Each
//! transport crate hands one out — `keel_embedded::EmbeddedBus`,
//! `keel_kafka_client::KafkaTransport` — and routes, handlers, inboxes, retries and dead
//! letters behave the same on each: the `conformance` module (feature `conformance`) holds
//! the checks every transport passes. Switching is one line:
//!
//! ```ignore
//! let router = Router::new(&bus);     // the embedded log
//! let router = Router::new(&kafka);   // Kafka, or keel serve
//! ```
//!
//! # Dedupe window versus inbox
//!
//! [`MemoryDedupeWindow`] is a bounded, in-memory, per-process memory of recent event ids:
//! it drops most duplicates but forgets on restart and when full, and a crash between the
//! handler and the mark re-runs the handler. A transactional inbox (planned, in `keel-sql`)
//! writes the mark in the same database transaction as the handler's effects and so makes
//! effects exactly-once; see the [`dedupe`] module for how it plugs into [`Inbox`].
//!
//! # Metrics
//!
//! [`Transport::metrics`] holds a Prometheus registry; [`Metrics::encode`] encodes it in the
//! OpenMetrics text format (served with [`METRICS_CONTENT_TYPE`]).
//!
//! - `keel_events_published_total{topic}`, `keel_events_handled_total{topic,group}`,
//!   `keel_events_failed_total{topic,group,kind}` (failed attempts: `transient`,
//!   `permanent`; `decode` for events that never reached the handler),
//!   `keel_events_dead_lettered_total{topic,group}`: counters, updated where it happens.
//! - `keel_handler_duration_seconds{topic,group}`: a histogram of every attempt.
//! - `keel_consumer_lag_events{topic,group,partition}` (high watermark − committed offset),
//!   `keel_consumer_lag_seconds{topic,group,partition}` (age of the oldest unhandled event,
//!   0 when caught up), `keel_dead_letters{topic}` (records in `<topic>.dlq`) and
//!   `keel_dead_letter_oldest_age_seconds{topic}`: gauges the transport's [`GaugeSource`]
//!   reports at each scrape, so they cover every group that committed offsets, running or
//!   not; see [`Metrics`] for the details.
//!
//! # Cancel safety
//!
//! Each async public method says what dropping its future does. In short:
//! [`Publisher::publish`] and [`Context::publish`] are not cancel safe (a dropped publish
//! may or may not be stored);
//! [`RouterHandle::shutdown`] loses nothing when dropped (what still runs is aborted
//! uncommitted and redelivered). Inside the runtime, handler futures are dropped at an await
//! point when their attempt times out or a fenced member abandons its partitions, so handler
//! code must tolerate being cancelled between awaits.

pub mod admin;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod dead_letter;
pub mod dedupe;
mod error;
mod handler;
mod histogram;
pub mod lease_group;
pub mod limits;
mod metrics;
mod otel;
mod partition_worker;
mod pipeline;
mod policy;
mod publish_port;
mod publisher;
pub mod redelivery;
mod router;
mod schedule;
#[cfg(feature = "conformance")]
pub mod throughput;
mod transaction;
mod transport;
mod unwind;

pub use dead_letter::{
    DeadLetter, DeadLetterHeaders, DeadLetterKind, IncompletePayload, PayloadLoss,
};
pub use dedupe::{Inbox, InboxError, MemoryDedupeWindow};
pub use error::{ErrorKind, HandlerError, PublishError, StartError};
pub use handler::{Context, Handler, HandlerResult};
// The group settings are the ports' (every transport honours them); re-exported so a route's
// policies come from one place.
pub use keel_core::{GroupPolicy, PolicyError, StartFrom};
pub use metrics::{ConsumerLag, DeadLetterDepth, GaugeSource, METRICS_CONTENT_TYPE, Metrics};
pub use policy::{ConsumerPolicy, RetryMode, RetryPolicy, TimeoutPolicy};
pub use publisher::{Publisher, event_record};
pub use redelivery::Redelivery;
pub use router::{Route, Router, RouterHandle};
pub use transport::{Transport, wait_for_signal};
