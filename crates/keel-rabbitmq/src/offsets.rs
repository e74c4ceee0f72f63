//! A group's committed offsets on RabbitMQ: one classic queue per group and partition
//! holding the latest commit as its only message (`x-max-length` 1, dropping the head), so
//! a commit is one confirmed publish and survives a broker restart like any durable
//! message.
//!
//! A read takes every message with `basic.get`, keeps the newest commit (by its
//! `keel-commit-ms` header, then by queue order), acknowledges (removes) the others and
//! puts the newest back. A read racing a commit can leave two messages for a moment; the
//! next read removes the older one. (Stream offset tracking, RabbitMQ's own, is only on the
//! stream protocol, which has no Rust client without aws-lc's C.)
//!
//! Not here: who may commit (the lease, `lease.rs`).

use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::client::{Client, ClientError};

/// When the commit was made, ms since the epoch.
const COMMIT_MS: &str = "keel-commit-ms";

/// Declares the queue `queue` holding one partition's commits.
pub(crate) async fn declare(client: &Client, queue: &str) -> Result<(), ClientError> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    client.declare(queue, arguments).await
}

/// Stores `offset` as the latest commit in `queue` (declared before), made at `now_ms`.
pub(crate) async fn commit(
    client: &Client,
    queue: &str,
    offset: u64,
    now_ms: i64,
) -> Result<(), ClientError> {
    let mut headers = FieldTable::default();
    headers.insert(COMMIT_MS.into(), AMQPValue::LongLongInt(now_ms));
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    client
        .publish(queue, offset.to_string().as_bytes(), properties)
        .await
}

/// The latest commit in `queue`; `None` when nothing was committed (or no queue).
pub(crate) async fn committed(client: &Client, queue: &str) -> Result<Option<u64>, ClientError> {
    if !client.exists(queue).await? {
        return Ok(None);
    }
    let channel = client.channel().await?;
    let mut taken = Vec::new();
    while let Some(message) = client
        .bounded(
            "a commit's read",
            channel.basic_get(queue.into(), BasicGetOptions::default()),
        )
        .await?
    {
        let delivery = message.delivery;
        let commit_ms = match delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(COMMIT_MS))
        {
            Some(AMQPValue::LongLongInt(ms)) => *ms,
            _ => 0,
        };
        let offset = std::str::from_utf8(&delivery.data)
            .ok()
            .and_then(|text| text.parse::<u64>().ok());
        taken.push((commit_ms, offset, delivery.acker));
        if message.message_count == 0 {
            break;
        }
    }
    let newest = taken
        .iter()
        .enumerate()
        .max_by_key(|(at, (ms, _, _))| (*ms, *at))
        .map(|(at, _)| at);
    let mut offset = None;
    for (at, (_, stored, acker)) in taken.into_iter().enumerate() {
        if Some(at) == newest {
            offset = stored;
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            client
                .bounded("a commit's return", acker.nack(requeue))
                .await?;
        } else {
            client
                .bounded(
                    "an older commit's removal",
                    acker.ack(BasicAckOptions::default()),
                )
                .await?;
        }
    }
    client.close_channel(&channel, "read").await;
    Ok(offset)
}
