//! The router: [`Route`]s (topic + group + handler + policies), [`Router`] (starts one group
//! member per route) and [`RouterHandle`] (graceful shutdown). The member task joins the
//! group, heartbeats, and starts and stops one partition worker per claimed partition.
//!
//! Not here: the group rules (`group.rs`), the per-partition consumer (`partition_worker.rs`),
//! the per-event chain (`pipeline.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use crate::bus::EmbeddedBus;
use crate::dead_letter::ensure_companion_topic;
use crate::dead_letter::{DeadLetter, DeadLetterHook};
use crate::dedupe::Inbox;
use crate::error::StartError;
use crate::group::{Group, MemberId, Refusal};
use crate::handler::Handler;
use crate::limits::{MEMBERS_MAX, RETRY_SUFFIX};
use crate::partition_worker::{self, Command, Ended};
use crate::pipeline::RouteShared;
use crate::policy::{
    ConsumerPolicy, GroupPolicy, Jitter, RetryMode, RetryPolicy, StartFrom, TimeoutPolicy,
};
use crate::redelivery::retry_topic;

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

    fn validate(&self) -> Result<(), StartError> {
        self.retry.validate()?;
        self.timeout.validate()?;
        self.consumer.validate()?;
        self.group_policy.validate()?;
        Ok(())
    }
}

