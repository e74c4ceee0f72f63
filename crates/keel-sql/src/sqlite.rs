//! The transactional inbox on SQLite: [`SqliteInbox`] (one database file, one connection,
//! group commit), the handlers it builds ([`SqliteInbox::handler`],
//! [`SqliteInbox::handler_raw`]) and the transaction they see ([`SqliteTx`]).
//!
//! Not here: the SQL text and the migrations (`schema.rs`), limits (`limits.rs`), the open
//! errors (`error.rs`). Nothing here knows a partition, an offset or a retry: that is the
//! runtime's, which calls these handlers like any other.
//!
//! # How one event is handled
//!
//! The handler's future queues the event's work and waits. If no blocking thread is draining
//! the queue, it starts one (a tokio blocking task, the *leader*), which holds the
//! connection, takes up to [`SqliteInboxOptions::batch_events_max`] works at a time in
//! arrival order and runs each batch as below, until the queue is empty:
//!
//! ```text
//! BEGIN IMMEDIATE
//!   per event:  SAVEPOINT keel_event
//!               INSERT INTO keel_inbox ... ON CONFLICT DO NOTHING    -- 0 rows: duplicate, skip f
//!               f(tx, event)                                         -- the handler's own writes
//!               Ok  → RELEASE keel_event
//!               Err → ROLLBACK TO keel_event; RELEASE keel_event     -- writes and mark undone
//! COMMIT                                                             -- one fsync for the batch
//! ```
//!
//! and only then answers each event's future. Each event's writes and mark are one unit
//! (its savepoint); the commit makes all of them durable at once. This is group commit: with
//! `synchronous = FULL` every commit costs an fsync of the WAL, and one fsync per event
//! would cap a consumer at the disk's fsync rate (a few thousand per second at best), while
//! batches form by themselves whenever events arrive faster than one commit takes.
//!
//! # Decision table for one batch
//!
//! | what happens | the event's answer | effects |
//! |---|---|---|
//! | mark inserted, `f` Ok, COMMIT ok | Ok (handled) | writes + mark durable |
//! | mark exists already | Ok (duplicate), `f` not called | none |
//! | `f` returns Err or panics | that Err (a panic: transient) | writes and mark rolled back |
//! | BEGIN, SAVEPOINT, mark INSERT, RELEASE or COMMIT fails (busy, I/O, disk full) | transient Err for every event of the batch | whole batch rolled back |
//! | `f` ended the transaction itself (COMMIT/ROLLBACK) | transient Err for every event of the batch | unknown: see [`SqliteTx`] |
//! | caller gone (attempt timed out, router dropped) before the batch started | none; event skipped | none; redelivered later |
//! | caller gone after the batch started | none; result dropped | as the table above: the redelivery finds the mark if it committed |
//!
//! A duplicate answers only after the commit too: the mark it ran into may belong to an
//! earlier event of the same batch, whose commit could still fail.

use std::collections::VecDeque;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_core::BoxFuture;
use keel_core::{Event, EventType};
use keel_runtime::{Context, Handler, HandlerError, HandlerResult, Inbox, InboxError};
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::database::wall_clock_ms;
use crate::error::OpenError;
use crate::limits::{
    BATCH_EVENTS_DEFAULT, BATCH_EVENTS_MAX, BUSY_TIMEOUT_DEFAULT, BUSY_TIMEOUT_MAX, FOLLOW_UPS_MAX,
    RETENTION_DELETE_MAX,
};
use crate::outbox::{EnqueueError, envelope};
use crate::schema::{
    self, BEGIN_IMMEDIATE, COMMIT, COUNT_MARKS, DELETE_MARKS_BEFORE, INSERT_MARK, RELEASE_EVENT,
    ROLLBACK, ROLLBACK_TO_EVENT, SAVEPOINT_EVENT, SCHEMA_VERSION, SELECT_MARK,
};

/// The transactional inbox on one SQLite file: handlers built here apply an event's effects
/// and record it as processed in one transaction, so a redelivered event changes nothing.
///
/// Cheap to clone; every clone is the same inbox (one connection, one queue). Any number of
/// handlers, routes and groups can share one inbox: marks are keyed by consumer
/// (`<group>/<handler>`, as the runtime names it) and event id. Use one `SqliteInbox` per
/// database file per process: SQLite has one writer at a time, and this type is that writer.
#[derive(Clone)]
pub struct SqliteInbox {
    shared: Arc<Shared>,
}

