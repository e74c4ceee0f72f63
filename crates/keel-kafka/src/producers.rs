//! Idempotent producers: producer ids, epochs and sequence numbers per partition, so a
//! retried batch is never written twice and a gap in sequences is refused.
//!
//! Kafka's rules, per (producer id, partition): a batch continues the producer's last
//! sequence (`last + 1`, wrapping from `i32::MAX` to 0) and is appended; a batch equal to one
//! of the last [`PRODUCER_BATCHES_REMEMBERED`] is a retry whose first attempt was stored, and
//! is answered with the stored offset without writing; a newer epoch starts over at sequence
//! 0; an older epoch is fenced; anything else is out of order.
//!
//! The state is not written anywhere of its own: the batches in the log already carry
//! producer id, epoch and sequences in their headers. A partition's state is rebuilt from them
//! the first time an idempotent batch arrives for it after the broker started (one read of the
//! partition's batches, headers only), so a retry that arrives after a restart is still
//! recognised. Producer ids are allocated from the wall clock (milliseconds × 4096) and kept
//! above every id seen in a rebuild, so an id handed out after a restart is not one the log
//! already holds unless the clock went backwards. At most [`PRODUCERS_PER_PARTITION_MAX`]
//! producers are remembered per partition (the least recently appending tenth is forgotten);
//! the rebuild reads every stored batch header of the partition once, a cost paid on the
//! first idempotent batch after a start.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use keel_log::{AppendError, AppendInfo, BatchHeader, CheckedBatches, Partition, ReadError};

use crate::broker::{blocking, write_batches};
use crate::limits::{
    PRODUCER_BATCHES_REMEMBERED, PRODUCER_SCAN_CHUNK_BYTES, PRODUCERS_PER_PARTITION_MAX,
};
use crate::txn::index::{AbortedTxn, TxnIndex};
use crate::txn::markers;

/// Byte positions of the producer fields of a RecordBatch v2 header (Kafka's wire format).
mod layout {
    /// `attributes` (2 bytes).
    pub(super) const ATTRIBUTES_AT: usize = 21;
    /// `producerId` (8 bytes).
    pub(super) const PRODUCER_ID_AT: usize = 43;
    /// `producerEpoch` (2 bytes).
    pub(super) const PRODUCER_EPOCH_AT: usize = 51;
    /// `baseSequence` (4 bytes).
    pub(super) const BASE_SEQUENCE_AT: usize = 53;
    /// Attribute bit of a transactional batch.
    pub(super) const TRANSACTIONAL: i16 = 0x10;
    /// Attribute bit of a control batch (a transaction marker).
    pub(super) const CONTROL: i16 = 0x20;
}

/// The producer fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchProducer {
    /// Producer id; negative for a producer without idempotence.
    pub(crate) id: i64,
    /// Producer epoch.
    pub(crate) epoch: i16,
    /// Sequence of the first record.
    pub(crate) first_sequence: i32,
    /// Sequence of the last record.
    pub(crate) last_sequence: i32,
    /// Whether the batch belongs to a transaction.
    pub(crate) transactional: bool,
    /// Whether the batch is a control batch (a transaction marker).
    pub(crate) control: bool,
}

impl BatchProducer {
    /// Reads the producer fields of the batch whose parsed header is `header`.
    pub(crate) fn read(bytes: &[u8], header: &BatchHeader) -> BatchProducer {
        let at = |i: usize, n: usize| &bytes[i..i + n];
        let first_sequence =
            i32::from_be_bytes(at(layout::BASE_SEQUENCE_AT, 4).try_into().unwrap());
        let attributes = i16::from_be_bytes(at(layout::ATTRIBUTES_AT, 2).try_into().unwrap());
        BatchProducer {
            id: i64::from_be_bytes(at(layout::PRODUCER_ID_AT, 8).try_into().unwrap()),
            epoch: i16::from_be_bytes(at(layout::PRODUCER_EPOCH_AT, 2).try_into().unwrap()),
            first_sequence,
            last_sequence: sequence_add(first_sequence, header.last_offset_delta),
            transactional: attributes & layout::TRANSACTIONAL != 0,
            control: attributes & layout::CONTROL != 0,
        }
    }

