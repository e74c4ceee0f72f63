//! [`KafkaMember`]: one member of a Kafka consumer group on one topic, as the runtime needs
//! it — a stream of partition assignments and revocations, where a revocation completes only
//! once the partition was drained and committed ([`Revocation::done`]), per-partition record
//! fetch ([`KafkaPartition::fetch`]) and commits that tell a fenced member apart
//! ([`KafkaPartition::commit`]).
//!
//! Not here: what is done with the records (the runtime's router), publishing
//! (`publisher.rs`).
//!
//! # Threads
//!
//! librdkafka runs rebalance callbacks inside `poll` of the consumer's main queue. A
//! revocation must wait until the runtime drained the partition, which can take as long as
//! the handlers run, so the poll loop runs on a dedicated thread: blocking it in the callback
//! never stalls a tokio worker, and the tokio tasks that drain and commit keep running. The
//! wait is bounded by the rebalance timeout ([`MemberOptions::revoke_timeout`]); a partition
//! not drained by then is given up uncommitted (its records are delivered again to the next
//! owner) and its late commits are refused by the group.
//!
//! # Order and backpressure
//!
//! Each assigned partition's records are split to their own librdkafka queue
//! (`split_partition_queue`), so one partition's records arrive in offset order and one slow
//! partition never holds up another. The runtime takes records only when it has room;
//! librdkafka's prefetch stops at `queued.max.messages.kbytes` per partition (set from
//! [`MemberOptions::prefetch_kbytes_max`]), which bounds memory without pausing partitions by
//! hand. A queue signals "not empty" through a callback that wakes the partition's task, so
//! no task blocks a thread waiting for records.
//!
//! # Rebalance protocol
//!
//! The classic eager protocol (`range,roundrobin`, librdkafka's default), which `keel serve`'s
//! group coordinator and every Kafka version speak: every rebalance revokes all of a member's
//! partitions, waits for the drain, then assigns anew.

use std::collections::BTreeMap;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use keel_core::{FetchError, Record};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{Notify, mpsc};

use crate::batch_queue::BatchQueue;
use crate::config::KafkaConfig;
use crate::limits::{COMMIT_WAIT, METADATA_TIMEOUT};
use crate::record::record;

/// How a member joins and how long it waits.
#[derive(Debug, Clone)]
pub struct MemberOptions {
    /// Where a partition without a committed offset starts: the earliest stored record
    /// (`true`) or the next one written (`false`).
    pub start_earliest: bool,
    /// How long a revocation waits for the runtime to drain and commit the partition.
    pub revoke_timeout: Duration,
    /// The group session timeout (`session.timeout.ms`).
    pub session_timeout: Duration,
    /// The interval between heartbeats (`heartbeat.interval.ms`); a rebalance is noticed at
    /// the next one.
    pub heartbeat_interval: Duration,
    /// librdkafka's prefetch limit per partition queue (`queued.max.messages.kbytes`).
    pub prefetch_kbytes_max: u32,
    /// Read only committed transactions (`isolation.level=read_committed`) whatever the
    /// config says: a transactional route's member.
    pub read_committed: bool,
}

impl Default for MemberOptions {
    fn default() -> MemberOptions {
        MemberOptions {
            start_earliest: true,
            revoke_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(3),
            prefetch_kbytes_max: 4096,
            read_committed: false,
        }
    }
}

/// A change of this member's partitions.
#[derive(Debug)]
pub enum MemberEvent {
    /// The group assigned a partition: consume it from its committed offset.
    Assigned(KafkaPartition),
    /// The group takes a partition away: stop starting records, let running ones finish,
    /// commit, then call [`Revocation::done`]. The group's rebalance waits for it.
    Revoked(Revocation),
}

/// The acknowledgement a revocation waits for.
#[derive(Debug)]
pub struct Revocation {
    partition: u32,
    done: std::sync::mpsc::SyncSender<()>,
}

impl Revocation {
    /// The partition taken away.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Says the partition is drained and its progress committed; the rebalance goes on.
    pub fn done(self) {
        let _ = self.done.send(());
    }
}

/// Why a commit was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The member is no longer the partition's owner (a rebalance moved it, or the session
    /// expired): stop consuming the partition; its new owner resumes from the last commit.
    #[error("commit refused: this member no longer owns the partition ({0})")]
    Fenced(String),
    /// The commit failed for a reason that may pass (broker unreachable, a timeout).
    #[error("commit failed: {0}")]
    Failed(String),
}

