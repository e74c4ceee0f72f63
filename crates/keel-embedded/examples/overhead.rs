//! Measures the consumer runtime's cost over raw log reads, for `scripts/bench`: the same
//! pre-filled topic is consumed twice — by a plain loop that reads every partition and decodes
//! each record's CloudEvent (what any consumer must do), and by a `Router` with a no-op
//! handler (key ordering, middleware, commits) — and both throughputs are printed as one JSON
//! line. A measurement, not a test: it asserts only that every event was seen.
//!
//! `cargo run --release -p keel-runtime --example overhead -- [EVENTS] [PARTITIONS] [KEYS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_core::{Event, TraceParent};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, NewRecord, TopicConfig};
use keel_runtime::{Handler, Route, Router, event_record};

const TOPIC: &str = "overhead";
const READ_BYTES: usize = 1024 * 1024;
const APPEND_BATCH: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let events = args.next().transpose()?.unwrap_or(1_000_000);
    let partitions = args.next().transpose()?.unwrap_or(4) as u32;
    let keys = args.next().transpose()?.unwrap_or(10_000);

    let dir = tempfile::tempdir()?;
    let log = Arc::new(Log::open(dir.path())?);
    let config = TopicConfig::new(partitions).with_fsync(FsyncPolicy::Never);
    let topic = log.create_topic(TOPIC, config)?;
    fill(&topic, events, keys)?;

    let cpu_before = process_cpu_s()?;
    let raw_s = time_raw_consume(&topic, events)?;
    let cpu_between = process_cpu_s()?;
    let runtime_s = time_runtime_consume(log.clone(), events)?;
    let cpu_after = process_cpu_s()?;
    let raw_eps = events as f64 / raw_s;
    let runtime_eps = events as f64 / runtime_s;
    // CPU time per event is what other load on the machine changes least: wall-clock
    // throughput swings with whatever else runs, CPU seconds spent per event much less.
    let raw_cpu_us = (cpu_between - cpu_before) / events as f64 * 1e6;
    let runtime_cpu_us = (cpu_after - cpu_between) / events as f64 * 1e6;
    println!(
        "{{\"events\":{events},\"partitions\":{partitions},\"keys\":{keys},\
         \"raw_events_per_s\":{raw_eps:.0},\"runtime_events_per_s\":{runtime_eps:.0},\
         \"runtime_share_of_raw\":{:.3},\"raw_cpu_us_per_event\":{raw_cpu_us:.2},\
         \"runtime_cpu_us_per_event\":{runtime_cpu_us:.2}}}",
        runtime_eps / raw_eps
    );
    Ok(())
}

/// CPU seconds this process has used so far, all threads, user and system (from
/// `/proc/self/stat`, in clock ticks of 10 ms; the phases measured last seconds).
fn process_cpu_s() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').ok_or("bad /proc/self/stat")? + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    const TICKS_PER_S: f64 = 100.0;
    Ok(ticks as f64 / TICKS_PER_S)
}

/// Appends `events` binary-mode CloudEvents of about 100 bytes of data over `keys` keys, each
/// with its own root `traceparent` as a [`keel_runtime::Publisher`] would write it.
fn fill(topic: &keel_log::Topic, events: u64, keys: u64) -> Result<(), Box<dyn std::error::Error>> {
    let template = Event::new("/bench", "bench.tick").with_data_json(&serde_json::json!({
        "padding": "x".repeat(80),
    }));
    let mut batches: Vec<Vec<NewRecord>> = vec![Vec::new(); topic.partitions().len()];
    for index in 0..events {
        let mut event = template
            .clone()
            .with_partition_key(format!("key-{}", index % keys))
            .with_traceparent(TraceParent::new_root());
        event.id = format!("event-{index}");
        let record = event_record(&event);
        let partition = topic.partition_for(record.key.as_deref()) as usize;
        batches[partition].push(record);
        if batches[partition].len() == APPEND_BATCH {
            topic.partitions()[partition].append(&std::mem::take(&mut batches[partition]))?;
        }
    }
    for (partition, batch) in batches.into_iter().enumerate() {
        if !batch.is_empty() {
            topic.partitions()[partition].append(&batch)?;
        }
    }
    Ok(())
}

/// Reads every partition to its end and decodes each record's CloudEvent; seconds taken.
fn time_raw_consume(
    topic: &keel_log::Topic,
    events: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut seen = 0u64;
    for partition in topic.partitions() {
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            for record in partition.read_records(offset, READ_BYTES)? {
                let headers = record
                    .headers
                    .iter()
                    .map(|h| (h.key.as_str(), h.value.as_deref()));
                let event =
                    Event::from_binary(record.key.as_deref(), headers, record.value.as_deref())?;
                std::hint::black_box(event);
                offset = record.offset + 1;
                seen += 1;
            }
        }
    }
    assert_eq!(seen, events, "raw consume saw every event");
    Ok(started.elapsed().as_secs_f64())
}

/// Runs a router with a no-op handler until it has handled `events`; seconds taken.
fn time_runtime_consume(log: Arc<Log>, events: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let handled = Arc::new(AtomicU64::new(0));
        let counter = handled.clone();
        let handler = Handler::raw("noop", move |_event, _ctx| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        });
        let bus = EmbeddedBus::new(log);
        let started = Instant::now();
        let router = Router::new(&bus)
            .route(Route::new(TOPIC, "bench", handler))
            .start()?;
        while handled.load(Ordering::Relaxed) < events {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        router.shutdown().await;
        Ok(elapsed)
    })
}
