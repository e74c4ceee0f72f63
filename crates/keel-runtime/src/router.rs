//! The router: [`Route`]s (topic + group + handler + policies), [`Router`] (starts one group
//! member per route and consumed topic) and [`RouterHandle`] (graceful shutdown). The member
//! task follows its [`Membership`] (the transport's assignments and revocations) and starts
//! and stops one partition worker per assigned partition.
//!
//! Not here: group membership itself (the transport's, through `keel_core::Membership`),
//! the per-partition consumer (`partition_worker.rs`), the per-event chain (`pipeline.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::{GroupPolicy, Membership, MembershipEvent, PartitionLease, Revocation, StartFrom};
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use crate::dead_letter::{DeadLetter, DeadLetterHook};
use crate::dedupe::Inbox;
use crate::error::StartError;
use crate::handler::Handler;
use crate::limits::{JOIN_RETRY_FIRST, JOIN_RETRY_MAX, RETRY_SUFFIX};
use crate::partition_worker::{self, Command, Ended};
use crate::pipeline::RouteShared;
use crate::policy::{ConsumerPolicy, Jitter, RetryMode, RetryPolicy, TimeoutPolicy};
use crate::redelivery::retry_topic;
use crate::transport::Transport;

/// A subscription: `group` handles every event of `topic` with `handler`, under the given
/// policies (each has a default).
#[derive(Clone)]
pub struct Route {
    topic: String,
    group: String,
    handler: Handler,
    retry: RetryPolicy,
    timeout: TimeoutPolicy,
    consumer: ConsumerPolicy,
    group_policy: GroupPolicy,
    retry_mode: RetryMode,
    inbox: Option<Arc<dyn Inbox>>,
    transactional: bool,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("handler", &self.handler)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("consumer", &self.consumer)
            .field("group_policy", &self.group_policy)
            .field("retry_mode", &self.retry_mode)
            .field("inbox", &self.inbox.is_some())
            .field("transactional", &self.transactional)
            .finish()
    }
}

impl Route {
    /// `group` handles `topic` with `handler`, with default policies and no dedupe step.
    pub fn new(topic: impl Into<String>, group: impl Into<String>, handler: Handler) -> Route {
        Route {
            topic: topic.into(),
            group: group.into(),
            handler,
            retry: RetryPolicy::default(),
            timeout: TimeoutPolicy::default(),
            consumer: ConsumerPolicy::default(),
            group_policy: GroupPolicy::default(),
            retry_mode: RetryMode::default(),
            inbox: None,
            transactional: false,
        }
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Route {
        self.retry = retry;
        self
    }

    /// Sets where a failed event waits for its next attempt: in place, holding its key
    /// ([`RetryMode::Blocking`], the default), or in `<topic>.retry`, freeing the key and
    /// giving up its order ([`RetryMode::Topic`]).
    #[must_use]
    pub fn with_retry_mode(mut self, retry_mode: RetryMode) -> Route {
        self.retry_mode = retry_mode;
        self
    }

    /// Sets the per-attempt timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: TimeoutPolicy) -> Route {
        self.timeout = timeout;
        self
    }

    /// Sets concurrency, backpressure, fetch and commit settings.
    #[must_use]
    pub fn with_consumer(mut self, consumer: ConsumerPolicy) -> Route {
        self.consumer = consumer;
        self
    }

    /// Sets the group membership timing.
    #[must_use]
    pub fn with_group_policy(mut self, group_policy: GroupPolicy) -> Route {
        self.group_policy = group_policy;
        self
    }

    /// Adds the dedupe step, backed by `inbox`.
    #[must_use]
    pub fn with_inbox(mut self, inbox: Arc<dyn Inbox>) -> Route {
        self.inbox = Some(inbox);
        self
    }

    /// Asks for transactional processing: the handler's publishes (and the route's
    /// redeliveries and dead letters) and the consumed offsets commit in one transaction of
    /// the transport, per batch of a partition, so each event's effects on the transport
    /// are visible exactly once to `read_committed` readers, without an inbox. A failed
    /// attempt aborts its batch (its publishes are never visible) and the batch runs again
    /// (see `transaction.rs` in this crate). Only a transport with transactions (Kafka,
    /// `keel serve`) takes it: on any other, [`Router::start`] refuses the route naming the
    /// transport.
    #[must_use]
    pub fn with_transactions(mut self) -> Route {
        self.transactional = true;
        self
    }