/// Settings of a [`SqliteInbox`], each with a default and a range checked on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteInboxOptions {
    /// Most events committed in one transaction, 1..=[`BATCH_EVENTS_MAX`]. `1` turns group
    /// commit off (one fsync per event).
    pub batch_events_max: usize,
    /// How long a write waits for another connection's lock before it fails as busy (a
    /// transient error, retried by the runtime); at most [`BUSY_TIMEOUT_MAX`].
    pub busy_timeout: Duration,
}

/// What the inbox did since it was opened in this process; for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Events whose effects and mark committed.
    pub handled: u64,
    /// Deliveries dropped because the mark existed (committed answers only).
    pub duplicates: u64,
    /// Handler calls that returned an error or panicked, rolled back.
    pub failed: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Transactions that failed as a whole (busy, I/O error, ...) and were rolled back.
    pub commit_failures: u64,
    /// Events skipped because their caller had gone before their batch started.
    pub abandoned: u64,
}

/// The open transaction a handler of [`SqliteInbox::handler`] writes in, plus the event's
/// [`Context`]. Derefs to [`rusqlite::Connection`] for `execute`, `prepare_cached`, ...
///
/// The transaction belongs to the inbox: the handler must not run `COMMIT`, `ROLLBACK`,
/// `BEGIN` or `RELEASE` of a savepoint it did not create. (Its own `SAVEPOINT`s are fine.)
/// If it does, the inbox notices and fails the whole batch as transient, but whatever the
/// statement already committed stays committed.
pub struct SqliteTx<'a> {
    connection: &'a Connection,
    context: &'a Context,
    follow_ups: Vec<FollowUp>,
}

/// An event to publish once the handled event's transaction committed.
#[derive(Debug)]
struct FollowUp {
    topic: String,
    event: Event,
}

impl Default for SqliteInboxOptions {
    fn default() -> SqliteInboxOptions {
        SqliteInboxOptions {
            batch_events_max: BATCH_EVENTS_DEFAULT,
            busy_timeout: BUSY_TIMEOUT_DEFAULT,
        }
    }
}

impl SqliteInboxOptions {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), OpenError> {
        if !(1..=BATCH_EVENTS_MAX).contains(&self.batch_events_max) {
            return Err(OpenError::Option {
                setting: "options.batch_events_max",
                reason: format!("{} is not in 1..={BATCH_EVENTS_MAX}", self.batch_events_max),
            });
        }
        if self.busy_timeout > BUSY_TIMEOUT_MAX {
            return Err(OpenError::Option {
                setting: "options.busy_timeout",
                reason: format!("{:?} is above {BUSY_TIMEOUT_MAX:?}", self.busy_timeout),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.shared.path)
            .field("options", &self.shared.options)
            .finish()
    }
}

impl SqliteInbox {
    /// Opens (creating if needed) the database at `path` with default options. See
    /// [`SqliteInbox::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteInbox, OpenError> {
        SqliteInbox::open_with(path, SqliteInboxOptions::default())
    }

