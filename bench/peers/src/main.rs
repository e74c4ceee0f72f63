//! `keel-bench-peers`: measures the peers Keel is compared with in `BENCHMARKS.md` — Redis
//! Streams `XADD` and NATS JetStream publish — on this machine, against servers on 127.0.0.1,
//! and a Kafka client nobody here wrote (librdkafka) against `keel serve` for
//! `scripts/bench-kafka`, with consume throughput and end-to-end latency for all three.
//!
//! Each subcommand writes N events of S bytes from one client (one thread, like Keel's single
//! batched producer) into a fresh stream, checks the stream holds them all, deletes it, and
//! prints one JSON object: events/s, MB/s of payload, and the latency of each round trip
//! (one pipeline for Redis, one publish-to-ack for NATS). It is not part of Keel's workspace so
//! that tokio and the peers' clients never enter Keel's own build; `scripts/bench` runs it.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use async_nats::jetstream;
use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;

mod kafka;
mod latency;
mod nats_stream;
mod redis_acks;
mod redis_stream;

use latency::Pacer;

/// Measure Redis Streams XADD and NATS JetStream publish on this machine.
#[derive(Debug, Parser)]
#[command(name = "keel-bench-peers")]
enum Command {
    /// Pipelined XADD of N events to a fresh stream (deleted afterwards).
    RedisXadd {
        /// Redis URL; only 127.0.0.1 is used by scripts/bench.
        #[arg(long, default_value = "redis://127.0.0.1:6379/")]
        url: String,
        #[command(flatten)]
        load: Load,
        /// XADD commands per pipeline (one round trip each).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        pipeline: u64,
        /// Then read the whole stream back with XREAD COUNT 10000 and time that too.
        #[arg(long)]
        consume: bool,
    },
    /// JetStream publish of N events to a fresh file-storage stream (deleted afterwards), with
    /// K acknowledgements awaited in flight.
    NatsJs {
        /// NATS server address.
        #[arg(long, default_value = "127.0.0.1:4222")]
        url: String,
        #[command(flatten)]
        load: Load,
        /// Publishes whose acknowledgement may be outstanding at once.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        inflight: u64,
        /// Then read the whole stream back through a pull consumer and time that too.
        #[arg(long)]
        consume: bool,
    },
    /// Deletes every JetStream stream a run of this tool created (`KEEL_BENCH_PEERS_*`): runs
    /// delete their own, but a run that was killed leaves its stream (and its file storage)
    /// behind. `scripts/bench-kafka compare` calls it before and after measuring.
    NatsClean {
        /// NATS server address.
        #[arg(long, default_value = "127.0.0.1:4222")]
        url: String,
    },
    /// Kafka produce (acks=all, librdkafka) of N events to a topic the broker auto-creates,
    /// then consume them all from the beginning.
    Kafka {
        /// Bootstrap address of the broker (`keel serve --kafka`).
        #[arg(long)]
        bootstrap: String,
        /// Topic to write; must not exist yet.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        load: Load,
    },
    /// End-to-end latency at a steady rate through a Kafka broker (acks=all, linger.ms=0).
    KafkaLatency {
        /// Bootstrap address of the broker.
        #[arg(long)]
        bootstrap: String,
        /// Topic to write; must not exist yet.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        steady: Steady,
    },
    /// End-to-end latency at a steady rate through JetStream (file storage, async publish).
    NatsLatency {
        /// NATS server address.
        #[arg(long, default_value = "127.0.0.1:4222")]
        url: String,
        #[command(flatten)]
        steady: Steady,
    },
    /// `XADD` reply latency at a steady rate, one entry per command, for `scripts/bench-kafka
    /// acks` (the warm-up's seconds from PROBE_WARM_UP_SECONDS, as the protocol probe's).
    RedisAcks {
        /// Redis URL.
        #[arg(long, default_value = "redis://127.0.0.1:6379/")]
        url: String,
        /// Entries per second.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        rate: u64,
        /// Seconds measured, after the warm-up.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// End-to-end latency at a steady rate through Redis Streams (XADD, blocking XREAD).
    RedisLatency {
        /// Redis URL.
        #[arg(long, default_value = "redis://127.0.0.1:6379/")]
        url: String,
        #[command(flatten)]
        steady: Steady,
    },
}

/// A steady load for the latency runs.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Steady {
    /// Records per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Bytes per record (the first 8 carry the send time).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(8..))]
    size: u16,
}

impl Steady {
    fn pacer(&self) -> Pacer {
        Pacer {
            rate: self.rate,
            seconds: self.seconds,
        }
    }
}

/// Produce and consume times of one run that does both.
pub struct Throughput {
    /// From the first send until every record was acknowledged.
    pub produce: Duration,
    /// From the consumer's creation until the last record was received.
    pub consume: Duration,
}

/// How much to write.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Load {
    /// Events to write.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    size: u64,
}

