//! `keel-store`: event sourcing for Keel — an event store of streams appended with an
//! expected version, read by stream, globally and by category, followed by catch-up
//! subscriptions, with snapshots; and aggregates loaded and decided through a repository.
//!
//! The port is [`EventStore`]; the embedded backend, [`EmbeddedStore`], keeps streams in a
//! `keel-log` topic with a per-stream index rebuilt on open. SQL backends (SQLite, and
//! PostgreSQL at scale) live in `keel-sql`, the only crate with SQL, and pass the same
//! conformance suite (feature `conformance`, module `conformance`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use keel_store::{EmbeddedStore, EventStore, ExpectedVersion, Direction};
//! let log = keel_log::Log::open("keel-data")?;
//! let store = EmbeddedStore::open(&log)?;
//! let placed = keel_core::Event::new("/orders", "order.placed");
//! store.append("order-42", ExpectedVersion::NoStream, vec![placed]).await?;
//! let events = store.read_stream("order-42", 1, Direction::Forward, 100).await?;
//! assert_eq!(events[0].version, 1);
//! # Ok(()) }
//! ```
//!
//! Words: a stream's **version** is its number of events (an event's version is its number
//! in the stream, from 1); a **position** is an event's place in the whole store's order.
//! Neither is a log offset, though the embedded backend uses offsets as positions.

mod aggregate;
#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
mod error;
pub mod limits;
mod store;
mod stream;
mod subscription;

pub use aggregate::{
    Aggregate, AsOf, Executed, Loaded, Repository, RepositoryError, decode as decode_event,
};
pub use embedded::{EmbeddedStore, EmbeddedStoreOptions};
pub use error::{AppendError, ConcurrencyConflict, InvalidStream, OpenError, ReadError, one_line};
pub use store::{AllFilter, EventStore, check_append, version_range, wait_for_head};
pub use stream::{
    Appended, Direction, ExpectedVersion, RecordedEvent, Snapshot, category, validate_stream_id,
};
pub use subscription::Subscription;