    /// Opens (creating if needed) the database at `path`, configures it and brings its
    /// schema to the current version. Blocking: call it at start, before serving.
    ///
    /// Settings, and why:
    /// - `journal_mode = WAL`: readers (reports, `keel` tools, other processes) never block
    ///   the writer nor it them, and a commit appends to one file instead of rewriting pages.
    /// - `synchronous = FULL`: the WAL is fsynced at every commit, so a committed mark and
    ///   its effects survive power loss. With `NORMAL` the last commits can vanish on power
    ///   loss while the runtime has already committed the events' offsets in the log: those
    ///   effects would be lost for good, not merely repeated. Group commit pays for it.
    /// - `busy_timeout`: another connection holding the write lock makes a write wait,
    ///   then fail as transient, instead of failing at once.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteInboxOptions,
    ) -> Result<SqliteInbox, OpenError> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let mut connection = crate::database::open(&path, options.busy_timeout)?;
        let found = crate::database::migrate_on_open(
            &mut connection,
            &path,
            &schema::TRACK,
            wall_clock_ms(),
        )?;
        if found < SCHEMA_VERSION {
            tracing::info!(
                path = %path.display(),
                from = found,
                to = SCHEMA_VERSION,
                "migrated the inbox schema"
            );
        }
        Ok(SqliteInbox {
            shared: Arc::new(Shared {
                path,
                options,
                queue: Mutex::new(Queue::default()),
                connection: Mutex::new(connection),
                stats: Counters::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The schema version of the database (always the newest this code knows once open).
    pub fn schema_version(&self) -> u32 {
        SCHEMA_VERSION
    }

    /// Counters since open.
    pub fn stats(&self) -> InboxStats {
        self.shared.stats.snapshot()
    }

    /// A handler of typed events `T` whose effects are exactly-once: per event, `f` runs
    /// inside the transaction that records the event as processed by this consumer
    /// (`<group>/<name>`), on a blocking thread. A redelivered event whose mark committed
    /// never reaches `f`; an `f` that fails leaves neither writes nor mark behind, and the
    /// runtime retries or dead-letters as the error's kind says.
    ///
    /// Do not also put this inbox on the route with `Route::with_inbox`: this handler does
    /// its own dedupe, inside the transaction.
    ///
    /// Cancel safety: an attempt the runtime cancels (timeout, shutdown, a dropped router)
    /// either never starts `f` or lets it finish and commit; a later delivery then finds the
    /// mark. `f` itself is synchronous and is never interrupted halfway.
    pub fn handler<T, F>(&self, name: impl Into<String>, f: F) -> Handler
    where
        T: EventType + Send + 'static,
        F: Fn(&mut SqliteTx<'_>, T) -> HandlerResult + Send + Sync + 'static,
    {
        Handler::typed(name, self.transactional(f))
    }

    /// As [`SqliteInbox::handler`], for raw envelopes of any type.
    pub fn handler_raw<F>(&self, name: impl Into<String>, f: F) -> Handler
    where
        F: Fn(&mut SqliteTx<'_>, Event) -> HandlerResult + Send + Sync + 'static,
    {
        Handler::raw(name, self.transactional(f))
    }

    /// The body both handler kinds share: `f` runs with the event's value (typed or raw) in
    /// the inbox's transaction, on the inbox's blocking leader.
    fn transactional<V, F>(
        &self,
        f: F,
    ) -> impl Fn(V, Context) -> BoxFuture<'static, HandlerResult> + Send + Sync + 'static
    where
        V: Send + 'static,
        F: Fn(&mut SqliteTx<'_>, V) -> HandlerResult + Send + Sync + 'static,
    {
        let shared = self.shared.clone();
        let f = Arc::new(f);
        move |value: V, ctx: Context| {
            let shared = shared.clone();
            let f = f.clone();
            Box::pin(async move {
                let inner = ctx.clone();
                let work: Work = Box::new(move |connection| {
                    let mut tx = SqliteTx::new(connection, &inner);
                    f(&mut tx, value)?;
                    Ok(tx.follow_ups)
                });
                handle(&shared, &ctx, work).await
            })
        }
    }

    /// How many (consumer, event id) marks the database holds.
    ///
    /// Cancel safety: cancel safe (it only reads).
    pub async fn processed_count(&self) -> Result<u64, InboxError> {
        self.with_connection(|connection| {
            connection.query_row(COUNT_MARKS, [], |row| row.get::<_, i64>(0))
        })
        .await?
        .map(|count| count as u64)
        .map_err(|e| self.shared.inbox_error("count marks", e))
    }

    /// Deletes at most [`RETENTION_DELETE_MAX`] marks recorded before `cutoff` and returns
    /// how many; call again while it returns the maximum.
    ///
    /// A deleted mark no longer protects its event: keep marks longer than any redelivery
    /// can come — the log's retention for this topic, and the age of the oldest dead letter
    /// anyone may still replay.
    ///
    /// Cancel safety: a dropped call may or may not delete; either is consistent.
    pub async fn delete_processed_before(&self, cutoff: SystemTime) -> Result<u64, InboxError> {
        let cutoff_ms = cutoff
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.with_connection(move |connection| {
            connection.execute(
                DELETE_MARKS_BEFORE,
                params![cutoff_ms, RETENTION_DELETE_MAX as i64],
            )
        })
        .await?
        .map(|deleted| deleted as u64)
        .map_err(|e| self.shared.inbox_error("delete old marks", e))
    }

    /// Runs `f` on the inbox's connection, between batches, on a blocking thread: create the
    /// application's tables at start, read its state in tests and tools. `f` must leave no
    /// transaction open; if it does, the transaction is rolled back and this returns an
    /// error.
    ///
    /// Cancel safety: `f` runs to completion even if this future is dropped.
    pub async fn with_connection<R, F>(&self, f: F) -> Result<R, InboxError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        let shared = self.shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut connection = shared.connection();
            let value = f(&mut connection);
            if !connection.is_autocommit() {
                let _ = connection.execute_batch(ROLLBACK);
                return Err(InboxError(format!(
                    "sqlite inbox {}: with_connection left a transaction open; rolled back",
                    shared.path.display()
                )));
            }
            Ok(value)
        });
        task.await
            .map_err(|e| InboxError(format!("sqlite inbox task failed: {e}")))?
    }
}

impl Inbox for SqliteInbox {
    /// A point read of the mark.
    fn is_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let (consumer, event_id) = (consumer.to_string(), event_id.to_string());
        Box::pin(async move {
            self.with_connection(move |connection| {
                connection
                    .prepare_cached(SELECT_MARK)?
                    .exists(params![consumer, event_id])
            })
            .await?
            .map_err(|e| self.shared.inbox_error("read mark", e))
        })
    }

    /// The mark in a transaction of its own (batched with other marks and events), *after*
    /// the handler's effects happened elsewhere: this is the non-transactional use, no
    /// stronger than the effects' own idempotence. Prefer [`SqliteInbox::handler`] when the
    /// effects are in this database.
    fn mark_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<(), InboxError>> {
        let (consumer, event_id) = (consumer.to_string(), event_id.to_string());
        Box::pin(async move {
            match submit(&self.shared, consumer, event_id, None).await {
                Ok(_) => Ok(()),
                Err(error) => Err(InboxError(error.message().to_string())),
            }
        })
    }
}

impl<'a> SqliteTx<'a> {
    fn new(connection: &'a Connection, context: &'a Context) -> SqliteTx<'a> {
        SqliteTx {
            connection,
            context,
            follow_ups: Vec::new(),
        }
    }

    /// The connection, inside the event's transaction.
    pub fn connection(&self) -> &Connection {
        self.connection
    }

    /// The event being handled, its attempt number, topic, group.
    pub fn context(&self) -> &Context {
        self.context
    }

    /// Publishes `event` to `topic` as caused by the handled event (as
    /// [`Context::publish`]) once this transaction committed; nothing is published if it
    /// rolls back. At most [`FOLLOW_UPS_MAX`] per event.
    ///
    /// At most once: if the process stops, or the attempt is cancelled, or the publish fails
    /// between the commit and the publish, the follow-up is lost, because the redelivered
    /// event is a duplicate and is not handled again. [`SqliteTx::enqueue`] closes that gap.
    pub fn publish_after_commit(
        &mut self,
        topic: impl Into<String>,
        event: Event,
    ) -> Result<(), HandlerError> {
        if self.follow_ups.len() >= FOLLOW_UPS_MAX {
            return Err(HandlerError::permanent(format!(
                "more than {FOLLOW_UPS_MAX} follow-up events for one event"
            )));
        }
        self.follow_ups.push(FollowUp {
            topic: topic.into(),
            event,
        });
        Ok(())
    }
}

impl SqliteTx<'_> {
    /// Enqueues `event` for `topic` in the outbox of this database, in this event's
    /// transaction, as caused by the handled event: a relay
    /// ([`SqliteOutbox::relay`](crate::SqliteOutbox::relay)) publishes it if and only if
    /// the handled event's effects commit. Unlike
    /// [`SqliteTx::publish_after_commit`], nothing is lost if the process stops.
    pub fn enqueue(&self, topic: &str, event: Event) -> Result<(), EnqueueError> {
        let event = event.caused_by(self.context.event());
        crate::sqlite_outbox::insert(self.connection, &[envelope(topic, &event)?])
    }
}