    fn validate(&self) -> Result<(), StartError> {
        self.retry.validate()?;
        self.timeout.validate()?;
        self.consumer.validate()?;
        self.group_policy.validate()?;
        Ok(())
    }
}

/// Routes events of a transport to handlers. Build, add routes, [`start`](Router::start).
pub struct Router {
    transport: Transport,
    routes: Vec<Route>,
    on_dead_letter: Option<DeadLetterHook>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .field("on_dead_letter", &self.on_dead_letter.is_some())
            .finish()
    }
}

/// A started router. Dropping it aborts every task at once — nothing in flight is committed,
/// so those events are delivered again (at-least-once); call [`RouterHandle::shutdown`] to
/// stop gracefully.
#[derive(Debug)]
pub struct RouterHandle {
    stop: watch::Sender<bool>,
    members: JoinSet<()>,
}

impl Router {
    /// A router with no routes on `transport`: the embedded bus (`Router::new(&bus)`),
    /// Kafka (`Router::new(&kafka)`), or any [`Transport`]. Routes, handlers, inboxes,
    /// retries and dead letters work the same on every transport.
    pub fn new(transport: impl Into<Transport>) -> Router {
        Router {
            transport: transport.into(),
            routes: Vec::new(),
            on_dead_letter: None,
        }
    }

    /// Adds a route.
    #[must_use]
    pub fn route(mut self, route: Route) -> Router {
        self.routes.push(route);
        self
    }

    /// Sets the hook called after every stored dead letter (each carries
    /// [`DeadLetter::first_in_group`]); build webhooks or pagers on it. Every dead letter is
    /// also logged at error level with its event id.
    #[must_use]
    pub fn on_dead_letter(mut self, hook: impl Fn(&DeadLetter) + Send + Sync + 'static) -> Router {
        self.on_dead_letter = Some(Arc::new(hook));
        self
    }

    /// Validates every route and starts one group member per route and consumed topic on
    /// the current tokio runtime. Must be called from inside a runtime.
    pub fn start(self) -> Result<RouterHandle, StartError> {
        if self.routes.is_empty() {
            return Err(StartError::NoRoutes);
        }
        let mut seen = HashSet::new();
        for route in &self.routes {
            route.validate()?;
            // Each route consumes its topic and (but on a redelivery topic) `<topic>.retry`:
            // no two routes may consume one of them as one group.
            let mut consumed = vec![route.topic.clone()];
            if !route.topic.ends_with(RETRY_SUFFIX) {
                consumed.push(retry_topic(&route.topic));
            }
            if !consumed
                .into_iter()
                .all(|topic| seen.insert((topic, route.group.clone())))
            {
                return Err(StartError::DuplicateRoute {
                    topic: route.topic.clone(),
                    group: route.group.clone(),
                });
            }
        }
        for route in &self.routes {
            let consume = self.transport.consume();
            // What the route asks of the engine comes before what the broker holds now.
            let transactions = if route.transactional {
                consume.check_transactions()
            } else {
                Ok(())
            };
            transactions
                .and_then(|()| consume.check_route(&route.topic, &route.group, &route.group_policy))
                .map_err(|source| StartError::Route {
                    topic: route.topic.clone(),
                    group: route.group.clone(),
                    source,
                })?;
        }
        let (stop, _) = watch::channel(false);
        let mut members = JoinSet::new();
        for route in self.routes {
            // Every route also consumes its topic's redelivery topic as the same group (see
            // `redelivery.rs`), except a route on a redelivery topic itself.
            let redelivery_topic =
                (!route.topic.ends_with(RETRY_SUFFIX)).then(|| retry_topic(&route.topic));
            let dead_lettered = Arc::new(AtomicBool::new(false));
            let mut consumers = vec![(route.topic.clone(), false)];
            if let Some(topic) = &redelivery_topic {
                consumers.push((topic.clone(), true));
            }
            for (topic, redelivery) in consumers {
                let mut consumer = route.consumer.clone();
                if redelivery {
                    // A redelivery is never skipped, whatever a new group does on its topic.
                    consumer.start_from = StartFrom::Earliest;
                }
                let shared = Arc::new(RouteShared {
                    consume: self.transport.consume().clone(),
                    publisher: self.transport.publisher().clone(),
                    metrics: self.transport.metrics().route(&topic, &route.group),
                    topic,
                    origin: route.topic.clone(),
                    redelivery,
                    redelivery_topic: redelivery_topic.clone(),
                    retry_mode: route.retry_mode,
                    inbox_consumer: format!("{}/{}", route.group, route.handler.name()),
                    group: route.group.clone(),
                    handler: route.handler.clone(),
                    jitter: Mutex::new(Jitter::new(route.retry.jitter_seed)),
                    retry: route.retry.clone(),
                    timeout: route.timeout.clone(),
                    consumer,
                    inbox: route.inbox.clone(),
                    on_dead_letter: self.on_dead_letter.clone(),
                    dead_lettered: dead_lettered.clone(),
                    transactional: route.transactional,
                });
                members.spawn(join_and_run(
                    shared,
                    route.group_policy.clone(),
                    stop.subscribe(),
                ));
            }
        }
        Ok(RouterHandle { stop, members })
    }
}

