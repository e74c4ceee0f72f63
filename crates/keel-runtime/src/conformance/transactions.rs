//! The transactional-processing checks ([`Route::with_transactions`]): on a transport with
//! transactions, a failed attempt's publishes are never visible and the event goes on as on
//! the plain path (retried, or dead-lettered — inside the transaction), and a service
//! SIGKILLed mid-run and started again leaves every input's outputs exactly once, in order
//! per key; on any other, the router refuses the route in one line naming the engine and
//! pointing to the inbox.
//!
//! Outputs are read back through the admin port, which reads committed records only on a
//! transport with transactions (Kafka's reader is `read_committed`).

use std::collections::BTreeMap;

use std::io::Write;
use std::time::{Duration, Instant};

use super::takeover::{MEMBER_VAR, READY, kill, spawn_member};
use super::{
    Harness, WAIT, create_topic, event, key_seq, name, publish, quick_retry, route, stored,
};
use crate::dead_letter::dead_letter_topic;
use crate::error::HandlerError;
use crate::handler::Handler;
use crate::router::{Route, Router};

/// Events per ordinary key; every one succeeds at its first attempt.
const EVENTS_PER_KEY: u32 = 10;
/// Outputs the handler publishes per input, before it decides to fail.
const OUTPUTS_PER_INPUT: u32 = 2;

/// A handler that publishes two outputs per input to `output`, then fails: `flaky` twice
/// (transient), `poison` at once (permanent).
fn publishing(output: String) -> Handler {
    Handler::raw("transactional", move |event, ctx| {
        let output = output.clone();
        async move {
            let (key, seq) = key_seq(&event);
            for n in 1..=OUTPUTS_PER_INPUT {
                let out = crate::conformance::event(&key, seq * 10 + n);
                ctx.publish(&output, out).await?;
            }
            match key.as_str() {
                "flaky" if ctx.attempt() < 3 => Err(HandlerError::transient("flaky")),
                "poison" => Err(HandlerError::permanent("poison")),
                _ => Ok(()),
            }
        }
    })
}

/// See the module docs.
pub async fn transactions_hide_a_failed_attempts_publishes_or_are_refused<H: Harness>(harness: &H) {
    let transport = harness.transport();
    let output = name(harness, "txn-out");
    let make_route = || {
        route(harness, "txn-in", "txn", publishing(output.clone()))
            .with_retry(quick_retry(3))
            .with_transactions()
    };
    if let Err(refused) = transport.consume().check_transactions() {
        let error = Router::new(transport.clone())
            .route(make_route())
            .start()
            .expect_err("a transport without transactions refuses the route");
        let message = error.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(
            message.contains(transport.consume().engine()) && message.contains("inbox"),
            "names the engine and the inbox: {message}"
        );
        assert!(message.contains(&refused.to_string()), "{message}");
        return;
    }
    create_topic(harness, "txn-in", 2).await;
    create_topic(harness, "txn-out", 2).await;
    let handle = Router::new(transport)
        .route(make_route())
        .start()
        .expect("router starts");
    let keys = ["k0", "k1", "k2", "k3"];
    let mut inputs: Vec<_> = (0..EVENTS_PER_KEY)
        .flat_map(|seq| keys.iter().map(move |key| event(key, seq)))
        .collect();
    inputs.push(event("flaky", 0));
    inputs.push(event("poison", 0));
    publish(harness, "txn-in", inputs).await;
    let expected = ((keys.len() as u32 * EVENTS_PER_KEY + 1) * OUTPUTS_PER_INPUT) as usize;
    let dead_letters = dead_letter_topic("txn-in");
    until_stored(harness, "txn-out", expected, WAIT, "every output").await;
    until_stored(harness, &dead_letters, 1, WAIT, "the dead letter").await;
    handle.shutdown().await;
    let per_key = outputs_by_key(harness, "txn-out").await;
    assert!(
        !per_key.contains_key("poison"),
        "a dead-lettered event's outputs are hidden"
    );
    assert_eq!(
        per_key.get("flaky"),
        Some(&vec![1, 2]),
        "the retried event's outputs once"
    );
    for key in keys {
        let want: Vec<u32> = (0..EVENTS_PER_KEY)
            .flat_map(|seq| (1..=OUTPUTS_PER_INPUT).map(move |n| seq * 10 + n))
            .collect();
        assert_eq!(
            per_key.get(key),
            Some(&want),
            "key {key}: every output once, in order"
        );
    }
    let dead = stored(harness, &dead_letters).await;
    assert_eq!(dead.len(), 1, "the poison event dead-lettered once");
}