    /// Whether the batch is from an idempotent producer.
    pub(crate) fn is_idempotent(&self) -> bool {
        self.id >= 0
    }
}

/// What happened to an idempotent batch.
#[derive(Debug)]
pub(crate) enum Idempotent {
    /// Appended at these offsets.
    Appended(AppendInfo),
    /// A retry of a stored batch: not written again; this is where the first attempt went,
    /// and one past its last offset.
    Duplicate { base_offset: u64, end: u64 },
    /// The sequence does not continue the producer's last one.
    OutOfOrder { expected: i32, got: i32 },
    /// The epoch is older than the producer's current one.
    Fenced { current: i16, got: i16 },
    /// The append failed; nothing was stored.
    Failed(AppendError),
    /// Rebuilding the partition's producer state failed.
    Rebuild(ReadError),
}

/// Producer state of every partition, and the id allocator.
#[derive(Debug)]
pub(crate) struct Producers {
    next_id: AtomicI64,
    partitions: Mutex<HashMap<(String, u32), Slot>>,
}

/// One partition's producers, behind an async lock held across check and append so two
/// batches of one partition are never checked against the same state. `None` until rebuilt.
type Slot = Arc<tokio::sync::Mutex<Option<PartitionProducers>>>;

/// A partition's rebuilt state, locked.
type SlotGuard = tokio::sync::OwnedMutexGuard<Option<PartitionProducers>>;

/// The producers of one partition.
#[derive(Debug, Default)]
struct PartitionProducers {
    by_id: HashMap<i64, ProducerEntry>,
    /// Counts appends, to find the producer that appended least recently.
    appends: u64,
    /// Open and aborted transactions, for the last stable offset and `read_committed`.
    txns: TxnIndex,
}

/// What a `read_committed` reader of a partition may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stable {
    /// The last stable offset: records at or past it are not shown.
    pub(crate) last_stable_offset: u64,
    /// Aborted transactions overlapping the range asked for.
    pub(crate) aborted: Vec<AbortedTxn>,
}

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    /// `appends` at this producer's last append.
    last_append: u64,
    /// The most recent batches, oldest first.
    batches: VecDeque<StoredBatch>,
}

#[derive(Debug, Clone, Copy)]
struct StoredBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: u64,
    /// One past the batch's last offset.
    end: u64,
}

enum Check {
    Append,
    /// A retry of a stored batch: its first offset and one past its last.
    Duplicate {
        base_offset: u64,
        end: u64,
    },
    OutOfOrder(i32),
    Fenced(i16),
}

