//! `keel-embedded`: Keel's embedded transport — the ports of `keel-core` implemented over
//! the in-process storage engine (`keel-log`), so the runtime's routers and publishers run
//! on one machine with zero setup, and the same service code moves to Kafka (or another
//! engine) by changing one line.
//!
//! - [`EmbeddedBus`]: one [`keel_log::Log`] plus the wake-ups, the group coordinator, the
//!   clock and the metrics its consumers share. It is the publishing, consuming and
//!   administrative halves of the port at once; [`EmbeddedBus::transport`] (or
//!   `Router::new(&bus)`) hands it to the runtime.
//! - Consumer groups in process (`group.rs`): generations, round-robin assignment, session
//!   timeouts, fencing; a partition moves only after its old owner drained and released it.
//! - Lag read from the log (`lag.rs`, `gauges.rs`): events and age of the oldest unconsumed
//!   one, for `keel groups lag` and the `keel_consumer_lag_*` gauges alike.
//! - [`admin`]: the operator tools' library over a log (groups, lag, resets, dead letters,
//!   replay, purge, the audit log).
//!
//! ```
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use keel_embedded::EmbeddedBus;
//! use keel_runtime::{Handler, Route, Router};
//! # let dir = tempfile::tempdir()?;
//! let log = Arc::new(keel_log::Log::open(dir.path())?);
//! log.create_topic("orders", keel_log::TopicConfig::new(2))?;
//! let bus = EmbeddedBus::new(log);
//! let router = Router::new(&bus)
//!     .route(Route::new("orders", "billing", Handler::raw("bill", |_, _| async { Ok(()) })))
//!     .start()?;
//! bus.publisher()
//!     .publish("orders", keel_core::Event::new("/orders", "order.placed"))
//!     .await?;
//! router.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Not here: the router and its middleware (`keel-runtime`), SQL, sockets.

pub mod admin;
mod bus;
mod coalesce;
mod consume;
mod gauges;
mod group;
mod lag;
pub mod limits;
mod publish;

pub use bus::EmbeddedBus;
