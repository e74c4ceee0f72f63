//! The outbox on PostgreSQL: [`PgOutbox::enqueue`] inside the caller's transaction, and the
//! relay's claim and write-back (`PgStore`).
//!
//! # Order per partition key, with any number of relays
//!
//! Two rules together keep the events of one key in the order of their outbox ids, and
//! that order equal to the order in which their transactions committed:
//!
//! 1. **Enqueue serialises a key's writers.** Enqueuing an event with a partition key takes
//!    the transaction-scoped advisory lock `(ENQUEUE_LOCK_CLASS, hashtext(key))` before the
//!    insert and holds it until the transaction ends. A second transaction enqueuing the
//!    same key waits until the first committed or rolled back, and only then draws its id.
//!    So no row of a key can commit *below* a committed row of that key: the rows of a key
//!    that a relay can see are always a prefix of the key's eventual rows. (Rows of
//!    *different* keys still commit out of id order; see 3.)
//! 2. **A relay claims a key whole, in two statements.** First it takes the advisory lock
//!    `(RELAY_LOCK_CLASS, hashtext(key))` of keys whose oldest unpublished row is due
//!    (`schema::CLAIM_KEYS`, with `pg_try_advisory_xact_lock`, so a key another relay is
//!    publishing is skipped, not waited for). Then, in a *new* statement and so a snapshot
//!    taken after the locks were granted, it reads those keys' unpublished rows in id order
//!    (`schema::CLAIM_KEYED_ROWS`; no row locks: the key locks keep other relays off). It
//!    publishes a key's rows one after the other, stops the key at its first failure, and
//!    holds the lock until it has written the outcome and committed. The next relay to lock the key therefore sees everything before as
//!    published and continues after it.
//!
//!    Why two statements: in one statement (lock taken per row while scanning), a relay
//!    can fail the lock on a key's early rows, the holder commits, and the same scan then
//!    gets the lock on the key's *later* rows — publishing them before the early ones that
//!    the holder had not claimed. The parallel-relays test caught exactly that.
//! 3. **No high-water mark.** The claim always asks "which rows are unpublished", never
//!    "which ids are above the last one relayed". A transaction that drew id 5, and
//!    committed after id 6 was relayed, leaves a row 5 that the next claim finds like any
//!    other. (This is how relays that remember a position lose events.)
//!
//! A relay that dies mid-batch (crash, `kill -9`, `pg_terminate_backend`) has its
//! transaction rolled back by the server: its locks go, its rows are unpublished again, and
//! the next claim republishes them in order. Consumers see a duplicate, never a gap or a
//! reordering.
//!
//! Rows without a partition key have no order: they are claimed by row lock alone.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Object;
use keel_core::BoxFuture;
use keel_core::{Event, PublishPort};
use tokio::sync::Notify;

use super::listen::Listener;
use super::schema::{
    CLAIM_KEYED_ROWS, CLAIM_KEYLESS_ROWS, CLAIM_KEYS, DELETE_PUBLISHED, DELETE_PUBLISHED_BEFORE,
    ENQUEUE_LOCK_CLASS, INSERT_OUTBOX_ROWS, LOCK_KEYS_FOR_ENQUEUE, MARK_DEAD_COPIED,
    MARK_PUBLISHED, MOVE_TO_DEAD, RECORD_FAILURE, RELAY_LOCK_CLASS, SELECT_BACKLOG,
    SELECT_DEAD_TO_COPY,
};
#[cfg(feature = "cdc")]
use super::schema::{DELETE_PUBLISHED_RETURNING, MARK_PUBLISHED_RETURNING};
use super::{PgDatabase, one_line};
use crate::limits::CLEANUP_DELETE_MAX;
use crate::outbox::{
    AfterPublish, Backlog, DeadRow, EnqueueError, Envelope, OutboxMetrics, OutboxRow,
    RelayOptionError, RelayOptions, Settlement, check_batch, envelope,
};
use crate::relay::{self, Claimed, OutboxStore, RelayHandle, StoreError};

/// The transactional outbox in a [`PgDatabase`]: events enqueued in the caller's
/// transaction commit with its other writes or not at all, and a relay publishes them.
///
/// ```no_run
/// # async fn run(db: keel_sql::PgDatabase, event: keel_core::Event) -> Result<(), Box<dyn std::error::Error>> {
/// let outbox = db.outbox();
/// let mut client = db.pool().get().await?;
/// let tx = client.transaction().await?;
/// tx.execute("UPDATE orders SET state = 'placed' WHERE id = $1", &[&"o-7"]).await?;
/// outbox.enqueue(&tx, "orders", &event).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgOutbox {
    db: PgDatabase,
}