impl Producers {
    pub(crate) fn new() -> Producers {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Producers {
            next_id: AtomicI64::new(now_ms << 12),
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// A producer id never handed out before by this broker, nor seen in a rebuilt partition.
    pub(crate) fn allocate_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Keeps future ids above `id`, one the transaction coordinator's state holds.
    pub(crate) fn keep_above(&self, id: i64) {
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
    }

    /// The partition's state, locked and rebuilt from its batches if this is its first use
    /// since the broker started.
    async fn state(
        &self,
        topic: &str,
        index: u32,
        partition: &Arc<Partition>,
    ) -> Result<SlotGuard, ReadError> {
        let slot = self
            .partitions
            .lock()
            .expect("producers lock")
            .entry((topic.to_string(), index))
            .or_default()
            .clone();
        let mut state = slot.lock_owned().await;
        if state.is_none() {
            let scanned = partition.clone();
            let rebuilt = blocking(move || rebuild(&scanned)).await?;
            if let Some(max) = rebuilt.by_id.keys().max() {
                self.keep_above(*max);
            }
            *state = Some(rebuilt);
        }
        Ok(state)
    }

    /// Writes the marker ending `producer_id`'s transaction in a partition, without waiting
    /// for durability: one past its offset, to wait for. The marker's epoch fences every
    /// older epoch of the producer there.
    pub(crate) async fn write_marker(
        &self,
        topic: &str,
        index: u32,
        partition: &Arc<Partition>,
        (producer_id, epoch): (i64, i16),
        commit: bool,
    ) -> Result<u64, String> {
        let mut state = self
            .state(topic, index, partition)
            .await
            .map_err(|e| e.to_string())?;
        let producers = state.as_mut().expect("rebuilt");
        let bytes = markers::encode(producer_id, epoch, commit, partition.now_ms());
        let max = partition.config().max_batch_bytes;
        let batches = CheckedBatches::check(bytes, max).map_err(|e| e.to_string())?;
        let writer = partition.clone();
        let info = blocking(move || writer.write_checked_batches(batches))
            .await
            .map_err(|e| e.to_string())?;
        producers.marker(producer_id, epoch, info.base_offset, commit);
        Ok(info.last_offset + 1)
    }

    /// The last stable offset of a partition (at its high watermark `high_watermark`) and
    /// the aborted transactions overlapping offsets `from..` up to it.
    pub(crate) async fn stable(
        &self,
        topic: &str,
        index: u32,
        partition: &Arc<Partition>,
        high_watermark: u64,
        from: u64,
    ) -> Result<Stable, ReadError> {
        let mut state = self.state(topic, index, partition).await?;
        let txns = &mut state.as_mut().expect("rebuilt").txns;
        let last_stable_offset = txns.last_stable_offset(high_watermark);
        let aborted = txns.aborted_in(partition.log_start_offset(), from, last_stable_offset);
        Ok(Stable {
            last_stable_offset,
            aborted,
        })
    }

    /// Forgets the state of a deleted topic, so a new topic of that name starts clean.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.partitions
            .lock()
            .expect("producers lock")
            .retain(|(name, _), _| name != topic);
    }

    /// Checks one idempotent batch against the partition's producer state and writes it when
    /// it continues its producer's sequence, without waiting for durability: a success
    /// (appended or duplicate) may be answered only once the partition is durable up to
    /// [`Idempotent::durable_end`], and the caller waits for that outside the state, so
    /// batches of other producers (and a connection's next pipelined batch) are checked and
    /// written meanwhile and share one `fdatasync`.
    ///
    /// Batches of one producer are checked and written in the order of the calls: a caller
    /// that needs a connection's order (pipelined requests) awaits one call before the next.
    pub(crate) async fn write(
        &self,
        topic: &str,
        index: u32,
        partition: &Arc<Partition>,
        producer: BatchProducer,
        batches: CheckedBatches,
    ) -> Idempotent {
        let mut state = match self.state(topic, index, partition).await {
            Ok(state) => state,
            Err(error) => return Idempotent::Rebuild(error),
        };
        let producers = state.as_mut().expect("rebuilt");
        // The check and the write happen under the partition's producer state, so batches of
        // one producer are written in sequence order. A retry that arrives while its first
        // attempt is still being synced is answered only once that attempt is durable: its
        // `end` is the first attempt's.
        match producers.check(&producer) {
            Check::Duplicate { base_offset, end } => Idempotent::Duplicate { base_offset, end },
            Check::OutOfOrder(expected) => Idempotent::OutOfOrder {
                expected,
                got: producer.first_sequence,
            },
            Check::Fenced(current) => Idempotent::Fenced {
                current,
                got: producer.epoch,
            },
            Check::Append => match write_batches(partition, batches).await {
                Ok(info) => {
                    producers.record(&producer, info);
                    if producer.transactional {
                        producers.txns.batch(producer.id, info.base_offset);
                    }
                    Idempotent::Appended(info)
                }
                Err(error) => Idempotent::Failed(error),
            },
        }
    }
}

impl Idempotent {
    /// One past the last offset that must be durable before this outcome is answered as a
    /// success; `None` for a refusal, which is answered at once.
    pub(crate) fn durable_end(&self) -> Option<u64> {
        match self {
            Idempotent::Appended(info) => Some(info.last_offset + 1),
            Idempotent::Duplicate { end, .. } => Some(*end),
            _ => None,
        }
    }
}

impl PartitionProducers {
    fn check(&self, batch: &BatchProducer) -> Check {
        let Some(entry) = self.by_id.get(&batch.id) else {
            return if batch.first_sequence == 0 {
                Check::Append
            } else {
                Check::OutOfOrder(0)
            };
        };
        if batch.epoch < entry.epoch {
            return Check::Fenced(entry.epoch);
        }
        if batch.epoch > entry.epoch {
            return if batch.first_sequence == 0 {
                Check::Append
            } else {
                Check::OutOfOrder(0)
            };
        }
        if let Some(stored) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return Check::Duplicate {
                base_offset: stored.base_offset,
                end: stored.end,
            };
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |last| sequence_add(last.last_sequence, 1));
        if batch.first_sequence == expected {
            Check::Append
        } else {
            Check::OutOfOrder(expected)
        }
    }

