//! `keel-sql`: Keel's application-database layer — the transactional inbox (a redelivered
//! event has its effects applied exactly once) and the transactional outbox with its relay
//! (an event is published if and only if the transaction that wrote it committed), on
//! SQLite ([`SqliteInbox`], [`SqliteOutbox`]) and, with the `postgres` feature, on
//! PostgreSQL; and the event store on SQLite ([`SqliteEventStore`], the
//! `keel_store::EventStore` port).
//!
//! It is the only Keel crate with SQL. It is not a transport (the relay publishes through
//! [`keel_core::PublishPort`]) and holds no router logic (the handlers it builds are ordinary
//! [`keel_runtime::Handler`]s). It also holds saga state ([`SqliteSagaStore`], and
//! `PgSagaStore` with `postgres`) and read models with their checkpoints
//! ([`SqliteProjection`], and `PgProjection` with `postgres`).
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
//! # use keel_runtime::{Route, Router};
//! # use keel_embedded::EmbeddedBus;
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
//! # The transactional outbox and its relay
//!
//! A state change and the event announcing it commit together or not at all: the service
//! writes the event into the `keel_outbox` table in its own transaction
//! ([`PgOutbox::enqueue`](crate::PgOutbox) with the `postgres` feature), and a relay
//! ([`RelayHandle`], or `keel relay`) publishes committed rows afterwards through any
//! transport implementing [`keel_core::PublishPort`] — the embedded log's
//! [`keel_runtime::Publisher`] today — and marks them published (or deletes them,
//! [`AfterPublish`]). Delivery is at-least-once: a relay that dies between the publish and
//! its commit publishes again; the inbox absorbs the duplicate.
//!
//! - **Order per partition key**, with any number of relays: enqueue serialises a key's
//!   writers so a key's ids follow commit order, and a relay claims a key whole under an
//!   advisory lock, reading its rows in a snapshot taken after the lock (the `postgres`
//!   module's `outbox.rs` has the argument in full). Different keys go in parallel.
//! - **No high-water mark**: a claim asks which rows are unpublished, so a row that commits
//!   below an id already relayed is found like any other.
//! - **Poison rows**: a row the transport *rejects* (too large, invalid) gets
//!   [`RelayOptions::rejected_attempts_max`] attempts, then moves to `keel_outbox_dead` with
//!   its reason and is copied to `<topic>.dlq` with the same `keel_dlq_*` headers as a
//!   consumer's dead letter (group [`OUTBOX_DEAD_LETTER_GROUP`]), so `keel dlq` and the
//!   dead-letter gauges show it. Later rows of its key then go on; other keys never wait.
//!   Transient failures never move a row aside; the row backs off and its key waits.
//! - **Metrics**: [`OutboxMetrics`] (backlog, age of the oldest unpublished row, dead rows,
//!   published and failed counts), registered into the caller's registry.
//! - **Change data capture** (feature `cdc`): `PgOutbox::cdc_relay` streams the table's
//!   inserts over logical replication (`pgoutput`, a slot, a publication) in commit order, the
//!   slot's position as the checkpoint; the `postgres` module's `cdc.rs` says when it can
//!   duplicate and how a slot holds WAL.
//! - **Failures**: a lost connection ends the batch uncommitted (its rows are claimed
//!   again); the relay retries with backoff and resumes by itself; `LISTEN` reconnects too.
//!
//! # PostgreSQL (feature `postgres`)
//!
//! [`PgDatabase::connect`](crate::PgDatabase) builds a `deadpool-postgres` pool over
//! `tokio-postgres` and applies the versioned migrations (`keel_schema_migrations`;
//! idempotent and safe when several processes start at once). [`PgInbox`](crate::PgInbox)
//! has the shape of [`SqliteInbox`]: `handler`/`handler_raw` build runtime handlers whose
//! async closure gets a [`PgTx`](crate::PgTx) (the transaction holding the
//! `(consumer, event id)` mark, inserted with `ON CONFLICT DO NOTHING`), and it implements
//! the [`Inbox`](keel_runtime::Inbox) port. `PgTx::enqueue` writes follow-up events to the
//! outbox in that same transaction. What differs from SQLite, honestly: no group commit
//! (PostgreSQL shares WAL flushes between concurrent commits, so events run concurrently
//! on the pool), and the closure is async.

#[cfg(feature = "conformance")]
pub mod conformance;
mod database;
mod error;
mod event_store;
mod inspect;
pub mod limits;
mod migrate;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
mod projection;
mod relay;
mod saga;
mod schema;
mod sqlite;
mod sqlite_outbox;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::OpenError;
pub use event_store::SqliteEventStore;
pub use inspect::{
    INSPECT_ROWS_MAX, InspectError, Inspection, OutboxOverview, SagaCount, SagaInstance,
    SagaOverview, StreamCategory, StreamOverview, inspect_sqlite,
};
pub use migrate::migrate_sqlite;
pub use outbox::{
    AfterPublish, Backlog, EnqueueError, OUTBOX_DEAD_LETTER_GROUP, OutboxMetrics, RelayOptionError,
    RelayOptions,
};
#[cfg(feature = "postgres")]
pub use postgres::{
    ApplyFuture, PG_SCHEMA_VERSION, PgDatabase, PgError, PgEventStore, PgInbox, PgOptions,
    PgOutbox, PgProjection, PgSagaStore, PgTx, TxFuture,
};
#[cfg(feature = "cdc")]
pub use postgres::{CdcError, CdcMetrics, CdcSlot};
pub use projection::{ApplyError, SqliteProjection};
pub use relay::RelayHandle;
pub use saga::SqliteSagaStore;
pub use sqlite::{InboxStats, SqliteInbox, SqliteInboxOptions, SqliteTx};
pub use sqlite_outbox::SqliteOutbox;
