//! Read models on SQLite and PostgreSQL, fed from an event store or a `keel-log` topic, by
//! shared test bodies: model and checkpoint commit together (a failing event leaves both at
//! the batch start), rebuild gives the identical model, a restarted projector resumes at its
//! checkpoints, `wait_for` gives read-your-writes, a second projector of one model is
//! refused, and a process killed in the middle of a batch leaves model and checkpoints
//! describing the same events (a child process, this binary re-run as `projection_child`,
//! is SIGKILLed while its batch is open).
//!
//! PostgreSQL runs with `KEEL_TEST_POSTGRES_URL` (a fresh schema per test; an unreachable
//! server fails the test).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_core::Event;
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_projection::{ProjectionError, ProjectionStore, Projector, TopicSource};
use keel_sql::{SqliteEventStore, SqliteProjection};
use keel_store::{AllFilter, EventStore, ExpectedVersion, RecordedEvent};

const WAIT: Duration = Duration::from_secs(20);
/// The model's rows, `(stream, total, events)` by stream.
type Rows = Vec<(String, i64, i64)>;

/// A read model of order totals: one row per stream (or topic key), the sum of the amounts
/// in its events and their number — a model where a lost or doubled event shows. Each
/// backend implements reading it back.
trait Totals: ProjectionStore + Clone {
    async fn dump(&self) -> Rows;
}

/// Events this process's models were handed (committed or not): the crash test's child
/// reports it, so the test knows its open batch had written rows when it was killed.
static HANDED: AtomicU64 = AtomicU64::new(0);

/// The amount an event carries, or the reason it refuses: the event at `fail_at`.
fn amount_of(event: &RecordedEvent, fail_at: &AtomicU64) -> Result<i64, keel_sql::ApplyError> {
    if event.position == fail_at.load(Ordering::SeqCst) {
        return Err(format!("refusing position {}", event.position).into());
    }
    HANDED.fetch_add(1, Ordering::SeqCst);
    Ok(serde_json::from_slice(
        event.event.data.as_deref().unwrap(),
    )?)
}

/// The crash test's child, at the event with a negative amount: says so (with the events
/// written before it, committed or not) in the marker file, which appears whole (renamed).
fn report_hang(marker: &str) -> std::io::Result<()> {
    let written = HANDED.load(Ordering::SeqCst) - 1;
    let partial = format!("{marker}.partial");
    std::fs::write(&partial, written.to_string())?;
    std::fs::rename(partial, marker)
}

fn sqlite_totals(path: &Path, fail_at: Arc<AtomicU64>) -> SqliteProjection {
    SqliteProjection::open(
        path,
        "order-totals",
        |connection| {
            connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS order_totals (
                    stream TEXT PRIMARY KEY, total INTEGER NOT NULL, events INTEGER NOT NULL)",
            )
        },
        move |tx, event| {
            let amount = amount_of(event, &fail_at)?;
            if let Some(marker) = hang_marker().filter(|_| amount < 0) {
                // The crash test's child: the batch is open; wait here for the kill.
                report_hang(&marker)?;
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            tx.execute(
                "INSERT INTO order_totals (stream, total, events) VALUES (?1, ?2, 1)
                 ON CONFLICT (stream) DO UPDATE SET total = total + ?2, events = events + 1",
                (&event.stream, amount),
            )?;
            Ok(())
        },
        |tx| {
            tx.execute("DELETE FROM order_totals", [])?;
            Ok(())
        },
    )
    .unwrap()
}

impl Totals for SqliteProjection {
    async fn dump(&self) -> Rows {
        self.query(|connection| {
            connection
                .prepare("SELECT stream, total, events FROM order_totals ORDER BY stream")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .await
        .unwrap()
    }
}

/// Where the crash test's child says its batch is open; `None` outside the child, where a
/// negative amount is an ordinary one.
fn hang_marker() -> Option<String> {
    std::env::var("KEEL_PROJECTION_HANG_MARKER").ok()
}

#[cfg(feature = "postgres")]
async fn pg_totals(db: &keel_sql::PgDatabase, fail_at: Arc<AtomicU64>) -> keel_sql::PgProjection {
    keel_sql::PgProjection::open(
        db,
        "order-totals",
        "CREATE TABLE IF NOT EXISTS order_totals (
            stream text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)",
        move |tx, event| {
            let amount = amount_of(event, &fail_at);
            Box::pin(async move {
                let amount = amount?;
                if let Some(marker) = hang_marker().filter(|_| amount < 0) {
                    report_hang(&marker)?;
                    std::future::pending::<()>().await;
                }
                tx.execute(
                    "INSERT INTO order_totals (stream, total, events) VALUES ($1, $2, 1)
                     ON CONFLICT (stream) DO UPDATE
                     SET total = order_totals.total + $2, events = order_totals.events + 1",
                    &[&event.stream, &amount],
                )
                .await?;
                Ok(())
            })
        },
        |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM order_totals", &[]).await?;
                Ok(())
            })
        },
    )
    .await
    .unwrap()
}

