//! `keel demo --engine URL` on the real engines (keel-cli's `nats`, `redis`, `rabbitmq` and
//! `sqs` features): the order system in one process on NATS JetStream at
//! `KEEL_TEST_NATS_URL`, Redis at `KEEL_TEST_REDIS_URL`, RabbitMQ at
//! `KEEL_TEST_RABBITMQ_URL` and SNS/SQS at `KEEL_TEST_SQS_URL` (moto); each run's
//! self-check holds (every order placed once, nothing charged or shipped twice, each poison
//! event in its dead-letter topic). A test whose variable is unset says it did not run; an
//! unreachable server fails it.
//!
//! The demo's topics and groups have fixed names, so runs on one server take turns (a lock
//! file per URL); a later run starts where the groups' commits left the topics.

#![cfg(any(
    feature = "nats",
    feature = "redis",
    feature = "rabbitmq",
    feature = "sqs"
))]

#[allow(dead_code)]
mod support;

#[path = "support/demo.rs"]
mod demo;

use demo::{ORDERS, PAYMENT, assert_summary, take_turn};
use support::Keel;

#[cfg(feature = "nats")]
#[test]
fn the_order_system_keeps_every_invariant_on_nats() {
    if let Some(url) = url("KEEL_TEST_NATS_URL") {
        the_order_system_keeps_every_invariant(&url);
    }
}

#[cfg(feature = "redis")]
#[test]
fn the_order_system_keeps_every_invariant_on_redis() {
    if let Some(url) = url("KEEL_TEST_REDIS_URL") {
        the_order_system_keeps_every_invariant(&url);
    }
}

#[cfg(feature = "rabbitmq")]
#[test]
fn the_order_system_keeps_every_invariant_on_rabbitmq() {
    if let Some(url) = url("KEEL_TEST_RABBITMQ_URL") {
        the_order_system_keeps_every_invariant(&url);
    }
}

#[cfg(feature = "sqs")]
#[test]
fn the_order_system_keeps_every_invariant_on_sqs() {
    // The variable holds the HTTP endpoint; keel names the engine sqs://HOST:PORT.
    if let Some(url) = url("KEEL_TEST_SQS_URL") {
        let address = url.trim_start_matches("http://").trim_end_matches('/');
        the_order_system_keeps_every_invariant(&format!("sqs://{address}"));
    }
}

/// The server URL in `var`, or `None` after saying the test did not run.
fn url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        eprintln!("demo: not run, {var} is unset");
    }
    url
}

/// 40 orders with every 9th a poison event (4 dead letters), a payment outage and declines,
/// all services in one process on the engine at `url`: the summary's checks pass.
fn the_order_system_keeps_every_invariant(url: &str) {
    let _turn = take_turn(url);
    let keel = Keel::new();
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let mut args = vec!["demo", "--engine", url, "--dir", dir_arg, "--quiet"];
    args.extend(ORDERS);
    args.extend(PAYMENT);
    assert_summary(&keel.ok(&args, ""));
}
