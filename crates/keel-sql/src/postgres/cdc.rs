//! The change-data-capture relay (feature `cdc`): the outbox's inserts streamed over
//! PostgreSQL logical replication instead of claimed by queries.
//!
//! `keel_outbox` is in a publication (`publish = 'insert'`: the relay's own updates and
//! deletes are not streamed back), read through a logical replication slot with the
//! built-in `pgoutput` plugin. The server sends each transaction whole once it committed,
//! in commit order, so the relay needs no claim, no key lock and no poll: events leave in
//! the order their transactions committed, across every writer and key.
//!
//! # The checkpoint
//!
//! The slot's confirmed flush position is the relay's only checkpoint. It is raised to the
//! end of a transaction's commit record once the transport acknowledged (or the relay moved
//! aside) every event of that transaction and of every transaction before it, and the
//! write-back (`AfterPublish`) committed. A relay started again — after a crash, a lost
//! session or a server restart — is streamed every transaction after that position.
//!
//! Exactly when a duplicate happens: the relay process dies (or is killed) after the
//! transport acknowledged events and before the server received the standby status update
//! covering their transaction (sent within `STATUS_INTERVAL` of the write-back), or the
//! server crashes before it saved the slot (a slot's position is saved at checkpoints and at
//! a clean shutdown). The duplicates are the same events, with the same ids, in the same
//! order. A lost session or a restarted server alone never duplicates: the reader drops
//! what the server sends again up to the last transaction it already handed on
//! (`cdc_stream.rs`).
//!
//! # The rows
//!
//! The table stays the writers' insert-only queue and the relay writes back as the polling
//! relay does — published rows marked or deleted per [`AfterPublish`], a row the transport
//! keeps rejecting moved to `keel_outbox_dead` — with the same statements, after the
//! transport acknowledged and before the slot moves. The housekeeping (backlog, retention
//! of marked rows, dead-letter copies) is the polling relay's. Never run a polling relay
//! on an outbox a CDC relay serves: both would publish every row.
//!
//! The write-back commits with `synchronous_commit = off`: it does not wait for its WAL to
//! reach the disk (the WAL writer flushes it within `wal_writer_delay`), which took the
//! relay from 80–82% to 98–99% of 8 writers' rate (BENCHMARKS.md). Only a server crash can
//! lose such a commit, and then its rows are unpublished again while the slot's saved
//! position is almost always before them (a checkpoint flushes the WAL it follows): they
//! are streamed again, the duplicates above. In the narrow window where a checkpoint saved
//! the slot past them and the crash came before the WAL flush, they stay in the table
//! unpublished though published: the CDC relay never streams them again, and draining the
//! outbox with the polling relay (after a failover, say) publishes them a second time.
//!
//! The stream can deliver a transaction a moment before its commit is visible to other
//! sessions (the commit record is in the WAL first). A write-back that finds no row then
//! waits (1 ms, doubling up to 0.5 s) and tries again; the slot never moves past a row
//! whose write-back has not found it. (The SIGKILL test caught rows left behind without
//! this.)
//!
//! # A server shutting down
//!
//! A fast shutdown of PostgreSQL (`pg_ctl -m fast`, the default) ends the regular sessions
//! first — the write-back's among them — and then waits for each logical walsender until
//! its client confirmed everything it was sent. A relay holding a batch whose write-back
//! the shutdown cut cannot confirm it, and its replication client kept answering the
//! walsender, so `wal_sender_timeout` never ended it either: the shutdown waited until the
//! relay stopped (`pg_ctl` gave up after 40 s with `wal_sender_timeout` = 10 s, and the
//! server went on refusing connections). So a failed write-back ends the replication
//! session; the walsender then stops, and the reader opens the session again with backoff
//! once the server is back. The batch stays with the relay meanwhile and is written back
//! then; transactions the server streams again are dropped as after any lost session. A
//! batch whose transport hangs has no write-back to fail, so the reader also ends its
//! session when the walsender asks for a reply while transactions are unsettled and the
//! server refuses a regular session (`cdc_stream.rs`).
//!
//! # The slot
//!
//! Created with a check that no unpublished row is older than it, recorded once checked,
//! and created again with the same check when it is lost or invalidated: `cdc_slot.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::{BoxFuture, PublishPort};
use pgwire_replication::ReplicationConfig;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::cdc_slot;
use super::cdc_stream::{self, Committed, StreamConfig, StreamShared};
use super::outbox::PgStore;
use super::{PgDatabase, one_line};
use crate::outbox::{
    AfterPublish, Backlog, DeadRow, OutboxMetrics, OutboxRow, RelayOptionError, RelayOptions,
    Settlement,
};
use crate::relay::{self, Claimed, OutboxStore, RelayHandle, StoreError};