type GroupConsumer = BaseConsumer<MemberContext>;

/// A member's lag: events behind per assigned partition ([`KafkaMember::lag`]).
pub type PartitionLags = Mutex<BTreeMap<u32, u64>>;

/// One group member on one topic. Dropping it leaves the group (the poll thread unsubscribes,
/// serves the final revocation, and closes the consumer, in the background).
#[derive(Debug)]
pub struct KafkaMember {
    events: mpsc::UnboundedReceiver<MemberEvent>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    lag: Arc<PartitionLags>,
    /// Why the cluster will never let this member in (set before it leaves on its own).
    refusal: Arc<OnceLock<String>>,
}

/// Why a member could not join.
#[derive(Debug, thiserror::Error)]
#[error("cannot join group '{group}' on topic '{topic}': {reason}")]
pub struct JoinError {
    group: String,
    topic: String,
    reason: String,
}

/// The librdkafka callbacks: rebalances become [`MemberEvent`]s.
struct MemberContext {
    topic: String,
    events: mpsc::UnboundedSender<MemberEvent>,
    /// The consumer itself, to split partition queues in the assignment callback (weak:
    /// the consumer owns this context).
    consumer: OnceLock<Weak<GroupConsumer>>,
    revoke_timeout: Duration,
    /// The latest lag per assigned partition, from librdkafka's statistics.
    lag: Arc<PartitionLags>,
}

