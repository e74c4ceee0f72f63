//! [`KafkaTransport`]: the consuming half of the port (`keel_core::ConsumeTransport`) on a
//! Kafka cluster or `keel serve`, and the runtime's [`Transport`] on it, so a
//! `keel_runtime::Router` runs the same routes — handlers, inbox, retries, retry topics,
//! dead letters — on Kafka:
//!
//! ```no_run
//! # use keel_kafka_client::{KafkaConfig, KafkaTransport};
//! # use keel_runtime::{Handler, Route, Router};
//! # fn routes(handler: Handler) -> Result<(), Box<dyn std::error::Error>> {
//! let kafka = KafkaTransport::connect(&KafkaConfig::new("127.0.0.1:9092"))?;
//! let router = Router::new(&kafka) // as Router::new(&bus)
//!     .route(Route::new("orders", "billing", handler))
//!     .start()?;
//! # Ok(()) }
//! ```
//!
//! Group membership is [`KafkaMember`] (a librdkafka group consumer per route and topic);
//! a partition lease is a [`KafkaPartition`] plus the record it looked at last; redeliveries
//! and dead letters are produced to `<topic>.retry` and `<topic>.dlq`, created with the
//! topic's partition count when missing.
//!
//! Lag and dead-letter gauges: `gauges.rs`.
//!
//! Not here: the consumer runtime's logic (`keel-runtime`), rdkafka's group protocol
//! (`member.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use keel_core::{
    BoxFuture, Clock, CommitError, ConsumeTransport, FetchError, GroupPolicy, LeaseStart,
    LeaseTransaction, Membership, MembershipEvent, PartitionLease, PublishTransport, Record,
    Revocation, StartFrom, SystemClock, TransportError,
};
use keel_runtime::{Metrics, Publisher, Transport, wait_for_signal};

use crate::config::KafkaConfig;
use crate::gauges::KafkaGauges;
use crate::member::{self, KafkaMember, KafkaPartition, MemberEvent, MemberOptions};
use crate::publisher::{KafkaPublisher, ProducerError};
use crate::transaction::{LeaseTransactions, MemberTransactions};
use crate::uncommitted::Uncommitted;

/// A Kafka cluster as the runtime's transport. Holds one producer (redeliveries, dead
/// letters, and the publisher handlers get) and the routes' metrics; each route's member
/// is its own librdkafka consumer. Cheap to clone; clones share all of it.
#[derive(Clone)]
pub struct KafkaTransport {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    publisher: KafkaPublisher,
    metrics: Metrics,
    gauges: Arc<KafkaGauges>,
    prefetch_kbytes_max: u32,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers())
            .finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// A transport on the cluster `config` names. Connects lazily, like [`KafkaPublisher`].
    pub fn connect(config: &KafkaConfig) -> Result<KafkaTransport, ProducerError> {
        let gauges = Arc::new(KafkaGauges::new(config));
        Ok(KafkaTransport {
            inner: Arc::new(Inner {
                config: config.clone(),
                publisher: KafkaPublisher::new(config)?,
                metrics: Metrics::with_gauges(gauges.clone()),
                gauges,
                prefetch_kbytes_max: MemberOptions::default().prefetch_kbytes_max,
            }),
        })
    }

    /// The publisher service code holds (the same one handlers' contexts hand out),
    /// counting into this transport's metrics.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(
            Arc::new(self.inner.publisher.clone()),
            self.inner.metrics.clone(),
        )
    }

    /// This cluster as the runtime's transport: what `Router::new(&kafka)` consumes
    /// through.
    pub fn transport(&self) -> Transport {
        Transport::new(Arc::new(self.clone()), self.publisher())
    }

    /// The partition count of `topic`, created with `partitions` when the cluster does not
    /// have it; see [`KafkaPublisher::ensure_topic`].
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        self.inner.publisher.ensure_topic(topic, partitions).await
    }

    /// The routes' metrics: handled, failed and dead-lettered events per topic and group,
    /// handler latency, consumer lag of the groups its routes joined (running or stopped
    /// since) and the dead letters of their topics — see `gauges.rs` and the crate docs.
    /// Encode it off the async executor: the gauges ask the cluster at each scrape.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

