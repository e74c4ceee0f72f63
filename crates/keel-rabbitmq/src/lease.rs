//! [`Lease`]: one partition a member holds (`keel_core::PartitionLease`). It reads the
//! partition's stream through a consumer of its own (started at the committed offset,
//! restarted where the worker asks when its channel broke), hands deliveries to the worker
//! from a buffer the consumer's prefetch bounds, and commits to the group's offset queue
//! while the member still holds the partition.
//!
//! Not here: who holds which partition (`member.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use keel_core::{
    BoxFuture, CommitError, FetchError, LeaseStart, PartitionLease, Record, StartFrom,
};
use keel_runtime::wait_for_signal;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::client::{Client, ClientError};
use crate::codec::decode;
use crate::limits::PREFETCH;
use crate::offsets;
use crate::reader::{StreamStart, range};

/// One held partition of one member.
pub(crate) struct Lease {
    pub(crate) broker: Arc<Broker>,
    /// The member's connection: its consumers end with the member.
    pub(crate) client: Arc<Client>,
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) start_from: StartFrom,
    /// False once the member gave the partition up or lost its connection.
    pub(crate) held: Arc<AtomicBool>,
    pub(crate) reading: Mutex<Option<Reading>>,
    pub(crate) buffer: Arc<Buffer>,
}

/// Records delivered and not yet fetched, with the delivery tag of the last one.
#[derive(Default)]
pub(crate) struct Buffer {
    records: Mutex<VecDeque<(u64, Record)>>,
    /// Set when the consumer stopped (its channel closed); the next fetch restarts it.
    stopped: AtomicBool,
    signal: Notify,
}

/// The consumer reading the partition's stream.
pub(crate) struct Reading {
    channel: Channel,
    pump: JoinHandle<()>,
}

impl Lease {
    async fn start_reading(&self, start: StreamStart) -> Result<(), ClientError> {
        self.stop_reading();
        let channel = self.client.channel().await?;
        self.client
            .bounded(
                "a prefetch setting",
                channel.basic_qos(PREFETCH, BasicQosOptions::default()),
            )
            .await?;
        let stream = self.broker.names.partition(&self.topic, self.partition);
        let mut consumer = self
            .client
            .bounded(
                "a stream consumer's start",
                channel.basic_consume(
                    stream.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    start.arguments(),
                ),
            )
            .await?;
        let buffer = self.buffer.clone();
        buffer.stopped.store(false, Ordering::SeqCst);
        let pump = tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let tag = delivery.delivery_tag;
                if let Some(record) = decode(delivery.data, &delivery.properties) {
                    lock(&buffer.records).push_back((tag, record));
                    buffer.signal.notify_one();
                }
            }
            buffer.stopped.store(true, Ordering::SeqCst);
            buffer.signal.notify_one();
        });
        *lock(&self.reading) = Some(Reading { channel, pump });
        Ok(())
    }

    fn stop_reading(&self) {
        if let Some(reading) = lock(&self.reading).take() {
            reading.pump.abort();
            let client = self.client.clone();
            tokio::spawn(async move { client.close_channel(&reading.channel, "lease").await });
        }
        lock(&self.buffer.records).clear();
    }

    async fn first_offset(&self) -> Result<LeaseStart, ClientError> {
        let queue = self
            .broker
            .names
            .offset(&self.group, &self.topic, self.partition);
        offsets::declare(&self.client, &queue).await?;
        let committed = offsets::committed(&self.client, &queue).await?;
        let (start, offset) = match (committed, self.start_from) {
            (Some(offset), _) => (StreamStart::Offset(offset), offset),
            (None, StartFrom::Earliest) => (StreamStart::First, 0),
            (None, StartFrom::Latest) => {
                let stream = self.broker.names.partition(&self.topic, self.partition);
                let (_, end) = range(&self.client, &stream).await?;
                (StreamStart::Offset(end), end)
            }
        };
        self.start_reading(start).await?;
        Ok(LeaseStart { offset, committed })
    }

    async fn take(&self, offset: u64, bytes_max: usize) -> Result<Vec<Record>, FetchError> {
        if self.buffer.stopped.load(Ordering::SeqCst) {
            self.start_reading(StreamStart::Offset(offset))
                .await
                .map_err(fetch_error)?;
            return Ok(Vec::new());
        }
        let (records, last_tag) = {
            let mut buffer = lock(&self.buffer.records);
            let mut records = Vec::new();
            let mut bytes = 0;
            let mut last_tag = None;
            while let Some((tag, record)) = buffer.pop_front() {
                last_tag = Some(tag);
                if record.offset < offset {
                    continue;
                }
                bytes += record.size_bytes();
                records.push(record);
                if bytes >= bytes_max {
                    break;
                }
            }
            (records, last_tag)
        };
        if let Some(tag) = last_tag {
            // Stream acknowledgements only give the consumer credit for more deliveries.
            let channel = lock(&self.reading).as_ref().map(|r| r.channel.clone());
            if let Some(channel) = channel {
                let multiple = BasicAckOptions { multiple: true };
                self.client
                    .bounded("an acknowledgement", channel.basic_ack(tag, multiple))
                    .await
                    .map_err(fetch_error)?;
            }
        }
        Ok(records)
    }
}

impl PartitionLease for Lease {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        Box::pin(async move { self.first_offset().await.map_err(fetch_error) })
    }

    fn has_data(&self, _next_offset: u64) -> bool {
        !lock(&self.buffer.records).is_empty() || self.buffer.stopped.load(Ordering::SeqCst)
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(wait_for_signal(&self.buffer.signal, move || {
            self.has_data(next_offset)
        }))
    }

    fn fetch(
        &self,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        Box::pin(self.take(offset, bytes_max))
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(async move {
            if !self.held.load(Ordering::SeqCst) {
                return Err(CommitError::Fenced);
            }
            let queue = self
                .broker
                .names
                .offset(&self.group, &self.topic, self.partition);
            offsets::commit(&self.client, &queue, offset, self.broker.now_ms())
                .await
                .map_err(|e| CommitError::Unavailable {
                    reason: e.to_string(),
                })
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(reading) = lock(&self.reading).take() {
            reading.pump.abort();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let client = self.client.clone();
                runtime.spawn(async move { client.close_channel(&reading.channel, "lease").await });
            }
        }
    }
}

fn fetch_error(error: ClientError) -> FetchError {
    FetchError::Unavailable {
        reason: error.to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