/// How often the replication session reports the settled position to the server at most
/// (it also reports on every keepalive): the window of the duplicates a killed relay
/// leaves.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// First and last pause before writing back rows whose commit the write-back's session
/// did not see yet (it doubles between them).
const VISIBILITY_WAIT_MIN: Duration = Duration::from_millis(1);
const VISIBILITY_WAIT_MAX: Duration = Duration::from_millis(512);

/// Committed transactions the reader may hand on ahead of the relay.
const STREAM_BUFFER_TRANSACTIONS: usize = 1024;

/// The names of a CDC relay's slot and publication: lowercase letters, digits and `_`,
/// starting with a letter, at most 63 bytes (PostgreSQL's identifier limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcSlot {
    /// The logical replication slot: the relay's checkpoint, which holds WAL until the
    /// relay confirms it. One relay per slot.
    pub slot: String,
    /// The publication holding `keel_outbox`.
    pub publication: String,
}

impl CdcSlot {
    /// The slot and publication both named `name`.
    pub fn named(name: &str) -> CdcSlot {
        CdcSlot {
            slot: name.to_string(),
            publication: name.to_string(),
        }
    }

    fn validate(&self) -> Result<(), CdcError> {
        for (what, name) in [("slot", &self.slot), ("publication", &self.publication)] {
            let ok = name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(CdcError::Name(format!(
                    "{what} name {name:?} is not 1-63 of a-z, 0-9, _ starting with a letter"
                )));
            }
        }
        Ok(())
    }
}

/// Why a CDC relay did not start, or its slot was not dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CdcError {
    /// A slot or publication name PostgreSQL would not take as it is.
    #[error("invalid CDC name: {0}")]
    Name(String),
    /// A relay option out of its range.
    #[error(transparent)]
    Options(#[from] RelayOptionError),
    /// Rows committed before the slot existed would never be streamed.
    #[error(
        "the outbox has {0} unpublished rows committed before slot creation, which the slot would never stream: publish them with the polling relay first (keel relay --exit-when-idle), then start the CDC relay"
    )]
    Backlog(i64),
    /// The server refused or could not be reached.
    #[error("cdc setup: {0}")]
    Database(String),
}

/// The CDC relay's own gauges, next to [`OutboxMetrics`] (whose published count is the
/// events relayed).
#[derive(Debug, Clone, Default)]
pub struct CdcMetrics {
    lag_bytes: Gauge,
    lag_ms: Gauge,
    slot_lost: Gauge,
}

impl CdcMetrics {
    /// Fresh gauges at zero.
    pub fn new() -> CdcMetrics {
        CdcMetrics::default()
    }

