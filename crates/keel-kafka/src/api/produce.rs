//! Produce (0): batches stored exactly as received, only their base offset rewritten.
//!
//! Each partition's record set must be one RecordBatch v2 (as Kafka requires from version 3
//! on). It is checked once (length, magic, CRC-32C, record count) before anything is decided
//! or written, and appended without a second CRC pass; a bad
//! batch is refused with `CORRUPT_MESSAGE` and nothing of it is stored. Compressed batches
//! are stored compressed.
//!
//! A request is served in two steps, so a connection can pipeline them
//! (`connection.rs`): [`write`] checks and writes every partition's record set (partitions
//! of one request concurrently), and returns once they are written, in the order the
//! connection calls it, and starts their syncs; [`Written::answer`] then waits until they
//! are durable and builds the response. The durability waits of a connection's pipelined requests, of one request's
//! partitions and of other connections' writes to a partition share one `fdatasync` (the
//! log's group commit).
//!
//! `acks`: 0 gets no response at all; 1 and -1 (all) are answered once the records are
//! durable under the topic's policy, which under `fsync = always` means after `fdatasync`.
//! With one node, "all in-sync replicas" is this one, so 1 and all promise the same.
//!
//! A transactional batch (the request names a transactional id) must come from the id's
//! current producer, into a partition added to its ongoing transaction (`txn/`); the caller
//! needs Write on the transactional id. Control batches are the broker's own (markers) and
//! refused from clients.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use keel_log::{AppendError, BatchError, CheckedBatches, DurableStep, Partition, SyncClaim, Topic};
use tokio::task::JoinSet;

use crate::acl::{Caller, Operation};
use crate::api::text;
use crate::broker::{Broker, write_batches};
use crate::producers::{BatchProducer, Idempotent};
use crate::txn::TxnPartition;

/// A Produce request whose record sets are written, not yet known durable.
pub(crate) struct Written {
    acks: i16,
    version: i16,
    responses: Vec<TopicProduceResponse>,
    /// Partitions answered with success once durable: (topic slot, partition slot, wait).
    unsettled: Vec<(usize, usize, Unsettled)>,
}

/// A partition's record set written (or found to be a retry of one written): success once
/// `partition` is durable up to `end`.
struct Unsettled {
    partition: Arc<Partition>,
    end: u64,
    success: PartitionOutcome,
    /// Bytes newly stored, counted once durable (`None` for a retry).
    stored_bytes: Option<(Arc<Topic>, usize)>,
}

/// What writing one partition's record set came to.
enum Step {
    Answered(PartitionOutcome),
    Unsettled(Unsettled),
}

