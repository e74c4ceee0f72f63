//! Coalescing of concurrent sends to one partition: every `send` that arrives while the
//! partition's previous append runs waits in a queue, and the next append takes the whole
//! queue (up to [`BATCH_APPEND_RECORDS_MAX`] records) as one RecordBatch — one write and,
//! under `fsync = always`, one `fdatasync` for all of them. There is no fixed delay (unlike
//! a Kafka client's `linger.ms`): a send that finds the partition idle is appended at once,
//! alone.
//!
//! A coalesced batch is one RecordBatch, so it is stored whole or not at all: recovery after
//! a crash or a power cut cuts a torn batch whole (its CRC fails), and no send of it was
//! acknowledged. A batch the log refuses as a whole (too large, or one bad record) is
//! retried one record at a time, so only the bad records fail.
//!
//! Not here: `send_batch`, whose caller already hands over a batch (`publish.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use foldhash::fast::RandomState;
use keel_core::{NewRecord, SendError};
use keel_log::Topic;
use tokio::sync::oneshot;

use crate::bus::{EmbeddedBus, Refused};
use crate::limits::BATCH_APPEND_RECORDS_MAX;

/// The coalescers of a bus, one per partition that was sent to, by topic name and partition
/// (looked up by `&str`, so a send copies no topic name; hashed with `foldhash`, randomly
/// seeded, because SipHash of the name was ~500 instructions of every publish).
#[derive(Debug, Default)]
pub(crate) struct Coalescers {
    topics: Mutex<HashMap<String, TopicCoalescers, RandomState>>,
}

/// One topic's coalescers, by partition.
type TopicCoalescers = HashMap<u32, Arc<Coalescer>, RandomState>;

/// One partition's queue of sends and its append turn.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    waiting: Mutex<VecDeque<Waiting>>,
    /// Held by whoever appends the queue; a send that gets it finds its answer or appends.
    turn: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
struct Waiting {
    record: NewRecord,
    answer: oneshot::Sender<Result<u64, SendError>>,
}

impl Coalescers {
    pub(crate) fn partition(&self, topic: &str, partition: u32) -> Arc<Coalescer> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        // One lookup of the name per send; the name is copied once, on the topic's first.
        let partitions = match topics.get_mut(topic) {
            Some(partitions) => partitions,
            None => topics.entry(topic.to_owned()).or_default(),
        };
        partitions.entry(partition).or_default().clone()
    }
}

