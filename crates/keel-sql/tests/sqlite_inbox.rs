//! End-to-end tests of the SQLite inbox on real database files in temporary directories,
//! driven through keel-runtime's router on an embedded log: the duplicate storm, rollback of
//! a failing handler, busy databases, migrations (including an old-version fixture), open
//! errors, the non-transactional `Inbox` port and retention.
//!
//! The router tests run on paused tokio time; the inbox works on tokio blocking threads,
//! which hold the clock still while they run, so no timeout fires because SQL was slow.
//! Not here: the query-plan check of the retention delete (a unit test in `schema.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use keel_core::{Event, EventType};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_runtime::{Handler, HandlerError, Inbox, RetryPolicy, Route, Router, RouterHandle};
use keel_sql::{OpenError, SqliteInbox, SqliteInboxOptions};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposit {
    account: String,
    amount: i64,
    /// The handler writes, then fails its first attempt (transiently) for these.
    flaky: bool,
}

impl EventType for Deposit {
    const TYPE: &'static str = "test.deposit";
    const VERSION: u32 = 1;
}

const TOPIC: &str = "deposits";
const GROUP: &str = "ledger";

fn open_log(dir: &Path) -> Arc<Log> {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    Arc::new(Log::open_with(dir.join("log"), options).expect("open log"))
}

fn create_topic(log: &Log, partitions: u32) {
    let config = TopicConfig::new(partitions).with_fsync(FsyncPolicy::Never);
    log.create_topic(TOPIC, config).expect("create topic");
}

fn deposit(account: &str, amount: i64, flaky: bool) -> Event {
    let deposit = Deposit {
        account: account.to_string(),
        amount,
        flaky,
    };
    Event::from_typed("/test", &deposit)
        .expect("typed event")
        .with_partition_key(account)
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 10,
        delay_min: Duration::from_millis(10),
        delay_max: Duration::from_millis(200),
        multiplier: 2,
        jitter_seed: Some(7),
    }
}

/// Waits (in paused time) until `done` holds, failing after ten virtual minutes.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the group committed every partition up to its high watermark.
fn all_committed(log: &Log) -> bool {
    let topic = log.topic(TOPIC).expect("topic");
    (0..topic.config().partitions).all(|p| {
        let hw = topic.partition(p).expect("partition").high_watermark();
        let committed = log
            .group_offsets()
            .fetch(GROUP, TOPIC, p)
            .map_or(0, |c| c.offset);
        committed == hw
    })
}

async fn create_accounts(inbox: &SqliteInbox, accounts: &[String]) {
    let accounts = accounts.to_vec();
    inbox
        .with_connection(move |c| {
            c.execute_batch(
                "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)",
            )?;
            for account in &accounts {
                c.execute("INSERT INTO accounts VALUES (?1, 0)", [account])?;
            }
            Ok::<_, rusqlite::Error>(())
        })
        .await
        .unwrap()
        .unwrap();
}

async fn balances(inbox: &SqliteInbox) -> BTreeMap<String, i64> {
    inbox
        .with_connection(|c| {
            let mut statement = c.prepare("SELECT id, balance FROM accounts").unwrap();
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap();
            rows.collect::<Result<BTreeMap<String, i64>, _>>().unwrap()
        })
        .await
        .unwrap()
}

/// The business handler: add the deposit to its account, and count every call of the body
/// (committed or not).
fn apply(inbox: &SqliteInbox, calls: Arc<AtomicUsize>) -> Handler {
    inbox.handler("apply", move |tx, deposit: Deposit| {
        calls.fetch_add(1, Ordering::SeqCst);
        let changed = tx.execute(
            "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
            (deposit.amount, &deposit.account),
        )?;
        assert_eq!(changed, 1, "account {} exists", deposit.account);
        if deposit.flaky && tx.context().attempt() == 1 {
            return Err(HandlerError::transient("flaky first attempt"));
        }
        Ok(())
    })
}

fn start(bus: &EmbeddedBus, handler: Handler) -> RouterHandle {
    Router::new(bus)
        .route(Route::new(TOPIC, GROUP, handler).with_retry(quick_retry()))
        .start()
        .expect("router starts")
}

