//! `keel relay --to sqs://…` against the SNS/SQS API at `KEEL_TEST_SQS_URL` (moto; keel-cli's
//! `sqs` feature): a SQLite outbox relayed to an SNS FIFO topic by a process SIGKILLed twice
//! mid-run and then run to the end; a group's queue, subscribed before, gets every event,
//! each key's events in order (an event republished within five minutes is delivered once
//! by its deduplication id; none goes missing or jumps ahead). Unset, the test says it did
//! not run.

#![cfg(feature = "sqs")]

#[path = "support/killed_relay.rs"]
mod killed_relay;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keel_core::Event;
use keel_sqs::{SqsConfig, SqsTransport};

const KEYS: usize = 5;
const PER_KEY: u32 = 20;

fn step(key: &str, seq: u32) -> Event {
    Event::new("/test", "test.step")
        .with_partition_key(key)
        .with_data("text/plain", format!("{key}/{seq}").into_bytes())
}

/// The value of a message body Keel wrote (`"v"`: base64).
fn value_of(body: &str) -> String {
    use base64::Engine as _;
    let envelope: serde_json::Value = serde_json::from_str(body).expect("a JSON envelope");
    let value = envelope["v"].as_str().expect("a value");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

#[test]
fn a_relay_to_sqs_killed_mid_run_loses_nothing_and_keeps_key_order() {
    let Ok(url) = std::env::var("KEEL_TEST_SQS_URL") else {
        eprintln!("relay to sqs: not run, KEEL_TEST_SQS_URL is unset");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let topic = format!("relay{}", std::process::id());
    let sqs = runtime
        .block_on(SqsTransport::connect(&SqsConfig::local(&url)))
        .unwrap_or_else(|e| panic!("KEEL_TEST_SQS_URL={url} is unreachable: {e}"));
    runtime.block_on(sqs.ensure_topic(&topic, 2)).unwrap();
    let queue = runtime.block_on(sqs.queue_url(&topic, "check")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
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
    let to = format!("sqs://{}", url.trim_start_matches("http://"));
    killed_relay::relay_killed_twice_then_to_the_end(&database, &["--to", &to], dir.path());

    // Everything is in the queue now: read until a receive comes back empty.
    let mut next: BTreeMap<String, u32> = BTreeMap::new();
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "timed out reading the queue");
        let batch = runtime
            .block_on(
                sqs.sqs_client()
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send(),
            )
            .expect("receive");
        if batch.messages().is_empty() {
            break;
        }
        for message in batch.messages() {
            received += 1;
            let data = value_of(message.body().expect("body"));
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
            runtime
                .block_on(
                    sqs.sqs_client()
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(message.receipt_handle().expect("receipt"))
                        .send(),
                )
                .expect("delete");
        }
    }
    assert_eq!(next.len(), KEYS, "every key relayed");
    assert!(
        next.values().all(|&n| n == PER_KEY),
        "every event relayed: {next:?}"
    );
    eprintln!(
        "2 kills; {received} messages received for {} events",
        KEYS as u32 * PER_KEY
    );
}
