//! Bounded reads of one stream for the administrative port and for finding a stream's ends:
//! a short-lived consumer from a starting point, taking deliveries until enough were read or
//! none came for [`READ_IDLE`] (RabbitMQ 3.10's AMQP side cannot say where a stream ends,
//! so a read ends where deliveries stop).
//!
//! Not here: the long-lived consumer a partition lease reads through (`lease.rs`).

use futures_util::StreamExt;
use keel_core::Record;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::time::{Instant, timeout};

use crate::client::{Client, ClientError};
use crate::codec::decode;
use crate::limits::{PREFETCH, READ_IDLE, READ_TIMEOUT};

/// Where a stream consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamStart {
    /// At this offset (or the first stored one, if retention removed it).
    Offset(u64),
    /// At the first stored message.
    First,
    /// At the first message of the last chunk RabbitMQ wrote.
    LastChunk,
    /// At the first chunk written at or after this time, in ms (RabbitMQ keeps seconds).
    Time(i64),
}

impl StreamStart {
    /// The consumer argument that says so.
    pub(crate) fn arguments(self) -> FieldTable {
        let value = match self {
            StreamStart::Offset(offset) => {
                AMQPValue::LongLongInt(i64::try_from(offset).unwrap_or(i64::MAX))
            }
            StreamStart::First => AMQPValue::LongString("first".into()),
            StreamStart::LastChunk => AMQPValue::LongString("last".into()),
            StreamStart::Time(ms) => AMQPValue::Timestamp(u64::try_from(ms / 1000).unwrap_or(0)),
        };
        let mut arguments = FieldTable::default();
        arguments.insert("x-stream-offset".into(), value);
        arguments
    }
}

/// Records of `stream` from `start`, until about `bytes_max` were read, `done` says the
/// last one is enough, or the stream went quiet. [`ClientError::NotFound`] when the stream
/// does not exist.
pub(crate) async fn read(
    client: &Client,
    stream: &str,
    start: StreamStart,
    bytes_max: usize,
    mut done: impl FnMut(&Record) -> bool,
) -> Result<Vec<Record>, ClientError> {
    let channel = client.channel().await?;
    client
        .bounded(
            "a prefetch setting",
            channel.basic_qos(PREFETCH, BasicQosOptions::default()),
        )
        .await?;
    let mut consumer = client
        .bounded(
            "a stream consumer's start",
            channel.basic_consume(
                stream.into(),
                "".into(),
                BasicConsumeOptions::default(),
                start.arguments(),
            ),
        )
        .await?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut records = Vec::new();
    let mut bytes = 0;
    while Instant::now() < deadline {
        let Ok(Some(delivery)) = timeout(READ_IDLE, consumer.next()).await else {
            break;
        };
        let delivery = delivery?;
        client
            .bounded(
                "an acknowledgement",
                delivery.acker.ack(BasicAckOptions::default()),
            )
            .await?;
        let Some(record) = decode(delivery.data, &delivery.properties) else {
            continue;
        };
        bytes += record.size_bytes();
        let enough = done(&record) || bytes >= bytes_max;
        records.push(record);
        if enough {
            break;
        }
    }
    client.close_channel(&channel, "read").await;
    Ok(records)
}

/// The stored range of `stream`: (first offset, one past the last); (0, 0) when empty.
pub(crate) async fn range(client: &Client, stream: &str) -> Result<(u64, u64), ClientError> {
    let first = read(client, stream, StreamStart::First, 1, |_| true).await?;
    let Some(first) = first.first() else {
        return Ok((0, 0));
    };
    let last = read(client, stream, StreamStart::LastChunk, usize::MAX, |_| {
        false
    })
    .await?;
    let end = last.last().map_or(first.offset, |r| r.offset) + 1;
    Ok((first.offset, end))
}
