//! The transactional inbox on PostgreSQL: [`PgInbox`], the handlers it builds and the
//! transaction they see ([`PgTx`]).
//!
//! Per event: take a pooled connection, `BEGIN`, insert the mark `(consumer, event id)` with
//! `ON CONFLICT DO NOTHING`; zero rows inserted means a duplicate (roll back, `f` is not
//! called); else run `f` in the transaction and commit, or roll back if it fails. There is
//! no group commit here: PostgreSQL already shares WAL flushes between concurrent commits,
//! so events run concurrently on the pool. Two racing deliveries of one event are safe:
//! the second insert waits for the first transaction's uncommitted key, then inserts
//! nothing if it committed.
//!
//! | what happens | the event's answer | effects |
//! |---|---|---|
//! | mark inserted, `f` Ok, COMMIT ok | Ok | writes + mark durable |
//! | mark exists already | Ok (duplicate), `f` not called | none |
//! | `f` returns Err | that Err | writes and mark rolled back |
//! | any database call fails (connection lost, serialization failure, deadlock) | transient Err | rolled back by the server |
//! | the attempt is cancelled (timeout, shutdown) | none | rolled back (the transaction is dropped) |
//!
//! A COMMIT whose answer is lost (connection dropped after the server committed) is
//! reported as a transient error; the redelivery then finds the mark.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use keel_core::BoxFuture;
use keel_core::{Event, EventType};
use keel_runtime::{Context, Handler, HandlerError, HandlerResult, Inbox, InboxError};

use super::outbox::insert;
use super::schema::{COUNT_MARKS, DELETE_MARKS_BEFORE, INSERT_MARK, SELECT_MARK};
use super::{PgDatabase, one_line};
use crate::limits::CLEANUP_DELETE_MAX;
use crate::outbox::{EnqueueError, envelope};

/// The transactional inbox in a [`PgDatabase`]. Cheap to clone. The same shape as
/// [`SqliteInbox`](crate::SqliteInbox): `handler`/`handler_raw` build runtime handlers,
/// and it implements the [`Inbox`] port for handlers whose effects live elsewhere.
#[derive(Debug, Clone)]
pub struct PgInbox {
    db: PgDatabase,
}

/// The open transaction a handler of [`PgInbox::handler`] writes in, plus the event's
/// [`Context`]. Derefs to [`tokio_postgres::Transaction`] for `execute`, `query`, ...
///
/// The transaction belongs to the inbox: do not `COMMIT` or `ROLLBACK` it yourself.
pub struct PgTx<'a> {
    transaction: &'a tokio_postgres::Transaction<'a>,
    context: &'a Context,
}

/// A boxed, sendable future borrowing the handler's transaction for `'t`.
pub type TxFuture<'t> = BoxFuture<'t, HandlerResult>;

impl PgInbox {
    pub(crate) fn new(db: PgDatabase) -> PgInbox {
        PgInbox { db }
    }

    /// A handler of typed events `T` whose effects are exactly-once: per event, `f` runs
    /// inside the transaction that records the event as processed by this consumer
    /// (`<group>/<name>`). Write `f` as `|tx, event| Box::pin(async move { ... })`.
    ///
    /// Do not also put this inbox on the route with `Route::with_inbox`.
    ///
    /// Cancel safety: a cancelled attempt drops the transaction, which rolls back; the
    /// redelivery runs `f` again.
    pub fn handler<T, F>(&self, name: impl Into<String>, f: F) -> Handler
    where
        T: EventType + Send + 'static,
        F: for<'t, 'c> Fn(&'t mut PgTx<'c>, T) -> TxFuture<'t> + Send + Sync + 'static,
    {
        Handler::typed(name, self.transactional(f))
    }

    /// As [`PgInbox::handler`], for raw envelopes of any type.
    pub fn handler_raw<F>(&self, name: impl Into<String>, f: F) -> Handler
    where
        F: for<'t, 'c> Fn(&'t mut PgTx<'c>, Event) -> TxFuture<'t> + Send + Sync + 'static,
    {
        Handler::raw(name, self.transactional(f))
    }

    fn transactional<V, F>(
        &self,
        f: F,
    ) -> impl Fn(V, Context) -> BoxFuture<'static, HandlerResult> + Send + Sync + 'static
    where
        V: Send + 'static,
        F: for<'t, 'c> Fn(&'t mut PgTx<'c>, V) -> TxFuture<'t> + Send + Sync + 'static,
    {
        let db = self.db.clone();
        let f = Arc::new(f);
        move |value: V, ctx: Context| {
            let db = db.clone();
            let f = f.clone();
            Box::pin(async move { handle(&db, &ctx, value, f.as_ref()).await })
        }
    }