impl Deref for SqliteTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl std::fmt::Debug for SqliteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTx")
            .field("event_id", &self.context.event().id)
            .field("follow_ups", &self.follow_ups.len())
            .finish()
    }
}

/// One event's work inside its savepoint; returns the follow-ups to publish after commit.
type Work = Box<dyn FnOnce(&Connection) -> Result<Vec<FollowUp>, HandlerError> + Send>;

/// What became of a job whose batch committed.
enum Done {
    Handled(Vec<FollowUp>),
    Duplicate,
}

type JobResult = Result<Done, HandlerError>;

struct Job {
    consumer: String,
    event_id: String,
    /// `None`: only the mark (the [`Inbox`] port's `mark_processed`).
    work: Option<Work>,
    reply: oneshot::Sender<JobResult>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Whether a blocking task is draining `jobs`.
    leader: bool,
}

/// The leader's blocking task. If it ends without stepping down — it panicked (a bug:
/// handler panics are caught), or the runtime dropped it unstarted while shutting down — its
/// drop steps down for it, so the next job starts a new leader instead of waiting forever.
/// The callers of a panicking batch see their answer dropped, a transient error.
struct LeaderTask {
    shared: Arc<Shared>,
    stepped_down: bool,
}

impl LeaderTask {
    fn run(mut self) {
        self.shared.lead();
        self.stepped_down = true;
    }
}