    /// Registers `keel_outbox_cdc_lag_bytes`, `keel_outbox_cdc_lag_ms` and
    /// `keel_outbox_cdc_slot_lost`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "keel_outbox_cdc_lag_bytes",
            "WAL the slot holds: the server's write position minus the slot's confirmed position",
            self.lag_bytes.clone(),
        );
        registry.register(
            "keel_outbox_cdc_lag_ms",
            "Age of the oldest committed transaction received and not yet settled (0 when none)",
            self.lag_ms.clone(),
        );
        registry.register(
            "keel_outbox_cdc_slot_lost",
            "1 once the relay stopped streaming: its slot was lost while rows it will never stream were committed (cdc_slot.rs)",
            self.slot_lost.clone(),
        );
    }

    /// WAL bytes the slot held at the last measure.
    pub fn lag_bytes(&self) -> i64 {
        self.lag_bytes.get()
    }

    /// Milliseconds the oldest unsettled transaction had waited at the last measure.
    pub fn lag_ms(&self) -> i64 {
        self.lag_ms.get()
    }

    /// Whether the relay stopped streaming because its slot was lost with rows committed
    /// meanwhile that no new slot would stream: drain the outbox with the polling relay,
    /// then start the CDC relay again.
    pub fn slot_lost(&self) -> bool {
        self.slot_lost.get() != 0
    }

    pub(crate) fn mark_slot_lost(&self) {
        self.slot_lost.set(1);
    }
}

impl super::PgOutbox {
    /// Starts a change-data-capture relay (module `cdc` docs) publishing this outbox through
    /// `port`: creates the publication and the slot if they do not exist, then streams.
    /// `options.poll_interval` and `wake_on_notify` do not apply: the stream wakes it.
    pub async fn cdc_relay(
        &self,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
        slot: CdcSlot,
        metrics: OutboxMetrics,
        cdc_metrics: CdcMetrics,
    ) -> Result<RelayHandle, CdcError> {
        options.validate()?;
        slot.validate()?;
        let db = self.database();
        let replication = replication_config(db, &slot)?;
        ensure_publication(db, &slot).await?;
        cdc_slot::ensure_slot(db, &slot, &replication).await?;
        let shared = Arc::new(StreamShared::default());
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER_TRANSACTIONS);
        let wake = Arc::new(Notify::new());
        let (stop_reader, reader_stopped) = watch::channel(false);
        tokio::spawn(cdc_stream::run(
            StreamConfig {
                replication,
                db: db.clone(),
                slot: slot.clone(),
                metrics: cdc_metrics.clone(),
                retry_delay_min: options.retry_delay_min,
                retry_delay_max: options.retry_delay_max,
                name: options.name.clone(),
            },
            shared.clone(),
            sender,
            wake.clone(),
            reader_stopped,
        ));
        let store = CdcStore {
            core: Arc::new(Core {
                polling: PgStore::new(db.clone(), wake),
                slot: slot.slot,
                shared,
                metrics: cdc_metrics,
                state: Mutex::new(State {
                    stream: receiver,
                    queue: VecDeque::new(),
                    transactions: VecDeque::new(),
                    unwritten: WriteBack::default(),
                }),
            }),
            writing: tokio::sync::Mutex::new(None),
            _stop_reader: stop_reader,
        };
        Ok(relay::start(store, port, options, metrics))
    }

    /// Drops the CDC relay's slot and publication (stop the relay first). A slot left
    /// behind holds WAL forever; this is how an operator retires one.
    pub async fn drop_cdc_slot(&self, slot: &CdcSlot) -> Result<(), CdcError> {
        slot.validate()?;
        cdc_slot::drop_slot(self.database(), slot).await
    }
}

/// The replication session's settings, from the database's own connection settings.
fn replication_config(db: &PgDatabase, slot: &CdcSlot) -> Result<ReplicationConfig, CdcError> {
    let config = db.config();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    Ok(ReplicationConfig::new(
        host,
        config.get_user().unwrap_or("postgres"),
        password,
        config.get_dbname().unwrap_or("postgres"),
        slot.slot.clone(),
        slot.publication.clone(),
    )
    .with_port(config.get_ports().first().copied().unwrap_or(5432))
    .with_binary(true)
    .with_status_interval(STATUS_INTERVAL)
    .with_application_name(format!("keel-cdc-{}", slot.slot)))
}

