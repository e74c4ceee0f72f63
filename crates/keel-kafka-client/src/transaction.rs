//! Transactional routes on Kafka (EOS-v2, KIP-447): one transactional producer per group
//! member ([`MemberTransactions`]), its `transactional.id` `<prefix>-<group>-<topic>-<member>`,
//! shared by the member's partitions, which take turns holding its transaction
//! ([`LeaseTransactions`]; `transport.rs` serves the port's `keel_core::LeaseTransaction`
//! with it). A batch's offsets go
//! into the transaction with the consumer's group metadata (`send_offsets_to_transaction`),
//! so the group refuses them from a member that lost the partition; a producer fenced by
//! another with its transactional id, or any fatal producer error, stops the member: it
//! leaves the group with one error line ([`MemberTransactions::fenced`]).
//!
//! librdkafka's transaction calls block (each waits for the coordinator), so they run on
//! tokio's blocking threads.
//!
//! Not here: the batches themselves (`keel_runtime`'s partition worker), the consumer
//! (`member.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use keel_core::{CommitError, PublishTransport};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{Notify, OwnedMutexGuard};

use crate::config::KafkaConfig;
use crate::limits::TRANSACTION_TIMEOUT;
use crate::member::KafkaPartition;
use crate::publisher::{KafkaPublisher, ProducerError};

/// Members joined by this process, for unique transactional ids.
static MEMBERS: AtomicU64 = AtomicU64::new(0);

/// The transactional producer of one member.
pub(crate) struct MemberTransactions {
    transactional_id: String,
    publisher: KafkaPublisher,
    /// Held by the partition whose transaction is open.
    turn: Arc<tokio::sync::Mutex<()>>,
    fenced: AtomicBool,
    /// Woken when the producer is fenced: the membership leaves.
    fenced_signal: Notify,
}

impl MemberTransactions {
    /// Creates and initialises the member's producer (`init_transactions`, which also
    /// aborts what an earlier producer with the same id left open).
    pub(crate) async fn start(
        config: &KafkaConfig,
        group: &str,
        topic: &str,
    ) -> Result<Arc<MemberTransactions>, ProducerError> {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let member = format!(
            "{}-{started}-{}",
            std::process::id(),
            MEMBERS.fetch_add(1, Ordering::Relaxed)
        );
        let prefix = config.transactional_id_prefix();
        let transactional_id = format!("{prefix}-{group}-{topic}-{member}");
        let publisher = KafkaPublisher::transactional(config, &transactional_id)?;
        let producer = publisher.producer().clone();
        tokio::task::spawn_blocking(move || producer.init_transactions(TRANSACTION_TIMEOUT))
            .await
            .map_err(|_| ProducerError::from(KafkaError::Canceled))??;
        Ok(Arc::new(MemberTransactions {
            transactional_id,
            publisher,
            turn: Arc::new(tokio::sync::Mutex::new(())),
            fenced: AtomicBool::new(false),
            fenced_signal: Notify::new(),
        }))
    }

    /// Completes once the producer was fenced.
    ///
    /// Cancel safety: cancel safe.
    pub(crate) async fn fenced(&self) {
        let notified = self.fenced_signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.fenced.load(Ordering::SeqCst) {
            notified.await;
        }
    }

    /// The transactional id, for the member's error line.
    pub(crate) fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// Sorts a failed transaction call: a fatal one fences the member (said once);
    /// otherwise the transaction is aborted and the error is one to try again after.
    async fn failed(&self, error: KafkaError) -> CommitError {
        let fatal = match &error {
            KafkaError::Transaction(e) => e.is_fatal(),
            _ => false,
        };
        if fatal {
            if !self.fenced.swap(true, Ordering::SeqCst) {
                tracing::error!(transactional_id = %self.transactional_id, %error, "transactional producer fenced; the member leaves its group");
            }
            self.fenced_signal.notify_waiters();
            return CommitError::Fenced;
        }
        let producer = self.publisher.producer().clone();
        let aborted =
            tokio::task::spawn_blocking(move || producer.abort_transaction(TRANSACTION_TIMEOUT))
                .await;
        if let Ok(Err(abort_error)) = aborted {
            tracing::warn!(transactional_id = %self.transactional_id, error = %abort_error, "aborting the failed transaction failed");
        }
        CommitError::Unavailable {
            reason: error.to_string(),
        }
    }
}