    /// How many (consumer, event id) marks the database holds.
    pub async fn processed_count(&self) -> Result<u64, InboxError> {
        let client = self.db.client().await.map_err(inbox_error)?;
        let count: i64 = client
            .query_one(COUNT_MARKS, &[])
            .await
            .map_err(|e| inbox_error(one_line(&e)))?
            .get(0);
        Ok(count.max(0) as u64)
    }

    /// Deletes at most [`CLEANUP_DELETE_MAX`] marks recorded before `cutoff` and returns
    /// how many; call again while it returns the maximum. Keep marks longer than any
    /// redelivery can come (the log's retention, the oldest dead letter anyone may replay).
    pub async fn delete_processed_before(&self, cutoff: SystemTime) -> Result<u64, InboxError> {
        let cutoff_ms = cutoff
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64);
        let client = self.db.client().await.map_err(inbox_error)?;
        client
            .execute(DELETE_MARKS_BEFORE, &[&cutoff_ms, &CLEANUP_DELETE_MAX])
            .await
            .map_err(|e| inbox_error(one_line(&e)))
    }
}

/// One event: mark, `f`, commit (see the module docs).
async fn handle<V, F>(db: &PgDatabase, ctx: &Context, value: V, f: &F) -> HandlerResult
where
    F: for<'t, 'c> Fn(&'t mut PgTx<'c>, V) -> TxFuture<'t> + Send + Sync,
{
    let transient = |step: &str, e: &dyn std::error::Error| {
        HandlerError::transient(format!("postgres inbox: {step}: {}", one_line(e)))
    };
    let consumer = format!("{}/{}", ctx.group(), ctx.handler());
    let mut client = db
        .client()
        .await
        .map_err(|e| HandlerError::transient(format!("postgres inbox: connect: {e}")))?;
    let transaction = client
        .transaction()
        .await
        .map_err(|e| transient("begin", &e))?;
    let inserted = transaction
        .execute(INSERT_MARK, &[&consumer, &ctx.event().id])
        .await
        .map_err(|e| transient("insert mark", &e))?;
    if inserted == 0 {
        tracing::debug!("duplicate event dropped by the postgres inbox");
        return Ok(());
    }
    let outcome = {
        let mut tx = PgTx {
            transaction: &transaction,
            context: ctx,
        };
        f(&mut tx, value).await
    };
    match outcome {
        Ok(()) => transaction
            .commit()
            .await
            .map_err(|e| transient("commit", &e)),
        Err(error) => {
            let _ = transaction.rollback().await;
            Err(error)
        }
    }
}

fn inbox_error(message: impl std::fmt::Display) -> InboxError {
    InboxError(format!("postgres inbox: {message}"))
}

impl Inbox for PgInbox {
    fn is_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(inbox_error)?;
            let rows = client
                .query(SELECT_MARK, &[&consumer, &event_id])
                .await
                .map_err(|e| inbox_error(one_line(&e)))?;
            Ok(!rows.is_empty())
        })
    }

    /// The mark in a transaction of its own, *after* the handler's effects happened
    /// elsewhere: no stronger than those effects' own idempotence. Prefer
    /// [`PgInbox::handler`] when the effects are in this database.
    fn mark_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<(), InboxError>> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(inbox_error)?;
            client
                .execute(INSERT_MARK, &[&consumer, &event_id])
                .await
                .map_err(|e| inbox_error(one_line(&e)))?;
            Ok(())
        })
    }
}

impl<'a> PgTx<'a> {
    /// The transaction the event's mark is in.
    pub fn transaction(&self) -> &tokio_postgres::Transaction<'a> {
        self.transaction
    }

    /// The event being handled, its attempt number, topic, group.
    pub fn context(&self) -> &Context {
        self.context
    }

    /// Enqueues `event` for `topic` in the outbox, in this transaction, as caused by the
    /// handled event: it is published (by a relay) if and only if this event's effects
    /// commit. This closes the gap [`SqliteTx::publish_after_commit`](crate::SqliteTx)
    /// leaves.
    pub async fn enqueue(&self, topic: &str, event: Event) -> Result<(), EnqueueError> {
        let event = event.caused_by(self.context.event());
        insert(self.transaction, vec![envelope(topic, &event)?]).await
    }
}

impl<'a> std::ops::Deref for PgTx<'a> {
    type Target = tokio_postgres::Transaction<'a>;

    fn deref(&self) -> &tokio_postgres::Transaction<'a> {
        self.transaction
    }
}

impl std::fmt::Debug for PgTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTx")
            .field("event_id", &self.context.event().id)
            .finish()
    }
}
