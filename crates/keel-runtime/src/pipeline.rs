//! The middleware chain one event goes through, in its fixed order:
//! trace/correlation → dedupe → timeout → retry → dead letter.
//!
//! This file decides what happens to *one* event; it knows nothing of other events, keys or
//! offsets (that is `partition_worker.rs`). See the crate docs for the promise each step
//! makes; the comments here say how.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use keel_core::{ConsumeTransport, Event, Record, TransportError};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tracing::Instrument;
use tracing::field::Empty;

use crate::dead_letter::{
    DeadLetter, DeadLetterHeaders, DeadLetterHook, DeadLetterKind, dead_letter_record,
    dead_letter_topic,
};
use crate::dedupe::Inbox;
use crate::error::{ErrorKind, HandlerError};
use crate::handler::{Context, Delivery, Handler};
use crate::metrics::RouteMetrics;
use crate::policy::{ConsumerPolicy, Jitter, RetryMode, RetryPolicy, TimeoutPolicy};
use crate::publisher::Publisher;
use crate::redelivery::{Redelivery, redelivery_record};
use crate::unwind::CatchUnwind;

/// Everything a route's events share: the handler, the policies, the hooks.
pub(crate) struct RouteShared {
    /// Where the route consumes, and whose clock it reads.
    pub(crate) consume: Arc<dyn ConsumeTransport>,
    /// The transport's publisher, which every delivery's [`Context`] hands out;
    /// redeliveries and dead letters are sent through its transport.
    pub(crate) publisher: Publisher,
    /// The topic this route reads: its own, or its redelivery topic.
    pub(crate) topic: String,
    /// The topic the route subscribed to; dead letters go to its `.dlq`.
    pub(crate) origin: String,
    /// Whether `topic` is the redelivery topic of `origin` (records carry `keel_retry_*`).
    pub(crate) redelivery: bool,
    /// `<origin>.retry`, where [`RetryMode::Topic`] sends failed events; `None` for a route
    /// on a redelivery topic itself.
    pub(crate) redelivery_topic: Option<String>,
    pub(crate) retry_mode: RetryMode,
    pub(crate) group: String,
    pub(crate) handler: Handler,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: TimeoutPolicy,
    pub(crate) consumer: ConsumerPolicy,
    pub(crate) inbox: Option<Arc<dyn Inbox>>,
    pub(crate) on_dead_letter: Option<DeadLetterHook>,
    pub(crate) jitter: Mutex<Jitter>,
    /// Set by the first dead letter of this group on this topic (shared by the route's
    /// consumers of the topic and of its redelivery topic).
    pub(crate) dead_lettered: Arc<AtomicBool>,
    pub(crate) metrics: RouteMetrics,
    /// The inbox consumer name: `<group>/<handler>`.
    pub(crate) inbox_consumer: String,
    /// Whether a partition's handler publishes and its offset commit go in one transaction
    /// (`transaction.rs`): a failed attempt then ends the chain with [`Outcome::Failed`].
    pub(crate) transactional: bool,
}

impl RouteShared {
    pub(crate) fn retry_delay(&self, attempt: u32) -> Duration {
        let bound = self.retry.delay_bound(attempt);
        self.jitter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .below(bound)
    }
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler succeeded.
    Handled,
    /// The dedupe step found it processed already; the handler was not called.
    Duplicate,
    /// Stored in the dead-letter topic.
    DeadLettered,
    /// Given up without finishing because the partition is draining (shutdown or
    /// revocation during a retry delay): it stays uncommitted and is delivered again.
    Abandoned,
    /// Handed to `<topic>.retry` for its next attempt ([`RetryMode::Topic`]).
    Redelivered,
    /// A redelivery record addressed to another group: not this group's to handle.
    NotAddressed,
    /// On a transactional route, an attempt failed: its publishes are in the open
    /// transaction, which must abort; the event runs again with this failure behind it.
    Failed(Failure),
}

/// A failed attempt on a transactional route, carried across the abort to the event's next
/// run, which retries, redelivers or dead-letters it as the plain path would have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The attempts made so far.
    pub(crate) attempts: u32,
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) first_failure_ms: i64,
}