#[cfg(feature = "postgres")]
impl Totals for keel_sql::PgProjection {
    async fn dump(&self) -> Rows {
        let client = self.database().pool().get().await.unwrap();
        client
            .query(
                "SELECT stream, total, events FROM order_totals ORDER BY stream",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }
}

async fn applied_events(model: &impl Totals) -> i64 {
    model.dump().await.iter().map(|row| row.2).sum()
}

fn amount(n: i64) -> Event {
    Event::new("/orders", "order.amount").with_data("application/json", n.to_string().into_bytes())
}

/// Appends `events` events over 7 streams and waits until the last one is readable: on
/// PostgreSQL readers stop short of any transaction still in flight on the server, another
/// test's included.
async fn fill(store: &impl EventStore, events: u64) {
    let mut last = 0;
    for n in 0..events {
        let appended = store
            .append(
                &format!("order-{}", n % 7),
                ExpectedVersion::Any,
                vec![amount(n as i64)],
            )
            .await
            .unwrap();
        last = appended.last_position;
    }
    let head = store.wait_for(last, WAIT).await.unwrap();
    assert!(head > last, "appended events readable within {WAIT:?}");
}

/// Body: a failing event leaves model and checkpoint at its batch's start; a new projector
/// resumes there; a rebuild gives the identical model with growing progress.
async fn failing_event_then_resume_then_rebuild<S, M>(store: S, model: M, fail_at: Arc<AtomicU64>)
where
    S: EventStore + Clone,
    M: Totals,
{
    fill(&store, 300).await;
    fail_at.store(250, Ordering::SeqCst);
    let projector = Projector::new(store.clone(), model.clone(), AllFilter::All)
        .await
        .unwrap()
        .with_batch_events(100);

    let error = projector.catch_up(|_| {}).await.unwrap_err();
    assert!(
        matches!(&error, ProjectionError::Apply { position: 250, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("position 250"), "{error}");
    // Batches [0,100) and [100,200) committed; [200,300) failed at 250 and left nothing,
    // neither model rows nor checkpoint.
    assert_eq!(model.checkpoint().await.unwrap(), 200);
    assert_eq!(
        applied_events(&model).await,
        200,
        "model holds exactly the checkpointed events"
    );

    fail_at.store(u64::MAX, Ordering::SeqCst);
    // A new projector resumes from the checkpoint, as after a restart.
    let projector = Projector::new(store.clone(), model.clone(), AllFilter::All)
        .await
        .unwrap()
        .with_batch_events(100);
    assert_eq!(projector.position(), 200);
    assert_eq!(projector.catch_up(|_| {}).await.unwrap(), 100);
    let first = model.dump().await;
    assert_eq!(first.iter().map(|r| r.2).sum::<i64>(), 300);
    assert_eq!(
        first.iter().map(|r| r.1).sum::<i64>(),
        (0..300).sum::<i64>()
    );

    let mut reports = Vec::new();
    let applied = projector.rebuild(|p| reports.push(p)).await.unwrap();
    assert_eq!(applied, 300);
    assert_eq!(
        model.dump().await,
        first,
        "rebuild gives the identical model"
    );
    assert_eq!(reports.last().unwrap().position, 300);
    assert!(
        reports.windows(2).all(|w| w[0].applied < w[1].applied),
        "progress grows"
    );
}

/// Body: `wait_for` the position an append returned, then the model shows the append;
/// events the filter skips do not hold the projection back.
async fn wait_for_reads_your_own_write<S, M>(store: S, model: M)
where
    S: EventStore + Clone,
    M: Totals,
{
    let projector = Arc::new(
        Projector::new(
            store.clone(),
            model.clone(),
            AllFilter::Category("order".into()),
        )
        .await
        .unwrap(),
    );
    let running = tokio::spawn({
        let projector = projector.clone();
        async move { projector.run().await }
    });
    for n in 1..=20i64 {
        store
            .append("payment-1", ExpectedVersion::Any, vec![amount(1000)])
            .await
            .unwrap();
        let appended = store
            .append("order-1", ExpectedVersion::Any, vec![amount(n)])
            .await
            .unwrap();
        projector
            .wait_for(appended.last_position, WAIT)
            .await
            .unwrap();
        assert_eq!(
            model.dump().await,
            vec![("order-1".to_owned(), (1..=n).sum(), n)]
        );
    }
    let head = store.head().await.unwrap();
    let error = projector
        .wait_for(head + 5, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("order-totals"), "{error}");
    running.abort();
}

/// Body: a projector that fell behind another one of the same model (two processes
/// running one projection) is refused instead of applying a batch twice.
async fn a_second_projector_of_one_model_is_refused<S, M>(store: S, model: M)
where
    S: EventStore + Clone,
    M: Totals,
{
    fill(&store, 30).await;
    let stale = Projector::new(store.clone(), model.clone(), AllFilter::All)
        .await
        .unwrap();
    let ahead = Projector::new(store.clone(), model.clone(), AllFilter::All)
        .await
        .unwrap();
    assert_eq!(ahead.catch_up(|_| {}).await.unwrap(), 30);
    let error = stale.catch_up(|_| {}).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ProjectionError::Conflict {
                stored: 30,
                position: 0,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(applied_events(&model).await, 30, "nothing applied twice");
}

/// A topic of `partitions` partitions in `dir`, filled with `events` keyed `order-<n % 7>`
/// whose amount is `n` (`hang_at`: that event's amount is -1, the crash test's signal).
/// Returns the log; drop it before another process opens the directory.
async fn topic(dir: &Path, partitions: u32, events: i64, hang_at: Option<i64>) -> Arc<Log> {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    let log = Arc::new(Log::open_with(dir, options).unwrap());
    if log.topic("orders").is_none() {
        log.create_topic(
            "orders",
            TopicConfig::new(partitions).with_fsync(FsyncPolicy::Never),
        )
        .unwrap();
    }
    let publisher = EmbeddedBus::new(log.clone()).publisher();
    for n in 0..events {
        let value = if Some(n) == hang_at { -1 } else { n };
        publisher
            .publish(
                "orders",
                amount(value).with_partition_key(format!("order-{}", n % 7)),
            )
            .await
            .unwrap();
    }
    log.flush().unwrap();
    log
}

/// Body: a model fed from a topic's partitions, live while events are published: each
/// publish is read back with `wait_for_partition`; the checkpoints end at the high
/// watermarks; a rebuild equals the live model.
async fn topic_live_then_rebuild_equals_live<M: Totals>(dir: &Path, model: M) {
    let log = topic(dir, 3, 0, None).await;
    let source = TopicSource::new(&log, "orders").unwrap();
    let projector = Arc::new(
        Projector::new(source, model.clone(), ())
            .await
            .unwrap()
            .with_batch_events(16),
    );
    let running = tokio::spawn({
        let projector = projector.clone();
        async move { projector.run().await }
    });
    let publisher = EmbeddedBus::new(log.clone()).publisher();
    let mut expected = std::collections::BTreeMap::new();
    for n in 0..150i64 {
        let key = format!("order-{}", n % 7);
        let published = publisher
            .publish("orders", amount(n).with_partition_key(key.clone()))
            .await
            .unwrap();
        let row = expected.entry(key).or_insert((0, 0));
        *row = (row.0 + n, row.1 + 1);
        if n % 10 == 9 {
            projector
                .wait_for_partition(published.partition, published.offset, WAIT)
                .await
                .unwrap();
            let rows = model.dump().await;
            let own = rows.iter().find(|r| r.0 == published_key(n)).unwrap();
            assert_eq!(
                (own.1, own.2),
                expected[&published_key(n)],
                "read own write {n}"
            );
        }
    }
    let topic = log.topic("orders").unwrap();
    let watermarks: Vec<u64> = topic
        .partitions()
        .iter()
        .map(|p| p.high_watermark())
        .collect();
    for (partition, &watermark) in (0..).zip(&watermarks) {
        projector
            .wait_for_partition(partition, watermark - 1, WAIT)
            .await
            .unwrap();
    }
    running.abort();
    let _ = running.await;
    let live = model.dump().await;
    let wanted: Rows = expected
        .iter()
        .map(|(key, (total, events))| (key.clone(), *total, *events))
        .collect();
    assert_eq!(live, wanted, "every record applied once");
    assert_eq!(model.checkpoints().await.unwrap(), watermarks);
    assert!(
        watermarks.iter().filter(|&&w| w > 0).count() > 1,
        "the keys spread over partitions: {watermarks:?}"
    );

    let mut reports = Vec::new();
    assert_eq!(projector.rebuild(|p| reports.push(p)).await.unwrap(), 150);
    assert_eq!(model.dump().await, live, "rebuild equals live");
    assert_eq!(model.checkpoints().await.unwrap(), watermarks);
    let last = reports.last().unwrap();
    assert_eq!((last.position, last.head), (150, 150));
}

fn published_key(n: i64) -> String {
    format!("order-{}", n % 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failing_event_then_resume_then_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db")).unwrap();
    let fail_at = Arc::new(AtomicU64::new(u64::MAX));
    let model = sqlite_totals(&dir.path().join("model.db"), fail_at.clone());
    failing_event_then_resume_then_rebuild(store, model, fail_at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wait_for_reads_your_own_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db")).unwrap();
    // Model and events in one file: the projection shares it with the store.
    let model = sqlite_totals(
        &dir.path().join("events.db"),
        Arc::new(AtomicU64::new(u64::MAX)),
    );
    wait_for_reads_your_own_write(store, model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_second_projector_of_one_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db")).unwrap();
    let model = sqlite_totals(
        &dir.path().join("model.db"),
        Arc::new(AtomicU64::new(u64::MAX)),
    );
    a_second_projector_of_one_model_is_refused(store, model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_topic_live_then_rebuild_equals_live() {
    let dir = tempfile::tempdir().unwrap();
    let model = sqlite_totals(
        &dir.path().join("model.db"),
        Arc::new(AtomicU64::new(u64::MAX)),
    );
    topic_live_then_rebuild_equals_live(&dir.path().join("log"), model).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use keel_sql::{PgDatabase, PgEventStore};

    /// A fresh schema's database, or `None` when `KEEL_TEST_POSTGRES_URL` is unset.
    async fn database(test: &str) -> Option<PgDatabase> {
        let (url, _) = support::fresh_schema(test).await?;
        Some(PgDatabase::connect(&url).await.expect("connect"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_failing_event_then_resume_then_rebuild() {
        let Some(db) = database("projection_fail").await else {
            return;
        };
        let store = PgEventStore::open(&db).await.unwrap();
        let fail_at = Arc::new(AtomicU64::new(u64::MAX));
        let model = pg_totals(&db, fail_at.clone()).await;
        failing_event_then_resume_then_rebuild(store, model, fail_at).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_wait_for_reads_your_own_write() {
        let Some(db) = database("projection_wait").await else {
            return;
        };
        let store = PgEventStore::open(&db).await.unwrap();
        let model = pg_totals(&db, Arc::new(AtomicU64::new(u64::MAX))).await;
        wait_for_reads_your_own_write(store, model).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_second_projector_of_one_model_is_refused() {
        let Some(db) = database("projection_second").await else {
            return;
        };
        let store = PgEventStore::open(&db).await.unwrap();
        let model = pg_totals(&db, Arc::new(AtomicU64::new(u64::MAX))).await;
        a_second_projector_of_one_model_is_refused(store, model).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_topic_live_then_rebuild_equals_live() {
        let Some(db) = database("projection_topic").await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let model = pg_totals(&db, Arc::new(AtomicU64::new(u64::MAX))).await;
        topic_live_then_rebuild_equals_live(dir.path(), model).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_killed_mid_batch_keeps_model_and_checkpoints_together() {
        let Some((url, _)) = support::fresh_schema("projection_kill").await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        killed_mid_batch(dir.path(), Some(&url)).await;
    }
}

/// The crash test's child: projects the topic in `KEEL_PROJECTION_CHILD_DIR/log` into the
/// SQLite model there (or the PostgreSQL one at `KEEL_PROJECTION_CHILD_POSTGRES_URL`) until
/// the event with amount -1 hangs its batch. A no-op outside that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_child() {
    let Ok(dir) = std::env::var("KEEL_PROJECTION_CHILD_DIR") else {
        println!("projection_child runs only as the child process of the crash test");
        return;
    };
    let dir = Path::new(&dir);
    let log = topic(&dir.join("log"), 3, 0, None).await;
    let source = TopicSource::new(&log, "orders").unwrap();
    let never = Arc::new(AtomicU64::new(u64::MAX));
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("KEEL_PROJECTION_CHILD_POSTGRES_URL") {
        let db = keel_sql::PgDatabase::connect(&url).await.unwrap();
        let model = pg_totals(&db, never).await;
        let projector = Projector::new(source, model, ()).await.unwrap();
        projector
            .with_batch_events(40)
            .catch_up(|_| {})
            .await
            .unwrap();
        unreachable!("the batch holding amount -1 never ends");
    }
    let model = sqlite_totals(&dir.join("model.db"), never);
    let projector = Projector::new(source, model, ()).await.unwrap();
    projector
        .with_batch_events(40)
        .catch_up(|_| {})
        .await
        .unwrap();
    unreachable!("the batch holding amount -1 never ends");
}

/// Fills a topic, runs the child until its batch holding event 200 (of 300, 40 per batch)
/// is open with writes made, SIGKILLs it, then checks the model describes exactly the
/// checkpointed events, and that catching up from there applies every event once.
async fn killed_mid_batch(dir: &Path, postgres_url: Option<&str>) {
    let hang_at = 200;
    drop(topic(&dir.join("log"), 3, 300, Some(hang_at)).await);
    let marker = dir.join("hanging");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["projection_child", "--exact", "--nocapture"])
        .env("KEEL_PROJECTION_CHILD_DIR", dir)
        .env("KEEL_PROJECTION_HANG_MARKER", &marker);
    if let Some(url) = postgres_url {
        command.env("KEEL_PROJECTION_CHILD_POSTGRES_URL", url);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let written = || std::fs::read_to_string(&marker).ok();
    while written().is_none() {
        assert!(
            Instant::now() < deadline,
            "the child never reached its batch"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child exited");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let written: u64 = written().unwrap().parse().unwrap();

    let log = topic(&dir.join("log"), 3, 0, None).await;
    let never = Arc::new(AtomicU64::new(u64::MAX));
    match postgres_url {
        None => {
            let model = sqlite_totals(&dir.join("model.db"), never);
            check_after_kill(&log, model, hang_at, written).await
        }
        #[cfg(feature = "postgres")]
        Some(url) => {
            let db = keel_sql::PgDatabase::connect(url).await.unwrap();
            check_after_kill(&log, pg_totals(&db, never).await, hang_at, written).await
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => unreachable!("postgres runs need the feature"),
    }
}

/// `written`: events the child wrote into its model before it hung, committed or not.
async fn check_after_kill<M: Totals>(log: &Log, model: M, hang_at: i64, written: u64) {
    let checkpoints: u64 = model.checkpoints().await.unwrap().iter().sum();
    assert!(checkpoints > 0, "some batches committed before the kill");
    assert!(
        written > checkpoints,
        "the open batch had written {} rows when killed",
        written.saturating_sub(checkpoints)
    );
    assert_eq!(
        applied_events(&model).await as u64,
        checkpoints,
        "the model holds exactly the checkpointed events, none of the open batch"
    );
    let source = TopicSource::new(log, "orders").unwrap();
    let projector = Projector::new(source, model.clone(), ()).await.unwrap();
    assert_eq!(projector.positions().iter().sum::<u64>(), checkpoints);
    assert_eq!(
        projector.catch_up(|_| {}).await.unwrap(),
        300 - checkpoints,
        "resumes at the checkpoints"
    );
    let wanted: Rows = (0..7)
        .map(|key| {
            let amounts: Vec<i64> = (0..300)
                .filter(|n| n % 7 == key)
                .map(|n| if n == hang_at { -1 } else { n })
                .collect();
            (
                format!("order-{key}"),
                amounts.iter().sum(),
                amounts.len() as i64,
            )
        })
        .collect();
    assert_eq!(model.dump().await, wanted, "every event applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_mid_batch_keeps_model_and_checkpoints_together() {
    let dir = tempfile::tempdir().unwrap();
    killed_mid_batch(dir.path(), None).await;
}

#[test]
fn a_version_1_checkpoint_becomes_partition_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    let connection = rusqlite::Connection::open(&path).unwrap();
    // The schema and row a version-1 keel-sql wrote.
    connection
        .execute_batch(
            "CREATE TABLE keel_projection_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL);
             INSERT INTO keel_projection_migrations VALUES (1, 'projection checkpoints', 0);
             CREATE TABLE keel_projection_checkpoints (
                 projection TEXT PRIMARY KEY, next_position INTEGER NOT NULL,
                 updated_at_ms INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO keel_projection_checkpoints VALUES ('order-totals', 42, 0);",
        )
        .unwrap();
    drop(connection);
    let model = sqlite_totals(&path, Arc::new(AtomicU64::new(u64::MAX)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(model.checkpoints()).unwrap(), [42]);
}