/// One partition's share of its member's transactions.
pub(crate) struct LeaseTransactions {
    member: Arc<MemberTransactions>,
    /// The member's turn while this partition's transaction is open.
    held: Mutex<Option<OwnedMutexGuard<()>>>,
}

impl LeaseTransactions {
    pub(crate) fn new(member: Arc<MemberTransactions>) -> LeaseTransactions {
        LeaseTransactions {
            member,
            held: Mutex::new(None),
        }
    }

    fn release(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Commits the open transaction with `offset` for `partition`'s group.
    pub(crate) async fn commit_at(
        &self,
        partition: &KafkaPartition,
        offset: u64,
    ) -> Result<(), CommitError> {
        let result = self.commit_inner(partition, offset).await;
        self.release();
        result
    }

    async fn commit_inner(
        &self,
        partition: &KafkaPartition,
        offset: u64,
    ) -> Result<(), CommitError> {
        let Some(metadata) = partition.group_metadata() else {
            return Err(self.member.failed(KafkaError::Canceled).await);
        };
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                partition.topic(),
                partition.partition() as i32,
                Offset::Offset(offset as i64),
            )
            .map_err(|e| CommitError::Unavailable {
                reason: e.to_string(),
            })?;
        let producer = self.member.publisher.producer().clone();
        let committed = tokio::task::spawn_blocking(move || {
            producer.send_offsets_to_transaction(&offsets, &metadata, TRANSACTION_TIMEOUT)?;
            producer.commit_transaction(TRANSACTION_TIMEOUT)
        })
        .await
        .map_err(|e| CommitError::Unavailable {
            reason: e.to_string(),
        })?;
        match committed {
            Ok(()) => Ok(()),
            Err(error) => Err(self.member.failed(error).await),
        }
    }

    /// Aborts the open transaction (if this partition holds one) and seeks `partition` to
    /// `rewind_to`.
    pub(crate) async fn abort_at(
        &self,
        partition: &KafkaPartition,
        rewind_to: u64,
    ) -> Result<(), CommitError> {
        let holds = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if holds {
            let producer = self.member.publisher.producer().clone();
            let aborted = tokio::task::spawn_blocking(move || {
                producer.abort_transaction(TRANSACTION_TIMEOUT)
            })
            .await
            .map_err(|e| CommitError::Unavailable {
                reason: e.to_string(),
            })?;
            self.release();
            if let Err(error) = aborted {
                return Err(self.member.failed(error).await);
            }
        }
        partition
            .seek(rewind_to)
            .await
            .map_err(|e| CommitError::Unavailable {
                reason: e.to_string(),
            })
    }
}

impl LeaseTransactions {
    /// The port's `begin`: waits for the member's turn, then opens the transaction.
    pub(crate) async fn begin(&self) -> Result<(), CommitError> {
        if self.member.fenced.load(Ordering::SeqCst) {
            return Err(CommitError::Fenced);
        }
        let turn = self.member.turn.clone().lock_owned().await;
        let producer = self.member.publisher.producer().clone();
        let begun = tokio::task::spawn_blocking(move || producer.begin_transaction())
            .await
            .map_err(|e| CommitError::Unavailable {
                reason: e.to_string(),
            })?;
        match begun {
            Ok(()) => {
                *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(turn);
                Ok(())
            }
            Err(error) => Err(self.member.failed(error).await),
        }
    }

    /// The publishing half whose sends join the open transaction.
    pub(crate) fn publisher(&self) -> Arc<dyn PublishTransport> {
        Arc::new(self.member.publisher.clone())
    }
}
