//! [`Acls`]: the set of ACL bindings, kept in the internal compacted topic [`ACLS_TOPIC`] (one
//! partition, `fsync = always`) and in memory.
//!
//! One record per binding: the key is the binding as JSON, the value `1` while it exists and
//! a tombstone once deleted, so compaction keeps exactly the live set. A change is appended
//! (and fsynced) before memory changes, under one lock, as the user database does.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use keel_log::{Log, NewRecord, Partition};

use super::{AclBinding, AclFilter};

/// The internal topic holding the ACLs. Its `__` prefix keeps every Kafka client out.
pub const ACLS_TOPIC: &str = "__keel_acls";
/// Most bindings a server keeps.
pub const ACLS_MAX: usize = 10_000;
/// Bytes read per call while replaying the topic.
const REPLAY_CHUNK_BYTES: usize = 1024 * 1024;

/// Why the ACLs could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AclsError {
    /// The ACL topic could not be created, read or appended to.
    #[error("ACL topic {ACLS_TOPIC}: {0}")]
    Storage(String),
    /// A stored record does not parse.
    #[error("ACL topic {ACLS_TOPIC}: an unreadable record: {0}")]
    Corrupt(String),
    /// [`ACLS_MAX`] bindings exist already.
    #[error("the server already holds {ACLS_MAX} ACLs")]
    TooMany,
}

/// The ACL bindings of a data directory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Acls {
    partition: std::sync::Arc<Partition>,
    bindings: Mutex<BTreeSet<AclBinding>>,
}

impl Acls {
    /// Opens the ACLs of `log`, creating the topic if missing and replaying it.
    pub fn open(log: &Log) -> Result<Acls, AclsError> {
        let partition = crate::internal_topic::open_state_partition(log, ACLS_TOPIC)
            .map_err(AclsError::Storage)?;
        let mut bindings = BTreeSet::new();
        let mut corrupt = None;
        partition
            .replay(REPLAY_CHUNK_BYTES, |record| {
                let Some(key) = record.key else { return };
                match serde_json::from_slice::<AclBinding>(&key) {
                    Ok(binding) if record.value.is_some() => {
                        bindings.insert(binding);
                    }
                    Ok(binding) => {
                        bindings.remove(&binding);
                    }
                    Err(error) => corrupt = corrupt.take().or(Some(error.to_string())),
                }
            })
            .map_err(|e| AclsError::Storage(e.to_string()))?;
        if let Some(reason) = corrupt {
            return Err(AclsError::Corrupt(reason));
        }
        Ok(Acls {
            partition,
            bindings: Mutex::new(bindings),
        })
    }

    /// The bindings `filter` matches, in a stable order.
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.lock()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Calls `visit` with every binding, under the lock (the authorizer's read path, which
    /// copies nothing).
    pub(crate) fn each(&self, mut visit: impl FnMut(&AclBinding)) {
        self.lock().iter().for_each(&mut visit);
    }

    /// Adds `binding` (validated by the caller); durable when it returns. Adding one that
    /// exists changes nothing.
    pub fn add(&self, binding: AclBinding) -> Result<(), AclsError> {
        let mut bindings = self.lock();
        if bindings.contains(&binding) {
            return Ok(());
        }
        if bindings.len() >= ACLS_MAX {
            return Err(AclsError::TooMany);
        }
        self.store(&binding, true)?;
        bindings.insert(binding);
        Ok(())
    }

    /// Removes the bindings `filter` matches and returns them; durable when it returns.
    pub fn remove(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, AclsError> {
        let mut bindings = self.lock();
        let removed: Vec<AclBinding> = bindings
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect();
        for binding in &removed {
            self.store(binding, false)?;
            bindings.remove(binding);
        }
        Ok(removed)
    }

    fn store(&self, binding: &AclBinding, live: bool) -> Result<(), AclsError> {
        let key = Bytes::from(serde_json::to_vec(binding).expect("a binding serializes"));
        let record = NewRecord {
            value: live.then(|| Bytes::from_static(b"1")),
            ..NewRecord::new(Some(key), Bytes::new())
        };
        self.partition
            .append(&[record])
            .map_err(|e| AclsError::Storage(e.to_string()))?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<AclBinding>> {
        self.bindings.lock().expect("ACL lock")
    }
}