/// What the partition worker hands the chain of one event.
pub(crate) struct Run {
    /// The publisher handlers and dead letters use (the transaction's, on a transactional
    /// route).
    pub(crate) publisher: Publisher,
    /// The event's failure before the transaction aborted, when it runs again.
    pub(crate) failed: Option<Failure>,
}

/// Runs the middleware chain for one record. `draining` turns true when the partition is
/// being given up; waits between retries end then.
pub(crate) async fn process(
    route: Arc<RouteShared>,
    partition: u32,
    record: Record,
    draining: watch::Receiver<bool>,
    run: Run,
) -> Outcome {
    // 1. Trace/correlation: one span per event, named per the OpenTelemetry messaging
    //    conventions (`otel.name` is how tracing-opentelemetry names the exported span).
    let topic = route.topic.as_str();
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("{topic} process"),
        otel.kind = "consumer",
        messaging.system = "keel",
        messaging.operation.type = "process",
        messaging.destination.name = %topic,
        messaging.destination.partition.id = partition,
        messaging.consumer.group.name = %route.group,
        messaging.kafka.offset = record.offset,
        messaging.message.id = Empty,
        cloudevents.event_type = Empty,
        keel.correlation_id = Empty,
        keel.handler = %route.handler.name(),
        trace_id = Empty,
    );
    crate::otel::continue_trace(&span, &record.headers);
    let chain = Chain {
        route,
        partition,
        record,
        draining,
        first_failure_ms: None,
        redelivered: None,
        publisher: run.publisher,
        failed: run.failed,
    };
    chain.run().instrument(span).await
}

struct Chain {
    route: Arc<RouteShared>,
    partition: u32,
    record: Record,
    draining: watch::Receiver<bool>,
    first_failure_ms: Option<i64>,
    /// The `keel_retry_*` headers, when the record came from a redelivery topic.
    redelivered: Option<Redelivery>,
    /// Where the handler's publishes, redeliveries and dead letters go.
    publisher: Publisher,
    /// The failure that aborted this event's last transaction (transactional routes).
    failed: Option<Failure>,
}