    /// A transaction marker of `producer_id` at `epoch`, stored at `offset`: closes its
    /// transaction, and a newer epoch than the producer's fences the older one (its
    /// remembered batches are dropped: the next epoch starts at sequence 0).
    fn marker(&mut self, producer_id: i64, epoch: i16, offset: u64, commit: bool) {
        self.txns.marker(producer_id, offset, commit);
        if let Some(entry) = self.by_id.get_mut(&producer_id)
            && epoch > entry.epoch
        {
            entry.epoch = epoch;
            entry.batches.clear();
        }
    }

    fn record(&mut self, batch: &BatchProducer, stored: AppendInfo) {
        self.appends += 1;
        if !self.by_id.contains_key(&batch.id) && self.by_id.len() >= PRODUCERS_PER_PARTITION_MAX {
            // Forget the least recent tenth at once, so eviction costs O(log n) per producer
            // amortized, also while a rebuild replays a partition with many producer ids.
            let mut ages: Vec<u64> = self.by_id.values().map(|e| e.last_append).collect();
            let keep_from = ages.len() / 10;
            let (_, &mut threshold, _) = ages.select_nth_unstable(keep_from);
            self.by_id.retain(|_, entry| entry.last_append >= threshold);
        }
        let entry = self.by_id.entry(batch.id).or_insert(ProducerEntry {
            epoch: batch.epoch,
            last_append: 0,
            batches: VecDeque::new(),
        });
        entry.last_append = self.appends;
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(StoredBatch {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            base_offset: stored.base_offset,
            end: stored.last_offset + 1,
        });
    }
}

/// Rebuilds a partition's producer state from the headers of its stored batches.
fn rebuild(partition: &Partition) -> Result<PartitionProducers, ReadError> {
    let mut producers = PartitionProducers::default();
    let mut offset = partition.log_start_offset();
    loop {
        let read = partition.read(offset, PRODUCER_SCAN_CHUNK_BYTES)?;
        if read.bytes.is_empty() {
            return Ok(producers);
        }
        let mut position = 0;
        while position < read.bytes.len() {
            let bytes = &read.bytes[position..];
            let header = BatchHeader::parse(bytes, u32::MAX)
                .map_err(|error| ReadError::Corrupt(error.to_string()))?;
            let producer = BatchProducer::read(bytes, &header);
            if producer.control {
                if let Some(commit) = markers::is_commit(&bytes[..header.size()]) {
                    producers.marker(producer.id, producer.epoch, header.base_offset, commit);
                }
            } else if producer.is_idempotent() {
                let stored = AppendInfo {
                    base_offset: header.base_offset,
                    last_offset: header.next_offset() - 1,
                };
                producers.record(&producer, stored);
                if producer.transactional {
                    producers.txns.batch(producer.id, header.base_offset);
                }
            }
            offset = offset.max(header.next_offset());
            position += header.size();
        }
        if offset >= read.high_watermark {
            return Ok(producers);
        }
    }
}

