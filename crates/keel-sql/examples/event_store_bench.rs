//! Event store, aggregate and projection throughput on this machine, for `BENCHMARKS.md`:
//! appends with an expected version per second by 1, 8 and 16 writers (embedded store over
//! keel-log with `fsync = always`, and SQLite with `synchronous = FULL`), reading all events
//! back, loading an aggregate of 10,000 events with and without a snapshot, and rebuilding a
//! SQLite projection from the store. On PostgreSQL the floor is measured in the same run:
//! the server's own one-row commits (`INSERT` of one row, autocommit) by 1, 8 and 16
//! clients, each on its own connection.
//!
//! `cargo run --release -p keel-sql --features postgres --example event_store_bench [events]`
//! (PostgreSQL is measured when `KEEL_BENCH_POSTGRES_URL` names a server; a fresh schema
//! `keel_bench_<pid>` is created in it and dropped at the end). With `KEEL_BENCH_JSON=FILE`
//! each number is also appended to FILE as a JSON line (what `scripts/bench-store` keeps in
//! the history).

#[path = "support/bench_json.rs"]
mod bench_json;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::Event;
use keel_log::Log;
use keel_projection::Projector;
use keel_sql::{SqliteEventStore, SqliteProjection};
use keel_store::{
    Aggregate, AllFilter, EmbeddedStore, EventStore, ExpectedVersion, Repository, Snapshot,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counter {
    total: i64,
    events: u64,
}

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Aggregate for Counter {
    type Event = i64;
    type Command = i64;
    type Error = Never;
    const CATEGORY: &'static str = "counter";

    fn event_type(_: &i64) -> &'static str {
        "counter.added"
    }
    fn apply(&mut self, event: &i64) {
        self.total += event;
        self.events += 1;
    }
    fn handle(&self, command: &i64) -> Result<Vec<i64>, Never> {
        Ok(vec![*command])
    }
}

fn event(n: u64) -> Event {
    Event::new("/bench", "counter.added")
        .with_data("application/json", (n % 100).to_string().into_bytes())
}

fn rate(count: u64, elapsed: Duration) -> String {
    format!("{:>9.0}/s", count as f64 / elapsed.as_secs_f64())
}

