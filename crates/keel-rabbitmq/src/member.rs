//! [`Member`]: one member of a group on one topic (`keel_core::Membership`). RabbitMQ 3.10
//! has no single active consumer on streams, so the group is built from two of its own
//! primitives on classic queues:
//!
//! - **presence**: every member consumes the group's members queue; its consumer count is
//!   the group's size, and RabbitMQ drops a consumer the moment its connection closes (a
//!   SIGKILLed process) or misses its heartbeats;
//! - **ownership**: a member holds a partition by consuming the partition's lease queue
//!   *exclusively* — RabbitMQ refuses a second exclusive consumer and frees the queue with
//!   the holder's connection.
//!
//! Every heartbeat interval a member computes its fair share (partitions ÷ members, rounded
//! up), gives up partitions above it (revoked, drained and committed before the lock is let
//! go, so the next holder starts at the commit) and tries to lock free ones below it. The
//! coordination runs in its own task, so [`Membership::next`] only receives and is cancel
//! safe.
//!
//! Not here: reading and committing (`lease.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keel_core::{
    BoxFuture, GroupPolicy, Membership, MembershipEvent, Revocation, StartFrom, partition_for_key,
};
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::broker::Broker;
use crate::client::{Client, ClientError};
use crate::lease::Lease;

/// A route's member on RabbitMQ: receives what its coordinator task decides.
pub(crate) struct Member {
    events: mpsc::UnboundedReceiver<MembershipEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

/// What the member's user tells its coordinator.
enum Command {
    /// The partition was drained and committed: let its lock go.
    Released(u32),
    /// Give every partition up and stop.
    Leave,
}

/// Where a member joins.
pub(crate) struct JoinSpec {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) policy: GroupPolicy,
    pub(crate) start_from: StartFrom,
    /// The member's own connection.
    pub(crate) client: Arc<Client>,
}

impl Member {
    /// Starts the coordinator of a member joining as `spec` says.
    pub(crate) fn join(broker: Arc<Broker>, spec: JoinSpec) -> Member {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let coordinator = Coordinator {
            id: member_id(),
            broker,
            spec,
            events: events_tx,
            commands: commands.clone(),
            presence: None,
            held: BTreeMap::new(),
            revoking: BTreeSet::new(),
        };
        tokio::spawn(coordinator.run(commands_rx));
        Member { events, commands }
    }
}

impl Membership for Member {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        Box::pin(self.events.recv())
    }

    fn leave(&mut self) {
        let _ = self.commands.send(Command::Leave);
    }
}

/// A lock on one partition: the channel whose exclusive consumer holds the lease queue.
struct Held {
    channel: Channel,
    _consumer: Consumer,
    /// Shared with the partition's lease; false once let go.
    held: Arc<AtomicBool>,
}

/// The member's state, owned by its task.
struct Coordinator {
    id: String,
    broker: Arc<Broker>,
    spec: JoinSpec,
    events: mpsc::UnboundedSender<MembershipEvent>,
    commands: mpsc::UnboundedSender<Command>,
    /// The presence consumer on the members queue, while connected.
    presence: Option<(Channel, Consumer)>,
    held: BTreeMap<u32, Held>,
    /// Held partitions whose revocation was sent and not yet acknowledged.
    revoking: BTreeSet<u32>,
}