impl Chain {
    async fn run(mut self) -> Outcome {
        // 0. A redelivery is for one group only and waits until it is due.
        if self.route.redelivery {
            let Some(redelivered) = Redelivery::decode(&self.record.headers) else {
                let reason = "a record in the redelivery topic without valid keel_retry_* \
                    headers"
                    .to_string();
                self.route.metrics.undecodable();
                return self
                    .dead_letter(None, 0, reason, DeadLetterKind::Decode)
                    .await;
            };
            if redelivered.group != self.route.group {
                return Outcome::NotAddressed;
            }
            self.first_failure_ms = redelivered.first_failure_ms;
            let wait_ms = redelivered
                .due_ms
                .saturating_sub(self.route.consume.now_ms());
            self.redelivered = Some(redelivered);
            if wait_ms > 0 {
                let wait = Duration::from_millis(wait_ms.unsigned_abs());
                if !self.wait(wait).await {
                    return Outcome::Abandoned;
                }
            }
        }
        let headers = self
            .record
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref()));
        let decoded = Event::from_record(
            self.record.key.as_deref(),
            headers,
            self.record.value.as_deref(),
        );
        let mut event = match decoded {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("not a readable CloudEvent: {error}");
                self.route.metrics.undecodable();
                return self
                    .dead_letter(None, 0, reason, DeadLetterKind::Decode)
                    .await;
            }
        };
        // Handling continues the producer's trace; an event without one starts a trace
        // here, so the handler's follow-up events can still be tied together.
        let trace = *event
            .traceparent
            .get_or_insert_with(crate::otel::trace_root);
        let span = tracing::Span::current();
        span.record("messaging.message.id", event.id.as_str());
        span.record("cloudevents.event_type", event.ty.as_str());
        span.record(
            "keel.correlation_id",
            event.correlationid.as_deref().unwrap_or(event.id.as_str()),
        );
        span.record("trace_id", tracing::field::display(TraceId(trace.trace_id)));
        let event = Arc::new(event);
        let mut attempts = match self.route.handler.prepare(event.clone()) {
            Ok(attempts) => attempts,
            Err(error) => {
                let reason = format!("handler cannot decode the event: {error}");
                self.route.metrics.undecodable();
                let id = Some(event.id.clone());
                return self
                    .dead_letter(id, 0, reason, DeadLetterKind::Decode)
                    .await;
            }
        };

        // 2. Dedupe: drop an event this consumer already processed.
        let route = self.route.clone();
        let consumer = route.inbox_consumer.as_str();
        if let Some(inbox) = self.route.inbox.clone() {
            let mut failures = 0;
            loop {
                match inbox.is_processed(consumer, &event.id).await {
                    Ok(true) => {
                        tracing::debug!("duplicate event dropped by the dedupe step");
                        return Outcome::Duplicate;
                    }
                    Ok(false) => break,
                    Err(error) => {
                        // The inbox is infrastructure: its failure says nothing about the
                        // event, so wait and ask again rather than dead-letter.
                        failures += 1;
                        tracing::warn!(%error, "dedupe inbox unavailable; asking again");
                        if !self.pause(failures).await {
                            return Outcome::Abandoned;
                        }
                    }
                }
            }
        }

        let delivery = Arc::new(Delivery {
            event: event.clone(),
            route: self.route.clone(),
            publisher: self.publisher.clone(),
            partition: self.partition,
            offset: self.record.offset,
        });
        // A redelivered event goes on from the attempts already made; it gets at least one
        // more even if the policy now allows fewer.
        let first_attempt = self.redelivered.as_ref().map_or(0, |r| r.attempts) + 1;
        let attempts_max = self.route.retry.attempts_max.max(first_attempt);
        // On a transactional route a failure aborted the last run: decide now what the
        // plain path decided right after the failure.
        let first_attempt = match self.failed.take() {
            None => first_attempt,
            Some(failed) => match self.after_abort(failed, attempts_max, &event.id).await {
                Ok(next_attempt) => next_attempt,
                Err(outcome) => return outcome,
            },
        };
        let attempt_timeout = self.route.timeout.attempt_timeout;
        for attempt in first_attempt..=attempts_max {
            let ctx = Context {
                delivery: delivery.clone(),
                attempt,
            };
            // 3. Timeout, per attempt; a panic is contained to the attempt.
            let call = CatchUnwind::new(attempts(ctx));
            let started = Instant::now();
            let result = match attempt_within(started + attempt_timeout, call).await {
                None => Err(HandlerError::transient(format!(
                    "attempt timed out after {attempt_timeout:?}"
                ))),
                Some(Err(panic)) => Err(HandlerError::transient(format!(
                    "handler panicked: {panic}"
                ))),
                Some(Ok(result)) => result,
            };
            let failure = result.as_ref().err().map(HandlerError::kind);
            self.route.metrics.attempt(started.elapsed(), failure);
            let error = match result {
                Ok(()) => {
                    if let Some(inbox) = &self.route.inbox
                        && let Err(error) = inbox.mark_processed(consumer, &event.id).await
                    {
                        // The effects happened; a missing mark only lets a later duplicate
                        // reach the idempotent handler.
                        tracing::warn!(%error, "could not mark the event processed");
                    }
                    tracing::debug!(attempt, "event handled");
                    self.route.metrics.handled();
                    return Outcome::Handled;
                }
                Err(error) => error,
            };
            let now = self.route.consume.now_ms();
            self.first_failure_ms.get_or_insert(now);
            if self.route.transactional {
                tracing::warn!(attempt, %error, "handler failed; aborting the partition's transaction");
                return Outcome::Failed(Failure {
                    attempts: attempt,
                    kind: error.kind(),
                    message: error.message().to_string(),
                    first_failure_ms: self.first_failure_ms.unwrap_or(now),
                });
            }
            // 4. Retry transient failures with backoff; 5. dead-letter the rest.
            let id = Some(event.id.clone());
            if error.kind() == ErrorKind::Permanent {
                tracing::warn!(attempt, %error, "handler failed permanently");
                let message = error.message().to_string();
                return self
                    .dead_letter(id, attempt, message, DeadLetterKind::Permanent)
                    .await;
            }
            if attempt == attempts_max {
                tracing::warn!(attempt, %error, "handler failed; attempts exhausted");
                let message = error.message().to_string();
                return self
                    .dead_letter(id, attempt, message, DeadLetterKind::Transient)
                    .await;
            }
            if self.route.retry_mode == RetryMode::Topic
                && let Some(topic) = self.route.redelivery_topic.clone()
            {
                tracing::warn!(attempt, %error, "handler failed; retrying through the redelivery topic");
                return self.redeliver(topic, attempt).await;
            }
            tracing::warn!(attempt, %error, "handler failed; retrying");
            if !self.pause(attempt).await {
                return Outcome::Abandoned;
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// The plain path's decision after a failed attempt, taken on the run after the
    /// transaction that held the attempt aborted: dead-letter (permanent, or no attempts
    /// left), hand to the redelivery topic, or `Ok` with the next attempt number (the worker
    /// already waited the backoff before it ran the batch again).
    async fn after_abort(
        &mut self,
        failed: Failure,
        attempts_max: u32,
        event_id: &str,
    ) -> Result<u32, Outcome> {
        self.first_failure_ms = Some(failed.first_failure_ms);
        let id = Some(event_id.to_string());
        if failed.kind == ErrorKind::Permanent {
            let outcome = self
                .dead_letter(
                    id,
                    failed.attempts,
                    failed.message,
                    DeadLetterKind::Permanent,
                )
                .await;
            return Err(outcome);
        }
        if failed.attempts >= attempts_max {
            let outcome = self
                .dead_letter(
                    id,
                    failed.attempts,
                    failed.message,
                    DeadLetterKind::Transient,
                )
                .await;
            return Err(outcome);
        }
        if self.route.retry_mode == RetryMode::Topic
            && let Some(topic) = self.route.redelivery_topic.clone()
        {
            return Err(self.redeliver(topic, failed.attempts).await);
        }
        Ok(failed.attempts + 1)
    }

    /// Waits the retry delay after failure number `failures`; false if the partition started
    /// draining meanwhile (the event is then abandoned, uncommitted).
    async fn pause(&mut self, failures: u32) -> bool {
        let delay = self.route.retry_delay(failures);
        self.wait(delay).await
    }

    /// Waits `delay`; false if the partition started draining meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        if *self.draining.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = self.draining.wait_for(|draining| *draining) => false,
        }
    }

    /// Where the event was first read: its redelivery headers' origin, or where it was read.
    fn origin(&self) -> (String, u32, u64) {
        match &self.redelivered {
            Some(r) => (r.topic.clone(), r.partition, r.offset),
            None => (self.route.topic.clone(), self.partition, self.record.offset),
        }
    }

    /// Hands the event to `topic` (the redelivery topic) for its next attempt, due after the
    /// backoff of failed attempt `attempt`, retrying the append until it succeeds or the
    /// partition drains. The event is finished here: the key is free.
    async fn redeliver(&mut self, topic: String, attempt: u32) -> Outcome {
        let (origin_topic, partition, offset) = self.origin();
        let now = self.route.consume.now_ms();
        let delay_ms =
            i64::try_from(self.route.retry_delay(attempt).as_millis()).unwrap_or(i64::MAX);
        let redelivery = Redelivery {
            group: self.route.group.clone(),
            attempts: attempt,
            due_ms: now.saturating_add(delay_ms),
            topic: origin_topic,
            partition,
            offset,
            first_failure_ms: self.first_failure_ms,
        };
        let mut failures = 0;
        loop {
            match self.send_redelivery(&topic, partition, &redelivery).await {
                Ok(()) => return Outcome::Redelivered,
                Err(error) => {
                    failures += 1;
                    tracing::error!(%error, "could not store a redelivery; trying again");
                    if !self.pause(failures).await {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
    }

    /// Sends the redelivery record to `topic`, in the same partition index as the origin:
    /// that keeps a key's retries in one partition, in the order they failed.
    async fn send_redelivery(
        &self,
        topic: &str,
        partition: u32,
        redelivery: &Redelivery,
    ) -> Result<(), SendFailure> {
        let transport = self.publisher.transport();
        let partitions = transport
            .ensure_companion(&self.route.origin, topic)
            .await?;
        let record = redelivery_record(&self.record, redelivery);
        let target = partition.min(partitions.saturating_sub(1));
        transport.send_to(topic, target, record).await?;
        Ok(())
    }

    /// Stores the dead letter (retrying the append until it succeeds or the partition
    /// drains), then raises the alert.
    async fn dead_letter(
        &mut self,
        event_id: Option<String>,
        attempts: u32,
        error: String,
        kind: DeadLetterKind,
    ) -> Outcome {
        let now = self.route.consume.now_ms();
        let (topic, partition, offset) = self.origin();
        let mut report = DeadLetter {
            event_id,
            headers: DeadLetterHeaders {
                topic,
                partition,
                offset,
                group: self.route.group.clone(),
                handler: self.route.handler.name().to_string(),
                attempts,
                first_failure_ms: self.first_failure_ms.unwrap_or(now),
                last_failure_ms: now,
                error,
                kind,
            },
            dead_letter_topic: String::new(),
            dead_letter_offset: 0,
            first_in_group: false,
        };
        let mut failures = 0;
        let stored = loop {
            match self.store(&report, now).await {
                Ok(stored) => break stored,
                Err(error) => {
                    failures += 1;
                    tracing::error!(%error, "could not store a dead letter; trying again");
                    if !self.pause(failures).await {
                        return Outcome::Abandoned;
                    }
                }
            }
        };
        report.dead_letter_topic = stored.0;
        report.dead_letter_offset = stored.1;
        report.first_in_group = !self.route.dead_lettered.swap(true, Ordering::SeqCst);
        self.route.metrics.dead_lettered();
        tracing::error!(
            event_id = report.event_id.as_deref().unwrap_or("<unreadable>"),
            topic = %report.headers.topic,
            partition = report.headers.partition,
            offset = report.headers.offset,
            group = %report.headers.group,
            handler = %report.headers.handler,
            attempts = report.headers.attempts,
            error_kind = report.headers.kind.as_str(),
            error = %report.headers.error,
            dead_letter_topic = %report.dead_letter_topic,
            first_in_group = report.first_in_group,
            "event dead-lettered"
        );
        if let Some(hook) = &self.route.on_dead_letter {
            let call = std::panic::AssertUnwindSafe(|| hook(&report));
            if let Err(panic) = std::panic::catch_unwind(call) {
                let message = crate::unwind::panic_message(panic.as_ref());
                tracing::error!(panic = %message, "the dead-letter hook panicked");
            }
        }
        Outcome::DeadLettered
    }

    async fn store(&self, report: &DeadLetter, now: i64) -> Result<(String, u64), SendFailure> {
        let transport = self.publisher.transport();
        let name = dead_letter_topic(&self.route.origin);
        let partitions = transport
            .ensure_companion(&self.route.origin, &name)
            .await?;
        let record = dead_letter_record(&self.record, &report.headers, now);
        let partition = report.headers.partition.min(partitions.saturating_sub(1));
        let published = transport.send_to(&name, partition, record).await?;
        Ok((name, published.offset))
    }
}

/// Why a redelivery or dead letter was not stored: its companion topic could not be set up,
/// or the send failed. Either way the chain logs it and tries again.
#[derive(Debug, thiserror::Error)]
enum SendFailure {
    #[error("cannot set up the companion topic: {0}")]
    Companion(#[from] TransportError),
    #[error(transparent)]
    Send(#[from] keel_core::SendError),
}

/// Runs `call` until it finishes (`Some`) or `deadline` passes (`None`, the call dropped).
///
/// Like `tokio::time::timeout_at`, except that the timer is created only if the call does
/// not finish at its first poll: most handler attempts finish without waiting, and arming a
/// timer (a runtime-handle lookup and a timer-wheel entry) per event was a visible share of
/// the runtime's cost. The deadline is fixed by the caller before the first poll, so a late
/// timer does not lengthen the attempt.
async fn attempt_within<F: Future + Unpin>(deadline: Instant, mut call: F) -> Option<F::Output> {
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = Pin::new(&mut call).poll(cx) {
            return Poll::Ready(Some(output));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// A trace id printed as 32 lowercase hex digits, as tracing backends show it.
struct TraceId([u8; 16]);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}