/// A small deterministic generator (xorshift64*), so a failing storm replays exactly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[tokio::test(start_paused = true)]
async fn duplicate_storm_applies_each_effect_exactly_once() {
    const EVENTS: usize = 300;
    const ACCOUNTS: usize = 12;
    const RESTARTS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, 4);
    let inbox = SqliteInbox::open(dir.path().join("app.db")).unwrap();
    let accounts: Vec<String> = (0..ACCOUNTS).map(|a| format!("acct-{a}")).collect();
    create_accounts(&inbox, &accounts).await;

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut expected: BTreeMap<String, i64> = accounts.iter().map(|a| (a.clone(), 0)).collect();
    let mut originals = Vec::new();
    let mut copies = Vec::new();
    for index in 0..EVENTS {
        let account = &accounts[rng.below(ACCOUNTS as u64) as usize];
        let amount = index as i64 + 1;
        let event = deposit(account, amount, rng.below(10) == 0);
        *expected.get_mut(account).unwrap() += amount;
        // Every event is delivered 2-3 times: one or two copies with the same id.
        for _ in 0..1 + rng.below(2) {
            copies.push(event.clone());
        }
        originals.push(event);
    }
    for index in (1..copies.len()).rev() {
        copies.swap(index, rng.below(index as u64 + 1) as usize);
    }
    let publisher = EmbeddedBus::new(log.clone()).publisher();
    for event in &originals {
        publisher.publish(TOPIC, event.clone()).await.unwrap();
    }
    let mut copies = copies.into_iter();
    let per_round = copies.len() / (RESTARTS + 1) + 1;
    let records = EVENTS + copies.len();

    // Each round is a process: a new bus (new group coordinator) over the same log and
    // database, killed after a random amount of work without a graceful shutdown, so its
    // uncommitted events — handled or not — are delivered again. Its blocking inbox work
    // still finishing after the kill plays a zombie process racing the next one.
    let calls = Arc::new(AtomicUsize::new(0));
    for _round in 0..RESTARTS {
        let bus = EmbeddedBus::new(log.clone());
        for event in copies.by_ref().take(per_round) {
            bus.publisher().publish(TOPIC, event).await.unwrap();
        }
        let router = start(&bus, apply(&inbox, calls.clone()));
        let seen = |inbox: &SqliteInbox| {
            let stats = inbox.stats();
            stats.handled + stats.duplicates + stats.failed
        };
        let target = seen(&inbox) + 1 + rng.below(records as u64 / 3);
        until("some progress", || {
            seen(&inbox) >= target || all_committed(&log)
        })
        .await;
        drop(router);
    }
    let bus = EmbeddedBus::new(log.clone());
    for event in copies {
        bus.publisher().publish(TOPIC, event).await.unwrap();
    }
    let router = start(&bus, apply(&inbox, calls.clone()));
    until("every delivery committed", || all_committed(&log)).await;
    router.shutdown().await;

    assert_eq!(
        balances(&inbox).await,
        expected,
        "each deposit applied once"
    );
    assert_eq!(inbox.processed_count().await.unwrap(), EVENTS as u64);
    let stats = inbox.stats();
    assert_eq!(stats.handled, EVENTS as u64, "{stats:?}");
    assert!(
        stats.duplicates > (records - EVENTS) as u64,
        "every copy was dropped, and so were redeliveries after the kills: {stats:?}"
    );
    assert!(stats.failed > 0, "flaky attempts rolled back: {stats:?}");
    assert!(
        calls.load(Ordering::SeqCst) as u64 >= EVENTS as u64 + stats.failed,
        "every failed attempt ran the body"
    );
    assert!(
        log.topic("deposits.dlq").is_none(),
        "nothing was dead-lettered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_rolls_back_its_writes_and_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, 1);
    let inbox = SqliteInbox::open(dir.path().join("app.db")).unwrap();
    let accounts = ["flaky", "panics", "poison", "fine"].map(String::from);
    create_accounts(&inbox, &accounts).await;
    let bus = EmbeddedBus::new(log.clone());
    let mut ids = BTreeMap::new();
    for account in &accounts {
        let event = deposit(account, 10, false);
        ids.insert(account.clone(), event.id.clone());
        bus.publisher().publish(TOPIC, event).await.unwrap();
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        inbox.handler("apply", move |tx, deposit: Deposit| {
            calls.fetch_add(1, Ordering::SeqCst);
            tx.execute(
                "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                (deposit.amount, &deposit.account),
            )?;
            match (deposit.account.as_str(), tx.context().attempt()) {
                ("flaky", 1) => Err(HandlerError::transient("first attempt fails")),
                ("panics", 1) => panic!("first attempt panics"),
                ("poison", _) => Err(HandlerError::permanent("never valid")),
                _ => Ok(()),
            }
        })
    };
    let router = start(&bus, handler);
    until("all finished", || all_committed(&log)).await;
    router.shutdown().await;

    let balances = balances(&inbox).await;
    for (account, balance, marked) in [
        ("flaky", 10, true),
        ("panics", 10, true),
        ("poison", 0, false),
        ("fine", 10, true),
    ] {
        assert_eq!(balances[account], balance, "{account}: balance");
        let processed = inbox.is_processed("ledger/apply", &ids[account]).await;
        assert_eq!(processed, Ok(marked), "{account}: mark");
    }
    assert_eq!(
        inbox.processed_count().await.unwrap(),
        3,
        "poison is not marked"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        6,
        "flaky and panics ran twice"
    );
    let stats = inbox.stats();
    assert_eq!((stats.handled, stats.failed), (3, 3), "{stats:?}");
    let dlq = log.topic("deposits.dlq").expect("poison was dead-lettered");
    assert_eq!(dlq.partition(0).unwrap().high_watermark(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_busy_database_is_a_transient_error_and_the_retry_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, 1);
    let options = SqliteInboxOptions {
        busy_timeout: Duration::from_millis(20),
        ..SqliteInboxOptions::default()
    };
    let inbox = SqliteInbox::open_with(dir.path().join("app.db"), options).unwrap();
    create_accounts(&inbox, &["a".to_string()]).await;
    // Another process holds the write lock.
    let other = Connection::open(inbox.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let bus = EmbeddedBus::new(log.clone());
    bus.publisher()
        .publish(TOPIC, deposit("a", 5, false))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = start(&bus, apply(&inbox, calls.clone()));
    until("a busy failure", || inbox.stats().commit_failures >= 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
    other.execute_batch("COMMIT").unwrap();
    until("handled", || all_committed(&log)).await;
    router.shutdown().await;
    assert_eq!(balances(&inbox).await["a"], 5);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(log.topic("deposits.dlq").is_none(), "busy is transient");
}

fn schema_versions(path: &Path) -> Vec<u32> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT version FROM keel_schema_migrations ORDER BY version")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let first = SqliteInbox::open(&path).unwrap();
    first.mark_processed("g/h", "e1").await.unwrap();
    let second = SqliteInbox::open(&path).unwrap();
    drop(first);
    let third = SqliteInbox::open(&path).unwrap();
    assert_eq!(third.schema_version(), 2);
    assert_eq!(schema_versions(&path), [1, 2], "each step recorded once");
    assert_eq!(second.is_processed("g/h", "e1").await, Ok(true));
    assert_eq!(third.processed_count().await.unwrap(), 1);
}

/// The schema exactly as version 1 wrote it, kept as a fixture.
const SCHEMA_V1: &str = "
CREATE TABLE keel_schema_migrations (
    version       INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    applied_at_ms INTEGER NOT NULL
);
CREATE TABLE keel_inbox (
    consumer      TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    handled_at_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
INSERT INTO keel_schema_migrations VALUES (1, 'inbox table', 1700000000000);
INSERT INTO keel_inbox VALUES ('g/h', 'old-event', 1700000000000);
";

#[tokio::test]
async fn an_older_database_is_migrated_and_keeps_its_marks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA_V1)
        .unwrap();
    let inbox = SqliteInbox::open(&path).unwrap();
    assert_eq!(schema_versions(&path), [1, 2]);
    assert_eq!(inbox.is_processed("g/h", "old-event").await, Ok(true));
    let index: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'keel_inbox_handled_at'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(index, 1, "the retention index was added");
}

#[test]
fn a_database_newer_than_the_code_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(SqliteInbox::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO keel_schema_migrations VALUES (99, 'future', 0)",
            [],
        )
        .unwrap();
    let error = SqliteInbox::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::NewerSchema {
                found: 99,
                known: 2,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(schema_versions(&path), [1, 2, 99]);
}

#[test]
fn unopenable_databases_give_one_line_errors_naming_the_file_and_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    let check = |path: &Path, step: &str| {
        let error = SqliteInbox::open(path).expect_err("must not open");
        let message = error.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(
            message.contains(&path.display().to_string()),
            "names the file: {message}"
        );
        assert!(message.contains(step), "names '{step}': {message}");
    };
    check(&dir.path().join("missing/dir/app.db"), "cannot open");
    check(dir.path(), "cannot");
    check(&garbage, "journal_mode = WAL");
    let options = SqliteInboxOptions {
        batch_events_max: 0,
        ..SqliteInboxOptions::default()
    };
    let error = SqliteInbox::open_with(dir.path().join("ok.db"), options).unwrap_err();
    assert!(error.to_string().contains("batch_events_max"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn as_the_runtime_inbox_port_it_drops_republished_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, 2);
    let inbox = SqliteInbox::open(dir.path().join("app.db")).unwrap();
    let bus = EmbeddedBus::new(log.clone());
    let events: Vec<Event> = (0..20)
        .map(|i| deposit(&format!("k{i}"), i, false))
        .collect();
    for event in events.iter().chain(&events[..5]) {
        bus.publisher().publish(TOPIC, event.clone()).await.unwrap();
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        Handler::typed("count", move |_: Deposit, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
    };
    let router = Router::new(&bus)
        .route(Route::new(TOPIC, GROUP, handler).with_inbox(Arc::new(inbox.clone())))
        .start()
        .unwrap();
    until("all committed", || all_committed(&log)).await;
    router.shutdown().await;
    assert_eq!(calls.load(Ordering::SeqCst), 20);
    assert_eq!(inbox.processed_count().await.unwrap(), 20);
    assert_eq!(
        inbox.is_processed("ledger/count", &events[3].id).await,
        Ok(true)
    );
    assert_eq!(
        inbox.is_processed("other/count", &events[3].id).await,
        Ok(false)
    );
}

#[tokio::test]
async fn retention_deletes_old_marks_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(dir.path().join("app.db")).unwrap();
    for i in 0..30 {
        inbox.mark_processed("g/h", &format!("e{i}")).await.unwrap();
    }
    let past = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(inbox.delete_processed_before(past).await.unwrap(), 0);
    assert_eq!(inbox.processed_count().await.unwrap(), 30);
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(inbox.delete_processed_before(future).await.unwrap(), 30);
    assert_eq!(inbox.processed_count().await.unwrap(), 0);
    assert_eq!(inbox.is_processed("g/h", "e1").await, Ok(false));
}

#[tokio::test(start_paused = true)]
async fn follow_ups_are_published_only_after_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, 1);
    log.create_topic(
        "notices",
        TopicConfig::new(1).with_fsync(FsyncPolicy::Never),
    )
    .unwrap();
    let inbox = SqliteInbox::open(dir.path().join("app.db")).unwrap();
    create_accounts(&inbox, &["a".to_string()]).await;
    let bus = EmbeddedBus::new(log.clone());
    let cause = deposit("a", 3, true);
    bus.publisher().publish(TOPIC, cause.clone()).await.unwrap();
    bus.publisher().publish(TOPIC, cause.clone()).await.unwrap();
    let handler = inbox.handler("apply", |tx, deposit: Deposit| {
        tx.execute(
            "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
            (deposit.amount, &deposit.account),
        )?;
        tx.publish_after_commit("notices", Event::new("/test", "test.notice"))?;
        if deposit.flaky && tx.context().attempt() == 1 {
            return Err(HandlerError::transient(
                "rolled back, and so is the follow-up",
            ));
        }
        Ok(())
    });
    let router = start(&bus, handler);
    until("handled", || all_committed(&log)).await;
    router.shutdown().await;
    let notices = log.topic("notices").unwrap();
    let partition = notices.partition(0).unwrap();
    assert_eq!(partition.high_watermark(), 1, "one follow-up: one commit");
    let record = &partition.read_records(0, 1 << 20).unwrap()[0];
    let headers = record
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_deref()));
    let notice =
        Event::from_record(record.key.as_deref(), headers, record.value.as_deref()).unwrap();
    assert_eq!(notice.causationid.as_deref(), Some(cause.id.as_str()));
    assert_eq!(balances(&inbox).await["a"], 3);
}

