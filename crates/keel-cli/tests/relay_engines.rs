//! `keel relay` against the real engines (keel-cli's `kafka`, `rabbitmq`, `nats` and
//! `redis` features): Apache Kafka at `KEEL_TEST_KAFKA_BROKERS` (`--to kafka://…` and
//! `--brokers`), a `keel serve` owning the data directory (no `--to`: through its Kafka
//! listener), RabbitMQ at `KEEL_TEST_RABBITMQ_URL`, NATS JetStream at `KEEL_TEST_NATS_URL`,
//! Redis at `KEEL_TEST_REDIS_URL`. Each test relays a SQLite outbox with a process
//! SIGKILLed twice mid-run and then run to the end; every event is stored, each key's
//! events in order (a republished event may repeat, never go missing or jump ahead). A
//! test whose variable is unset says it did not run.

#![cfg(any(
    feature = "kafka",
    feature = "rabbitmq",
    feature = "nats",
    feature = "redis"
))]

#[cfg(feature = "kafka")]
#[path = "support/serve.rs"]
mod server;
#[cfg(feature = "kafka")]
mod support;

#[path = "support/killed_relay.rs"]
mod killed_relay;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use keel_core::{AdminTransport, Event};

const KEYS: usize = 10;
const PER_KEY: u32 = 60;

fn step(key: &str, seq: u32) -> Event {
    Event::new("/test", "test.step")
        .with_partition_key(key)
        .with_data("text/plain", format!("{key}/{seq}").into_bytes())
}

#[cfg(feature = "kafka")]
#[test]
fn a_relay_to_apache_kafka_killed_mid_run_loses_nothing_and_keeps_key_order() {
    let Some(brokers) = url("KEEL_TEST_KAFKA_BROKERS") else {
        return;
    };
    let admin = kafka_admin(&brokers);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = format!("kafka://{brokers}");
    killed_relay_loses_nothing(&runtime, &admin, &["--to", &to], dir.path());
    // --brokers names the same cluster the way the operator verbs take it.
    killed_relay_loses_nothing(&runtime, &admin, &["--brokers", &brokers], dir.path());
}

/// With no `--to`, a relay on a directory `keel serve` owns publishes through the server's
/// Kafka listener rather than waiting for the log's lock.
#[cfg(feature = "kafka")]
#[test]
fn a_relay_into_a_served_data_directory_goes_through_its_kafka_listener() {
    let keel = support::Keel::new();
    let (mut serve, line) = keel.start_server(&[]);
    let listener = server::address(&line, "kafka").to_string();
    let admin = kafka_admin(&listener);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    killed_relay_loses_nothing(&runtime, &admin, &[], keel.dir.path());
    assert!(server::terminate(&mut serve), "keel serve stops cleanly");
}

/// `--to` and `--brokers` together name two destinations: refused, not one of them ignored;
/// `--help` names both ways to a Kafka cluster.
#[cfg(feature = "kafka")]
#[test]
fn a_relay_given_two_destinations_is_refused() {
    let keel = support::Keel::new();
    let database = format!("sqlite:{}", keel.dir.path().join("app.db").display());
    let args = [
        "relay",
        "--database-url",
        &database,
        "--to",
        "redis://127.0.0.1:1",
    ];
    keel.fails(
        &[&args[..], &["--brokers", "127.0.0.1:1"]].concat(),
        "",
        "are two destinations: give one",
    );
    let help = keel.ok(&["relay", "--help"], "");
    assert!(help.contains("kafka://HOST:PORT"), "{help}");
}

#[cfg(feature = "kafka")]
fn kafka_admin(brokers: &str) -> keel_kafka_client::KafkaAdmin {
    keel_kafka_client::KafkaAdmin::connect(&keel_kafka_client::KafkaConfig::new(brokers))
        .unwrap_or_else(|e| panic!("Kafka at {brokers}: {e}"))
}

#[cfg(feature = "rabbitmq")]
#[test]
fn a_relay_to_rabbitmq_killed_mid_run_loses_nothing_and_keeps_key_order() {
    let Some(url) = url("KEEL_TEST_RABBITMQ_URL") else {
        return;
    };
    let config = keel_rabbitmq::RabbitConfig::new(&url);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = runtime.block_on(async {
        keel_rabbitmq::RabbitTransport::connect(&config)
            .unwrap()
            .admin()
    });
    killed_relay_loses_nothing(
        &runtime,
        &admin,
        &["--to", &url],
        tempfile::tempdir().unwrap().path(),
    );
}

