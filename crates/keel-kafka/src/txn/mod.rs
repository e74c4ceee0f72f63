//! The transaction coordinator of `keel serve` (KIP-98, with KIP-360's epoch bumps), behind
//! InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit and EndTxn (`api/`).
//!
//! - `state.rs`: one transactional id's state and the checks each request makes.
//! - `store.rs`: that state in the internal topic `__keel_transactions`, replayed at start.
//! - `markers.rs`: the commit and abort markers (control batches) written at the end.
//! - `pending.rs`: the group offsets held in unfinished transactions, for OffsetFetch's
//!   `require_stable`.
//! - `index.rs`: each partition's open and aborted transactions, kept beside its producer
//!   state (`producers.rs`), for the last stable offset and `read_committed` fetches.
//!
//! How a transaction ends: the decision (`PrepareCommit`/`PrepareAbort`) is stored first,
//! then a marker is written to every partition of the transaction and made durable, then (on
//! commit) its consumer-group offsets are committed, then the end (`Complete*`) is stored,
//! and only then is EndTxn answered. A crash between the decision and the end is finished
//! when the broker starts again, from the stored decision: markers are written again (a
//! second marker of a producer with no open transaction changes nothing) and the offsets
//! committed again (the same values). Kafka answers EndTxn once the decision is stored and
//! writes markers afterwards; Keel answers later, so a client that commits and then reads
//! sees its transaction's records at once.
//!
//! One coordinator for every transactional id: `keel serve` is one node, so the coordinator
//! epoch written into markers is always 0.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use keel_log::{Clock, FsyncPolicy, OffsetCommit, SystemClock};
use tokio::sync::OnceCell;

use crate::broker::{Broker, blocking};
use crate::limits::{TRANSACTION_TIMEOUT_MS_MAX, TRANSACTIONAL_IDS_MAX};
use crate::metrics::BrokerMetrics;

pub(crate) mod index;
pub(crate) mod markers;
mod pending;
mod state;
mod store;

pub use pending::PendingOffsets;
pub(crate) use state::{PendingOffset, TxnPartition};
use state::{TxnMetadata, TxnState};
pub use store::TRANSACTIONS_TOPIC;
use store::TxnStore;

/// The transaction coordinator; its state is read from the log on first use.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    loaded: OnceCell<Loaded>,
    /// Shared with the group coordinator (through each group request) from the start.
    pub(crate) pending: PendingOffsets,
}

/// One transactional id's state, behind an async lock held for a whole request (an EndTxn
/// holds it while its markers are written). `None` for an id whose creation failed to store.
type Entry = Arc<tokio::sync::Mutex<Option<TxnMetadata>>>;

#[derive(Debug)]
struct Loaded {
    store: TxnStore,
    ids: Mutex<HashMap<String, Entry>>,
    pending: PendingOffsets,
    /// Ids with a transaction in progress, for `keel_kafka_transactions_ongoing`.
    in_progress: Mutex<HashSet<String>>,
    metrics: BrokerMetrics,
}

