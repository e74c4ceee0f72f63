//! Power cuts under a real `acks=all` client: the server (`keel serve`'s `Server`, Kafka
//! listener and all) runs on keel-log's simulated disk, which keeps what was written twice —
//! page cache and durable bytes — and on a cut keeps only the durable bytes plus a random
//! prefix of each unsynced tail (a torn write). Unlike a SIGKILL, after which the page cache
//! survives, a cut really drops every unsynced byte.
//!
//! Each cut: the server's runtime is stopped at once (no response can leave after it), the
//! simulated power is cut, the log reopened (recovery) from what survived, and a new server
//! started on the same port; confluent-kafka reconnects and goes on. At the end every record
//! the client saw acknowledged is looked up at its offset.
//!
//! - `fsync = always`: 50 cuts, and not one acknowledged record may be missing.
//! - `fsync = interval(100ms)`: acknowledged records may be lost, but only those acknowledged
//!   within the interval (plus scheduling slack) before a cut; the numbers are printed and
//!   recorded in `docs/testing.md`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_log::sim::SimStorage;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_server::{Server, ServerConfig};

const TOPIC: &str = "acked";

fn python_has_confluent_kafka() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output()
        .is_ok_and(|output| output.status.success());
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("KEEL_TEST_KAFKA_CLIENTS").is_ok_and(|v| v == "1");
    assert!(ok || !required, "confluent-kafka is required in CI");
    if !ok {
        eprintln!("power_cut: not run, python3 cannot import confluent_kafka");
    }
    ok
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn open_log(storage: &SimStorage) -> Arc<Log> {
    let options = LogOptions {
        storage: Arc::new(storage.clone()),
        ..LogOptions::default()
    };
    Arc::new(Log::open_with("/data", options).expect("open the simulated log"))
}

/// A server on its own runtime, so a cut can stop every task of it at once.
struct Instance {
    runtime: tokio::runtime::Runtime,
    log: Arc<Log>,
    kafka: SocketAddr,
    http: SocketAddr,
}

fn start(log: Arc<Log>, kafka: SocketAddr) -> Instance {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = ServerConfig::new("/data");
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.kafka_addr = Some(kafka);
    let server = Server::with_log(config, log.clone()).unwrap();
    let (ready, bound) = std::sync::mpsc::channel();
    runtime.spawn(server.run(std::future::pending(), move |addrs| {
        let _ = ready.send(addrs);
    }));
    let bound = bound.recv_timeout(Duration::from_secs(10)).expect("ready");
    Instance {
        runtime,
        log,
        kafka: bound.kafka.expect("Kafka listener"),
        http: bound.http,
    }
}

/// Stops the instance's runtime (connections dropped, so nothing more is acknowledged; log
/// work already on a blocking thread finishes), cuts the power, and returns the time of the
/// cut. The old log is dropped only after the cut: its final flush then syncs nothing that
/// survives.
fn cut(instance: Instance, storage: &SimStorage, seed: u64) -> i64 {
    instance.runtime.shutdown_timeout(Duration::from_secs(10));
    let at = now_ms();
    storage.power_cut(seed);
    drop(instance.log);
    at
}

struct Outcome {
    acked: usize,
    /// Acknowledged records missing after the cuts: (offset, acknowledged at, next cut at).
    lost: Vec<(u64, i64, i64)>,
    cuts: usize,
}

