//! Times the operator reads on a Kafka cluster through `KafkaAdmin`, as `keel groups list`,
//! `keel groups lag` and `keel dlq list --brokers` run them (`keel_runtime::admin`): the
//! topic and group listings, every group's lag (per group and in all), and every
//! dead-letter topic's summary (per topic and in all). It only reads; run it against a
//! broker that already holds groups and dead letters (the conformance suite leaves both on
//! the CI broker).
//!
//! Usage: `kafka_admin_reads [host:port]` (default `KEEL_BENCH_KAFKA`, else
//! 127.0.0.1:29092). Prints one line per measure.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use keel_core::AdminTransport;
use keel_kafka_client::{KafkaAdmin, KafkaConfig};
use keel_runtime::admin::{dead_letters, groups};

#[tokio::main]
async fn main() {
    let brokers = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KEEL_BENCH_KAFKA").ok())
        .unwrap_or_else(|| "127.0.0.1:29092".to_string());
    let admin = KafkaAdmin::connect(&KafkaConfig::new(&brokers)).expect("admin clients");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;

    let started = Instant::now();
    let topics = admin.topics().await.expect("topics");
    let partitions: u32 = topics.iter().map(|t| t.partitions).sum();
    println!(
        "topics: {} topics, {partitions} partitions in {:.0} ms",
        topics.len(),
        ms(started)
    );

    let started = Instant::now();
    let names = admin.groups().await.expect("groups");
    println!("groups: {} groups in {:.0} ms", names.len(), ms(started));

    let started = Instant::now();
    let listed = groups::list_groups(&admin, now_ms)
        .await
        .expect("groups list");
    let total = ms(started);
    println!(
        "groups list: {} groups with commits in {total:.0} ms ({:.1} ms per listed group)",
        listed.len(),
        total / names.len().max(1) as f64
    );

    let mut slowest = 0.0f64;
    let started = Instant::now();
    for group in &listed {
        let one = Instant::now();
        groups::group_lag(&admin, &group.group, now_ms)
            .await
            .expect("group lag");
        slowest = slowest.max(ms(one));
    }
    let total = ms(started);
    println!(
        "groups lag: each of {} groups in {:.1} ms on average, {slowest:.0} ms at most",
        listed.len(),
        total / listed.len().max(1) as f64
    );

    let started = Instant::now();
    let summaries = dead_letters::summaries(&admin, now_ms)
        .await
        .expect("dlq list");
    let total = ms(started);
    let stored: u64 = summaries
        .iter()
        .map(|s| s.pending + s.replayed + s.purged)
        .sum();
    println!(
        "dlq list: {} dead-letter topics ({stored} dead letters) in {total:.0} ms ({:.1} ms per topic)",
        summaries.len(),
        total / summaries.len().max(1) as f64
    );
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