/// Appends `total` single-event appends with an exact expected version, spread over
/// `writers` concurrent writers each on its own stream.
async fn appends<S: EventStore + Clone>(store: &S, writers: u64, total: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("bench{writers}-{w}");
                for version in 0..total / writers {
                    store
                        .append(
                            &stream,
                            ExpectedVersion::Exact(version),
                            vec![event(version)],
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

async fn read_all<S: EventStore>(store: &S) -> (u64, Duration) {
    let started = Instant::now();
    let (mut from, mut count) = (0, 0u64);
    loop {
        let page = store.read_all(from, 1000, &AllFilter::All).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        count += page.len() as u64;
    }
    (count, started.elapsed())
}

/// Mean time to load a 10,000-event aggregate by full replay, then from a snapshot at its
/// last version (saved in the format the repository writes).
async fn aggregate_loads<S: EventStore + Clone>(store: &S) -> (Duration, Duration) {
    for batch in 0..100u64 {
        let events = (0..100).map(|n| event(batch * 100 + n)).collect();
        store
            .append("counter-big", ExpectedVersion::Exact(batch * 100), events)
            .await
            .unwrap();
    }
    let repository = Repository::<Counter, _>::new(store.clone());
    let time = |expect_snapshot: bool| {
        let repository = repository.clone();
        async move {
            let started = Instant::now();
            for _ in 0..20 {
                let loaded = repository.load("big").await.unwrap();
                assert_eq!(loaded.state.events, 10_000);
                assert_eq!(loaded.snapshot_version.is_some(), expect_snapshot);
            }
            started.elapsed() / 20
        }
    };
    let replay = time(false).await;
    let state = repository.load("big").await.unwrap().state;
    store
        .save_snapshot(Snapshot {
            stream: "counter-big".into(),
            version: 10_000,
            state_version: Counter::STATE_VERSION,
            state: serde_json::to_vec(&state).unwrap(),
        })
        .await
        .unwrap();
    (replay, time(true).await)
}

async fn rebuild<S: EventStore + Clone>(store: &S, dir: &std::path::Path) -> (u64, Duration) {
    let model = SqliteProjection::open(
        dir.join("model.db"),
        "per-stream",
        |c| c.execute_batch("CREATE TABLE IF NOT EXISTS per_stream (stream TEXT PRIMARY KEY, n INTEGER NOT NULL)"),
        |tx, e| {
            tx.prepare_cached("INSERT INTO per_stream VALUES (?1, 1) ON CONFLICT (stream) DO UPDATE SET n = n + 1")?
                .execute([&e.stream])?;
            Ok(())
        },
        |tx| {
            tx.execute("DELETE FROM per_stream", [])?;
            Ok(())
        },
    )
    .unwrap();
    let projector = Projector::new(store.clone(), model, AllFilter::All)
        .await
        .unwrap();
    let started = Instant::now();
    let applied = projector.rebuild(|_| {}).await.unwrap();
    (applied, started.elapsed())
}

/// One event-store result for `KEEL_BENCH_JSON`.
fn record(backend: &str, label: &str, fields: serde_json::Value) {
    bench_json::record("event store", backend, label, fields);
}

fn per_s(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Concurrent writers the append rows are measured with.
const WRITERS: [u64; 3] = [1, 8, 16];

async fn bench<S: EventStore + Clone>(name: &str, store: S, dir: &std::path::Path, events: u64) {
    let mut append_times = Vec::new();
    for writers in WRITERS {
        append_times.push((writers, appends(&store, writers, events).await));
    }
    let (read, read_time) = read_all(&store).await;
    let (plain, snapshot) = aggregate_loads(&store).await;
    let (applied, rebuild_time) = rebuild(&store, dir).await;
    println!("{name}");
    let backend = name.split(' ').next().unwrap_or(name);
    for &(writers, time) in &append_times {
        record(
            backend,
            "appends with an expected version",
            serde_json::json!({"writers": writers, "events": events, "appends_per_s": per_s(events, time)}),
        );
    }
    record(
        backend,
        "read all, pages of 1000",
        serde_json::json!({"events_per_s": per_s(read, read_time)}),
    );
    record(
        backend,
        "load a 10,000-event aggregate",
        serde_json::json!({
            "replay_ms": plain.as_secs_f64() * 1e3,
            "snapshot_ms": snapshot.as_secs_f64() * 1e3,
        }),
    );
    record(
        backend,
        "projection rebuild (SQLite model)",
        serde_json::json!({"events_per_s": per_s(applied, rebuild_time)}),
    );
    for (writers, time) in append_times {
        println!(
            "  appends, {writers:>2} writers, expected version {}  ({events} appends)",
            rate(events, time)
        );
    }
    println!(
        "  read all, pages of 1000               {}  ({read} events)",
        rate(read, read_time)
    );
    println!(
        "  load 10,000-event aggregate, replay   {:>9.2} ms",
        plain.as_secs_f64() * 1e3
    );
    println!(
        "  load 10,000-event aggregate, snapshot {:>9.2} ms",
        snapshot.as_secs_f64() * 1e3
    );
    println!(
        "  projection rebuild (SQLite model)     {}  ({applied} events)",
        rate(applied, rebuild_time)
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4_000);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("log")).unwrap());
    let embedded = EmbeddedStore::open(&log).unwrap();
    for backend in ["e", "s"] {
        std::fs::create_dir_all(dir.path().join(backend)).unwrap();
    }
    bench(
        "embedded (keel-log, fsync = always)",
        embedded,
        &dir.path().join("e"),
        events,
    )
    .await;
    let sqlite = SqliteEventStore::open(dir.path().join("s/events.db")).unwrap();
    bench(
        "sqlite (synchronous = FULL)",
        sqlite,
        &dir.path().join("s"),
        events,
    )
    .await;
    #[cfg(feature = "postgres")]
    if let Ok(base) = std::env::var("KEEL_BENCH_POSTGRES_URL") {
        std::fs::create_dir_all(dir.path().join("p")).unwrap();
        let (url, store) = postgres_store(&base).await;
        bench("postgresql", store, &dir.path().join("p"), events).await;
        println!("postgresql one-row commits (the floor)");
        for clients in WRITERS {
            let time = postgres_commits(&url, clients, events).await;
            record(
                "postgresql",
                "one-row commits (the floor)",
                serde_json::json!({"clients": clients, "events": events, "commits_per_s": per_s(events, time)}),
            );
            println!(
                "  one-row commits, {clients:>2} clients        {}  ({events} commits)",
                rate(events, time)
            );
        }
        drop_schema(&base).await;
    }
}

/// The schema this run measures PostgreSQL in.
#[cfg(feature = "postgres")]
fn bench_schema() -> String {
    format!("keel_bench_{}", std::process::id())
}

/// Drops the run's schema: its events and the floor's rows are not kept.
#[cfg(feature = "postgres")]
async fn drop_schema(base: &str) {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("KEEL_BENCH_POSTGRES_URL reachable");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", bench_schema()))
        .await
        .unwrap();
}

/// A `PgEventStore` in a fresh schema of the server at `base`, and the URL of that schema.
#[cfg(feature = "postgres")]
async fn postgres_store(base: &str) -> (String, keel_sql::PgEventStore) {
    let schema = bench_schema();
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("KEEL_BENCH_POSTGRES_URL reachable");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let db = keel_sql::PgDatabase::connect(&url).await.unwrap();
    let store = keel_sql::PgEventStore::open(&db).await.unwrap();
    (url, store)
}

/// The server's own commit rate: `total` one-row `INSERT`s in autocommit, spread over
/// `clients` connections, each waiting for its commit before the next.
#[cfg(feature = "postgres")]
async fn postgres_commits(url: &str, clients: u64, total: u64) -> Duration {
    let mut connections = Vec::new();
    for _ in 0..clients {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        connections.push(client);
    }
    connections[0]
        .batch_execute("CREATE TABLE IF NOT EXISTS commit_floor (n BIGINT NOT NULL)")
        .await
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                let insert = client
                    .prepare("INSERT INTO commit_floor VALUES ($1)")
                    .await
                    .unwrap();
                for n in 0..total / clients {
                    client.execute(&insert, &[&(n as i64)]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}