#[tokio::test]
async fn with_connection_refuses_to_leave_a_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(dir.path().join("app.db")).unwrap();
    let error = inbox
        .with_connection(|c| c.execute_batch("BEGIN; CREATE TABLE t (x)"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("left a transaction open"),
        "{error}"
    );
    let tables: i64 = inbox
        .with_connection(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 't'",
                [],
                |row| row.get(0),
            )
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tables, 0, "rolled back");
    inbox.mark_processed("g/h", "e").await.unwrap();
    assert_eq!(inbox.processed_count().await.unwrap(), 1, "still usable");
}

/// The process-level duplicate storm's child: set by the parent to the data directory.
const STORM_CHILD_DIR_VAR: &str = "KEEL_STORM_CHILD_DIR";
/// Name of the child's test function, which the parent runs in a re-executed test binary.
const STORM_CHILD_TEST: &str = "storm_child_consumes_until_killed";
/// How long a child may run before the parent gives up on it.
const STORM_CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// The child of `a_consumer_killed_with_sigkill_applies_each_effect_exactly_once`: consumes
/// the storm's deliveries with the SQLite inbox until every one is committed (or until the
/// parent kills it). Returns at once in a normal test run.
#[test]
fn storm_child_consumes_until_killed() {
    let Some(dir) = std::env::var_os(STORM_CHILD_DIR_VAR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let log = open_log(&dir);
        let inbox = SqliteInbox::open(dir.join("app.db")).expect("child opens the inbox");
        let bus = EmbeddedBus::new(log.clone());
        let router = start(&bus, apply(&inbox, Arc::new(AtomicUsize::new(0))));
        let deadline = std::time::Instant::now() + STORM_CHILD_LIFETIME;
        while !all_committed(&log) {
            assert!(
                std::time::Instant::now() < deadline,
                "child never caught up"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        router.shutdown().await;
    });
}

/// Rows in the inbox's processed-events table, read by the parent while a child writes.
fn processed_rows(db: &Path) -> u64 {
    let connection = Connection::open(db).expect("open the app database read-side");
    connection
        .busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let count = connection.query_row("SELECT COUNT(*) FROM keel_inbox", [], |row| {
        row.get::<_, i64>(0)
    });
    count.map_or(0, |n| n as u64)
}

/// The duplicate storm with real processes: every event is stored two or three times, and a
/// consumer process is killed with SIGKILL at random points (handlers and inbox commits in
/// flight, offsets uncommitted) up to five times before one runs to the end. The business
/// table must hold each deposit exactly once.
#[test]
fn a_consumer_killed_with_sigkill_applies_each_effect_exactly_once() {
    const EVENTS: usize = 400;
    const ACCOUNTS: usize = 10;
    const KILLS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let mut rng = Rng(0x5eed_4b11_0000_0003);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let expected = runtime.block_on(async {
        let log = open_log(dir.path());
        create_topic(&log, 4);
        let inbox = SqliteInbox::open(&db).unwrap();
        let accounts: Vec<String> = (0..ACCOUNTS).map(|a| format!("acct-{a}")).collect();
        create_accounts(&inbox, &accounts).await;
        let mut expected: BTreeMap<String, i64> = accounts.iter().map(|a| (a.clone(), 0)).collect();
        let publisher = EmbeddedBus::new(log.clone()).publisher();
        for index in 0..EVENTS {
            let account = &accounts[rng.below(ACCOUNTS as u64) as usize];
            let amount = index as i64 + 1;
            *expected.get_mut(account).unwrap() += amount;
            let event = deposit(account, amount, rng.below(10) == 0);
            for _ in 0..2 + rng.below(2) {
                publisher.publish(TOPIC, event.clone()).await.unwrap();
            }
        }
        expected
    });

    let spawn = || {
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                STORM_CHILD_TEST,
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(STORM_CHILD_DIR_VAR, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn the consumer process")
    };
    let mut kills = 0;
    while kills < KILLS {
        let target = processed_rows(&db) + 1 + rng.below(EVENTS as u64 / 8);
        let mut child = spawn();
        let deadline = std::time::Instant::now() + STORM_CHILD_LIFETIME;
        let caught_up = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the consumer process failed: {status}");
                break true;
            }
            if processed_rows(&db) >= target {
                break false;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no progress in a child"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        if caught_up {
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    assert!(
        kills >= 2,
        "only {kills} kills landed before the consumers caught up"
    );
    let status = spawn().wait().unwrap();
    assert!(
        status.success(),
        "the last consumer process failed: {status}"
    );

    runtime.block_on(async {
        let log = open_log(dir.path());
        assert!(all_committed(&log), "every delivery committed");
        let inbox = SqliteInbox::open(&db).unwrap();
        assert_eq!(
            balances(&inbox).await,
            expected,
            "each deposit applied once"
        );
        assert_eq!(inbox.processed_count().await.unwrap(), EVENTS as u64);
    });
}