impl PgOutbox {
    pub(crate) fn new(db: PgDatabase) -> PgOutbox {
        PgOutbox { db }
    }

    /// The database holding this outbox.
    #[cfg(feature = "cdc")]
    pub(super) fn database(&self) -> &PgDatabase {
        &self.db
    }

    /// Stores `event` for `topic` in the transaction `tx`. Validates the event first (a
    /// bad event is refused here, in the caller's transaction, not found by the relay
    /// later) and gives it a root trace if it has none. With a partition key, the
    /// transaction holds that key's enqueue lock until it ends (see the module docs).
    ///
    /// Cancel safety: dropping the future may leave the insert done or not; roll the
    /// transaction back.
    pub async fn enqueue(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        topic: &str,
        event: &Event,
    ) -> Result<(), EnqueueError> {
        insert(tx, vec![envelope(topic, event)?]).await
    }

    /// As [`PgOutbox::enqueue`] for several events at once (one statement), keeping their
    /// order; at most [`ENQUEUE_BATCH_MAX`](crate::limits::ENQUEUE_BATCH_MAX).
    pub async fn enqueue_batch(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[(&str, Event)],
    ) -> Result<(), EnqueueError> {
        check_batch(events.len())?;
        let envelopes = events
            .iter()
            .map(|(topic, event)| envelope(topic, event))
            .collect::<Result<Vec<_>, _>>()?;
        insert(tx, envelopes).await
    }

    /// Starts a relay publishing this outbox through `port`, with fresh metrics
    /// ([`RelayHandle::metrics`]).
    pub fn relay(
        &self,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
    ) -> Result<RelayHandle, RelayOptionError> {
        self.relay_with_metrics(port, options, OutboxMetrics::new())
    }

    /// As [`PgOutbox::relay`], updating `metrics` (registered by the caller where its other
    /// metrics live). Call inside a tokio runtime.
    pub fn relay_with_metrics(
        &self,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
        metrics: OutboxMetrics,
    ) -> Result<RelayHandle, RelayOptionError> {
        options.validate()?;
        let wake = Arc::new(Notify::new());
        let listener = options.wake_on_notify.then(|| {
            Listener::start(
                self.db.config().clone(),
                self.db.schema().to_string(),
                wake.clone(),
                options.retry_delay_min,
                options.retry_delay_max,
            )
        });
        let store = PgStore {
            db: self.db.clone(),
            wake,
            _listener: listener,
        };
        Ok(relay::start(store, port, options, metrics))
    }

    /// The backlog now (pending rows, age of the oldest, dead rows).
    pub async fn backlog(&self) -> Result<Backlog, String> {
        let client = self.db.client().await?;
        backlog(&client).await.map_err(|e| e.0)
    }
}

/// Inserts `envelopes` after taking the enqueue locks of their keys.
pub(crate) async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    envelopes: Vec<Envelope>,
) -> Result<(), EnqueueError> {
    if envelopes.is_empty() {
        return Ok(());
    }
    let database = |e: tokio_postgres::Error| EnqueueError::Database(one_line(&e));
    let keys: Vec<&str> = envelopes
        .iter()
        .filter_map(|e| e.partition_key.as_deref())
        .collect();
    if !keys.is_empty() {
        tx.execute(LOCK_KEYS_FOR_ENQUEUE, &[&ENQUEUE_LOCK_CLASS, &keys])
            .await
            .map_err(database)?;
    }
    let topics: Vec<&str> = envelopes.iter().map(|e| e.topic.as_str()).collect();
    let partition_keys: Vec<Option<&str>> = envelopes
        .iter()
        .map(|e| e.partition_key.as_deref())
        .collect();
    let ids: Vec<&str> = envelopes.iter().map(|e| e.event_id.as_str()).collect();
    let bytes: Vec<&[u8]> = envelopes.iter().map(|e| e.bytes.as_slice()).collect();
    tx.execute(
        INSERT_OUTBOX_ROWS,
        &[&topics, &partition_keys, &ids, &bytes],
    )
    .await
    .map_err(database)?;
    Ok(())
}

/// The relay's view of the PostgreSQL outbox.
pub(super) struct PgStore {
    db: PgDatabase,
    wake: Arc<Notify>,
    /// Stops listening when the relay ends (`None`: polling only).
    _listener: Option<Listener>,
}