/// The error code for a producer whose epoch is older than its transactional id's current
/// one: `PRODUCER_FENCED` from the request version that knows it (KIP-588), before that
/// `INVALID_PRODUCER_EPOCH`, as Kafka answers each.
pub(crate) fn fenced(api_key: ApiKey, version: i16) -> ResponseError {
    let first = match api_key {
        ApiKey::InitProducerId => 4,
        ApiKey::TxnOffsetCommit => 3,
        ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => 2,
        _ => i16::MAX,
    };
    if version >= first {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

impl Transactions {
    /// InitProducerId with a transactional id: the producer id and epoch of the id's new
    /// owner. A new id gets a new producer id at epoch 0; a known one the next epoch, which
    /// fences the previous owner, after aborting the transaction it left open. A request
    /// naming its current producer id and epoch (KIP-360) must name the id's current ones.
    pub(crate) async fn init_producer_id(
        &self,
        broker: &Broker,
        id: &str,
        timeout_ms: i32,
        producer: (i64, i16),
        fenced: ResponseError,
    ) -> Result<(i64, i16), ResponseError> {
        let timeout_ms = u32::try_from(timeout_ms)
            .ok()
            .filter(|t| (1..=TRANSACTION_TIMEOUT_MS_MAX).contains(t))
            .ok_or(ResponseError::InvalidTransactionTimeout)?;
        let loaded = self.loaded(broker).await?;
        let entry = loaded.entry_or_new(id)?;
        let mut guard = entry.lock().await;
        let Some(txn) = guard.as_mut() else {
            let mut txn = TxnMetadata::new(broker.producers.allocate_id(), timeout_ms);
            loaded.store(id, &mut txn).await?;
            let owner = (txn.producer_id, txn.epoch);
            *guard = Some(txn);
            return Ok(owner);
        };
        if producer.0 >= 0 && producer != (txn.producer_id, txn.epoch) {
            return Err(fenced);
        }
        if txn.completing() {
            let commit = txn.state == TxnState::PrepareCommit;
            loaded.finish(broker, id, txn, commit).await?;
        }
        if txn.state == TxnState::Ongoing {
            // The abort markers carry a newer epoch than the producer's, so its batches
            // still in flight are refused from here on.
            txn.epoch = txn.epoch.saturating_add(1);
            tracing::info!(
                transactional_id = id,
                "a new producer took over: its predecessor's open transaction is aborted"
            );
            loaded.finish(broker, id, txn, false).await?;
        }
        match txn.next_epoch() {
            Some(epoch) => txn.epoch = epoch,
            None => {
                txn.producer_id = broker.producers.allocate_id();
                txn.epoch = 0;
            }
        }
        txn.timeout_ms = timeout_ms;
        txn.state = TxnState::Empty;
        loaded.store(id, txn).await?;
        Ok((txn.producer_id, txn.epoch))
    }

    /// AddPartitionsToTxn: `partitions` (checked to exist by the caller) join the
    /// transaction, which begins if none is ongoing.
    pub(crate) async fn add_partitions(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        partitions: Vec<TxnPartition>,
        fenced: ResponseError,
    ) -> Result<(), ResponseError> {
        self.change(broker, id, producer, fenced, |txn, now_ms| {
            if txn.state == TxnState::Ongoing
                && partitions.iter().all(|p| txn.partitions.contains(p))
            {
                return false;
            }
            txn.begin(now_ms);
            txn.partitions.extend(partitions);
            true
        })
        .await
    }

    /// AddOffsetsToTxn: `group`'s offsets may be committed in the transaction.
    pub(crate) async fn add_offsets(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        group: String,
        fenced: ResponseError,
    ) -> Result<(), ResponseError> {
        self.change(broker, id, producer, fenced, |txn, now_ms| {
            if txn.state == TxnState::Ongoing && txn.groups.contains(&group) {
                return false;
            }
            txn.begin(now_ms);
            txn.groups.insert(group);
            true
        })
        .await
    }

    /// TxnOffsetCommit: offsets of a group added with AddOffsetsToTxn, committed to the
    /// group when the transaction commits (and dropped if it aborts).
    pub(crate) async fn commit_offsets(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        offsets: Vec<PendingOffset>,
        fenced: ResponseError,
    ) -> Result<(), ResponseError> {
        let mut refused = None;
        self.change(broker, id, producer, fenced, |txn, _| {
            if txn.state != TxnState::Ongoing
                || offsets.iter().any(|o| !txn.groups.contains(&o.group))
            {
                refused = Some(ResponseError::InvalidTxnState);
                return false;
            }
            offsets.into_iter().for_each(|o| txn.pend_offset(o));
            true
        })
        .await?;
        refused.map_or(Ok(()), Err)
    }

    /// EndTxn: commits or aborts the ongoing transaction (see the module's docs for the
    /// steps). Repeating the end just made succeeds; anything else is `INVALID_TXN_STATE`.
    pub(crate) async fn end(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        commit: bool,
        fenced: ResponseError,
    ) -> Result<(), ResponseError> {
        let loaded = self.loaded(broker).await?;
        let entry = loaded.entry(id)?;
        let mut guard = entry.lock().await;
        let txn = guard
            .as_mut()
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        txn.check_producer(producer.0, producer.1, fenced)?;
        match (txn.state, commit) {
            (TxnState::Ongoing, _) => loaded.finish(broker, id, txn, commit).await,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                loaded.finish(broker, id, txn, commit).await
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Whether `producer` may write a transactional batch to a partition: it must own `id`
    /// and have added the partition to its ongoing transaction (`INVALID_TXN_STATE`
    /// otherwise, as Kafka's partition verification answers).
    pub(crate) async fn check_produce(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        partition: TxnPartition,
    ) -> Result<(), ResponseError> {
        let loaded = self.loaded(broker).await?;
        let entry = loaded.entry(id)?;
        let guard = entry.lock().await;
        let txn = guard
            .as_ref()
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        txn.check_producer(producer.0, producer.1, ResponseError::InvalidProducerEpoch)?;
        if txn.state != TxnState::Ongoing || !txn.partitions.contains(&partition) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// Aborts every transaction past its timeout, fencing its producer (a new epoch) so a
    /// producer that wakes up late cannot go on writing into an aborted transaction. Ids
    /// busy with a request are left for the next call.
    pub(crate) async fn expire(&self, broker: &Broker) {
        let Ok(loaded) = self.loaded(broker).await else {
            return;
        };
        let now_ms = SystemClock.now_ms();
        for (id, entry) in loaded.entries() {
            let Ok(mut guard) = entry.try_lock() else {
                continue;
            };
            let Some(txn) = guard.as_mut().filter(|txn| txn.expired(now_ms)) else {
                continue;
            };
            tracing::warn!(
                transactional_id = id,
                timeout_ms = txn.timeout_ms,
                "transaction timed out: aborted and its producer fenced"
            );
            txn.epoch = txn.epoch.saturating_add(1);
            match loaded.finish(broker, &id, txn, false).await {
                Ok(()) => broker.metrics.transaction_timed_out(),
                Err(error) => tracing::error!(
                    transactional_id = id,
                    ?error,
                    "timed-out transaction not aborted; retried"
                ),
            }
        }
        loaded.forget_idle(broker, now_ms).await;
    }

    /// Applies `change` to `id`'s state after checking the producer, and stores the result
    /// when `change` says it changed anything.
    async fn change(
        &self,
        broker: &Broker,
        id: &str,
        producer: (i64, i16),
        fenced: ResponseError,
        change: impl FnOnce(&mut TxnMetadata, i64) -> bool,
    ) -> Result<(), ResponseError> {
        let loaded = self.loaded(broker).await?;
        let entry = loaded.entry(id)?;
        let mut guard = entry.lock().await;
        let txn = guard
            .as_mut()
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        txn.check_producer(producer.0, producer.1, fenced)?;
        if txn.completing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let before = txn.clone();
        if change(txn, SystemClock.now_ms())
            && let Err(error) = loaded.store(id, txn).await
        {
            *txn = before;
            return Err(error);
        }
        Ok(())
    }

    /// The coordinator's state, replayed from the log on first use; transactions decided
    /// before the broker stopped are finished here. Refused with `COORDINATOR_NOT_AVAILABLE`
    /// (which clients retry) when the state cannot be read.
    async fn loaded(&self, broker: &Broker) -> Result<&Loaded, ResponseError> {
        self.loaded
            .get_or_try_init(|| async {
                let log = broker.log.clone();
                let (store, stored) =
                    blocking(move || TxnStore::open(log))
                        .await
                        .map_err(|error| {
                            tracing::error!(%error, "transaction state could not be read");
                            ResponseError::CoordinatorNotAvailable
                        })?;
                let mut ids = HashMap::with_capacity(stored.len());
                let mut unfinished = Vec::new();
                for (id, txn) in stored {
                    broker.producers.keep_above(txn.producer_id);
                    self.pending.record(&id, &txn);
                    if txn.completing() {
                        unfinished.push(id.clone());
                    }
                    ids.insert(id, Arc::new(tokio::sync::Mutex::new(Some(txn))));
                }
                let loaded = Loaded {
                    store,
                    ids: Mutex::new(ids),
                    pending: self.pending.clone(),
                    in_progress: Mutex::default(),
                    metrics: broker.metrics.clone(),
                };
                for (id, entry) in loaded.ids.lock().expect("transactions lock").iter() {
                    if let Ok(guard) = entry.try_lock()
                        && let Some(txn) = guard.as_ref()
                    {
                        loaded.count_in_progress(id, txn);
                    }
                }
                for id in unfinished {
                    let entry = loaded.entry(&id)?;
                    let mut guard = entry.lock().await;
                    let txn = guard.as_mut().expect("stored");
                    let commit = txn.state == TxnState::PrepareCommit;
                    tracing::info!(
                        transactional_id = id,
                        commit,
                        "finishing a transaction decided before the restart"
                    );
                    loaded.finish(broker, &id, txn, commit).await?;
                }
                Ok(loaded)
            })
            .await
    }
}

impl Loaded {
    /// Every id and its entry, copied out so the map's lock is not held while they are used.
    fn entries(&self) -> Vec<(String, Entry)> {
        self.ids
            .lock()
            .expect("transactions lock")
            .iter()
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect()
    }

    /// The entry of a known id; an unknown one is `INVALID_PRODUCER_ID_MAPPING`.
    fn entry(&self, id: &str) -> Result<Entry, ResponseError> {
        self.ids
            .lock()
            .expect("transactions lock")
            .get(id)
            .cloned()
            .ok_or(ResponseError::InvalidProducerIdMapping)
    }

    /// The entry of `id`, added empty when new (within [`TRANSACTIONAL_IDS_MAX`]).
    fn entry_or_new(&self, id: &str) -> Result<Entry, ResponseError> {
        let mut ids = self.ids.lock().expect("transactions lock");
        if let Some(entry) = ids.get(id) {
            return Ok(entry.clone());
        }
        if ids.len() >= TRANSACTIONAL_IDS_MAX {
            tracing::warn!(
                transactional_id = id,
                "refused: the server holds {TRANSACTIONAL_IDS_MAX} transactional ids"
            );
            return Err(ResponseError::PolicyViolation);
        }
        Ok(ids.entry(id.to_string()).or_default().clone())
    }

    /// Stores `txn` as `id`'s state (stamped with the time, for the idle expiry), then
    /// updates what is derived from it: pending offsets and the ongoing gauge.
    async fn store(&self, id: &str, txn: &mut TxnMetadata) -> Result<(), ResponseError> {
        txn.updated_ms = SystemClock.now_ms();
        self.store.write(id, txn).await.map_err(|error| {
            tracing::error!(transactional_id = id, %error, "transaction state not stored");
            ResponseError::CoordinatorNotAvailable
        })?;
        self.pending.record(id, txn);
        self.count_in_progress(id, txn);
        Ok(())
    }

    fn count_in_progress(&self, id: &str, txn: &TxnMetadata) {
        let mut ids = self.in_progress.lock().expect("in-progress lock");
        if txn.in_progress() {
            ids.insert(id.to_string());
        } else {
            ids.remove(id);
        }
        self.metrics.transactions_ongoing(ids.len());
    }

    /// Forgets every id idle past the broker's `transactional_id_expiration_ms` (Kafka's
    /// `transactional.id.expiration.ms`): a tombstone in the store, then out of memory. Ids
    /// a request holds or waits for are kept; the next request for a forgotten id finds it
    /// gone (`INVALID_PRODUCER_ID_MAPPING`, or a new producer id on
    /// InitProducerId), as after Kafka's expiry.
    async fn forget_idle(&self, broker: &Broker, now_ms: i64) {
        let expiration_ms = broker.config.transactional_id_expiration_ms;
        for (id, entry) in self.entries() {
            let Ok(mut guard) = entry.try_lock() else {
                continue;
            };
            if !guard
                .as_ref()
                .is_some_and(|txn| txn.idle_expired(now_ms, expiration_ms))
            {
                continue;
            }
            if let Err(error) = self.store.remove(&id).await {
                tracing::error!(transactional_id = id, %error, "idle transactional id not forgotten; retried");
                continue;
            }
            // Out of the map only if no request took the entry meanwhile (the map's reference
            // and this loop's are then the only ones; requests take theirs under this lock);
            // the entry's lock, held since before the tombstone, keeps a new state of the id
            // from being stored before it.
            let taken = {
                let mut ids = self.ids.lock().expect("transactions lock");
                let taken = Arc::strong_count(&entry) > 2;
                if !taken {
                    ids.remove(&id);
                }
                taken
            };
            if taken {
                // A request waits for it: it stays, stored again (store logs a failure).
                if let Some(txn) = guard.as_mut() {
                    let _ = self.store(&id, txn).await;
                }
                continue;
            }
            *guard = None;
            tracing::info!(
                transactional_id = id,
                expiration_ms,
                "idle transactional id forgotten"
            );
            broker.metrics.transactional_id_expired();
        }
    }

    /// Ends `txn` as committed or aborted: the decision stored, markers written and
    /// durable, offsets committed (on commit), the end stored. On an error the decision
    /// stays stored and is finished by the next EndTxn, InitProducerId or restart.
    async fn finish(
        &self,
        broker: &Broker,
        id: &str,
        txn: &mut TxnMetadata,
        commit: bool,
    ) -> Result<(), ResponseError> {
        txn.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.store(id, txn).await?;
        let producer = (txn.producer_id, txn.epoch);
        let mut written = Vec::with_capacity(txn.partitions.len());
        for TxnPartition { topic, partition } in &txn.partitions {
            let Some(stored) = broker
                .log
                .topic(topic)
                .and_then(|t| t.partition(*partition).cloned())
            else {
                // Deleted since: nothing left to mark.
                continue;
            };
            let end = broker
                .producers
                .write_marker(topic, *partition, &stored, producer, commit)
                .await
                .map_err(|error| {
                    tracing::error!(transactional_id = id, topic, partition, %error, "transaction marker not written");
                    ResponseError::KafkaStorageError
                })?;
            written.push((stored, end));
        }
        // Durable together: the partitions' syncs run at once, not one after another.
        let waits = written.into_iter().map(|(partition, end)| {
            tokio::spawn(async move {
                if partition.config().fsync == FsyncPolicy::Always {
                    blocking(move || partition.wait_durable(end)).await
                } else {
                    partition.wait_durable(end)
                }
            })
        });
        for wait in waits.collect::<Vec<_>>() {
            let durable = wait
                .await
                .expect("a marker's durability wait does not panic");
            durable.map_err(|error| {
                tracing::error!(transactional_id = id, %error, "transaction marker not durable");
                ResponseError::KafkaStorageError
            })?;
        }
        if commit && !txn.offsets.is_empty() {
            let mut by_group: HashMap<String, Vec<OffsetCommit>> = HashMap::new();
            for o in &txn.offsets {
                by_group
                    .entry(o.group.clone())
                    .or_default()
                    .push(OffsetCommit {
                        topic: o.topic.clone(),
                        partition: o.partition,
                        offset: o.offset,
                        metadata: o.metadata.clone(),
                    });
            }
            let log = broker.log.clone();
            blocking(move || {
                let now_ms = SystemClock.now_ms();
                by_group
                    .iter()
                    .try_for_each(|(group, commits)| log.group_offsets().commit(group, commits, now_ms))
            })
            .await
            .map_err(|error| {
                tracing::error!(transactional_id = id, %error, "transaction's offsets not committed");
                ResponseError::KafkaStorageError
            })?;
        }
        txn.complete(commit);
        self.store(id, txn).await?;
        self.metrics.transaction_ended(commit);
        Ok(())
    }
}