impl From<&KafkaTransport> for Transport {
    fn from(kafka: &KafkaTransport) -> Transport {
        kafka.transport()
    }
}

impl ConsumeTransport for KafkaTransport {
    fn engine(&self) -> &'static str {
        "Kafka"
    }

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    fn check_route(&self, _: &str, _: &str, _: &GroupPolicy) -> Result<(), TransportError> {
        // The cluster is asked when the member joins (`join`), off the caller's thread.
        Ok(())
    }

    fn join<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        Box::pin(self.join_member(group, topic, policy, start_from, false))
    }

    fn check_transactions(&self) -> Result<(), TransportError> {
        Ok(())
    }

    fn join_transactional<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        Box::pin(self.join_member(group, topic, policy, start_from, true))
    }
}

impl KafkaTransport {
    /// Joins `group` on `topic`; a `transactional` member reads `read_committed` and gets
    /// its transactional producer (`transaction.rs`).
    async fn join_member(
        &self,
        group: &str,
        topic: &str,
        policy: &GroupPolicy,
        start_from: StartFrom,
        transactional: bool,
    ) -> Result<Box<dyn Membership>, TransportError> {
        let inner = &self.inner;
        // Subscribing to a missing topic would wait for librdkafka's next metadata
        // refresh (minutes) after the topic appears: say so now instead.
        if inner.publisher.partitions(topic).await?.is_none() {
            return Err(TransportError::UnknownTopic {
                topic: topic.to_string(),
            });
        }
        let start_earliest = start_from == StartFrom::Earliest;
        let options = MemberOptions {
            start_earliest,
            revoke_timeout: policy.rebalance_timeout,
            session_timeout: policy.session_timeout,
            heartbeat_interval: policy.heartbeat_interval,
            prefetch_kbytes_max: inner.prefetch_kbytes_max,
            read_committed: transactional,
        };
        let transactions = if transactional {
            let started = MemberTransactions::start(&inner.config, group, topic).await;
            Some(started.map_err(|e| TransportError::Unavailable {
                reason: e.to_string(),
            })?)
        } else {
            None
        };
        let member = KafkaMember::join(&inner.config, group, topic, &options).map_err(|e| {
            TransportError::Unavailable {
                reason: e.to_string(),
            }
        })?;
        let uncommitted = Arc::new(Uncommitted::default());
        inner
            .gauges
            .add(group, topic, member.lag(), Arc::downgrade(&uncommitted));
        Ok(Box::new(KafkaMembership {
            member,
            start_earliest,
            uncommitted,
            transactions,
        }) as Box<dyn Membership>)
    }
}

/// A route's group member on Kafka.
struct KafkaMembership {
    member: KafkaMember,
    start_earliest: bool,
    uncommitted: Arc<Uncommitted>,
    /// The member's transactional producer, on a transactional route.
    transactions: Option<Arc<MemberTransactions>>,
}

impl Membership for KafkaMembership {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        Box::pin(async move {
            let event = loop {
                let fenced = async {
                    match &self.transactions {
                        Some(transactions) => transactions.fenced().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    event = self.member.next() => break event?,
                    () = fenced => {
                        // A fenced producer cannot commit again: leave the group (the
                        // final revocations still come), the route stops consuming.
                        self.member.leave();
                        if let Some(transactions) = self.transactions.take() {
                            tracing::error!(transactional_id = %transactions.transactional_id(), "transactional producer fenced: this member leaves the group and its route stops; restart the service");
                        }
                    }
                }
            };
            Some(match event {
                MemberEvent::Assigned(partition) => {
                    self.uncommitted.reset(partition.partition());
                    MembershipEvent::Assigned(Arc::new(KafkaLease {
                        partition,
                        start_earliest: self.start_earliest,
                        peeked: Mutex::new(VecDeque::new()),
                        started: AtomicBool::new(false),
                        uncommitted: self.uncommitted.clone(),
                        transactions: self.transactions.clone().map(LeaseTransactions::new),
                    }))
                }
                MemberEvent::Revoked(revocation) => {
                    MembershipEvent::Revoked(Revocation::new(revocation.partition(), move || {
                        revocation.done();
                    }))
                }
            })
        })
    }