async fn ensure_publication(db: &PgDatabase, slot: &CdcSlot) -> Result<(), CdcError> {
    let client = db.client().await.map_err(CdcError::Database)?;
    let sql_error = |e: tokio_postgres::Error| CdcError::Database(one_line(&e));
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&slot.publication],
        )
        .await
        .map_err(sql_error)?
        .is_some();
    if !exists {
        let created = client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}.keel_outbox WITH (publish = 'insert')",
                slot.publication,
                db.schema()
            ))
            .await;
        // Two relays starting at once: the loser finds the winner's publication.
        if let Err(error) = created
            && error.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
        {
            return Err(sql_error(error));
        }
    }
    Ok(())
}

/// The relay's view of the stream: `claim` hands out received rows in commit order,
/// `finish` settles them and raises the slot's position past every settled transaction.
///
/// `finish` puts back what was not settled at once and leaves the write-back to a task of
/// its own, so the next batch is claimed and published while the previous one's rows are
/// deleted (or marked) and committed: the transport's acknowledgement and the database's
/// commit overlap instead of following each other. (Measured at 5,000 events/s in
/// transactions of 25: the write-back took 2.6 ms at p50 and 18 ms at p99, and every
/// transaction committed meanwhile waited for it.) One write-back at most is in flight: the
/// next `finish` waits for it, which bounds the rows written back late to one batch and
/// keeps the slot's advances in order. The slot never moves past a row before its
/// write-back committed, as before.
struct CdcStore {
    core: Arc<Core>,
    /// The write-back in flight.
    writing: tokio::sync::Mutex<Option<JoinHandle<Result<(), StoreError>>>>,
    /// Stops the reader when the relay ends.
    _stop_reader: watch::Sender<bool>,
}

/// What the store and its write-back task share.
struct Core {
    /// The polling relay's store, for the write-back and the housekeeping.
    polling: PgStore,
    slot: String,
    shared: Arc<StreamShared>,
    metrics: CdcMetrics,
    state: Mutex<State>,
}

struct State {
    stream: mpsc::Receiver<Committed>,
    /// Rows received and not handed out, in commit order; rows handed out and not settled
    /// are put back at the front.
    queue: VecDeque<Queued>,
    /// Received transactions not yet settled, in commit order.
    transactions: VecDeque<Transaction>,
    /// A write-back that failed, written with the next one.
    unwritten: WriteBack,
}

/// Settlements to write back, and the commit end of each row they publish or move aside:
/// its transaction counts the row settled once the write-back committed.
#[derive(Debug, Default)]
struct WriteBack {
    settlements: Vec<Settlement>,
    ends: Vec<u64>,
}

impl WriteBack {
    /// Puts `earlier` (a failed write-back) before this one.
    fn after(mut self, earlier: WriteBack) -> WriteBack {
        let mut merged = earlier;
        merged.settlements.append(&mut self.settlements);
        merged.ends.append(&mut self.ends);
        merged
    }
}

#[derive(Debug, Clone)]
struct Queued {
    row: OutboxRow,
    /// Its transaction's commit end.
    end_lsn: u64,
    /// Not before (after a failed attempt).
    due: Option<Instant>,
}

#[derive(Debug)]
struct Transaction {
    end_lsn: u64,
    commit_unix_micros: i64,
    /// Its rows not yet published or moved aside.
    unsettled: usize,
}

/// A claimed batch: its rows by id.
struct CdcClaim {
    rows: HashMap<i64, Queued>,
    order: Vec<i64>,
}