impl Coalescer {
    fn queued(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EmbeddedBus {
    /// Appends `record` to `partition` of `topic`, in one batch with every send waiting for
    /// the same partition; its offset once stored under the topic's policy.
    ///
    /// Cancel safety: cancel safe in the sense that matters: a batch, once taken from the
    /// queue, is appended and answered by a task of its own, whoever stops waiting; a record
    /// still queued when its sender stops waiting is appended all the same.
    pub(crate) async fn append_coalesced(
        &self,
        topic: Arc<Topic>,
        partition: u32,
        record: NewRecord,
    ) -> Result<u64, SendError> {
        let coalescer = self.coalescer(topic.name(), partition);
        let (answer, mut answered) = oneshot::channel();
        coalescer.queued().push_back(Waiting { record, answer });
        loop {
            let turn = coalescer.turn.clone().lock_owned().await;
            // A batch that took this send answered it before giving the turn back.
            if let Ok(outcome) = answered.try_recv() {
                return outcome;
            }
            let group: Vec<Waiting> = {
                let mut queued = coalescer.queued();
                let take = queued.len().min(BATCH_APPEND_RECORDS_MAX);
                queued.drain(..take).collect()
            };
            let bus = self.clone();
            let topic = topic.clone();
            // The batch runs as a task of its own holding the turn, so a caller that stops
            // waiting neither leaves its batch unanswered nor lets the next batch overtake it.
            let appended = tokio::spawn(async move {
                bus.append_group(topic, partition, group).await;
                drop(turn);
            });
            if appended.await.is_err() {
                return Err(SendError::Cancelled);
            }
        }
    }

    /// Appends `group` as one batch and answers each send; a batch refused as a whole for
    /// what its bytes are is retried one record at a time.
    async fn append_group(&self, topic: Arc<Topic>, partition: u32, group: Vec<Waiting>) {
        let (records, answers): (Vec<NewRecord>, Vec<_>) =
            group.into_iter().map(|w| (w.record, w.answer)).unzip();
        match self.append(topic.clone(), partition, records).await {
            Ok(base_offset) => {
                for (offset, answer) in (base_offset..).zip(answers) {
                    let _ = answer.send(Ok(offset));
                }
            }
            Err(Refused {
                error: SendError::Rejected { .. },
                records,
            }) if records.len() > 1 => {
                for (record, answer) in records.into_iter().zip(answers) {
                    let outcome = self.append(topic.clone(), partition, vec![record]).await;
                    let _ = answer.send(outcome.map_err(|refused| refused.error));
                }
            }
            Err(refused) => {
                for answer in answers {
                    let _ = answer.send(Err(refused.error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_core::PublishTransport;
    use keel_log::sim::SimStorage;
    use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};

    use super::*;

    /// A bus over `log` with topic `t` of one partition under `fsync`.
    fn bus(log: Log, fsync: FsyncPolicy) -> EmbeddedBus {
        log.create_topic("t", TopicConfig::new(1).with_fsync(fsync))
            .unwrap();
        EmbeddedBus::new(Arc::new(log))
    }

    /// Sends `count` records at once while the partition's turn is held, so they all queue,
    /// then lets them go: the tasks answering them.
    async fn queue_then_release(
        bus: &EmbeddedBus,
        count: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<keel_core::Published, SendError>>> {
        let coalescer = bus.coalescer("t", 0);
        let held = coalescer.turn.clone().lock_owned().await;
        let sends: Vec<_> = (0..count)
            .map(|n| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    bus.send_to("t", 0, NewRecord::new(None::<Vec<u8>>, n.to_string()))
                        .await
                })
            })
            .collect();
        while coalescer.queued().len() < count {
            tokio::task::yield_now().await;
        }
        drop(held);
        sends
    }

    /// Sends that wait while the partition appends go together in the next append: one
    /// append, one fsync, dense offsets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_sends_share_one_append() {
        let dir = tempfile::tempdir().unwrap();
        let bus = bus(Log::open(dir.path()).unwrap(), FsyncPolicy::Always);
        let partition = bus.log().topic("t").unwrap().partition(0).unwrap().clone();
        let before = partition.sync_stats();
        let mut offsets = Vec::new();
        for send in queue_then_release(&bus, 50).await {
            offsets.push(send.await.unwrap().unwrap().offset);
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..50).collect::<Vec<u64>>());
        let after = partition.sync_stats();
        assert_eq!(
            after.appends,
            before.appends + 1,
            "one append for the 50 sends"
        );
        assert_eq!(after.syncs, before.syncs + 1, "one fsync");
    }

    /// A coalesced batch cut by a power cut anywhere in its bytes is stored whole or not at
    /// all, never in part: unsynced (`fsync = never`), the cut keeps a random prefix of its
    /// bytes, and recovery drops the torn batch; acknowledged under `fsync = always`, it is
    /// all there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_coalesced_batch_survives_a_power_cut_whole_or_not_at_all() {
        let cut = |fsync: FsyncPolicy, seed: u64| async move {
            let storage = SimStorage::new();
            let options = || LogOptions {
                storage: Arc::new(storage.clone()),
                background: false,
                ..LogOptions::default()
            };
            let bus = bus(Log::open_with("/data", options()).unwrap(), fsync);
            for send in queue_then_release(&bus, 20).await {
                send.await.unwrap().unwrap();
            }
            drop(bus);
            storage.power_cut(seed);
            let log = Log::open_with("/data", options()).unwrap();
            log.topic("t")
                .unwrap()
                .partition(0)
                .unwrap()
                .high_watermark()
        };
        for seed in 0..24 {
            let stored = cut(FsyncPolicy::Never, seed).await;
            assert!(
                stored == 0 || stored == 20,
                "seed {seed}: {stored} of 20 records"
            );
        }
        assert_eq!(
            cut(FsyncPolicy::Always, 7).await,
            20,
            "acknowledged under always"
        );
    }
}