/// Routes events of a bus to handlers. Build, add routes, [`start`](Router::start).
pub struct Router {
    bus: EmbeddedBus,
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
    /// A router with no routes on `bus`.
    pub fn new(bus: &EmbeddedBus) -> Router {
        Router {
            bus: bus.clone(),
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

    /// Validates every route and starts one group member per route on the current tokio
    /// runtime. Must be called from inside a runtime.
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
            if self.bus.log().topic(&route.topic).is_none() {
                return Err(StartError::UnknownTopic {
                    topic: route.topic.clone(),
                    group: route.group.clone(),
                });
            }
        }
        let (stop, _) = watch::channel(false);
        let mut members = JoinSet::new();
        for route in self.routes {
            let origin = self.bus.log().topic(&route.topic).expect("checked above");
            // Every route also consumes its topic's redelivery topic as the same group (see
            // `redelivery.rs`), except a route on a redelivery topic itself.
            let redelivery_topic = if route.topic.ends_with(RETRY_SUFFIX) {
                None
            } else {
                let name = retry_topic(&route.topic);
                let topic =
                    ensure_companion_topic(self.bus.log(), &origin, &name).map_err(|source| {
                        StartError::RedeliveryTopic {
                            topic: name,
                            source,
                        }
                    })?;
                Some(topic)
            };
            let dead_lettered = Arc::new(AtomicBool::new(false));
            let mut consumers = vec![(origin.clone(), false)];
            if let Some(topic) = &redelivery_topic {
                consumers.push((topic.clone(), true));
            }
            for (topic, redelivery) in consumers {
                let group = self.bus.coordinator().group(
                    &route.group,
                    topic.name(),
                    topic.config().partitions,
                    &route.group_policy,
                );
                if group.lock().member_count() >= MEMBERS_MAX {
                    return Err(StartError::GroupFull {
                        topic: topic.name().to_string(),
                        group: route.group,
                    });
                }
                let mut consumer = route.consumer.clone();
                if redelivery {
                    // A redelivery is never skipped, whatever a new group does on its topic.
                    consumer.start_from = StartFrom::Earliest;
                }
                let shared = Arc::new(RouteShared {
                    bus: self.bus.clone(),
                    publisher: self.bus.publisher(),
                    metrics: self.bus.metrics().route(topic.name(), &route.group),
                    topic,
                    origin: origin.clone(),
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
                });
                members.spawn(run_member(
                    shared,
                    group,
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
}

/// A group member for one route: joins, heartbeats, follows the assignment, and leaves.
async fn run_member(
    route: Arc<RouteShared>,
    group: Arc<Group>,
    policy: GroupPolicy,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = group.subscribe();
    loop {
        let member = group.lock().join(Instant::now());
        group.notify();
        tracing::info!(topic = route.topic.name(), group = %route.group, member, "joined group");
        match membership(&route, &group, &policy, member, &mut stop, &mut changes).await {
            Membership::Stopped => return,
            Membership::Fenced => {
                tracing::warn!(
                    topic = route.topic.name(),
                    group = %route.group,
                    member,
                    "fenced out of the group; rejoining"
                );
            }
        }
    }
}

enum Membership {
    Stopped,
    Fenced,
}

async fn membership(
    route: &Arc<RouteShared>,
    group: &Arc<Group>,
    policy: &GroupPolicy,
    member: MemberId,
    stop: &mut watch::Receiver<bool>,
    changes: &mut watch::Receiver<u64>,
) -> Membership {
    let mut slots: BTreeMap<u32, Slot> = BTreeMap::new();
    let mut workers: JoinSet<Ended> = JoinSet::new();
    let mut worker_partitions: HashMap<Id, u32> = HashMap::new();
    let mut heartbeat = tokio::time::interval(policy.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A partition whose worker failed is restarted after this pause, not in a tight loop.
    let restart_pause = route.consumer.poll_interval.max(Duration::from_millis(100));
    let mut resting: BTreeMap<u32, Instant> = BTreeMap::new();
    loop {
        if *stop.borrow() {
            group.lock().leave(member, Instant::now());
            group.notify();
            for slot in slots.values() {
                slot.control.send_replace(Command::Drain);
            }
            while workers.join_next().await.is_some() {}
            tracing::info!(topic = route.topic.name(), group = %route.group, member, "left group");
            return Membership::Stopped;
        }
        // Follow the assignment: drain what moved away, claim what arrived.
        changes.borrow_and_update();
        let now = Instant::now();
        let assigned: Vec<u32> = group.lock().assignment(member);
        for (partition, slot) in &slots {
            if !assigned.contains(partition) {
                slot.control.send_if_modified(|command| {
                    let changed = *command == Command::Run;
                    if changed {
                        *command = Command::Drain;
                    }
                    changed
                });
            }
        }
        let mut fenced = false;
        for partition in assigned {
            if slots.contains_key(&partition) || resting.get(&partition).is_some_and(|t| *t > now) {
                continue;
            }
            let claimed = group.lock().claim(member, partition, now);
            match claimed {
                Ok(claim) => {
                    resting.remove(&partition);
                    let (control, receiver) = watch::channel(Command::Run);
                    let worker = partition_worker::run(
                        route.clone(),
                        group.clone(),
                        partition,
                        claim,
                        receiver,
                    );
                    let handle = workers.spawn(worker);
                    worker_partitions.insert(handle.id(), partition);
                    slots.insert(partition, Slot { control });
                }
                Err(Refusal::NotYet) => {}
                Err(Refusal::Fenced) => fenced = true,
            }
        }
        if fenced {
            return abandon(slots, workers).await;
        }
        let next_rest = resting.values().min().copied();
        tokio::select! {
            _ = stop.changed() => {}
            _ = changes.changed() => {}
            _ = heartbeat.tick() => {
                let beat = {
                    let mut state = group.lock();
                    let before = state.generation();
                    state.heartbeat(member, Instant::now()).map(|after| after != before)
                };
                match beat {
                    Ok(true) => group.notify(),
                    Ok(false) => {}
                    Err(_) => return abandon(slots, workers).await,
                }
            }
            Some(joined) = workers.join_next_with_id(), if !workers.is_empty() => {
                let (id, ended) = match joined {
                    Ok((id, ended)) => (id, ended),
                    // A worker that panicked is a runtime bug; its claim guard released the
                    // partition, so rest and restart it from the committed offset.
                    Err(error) => (error.id(), Ended::Failed),
                };
                let partition = worker_partitions.remove(&id).expect("a worker has a partition");
                slots.remove(&partition);
                match ended {
                    Ended::AsAsked => {}
                    Ended::Failed => {
                        resting.insert(partition, Instant::now() + restart_pause);
                    }
                    Ended::Fenced => return abandon(slots, workers).await,
                }
            }
            () = sleep_until_opt(next_rest) => {}
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A fenced member gives everything up at once, without committing: its partitions may
/// already be someone else's.
async fn abandon(slots: BTreeMap<u32, Slot>, mut workers: JoinSet<Ended>) -> Membership {
    for slot in slots.values() {
        slot.control.send_replace(Command::Abandon);
    }
    while workers.join_next().await.is_some() {}
    Membership::Fenced
}
