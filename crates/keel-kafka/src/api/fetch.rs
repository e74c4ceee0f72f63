//! Fetch (1): stored batches served as they are on disk, with long polling.
//!
//! A fetch answers at once when it has at least `min_bytes`, when a partition has an error, or
//! when `max_wait_ms` (capped at [`FETCH_WAIT_MS_MAX`]) has passed; otherwise it waits for an
//! append to one of the partitions it asked for and reads again. A shutdown of the listener
//! also ends the wait, so the fetch is answered (with what there is) before its connection
//! closes. The wait is on the partitions' own append signals
//! (`Partition::high_watermark_past`), not a blocked thread per waiting consumer: every
//! writer of a partition wakes it (a produce, but also a dead-letter replay through the
//! operator API or a registry write), and a produce to another partition does not.
//!
//! A topic the caller may not Read is answered `TOPIC_AUTHORIZATION_FAILED` for each of its
//! partitions (decided, and audited, once per request, not per pass of a long poll).
//!
//! From v7 a fetch may be in a fetch session (KIP-227, `fetch_session.rs`): it then reads
//! every partition of its session and, when incremental, answers only those with news.
//!
//! `read_committed` (isolation level 1) is served up to the partition's last stable offset
//! (the first offset of its oldest open transaction), with the aborted transactions in the
//! range for the client to filter out (`txn/index.rs`); `read_uncommitted` reads up to the
//! high watermark and is told the high watermark as its last stable offset (Kafka tells it
//! the real one; only `read_committed` consumers use it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProducerId};
use keel_log::{BatchHeader, HighWatermarkPast, ReadError};
use tokio::time::Instant;

