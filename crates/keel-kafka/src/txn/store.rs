//! Where transaction state lives: the internal compacted topic [`TRANSACTIONS_TOPIC`] (one
//! partition, `fsync = always`), one record per transactional id whose value is its latest
//! [`TxnMetadata`] as JSON — Kafka's `__transaction_state`. A change is appended (and synced)
//! before the coordinator acts on it, and the topic is replayed when the broker starts, so a
//! transaction decided before a crash is finished after it.
//!
//! The topic is created by the first transactional producer, so a server that never sees one
//! keeps no such topic.

use std::collections::HashMap;
use std::sync::Arc;

use keel_log::{Log, NewRecord, Partition};
use tokio::sync::OnceCell;

use super::state::TxnMetadata;
use crate::broker::blocking;

/// The internal topic holding transaction state. Its `__` prefix keeps every Kafka client out.
pub const TRANSACTIONS_TOPIC: &str = "__keel_transactions";
/// Bytes read per call while replaying the topic.
const REPLAY_CHUNK_BYTES: usize = 1024 * 1024;

/// The durable record of every transactional id's state.
#[derive(Debug)]
pub(crate) struct TxnStore {
    log: Arc<Log>,
    /// Opened (and created, by the first write) once.
    partition: OnceCell<Arc<Partition>>,
}

impl TxnStore {
    /// Replays the state of every transactional id stored in `log` (none when the topic does
    /// not exist yet). A record that does not parse is an error: state is never guessed.
    pub(crate) fn open(log: Arc<Log>) -> Result<(TxnStore, HashMap<String, TxnMetadata>), String> {
        let mut ids = HashMap::new();
        let partition = OnceCell::new();
        if let Some(topic) = log.topic(TRANSACTIONS_TOPIC) {
            let stored = topic.partitions()[0].clone();
            let mut corrupt = None;
            stored
                .replay(REPLAY_CHUNK_BYTES, |record| {
                    let Some(key) = record.key else { return };
                    let id = String::from_utf8_lossy(&key).into_owned();
                    match record
                        .value
                        .map(|v| serde_json::from_slice::<TxnMetadata>(&v))
                    {
                        Some(Ok(metadata)) => {
                            ids.insert(id, metadata);
                        }
                        Some(Err(error)) => {
                            corrupt = Some(format!("transactional id {id}: {error}"))
                        }
                        None => {
                            ids.remove(&id);
                        }
                    }
                })
                .map_err(|error| format!("{TRANSACTIONS_TOPIC}: {error}"))?;
            if let Some(error) = corrupt {
                return Err(format!(
                    "{TRANSACTIONS_TOPIC}: an unreadable record: {error}"
                ));
            }
            let _ = partition.set(stored);
        }
        Ok((TxnStore { log, partition }, ids))
    }

    /// Stores `metadata` as the state of `id`, durably before returning.
    pub(crate) async fn write(&self, id: &str, metadata: &TxnMetadata) -> Result<(), String> {
        let value = serde_json::to_vec(metadata).expect("transaction state serializes");
        self.append(id, Some(value)).await
    }

    /// Forgets `id` (a tombstone, which compaction and the replay drop), durably.
    pub(crate) async fn remove(&self, id: &str) -> Result<(), String> {
        self.append(id, None).await
    }

    async fn append(&self, id: &str, value: Option<Vec<u8>>) -> Result<(), String> {
        let partition = self
            .partition
            .get_or_try_init(|| {
                let log = self.log.clone();
                blocking(move || {
                    crate::internal_topic::open_state_partition(&log, TRANSACTIONS_TOPIC)
                })
            })
            .await?
            .clone();
        let record = NewRecord {
            key: Some(id.as_bytes().to_vec().into()),
            value: value.map(Into::into),
            ..NewRecord::default()
        };
        blocking(move || partition.append(&[record]))
            .await
            .map(|_| ())
            .map_err(|error| format!("{TRANSACTIONS_TOPIC}: {error}"))
    }
}