    fn leave(&mut self) {
        self.member.leave();
    }
}

/// An assigned Kafka partition as the runtime's lease.
struct KafkaLease {
    partition: KafkaPartition,
    start_earliest: bool,
    /// Records taken off the queue by `has_data` and not fetched yet.
    peeked: Mutex<VecDeque<Record>>,
    /// Whether a worker started on this lease before: a restart seeks back to the commit.
    started: AtomicBool,
    /// What the member holds uncommitted, noted at each fetch and commit.
    uncommitted: Arc<Uncommitted>,
    /// Its share of the member's transactions, on a transactional route.
    transactions: Option<LeaseTransactions>,
}

impl KafkaLease {
    fn peeked(&self) -> std::sync::MutexGuard<'_, VecDeque<Record>> {
        self.peeked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PartitionLease for KafkaLease {
    fn partition(&self) -> u32 {
        self.partition.partition()
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        Box::pin(async move {
            let offsets = self.partition.offsets().await?;
            let offset = match offsets.committed {
                Some(committed) => committed.clamp(offsets.low, offsets.high),
                None if self.start_earliest => offsets.low,
                None => offsets.high,
            };
            if self.started.swap(true, Ordering::SeqCst) {
                // A restarted worker: what the last one fetched and did not finish comes
                // again from the commit.
                self.peeked().clear();
                self.uncommitted.reset(self.partition());
                self.partition.seek(offset).await?;
            }
            Ok(LeaseStart {
                offset,
                committed: offsets.committed,
            })
        })
    }

    fn has_data(&self, _next_offset: u64) -> bool {
        let mut peeked = self.peeked();
        if peeked.is_empty()
            && let Some(record) = self.partition.try_next()
        {
            peeked.push_back(record);
        }
        !peeked.is_empty()
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let ready = self.partition.ready();
            wait_for_signal(&ready, || self.has_data(next_offset)).await;
        })
    }

    fn fetch(
        &self,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        // librdkafka keeps the position: records come in offset order from where the group
        // stands (the worker skips any below the offset it asked for).
        let mut records: Vec<Record> = self.peeked().drain(..).collect();
        let bytes: usize = records.iter().map(Record::size_bytes).sum();
        if bytes < bytes_max {
            self.partition.take_bytes(bytes_max - bytes, &mut records);
        }
        self.uncommitted.fetched(self.partition(), &records, offset);
        Box::pin(std::future::ready(Ok(records)))
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(async move {
            self.partition
                .commit(offset)
                .await
                .map_err(|error| match error {
                    member::CommitError::Fenced(_) => CommitError::Fenced,
                    member::CommitError::Failed(reason) => CommitError::Unavailable { reason },
                })?;
            self.uncommitted.committed(self.partition(), offset);
            Ok(())
        })
    }

    fn transaction(&self) -> Option<&dyn LeaseTransaction> {
        self.transactions
            .as_ref()
            .map(|_| self as &dyn LeaseTransaction)
    }
}

/// A transactional route's lease: batches in its member's transactions (`transaction.rs`).
impl LeaseTransaction for KafkaLease {
    fn publisher(&self) -> Arc<dyn PublishTransport> {
        self.lease_transactions().publisher()
    }

    fn begin(&self) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(self.lease_transactions().begin())
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(async move {
            let transactions = self.lease_transactions();
            transactions.commit_at(&self.partition, offset).await?;
            self.uncommitted.committed(self.partition(), offset);
            Ok(())
        })
    }

    fn abort(&self, rewind_to: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(async move {
            // Records peeked past the batch would come before the rewound ones.
            self.peeked().clear();
            self.uncommitted.reset(self.partition());
            let transactions = self.lease_transactions();
            transactions.abort_at(&self.partition, rewind_to).await
        })
    }
}

impl KafkaLease {
    /// The lease's transactions; only called through [`PartitionLease::transaction`],
    /// which hands this lease out only when it has them.
    fn lease_transactions(&self) -> &LeaseTransactions {
        self.transactions
            .as_ref()
            .expect("a lease handed out as transactional has transactions")
    }
}