/// What one run measured.
struct Outcome {
    peer: &'static str,
    load: Load,
    depth_name: &'static str,
    depth: u64,
    elapsed: Duration,
    /// Round-trip latencies in nanoseconds.
    round_trips: Histogram<u64>,
    /// How long reading everything back took, if it was asked for.
    consumed: Option<Duration>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let outcome = match Command::parse() {
        Command::RedisXadd {
            url,
            load,
            pipeline,
            consume,
        } => redis_xadd(&url, load, pipeline, consume).await?,
        Command::NatsJs {
            url,
            load,
            inflight,
            consume,
        } => nats_js(&url, load, inflight, consume).await?,
        Command::NatsClean { url } => {
            let deleted = nats_clean(&url).await?;
            println!("{{\"peer\":\"nats-js\",\"mode\":\"clean\",\"deleted\":{deleted}}}");
            return Ok(());
        }
        Command::Kafka {
            bootstrap,
            topic,
            load,
        } => {
            let run = kafka::throughput(&bootstrap, &topic, load)?;
            Outcome {
                peer: "kafka",
                load,
                depth_name: "linger_ms",
                depth: 5,
                elapsed: run.produce,
                round_trips: histogram()?,
                consumed: Some(run.consume),
            }
        }
        Command::KafkaLatency {
            bootstrap,
            topic,
            steady,
        } => {
            let pacer = steady.pacer();
            let latencies = kafka::latency(&bootstrap, &topic, usize::from(steady.size), pacer)?;
            println!("{}", latencies.to_json("kafka", pacer, steady.size.into()));
            return Ok(());
        }
        Command::NatsLatency { url, steady } => {
            let pacer = steady.pacer();
            let latencies = nats_latency(&url, steady).await?;
            println!(
                "{}",
                latencies.to_json("nats-js", pacer, steady.size.into())
            );
            return Ok(());
        }
        Command::RedisAcks { url, rate, seconds } => {
            let warm_up = std::env::var("PROBE_WARM_UP_SECONDS")
                .map_or(Ok(0.0), |s| s.parse::<f64>())
                .context("PROBE_WARM_UP_SECONDS")?;
            let key = format!("keel-bench-peers-acks-{}", unique_suffix());
            println!(
                "{}",
                redis_acks::probe(&url, &key, rate, (warm_up, seconds)).await?
            );
            return Ok(());
        }
        Command::RedisLatency { url, steady } => {
            let pacer = steady.pacer();
            let key = format!("keel-bench-peers-{}", unique_suffix());
            let latencies =
                redis_stream::latency(&url, &key, usize::from(steady.size), pacer).await?;
            println!(
                "{}",
                latencies.to_json("redis-streams", pacer, steady.size.into())
            );
            return Ok(());
        }
    };
    println!("{}", outcome.to_json());
    Ok(())
}

/// A name no other run uses, so a run never touches anyone's stream.
fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// A histogram of nanoseconds up to two minutes, three significant digits.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 120 * 1_000_000_000, 3).context("creating a histogram")
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1)
}

async fn redis_xadd(
    url: &str,
    load: Load,
    pipeline: u64,
    consume: bool,
) -> anyhow::Result<Outcome> {
    // No response timeout: a deep pipeline of large values may take longer than the default.
    let mut connection = redis_stream::connect(url).await?;
    let key = format!("keel-bench-peers-{}", unique_suffix());
    let payload = vec![b'r'; usize::try_from(load.size)?];
    let mut round_trips = histogram()?;
    let mut sent = 0;
    let start = Instant::now();
    while sent < load.events {
        let count = pipeline.min(load.events - sent);
        let mut pipe = redis::pipe();
        for _ in 0..count {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("v")
                .arg(&payload[..])
                .ignore();
        }
        let sent_at = Instant::now();
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            // A failed pipeline lists every command's error; the first says it all.
            let text = error.to_string();
            anyhow::bail!("XADD pipeline: {}", text.get(..300).unwrap_or(&text));
        }
        round_trips.saturating_record(nanos(sent_at.elapsed()));
        sent += count;
    }
    let elapsed = start.elapsed();
    let length: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut connection)
        .await?;
    let consumed = match consume {
        true => Some(redis_stream::consume(&mut connection, &key, load.events, load.size).await),
        false => None,
    };
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut connection)
        .await
        .context("deleting the bench stream")?;
    ensure!(
        length == load.events,
        "the stream holds {length} entries, {} were added",
        load.events
    );
    Ok(Outcome {
        peer: "redis-xadd",
        load,
        depth_name: "pipeline",
        depth: pipeline,
        elapsed,
        round_trips,
        consumed: consumed.transpose()?,
    })
}

/// A fresh file-storage stream with one subject, for one run.
struct NatsStream {
    context: jetstream::Context,
    name: String,
    subject: async_nats::Subject,
}

