//! The embedded `Publisher` publishing one event per call with many calls in flight, for
//! `BENCHMARKS.md` (issue 16's row "embedded Publisher, one event per publish, 1,000 in
//! flight"): events/s and appends per event, for `fsync = never` and `fsync = always`, as
//! one JSON line each. A measurement, not a test.
//!
//! `cargo run --release -p keel-embedded --example publish_throughput -- [EVENTS] [IN_FLIGHT]
//! [FSYNC] [TASKS]` (defaults 200,000, 1,000, both `never` and `always`, and 1; 100 data
//! bytes, 4 partitions, 1,024 keys). One FSYNC policy alone is for `valgrind
//! --tool=callgrind`, whose count per event is the difference of two runs with different
//! EVENTS (`BENCHMARKS.md`).
//!
//! TASKS spreads the publishes over that many tasks, IN_FLIGHT / TASKS in flight each. With
//! one, a single task builds and awaits every publish, so it runs on one core whatever the
//! machine has; a service publishes from its request tasks, which the runtime spreads over
//! its cores.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use keel_core::Event;
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, TopicConfig};
use keel_runtime::Publisher;

const TOPIC: &str = "publish";
const PARTITIONS: u32 = 4;
const KEYS: u64 = 1024;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events = args
        .next()
        .map(|a| a.parse::<u64>())
        .transpose()?
        .unwrap_or(200_000);
    let in_flight = args
        .next()
        .map(|a| a.parse::<usize>())
        .transpose()?
        .unwrap_or(1_000);
    let policies_arg = args.next();
    let tasks = args
        .next()
        .map(|a| a.parse::<usize>())
        .transpose()?
        .unwrap_or(1)
        .clamp(1, in_flight);
    let policies = match policies_arg {
        Some(fsync) => vec![fsync.parse::<FsyncPolicy>()?],
        None => vec![FsyncPolicy::Never, FsyncPolicy::Always],
    };
    for fsync in policies {
        let dir = tempfile::tempdir()?;
        let log = Arc::new(Log::open(dir.path())?);
        let topic = log.create_topic(TOPIC, TopicConfig::new(PARTITIONS).with_fsync(fsync))?;
        let publisher = EmbeddedBus::new(log.clone()).publisher();
        let started = Instant::now();
        let drivers: Vec<_> = (0..tasks)
            .map(|task| {
                let publisher = publisher.clone();
                let own = (task as u64..events).step_by(tasks);
                tokio::spawn(publish_all(publisher, own, in_flight / tasks))
            })
            .collect();
        for driver in drivers {
            driver.await?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let appends: u64 = topic
            .partitions()
            .iter()
            .map(|p| p.sync_stats().appends)
            .sum();
        println!(
            "{{\"label\": \"embedded Publisher, one event per publish\", \"fsync\": \"{fsync}\", \
             \"events\": {events}, \"in_flight\": {in_flight}, \"tasks\": {tasks}, \"events_per_s\": {:.0}, \
             \"events_per_append\": {:.1}}}",
            events as f64 / elapsed,
            events as f64 / appends as f64
        );
    }
    Ok(())
}

/// Publishes the events numbered by `own`, `in_flight` at a time, from one task.
async fn publish_all(publisher: Publisher, own: impl Iterator<Item = u64>, in_flight: usize) {
    let data = vec![b'x'; 100];
    futures_util::stream::iter(own)
        .map(|n| {
            let event = Event::new("/bench", "bench.published")
                .with_partition_key(format!("key-{}", n % KEYS))
                .with_data("application/octet-stream", data.clone());
            let publisher = &publisher;
            async move { publisher.publish(TOPIC, event).await }
        })
        .buffer_unordered(in_flight.max(1))
        .for_each(|published| async move {
            published.expect("published");
        })
        .await;
}
