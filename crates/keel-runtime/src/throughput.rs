//! The router's half of the engine benchmarks (each engine crate's
//! `examples/<engine>_throughput.rs`), written once: issue 15's workload — 100-byte events over
//! 10,000 keys — published through the runtime's [`Publisher`], and a router with a no-op
//! handler timed from its start until it handled them all. The same router with keel-sql's
//! SQLite inbox is `keel_sql::conformance::throughput`, on [`timed_router`]. The engine's own
//! client, the other half of each comparison, stays in its example. Enabled by the
//! `conformance` feature, like the suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_core::{Event, GroupPolicy};

use crate::handler::Handler;
use crate::publisher::Publisher;
use crate::router::{Route, Router};
use crate::transport::Transport;

/// Distinct partition keys of the workload.
pub const KEYS: u64 = 10_000;
/// Publishes in flight at once.
const PUBLISHERS: u64 = 32;
/// Events of a run unless `KEEL_BENCH_EVENTS` says otherwise.
const EVENTS_DEFAULT: u64 = 20_000;

/// The events of a run: `KEEL_BENCH_EVENTS`, or 20,000.
pub fn events() -> u64 {
    std::env::var("KEEL_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(EVENTS_DEFAULT)
}

/// Publishes `events` events of 100 data bytes to `topic`, key `key-<n mod 10,000>`, 32 at
/// a time; returns how long it took.
pub async fn publish(publisher: &Publisher, topic: &str, events: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            let publisher = publisher.clone();
            let topic = topic.to_string();
            tokio::spawn(async move {
                for n in (task..events).step_by(PUBLISHERS as usize) {
                    let event = Event::new("/bench", "bench.step")
                        .with_partition_key(format!("key-{}", n % KEYS))
                        .with_data("application/octet-stream", vec![b'x'; 100]);
                    publisher.publish(&topic, event).await.expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher task");
    }
    started.elapsed()
}

/// The group policy of the benchmark's routers: a short session, so a run does not wait on a
/// dead member of an earlier run.
pub fn group_policy() -> GroupPolicy {
    GroupPolicy {
        session_timeout: Duration::from_secs(3),
        heartbeat_interval: Duration::from_millis(100),
        ..GroupPolicy::default()
    }
}

/// A router with one route on `topic` (group `group`, a no-op raw handler: the whole
/// middleware chain, the group's leases and commits), timed from its start until `events`
/// were handled.
pub async fn router_no_op(
    transport: Transport,
    topic: &str,
    group: &str,
    policy: GroupPolicy,
    events: u64,
) -> Duration {
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let handler = Handler::raw("noop", move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let route = Route::new(topic, group, handler).with_group_policy(policy);
    timed_router(transport, route, &handled, events).await
}

/// Starts a router with `route` alone and times it from its start until its handler counted
/// `events` in `handled`; the router is shut down before this returns. The other router
/// halves (the SQLite inbox's is in keel-sql, which this crate does not depend on) share it.
pub async fn timed_router(
    transport: Transport,
    route: Route,
    handled: &AtomicU64,
    events: u64,
) -> Duration {
    let started = Instant::now();
    let handle = Router::new(transport).route(route).start().expect("router");
    while handled.load(Ordering::Relaxed) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    handle.shutdown().await;
    elapsed
}

/// The first line a run prints: both rates and the no-op router's share of the client's.
pub fn report(events: u64, publish: Duration, client: &str, raw: Duration, router: Duration) {
    println!(
        "{events} events of 100 B: publish {:.0}/s, {client} {:.0}/s, router (no-op handler) {:.0}/s, router/{client} {:.0}%",
        rate(events, publish),
        rate(events, raw),
        rate(events, router),
        share(raw, router)
    );
}

/// The second line a run prints: the router with the SQLite inbox
/// (`keel_sql::conformance::throughput`) and its share of the client's rate.
pub fn report_inbox(events: u64, client: &str, raw: Duration, inbox: Duration) {
    println!(
        "{events} events of 100 B: router (SQLite inbox) {:.0}/s, router inbox/{client} {:.0}%",
        rate(events, inbox),
        share(raw, inbox)
    );
}

/// Events per second.
fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

/// The router's rate as a percentage of the client's, from the times both took.
fn share(raw: Duration, router: Duration) -> f64 {
    100.0 * raw.as_secs_f64() / router.as_secs_f64()
}