impl RouterHandle {
    /// Stops gracefully: every partition stops fetching and starting events, lets running
    /// handler attempts finish (events waiting for a retry are left for redelivery), commits
    /// the lowest unfinished offset, releases its claim; then the members leave their groups.
    ///
    /// Cancel safety: cancel safe in the sense that nothing is lost: dropping this future
    /// drops the handle, which aborts what is still running without committing it, and
    /// those events are delivered again.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        while self.members.join_next().await.is_some() {}
    }
}

/// One partition worker as seen by its member.
struct Slot {
    control: watch::Sender<Command>,
    lease: Arc<dyn PartitionLease>,
    /// Revocations acknowledged when the worker ended and the lease is dropped.
    revocations: Vec<Revocation>,
}

/// Joins the route's group on its topic (for a redelivery topic, once it exists), then runs
/// the member. A join the transport may grant later (unreachable, a coordinator moving) is
/// asked again with a doubling pause until the router stops; a refusal ends the route.
async fn join_and_run(
    route: Arc<RouteShared>,
    policy: GroupPolicy,
    mut stop: watch::Receiver<bool>,
) {
    if route.redelivery
        && let Err(error) = route
            .publisher
            .transport()
            .ensure_companion(&route.origin, &route.topic)
            .await
    {
        tracing::error!(topic = %route.topic, group = %route.group, %error, "cannot create the redelivery topic; this route does not consume it");
        return;
    }
    let start_from = route.consumer.start_from;
    let mut pause = JOIN_RETRY_FIRST;
    loop {
        if *stop.borrow() {
            return;
        }
        let consume = &route.consume;
        let join = if route.transactional {
            consume.join_transactional(&route.group, &route.topic, &policy, start_from)
        } else {
            consume.join(&route.group, &route.topic, &policy, start_from)
        };
        let joined = tokio::select! {
            joined = join => joined,
            _ = stop.changed() => return,
        };
        match joined {
            Ok(membership) => return run_member(route, membership, stop).await,
            Err(error) if error.is_retriable() => {
                tracing::warn!(topic = %route.topic, group = %route.group, %error, retry_in_ms = pause.as_millis() as u64, "cannot join the group yet; asking again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
                pause = (pause * 2).min(JOIN_RETRY_MAX);
            }
            Err(error) => {
                tracing::error!(topic = %route.topic, group = %route.group, %error, "cannot join the group; this route does not consume the topic");
                return;
            }
        }
    }
}

/// The partitions of one member: a worker per assigned partition, drained on revocation,
/// abandoned when the member was fenced, restarted after a pause when it failed.
struct Member {
    route: Arc<RouteShared>,
    slots: BTreeMap<u32, Slot>,
    workers: JoinSet<Ended>,
    worker_partitions: HashMap<Id, u32>,
    /// Partitions whose worker failed, with their lease, waiting to restart.
    resting: BTreeMap<u32, (Instant, Arc<dyn PartitionLease>)>,
}

/// A group member for one route: follows the membership's assignments and revocations, and
/// on stop leaves, drains every partition and waits for the workers.
async fn run_member(
    route: Arc<RouteShared>,
    mut membership: Box<dyn Membership>,
    mut stop: watch::Receiver<bool>,
) {
    // A partition whose worker failed is restarted after this pause, not in a tight loop.
    let restart_pause = route.consumer.poll_interval.max(Duration::from_millis(100));
    let mut member = Member {
        route,
        slots: BTreeMap::new(),
        workers: JoinSet::new(),
        worker_partitions: HashMap::new(),
        resting: BTreeMap::new(),
    };
    let mut leaving = false;
    let mut left = false;
    loop {
        if !leaving && *stop.borrow() {
            leaving = true;
            membership.leave();
            member.resting.clear();
            for slot in member.slots.values() {
                slot.control.send_replace(Command::Drain);
            }
        }
        if leaving && member.workers.is_empty() {
            return;
        }
        let next_rest = member.resting.values().map(|(at, _)| *at).min();
        tokio::select! {
            _ = stop.changed(), if !leaving => {}
            event = membership.next(), if !left => match event {
                None => left = true,
                Some(MembershipEvent::Assigned(lease)) => {
                    if !leaving {
                        member.start(lease);
                    }
                }
                Some(MembershipEvent::Revoked(revocation)) => member.revoke(revocation),
                Some(MembershipEvent::Lost) => member.abandon().await,
            },
            Some(joined) = member.workers.join_next_with_id(), if !member.workers.is_empty() => {
                let (id, ended) = match joined {
                    Ok((id, ended)) => (id, ended),
                    // A worker that panicked is a runtime bug: rest and restart it from the
                    // committed offset.
                    Err(error) => (error.id(), Ended::Failed),
                };
                member.ended(id, ended, leaving, restart_pause);
            }
            () = sleep_until_opt(next_rest) => member.restart_rested(),
        }
    }
}

impl Member {
    fn start(&mut self, lease: Arc<dyn PartitionLease>) {
        let partition = lease.partition();
        let (control, receiver) = watch::channel(Command::Run);
        let worker = partition_worker::run(self.route.clone(), lease.clone(), receiver);
        let handle = self.workers.spawn(worker);
        self.worker_partitions.insert(handle.id(), partition);
        let slot = Slot {
            control,
            lease,
            revocations: Vec::new(),
        };
        self.slots.insert(partition, slot);
    }

    /// Drains a revoked partition; acknowledged once its worker ended.
    fn revoke(&mut self, revocation: Revocation) {
        let partition = revocation.partition();
        self.resting.remove(&partition);
        let Some(slot) = self.slots.get_mut(&partition) else {
            return revocation.done();
        };
        slot.control.send_if_modified(|command| {
            let changed = *command == Command::Run;
            if changed {
                *command = Command::Drain;
            }
            changed
        });
        slot.revocations.push(revocation);
    }

    fn ended(&mut self, id: Id, ended: Ended, leaving: bool, restart_pause: Duration) {
        let partition = self
            .worker_partitions
            .remove(&id)
            .expect("a worker has a partition");
        let slot = self.slots.remove(&partition).expect("a worker has a slot");
        if ended == Ended::Failed && slot.revocations.is_empty() && !leaving {
            let at = Instant::now() + restart_pause;
            self.resting.insert(partition, (at, slot.lease));
            return;
        }
        // A fenced worker's partition is given back too: on the embedded log the membership
        // finds the member fenced and reports it lost; on Kafka the group revokes it.
        drop(slot.lease);
        for revocation in slot.revocations {
            revocation.done();
        }
    }

    fn restart_rested(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .resting
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(partition, _)| *partition)
            .collect();
        for partition in due {
            let (_, lease) = self
                .resting
                .remove(&partition)
                .expect("due partition rests");
            self.start(lease);
        }
    }

    /// A fenced member gives everything up at once, without committing: its partitions may
    /// already be someone else's.
    async fn abandon(&mut self) {
        for slot in self.slots.values() {
            slot.control.send_replace(Command::Abandon);
        }
        while self.workers.join_next().await.is_some() {}
        self.worker_partitions.clear();
        self.resting.clear();
        for (_, slot) in std::mem::take(&mut self.slots) {
            drop(slot.lease);
            for revocation in slot.revocations {
                revocation.done();
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
