//! `keel-demo`: the seeds' order system on Keel's public API (the `keel` facade) — what
//! `keel demo` runs, and the proof that the pieces compose.
//!
//! Six services in one process on the embedded defaults, each with its own SQLite database:
//!
//! | service | pattern |
//! |---|---|
//! | orders | event-sourced `Order` aggregate (`keel.events`), the order saga (orchestration, `orders.db`), the order-summary projection |
//! | inventory | reservations per order + outbox (`inventory` topic); marks stock shipped from the `shipping` topic through its inbox |
//! | payment | one charge per order + outbox (`payments`); declines some cards; a simulated provider outage fails transiently |
//! | shipping | one shipment per order + outbox (`shipping`) |
//! | email | reacts to shipments and declines through its inbox (choreography); invalid addresses are poison → dead letters |
//! | analytics | counts every fact by type through its inbox |
//!
//! The saga calls the three services' command APIs in-process (each idempotent by order and
//! command id); the services announce what they did as facts through their outboxes, and
//! the reacting services consume them from topics. [`run`] ends with a [`Summary`] whose
//! [`Summary::violations`] are the self-check.

mod database;
mod error;
pub mod events;
mod inventory;
mod notify;
mod order;
mod payment;
mod run;
mod shipping;
mod summary;
mod timeline;

pub use error::DemoError;
pub use inventory::ReservationCounts;
pub use order::{Order, OrderCommand, OrderCounts, OrderData, OrderEvent, OrderStatus};
pub use run::{DemoConfig, ORDERS_MAX, run};
pub use summary::Summary;
pub use timeline::{Entry, Timeline};
