//! The CDC relay's reader: one task holding the logical replication session (pgoutput over
//! the streaming replication protocol, `pgwire-replication`), turning each committed
//! transaction's inserts into the outbox into [`OutboxRow`]s (decoded by `pg_walstream`)
//! and handing them on in commit order, and reporting the position the relay settled
//! (`StreamShared::settled`) back to the server as the slot's confirmed flush position.
//!
//! A lost session (walsender terminated, server restarting) is opened again with backoff.
//! The server then streams again from the slot's confirmed position, which may be behind
//! what this task already handed on; transactions whose commit ends at or below the last
//! one handed on are dropped, so a reconnect never hands on an event twice. A failed
//! write-back ends the session the same way (`StreamShared::write_back_failed`): a server
//! shutting down cut it, and the walsender waits to be confirmed what the relay cannot
//! settle until the server is back (`cdc.rs`, "A server shutting down"). So does a server
//! that asks for a reply while the relay holds unsettled transactions — a shutdown's
//! walsender asks again and again — and refuses a regular session: the transport may hang
//! for as long as it likes, the shutdown does not wait for it. A session that
//! failed because the slot is gone or invalidated is not retried as it is: the slot is
//! created again with its check once everything handed on is settled, or the reader stops
//! (`cdc_slot.rs`, "A lost slot").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_walstream::{LogicalReplicationMessage, LogicalReplicationParser, TupleData};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use tokio::sync::{Notify, mpsc, watch};

use super::PgDatabase;
use super::cdc::{CdcError, CdcMetrics, CdcSlot};
use super::cdc_slot;
use crate::outbox::OutboxRow;

/// Seconds between the Unix epoch and PostgreSQL's (2000-01-01), in microseconds.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// At most one shutdown probe (`Reader::server_accepts_sessions`) per this interval, and
/// how long one may take.
const SHUTDOWN_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const SHUTDOWN_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One committed transaction's outbox rows, in insert order.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The end of its commit record: once every row here (and before) is settled, the slot
    /// may confirm this position.
    pub(crate) end_lsn: u64,
    /// Its commit time, Unix microseconds.
    pub(crate) commit_unix_micros: i64,
    pub(crate) rows: Vec<OutboxRow>,
}

/// What the reader and the relay's store share.
#[derive(Debug, Default)]
pub(crate) struct StreamShared {
    /// The position the store settled: every event committed at or below it is published
    /// or moved aside. Reported to the server as confirmed flush.
    pub(crate) settled: AtomicU64,
    /// Raised with `settled`.
    pub(crate) settled_changed: Notify,
    /// Raised when a write-back failed: the reader ends its session and opens it again.
    pub(crate) write_back_failed: Notify,
    /// Why the reader stopped for good: its slot was lost and cannot be replaced safely.
    gone: Mutex<Option<String>>,
}

impl StreamShared {
    /// Why the reader stopped for good, if it did.
    pub(crate) fn gone(&self) -> Option<String> {
        self.gone.lock().expect("cdc stream").clone()
    }
}

/// Where and how to stream.
pub(crate) struct StreamConfig {
    pub(crate) replication: ReplicationConfig,
    /// The outbox's database: its schema's `keel_outbox` is the table streamed (inserts into
    /// other tables of the publication are ignored), and a lost slot is replaced through it.
    pub(crate) db: PgDatabase,
    pub(crate) slot: CdcSlot,
    pub(crate) metrics: CdcMetrics,
    pub(crate) retry_delay_min: Duration,
    pub(crate) retry_delay_max: Duration,
    pub(crate) name: String,
}

/// The reader's state across sessions.
struct Reader {
    config: StreamConfig,
    shared: Arc<StreamShared>,
    out: mpsc::Sender<Committed>,
    wake: Arc<Notify>,
    /// End of the last transaction handed on (or settled before this process started).
    handed_on: u64,
}