impl ClientContext for MemberContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): keeps the lag of the
    /// partitions this member is assigned (`desired`), as the group's commits left it.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let lag = topic
            .partitions
            .values()
            .filter(|p| p.desired && p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| (p.partition as u32, p.consumer_lag as u64))
            .collect();
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = lag;
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, _: &GroupConsumer, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        let mut waiting = Vec::new();
        for element in partitions.elements_for_topic(&self.topic) {
            let (done, drained) = std::sync::mpsc::sync_channel(1);
            let partition = element.partition() as u32;
            let revocation = Revocation { partition, done };
            if self.events.send(MemberEvent::Revoked(revocation)).is_ok() {
                waiting.push((partition, drained));
            }
        }
        let deadline = Instant::now() + self.revoke_timeout;
        for (partition, drained) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            match drained.recv_timeout(left) {
                // Drained and committed; or the runtime dropped the revocation (it stopped),
                // so there is nothing left to wait for.
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
                Err(RecvTimeoutError::Timeout) => tracing::error!(
                    topic = %self.topic,
                    partition,
                    "partition not drained within the revoke timeout; giving it up uncommitted"
                ),
            }
        }
    }

    fn post_rebalance(&self, _: &GroupConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
                    return;
                };
                for element in partitions.elements_for_topic(&self.topic) {
                    let partition = element.partition();
                    // Split right after the assignment, before librdkafka's first fetch
                    // answer for it (that waits for the committed-offset lookup).
                    let Some(mut queue) = consumer.split_partition_queue(&self.topic, partition)
                    else {
                        tracing::error!(topic = %self.topic, partition, "cannot split the partition queue");
                        continue;
                    };
                    let Some(batches) = BatchQueue::of_partition(&consumer, &self.topic, partition)
                    else {
                        tracing::error!(topic = %self.topic, partition, "cannot read the partition queue");
                        continue;
                    };
                    let ready = Arc::new(Notify::new());
                    let wake = ready.clone();
                    queue.set_nonempty_callback(move || wake.notify_one());
                    let assigned = KafkaPartition {
                        topic: self.topic.clone(),
                        partition: partition as u32,
                        batches: Mutex::new(batches),
                        _queue: queue,
                        ready,
                        consumer: consumer.clone(),
                        pending_commit: tokio::sync::Mutex::new(None),
                    };
                    let _ = self.events.send(MemberEvent::Assigned(assigned));
                }
            }
            Rebalance::Error(error) => {
                tracing::error!(topic = %self.topic, %error, "group rebalance failed");
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

impl KafkaMember {
    /// Joins `group` on `topic` and starts the poll thread. The first assignment arrives as
    /// a [`MemberEvent`] once the group's rebalance completes.
    pub fn join(
        config: &KafkaConfig,
        group: &str,
        topic: &str,
        options: &MemberOptions,
    ) -> Result<KafkaMember, JoinError> {
        let error = |source: KafkaError| JoinError {
            group: group.to_string(),
            topic: topic.to_string(),
            reason: source.to_string(),
        };
        let (sender, events) = mpsc::unbounded_channel();
        let context = MemberContext {
            topic: topic.to_string(),
            events: sender,
            consumer: OnceLock::new(),
            revoke_timeout: options.revoke_timeout,
            lag: Arc::default(),
        };
        let lag = context.lag.clone();
        let mut client = config.consumer(group, options.start_earliest);
        client
            .set(
                "session.timeout.ms",
                options.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                options.heartbeat_interval.as_millis().to_string(),
            )
            .set(
                "queued.max.messages.kbytes",
                options.prefetch_kbytes_max.to_string(),
            );
        if options.read_committed {
            client.set("isolation.level", "read_committed");
        }
        let consumer: GroupConsumer = client.create_with_context(context).map_err(error)?;
        let consumer = Arc::new(consumer);
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        consumer.subscribe(&[topic]).map_err(error)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refusal = Arc::new(OnceLock::new());
        // Detached: it ends by itself once the member left (see `Drop`).
        let (poll_stop, poll_refusal) = (stop.clone(), refusal.clone());
        std::thread::Builder::new()
            .name(format!("keel-kafka-{group}"))
            .spawn(move || poll_loop(consumer, poll_stop, poll_refusal))
            .expect("spawn the consumer's poll thread");
        Ok(KafkaMember {
            events,
            stop,
            lag,
            refusal,
        })
    }

    /// The next change of this member's partitions; `None` once the member left — on its
    /// own when the cluster refused it (see [`KafkaMember::refusal`]).
    ///
    /// Cancel safety: cancel safe (a change not yet returned stays queued).
    pub async fn next(&mut self) -> Option<MemberEvent> {
        self.events.recv().await
    }

    /// Events behind per assigned partition (high watermark − committed offset), as
    /// librdkafka's last statistics said; empty until the first (`statistics.interval.ms`,
    /// see [`KafkaConfig`]). The handle stays valid while the member runs.
    pub fn lag(&self) -> Weak<PartitionLags> {
        Arc::downgrade(&self.lag)
    }

    /// Why the cluster refused this member for good (a denied group or topic, a refused
    /// login), in librdkafka's words; `None` while it may still join or consume.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.get().map(String::as_str)
    }

    /// Leaves the group: the final revocations still arrive through [`KafkaMember::next`]
    /// (answer them), which returns `None` when the member is gone.
    pub fn leave(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for KafkaMember {
    /// Asks the poll thread to leave and returns at once: dropping happens inside async
    /// code, which must not block on the group's LeaveGroup round trip. The thread finishes
    /// leaving in the background; revocations it sends now fail at once (nobody listens).
    fn drop(&mut self) {
        self.leave();
        self.events.close();
    }
}

/// Serves the consumer's main queue (rebalances, errors) until asked to leave, or until the
/// cluster refuses the member for good (noted in `refusal`); then unsubscribes and serves
/// the final revocation before the consumer closes.
fn poll_loop(
    consumer: Arc<GroupConsumer>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    refusal: Arc<OnceLock<String>>,
) {
    let mut leaving = false;
    loop {
        if !leaving && (stop.load(std::sync::atomic::Ordering::SeqCst) || refusal.get().is_some()) {
            leaving = true;
            consumer.unsubscribe();
        }
        if leaving && consumer.assignment().is_ok_and(|a| a.count() == 0) {
            return;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                // Every assigned partition has its own queue; a record here means the split
                // came too late for it. It is not handled here and not committed past.
                tracing::error!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    "record on the consumer's main queue; it will be delivered again after a rebalance"
                );
            }
            Some(Err(error)) if refuses_for_good(&error) => {
                tracing::error!(%error, "the cluster refuses this member; it leaves");
                let _ = refusal.set(error.to_string());
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "Kafka consumer error");
            }
        }
    }
}

/// Whether a consumer error will not go away by waiting: the ACLs deny the group or the
/// topic, or the brokers refused the login. librdkafka keeps retrying these, so a member
/// would wait for an assignment that never comes.
fn refuses_for_good(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
        )
    )
}

