//! The router on NATS JetStream next to async-nats's own pull consumers, in one run: a fresh
//! topic of 4 partitions gets `KEEL_BENCH_EVENTS` (default 20,000) 100-byte events over
//! 10,000 keys, then async-nats reads every partition subject from the start (no Keel: the
//! engine's client at full speed), then a router with a no-op handler handles them all
//! (`keel_runtime::throughput`), then a router of another group with the SQLite inbox
//! (`keel_sql::conformance::throughput`). Prints two lines: events per second of each and
//! each router's ratio to the client. The run's streams are deleted at the end, also when a
//! step panicked ([`Namespace`]).
//!
//! `cargo run --release -p keel-nats --example nats_throughput` with `KEEL_TEST_NATS_URL` set
//! (`scripts/services env`).

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use futures_util::{StreamExt, TryStreamExt};
use keel_core::AdminTransport;
use keel_nats::{NatsConfig, NatsTransport};
use keel_runtime::throughput;

const PARTITIONS: u32 = 4;
/// Messages one pull asks for (keel-nats's own pulls ask for 500).
const BATCH: usize = 500;

#[tokio::main]
async fn main() {
    let url = std::env::var("KEEL_TEST_NATS_URL").expect("KEEL_TEST_NATS_URL");
    let events = throughput::events();
    let namespace = format!("bench{}", std::process::id());
    let config = NatsConfig::new(&url)
        .with_namespace(&namespace)
        .expect("namespace");
    let _streams = Namespace {
        url: url.clone(),
        namespace: namespace.clone(),
    };
    let nats = NatsTransport::connect(&config).await.expect("transport");
    nats.create_topic("bench", PARTITIONS).await.expect("topic");
    let publish = throughput::publish(&nats.publisher(), "bench", events).await;
    let raw = raw_consume(&url, &namespace, events).await;
    let router = throughput::router_no_op(
        nats.transport(),
        "bench",
        "bench",
        throughput::group_policy(),
        events,
    )
    .await;
    throughput::report(events, publish, "async-nats", raw, router);
    let inbox = keel_sql::conformance::throughput::router_inbox(
        nats.transport(),
        "bench",
        "bench-inbox",
        throughput::group_policy(),
        events,
    )
    .await;
    throughput::report_inbox(events, "async-nats", raw, inbox);
}

/// The run's namespace on the server at `url`: dropped — at the end of the run, or while a
/// panic unwinds — it deletes every stream of the namespace (the topic's, its retry topic's
/// and the lease bucket's), so neither runs of 100,000 events nor failed runs pile up on the
/// shared server.
struct Namespace {
    url: String,
    namespace: String,
}

impl Drop for Namespace {
    /// Deletes on a thread and a runtime of its own: `drop` cannot await, and the example's
    /// runtime cannot be blocked on from inside it.
    fn drop(&mut self) {
        let (url, namespace) = (self.url.clone(), self.namespace.clone());
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(delete_namespace(&url, &namespace))
        })
        .join();
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("streams of namespace '{}' left: {error}", self.namespace),
            Err(_) => eprintln!("deleting namespace '{}' panicked", self.namespace),
        }
    }
}

/// Deletes every stream of `namespace`; the first failure ends it.
async fn delete_namespace(url: &str, namespace: &str) -> Result<(), String> {
    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let jetstream = async_nats::jetstream::new(client);
    let names: Vec<String> = jetstream
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let ours = |name: &str| {
        name.strip_prefix("KV_")
            .unwrap_or(name)
            .starts_with(&format!("{namespace}_"))
    };
    for name in names.iter().filter(|name| ours(name)) {
        jetstream
            .delete_stream(name)
            .await
            .map_err(|e| format!("stream '{name}': {e}"))?;
    }
    Ok(())
}

/// async-nats alone: one pull consumer per partition subject from the first message
/// (`AckAll`, acknowledging the last message of every pull, as Keel's commits do), until
/// every event arrived.
async fn raw_consume(url: &str, namespace: &str, events: u64) -> Duration {
    let started = Instant::now();
    let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"));
    let stream = jetstream
        .get_stream(format!("{namespace}_bench"))
        .await
        .expect("stream");
    let mut tasks = Vec::new();
    for partition in 0..PARTITIONS {
        let consumer = stream
            .create_consumer(PullConfig {
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::All,
                filter_subject: format!("{namespace}.bench.{partition}"),
                ..PullConfig::default()
            })
            .await
            .expect("consumer");
        let pending = consumer.cached_info().num_pending;
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < pending {
                let mut batch = consumer
                    .fetch()
                    .max_messages(BATCH)
                    .messages()
                    .await
                    .expect("fetch");
                let mut last = None;
                while let Some(message) = batch.next().await {
                    seen += 1;
                    last = Some(message.expect("message"));
                }
                if let Some(message) = last {
                    message.ack().await.expect("ack");
                }
            }
            seen
        }));
    }
    let mut seen = 0;
    for task in tasks {
        seen += task.await.expect("consumer task");
    }
    assert_eq!(seen, events, "every event read");
    started.elapsed()
}