impl Coordinator {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(self.spec.policy.heartbeat_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(error) = self.tick().await {
                        tracing::warn!(group = %self.spec.group, topic = %self.spec.topic,
                            %error, "RabbitMQ group member could not coordinate");
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Released(partition)) => self.release(partition).await,
                    Some(Command::Leave) | None => break,
                },
            }
        }
        self.leave(&mut commands).await;
    }

    /// Gives every partition back (drained first where the user still listens), then
    /// closes the member's connection; the events channel closes with the task.
    async fn leave(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        let active: Vec<u32> = self
            .held
            .keys()
            .filter(|p| !self.revoking.contains(p))
            .copied()
            .collect();
        for partition in active {
            self.revoke(partition);
        }
        let deadline = Instant::now() + self.spec.policy.rebalance_timeout;
        while !self.revoking.is_empty() && !self.events.is_closed() {
            match tokio::time::timeout_at(deadline, commands.recv()).await {
                Ok(Some(Command::Released(partition))) => self.release(partition).await,
                Ok(Some(Command::Leave)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for (_, held) in std::mem::take(&mut self.held) {
            held.held.store(false, Ordering::SeqCst);
        }
        self.spec.client.close().await;
    }

    async fn tick(&mut self) -> Result<(), ClientError> {
        self.present().await?;
        let members = self
            .spec
            .client
            .consumer_count(&self.members_queue())
            .await?
            .max(1);
        let partitions = self.broker.partitions(&self.spec.topic).await?;
        if partitions == 0 {
            return Ok(());
        }
        let share = partitions.div_ceil(members) as usize;
        let active = self.held.len() - self.revoking.len();
        if active > share {
            let extra: Vec<u32> = self
                .held
                .keys()
                .rev()
                .filter(|p| !self.revoking.contains(p))
                .take(active - share)
                .copied()
                .collect();
            for partition in extra {
                self.revoke(partition);
            }
            return Ok(());
        }
        let first = partition_for_key(self.id.as_bytes(), partitions);
        for step in 0..partitions {
            if self.held.len() >= share {
                break;
            }
            let partition = (first + step) % partitions;
            if !self.held.contains_key(&partition) {
                self.try_lock(partition).await?;
            }
        }
        Ok(())
    }

    /// Makes the member present in its group, joining (again) when its connection broke —
    /// after telling the user every partition was lost.
    async fn present(&mut self) -> Result<(), ClientError> {
        if self
            .presence
            .as_ref()
            .is_some_and(|(channel, _)| channel.status().connected())
        {
            return Ok(());
        }
        if !self.held.is_empty() {
            for (_, held) in std::mem::take(&mut self.held) {
                held.held.store(false, Ordering::SeqCst);
            }
            self.revoking.clear();
            let _ = self.events.send(MembershipEvent::Lost);
        }
        self.presence = None;
        let queue = self.members_queue();
        self.spec
            .client
            .declare(&queue, FieldTable::default())
            .await?;
        let channel = self.spec.client.channel().await?;
        let consumer = self
            .spec
            .client
            .bounded(
                "the members queue's consumer",
                channel.basic_consume(
                    queue.as_str().into(),
                    self.id.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        self.presence = Some((channel, consumer));
        Ok(())
    }

    /// Tries to hold `partition`: consumes its lease queue exclusively, or finds it taken.
    async fn try_lock(&mut self, partition: u32) -> Result<(), ClientError> {
        let queue = self
            .broker
            .names
            .lease(&self.spec.group, &self.spec.topic, partition);
        self.spec
            .client
            .declare(&queue, FieldTable::default())
            .await?;
        let channel = self.spec.client.channel().await?;
        let exclusive = BasicConsumeOptions {
            exclusive: true,
            ..BasicConsumeOptions::default()
        };
        let consumer = match self
            .spec
            .client
            .bounded(
                "a lease queue's exclusive consumer",
                channel.basic_consume(
                    queue.as_str().into(),
                    self.id.as_str().into(),
                    exclusive,
                    FieldTable::default(),
                ),
            )
            .await
        {
            Ok(consumer) => consumer,
            Err(ClientError::Refused(_)) => return Ok(()),
            Err(other) => return Err(other),
        };
        let held = Arc::new(AtomicBool::new(true));
        self.held.insert(
            partition,
            Held {
                channel,
                _consumer: consumer,
                held: held.clone(),
            },
        );
        let lease = Lease {
            broker: self.broker.clone(),
            client: self.spec.client.clone(),
            group: self.spec.group.clone(),
            topic: self.spec.topic.clone(),
            partition,
            start_from: self.spec.start_from,
            held,
            reading: Default::default(),
            buffer: Default::default(),
        };
        let _ = self.events.send(MembershipEvent::Assigned(Arc::new(lease)));
        Ok(())
    }

    fn revoke(&mut self, partition: u32) {
        self.revoking.insert(partition);
        let commands = self.commands.clone();
        let revocation = Revocation::new(partition, move || {
            let _ = commands.send(Command::Released(partition));
        });
        let _ = self.events.send(MembershipEvent::Revoked(revocation));
    }

    /// Lets `partition`'s lock go (its revocation was acknowledged).
    async fn release(&mut self, partition: u32) {
        self.revoking.remove(&partition);
        if let Some(held) = self.held.remove(&partition) {
            held.held.store(false, Ordering::SeqCst);
            self.spec
                .client
                .close_channel(&held.channel, "released")
                .await;
        }
    }

    fn members_queue(&self) -> String {
        self.broker
            .names
            .members(&self.spec.group, &self.spec.topic)
    }
}

/// A member id unique on this broker: the process, a counter and the time.
fn member_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("keel-{}-{n}-{nanos}", std::process::id())
}