impl Drop for LeaderTask {
    fn drop(&mut self) {
        if !self.stepped_down {
            self.shared.queue().leader = false;
        }
    }
}

struct Shared {
    path: PathBuf,
    options: SqliteInboxOptions,
    /// Jobs waiting for a batch. Lock order: `connection`, then `queue`; `queue` alone is
    /// held only to push or pop, never across SQL.
    queue: Mutex<Queue>,
    connection: Mutex<Connection>,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
    commits: AtomicU64,
    commit_failures: AtomicU64,
    abandoned: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> InboxStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        InboxStats {
            handled: get(&self.handled),
            duplicates: get(&self.duplicates),
            failed: get(&self.failed),
            commits: get(&self.commits),
            commit_failures: get(&self.commit_failures),
            abandoned: get(&self.abandoned),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Shared {
    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection (handler panics are caught, so only a bug
        // here) may leave a transaction open; `run_batch` rolls any such leftover back.
        self.connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn inbox_error(&self, operation: &str, error: rusqlite::Error) -> InboxError {
        InboxError(self.describe(operation, &error))
    }

    /// One line: the file, the step, SQLite's reason.
    fn describe(&self, operation: &str, error: &dyn std::fmt::Display) -> String {
        format!("sqlite inbox {}: {operation}: {error}", self.path.display())
    }

    /// The leader: takes the connection and runs batches until the queue is empty, then
    /// steps down (under the queue lock, so a job queued later starts a new leader). Blocking.
    fn lead(&self) {
        let connection = self.connection();
        loop {
            let batch: Vec<Job> = {
                let mut queue = self.queue();
                if queue.jobs.is_empty() {
                    queue.leader = false;
                    break;
                }
                let take = queue.jobs.len().min(self.options.batch_events_max);
                queue.jobs.drain(..take).collect()
            };
            self.run_batch(&connection, batch);
        }
    }

    /// Runs one group-commit transaction; see the module docs' decision table.
    fn run_batch(&self, connection: &Connection, batch: Vec<Job>) {
        let (mut live, gone): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|job| !job.reply.is_closed());
        Counters::add(&self.stats.abandoned, gone.len() as u64);
        if live.is_empty() {
            return;
        }
        if !connection.is_autocommit() {
            // Only after a bug panicked mid-batch: never build on a half-done transaction.
            let _ = connection.execute_batch(ROLLBACK);
        }
        let now_ms = wall_clock_ms();
        let mut results: Vec<JobResult> = Vec::with_capacity(live.len());
        let mut broken = connection
            .execute_batch(BEGIN_IMMEDIATE)
            .err()
            .map(|e| self.describe("begin transaction", &e));
        if broken.is_none() {
            for job in &mut live {
                match self.run_job(connection, job, now_ms) {
                    Ok(result) => results.push(result),
                    Err(reason) => {
                        broken = Some(reason);
                        break;
                    }
                }
            }
        }
        if broken.is_none()
            && let Err(error) = connection.execute_batch(COMMIT)
        {
            broken = Some(self.describe("commit", &error));
        }
        if let Some(reason) = broken {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch(ROLLBACK);
            }
            Counters::add(&self.stats.commit_failures, 1);
            tracing::warn!(events = live.len(), %reason, "inbox transaction rolled back");
            for job in live {
                let _ = job.reply.send(Err(HandlerError::transient(&reason)));
            }
            return;
        }
        Counters::add(&self.stats.commits, 1);
        for (job, result) in live.into_iter().zip(results) {
            let counter = match &result {
                Ok(Done::Handled(_)) => &self.stats.handled,
                Ok(Done::Duplicate) => &self.stats.duplicates,
                Err(_) => &self.stats.failed,
            };
            Counters::add(counter, 1);
            let _ = job.reply.send(result);
        }
    }

    /// One event inside the open transaction. `Err` means the transaction as a whole can no
    /// longer be trusted (the batch fails); a handler's own failure is `Ok(Err(..))`.
    fn run_job(
        &self,
        connection: &Connection,
        job: &mut Job,
        now_ms: i64,
    ) -> Result<JobResult, String> {
        let step = |operation: &str, sql: &str| {
            connection
                .execute_batch(sql)
                .map_err(|e| self.describe(operation, &e))
        };
        step("open event savepoint", SAVEPOINT_EVENT)?;
        let inserted = connection
            .prepare_cached(INSERT_MARK)
            .and_then(|mut statement| {
                statement.execute(params![job.consumer, job.event_id, now_ms])
            })
            .map_err(|e| self.describe("insert mark", &e))?;
        if inserted == 0 {
            step("release event savepoint", RELEASE_EVENT)?;
            return Ok(Ok(Done::Duplicate));
        }
        let outcome = match job.work.take() {
            None => Ok(Vec::new()),
            Some(work) => {
                let call = std::panic::AssertUnwindSafe(|| work(connection));
                std::panic::catch_unwind(call).unwrap_or_else(|panic| {
                    Err(HandlerError::transient(format!(
                        "handler panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                })
            }
        };
        if connection.is_autocommit() {
            return Err(self.describe(
                "handle event",
                &"the handler ended the inbox's transaction itself (COMMIT or ROLLBACK)",
            ));
        }
        match outcome {
            Ok(follow_ups) => {
                step("release event savepoint", RELEASE_EVENT)?;
                Ok(Ok(Done::Handled(follow_ups)))
            }
            Err(error) => {
                step("roll back event", ROLLBACK_TO_EVENT)?;
                step("release event savepoint", RELEASE_EVENT)?;
                Ok(Err(error))
            }
        }
    }
}

/// Queues one job and waits for its committed answer. If no blocking thread is draining the
/// queue, starts one; it runs batches until the queue is empty. So while any job waits, a
/// blocking task is running, which also holds paused tokio time still in tests.
///
/// Cancel safety: if dropped before its batch starts, the job is skipped; after, it runs
/// to its end and the answer is dropped.
async fn submit(
    shared: &Arc<Shared>,
    consumer: String,
    event_id: String,
    work: Option<Work>,
) -> Result<Done, HandlerError> {
    let (reply, answer) = oneshot::channel();
    let start_leader = {
        let mut queue = shared.queue();
        queue.jobs.push_back(Job {
            consumer,
            event_id,
            work,
            reply,
        });
        !std::mem::replace(&mut queue.leader, true)
    };
    if start_leader {
        let leader = LeaderTask {
            shared: shared.clone(),
            stepped_down: false,
        };
        tokio::task::spawn_blocking(move || leader.run());
    }
    answer.await.unwrap_or_else(|_| {
        Err(HandlerError::transient(
            shared.describe("inbox", &"the batch ended without an answer"),
        ))
    })
}

/// The body of every handler built here: run the work, then publish its follow-ups.
async fn handle(shared: &Arc<Shared>, ctx: &Context, work: Work) -> HandlerResult {
    let consumer = format!("{}/{}", ctx.group(), ctx.handler());
    let event_id = ctx.event().id.clone();
    match submit(shared, consumer, event_id, Some(work)).await? {
        Done::Duplicate => {
            tracing::debug!("duplicate event dropped by the sqlite inbox");
            Ok(())
        }
        Done::Handled(follow_ups) => {
            for follow_up in follow_ups {
                if let Err(error) = ctx.publish(&follow_up.topic, follow_up.event).await {
                    // The event is committed; a retry would be a duplicate and publish
                    // nothing. Say so loudly: this is the gap the outbox closes.
                    tracing::error!(
                        topic = %follow_up.topic,
                        %error,
                        "follow-up event lost: its cause committed but the publish failed"
                    );
                }
            }
            Ok(())
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic".to_string()
    }
}