/// One assigned partition: its records in offset order, and commits of its progress.
pub struct KafkaPartition {
    topic: String,
    partition: u32,
    /// The partition's records, read a batch at a time; locked so that two readers never
    /// interleave their records.
    batches: Mutex<BatchQueue<MemberContext>>,
    /// The queue split off the consumer's, kept for its "not empty" callback (`ready`).
    _queue: rdkafka::consumer::base_consumer::PartitionQueue<MemberContext>,
    ready: Arc<Notify>,
    consumer: Arc<GroupConsumer>,
    /// A commit still waiting for the group coordinator after [`COMMIT_WAIT`]; the next
    /// commit waits for it instead of queueing another behind it.
    pending_commit: tokio::sync::Mutex<Option<PendingCommit>>,
}

/// A synchronous commit running on a blocking thread.
type PendingCommit = tokio::task::JoinHandle<Result<(), KafkaError>>;

impl std::fmt::Debug for KafkaPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPartition")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish()
    }
}

impl KafkaPartition {
    /// The partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The member's group metadata (generation, member id), which a transaction's offset
    /// commit carries so the group refuses it from a member that was fenced (EOS-v2).
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Notified when the partition's queue turns non-empty.
    pub fn ready(&self) -> Arc<Notify> {
        self.ready.clone()
    }

    /// The next record if one is queued, without waiting.
    pub fn try_next(&self) -> Option<Record> {
        let mut next = None;
        self.take_queued(1, |record| {
            next = Some(record);
        });
        next
    }

    /// Queued records, without waiting, in offset order, appended to `records` until those
    /// appended reach about `bytes_max` (at least one when there is one). The runtime's
    /// lease fetches through this: one lock and a few librdkafka calls per batch.
    pub fn take_bytes(&self, bytes_max: usize, records: &mut Vec<Record>) {
        let (mut bytes, mut taken) = (0, 0);
        loop {
            // librdkafka hands out whole messages: ask for as many as the records so far
            // say fit, so a batch overshoots `bytes_max` by little.
            let room = bytes_max.saturating_sub(bytes);
            let asked = match bytes.checked_div(taken) {
                None => 1,
                Some(average) => room.div_ceil(average.max(1)).max(1),
            };
            let got = self.take_queued(asked, |record| {
                bytes += record.size_bytes();
                records.push(record);
            });
            taken += got;
            if got < asked || bytes >= bytes_max {
                return;
            }
        }
    }

