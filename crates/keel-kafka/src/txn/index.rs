//! One partition's transactions as a reader needs them: the first offset of every open
//! transaction (the last stable offset is the smallest) and the aborted transactions
//! (producer id, first offset, marker offset) that a `read_committed` consumer filters out.
//!
//! Pure bookkeeping, kept beside the partition's producer state (`producers.rs`), which
//! feeds it every transactional batch and every marker under the partition's lock and
//! rebuilds it from the batches on disk after a restart. It is never written anywhere of its
//! own: the log's batches and markers are the record, as in Kafka's producer-state snapshot
//! plus aborted-transaction index, which are caches of the same log.

use std::collections::{BTreeMap, VecDeque};

use crate::limits::ABORTED_TRANSACTIONS_PER_PARTITION_MAX;

/// An aborted transaction of one producer in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    /// Offset of the transaction's first batch in the partition.
    pub(crate) first_offset: u64,
    /// Offset of the abort marker.
    pub(crate) last_offset: u64,
}

/// The open and aborted transactions of one partition.
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    /// First offset of each producer's open transaction.
    open: BTreeMap<i64, u64>,
    /// Aborted transactions, oldest marker first.
    aborted: VecDeque<AbortedTxn>,
}

impl TxnIndex {
    /// A transactional batch of `producer_id` stored at `base_offset`: opens its
    /// transaction here unless one is open already.
    pub(crate) fn batch(&mut self, producer_id: i64, base_offset: u64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// A marker of `producer_id` stored at `offset` closes its open transaction (a marker
    /// with none open, as a retried EndTxn writes, changes nothing).
    pub(crate) fn marker(&mut self, producer_id: i64, offset: u64, commit: bool) {
        let Some(first_offset) = self.open.remove(&producer_id) else {
            return;
        };
        if commit {
            return;
        }
        if self.aborted.len() == ABORTED_TRANSACTIONS_PER_PARTITION_MAX {
            self.aborted.pop_front();
        }
        self.aborted.push_back(AbortedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
        });
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the high
    /// watermark when none is open. Records at or past it are not shown to `read_committed`.
    pub(crate) fn last_stable_offset(&self, high_watermark: u64) -> u64 {
        self.open
            .values()
            .copied()
            .min()
            .unwrap_or(high_watermark)
            .min(high_watermark)
    }

    /// The aborted transactions a fetch of offsets `from..to` must know of: those whose
    /// records overlap the range. Forgets those wholly before `log_start`.
    pub(crate) fn aborted_in(&mut self, log_start: u64, from: u64, to: u64) -> Vec<AbortedTxn> {
        while self
            .aborted
            .front()
            .is_some_and(|txn| txn.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
        self.aborted
            .iter()
            .filter(|txn| txn.last_offset >= from && txn.first_offset < to)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_offset_waits_for_the_oldest_open_transaction() {
        let mut index = TxnIndex::default();
        assert_eq!(index.last_stable_offset(10), 10);
        index.batch(1, 10);
        index.batch(2, 12);
        index.batch(1, 13);
        assert_eq!(index.last_stable_offset(15), 10);
        index.marker(1, 15, true);
        assert_eq!(index.last_stable_offset(16), 12);
        index.marker(2, 16, false);
        assert_eq!(index.last_stable_offset(17), 17);
        // A second marker (a retried EndTxn) closes nothing.
        index.marker(2, 17, false);
        assert_eq!(index.aborted_in(0, 0, 100).len(), 1);
    }

    #[test]
    fn a_fetch_learns_only_the_aborted_transactions_it_overlaps() {
        let mut index = TxnIndex::default();
        for (producer, first, marker) in [(1, 0, 3), (2, 5, 8), (1, 10, 12)] {
            index.batch(producer, first);
            index.marker(producer, marker, false);
        }
        let firsts = |index: &mut TxnIndex, start, from, to| -> Vec<u64> {
            index
                .aborted_in(start, from, to)
                .iter()
                .map(|t| t.first_offset)
                .collect()
        };
        assert_eq!(firsts(&mut index, 0, 0, 100), [0, 5, 10]);
        assert_eq!(firsts(&mut index, 0, 4, 9), [5]);
        assert_eq!(firsts(&mut index, 0, 8, 11), [5, 10]);
        assert_eq!(firsts(&mut index, 0, 13, 20), Vec::<u64>::new());
        assert_eq!(firsts(&mut index, 9, 0, 100), [10]);
    }
}
