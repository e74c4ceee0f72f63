//! What a partition costs the process: resident memory and creation time of empty partitions
//! and of partitions holding one record, read from `/proc/self/status` (Linux), with the
//! open-file budget at its default. Run: `cargo run --release -p keel-log --example
//! partition_memory -- 10000`.

use keel_log::{FsyncPolicy, Log, NewRecord, TopicConfig};
use std::time::Instant;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

fn main() {
    let partitions: u32 = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().expect("a partition count"));
    let per_topic = 1000.min(partitions);
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = Log::open(dir.path()).expect("open log");
    let before = resident_kib();
    let started = Instant::now();
    let config = TopicConfig::new(per_topic).with_fsync(FsyncPolicy::Never);
    let topics: Vec<_> = (0..partitions / per_topic)
        .map(|t| {
            log.create_topic(&format!("t{t}"), config.clone())
                .expect("create")
        })
        .collect();
    let created = started.elapsed();
    let empty = resident_kib();
    for topic in &topics {
        for partition in topic.partitions() {
            let record = NewRecord::new(Some("key"), "value");
            partition.append(&[record]).expect("append");
        }
    }
    let written = resident_kib();
    println!(
        "{partitions} partitions: created in {:.1} s; resident +{} KiB empty ({} B each), \
         +{} KiB with one record each ({} B each); open files {:?}",
        created.as_secs_f64(),
        empty - before,
        (empty - before) * 1024 / u64::from(partitions),
        written - before,
        (written - before) * 1024 / u64::from(partitions),
        log.open_files(),
    );
}
