//! Which consumer-group offsets are held in transactions not yet complete: committed by
//! TxnOffsetCommit, waiting for their transaction's end. An OffsetFetch with
//! `require_stable` (KIP-447) answers `UNSTABLE_OFFSET_COMMIT` for those partitions, as Kafka
//! does, so a consumer taking over a partition does not start from the offset before a commit
//! that is about to land and process records twice. The transaction coordinator keeps it in
//! step with every state it stores; the group coordinator reads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::state::TxnMetadata;

/// A group's partition: (group, topic, partition).
type GroupPartition = (String, String, u32);

/// The pending offsets by transactional id. Cheap to clone; every clone sees the same set.
#[derive(Debug, Clone, Default)]
pub struct PendingOffsets(Arc<Mutex<HashMap<String, Vec<GroupPartition>>>>);

impl PendingOffsets {
    /// Whether an offset of `group` for `topic`/`partition` waits in a transaction.
    pub fn pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.0
            .lock()
            .expect("pending offsets lock")
            .values()
            .flatten()
            .any(|(g, t, p)| g == group && t == topic && i64::from(*p) == i64::from(partition))
    }

    /// Records what `id`'s stored state holds: its pending offsets until the transaction
    /// completes (a complete state holds none).
    pub(crate) fn record(&self, id: &str, txn: &TxnMetadata) {
        let mut ids = self.0.lock().expect("pending offsets lock");
        if txn.offsets.is_empty() {
            ids.remove(id);
        } else {
            let held = txn
                .offsets
                .iter()
                .map(|o| (o.group.clone(), o.topic.clone(), o.partition))
                .collect();
            ids.insert(id.to_string(), held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::PendingOffset;
    use super::*;

    #[test]
    fn offsets_are_pending_until_their_transaction_completes() {
        let pending = PendingOffsets::default();
        let mut txn = TxnMetadata::new(7, 1_000);
        txn.begin(0);
        txn.pend_offset(PendingOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            offset: 5,
            metadata: String::new(),
        });
        pending.record("id", &txn);
        assert!(pending.pending("g", "t", 1));
        assert!(!pending.pending("g", "t", 0));
        assert!(!pending.pending("other", "t", 1));
        txn.complete(true);
        pending.record("id", &txn);
        assert!(!pending.pending("g", "t", 1));
    }
}
