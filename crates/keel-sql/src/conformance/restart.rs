//! The server-restart check (issue 15): a publisher and a router group with the SQLite inbox
//! run while the broker's server is stopped and started again under them; neither is
//! restarted. Publishing and handling must resume on their own, every event whose publish
//! was acknowledged must be handled, each key in order, each effect applied once.
//!
//! The publisher publishes each event until it is acknowledged (the same event, the same id:
//! what an outbox relay does), so an attempt the server stored but never acknowledged is
//! stored twice and the inbox drops the second. Each transport crate runs the check on a
//! server of its own (`keel_runtime::conformance::PrivateServer`), never the shared one.
//!
//! Not here: the member-killed check (`keel_runtime::conformance`'s takeover).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_runtime::conformance::{
    Harness, create_topic, event, key_seq, name, quick_consumer, stored,
};
use keel_runtime::{HandlerError, Route, Router};

use crate::SqliteInbox;

/// Partitions of the check's topic.
const PARTITIONS: u32 = 3;
/// Keys the events are spread over.
const KEYS: u32 = 6;
/// Events published in all; the server restarts once a third of them were acknowledged.
const EVENTS: u32 = 300;
/// Pause between two publishes, so the run spans the restart.
const PUBLISH_PAUSE: Duration = Duration::from_millis(5);
/// The longest one publish attempt may take before it counts as failed: longer than any
/// transport's own timeouts, so an attempt that hangs on a dead connection shows in
/// [`RestartReport::attempt_longest`].
const ATTEMPT_MAX: Duration = Duration::from_secs(30);
/// The longest the check waits for publishing or handling to finish after the restart.
const RECOVERY_MAX: Duration = Duration::from_secs(120);

/// What a run measured, for the test to print.
#[derive(Debug, Clone, Copy)]
pub struct RestartReport {
    /// From the restart's end to the first acknowledged publish after it.
    pub publishing_resumed: Duration,
    /// From the restart's end to the first effect applied after it.
    pub handling_resumed: Duration,
    /// Publish attempts that failed (and were tried again).
    pub failed_attempts: u64,
    /// The longest one publish attempt took, acknowledged or failed.
    pub attempt_longest: Duration,
    /// Deliveries the inbox dropped as duplicates.
    pub duplicates: u64,
}