/// Runs the reader until `stopped` or until the store is gone.
pub(crate) async fn run(
    config: StreamConfig,
    shared: Arc<StreamShared>,
    out: mpsc::Sender<Committed>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut reader = Reader {
        config,
        shared,
        out,
        wake,
        handed_on: 0,
    };
    let mut failures = 0u32;
    while !*stopped.borrow() && !reader.out.is_closed() {
        let outcome = tokio::select! {
            outcome = reader.session() => outcome,
            _ = stopped.changed() => return,
        };
        match outcome {
            Ok(()) => return,
            Err(error) => {
                match reader.replace_lost_slot(&mut stopped).await {
                    Replaced::No => {}
                    Replaced::Yes => {
                        failures = 0;
                        continue;
                    }
                    Replaced::Never => return,
                }
                failures = failures.saturating_add(1);
                let factor = 1u32.checked_shl(failures.min(16) - 1).unwrap_or(u32::MAX);
                let delay = reader
                    .config
                    .retry_delay_min
                    .saturating_mul(factor)
                    .min(reader.config.retry_delay_max);
                tracing::warn!(relay = %reader.config.name, %error, ?delay, "outbox replication session lost; opening it again");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }
}

/// What became of a slot after a failed session.
enum Replaced {
    /// It is there (or could not be looked at): open the session again after a pause.
    No,
    /// It was gone and is replaced by a checked one: stream from it now.
    Yes,
    /// It was gone with rows committed meanwhile, or the reader was stopped: stop.
    Never,
}

impl Reader {
    /// After a failed session: when the slot is gone or invalidated, waits until everything
    /// handed on is settled, then creates it again with its check (`cdc_slot.rs`, "A lost
    /// slot").
    async fn replace_lost_slot(&mut self, stopped: &mut watch::Receiver<bool>) -> Replaced {
        let name = &self.config.name;
        let slot = &self.config.slot.slot;
        if !cdc_slot::is_gone(&self.config.db, slot)
            .await
            .unwrap_or(false)
        {
            return Replaced::No;
        }
        tracing::warn!(relay = %name, %slot, "the outbox's replication slot is gone or invalidated; creating it again once every event received is settled");
        while self.shared.settled.load(Ordering::Acquire) < self.handed_on {
            tokio::select! {
                _ = self.shared.settled_changed.notified() => {}
                _ = stopped.changed() => return Replaced::Never,
            }
        }
        match cdc_slot::ensure_slot(&self.config.db, &self.config.slot, &self.config.replication)
            .await
        {
            Ok(()) => {
                // Nothing is in flight: the new slot starts afresh, as in a new process. Its
                // positions may be below the old slot's (a promoted standby).
                self.handed_on = 0;
                self.shared.settled.store(0, Ordering::Release);
                tracing::warn!(relay = %name, %slot, "replication slot created again; nothing was committed while it was gone");
                Replaced::Yes
            }
            Err(error @ CdcError::Backlog(_)) => {
                let reason = format!("the replication slot {slot} was lost: {error}");
                tracing::error!(relay = %name, %reason, "the CDC relay stopped streaming");
                *self.shared.gone.lock().expect("cdc stream") = Some(reason);
                self.config.metrics.mark_slot_lost();
                self.wake.notify_one();
                Replaced::Never
            }
            Err(error) => {
                tracing::warn!(relay = %name, %slot, %error, "the replication slot could not be created again yet");
                Replaced::No
            }
        }
    }

    /// One replication session, until it fails or the store is gone (`Ok`).
    async fn session(&mut self) -> Result<(), String> {
        let settled = self.shared.settled.load(Ordering::Acquire);
        let config = self
            .config
            .replication
            .clone()
            .with_ack_lsn(Lsn::from_u64(settled));
        let mut client = ReplicationClient::connect(config)
            .await
            .map_err(|e| e.to_string())?;
        let mut parser = LogicalReplicationParser::with_protocol_version(1);
        // Relation id → whether it is our outbox, and the positions of its columns.
        let mut relations: HashMap<u32, Option<Columns>> = HashMap::new();
        let mut open: Option<Committed> = None;
        // When the server was last asked whether it is shutting down.
        let mut probed: Option<Instant> = None;
        loop {
            let event = tokio::select! {
                event = client.recv() => event.map_err(|e| e.to_string())?,
                _ = self.shared.settled_changed.notified() => {
                    client.update_applied_lsn(Lsn::from_u64(self.shared.settled.load(Ordering::Acquire)));
                    continue;
                }
                _ = self.shared.write_back_failed.notified() => {
                    return Err("a write-back failed; the session ends so the server can stop".to_string());
                }
            };
            let Some(event) = event else {
                return Err("the replication session ended".to_string());
            };
            match event {
                ReplicationEvent::Begin {
                    commit_time_micros, ..
                } => {
                    open = Some(Committed {
                        end_lsn: 0,
                        commit_unix_micros: commit_time_micros + PG_EPOCH_UNIX_MICROS,
                        rows: Vec::new(),
                    });
                }
                ReplicationEvent::XLogData { data, .. } => {
                    let message = parser
                        .parse_wal_message_bytes(data)
                        .map_err(|e| format!("undecodable pgoutput message: {e}"))?
                        .message;
                    match message {
                        LogicalReplicationMessage::Relation {
                            relation_id,
                            namespace,
                            relation_name,
                            columns,
                            ..
                        } => {
                            let ours = *namespace == *self.config.db.schema()
                                && &*relation_name == "keel_outbox";
                            let names: Vec<&str> = columns.iter().map(|c| &*c.name).collect();
                            relations.insert(
                                relation_id,
                                if ours {
                                    Some(Columns::find(&names)?)
                                } else {
                                    None
                                },
                            );
                        }
                        LogicalReplicationMessage::Insert { relation_id, tuple } => {
                            let columns = relations.get(&relation_id).ok_or_else(|| {
                                format!("insert into relation {relation_id} before its description")
                            })?;
                            if let (Some(columns), Some(open)) = (columns, open.as_mut()) {
                                open.rows.push(columns.row(&tuple)?);
                            }
                        }
                        _ => {}
                    }
                }
                ReplicationEvent::Commit { end_lsn, .. } => {
                    let Some(mut committed) = open.take() else {
                        continue;
                    };
                    committed.end_lsn = end_lsn.as_u64();
                    if committed.end_lsn <= self.handed_on.max(settled) {
                        continue;
                    }
                    self.handed_on = committed.end_lsn;
                    if committed.rows.is_empty() {
                        self.settle_if_idle(&client, committed.end_lsn);
                        continue;
                    }
                    if self.out.send(committed).await.is_err() {
                        return Ok(());
                    }
                    self.wake.notify_one();
                }
                ReplicationEvent::KeepAlive {
                    wal_end,
                    reply_requested,
                    ..
                } => {
                    if open.is_none() {
                        self.settle_if_idle(&client, wal_end.as_u64());
                    }
                    let unsettled = self.shared.settled.load(Ordering::Acquire) < self.handed_on;
                    if reply_requested
                        && unsettled
                        && probed.is_none_or(|at| at.elapsed() >= SHUTDOWN_PROBE_INTERVAL)
                    {
                        probed = Some(Instant::now());
                        if let Err(error) = self.server_accepts_sessions().await {
                            return Err(format!(
                                "the server waits for transactions the relay has not settled and takes no session ({error}): shutting down; the session ends so it can stop"
                            ));
                        }
                    }
                }
                ReplicationEvent::Message { .. } => {}
                ReplicationEvent::StoppedAt { .. } => return Ok(()),
            }
        }
    }

    /// Whether the server still serves a regular session: a fast shutdown ends them first
    /// and refuses new ones. Undecided (`Ok`) when the probe takes longer than
    /// [`SHUTDOWN_PROBE_TIMEOUT`]: a busy pool is no shutdown.
    async fn server_accepts_sessions(&self) -> Result<(), String> {
        let probe = async {
            let client = self.config.db.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| super::one_line(&e))
        };
        tokio::time::timeout(SHUTDOWN_PROBE_TIMEOUT, probe)
            .await
            .unwrap_or(Ok(()))
    }

    /// With every handed-on transaction settled, WAL up to `position` holds nothing for the
    /// relay: confirm it, so the slot does not hold WAL written by other tables.
    fn settle_if_idle(&self, client: &ReplicationClient, position: u64) {
        let settled = self.shared.settled.load(Ordering::Acquire);
        if settled >= self.handed_on && position > settled {
            self.shared.settled.fetch_max(position, Ordering::AcqRel);
            client.update_applied_lsn(Lsn::from_u64(position));
        }
    }
}

/// Where the outbox's columns are in its pgoutput tuples.
#[derive(Debug, Clone, Copy)]
struct Columns {
    id: usize,
    topic: usize,
    partition_key: usize,
    envelope: usize,
}

impl Columns {
    fn find(names: &[&str]) -> Result<Columns, String> {
        let at = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| format!("the streamed keel_outbox has no column {name}"))
        };
        Ok(Columns {
            id: at("id")?,
            topic: at("topic")?,
            partition_key: at("partition_key")?,
            envelope: at("envelope")?,
        })
    }

    /// The row of an insert, streamed in binary format (`binary 'true'`): `id` as an
    /// 8-byte big-endian integer, text as UTF-8, `envelope` as its bytes.
    fn row(&self, tuple: &TupleData) -> Result<OutboxRow, String> {
        let value = |index: usize| -> Result<Option<&[u8]>, String> {
            let column = tuple
                .get_column(index)
                .ok_or_else(|| format!("an outbox insert without column {index}"))?;
            match column.data_type {
                b'b' | b't' => Ok(Some(column.as_bytes())),
                b'n' => Ok(None),
                other => Err(format!(
                    "an outbox insert with column {index} of kind {:?}",
                    other as char
                )),
            }
        };
        let required = |index: usize, name: &str| {
            value(index)?.ok_or_else(|| format!("an outbox insert with {name} NULL"))
        };
        let text = |bytes: &[u8], name: &str| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| format!("an outbox insert whose {name} is not UTF-8"))
        };
        let id_bytes: [u8; 8] = required(self.id, "id")?
            .try_into()
            .map_err(|_| "an outbox insert whose id is not 8 bytes".to_string())?;
        Ok(OutboxRow {
            id: i64::from_be_bytes(id_bytes),
            topic: text(required(self.topic, "topic")?, "topic")?,
            partition_key: value(self.partition_key)?
                .map(|key| text(key, "partition_key"))
                .transpose()?,
            envelope: required(self.envelope, "envelope")?.to_vec(),
            attempts: 0,
        })
    }
}