/// Checks and writes every partition's record set of a Produce request, refusing what cannot
/// be written; returns once everything is written, without waiting for durability.
pub(crate) async fn write(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: ProduceRequest,
    version: i16,
) -> Written {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let transactional_id: Option<Arc<str>> = request
        .transactional_id
        .as_deref()
        .map(|id| Arc::<str>::from(&**id));
    let txn_access = match &transactional_id {
        Some(id) => broker.transactional_id_access(caller, id),
        None => Ok(()),
    };
    let mut pending = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (topic_slot, mut topic_data) in request.topic_data.into_iter().enumerate() {
        // The name the response echoes, in its own allocation: the decoded one points into
        // the request buffer, which the record set can then take over without a copy.
        topic_data.name = TopicName(StrBytes::from_string(topic_data.name.to_string()));
        let access = broker.topic_access(caller, Operation::Write, &topic_data.name);
        let topic = broker.user_topic(&topic_data.name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for (partition_slot, data) in topic_data.partition_data.into_iter().enumerate() {
            let index = data.index;
            partitions.push(PartitionProduceResponse::default().with_index(index));
            let refused =
                |error: ResponseError, message: String| PartitionOutcome::refused(error, message);
            let outcome = match (&topic, valid_acks, txn_access) {
                (_, false, _) => Some(refused(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks {acks} is not -1, 0 or 1"),
                )),
                (_, _, Err(error)) => Some(refused(
                    error,
                    "no Write permission on the transactional id".into(),
                )),
                _ if access.is_err() => access.clone().err().map(|(e, m)| refused(e, m)),
                (None, _, _) => Some(refused(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{}' does not exist", &*topic_data.name),
                )),
                (Some(topic), _, Ok(())) => {
                    let broker = broker.clone();
                    let topic = topic.clone();
                    let records = data.records.unwrap_or_default();
                    let transactional_id = transactional_id.clone();
                    pending.push(async move {
                        let step =
                            write_partition(&broker, &topic, index, records, transactional_id)
                                .await;
                        (topic_slot, partition_slot, step)
                    });
                    None
                }
            };
            if let Some(outcome) = outcome {
                let response = partitions.pop().expect("pushed above");
                partitions.push(outcome.fill(response, version));
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    let mut unsettled = Vec::new();
    for (topic_slot, partition_slot, step) in concurrently(pending).await {
        match step {
            Step::Answered(outcome) => {
                let slot = &mut responses[topic_slot].partition_responses[partition_slot];
                *slot = outcome.fill(std::mem::take(slot), version);
            }
            Step::Unsettled(wait) => {
                start_sync(&wait.partition, wait.end);
                unsettled.push((topic_slot, partition_slot, wait));
            }
        }
    }
    Written {
        acks,
        version,
        responses,
        unsettled,
    }
}

impl Written {
    /// Waits until every written record set is durable (the partitions concurrently, so they
    /// share syncs) and answers; `None` for `acks = 0`. A partition whose sync failed is
    /// answered with `KAFKA_STORAGE_ERROR`.
    pub(crate) async fn answer(self, broker: &Arc<Broker>) -> Option<ProduceResponse> {
        let Written {
            acks,
            version,
            mut responses,
            unsettled,
        } = self;
        let waits = unsettled
            .into_iter()
            .map(|(topic_slot, partition_slot, wait)| {
                let broker = broker.clone();
                async move { (topic_slot, partition_slot, wait.settle(&broker).await) }
            });
        for (topic_slot, partition_slot, outcome) in concurrently(waits.collect()).await {
            let slot = &mut responses[topic_slot].partition_responses[partition_slot];
            *slot = outcome.fill(std::mem::take(slot), version);
        }
        for partition in responses.iter().flat_map(|t| &t.partition_responses) {
            broker
                .metrics
                .partition_error(ApiKey::Produce, partition.error_code);
        }
        (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
    }
}

/// Runs `jobs` to the end and returns their results (in no particular order): a single job
/// in place, several as tasks of their own so that they run (and share syncs) concurrently.
/// Most requests carry one partition (librdkafka sends one a request), and their two steps then
/// cost no task spawn.
async fn concurrently<T, F>(jobs: Vec<F>) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    if jobs.len() <= 1 {
        let mut results = Vec::with_capacity(1);
        for job in jobs {
            results.push(job.await);
        }
        return results;
    }
    let mut tasks = JoinSet::new();
    for job in jobs {
        tasks.spawn(job);
    }
    let mut results = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    results
}

impl Unsettled {
    /// Waits until the record set is durable; its success, or the failure of the sync.
    async fn settle(self, broker: &Broker) -> PartitionOutcome {
        let Unsettled {
            partition,
            end,
            success,
            stored_bytes,
        } = self;
        match durable(&partition, end).await {
            Ok(()) => {
                if let Some((topic, bytes)) = stored_bytes {
                    broker.metrics.bytes_in(topic.name(), bytes);
                }
                success
            }
            Err(error) => {
                tracing::warn!(%error, "produce failed: the records were not made durable");
                PartitionOutcome::append_failed(&error)
            }
        }
    }
}

/// Returns once every offset of `partition` below `end` is durable under its policy. Under
/// `fsync = always` this is the log's group commit for async callers (`keel_log::DurableStep`):
/// a waiter holds no thread, and one blocking-pool thread at a time syncs for every connection
/// writing the partition, a round per `fdatasync`, each covering whatever was written while the
/// previous one ran.
async fn durable(partition: &Arc<Partition>, end: u64) -> Result<(), AppendError> {
    loop {
        match partition.durable_step(end) {
            DurableStep::Done(result) => return result,
            DurableStep::Sync(claim) => run_detached(claim),
            DurableStep::Wait(wait) => wait.await,
        }
    }
}

/// Starts the partition's sync as soon as records are written, unless one runs already or
/// they are durable: the answer is awaited only in its turn on the connection, behind the
/// answers ahead of it, and a sync of another partition need not wait for those. The answer
/// still asks [`durable`] itself, so this only starts the sync sooner.
fn start_sync(partition: &Arc<Partition>, end: u64) {
    if let DurableStep::Sync(claim) = partition.durable_step(end) {
        run_detached(claim);
    }
}

/// Runs a sync claim on a blocking thread, detached: under load it syncs for every
/// connection until none is left waiting, long after the round its caller needed.
fn run_detached(claim: SyncClaim) {
    drop(tokio::task::spawn_blocking(move || claim.run()));
}

/// The result of one partition's record set.
struct PartitionOutcome {
    error_code: i16,
    message: Option<String>,
    base_offset: i64,
    log_start_offset: i64,
}

impl PartitionOutcome {
    fn refused(error: ResponseError, message: String) -> PartitionOutcome {
        PartitionOutcome {
            error_code: error.code(),
            message: Some(message),
            base_offset: -1,
            log_start_offset: -1,
        }
    }

    fn stored(base_offset: u64, log_start_offset: u64) -> PartitionOutcome {
        PartitionOutcome {
            error_code: 0,
            message: None,
            base_offset: base_offset as i64,
            log_start_offset: log_start_offset as i64,
        }
    }

    /// The answer to a write or sync that failed, by the error's kind.
    fn append_failed(error: &AppendError) -> PartitionOutcome {
        let kind = match error {
            AppendError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
            AppendError::InvalidBatch(_) | AppendError::Empty => ResponseError::CorruptMessage,
            AppendError::KeyRequired => ResponseError::InvalidRecord,
            _ => ResponseError::KafkaStorageError,
        };
        PartitionOutcome::refused(kind, error.to_string())
    }

    fn fill(self, response: PartitionProduceResponse, version: i16) -> PartitionProduceResponse {
        let mut response = response
            .with_error_code(self.error_code)
            .with_base_offset(self.base_offset)
            .with_log_append_time_ms(-1);
        if version >= 5 {
            response = response.with_log_start_offset(self.log_start_offset);
        }
        if version >= 8 {
            response = response.with_error_message(self.message.map(text));
        }
        response
    }
}

/// Validates and writes one partition's record set.
async fn write_partition(
    broker: &Arc<Broker>,
    topic: &Arc<Topic>,
    index: i32,
    records: Bytes,
    transactional_id: Option<Arc<str>>,
) -> Step {
    let name = topic.name();
    let refused = |error, message| Step::Answered(PartitionOutcome::refused(error, message));
    let Some(partition) = u32::try_from(index).ok().and_then(|i| topic.partition(i)) else {
        return refused(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' has no partition {index}"),
        );
    };
    let max = partition.config().max_batch_bytes;
    let size = records.len();
    // The request buffer itself when nothing else holds it (one partition per request, as
    // librdkafka sends), so a megabyte batch is not copied before it is written; a copy when
    // other partitions' record sets share the buffer.
    let bytes = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    // Checked once here, before anything is decided about the batch; the append trusts it.
    let batches = match CheckedBatches::check(bytes, max) {
        Ok(batches) => batches,
        Err(error) => {
            tracing::warn!(topic = name, partition = index, %error, "produce refused: invalid record batch");
            let kind = match error {
                BatchError::BadLength { length, max, .. } if length > i64::from(max) => {
                    ResponseError::MessageTooLarge
                }
                _ => ResponseError::CorruptMessage,
            };
            return refused(kind, format!("invalid record batch: {error}"));
        }
    };
    let [header] = batches.headers()[..] else {
        return refused(
            ResponseError::InvalidRecord,
            format!(
                "expected exactly one record batch, got {}",
                batches.headers().len()
            ),
        );
    };
    let producer = BatchProducer::read(batches.bytes(), &header);
    if producer.control {
        return refused(
            ResponseError::InvalidRecord,
            "control batches are written by the broker only".into(),
        );
    }
    if producer.transactional {
        let (Some(id), true) = (transactional_id, producer.is_idempotent()) else {
            return refused(
                ResponseError::InvalidRecord,
                "a transactional batch needs a producer id and the request's transactional id"
                    .into(),
            );
        };
        let joined = TxnPartition {
            topic: name.to_string(),
            partition: index as u32,
        };
        let producer_epoch = (producer.id, producer.epoch);
        if let Err(error) = broker
            .transactions
            .check_produce(broker, &id, producer_epoch, joined)
            .await
        {
            return refused(
                error,
                format!("transactional id '{id}' may not write to {name}-{index} now: {error:?}"),
            );
        }
    }
    let written = if producer.is_idempotent() {
        let outcome = broker
            .producers
            .write(name, index as u32, partition, producer, batches)
            .await;
        let end = outcome.durable_end();
        match outcome {
            Idempotent::Appended(info) => Ok(info),
            Idempotent::Duplicate { base_offset, .. } => {
                tracing::debug!(
                    topic = name,
                    partition = index,
                    producer = producer.id,
                    "duplicate batch not written again"
                );
                return Step::Unsettled(Unsettled {
                    partition: partition.clone(),
                    end: end.expect("a duplicate has an end"),
                    success: PartitionOutcome::stored(base_offset, partition.log_start_offset()),
                    stored_bytes: None,
                });
            }
            Idempotent::OutOfOrder { expected, got } => {
                return refused(
                    ResponseError::OutOfOrderSequenceNumber,
                    format!(
                        "producer {} sequence {got}, expected {expected}",
                        producer.id
                    ),
                );
            }
            Idempotent::Fenced { current, got } => {
                return refused(
                    ResponseError::InvalidProducerEpoch,
                    format!(
                        "producer {} epoch {got} is older than {current}",
                        producer.id
                    ),
                );
            }
            Idempotent::Failed(error) => Err(error),
            Idempotent::Rebuild(error) => {
                tracing::error!(topic = name, partition = index, %error, "producer state rebuild failed");
                return refused(
                    ResponseError::KafkaStorageError,
                    format!("producer state could not be rebuilt: {error}"),
                );
            }
        }
    } else {
        write_batches(partition, batches).await
    };
    match written {
        Ok(info) => Step::Unsettled(Unsettled {
            partition: partition.clone(),
            end: info.last_offset + 1,
            success: PartitionOutcome::stored(info.base_offset, partition.log_start_offset()),
            stored_bytes: Some((topic.clone(), size)),
        }),
        Err(error) => {
            tracing::warn!(topic = name, partition = index, %error, "produce failed");
            Step::Answered(PartitionOutcome::append_failed(&error))
        }
    }
}