    /// Where the group stands on this partition: its committed offset (if any) and the
    /// partition's low and high watermarks, asked of the brokers.
    ///
    /// Cancel safety: cancel safe (reads only).
    pub async fn offsets(&self) -> Result<PartitionOffsets, FetchError> {
        let consumer = self.consumer.clone();
        let (topic, partition) = (self.topic.clone(), self.partition as i32);
        tokio::task::spawn_blocking(move || {
            let mut asked = TopicPartitionList::new();
            asked.add_partition(&topic, partition);
            let committed = consumer
                .committed_offsets(asked, METADATA_TIMEOUT)
                .map_err(|e| {
                    unavailable(format!("committed offset of {topic}/{partition}: {e}"))
                })?;
            let committed = committed
                .find_partition(&topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
                    _ => None,
                });
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, METADATA_TIMEOUT)
                .map_err(|e| unavailable(format!("watermarks of {topic}/{partition}: {e}")))?;
            Ok(PartitionOffsets {
                committed,
                low: low.max(0) as u64,
                high: high.max(0) as u64,
            })
        })
        .await
        .map_err(unavailable)?
    }

    /// Makes the next records start at `offset` (a consumer restarting from its commit).
    ///
    /// Cancel safety: cancel safe; a dropped seek may or may not have moved the position.
    pub async fn seek(&self, offset: u64) -> Result<(), FetchError> {
        let consumer = self.consumer.clone();
        let (topic, partition) = (self.topic.clone(), self.partition as i32);
        tokio::task::spawn_blocking(move || {
            consumer
                .seek(
                    &topic,
                    partition,
                    Offset::Offset(offset as i64),
                    METADATA_TIMEOUT,
                )
                .map_err(|e| unavailable(format!("seeking {topic}/{partition} to {offset}: {e}")))
        })
        .await
        .map_err(unavailable)?
    }

    /// Up to `records_max` records in offset order, waiting up to `wait` for the first.
    /// Empty when none arrived in time.
    ///
    /// Cancel safety: cancel safe; records are taken from the queue only after the wait.
    pub async fn fetch(&self, records_max: usize, wait: Duration) -> Vec<Record> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.ready.notified();
            let records = self.take(records_max);
            if !records.is_empty() {
                return records;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return self.take(records_max),
            }
        }
    }

    fn take(&self, records_max: usize) -> Vec<Record> {
        let mut records = Vec::new();
        self.take_queued(records_max, |record| {
            records.push(record);
        });
        records
    }

    /// Hands up to `messages_max` queued records to `push`, without waiting; returns how
    /// many messages were taken (fewer than asked: the queue is empty now). A fetch error
    /// is logged and skipped: the records after it are still this partition's, in order.
    fn take_queued(&self, messages_max: usize, mut push: impl FnMut(Record)) -> usize {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        batches.take(messages_max, |message| match message {
            Ok(message) => push(record(&message)),
            Err(error) => {
                tracing::warn!(topic = %self.topic, partition = self.partition, %error, "fetch error");
            }
        })
    }

    /// Commits `offset` (the next record to consume) for the group, synchronously with the
    /// coordinator, waiting at most [`COMMIT_WAIT`] for its answer.
    ///
    /// librdkafka holds a commit while the group has no coordinator (a broker died and the
    /// group's coordinator moves, which takes the cluster's broker session timeout) for up
    /// to the consumer's session timeout. The runtime starts no new records while it waits
    /// for a commit, so an unbounded wait would stop every partition of the group for as
    /// long as the coordinator is gone, although only the dead broker's partitions have to
    /// wait. Past [`COMMIT_WAIT`] this returns [`CommitError::Failed`] (the runtime goes on
    /// and commits again later) while the commit goes on in the background; the next call
    /// waits for that one first and never queues a second behind it, so commits stay in
    /// order and at most one per partition is outstanding.
    ///
    /// Cancel safety: not cancel safe: the commit runs on a blocking thread and may be
    /// stored even if this future is dropped.
    pub async fn commit(&self, offset: u64) -> Result<(), CommitError> {
        let mut pending = self.pending_commit.lock().await;
        if let Some(earlier) = pending.as_mut() {
            let answer = tokio::time::timeout(COMMIT_WAIT, earlier)
                .await
                .map_err(|_| coordinator_silent())?;
            *pending = None;
            // An earlier commit refused as fenced says this one would be too.
            if let Err(CommitError::Fenced(reason)) = joined(answer) {
                return Err(CommitError::Fenced(reason));
            }
        }
        let consumer = self.consumer.clone();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                &self.topic,
                self.partition as i32,
                Offset::Offset(offset as i64),
            )
            .map_err(|e| CommitError::Failed(e.to_string()))?;
        let commit = pending.insert(tokio::task::spawn_blocking(move || {
            consumer.commit(&offsets, CommitMode::Sync)
        }));
        let answer = tokio::time::timeout(COMMIT_WAIT, commit)
            .await
            .map_err(|_| coordinator_silent())?;
        *pending = None;
        joined(answer)
    }
}

/// The answer of a commit's blocking thread as the port's error.
fn joined(
    answer: Result<Result<(), KafkaError>, tokio::task::JoinError>,
) -> Result<(), CommitError> {
    answer
        .map_err(|e| CommitError::Failed(e.to_string()))?
        .map_err(commit_error)
}

/// The error of a commit not answered within [`COMMIT_WAIT`].
fn coordinator_silent() -> CommitError {
    CommitError::Failed(format!(
        "the group coordinator did not answer within {COMMIT_WAIT:?}; the commit goes on in the background"
    ))
}

/// A partition's committed offset and watermarks ([`KafkaPartition::offsets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The group's committed offset, if it has one.
    pub committed: Option<u64>,
    /// The first stored offset.
    pub low: u64,
    /// One past the last stored offset.
    pub high: u64,
}

/// Sorts librdkafka's commit errors: the ones that mean "not yours any more" fence.
fn commit_error(error: KafkaError) -> CommitError {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::State,
        ) => CommitError::Fenced(error.to_string()),
        _ => CommitError::Failed(error.to_string()),
    }
}

/// The port's error for a read the brokers could not answer.
fn unavailable(reason: impl std::fmt::Display) -> FetchError {
    FetchError::Unavailable {
        reason: reason.to_string(),
    }
}