/// The check: `restart` stops and starts the harness's server again (awaited once a third
/// of the events were acknowledged and some handled).
pub async fn the_server_restarted_mid_run_loses_nothing_acknowledged<H: Harness>(
    harness: &H,
    restart: impl Future<Output = ()>,
) -> RestartReport {
    create_topic(harness, "orders", PARTITIONS).await;
    let topic = name(harness, "orders");
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("inbox.db");
    let inbox = SqliteInbox::open(&db).expect("open the inbox");
    rusqlite::Connection::open(&db)
        .expect("open the inbox's database")
        .execute_batch(
            "CREATE TABLE effects (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
             key TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL)",
        )
        .expect("effects table");
    let started = Instant::now();
    let apply = inbox.handler_raw("apply", move |tx, event| {
        let (key, seq) = key_seq(&event);
        tx.execute(
            "INSERT INTO effects (event_id, key, seq, at_ms) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![event.id, key, seq, started.elapsed().as_millis() as i64],
        )
        .map_err(|e| HandlerError::transient(e.to_string()))?;
        Ok(())
    });
    let route = Route::new(topic.clone(), name(harness, "billing"), apply)
        .with_consumer(quick_consumer())
        .with_group_policy(harness.group_policy());
    let router = Router::new(harness.transport())
        .route(route)
        .start()
        .expect("router starts");

    let acked: Arc<Mutex<Vec<(String, u32, Duration)>>> = Arc::default();
    let failed = Arc::new(Mutex::new((0u64, Duration::ZERO)));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = tokio::spawn(publish_all(
        harness.publisher(),
        topic,
        acked.clone(),
        failed.clone(),
        stop.clone(),
        started,
    ));
    wait(
        RECOVERY_MAX,
        "a third of the events acknowledged, some handled",
        || acked.lock().unwrap().len() >= EVENTS as usize / 3 && effects(&db).len() >= 10,
    )
    .await;
    restart.await;
    let restarted = started.elapsed();
    let deadline = Instant::now() + RECOVERY_MAX;
    while !publishing.is_finished() {
        if Instant::now() >= deadline {
            stop.store(true, Ordering::SeqCst);
            panic!(
                "publishing did not finish within {RECOVERY_MAX:?} of the restart: {} of {EVENTS} acknowledged",
                acked.lock().unwrap().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publishing.await.expect("the publisher's task");
    let acked = acked.lock().unwrap().clone();
    let want: HashSet<(String, u32)> = acked.iter().map(|(k, s, _)| (k.clone(), *s)).collect();
    let deadline = Instant::now() + RECOVERY_MAX;
    loop {
        let applied: HashSet<(String, u32)> =
            effects(&db).into_iter().map(|e| (e.key, e.seq)).collect();
        let mut missing: Vec<&(String, u32)> = want.difference(&applied).collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            missing.sort();
            let on_server: HashSet<(String, u32)> = stored(harness, "orders")
                .await
                .iter()
                .map(|record| key_seq(&super::decode(record)))
                .collect();
            let lost = missing.iter().filter(|m| !on_server.contains(m)).count();
            panic!(
                "{} acknowledged events not handled within {RECOVERY_MAX:?} of the restart, \
                 {lost} of them not stored on the server; the first: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    router.shutdown().await;

    let applied = effects(&db);
    let mut ids = HashSet::new();
    for effect in &applied {
        assert!(
            ids.insert(effect.event_id.clone()),
            "event {} ({}/{}) applied twice",
            effect.event_id,
            effect.key,
            effect.seq
        );
    }
    let mut per_key: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for effect in &applied {
        per_key.entry(&effect.key).or_default().push(effect.seq);
    }
    for (key, seqs) in &per_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} applied out of order: {seqs:?}"
        );
    }
    let after = |at: Duration| at.saturating_sub(restarted);
    let publishing_resumed = acked
        .iter()
        .map(|(_, _, at)| *at)
        .find(|at| *at >= restarted)
        .map_or(Duration::ZERO, after);
    let handling_resumed = applied
        .iter()
        .map(|e| Duration::from_millis(e.at_ms as u64))
        .find(|at| *at >= restarted)
        .map_or(Duration::ZERO, after);
    assert!(
        acked.iter().any(|(_, _, at)| *at >= restarted),
        "nothing was published after the restart"
    );
    let (failed_attempts, attempt_longest) = *failed.lock().unwrap();
    let duplicates = inbox.stats().duplicates;
    RestartReport {
        publishing_resumed,
        handling_resumed,
        failed_attempts,
        attempt_longest,
        duplicates,
    }
}

/// Publishes [`EVENTS`] events, each until acknowledged, noting when each was; `attempts`
/// counts the failed attempts and keeps the longest attempt.
async fn publish_all(
    publisher: keel_runtime::Publisher,
    topic: String,
    acked: Arc<Mutex<Vec<(String, u32, Duration)>>>,
    attempts: Arc<Mutex<(u64, Duration)>>,
    stop: Arc<AtomicBool>,
    started: Instant,
) {
    for n in 0..EVENTS {
        let (key, seq) = (format!("k{}", n % KEYS), n / KEYS);
        let event = event(&key, seq);
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let attempt = Instant::now();
            let outcome =
                tokio::time::timeout(ATTEMPT_MAX, publisher.publish(&topic, event.clone())).await;
            let acknowledged = matches!(outcome, Ok(Ok(_)));
            {
                let mut attempts = attempts.lock().unwrap();
                attempts.1 = attempts.1.max(attempt.elapsed());
                attempts.0 += u64::from(!acknowledged);
            }
            if acknowledged {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        acked.lock().unwrap().push((key, seq, started.elapsed()));
        tokio::time::sleep(PUBLISH_PAUSE).await;
    }
}

/// One applied effect.
struct Effect {
    event_id: String,
    key: String,
    seq: u32,
    at_ms: i64,
}

/// The effects applied so far, in the order they were applied.
fn effects(db: &Path) -> Vec<Effect> {
    let connection = rusqlite::Connection::open(db).expect("open the inbox's database");
    connection
        .busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let mut select = connection
        .prepare("SELECT event_id, key, seq, at_ms FROM effects ORDER BY n")
        .expect("select effects");
    select
        .query_map([], |row| {
            Ok(Effect {
                event_id: row.get(0)?,
                key: row.get(1)?,
                seq: row.get(2)?,
                at_ms: row.get(3)?,
            })
        })
        .expect("query effects")
        .map(|row| row.expect("an effect"))
        .collect()
}

/// Waits until `done` holds, failing after `max` with `what`.
async fn wait(max: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + max;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
