//! `keel-sql`: Keel's application-database layer — the transactional inbox on SQLite
//! ([`SqliteInbox`]), so that a redelivered event has its effects applied exactly once, and
//! the event store on SQLite ([`SqliteEventStore`], the `keel_store::EventStore` port).
//!
//! It is the only Keel crate with SQL. It is not a transport, holds no router logic (the
//! handlers it builds are ordinary [`keel_runtime::Handler`]s), and does not yet hold the
//! outbox, the event store, projection checkpoints, saga state or PostgreSQL (issue 4 and
//! later; the plan is below).
//!
//! # The promise
//!
//! At-least-once delivery (the runtime's) plus a mark in the same transaction as the effects
//! gives exactly-once *effects* for what the transaction covers: the handler's writes to this
//! database. Nothing else: an email sent or an HTTP call made from the handler happens once
//! per attempt, and follow-up events published with [`SqliteTx::publish_after_commit`] are
//! published at most once (see there).
//!
//! ```no_run
//! # use keel_core::EventType;
//! # use keel_runtime::{EmbeddedBus, Route, Router};
//! # #[derive(serde::Deserialize, serde::Serialize)]
//! # struct Deposited { account: String, amount: i64 }
//! # impl EventType for Deposited { const TYPE: &'static str = "bank.deposited"; const VERSION: u32 = 1; }
//! # async fn run(bus: EmbeddedBus) -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = keel_sql::SqliteInbox::open("app.db")?;
//! let apply = inbox.handler("apply", |tx, deposit: Deposited| {
//!     tx.execute(
//!         "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
//!         (deposit.amount, &deposit.account),
//!     )?;
//!     Ok(())
//! });
//! let _router = Router::new(&bus).route(Route::new("deposits", "ledger", apply)).start()?;
//! # Ok(()) }
//! ```
//!
//! # Why a handler adapter, and why group commit
//!
//! `rusqlite` is synchronous and a SQLite database has one writer, so the inbox is not a
//! middleware step inside the runtime but a way to build a [`Handler`](keel_runtime::Handler)
//! whose body runs on a blocking thread inside the inbox's transaction (the `sqlite` module
//! shows the exact statements and a decision table). Events handled at once share one
//! transaction — each in its own savepoint, so one event's failure undoes only its own
//! writes and mark — and so share one fsync. Durability per event (`synchronous = FULL`)
//! then costs one fsync per *batch*, which is what makes tens of thousands of durable
//! events per second possible on one disk.
//!
//! Measured on the 2-core development machine (ext4, `fsync` per commit), release build,
//! `examples/inbox_throughput.rs` (100,000 events over 8 partitions and 10,000 keys, each an
//! `UPDATE` plus its mark): about 29,000–32,000 events/s with group commit (~300 events per
//! commit) against 1,400–2,100 events/s with one commit per event.
//!
//! The consumer recorded with each mark is `<group>/<handler>`, the same name the runtime
//! gives the [`Inbox`](keel_runtime::Inbox) port, so one database serves every route and two
//! handlers of one event never shadow each other. [`SqliteInbox`] also implements that port
//! (a separate, non-transactional mark) for handlers whose effects live elsewhere.
//!
//! # Plan: the PostgreSQL inbox beside it (issue 4)
//!
//! `PgInbox` (on `tokio-postgres` + `deadpool-postgres`, or `sqlx` without macros) keeps this
//! shape: `open(url)` applies the same versioned migrations (`keel_schema_migrations`,
//! `keel_inbox (consumer, event_id, handled_at_ms)`), `handler(name, f)` /
//! `handler_raw(name, f)` build runtime handlers, and `processed_count`,
//! `delete_processed_before`, `stats` and the `Inbox` port mean the same. What differs is
//! honest, not hidden:
//!
//! - `f` is async and receives `&mut PgTx<'_>` (the driver's transaction plus the
//!   [`Context`](keel_runtime::Context)), as `for<'t> Fn(&'t mut PgTx<'_>, T) -> BoxFuture<'t,
//!   HandlerResult>`. Per event: take a pooled connection, `BEGIN`, `INSERT ... ON CONFLICT
//!   DO NOTHING`, zero rows → duplicate (`ROLLBACK`, `f` not called), else `f` then `COMMIT`.
//! - No group commit in Keel: PostgreSQL already shares WAL flushes between concurrent
//!   commits, so events run concurrently on the pool. Two racing deliveries of one event
//!   are safe because the second `INSERT` waits on the first's uncommitted key and then
//!   does nothing.
//! - Errors map by SQLSTATE: serialization failure, deadlock, connection loss → transient;
//!   the rest as `f` says.
//!
//! Both then pass one inbox conformance suite (the tests of this crate, lifted), with the
//! capability differences listed. The outbox will add `enqueue` to `SqliteTx`/`PgTx`, so
//! follow-up events commit with the effects and `publish_after_commit` becomes the weaker
//! option it is documented as.

mod database;
mod error;
mod event_store;
pub mod limits;
mod projection;
mod schema;
mod sqlite;

pub use error::OpenError;
pub use event_store::SqliteEventStore;
pub use projection::{ApplyError, SqliteProjection};
pub use sqlite::{InboxStats, SqliteInbox, SqliteInboxOptions, SqliteTx};
