//! `keel demo --brokers` on the real Apache Kafka broker: the order system in one process,
//! then as two processes (the services, and the ordering one) sharing only the broker and a
//! directory; each run's self-check holds (every order placed once, nothing charged or
//! shipped twice, each poison event in its dead-letter topic).
//!
//! Runs against `KEEL_TEST_KAFKA_BROKERS` (`scripts/services start kafka`; 127.0.0.1:29092):
//! unset, the test says it did not run; set, an unreachable broker fails it. The demo's
//! topics and groups have fixed names, so runs on one broker take turns (a lock file per
//! broker address); a later run starts where the groups' commits left the topics.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`).
#![cfg(feature = "kafka")]

// Only part of the shared harness is used here (no server, no failing runs).
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod server;
#[allow(dead_code)]
mod support;

#[path = "support/demo.rs"]
mod demo;

use std::process::{Command, Stdio};

use demo::{ORDERS, PAYMENT, assert_summary, take_turn};
use support::Keel;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

/// The broker list, or `None` (with a message) when the test is not to run.
fn brokers() -> Option<String> {
    match std::env::var(BROKERS_VAR) {
        Ok(brokers) => Some(brokers),
        Err(_) => {
            eprintln!("demo on apache kafka: not run, {BROKERS_VAR} is unset");
            None
        }
    }
}

#[test]
fn the_order_system_keeps_every_invariant_on_apache_kafka() {
    let Some(brokers) = brokers() else { return };
    let _turn = take_turn(&brokers);
    let keel = Keel::new();
    let (orders, payment) = (ORDERS, PAYMENT);

    // One process, every service.
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let mut args = vec!["demo", "--brokers", &brokers, "--dir", dir_arg, "--quiet"];
    args.extend(orders);
    args.extend(payment);
    assert_summary(&keel.ok(&args, ""));

    // Two processes: the five services, then the ordering one.
    let dir = tempfile::tempdir().unwrap();
    let mut services = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["demo", "--brokers", &brokers, "--quiet", "--dir"])
        .arg(dir.path())
        .args(["--service", "inventory,payment,shipping,email,analytics"])
        .args(payment)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn keel demo");
    let dir_arg = dir.path().to_str().unwrap();
    let mut args = vec![
        "demo",
        "--brokers",
        &brokers,
        "--dir",
        dir_arg,
        "--quiet",
        "--service",
        "orders",
    ];
    args.extend(orders);
    let ordering = keel.run(&args, "");
    let stopped = server::terminate(&mut services);
    let stdout = String::from_utf8_lossy(&ordering.stdout);
    assert!(
        ordering.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ordering.stderr)
    );
    assert_summary(&stdout);
    assert!(stopped, "the services' process did not stop cleanly");
}