impl State {
    /// Moves every transaction the reader handed on into the queue.
    fn receive(&mut self) {
        while let Ok(committed) = self.stream.try_recv() {
            self.transactions.push_back(Transaction {
                end_lsn: committed.end_lsn,
                commit_unix_micros: committed.commit_unix_micros,
                unsettled: committed.rows.len(),
            });
            self.queue
                .extend(committed.rows.into_iter().map(|row| Queued {
                    row,
                    end_lsn: committed.end_lsn,
                    due: None,
                }));
        }
    }

    /// Marks one row of the transaction ending at `end_lsn` settled.
    fn settled(&mut self, end_lsn: u64) {
        if let Some(transaction) = self.transactions.iter_mut().find(|t| t.end_lsn == end_lsn) {
            transaction.unsettled = transaction.unsettled.saturating_sub(1);
        }
    }

    /// Drops the settled transactions at the front; the end of the last one dropped.
    fn advance(&mut self) -> Option<u64> {
        let mut position = None;
        while self.transactions.front().is_some_and(|t| t.unsettled == 0) {
            position = self.transactions.pop_front().map(|t| t.end_lsn);
        }
        position
    }
}

impl Core {
    /// Writes `write` back (after a failed one's leftovers), waiting for rows whose commit
    /// this session does not see yet (module docs); then counts its rows settled and raises
    /// the slot's position. A failure keeps everything for the next write-back.
    async fn write_back(
        &self,
        write: WriteBack,
        after_publish: AfterPublish,
    ) -> Result<(), StoreError> {
        let write = {
            let mut state = self.state.lock().expect("cdc state");
            write.after(std::mem::take(&mut state.unwritten))
        };
        let mut writes = write.settlements;
        let mut pause = VISIBILITY_WAIT_MIN;
        let failure = loop {
            if writes.is_empty() {
                break None;
            }
            match self
                .polling
                .write_back_visible(&writes, after_publish)
                .await
            {
                Ok(missed) if missed.is_empty() => break None,
                // Not visible yet (module docs): the slot does not move past them.
                Ok(missed) if pause <= VISIBILITY_WAIT_MAX => {
                    writes = missed;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Ok(missed) => {
                    writes = missed;
                    break Some(StoreError(
                        "cdc: published rows not visible to the write-back yet".to_string(),
                    ));
                }
                Err(error) => {
                    // Module docs, "A server shutting down".
                    self.shared.write_back_failed.notify_one();
                    break Some(error);
                }
            }
        };
        let mut state = self.state.lock().expect("cdc state");
        if let Some(error) = failure {
            state.unwritten = WriteBack {
                settlements: writes,
                ends: write.ends,
            };
            return Err(error);
        }
        for end_lsn in write.ends {
            state.settled(end_lsn);
        }
        if let Some(position) = state.advance() {
            self.shared.settled.fetch_max(position, Ordering::AcqRel);
            self.shared.settled_changed.notify_one();
        }
        Ok(())
    }
}

/// The outcome of a write-back task, if there was one.
async fn finished(task: Option<JoinHandle<Result<(), StoreError>>>) -> Result<(), StoreError> {
    match task {
        Some(task) => task
            .await
            .unwrap_or_else(|error| Err(StoreError(format!("cdc: write-back task: {error}")))),
        None => Ok(()),
    }
}

impl OutboxStore for CdcStore {
    type Claim = CdcClaim;

    /// One stream: a second claim would take the same rows.
    const CLAIMS_OVERLAP: bool = false;

    fn claim(&self, limit: usize) -> BoxFuture<'_, Result<Claimed<CdcClaim>, StoreError>> {
        Box::pin(async move {
            let mut state = self.core.state.lock().expect("cdc state");
            state.receive();
            let now = Instant::now();
            let mut rows = Vec::new();
            let mut claim = CdcClaim {
                rows: HashMap::new(),
                order: Vec::new(),
            };
            // Stop at a row waiting out its retry: what follows may be of its key.
            while rows.len() < limit
                && state
                    .queue
                    .front()
                    .is_some_and(|q| q.due.is_none_or(|due| due <= now))
            {
                let queued = state.queue.pop_front().expect("front");
                rows.push(queued.row.clone());
                claim.order.push(queued.row.id);
                claim.rows.insert(queued.row.id, queued);
            }
            if rows.is_empty()
                && state.queue.is_empty()
                && let Some(reason) = self.core.shared.gone()
            {
                return Err(StoreError(format!("cdc: {reason}")));
            }
            Ok((claim, rows))
        })
    }