#[cfg(feature = "cdc")]
impl PgStore {
    /// A store that does not listen (the CDC relay's, woken by its stream through `wake`).
    pub(super) fn new(db: PgDatabase, wake: Arc<Notify>) -> PgStore {
        PgStore {
            db,
            wake,
            _listener: None,
        }
    }

    pub(super) fn database(&self) -> &PgDatabase {
        &self.db
    }

    /// Writes `settlements` in a transaction of their own (the CDC relay's rows were never
    /// claimed by one) and returns those whose row this session does not see yet: the
    /// stream can deliver a transaction a moment before its commit is visible to other
    /// sessions, and an update or delete would then miss the row.
    pub(super) async fn write_back_visible(
        &self,
        settlements: &[Settlement],
        after_publish: AfterPublish,
    ) -> Result<Vec<Settlement>, StoreError> {
        let client = self.db.client().await.map_err(StoreError)?;
        let result = write_back_visible(&client, settlements, after_publish).await;
        result.map_err(|error| {
            let _ = Object::take(client);
            store_error("write back", &error)
        })
    }
}

/// [`PgStore::write_back_visible`]'s statements: published rows in one statement that
/// returns the ids it found, the rare failures one by one, committed without waiting for
/// the WAL flush (why that is safe for the CDC relay: `cdc.rs`, "The rows").
#[cfg(feature = "cdc")]
async fn write_back_visible(
    client: &Object,
    settlements: &[Settlement],
    after_publish: AfterPublish,
) -> Result<Vec<Settlement>, tokio_postgres::Error> {
    let published = published_ids(settlements);
    client
        .batch_execute("BEGIN; SET LOCAL synchronous_commit = off")
        .await?;
    let mut found = std::collections::HashSet::new();
    if !published.is_empty() {
        let sql = match after_publish {
            AfterPublish::MarkPublished => MARK_PUBLISHED_RETURNING,
            AfterPublish::Delete => DELETE_PUBLISHED_RETURNING,
        };
        for row in client.query(sql, &[&published]).await? {
            found.insert(row.get::<_, i64>(0));
        }
    }
    let mut missed = Vec::new();
    for settlement in settlements {
        let changed = match settlement {
            Settlement::Published { id } => u64::from(found.contains(id)),
            Settlement::Retry { id, error, delay } => {
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                client
                    .execute(RECORD_FAILURE, &[id, error, &delay_ms])
                    .await?
            }
            Settlement::Dead { id, error, .. } => {
                client.execute(MOVE_TO_DEAD, &[id, error]).await?
            }
        };
        if changed == 0 {
            missed.push(settlement.clone());
        }
    }
    client.batch_execute("COMMIT").await?;
    Ok(missed)
}

/// A claimed batch: a connection with the claiming transaction open.
pub(super) struct PgClaim {
    client: Object,
}

fn store_error(step: &str, error: &dyn std::error::Error) -> StoreError {
    StoreError(format!("postgres outbox: {step}: {}", one_line(error)))
}

impl OutboxStore for PgStore {
    type Claim = PgClaim;

    /// A claim holds its keys' locks and its keyless rows' row locks until it commits.
    const CLAIMS_OVERLAP: bool = true;

    fn claim(&self, limit: usize) -> BoxFuture<'_, Result<Claimed<PgClaim>, StoreError>> {
        Box::pin(async move {
            let client = self
                .db
                .client()
                .await
                .map_err(|e| StoreError(format!("postgres outbox: connect: {e}")))?;
            match claim_rows(&client, limit).await {
                Ok(rows) => Ok((PgClaim { client }, rows)),
                Err(error) => {
                    // Never hand a connection with a transaction open back to the pool.
                    let _ = Object::take(client);
                    Err(store_error("claim", &error))
                }
            }
        })
    }

    fn finish(
        &self,
        claim: PgClaim,
        settlements: Vec<Settlement>,
        after_publish: AfterPublish,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let client = claim.client;
            let result = write_back(&client, &settlements, after_publish).await;
            match result {
                Ok(()) => Ok(()),
                Err(error) => {
                    let _ = Object::take(client);
                    Err(store_error("write back", &error))
                }
            }
        })
    }

    fn dead_rows_to_copy(&self, limit: i64) -> BoxFuture<'_, Result<Vec<DeadRow>, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(StoreError)?;
            let rows = client
                .query(SELECT_DEAD_TO_COPY, &[&limit])
                .await
                .map_err(|e| store_error("read dead rows", &e))?;
            Ok(rows
                .iter()
                .map(|row| DeadRow {
                    id: row.get(0),
                    topic: row.get(1),
                    event_id: row.get(2),
                    envelope: row.get(3),
                    attempts: row.get::<_, i32>(4).max(0) as u32,
                    error: row.get(5),
                    first_failure_ms: row.get(6),
                    dead_at_ms: row.get(7),
                })
                .collect())
        })
    }

    fn dead_row_copied(&self, id: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(StoreError)?;
            client
                .execute(MARK_DEAD_COPIED, &[&id])
                .await
                .map_err(|e| store_error("mark dead row copied", &e))?;
            Ok(())
        })
    }

    fn backlog(&self) -> BoxFuture<'_, Result<Backlog, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(StoreError)?;
            backlog(&client).await
        })
    }

    fn delete_published_before(&self, age: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(StoreError)?;
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            client
                .execute(DELETE_PUBLISHED_BEFORE, &[&age_ms, &CLEANUP_DELETE_MAX])
                .await
                .map_err(|e| store_error("delete published rows", &e))
        })
    }

    fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

