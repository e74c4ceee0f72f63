//! Throughput of the SQLite inbox, end to end: events already in an embedded log are consumed
//! by keel-runtime's router and each is applied (`UPDATE accounts ...`) and marked in the
//! inbox, durably (`synchronous = FULL`, one fsync per committed batch). Prints events/s and
//! the mean batch size, with group commit and, on fewer events, without it (one fsync per
//! event) for comparison.
//!
//! Run in release mode: `cargo run --release -p keel-sql --example inbox_throughput [events]`;
//! the runtime alone is measured by `keel-runtime`'s `overhead` example.
//! Not a test: it asserts only that every event was applied once, and measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::{Event, EventType};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_runtime::{ConsumerPolicy, Route, Router};
use keel_sql::{SqliteInbox, SqliteInboxOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposit {
    account: u32,
    amount: i64,
}

impl EventType for Deposit {
    const TYPE: &'static str = "bench.deposit";
    const VERSION: u32 = 1;
}

const ACCOUNTS: u32 = 10_000;
const PARTITIONS: u32 = 8;
/// A window that holds a whole partition: keel-runtime reads `fetch_bytes_max` whenever it
/// has room for one more event and keeps only what fits, so once the window is full each
/// event costs a 1 MiB read (the runtime, not the inbox, then caps throughput: about 150
/// events/s with the defaults here).
const IN_FLIGHT: usize = 200_000;

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |arg| arg.parse().expect("events: a number"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let with = run(events, SqliteInboxOptions::default()).await;
        println!("group commit (batch <= 512): {with}");
        let without = SqliteInboxOptions {
            batch_events_max: 1,
            ..SqliteInboxOptions::default()
        };
        let without = run((events / 20).max(100), without).await;
        println!("no group commit (batch = 1):  {without}");
    });
}

async fn run(events: usize, options: SqliteInboxOptions) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(
        Log::open_with(
            dir.path().join("log"),
            LogOptions {
                background: false,
                ..LogOptions::default()
            },
        )
        .expect("open log"),
    );
    log.create_topic(
        "deposits",
        TopicConfig::new(PARTITIONS).with_fsync(FsyncPolicy::Never),
    )
    .expect("topic");
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    let publishing = Instant::now();
    for index in 0..events {
        let deposit = Deposit {
            account: index as u32 % ACCOUNTS,
            amount: 1,
        };
        let event = Event::from_typed("/bench", &deposit)
            .expect("event")
            .with_partition_key(deposit.account.to_string());
        publisher.publish("deposits", event).await.expect("publish");
    }

    eprintln!(
        "published {events} events in {:.2} s",
        publishing.elapsed().as_secs_f64()
    );
    let inbox = SqliteInbox::open_with(dir.path().join("app.db"), options).expect("open inbox");
    inbox
        .with_connection(|c| {
            c.execute_batch(
                "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
            )?;
            let tx = c.transaction()?;
            for id in 0..ACCOUNTS {
                tx.execute("INSERT INTO accounts VALUES (?1, 0)", [id])?;
            }
            tx.commit()
        })
        .await
        .expect("inbox task")
        .expect("accounts");
    let handler = inbox.handler("apply", |tx, deposit: Deposit| {
        tx.prepare_cached("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2")?
            .execute((deposit.amount, deposit.account))?;
        Ok(())
    });
    let consumer = ConsumerPolicy {
        concurrency: 128,
        in_flight_max: IN_FLIGHT,
        ..ConsumerPolicy::default()
    };
    let started = Instant::now();
    let router = Router::new(&bus)
        .route(Route::new("deposits", "ledger", handler).with_consumer(consumer))
        .start()
        .expect("router");
    let mut report = Instant::now();
    while inbox.stats().handled < events as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if report.elapsed() >= Duration::from_secs(1) {
            report = Instant::now();
            eprintln!("progress: {:?}", inbox.stats());
        }
    }
    let elapsed = started.elapsed();
    router.shutdown().await;

    let total: i64 = inbox
        .with_connection(|c| c.query_row("SELECT SUM(balance) FROM accounts", [], |r| r.get(0)))
        .await
        .expect("inbox task")
        .expect("sum");
    assert_eq!(total, events as i64, "every deposit applied once");
    let stats = inbox.stats();
    format!(
        "{events} events in {:.2} s = {:.0} events/s, {} commits, {:.1} events/commit",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        stats.commits,
        stats.handled as f64 / stats.commits.max(1) as f64,
    )
}