    /// Puts back the rows not settled, then starts their write-back once the previous one
    /// ended (the type's docs); returns the previous one's error, if it failed.
    fn finish(
        &self,
        mut claim: CdcClaim,
        settlements: Vec<Settlement>,
        after_publish: AfterPublish,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut retry: HashMap<i64, Duration> = HashMap::new();
            let mut ends = Vec::new();
            for settlement in &settlements {
                match settlement {
                    Settlement::Published { id } | Settlement::Dead { id, .. } => {
                        if let Some(queued) = claim.rows.remove(id) {
                            ends.push(queued.end_lsn);
                        }
                    }
                    Settlement::Retry { id, delay, .. } => {
                        retry.insert(*id, *delay);
                    }
                }
            }
            {
                let mut state = self.core.state.lock().expect("cdc state");
                // Rows not settled go back to the front, in their order.
                let now = Instant::now();
                for id in claim.order.iter().rev() {
                    if let Some(mut queued) = claim.rows.remove(id) {
                        if let Some(delay) = retry.get(id) {
                            queued.row.attempts += 1;
                            queued.due = Some(now + *delay);
                        }
                        state.queue.push_front(queued);
                    }
                }
            }
            let mut writing = self.writing.lock().await;
            // An idle pass (nothing settled) does not wait for the write-back in flight: a
            // transaction arriving meanwhile would wait with it. It retries a failed one.
            if settlements.is_empty() && writing.as_ref().is_some_and(|w| !w.is_finished()) {
                return Ok(());
            }
            let previous = finished(writing.take()).await;
            let core = self.core.clone();
            let write = WriteBack { settlements, ends };
            *writing = Some(tokio::spawn(async move {
                core.write_back(write, after_publish).await
            }));
            previous
        })
    }

    /// Waits for the write-back in flight, so the slot's last position is reported.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { finished(self.writing.lock().await.take()).await })
    }

    fn dead_rows_to_copy(&self, limit: i64) -> BoxFuture<'_, Result<Vec<DeadRow>, StoreError>> {
        self.core.polling.dead_rows_to_copy(limit)
    }

    fn dead_row_copied(&self, id: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.core.polling.dead_row_copied(id)
    }

    /// The outbox's backlog, and the slot's lag into [`CdcMetrics`].
    fn backlog(&self) -> BoxFuture<'_, Result<Backlog, StoreError>> {
        Box::pin(async move {
            let oldest = self
                .core
                .state
                .lock()
                .expect("cdc state")
                .transactions
                .front()
                .map(|t| t.commit_unix_micros);
            let now_micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            self.core.metrics.lag_ms.set(
                oldest
                    .map(|commit| (now_micros - commit).max(0) / 1000)
                    .unwrap_or(0),
            );
            let client = self
                .core
                .polling
                .database()
                .client()
                .await
                .map_err(StoreError)?;
            let row = client
                .query_opt(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
                     FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.core.slot],
                )
                .await
                .map_err(|e| StoreError(format!("cdc: measure slot lag: {}", one_line(&e))))?;
            if let Some(row) = row {
                self.core
                    .metrics
                    .lag_bytes
                    .set(row.get::<_, Option<i64>>(0).unwrap_or(0));
            }
            self.core.polling.backlog().await
        })
    }

    fn delete_published_before(&self, age: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.core.polling.delete_published_before(age)
    }

    fn wake_signal(&self) -> Arc<Notify> {
        self.core.polling.wake_signal()
    }
}