impl NatsStream {
    async fn create(url: &str) -> anyhow::Result<Self> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let context = jetstream::new(client);
        let suffix = unique_suffix().replace('-', "_");
        let name = format!("{NATS_STREAM_PREFIX}{suffix}");
        let subject: async_nats::Subject = format!("keel.bench.peers.{suffix}").into();
        context
            .create_stream(jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject.to_string()],
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .context("creating the bench stream")?;
        Ok(Self {
            context,
            name,
            subject,
        })
    }

    async fn delete(&self) -> anyhow::Result<()> {
        self.context
            .delete_stream(&self.name)
            .await
            .context("deleting the bench stream")?;
        Ok(())
    }
}

/// The prefix of every stream [`NatsStream::create`] makes.
const NATS_STREAM_PREFIX: &str = "KEEL_BENCH_PEERS_";

/// Deletes every stream named with [`NATS_STREAM_PREFIX`]; returns how many there were.
async fn nats_clean(url: &str) -> anyhow::Result<usize> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let context = jetstream::new(client);
    let mut names = context.stream_names();
    let mut ours = Vec::new();
    while let Some(name) = names.next().await {
        let name = name.context("listing JetStream streams")?;
        if name.starts_with(NATS_STREAM_PREFIX) {
            ours.push(name);
        }
    }
    for name in &ours {
        context
            .delete_stream(name)
            .await
            .with_context(|| format!("deleting the leftover stream {name}"))?;
    }
    Ok(ours.len())
}

async fn nats_latency(url: &str, steady: Steady) -> anyhow::Result<latency::Latencies> {
    let stream = NatsStream::create(url).await?;
    let result = nats_stream::latency(
        &stream.context,
        &stream.name,
        &stream.subject,
        steady.size.into(),
        steady.pacer(),
    )
    .await;
    stream.delete().await?;
    result
}

async fn nats_js(url: &str, load: Load, inflight: u64, consume: bool) -> anyhow::Result<Outcome> {
    let stream = NatsStream::create(url).await?;
    let result = nats_publish(&stream.context, &stream.subject, load, inflight).await;
    let stored = match stream.context.get_stream(&stream.name).await {
        Ok(mut info) => info.info().await.map(|info| info.state.messages).ok(),
        Err(_) => None,
    };
    let consumed = match (consume, &result) {
        (true, Ok(_)) => {
            Some(nats_stream::consume(&stream.context, &stream.name, load.events, load.size).await)
        }
        _ => None,
    };
    stream.delete().await?;
    let (elapsed, round_trips) = result?;
    ensure!(
        stored == Some(load.events),
        "the stream holds {stored:?} messages, {} were published",
        load.events
    );
    Ok(Outcome {
        peer: "nats-js",
        load,
        depth_name: "inflight",
        depth: inflight,
        elapsed,
        round_trips,
        consumed: consumed.transpose()?,
    })
}

async fn nats_publish(
    context: &jetstream::Context,
    subject: &async_nats::Subject,
    load: Load,
    inflight: u64,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let payload = Bytes::from(vec![b'n'; usize::try_from(load.size)?]);
    let mut round_trips = histogram()?;
    let mut pending = VecDeque::with_capacity(usize::try_from(inflight)?);
    let start = Instant::now();
    for _ in 0..load.events {
        if pending.len() as u64 == inflight {
            let (sent_at, ack): (Instant, jetstream::context::PublishAckFuture) =
                pending.pop_front().expect("a pending publish");
            ack.await.context("JetStream acknowledgement")?;
            round_trips.saturating_record(nanos(sent_at.elapsed()));
        }
        let sent_at = Instant::now();
        let ack = context
            .publish(subject.clone(), payload.clone())
            .await
            .context("JetStream publish")?;
        pending.push_back((sent_at, ack));
    }
    while let Some((sent_at, ack)) = pending.pop_front() {
        ack.await.context("JetStream acknowledgement")?;
        round_trips.saturating_record(nanos(sent_at.elapsed()));
    }
    Ok((start.elapsed(), round_trips))
}

impl Outcome {
    fn to_json(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let quantile_us = |q: f64| self.round_trips.value_at_quantile(q) as f64 / 1000.0;
        format!(
            concat!(
                "{{\"peer\":\"{}\",\"events\":{},\"size_bytes\":{},\"{}\":{},\"seconds\":{:.6},",
                "\"events_per_s\":{:.1},\"mb_per_s\":{:.3},\"round_trip_p50_us\":{:.1},",
                "\"round_trip_p99_us\":{:.1},\"round_trip_p999_us\":{:.1}{}}}"
            ),
            self.peer,
            self.load.events,
            self.load.size,
            self.depth_name,
            self.depth,
            seconds,
            self.load.events as f64 / seconds,
            (self.load.events * self.load.size) as f64 / seconds / 1e6,
            quantile_us(0.5),
            quantile_us(0.99),
            quantile_us(0.999),
            self.consumed.map_or(String::new(), |consumed| {
                let seconds = consumed.as_secs_f64().max(1e-9);
                format!(
                    ",\"consume_seconds\":{seconds:.6},\"consume_events_per_s\":{:.1},\"consume_mb_per_s\":{:.3}",
                    self.load.events as f64 / seconds,
                    (self.load.events * self.load.size) as f64 / seconds / 1e6,
                )
            }),
        )
    }
}
