//! `/metrics` moved by a Kafka client nobody here wrote (kcat, librdkafka inside): produce and
//! fetch counters, bytes per topic, open connections, and the lag of a Kafka-protocol
//! consumer group (committed offset against the high watermark).
//!
//! Needs `kcat`. Set `KEEL_TEST_KAFKA_CLIENTS=1` (as `.ci/run` does) to make a missing kcat a
//! failure; unset, the test says it did not run and returns.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use keel_server::ServerConfig;
use support::Running;

fn kcat_available() -> bool {
    let ok = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    if !ok {
        let required = std::env::var("KEEL_TEST_KAFKA_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "KEEL_TEST_KAFKA_CLIENTS=1 but kcat is not usable; .ci/run installs it"
        );
        println!(
            "kcat not found: this test did not run (set KEEL_TEST_KAFKA_CLIENTS=1 to require it)"
        );
    }
    ok
}

/// Runs kcat with `args`, feeding `input` on stdin, and fails the test if it fails.
fn kcat(args: &[&str], input: &str) -> Output {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn scrape(http: SocketAddr) -> String {
    ureq::get(format!("http://{http}/metrics"))
        .call()
        .expect("GET /metrics")
        .into_body()
        .read_to_string()
        .unwrap()
}

/// The value of the one series named exactly `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_clients_produce_fetch_and_group_commit_move_the_metrics() {
    if !kcat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.kafka_addr = Some("127.0.0.1:0".parse().unwrap());
    // One member joins: no reason to wait for others.
    config.groups.initial_rebalance_delay_ms = 0;
    let running = Running::start(config).await;
    let bound = running.bound;
    let http = bound.http;
    let bootstrap = bound.kafka.expect("Kafka listener").to_string();

    let before = scrape(http);
    assert_eq!(
        value(&before, "keel_kafka_connections"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        value(&before, r#"keel_kafka_requests_total{api="Produce"}"#),
        None
    );

    let text = tokio::task::spawn_blocking(move || {
        let records: String = (0..10).map(|i| format!("record-{i}\n")).collect();
        kcat(
            &["-b", &bootstrap, "-t", "orders", "-P", "-X", "acks=all"],
            &records,
        );
        // A group member reads everything and commits on close...
        let consumed = kcat(
            &[
                "-b",
                &bootstrap,
                "-G",
                "metrics-test",
                "-X",
                "auto.offset.reset=earliest",
                "-e",
                "orders",
            ],
            "",
        );
        assert_eq!(
            String::from_utf8_lossy(&consumed.stdout).lines().count(),
            10
        );
        // ...then 5 more records arrive that the group has not read.
        let more: String = (10..15).map(|i| format!("record-{i}\n")).collect();
        kcat(
            &["-b", &bootstrap, "-t", "orders", "-P", "-X", "acks=all"],
            &more,
        );
        scrape(http)
    })
    .await
    .unwrap();

    let at_least_one = |series: &str| {
        let found = value(&text, series).unwrap_or(0.0);
        assert!(found >= 1.0, "{series} is {found} in\n{text}");
        found
    };
    at_least_one(r#"keel_kafka_requests_total{api="Produce"}"#);
    at_least_one(r#"keel_kafka_requests_total{api="Fetch"}"#);
    at_least_one(r#"keel_kafka_requests_total{api="JoinGroup"}"#);
    at_least_one(r#"keel_kafka_request_duration_seconds_count{api="Produce"}"#);
    let bytes_in = at_least_one(r#"keel_kafka_bytes_in_total{topic="orders"}"#);
    let bytes_out = at_least_one(r#"keel_kafka_bytes_out_total{topic="orders"}"#);
    // 15 records of 8 or 9 bytes each in record batches: more than the values alone.
    assert!(bytes_in > 15.0 * 8.0, "{text}");
    assert!(bytes_out > 10.0 * 8.0, "{text}");
    assert_eq!(
        value(
            &text,
            r#"keel_consumer_lag_events{topic="orders",group="metrics-test",partition="0"}"#
        ),
        Some(5.0),
        "{text}"
    );
    // Whether kcat's closed connections are counted out yet is a race; the gauge is there.
    assert!(value(&text, "keel_kafka_connections").is_some(), "{text}");

    running.stop().await;
}
