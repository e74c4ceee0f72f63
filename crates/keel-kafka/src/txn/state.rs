//! One transactional id's state, as Kafka's transaction coordinator keeps it: the producer id
//! and epoch that own it, where its transaction stands, the partitions and consumer-group
//! offsets it holds, and its timeout. Pure data and the checks every request makes; the
//! coordinator (`mod.rs`) persists it (`store.rs`) before acting on a change.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// Where a transactional id's transaction stands (Kafka's `TransactionState`, without the
/// states of a coordinator that moves between brokers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TxnState {
    /// No transaction since the producer was initialised.
    Empty,
    /// A transaction holds partitions or offsets.
    Ongoing,
    /// Commit decided and recorded; markers being written.
    PrepareCommit,
    /// Abort decided and recorded; markers being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

/// A topic partition in a transaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct TxnPartition {
    pub(crate) topic: String,
    pub(crate) partition: u32,
}

/// A consumer-group offset committed inside a transaction (TxnOffsetCommit), visible to the
/// group only once the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingOffset {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) metadata: String,
}

/// The state of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TxnMetadata {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) timeout_ms: u32,
    pub(crate) state: TxnState,
    /// When the ongoing transaction began (its first AddPartitionsToTxn or AddOffsetsToTxn),
    /// ms since the epoch: it is aborted at `started_ms + timeout_ms`.
    pub(crate) started_ms: i64,
    pub(crate) partitions: BTreeSet<TxnPartition>,
    /// Groups added with AddOffsetsToTxn.
    pub(crate) groups: BTreeSet<String>,
    pub(crate) offsets: Vec<PendingOffset>,
    /// When this state was last stored, ms since the epoch: an id idle past
    /// `transactional_id_expiration_ms` is forgotten. 0 in states stored before it was kept
    /// (such an id counts as idle since the broker started).
    #[serde(default)]
    pub(crate) updated_ms: i64,
}

impl TxnMetadata {
    /// A new id's state: `producer_id` at epoch 0, no transaction.
    pub(crate) fn new(producer_id: i64, timeout_ms: u32) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            started_ms: 0,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: Vec::new(),
            updated_ms: 0,
        }
    }

    /// Checks a request's producer id and epoch against the owner's: an unknown id is
    /// `INVALID_PRODUCER_ID_MAPPING`, an older epoch is fenced (a newer producer with the same
    /// transactional id took over; `fenced` is the code for the request's version), a newer
    /// one is impossible and refused alike.
    pub(crate) fn check_producer(
        &self,
        producer_id: i64,
        epoch: i16,
        fenced: ResponseError,
    ) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != self.epoch {
            return Err(fenced);
        }
        Ok(())
    }

    /// Whether a commit or abort is being written out (requests wait and retry meanwhile).
    pub(crate) fn completing(&self) -> bool {
        matches!(self.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Starts a transaction at `now_ms` unless one is ongoing.
    pub(crate) fn begin(&mut self, now_ms: i64) {
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.started_ms = now_ms;
            self.partitions.clear();
            self.groups.clear();
            self.offsets.clear();
        }
    }

    /// Whether the ongoing transaction has run past its timeout at `now_ms`.
    pub(crate) fn expired(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && now_ms.saturating_sub(self.started_ms) > i64::from(self.timeout_ms)
    }

    /// Whether a transaction is begun and not complete (Kafka expires only ids without one).
    pub(crate) fn in_progress(&self) -> bool {
        matches!(
            self.state,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }

    /// Whether the id is idle past `expiration_ms` at `now_ms`: no transaction in progress
    /// and no state stored since.
    pub(crate) fn idle_expired(&self, now_ms: i64, expiration_ms: u64) -> bool {
        !self.in_progress()
            && now_ms.saturating_sub(self.updated_ms)
                > i64::try_from(expiration_ms).unwrap_or(i64::MAX)
    }

    /// The epoch after a bump, or `None` when the epoch is exhausted (a new producer id is
    /// then due, as Kafka allocates one at `Short.MAX_VALUE - 1`).
    pub(crate) fn next_epoch(&self) -> Option<i16> {
        self.epoch.checked_add(1).filter(|e| *e < i16::MAX)
    }

    /// Records a pending offset, replacing an earlier one of the same group and partition.
    pub(crate) fn pend_offset(&mut self, pending: PendingOffset) {
        self.offsets.retain(|o| {
            (&o.group, &o.topic, o.partition) != (&pending.group, &pending.topic, pending.partition)
        });
        self.offsets.push(pending);
    }

    /// Ends the transaction's bookkeeping once its markers are written.
    pub(crate) fn complete(&mut self, commit: bool) {
        self.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.partitions.clear();
        self.groups.clear();
        self.offsets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_times_out_only_while_ongoing() {
        let mut txn = TxnMetadata::new(7, 1_000);
        assert!(!txn.expired(10_000));
        txn.begin(5_000);
        assert!(!txn.expired(6_000));
        assert!(txn.expired(6_001));
        txn.complete(false);
        assert!(!txn.expired(60_000));
    }

    #[test]
    fn an_id_expires_only_when_idle_without_a_transaction() {
        let mut txn = TxnMetadata::new(7, 1_000);
        txn.updated_ms = 10_000;
        assert!(!txn.idle_expired(15_000, 5_000));
        assert!(txn.idle_expired(15_001, 5_000));
        txn.begin(10_000);
        assert!(!txn.idle_expired(99_000, 5_000));
        txn.complete(true);
        assert!(txn.idle_expired(99_000, 5_000));
    }

    #[test]
    fn producers_are_checked_by_id_then_epoch() {
        let mut txn = TxnMetadata::new(7, 1_000);
        txn.epoch = 3;
        let fenced = ResponseError::ProducerFenced;
        assert_eq!(txn.check_producer(7, 3, fenced), Ok(()));
        assert_eq!(txn.check_producer(7, 2, fenced), Err(fenced));
        assert_eq!(
            txn.check_producer(8, 3, fenced),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        txn.epoch = i16::MAX - 1;
        assert_eq!(txn.next_epoch(), None);
    }

    #[test]
    fn a_later_offset_of_a_partition_replaces_the_earlier() {
        let mut txn = TxnMetadata::new(7, 1_000);
        let at = |offset| PendingOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset,
            metadata: String::new(),
        };
        txn.pend_offset(at(5));
        txn.pend_offset(at(9));
        assert_eq!(txn.offsets, [at(9)]);
    }
}