use crate::acl::{Caller, Operation};
use crate::api::{code, partition_of};
use crate::broker::{Broker, blocking};
use crate::fetch_session::SessionFetch;
use crate::limits::{FETCH_BUDGET_BYTES_MIN, FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use crate::memory::MemoryPermit;
use crate::producers::Stable;

/// FetchRequest's `isolation_level` of a `read_committed` consumer.
const READ_COMMITTED: i8 = 1;

/// Answers Fetch, with the in-flight budget its records hold until the response is written.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    mut request: FetchRequest,
    version: i16,
) -> (FetchResponse, MemoryPermit) {
    let session = if version >= 7 {
        broker.fetch_sessions.begin(&mut request)
    } else {
        SessionFetch::Sessionless
    };
    if let SessionFetch::Refused(error) = session {
        let response = FetchResponse::default().with_error_code(code(error));
        return (response, broker.memory.take(0).await);
    }
    let denied: Vec<bool> = request
        .topics
        .iter()
        .map(|wanted| {
            broker
                .topic_access(caller, Operation::Read, &wanted.topic)
                .is_err()
        })
        .collect();
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms)
            .unwrap_or(0)
            .min(FETCH_WAIT_MS_MAX),
    );
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = if version >= 3 {
        usize::try_from(request.max_bytes).unwrap_or(0)
    } else {
        FETCH_RESPONSE_BYTES_MAX
    }
    .min(FETCH_RESPONSE_BYTES_MAX);
    let request = Arc::new(request);
    let mut shutdown = broker.watch_shutdown();
    let mut last_pass = false;
    loop {
        // Each pass reads within a share of the in-flight budget (waiting for one when it is
        // spent) and keeps only what it read; a long poll holds none while it waits.
        let mut budget = broker
            .memory
            .take_up_to(max_bytes, FETCH_BUDGET_BYTES_MIN)
            .await;
        let (responses, bytes, failed, mut appends) =
            read_all(broker, &request, &denied, budget.bytes()).await;
        budget.shrink_to(bytes);
        let done = bytes >= min_bytes || failed || Instant::now() >= deadline;
        if done || last_pass || broker.closing() {
            let (responses, session_id) = match session {
                SessionFetch::Session { id, incremental } => {
                    (broker.fetch_sessions.answer(id, incremental, responses), id)
                }
                _ => (responses, 0),
            };
            let response = answer(broker, responses).with_session_id(session_id);
            return (response, budget);
        }
        drop((responses, budget));
        // Woken by an append to a partition read, by the deadline or by the shutdown; the
        // next pass answers after the last two.
        let any_append = std::future::poll_fn(|cx| {
            if appends
                .iter_mut()
                .any(|append| std::pin::Pin::new(append).poll(cx).is_ready())
            {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        tokio::select! {
            _ = any_append => {}
            _ = tokio::time::sleep_until(deadline) => last_pass = true,
            _ = shutdown.wait_for(|stopping| *stopping) => last_pass = true,
        }
    }
}

/// The response of the pass that answers, counted: bytes sent per topic, partition errors.
/// Earlier passes of a long poll are not counted; nothing of them is sent.
fn answer(broker: &Broker, responses: Vec<FetchableTopicResponse>) -> FetchResponse {
    for topic in &responses {
        for partition in &topic.partitions {
            broker
                .metrics
                .partition_error(ApiKey::Fetch, partition.error_code);
            let sent = partition.records.as_ref().map_or(0, Bytes::len);
            broker.metrics.bytes_out(&topic.topic, sent);
        }
    }
    FetchResponse::default().with_responses(responses)
}

/// Reads every requested partition once: the responses, the record bytes found, whether any
/// partition had an error, and for each partition found a future that resolves on its next
/// append (after the high watermark seen before reading it).
async fn read_all(
    broker: &Arc<Broker>,
    request: &Arc<FetchRequest>,
    denied: &[bool],
    max_bytes: usize,
) -> (
    Vec<FetchableTopicResponse>,
    usize,
    bool,
    Vec<HighWatermarkPast>,
) {
    let mut total = 0usize;
    let mut failed = false;
    let mut appends = Vec::new();
    let mut responses = Vec::with_capacity(request.topics.len());
    for (wanted, &denied) in request.topics.iter().zip(denied) {
        let topic = broker.user_topic(&wanted.topic);
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for fetch in &wanted.partitions {
            let data = PartitionData::default().with_partition_index(fetch.partition);
            if denied {
                failed = true;
                partitions.push(
                    data.with_error_code(code(ResponseError::TopicAuthorizationFailed))
                        .with_high_watermark(-1),
                );
                continue;
            }
            let Some(partition) = partition_of(topic.as_ref(), fetch.partition) else {
                failed = true;
                partitions.push(
                    data.with_error_code(code(ResponseError::UnknownTopicOrPartition))
                        .with_high_watermark(-1),
                );
                continue;
            };
            appends.push(partition.high_watermark_past(partition.high_watermark()));
            let offset = fetch.fetch_offset;
            let stable = if request.isolation_level == READ_COMMITTED && offset >= 0 {
                let index = fetch.partition as u32;
                let high_watermark = partition.high_watermark();
                match broker
                    .producers
                    .stable(
                        &wanted.topic,
                        index,
                        &partition,
                        high_watermark,
                        offset as u64,
                    )
                    .await
                {
                    Ok(stable) => Some(stable),
                    Err(error) => {
                        failed = true;
                        tracing::warn!(topic = &**wanted.topic, partition = fetch.partition, %error, "transaction state rebuild failed");
                        partitions.push(
                            data.with_error_code(code(ResponseError::KafkaStorageError))
                                .with_records(Some(Bytes::new())),
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            // The first partition with data always gets at least one batch, so a consumer
            // can make progress past a batch larger than its limits; later ones only fit.
            let room = max_bytes.saturating_sub(total);
            let limit = usize::try_from(fetch.partition_max_bytes)
                .unwrap_or(0)
                .min(room);
            let read = if offset < 0 {
                Err(ReadError::OffsetOutOfRange {
                    offset: 0,
                    log_start: partition.log_start_offset(),
                    high_watermark: partition.high_watermark(),
                })
            } else if (limit == 0 && total > 0)
                || stable
                    .as_ref()
                    .is_some_and(|s| offset as u64 >= s.last_stable_offset)
            {
                Ok(None)
            } else {
                let reader = partition.clone();
                blocking(move || reader.read(offset as u64, limit.max(1)).map(Some)).await
            };
            let high_watermark = partition.high_watermark() as i64;
            let data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(high_watermark)
                .with_log_start_offset(partition.log_start_offset() as i64);
            // Only `read_committed` is told of aborted transactions; others get null, as Kafka.
            let data = match &stable {
                Some(stable) => committed_view(data, stable),
                None => data.with_aborted_transactions(None),
            };
            partitions.push(match read {
                Ok(Some(batches)) => {
                    let data = data.with_high_watermark(batches.high_watermark as i64);
                    let (bytes, data) = match &stable {
                        Some(stable) => (before(batches.bytes, stable.last_stable_offset), data),
                        None => {
                            let lso = batches.high_watermark as i64;
                            (batches.bytes, data.with_last_stable_offset(lso))
                        }
                    };
                    total += bytes.len();
                    data.with_records(Some(bytes))
                }
                Ok(None) => data.with_records(Some(Bytes::new())),
                Err(error) => {
                    failed = true;
                    let kind = match &error {
                        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
                        ReadError::Corrupt(_) => ResponseError::CorruptMessage,
                        _ => ResponseError::KafkaStorageError,
                    };
                    tracing::warn!(topic = &**wanted.topic, partition = fetch.partition, offset, %error, "fetch failed");
                    data.with_error_code(code(kind)).with_records(Some(Bytes::new()))
                }
            });
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_partitions(partitions),
        );
    }
    (responses, total, failed, appends)
}

/// What a `read_committed` fetch is told besides its records: the last stable offset and the
/// aborted transactions to filter out.
fn committed_view(data: PartitionData, stable: &Stable) -> PartitionData {
    let aborted = stable
        .aborted
        .iter()
        .map(|txn| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(txn.producer_id))
                .with_first_offset(txn.first_offset as i64)
        })
        .collect();
    data.with_last_stable_offset(stable.last_stable_offset as i64)
        .with_aborted_transactions(Some(aborted))
}

/// The whole batches of `bytes` that begin before `end`: a `read_committed` reader is never
/// shown a batch at or past the last stable offset.
fn before(bytes: Bytes, end: u64) -> Bytes {
    let mut kept = 0;
    while kept < bytes.len() {
        let Ok(header) = BatchHeader::parse(&bytes[kept..], u32::MAX) else {
            break;
        };
        if header.base_offset >= end {
            break;
        }
        kept += header.size();
    }
    bytes.slice(..kept)
}
