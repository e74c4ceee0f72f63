//! A Kafka client nobody here wrote (librdkafka through the `rdkafka` crate) against any Kafka
//! broker, `keel serve` in `scripts/bench-kafka`: produce throughput with `acks=all`, consume
//! throughput from the beginning, and end-to-end latency at a steady rate.
//!
//! librdkafka's clients are synchronous handles with their own threads, so this module uses
//! plain threads, not tokio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::latency::{Latencies, Pacer, Stamp};
use crate::{Load, Throughput};

/// Counts acknowledged and failed deliveries, so a run proves every record was acknowledged.
#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.acked
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Producer settings shared by the throughput and latency runs: `acks=all`, no compression.
fn producer(bootstrap: &str, linger_ms: u32) -> anyhow::Result<BaseProducer<Deliveries>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .create_with_context(Deliveries::default())
        .context("creating the Kafka producer")
}

/// A consumer outside any group, assigned every partition of `topic` from the beginning.
fn consumer(bootstrap: &str, topic: &str, fetch_wait_ms: u32) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "keel-bench-peers")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .create()
        .context("creating the Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("reading the topic's metadata")?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    ensure!(partitions > 0, "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, i32::try_from(partition)?, Offset::Beginning)?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    Ok(consumer)
}

/// Sends one record, polling for deliveries while librdkafka's queue is full.
fn send(producer: &BaseProducer<Deliveries>, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(payload);
    loop {
        match producer.send::<(), [u8]>(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => bail!("producing: {error}"),
        }
    }
}

/// Waits until every record sent was acknowledged, and fails if any was not.
fn flush(producer: &BaseProducer<Deliveries>, expected: u64) -> anyhow::Result<()> {
    producer
        .flush(Duration::from_secs(120))
        .context("waiting for acknowledgements")?;
    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    let acked = context.acked.load(Ordering::Relaxed);
    ensure!(
        failed == 0 && acked == expected,
        "{acked} records acknowledged and {failed} failed of {expected}"
    );
    Ok(())
}

/// Produces `load.events` records of `load.size` bytes to a topic named `topic` (auto-created by
/// the broker), then consumes them all from the beginning.
pub fn throughput(bootstrap: &str, topic: &str, load: Load) -> anyhow::Result<Throughput> {
    let producer = producer(bootstrap, 5)?;
    let payload = vec![b'k'; usize::try_from(load.size)?];
    let start = Instant::now();
    for _ in 0..load.events {
        send(&producer, topic, &payload)?;
        producer.poll(Duration::ZERO);
    }
    flush(&producer, load.events)?;
    let produce = start.elapsed();

    let start = Instant::now();
    let consumer = consumer(bootstrap, topic, 10)?;
    let mut received = 0;
    let mut bytes = 0;
    while received < load.events {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(message)) => {
                received += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(error)) => bail!("consuming: {error}"),
            None => bail!("no record for 10 s after {received} of {}", load.events),
        }
    }
    let consume = start.elapsed();
    ensure!(
        bytes == load.events * load.size,
        "consumed {bytes} payload bytes"
    );
    Ok(Throughput { produce, consume })
}

/// Sends stamped records at `rate` per second for `seconds` while a consumer thread reads them
/// back, and returns the receive − send latencies. One unstamped record first makes sure the
/// topic exists and the consumer is connected before the clock starts.
pub fn latency(
    bootstrap: &str,
    topic: &str,
    size: usize,
    pacer: Pacer,
) -> anyhow::Result<Latencies> {
    let producer = producer(bootstrap, 0)?;
    send(&producer, topic, &vec![0; size])?;
    flush(&producer, 1)?;
    let stamp = Stamp::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let total = pacer.total();
    let consumer_thread = {
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
        std::thread::spawn(move || -> anyhow::Result<Latencies> {
            let consumer = consumer(&bootstrap, &topic, 100)?;
            let mut latencies = Latencies::new()?;
            let mut ready = Some(ready_tx);
            while latencies.count() < total {
                match consumer.poll(Duration::from_secs(10)) {
                    Some(Ok(message)) => {
                        let payload = message.payload().unwrap_or_default();
                        match stamp.read(payload) {
                            None => drop(ready.take().map(|tx| tx.send(()))),
                            Some(sent) => latencies.record(stamp.now() - sent),
                        }
                    }
                    Some(Err(error)) => bail!("consuming: {error}"),
                    None => bail!("no record for 10 s after {} of {total}", latencies.count()),
                }
            }
            Ok(latencies)
        })
    };
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .context("the consumer did not see the first record")?;
    let mut payload = vec![0; size];
    pacer.run_blocking(|| {
        stamp.write(&mut payload);
        send(&producer, topic, &payload)?;
        producer.poll(Duration::ZERO);
        Ok(())
    })?;
    flush(&producer, 1 + total)?;
    consumer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))?
}