/// The claim's statements (module docs, rule 2), in one transaction left open.
async fn claim_rows(
    client: &Object,
    limit: usize,
) -> Result<Vec<OutboxRow>, tokio_postgres::Error> {
    let limit = limit as i64;
    // Keys are found among the oldest rows only, so one claim costs O(window), not
    // O(backlog), however few keys the backlog has.
    let window = limit.saturating_mul(4);
    client.batch_execute("BEGIN").await?;
    let locked = client
        .query(
            &client.prepare_cached(CLAIM_KEYS).await?,
            &[&limit, &RELAY_LOCK_CLASS, &window],
        )
        .await?;
    let keys: Vec<String> = locked.iter().map(|row| row.get(0)).collect();
    let mut rows = Vec::new();
    if let Some(first) = locked.first() {
        let (lowest, highest): (i64, i64) = (first.get(1), first.get(2));
        rows = client
            .query(
                &client.prepare_cached(CLAIM_KEYED_ROWS).await?,
                &[&keys, &limit, &highest, &lowest],
            )
            .await?;
    }
    let room = limit - rows.len() as i64;
    if room > 0 {
        rows.extend(
            client
                .query(&client.prepare_cached(CLAIM_KEYLESS_ROWS).await?, &[&room])
                .await?,
        );
    }
    let mut rows: Vec<OutboxRow> = rows
        .iter()
        .map(|row| OutboxRow {
            id: row.get(0),
            topic: row.get(1),
            partition_key: row.get(2),
            envelope: row.get(3),
            attempts: row.get::<_, i32>(4).max(0) as u32,
        })
        .collect();
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}

/// Writes the settlements of a batch and commits; the caller drops the connection on error.
async fn write_back(
    client: &Object,
    settlements: &[Settlement],
    after_publish: AfterPublish,
) -> Result<(), tokio_postgres::Error> {
    let published = published_ids(settlements);
    if !published.is_empty() {
        let sql = match after_publish {
            AfterPublish::MarkPublished => MARK_PUBLISHED,
            AfterPublish::Delete => DELETE_PUBLISHED,
        };
        client.execute(sql, &[&published]).await?;
    }
    for settlement in settlements {
        match settlement {
            Settlement::Published { .. } => {}
            Settlement::Retry { id, error, delay } => {
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                client
                    .execute(RECORD_FAILURE, &[id, error, &delay_ms])
                    .await?;
            }
            Settlement::Dead { id, error, .. } => {
                client.execute(MOVE_TO_DEAD, &[id, error]).await?;
            }
        }
    }
    client.batch_execute("COMMIT").await
}

/// The ids of the rows published in `settlements`.
fn published_ids(settlements: &[Settlement]) -> Vec<i64> {
    settlements
        .iter()
        .filter_map(|s| match s {
            Settlement::Published { id } => Some(*id),
            _ => None,
        })
        .collect()
}

async fn backlog(client: &Object) -> Result<Backlog, StoreError> {
    let row = client
        .query_one(SELECT_BACKLOG, &[])
        .await
        .map_err(|e| store_error("measure backlog", &e))?;
    Ok(Backlog {
        pending: row.get::<_, i64>(0).max(0) as u64,
        oldest_age_ms: row.get::<_, i64>(1).max(0) as u64,
        dead: row.get::<_, i64>(2).max(0) as u64,
    })
}
