//! Redis Streams beyond `XADD` throughput: reading a stream back with `XREAD`, and end-to-end
//! latency through `XADD` and a blocking `XREAD` on a second connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

use crate::latency::{Latencies, Pacer, Stamp};

/// Entries asked for per `XREAD` when reading a stream back.
const READ_COUNT: usize = 10_000;

/// A connection without a response timeout (large pipelines and blocking reads outlast it).
pub async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).context("parsing the Redis URL")?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// One `XREAD` of up to `count` entries after `after`, blocking up to `block_ms` if given;
/// returns the entries' `v` values and the last entry's id.
async fn read(
    connection: &mut MultiplexedConnection,
    key: &str,
    after: &str,
    count: usize,
    block_ms: Option<u64>,
) -> anyhow::Result<(Vec<Vec<u8>>, Option<String>)> {
    let mut command = redis::cmd("XREAD");
    command.arg("COUNT").arg(count);
    if let Some(block) = block_ms {
        command.arg("BLOCK").arg(block);
    }
    command.arg("STREAMS").arg(key).arg(after);
    let reply: Option<StreamReadReply> = command.query_async(connection).await.context("XREAD")?;
    let mut values = Vec::new();
    let mut last = None;
    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
        if let Some(redis::Value::BulkString(value)) = entry.map.get("v") {
            values.push(value.clone());
        }
        last = Some(entry.id);
    }
    Ok((values, last))
}

/// Reads the whole stream `key` from the start with `XREAD COUNT 10000`, checking it holds
/// `events` entries of `size` bytes; returns how long that took.
pub async fn consume(
    connection: &mut MultiplexedConnection,
    key: &str,
    events: u64,
    size: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut after = "0-0".to_owned();
    let (mut received, mut bytes) = (0u64, 0u64);
    while received < events {
        let (values, last) = read(connection, key, &after, READ_COUNT, None).await?;
        let Some(last) = last else { break };
        received += values.len() as u64;
        bytes += values.iter().map(|v| v.len() as u64).sum::<u64>();
        after = last;
    }
    let elapsed = start.elapsed();
    ensure!(
        received == events && bytes == events * size,
        "read back {received} entries ({bytes} bytes) of {events}"
    );
    Ok(elapsed)
}

/// XADDs stamped entries at the pacer's rate (up to 1000 unanswered at once) while a second
/// connection reads them with a blocking `XREAD`; deletes the stream afterwards.
pub async fn latency(url: &str, key: &str, size: usize, pacer: Pacer) -> anyhow::Result<Latencies> {
    let producer = connect(url).await?;
    let mut reader = connect(url).await?;
    let stamp = Stamp::new();
    let total = pacer.total();
    let consumer = {
        let key = key.to_owned();
        tokio::spawn(async move {
            let mut latencies = Latencies::new()?;
            let mut after = "0-0".to_owned();
            while latencies.count() < total {
                let (values, last) = read(&mut reader, &key, &after, 1000, Some(10_000)).await?;
                let last = last.context("no entry for 10 s")?;
                let now = stamp.now();
                for value in values {
                    let sent = stamp.read(&value).context("an entry without a stamp")?;
                    latencies.record(now - sent);
                }
                after = last;
            }
            anyhow::Ok(latencies)
        })
    };
    let mut pending = VecDeque::new();
    let mut payload = vec![0; size];
    let sent = pacer
        .run(async || {
            if pending.len() == 1000 {
                let reply: tokio::task::JoinHandle<redis::RedisResult<()>> =
                    pending.pop_front().expect("a pending XADD");
                reply.await?.context("XADD")?;
            }
            stamp.write(&mut payload);
            let mut command = redis::cmd("XADD");
            command.arg(key).arg("*").arg("v").arg(&payload[..]);
            let mut connection = producer.clone();
            pending.push_back(tokio::spawn(async move {
                command.query_async::<()>(&mut connection).await
            }));
            Ok(())
        })
        .await;
    for reply in pending {
        reply.await?.context("XADD")?;
    }
    let received = consumer.await;
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut producer.clone())
        .await
        .context("deleting the bench stream")?;
    sent?;
    received?
}