fn run_cuts(fsync: FsyncPolicy, cuts: usize, seed: u64) -> Outcome {
    let storage = SimStorage::new();
    let log = open_log(&storage);
    let mut config = TopicConfig::new(1).with_fsync(fsync);
    // Small segments: cuts land on rolls too, and the simulator's syncs stay cheap.
    config.segment_bytes = 64 * 1024;
    log.create_topic(TOPIC, config).unwrap();
    let mut instance = start(log, "127.0.0.1:0".parse().unwrap());
    let kafka = instance.kafka;
    let mut producer = Command::new("python3")
        .args([
            &format!(
                "{}/tests/clients/acked_producer.py",
                env!("CARGO_MANIFEST_DIR")
            ),
            &kafka.to_string(),
            TOPIC,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut rng = seed;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    // The producer's first records wait for metadata and a connection.
    std::thread::sleep(Duration::from_millis(1_000));
    let mut cut_times = Vec::with_capacity(cuts + 1);
    for i in 0..cuts {
        std::thread::sleep(Duration::from_millis(100 + next() % 300));
        cut_times.push(cut(instance, &storage, seed.wrapping_add(i as u64)));
        instance = start(open_log(&storage), kafka);
    }
    // Let the client catch up on the last server, stop it, and cut once more.
    std::thread::sleep(Duration::from_millis(500));
    drop(producer.stdin.take());
    let output = producer.wait_with_output().unwrap();
    assert!(output.status.success(), "producer failed: {output:?}");
    cut_times.push(cut(instance, &storage, seed.wrapping_add(cuts as u64)));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["unflushed"], 0, "records left unsent: {report:?}");
    assert_eq!(
        report["error_count"], 0,
        "delivery errors: {}",
        report["errors"]
    );

    let log = open_log(&storage);
    let topic = log.topic(TOPIC).unwrap();
    let partition = &topic.partitions()[0];
    let mut stored = BTreeMap::new();
    let mut offset = partition.log_start_offset();
    while offset < partition.high_watermark() {
        let records = partition.read_records(offset, 1 << 20).unwrap();
        for record in &records {
            stored.insert(record.offset, record.value.clone().unwrap_or_default());
        }
        offset = records.last().map_or(offset + 1, |r| r.offset + 1);
    }
    let acked = report["acked"].as_array().unwrap();
    let mut lost = Vec::new();
    for entry in acked {
        let offset = entry[0].as_u64().unwrap();
        let value = entry[1].as_str().unwrap();
        let acked_at = entry[2].as_i64().unwrap();
        if stored.get(&offset).map(|v| &v[..]) != Some(value.as_bytes()) {
            let next_cut = cut_times
                .iter()
                .copied()
                .find(|&t| t >= acked_at - 50)
                .unwrap_or(i64::MAX);
            lost.push((offset, acked_at, next_cut));
        }
    }
    Outcome {
        acked: acked.len(),
        lost,
        cuts: cut_times.len(),
    }
}

#[test]
fn no_acknowledged_record_is_lost_to_50_power_cuts_under_fsync_always() {
    if !python_has_confluent_kafka() {
        return;
    }
    let outcome = run_cuts(FsyncPolicy::Always, 50, 0x5EED_0001);
    eprintln!(
        "fsync=always: {} cuts, {} records acknowledged, {} lost",
        outcome.cuts,
        outcome.acked,
        outcome.lost.len()
    );
    assert!(outcome.acked > 1_000, "too few records to mean anything");
    assert!(
        outcome.lost.is_empty(),
        "acknowledged records lost: {:?}",
        &outcome.lost[..outcome.lost.len().min(10)]
    );
}

#[test]
fn loss_under_fsync_interval_is_bounded_by_the_interval() {
    if !python_has_confluent_kafka() {
        return;
    }
    let interval_ms = 100;
    let outcome = run_cuts(
        FsyncPolicy::Interval(Duration::from_millis(interval_ms)),
        20,
        0x5EED_0002,
    );
    // A record is acknowledged once written; the flusher syncs it within the interval (its
    // tick is 10 ms). The client's clock stamps the acknowledgment after the broker sent it,
    // so allow the scheduling of a loaded machine on top.
    let slack_ms = 400;
    let worst = outcome
        .lost
        .iter()
        .map(|&(_, acked_at, cut_at)| cut_at - acked_at)
        .max()
        .unwrap_or(0);
    eprintln!(
        "fsync=interval(100ms): {} cuts, {} records acknowledged, {} lost, the oldest lost \
         acknowledged {worst} ms before its cut",
        outcome.cuts,
        outcome.acked,
        outcome.lost.len()
    );
    assert!(outcome.acked > 500, "too few records to mean anything");
    assert!(
        worst <= interval_ms as i64 + slack_ms,
        "a record acknowledged {worst} ms before a cut was lost: {:?}",
        &outcome.lost[..outcome.lost.len().min(10)]
    );
}

/// `GET path`: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let response = support::http_get(addr, path);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn a_failed_fsync_turns_health_to_503_naming_the_partition() {
    let storage = SimStorage::new();
    let log = open_log(&storage);
    let topic = log.create_topic("orders", TopicConfig::new(2)).unwrap();
    let instance = start(log, "127.0.0.1:0".parse().unwrap());
    let (status, body) = get(instance.http, "/health");
    assert!(status.contains("200"), "{status} {body}");
    storage.fail_next_syncs(1);
    let record = keel_log::NewRecord::new(Some("k"), "v");
    assert!(
        topic.partitions()[1]
            .append(std::slice::from_ref(&record))
            .is_err()
    );
    // Sticky: the next sync would succeed, the partition still refuses, and health says so.
    assert!(topic.partitions()[1].append(&[record]).is_err());
    let (status, body) = get(instance.http, "/health");
    assert!(status.contains("503"), "{status} {body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "failing");
    assert_eq!(health["failed_partitions"][0]["topic"], "orders");
    assert_eq!(health["failed_partitions"][0]["partition"], 1);
    instance.runtime.shutdown_timeout(Duration::from_secs(10));
}