/// Inputs of the kill check.
const KILL_INPUTS: u32 = 300;
/// Keys of the kill check's inputs.
const KILL_KEYS: u32 = 6;

/// The kill check's service: its route publishes two outputs per input, slowly enough
/// that the kill lands mid-run.
fn service<H: Harness>(harness: &H) -> Route {
    let output = name(harness, "eos-out");
    let handler = Handler::raw("eos", move |event, ctx| {
        let output = output.clone();
        async move {
            let (key, seq) = key_seq(&event);
            for n in 1..=OUTPUTS_PER_INPUT {
                ctx.publish(&output, crate::conformance::event(&key, seq * 10 + n))
                    .await?;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        }
    });
    route(harness, "eos-in", "eos", handler).with_transactions()
}

/// Waits until `topic` holds at least `count` (committed) records, failing after `wait`
/// with `what`; returns how many it holds.
async fn until_stored<H: Harness>(
    harness: &H,
    topic: &str,
    count: usize,
    wait: Duration,
    what: &str,
) -> usize {
    let deadline = Instant::now() + wait;
    loop {
        let held = stored(harness, topic).await.len();
        if held >= count {
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {held} of {count} records in '{topic}'"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The seqs of the outputs stored (committed) in `topic`, by key, in offset order.
async fn outputs_by_key<H: Harness>(harness: &H, topic: &str) -> BTreeMap<String, Vec<u32>> {
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for record in stored(harness, topic).await {
        let headers = record
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref()));
        let out =
            keel_core::Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
                .expect("an output event");
        let (key, seq) = key_seq(&out);
        per_key.entry(key).or_default().push(seq);
    }
    per_key
}

/// Exactly-once across a crash: the service runs in a child process and is SIGKILLed once
/// part of its outputs are committed; a new member finishes the inputs. Read back
/// committed, every input's two outputs are there exactly once, in per-key order, and no
/// input is missing. Transports without transactions (refused above) and brokers living in
/// the test process (no process to kill) skip it.
pub async fn a_killed_transactional_service_outputs_each_input_once<H: Harness>(harness: &H) {
    let transport = harness.transport();
    if transport.consume().check_transactions().is_err() {
        return;
    }
    if std::env::var_os(MEMBER_VAR).is_some() {
        // The child process: run the service until the parent kills it.
        let _handle = Router::new(transport.clone())
            .route(service(harness))
            .start()
            .expect("router starts");
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{READY}")
            .and_then(|()| stdout.flush())
            .expect("tell the parent");
        std::future::pending::<()>().await;
    }
    let Some(broker) = harness.broker_for_child() else {
        eprintln!("kill check: not run, the broker lives in the test process");
        return;
    };
    create_topic(harness, "eos-in", 2).await;
    create_topic(harness, "eos-out", 2).await;
    let inputs = (0..KILL_INPUTS).map(|seq| event(&format!("k{}", seq % KILL_KEYS), seq));
    publish(harness, "eos-in", inputs).await;
    let child = spawn_member(harness, &broker).await;
    let expected = (KILL_INPUTS * OUTPUTS_PER_INPUT) as usize;
    let seen = until_stored(harness, "eos-out", expected / 4, WAIT, "the first outputs").await;
    eprintln!("kill check: SIGKILL after {seen} of {expected} outputs committed");
    let mid_run = seen < expected;
    assert!(
        mid_run,
        "the kill must land mid-run, not after all {seen} outputs"
    );
    kill(child).await;
    let handle = Router::new(transport)
        .route(service(harness))
        .start()
        .expect("router starts");
    // The killed member's open transaction holds readers back until the broker aborts it
    // (the transaction timeout), and its group session must expire first.
    let what = "every output after the restart";
    until_stored(harness, "eos-out", expected, WAIT * 2, what).await;
    handle.shutdown().await;
    let per_key = outputs_by_key(harness, "eos-out").await;
    for k in 0..KILL_KEYS {
        let key = format!("k{k}");
        let want: Vec<u32> = (0..KILL_INPUTS)
            .filter(|seq| seq % KILL_KEYS == k)
            .flat_map(|seq| (1..=OUTPUTS_PER_INPUT).map(move |n| seq * 10 + n))
            .collect();
        assert_eq!(
            per_key.get(&key),
            Some(&want),
            "key {key}: every input's outputs exactly once, in order"
        );
    }
}
