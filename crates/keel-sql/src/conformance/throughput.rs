//! The SQLite-inbox half of the engine benchmarks (issue 15: "no-op handler, then the SQLite
//! inbox"): the events `keel_runtime::throughput::publish` stored, handled by a router whose
//! handler runs in keel-sql's SQLite inbox — dedupe by event id and one effect row per event,
//! committed in the inbox's batches (one fsync each), in a database in a temporary
//! directory — timed from the router's start until every event was handled. Here rather
//! than in keel-runtime, which does not depend on keel-sql; each engine's
//! `examples/<engine>_throughput.rs` prints it as its second line.
//!
//! Not a check: it only asserts that the run applied one effect per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::GroupPolicy;
use keel_runtime::throughput::timed_router;
use keel_runtime::{HandlerError, Route, Transport};

use crate::SqliteInbox;

/// A router with one route on `topic` (group `group`) whose handler inserts one effect row
/// per event through a [`SqliteInbox`] in a fresh temporary file, timed from its start until
/// `events` were handled. Panics unless the effects table then holds exactly `events` rows.
pub async fn router_inbox(
    transport: Transport,
    topic: &str,
    group: &str,
    policy: GroupPolicy,
    events: u64,
) -> Duration {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("inbox.db");
    let inbox = SqliteInbox::open(&db).expect("open the inbox");
    let effects = rusqlite::Connection::open(&db).expect("open the inbox's database");
    effects
        .execute_batch("CREATE TABLE effects (event_id TEXT PRIMARY KEY, key TEXT NOT NULL)")
        .expect("effects table");
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let apply = inbox.handler_raw("apply", move |tx, event| {
        tx.execute(
            "INSERT INTO effects (event_id, key) VALUES (?1, ?2)",
            rusqlite::params![event.id, event.partitionkey],
        )
        .map_err(|e| HandlerError::transient(e.to_string()))?;
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let route = Route::new(topic, group, apply).with_group_policy(policy);
    let elapsed = timed_router(transport, route, &handled, events).await;
    let applied: i64 = effects
        .query_row("SELECT count(*) FROM effects", [], |row| row.get(0))
        .expect("count effects");
    assert_eq!(applied as u64, events, "one effect per event");
    elapsed
}
