//! NATS JetStream beyond publish throughput: reading a stream back through a pull consumer,
//! and end-to-end latency through async publish and a pull consumer's message stream.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::latency::{Latencies, Pacer, Stamp};

/// A pull consumer on `stream` from its first message, without acknowledgements (a reader, not
/// a work queue).
async fn pull(
    context: &jetstream::Context,
    stream: &str,
) -> anyhow::Result<consumer::pull::Stream> {
    let stream = context
        .get_stream(stream)
        .await
        .context("opening the stream")?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("creating the pull consumer")?;
    consumer.messages().await.context("pulling messages")
}

/// Reads `events` messages of `size` bytes back from `stream`; returns how long that took.
pub async fn consume(
    context: &jetstream::Context,
    stream: &str,
    events: u64,
    size: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut messages = pull(context, stream).await?;
    let (mut received, mut bytes) = (0u64, 0u64);
    while received < events {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .with_context(|| format!("no message for 10 s after {received}"))?
            .context("the consumer ended")?
            .context("pulling a message")?;
        received += 1;
        bytes += message.payload.len() as u64;
    }
    let elapsed = start.elapsed();
    ensure!(bytes == events * size, "read back {bytes} bytes");
    Ok(elapsed)
}

/// Publishes stamped messages at the pacer's rate (up to 1000 acknowledgements outstanding)
/// to `subject` of `stream` while a pull consumer reads them.
pub async fn latency(
    context: &jetstream::Context,
    stream: &str,
    subject: &async_nats::Subject,
    size: usize,
    pacer: Pacer,
) -> anyhow::Result<Latencies> {
    let mut messages = pull(context, stream).await?;
    let stamp = Stamp::new();
    let total = pacer.total();
    let consumer = tokio::spawn(async move {
        let mut latencies = Latencies::new()?;
        while latencies.count() < total {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .context("no message for 10 s")?
                .context("the consumer ended")?
                .context("pulling a message")?;
            let sent = stamp
                .read(&message.payload)
                .context("a message without a stamp")?;
            latencies.record(stamp.now() - sent);
        }
        anyhow::Ok(latencies)
    });
    let mut pending = VecDeque::new();
    let mut payload = vec![0; size];
    pacer
        .run(async || {
            if pending.len() == 1000 {
                let ack: jetstream::context::PublishAckFuture =
                    pending.pop_front().expect("a pending publish");
                ack.await.context("JetStream acknowledgement")?;
            }
            stamp.write(&mut payload);
            let ack = context
                .publish(subject.clone(), Bytes::copy_from_slice(&payload))
                .await
                .context("JetStream publish")?;
            pending.push_back(ack);
            Ok(())
        })
        .await?;
    for ack in pending {
        ack.await.context("JetStream acknowledgement")?;
    }
    consumer.await?
}