#[cfg(feature = "nats")]
#[test]
fn a_relay_to_nats_killed_mid_run_loses_nothing_and_keeps_key_order() {
    let Some(url) = url("KEEL_TEST_NATS_URL") else {
        return;
    };
    let config = keel_nats::NatsConfig::new(&url);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = runtime
        .block_on(keel_nats::NatsTransport::connect(&config))
        .unwrap_or_else(|e| panic!("KEEL_TEST_NATS_URL={url} is unreachable: {e}"));
    killed_relay_loses_nothing(
        &runtime,
        &admin,
        &["--to", &url],
        tempfile::tempdir().unwrap().path(),
    );
}

#[cfg(feature = "redis")]
#[test]
fn a_relay_to_redis_killed_mid_run_loses_nothing_and_keeps_key_order() {
    let Some(url) = url("KEEL_TEST_REDIS_URL") else {
        return;
    };
    let config = keel_redis::RedisConfig::new(&url);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = runtime
        .block_on(keel_redis::RedisTransport::connect(&config))
        .unwrap_or_else(|e| panic!("KEEL_TEST_REDIS_URL={url} is unreachable: {e}"));
    killed_relay_loses_nothing(
        &runtime,
        &admin,
        &["--to", &url],
        tempfile::tempdir().unwrap().path(),
    );
}

/// The server URL in `var`, or `None` after saying the test did not run.
fn url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        eprintln!("relay: not run, {var} is unset");
    }
    url
}

/// Relays 600 events of 10 keys to a fresh topic through `admin`'s engine (`keel relay
/// DESTINATION` run on `data`), with two relays SIGKILLed mid-run, and reads the topic back.
fn killed_relay_loses_nothing(
    runtime: &tokio::runtime::Runtime,
    admin: &dyn AdminTransport,
    destination: &[&str],
    data: &Path,
) {
    let url = match destination {
        [] => "the Kafka listener of the data directory's keel serve".to_string(),
        named => named.join(" "),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("relay-test-{}-{nanos}", std::process::id());
    runtime
        .block_on(admin.create_topic(&topic, 3))
        .unwrap_or_else(|e| panic!("{url} is unreachable: {e}"));

    let app = tempfile::tempdir().unwrap();
    let path = app.path().join("app.db");
    let outbox = keel_sql::SqliteOutbox::open(&path).unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    for seq in 0..PER_KEY {
        let tx = connection.transaction().unwrap();
        let events: Vec<(&str, Event)> = (0..KEYS)
            .map(|k| (topic.as_str(), step(&format!("key-{k}"), seq)))
            .collect();
        outbox.enqueue_batch(&tx, &events).unwrap();
        tx.commit().unwrap();
    }
    let database = format!("sqlite:{}", path.display());
    killed_relay::relay_killed_twice_then_to_the_end(&database, destination, data);

    let mut next: BTreeMap<String, u32> = BTreeMap::new();
    let mut stored = 0;
    let ranges = runtime.block_on(admin.partition_offsets(&topic)).unwrap();
    for range in ranges {
        let mut offset = range.log_start;
        while offset < range.high_watermark {
            let records = runtime
                .block_on(admin.read(&topic, range.partition, offset, 1 << 20))
                .unwrap();
            assert!(
                !records.is_empty(),
                "partition {} ends early",
                range.partition
            );
            let from = offset;
            for record in records.into_iter().filter(|r| r.offset >= from) {
                offset = record.offset + 1;
                stored += 1;
                let data = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
                let (key, seq) = data.split_once('/').unwrap();
                let seq: u32 = seq.parse().unwrap();
                let expected = next.entry(key.to_string()).or_insert(0);
                assert!(
                    seq <= *expected,
                    "key {key} jumped to {seq} before {expected}"
                );
                if seq == *expected {
                    *expected += 1;
                }
            }
        }
    }
    assert_eq!(
        next.len(),
        KEYS,
        "every key relayed: {next:?}, {stored} records"
    );
    assert!(
        next.values().all(|&n| n == PER_KEY),
        "every event relayed: {next:?}"
    );
    eprintln!(
        "2 kills; {stored} records stored for {} events",
        KEYS as u32 * PER_KEY
    );
}