/// `sequence + n`, wrapping from `i32::MAX` to 0 as Kafka's sequences do.
fn sequence_add(sequence: i32, n: u32) -> i32 {
    ((i64::from(sequence) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, epoch: i16, first: i32, count: u32) -> BatchProducer {
        BatchProducer {
            id,
            epoch,
            first_sequence: first,
            last_sequence: sequence_add(first, count - 1),
            transactional: false,
            control: false,
        }
    }

    /// A one-record batch stored at `offset`.
    fn stored_at(offset: u64) -> AppendInfo {
        AppendInfo {
            base_offset: offset,
            last_offset: offset,
        }
    }

    /// Runs `(batch, expected)` steps through one partition's state, recording appends at
    /// increasing offsets.
    fn check(steps: &[(BatchProducer, &str)]) {
        let mut state = PartitionProducers::default();
        let mut offset = 0;
        for (i, (b, expected)) in steps.iter().enumerate() {
            let got = match state.check(b) {
                Check::Append => {
                    state.record(b, stored_at(offset));
                    offset += 10;
                    "append".to_string()
                }
                Check::Duplicate { base_offset, .. } => format!("duplicate@{base_offset}"),
                Check::OutOfOrder(want) => format!("out-of-order(want {want})"),
                Check::Fenced(current) => format!("fenced(current {current})"),
            };
            assert_eq!(&got, expected, "step {i}: {b:?}");
        }
    }

    #[test]
    fn sequences_follow_kafkas_rules() {
        check(&[
            (batch(7, 0, 0, 5), "append"),
            (batch(7, 0, 5, 5), "append"),
            (batch(7, 0, 5, 5), "duplicate@10"),
            (batch(7, 0, 0, 5), "duplicate@0"),
            (batch(7, 0, 11, 1), "out-of-order(want 10)"),
            (batch(7, 0, 10, 1), "append"),
            (batch(8, 0, 3, 1), "out-of-order(want 0)"),
            (batch(8, 0, 0, 1), "append"),
            (batch(7, 1, 4, 1), "out-of-order(want 0)"),
            (batch(7, 1, 0, 1), "append"),
            (batch(7, 0, 11, 1), "fenced(current 1)"),
            (batch(7, 1, 0, 1), "duplicate@40"),
        ]);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut steps: Vec<(BatchProducer, &str)> =
            (0..6).map(|i| (batch(1, 0, i, 1), "append")).collect();
        steps.push((batch(1, 0, 5, 1), "duplicate@50"));
        steps.push((batch(1, 0, 1, 1), "duplicate@10"));
        steps.push((batch(1, 0, 0, 1), "out-of-order(want 6)"));
        check(&steps);
    }

    #[test]
    fn the_least_recently_appending_producers_are_forgotten_past_the_limit() {
        let mut state = PartitionProducers::default();
        for id in 0..PRODUCERS_PER_PARTITION_MAX as i64 {
            state.record(&batch(id, 0, 0, 1), stored_at(id as u64));
        }
        // Producer 0 appends again, so producers 1.. are now the least recent.
        state.record(&batch(0, 0, 1, 1), stored_at(99));
        state.record(&batch(-7 + i64::MAX, 0, 0, 1), stored_at(100));
        assert_eq!(
            state.by_id.len(),
            PRODUCERS_PER_PARTITION_MAX - PRODUCERS_PER_PARTITION_MAX / 10 + 1
        );
        assert!(state.by_id.contains_key(&0));
        assert!(
            state
                .by_id
                .contains_key(&(PRODUCERS_PER_PARTITION_MAX as i64 / 10 + 1))
        );
        assert!(
            !state
                .by_id
                .contains_key(&(PRODUCERS_PER_PARTITION_MAX as i64 / 10))
        );
        assert!(!state.by_id.contains_key(&1));
        assert!(matches!(
            state.check(&batch(1, 0, 1, 1)),
            Check::OutOfOrder(0)
        ));
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(sequence_add(i32::MAX, 1), 0);
        assert_eq!(sequence_add(i32::MAX - 1, 3), 1);
        check(&[(batch(2, 0, 0, 1), "append"), (batch(2, 0, 1, 1), "append")]);
    }
}
