//! Handlers and their [`Context`]: a handler is an async function of a typed event (or of a
//! raw [`Event`]) plus a context that knows the envelope, the attempt number and how to
//! publish events caused by the one being handled.
//!
//! Not here: when and how often a handler is called (`pipeline.rs`), or on which partition
//! (`partition_worker.rs`).

use std::future::Future;
use std::sync::Arc;

use keel_core::{BoxFuture, EnvelopeError, Event, EventType, Published};

use crate::error::{HandlerError, PublishError};
use crate::pipeline::RouteShared;
use crate::publisher::Publisher;

/// What a handler attempt returns.
pub type HandlerResult = Result<(), HandlerError>;

/// A named handler. Build it with [`Handler::typed`] or [`Handler::raw`]; give it to a
/// [`Route`](crate::Route).
///
/// The name identifies the handler in dead letters (`keel_dlq_handler`), in the dedupe
/// inbox (consumer `<group>/<name>`) and in logs.
#[derive(Clone)]
pub struct Handler {
    name: String,
    prepare: Arc<Prepare>,
}

/// Decodes an event once, before any attempt, and returns the function that runs attempts.
type Prepare = dyn Fn(Arc<Event>) -> Result<Attempts, EnvelopeError> + Send + Sync;

/// Runs one attempt per call.
pub(crate) type Attempts = Box<dyn FnMut(Context) -> BoxFuture<'static, HandlerResult> + Send>;

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("name", &self.name).finish()
    }
}

impl Handler {
    /// A handler of typed events `T`. The event is decoded before the first attempt; an event
    /// of another `type`, of a newer schema version than `T::VERSION`, or whose data does
    /// not fit `T` never reaches `f`: it goes to the dead letters with the reason.
    pub fn typed<T, F, Fut>(name: impl Into<String>, f: F) -> Handler
    where
        T: EventType + Send + 'static,
        F: Fn(T, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Handler::decoded(name, |event: &Event| event.decode::<T>(), f)
    }

    /// A handler whose events are turned into `T` by `decode` before the first attempt (and
    /// again before each retry). An event `decode` refuses never reaches `f`: it goes to the
    /// dead letters with the error as the reason, as for [`Handler::typed`]. This is the seam
    /// for decoders that know more than [`Event::decode`], such as a schema registry that
    /// accepts several versions and upcasts old ones.
    pub fn decoded<T, D, F, Fut>(name: impl Into<String>, decode: D, f: F) -> Handler
    where
        T: Send + 'static,
        D: Fn(&Event) -> Result<T, EnvelopeError> + Send + Sync + 'static,
        F: Fn(T, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let f = Arc::new(f);
        let decode = Arc::new(decode);
        let prepare = move |event: Arc<Event>| -> Result<Attempts, EnvelopeError> {
            let mut first = Some(decode(&event)?);
            let f = f.clone();
            let decode = decode.clone();
            Ok(Box::new(move |ctx: Context| {
                // The first attempt uses the value decoded up front; a retry decodes again,
                // which cannot fail where the first decode succeeded.
                let value = first.take().map_or_else(|| decode(&event), Ok);
                let f = f.clone();
                Box::pin(async move {
                    match value {
                        Ok(value) => f(value, ctx).await,
                        Err(error) => Err(HandlerError::permanent(error)),
                    }
                }) as BoxFuture<'static, HandlerResult>
            }))
        };
        Handler {
            name: name.into(),
            prepare: Arc::new(prepare),
        }
    }

    /// A handler of raw envelopes: every valid CloudEvent reaches it, whatever its type.
    pub fn raw<F, Fut>(name: impl Into<String>, f: F) -> Handler
    where
        F: Fn(Event, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let f = Arc::new(f);
        let prepare = move |event: Arc<Event>| -> Result<Attempts, EnvelopeError> {
            let f = f.clone();
            Ok(Box::new(move |ctx: Context| {
                let fut = f(Event::clone(&event), ctx);
                Box::pin(fut) as BoxFuture<'static, HandlerResult>
            }))
        };
        Handler {
            name: name.into(),
            prepare: Arc::new(prepare),
        }
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn prepare(&self, event: Arc<Event>) -> Result<Attempts, EnvelopeError> {
        (self.prepare)(event)
    }
}

/// What a handler knows about the event it handles, and how it publishes follow-up events.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) delivery: Arc<Delivery>,
    pub(crate) attempt: u32,
}

/// The facts of one delivery, shared by its attempts. The route's names and publisher are
/// shared with every other delivery of the route, not copied per event.
pub(crate) struct Delivery {
    pub(crate) event: Arc<Event>,
    pub(crate) route: Arc<RouteShared>,
    /// The route's publisher, or on a transactional route the one of the partition's open
    /// transaction.
    pub(crate) publisher: Publisher,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event.id)
            .field("topic", &self.route.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("group", &self.route.group)
            .field("handler", &self.route.handler.name())
            .finish()
    }
}

impl Context {
    /// The envelope being handled. Its `traceparent` is never empty: an event that arrived
    /// without one is given a root trace when handling starts, so follow-up events can join it.
    pub fn event(&self) -> &Event {
        &self.delivery.event
    }

    /// The attempt number, 1 for the first try.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The topic the event was read from.
    pub fn topic(&self) -> &str {
        &self.delivery.route.topic
    }

    /// The partition the event was read from.
    pub fn partition(&self) -> u32 {
        self.delivery.partition
    }

    /// The event's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.delivery.offset
    }

    /// The consumer group handling the event.
    pub fn group(&self) -> &str {
        &self.delivery.route.group
    }

    /// The handler's name.
    pub fn handler(&self) -> &str {
        self.delivery.route.handler.name()
    }

    /// Publishes `event` as caused by the handled event: `correlationid` copied (or the
    /// handled event's id when it started the conversation), `causationid` set to the
    /// handled event's id, `traceparent` a child of the handled event's.
    ///
    /// Cancel safety: as [`Publisher::publish`]: a dropped call may or may not be stored.
    /// A retried attempt publishes again; give follow-up events deterministic ids
    /// ([`Event::with_id`]) when consumers must recognise the repeat.
    pub async fn publish(&self, topic: &str, event: Event) -> Result<Published, PublishError> {
        let event = event.caused_by(&self.delivery.event);
        self.delivery.publisher.publish(topic, event).await
    }

    /// A plain publisher of the same transport, for events that are not caused by this one
    /// (on a transactional route: inside the partition's transaction too).
    pub fn publisher(&self) -> &Publisher {
        &self.delivery.publisher
    }
}
