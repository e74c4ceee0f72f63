//! One writer's durable one-record appends (`fsync = always`) on the real disk, with and
//! without pre-extended segments (`preallocate_bytes`), alternated round by round so both see
//! the same disk: the storage engine's share of issue 16 part 1, without a network or a
//! client in the way. Each append waits for its own `fdatasync` (one writer: no group commit).
//!
//! ```sh
//! cargo run --release -p keel-log --example durable_appends -- <dir> [seconds] [rounds] [preallocate_bytes]
//! ```
//!
//! Prints one line per round and mode: appends/s and the p50 / p99 / max append latency.
//! `dir` must be on the disk to measure (a fresh log is made in it each round and removed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_log::{FsyncPolicy, Log, LogOptions, NewRecord, TopicConfig};

/// Bytes of each record's value: the issue's small write.
const VALUE_BYTES: usize = 100;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: durable_appends <dir> [seconds] [rounds] [preallocate_bytes]"),
    );
    let seconds: u64 = args.next().map_or(5, |s| s.parse().expect("seconds"));
    let rounds: u32 = args.next().map_or(3, |s| s.parse().expect("rounds"));
    let preallocate: u64 = args
        .next()
        .map_or(keel_log::limits::PREALLOCATE_BYTES_DEFAULT, |s| {
            s.parse().expect("preallocate_bytes")
        });
    let window = Duration::from_secs(seconds);
    for round in 1..=rounds {
        for bytes in [0, preallocate] {
            let result = run(&dir.join(format!("round-{round}-{bytes}")), bytes, window);
            println!(
                "round {round}, preallocate_bytes {bytes:>8}: {:>6.0} appends/s, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, load {}",
                result.per_second,
                ms(result.p50),
                ms(result.p99),
                ms(result.max),
                load(),
            );
        }
    }
}

struct RoundResult {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn run(root: &Path, preallocate_bytes: u64, window: Duration) -> RoundResult {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    let log = Log::open_with(root, options).expect("open log");
    let config = TopicConfig::new(1)
        .with_fsync(FsyncPolicy::Always)
        .with_preallocate_bytes(preallocate_bytes);
    let partition = log
        .create_topic("appends", config)
        .expect("create topic")
        .partition(0)
        .expect("partition 0")
        .clone();
    let record = [NewRecord::new(Some("key"), vec![b'x'; VALUE_BYTES])];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < window {
        let append = Instant::now();
        partition.append(&record).expect("append");
        latencies.push(append.elapsed());
    }
    let elapsed = started.elapsed();
    drop(partition);
    drop(log);
    std::fs::remove_dir_all(root).expect("remove the round's log");
    latencies.sort_unstable();
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile) as usize];
    RoundResult {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
