//! `keel-demo`: the seeds' order system on Keel's public API (the `keel` facade) — what
//! `keel demo` runs, and the proof that the pieces compose.
//!
//! Six services, each with its own SQLite database under one data directory: all in one
//! process on the embedded log ([`run`]), or split between processes on a Kafka cluster such
//! as `keel serve` (feature `kafka`: `Backbone::kafka`) or any other engine's transport
//! ([`Backbone::on`]: NATS, Redis, RabbitMQ, SNS/SQS), [`drive`] where the order service
//! runs, [`serve`] for the others:
//!
//! | service | pattern |
//! |---|---|
//! | orders | event-sourced `Order` aggregate (`keel.events`), the order saga (orchestration, `orders.db`), the order-summary projection |
//! | inventory | commands from `inventory.commands` through its inbox; reservations per order + outbox (`inventory` topic); marks stock shipped from the `shipping` topic |
//! | payment | commands from `payments.commands` through its inbox; one charge per order + outbox (`payments`); declines some cards; a simulated provider outage answers "unavailable" |
//! | shipping | commands from `shipping.commands` through its inbox; one shipment per order + outbox (`shipping`) |
//! | email | reacts to shipments and declines through its inbox (choreography); invalid addresses are poison → dead letters |
//! | analytics | counts every fact by type through its inbox |
//!
//! The services talk only through topics. The saga's steps send commands as events to the
//! command topics (event id: the attempt's request id, `<order>/<step>/do#<attempt>`); each
//! service handles them in its inbox's transaction, keyed by the saga's command id, and
//! announces the outcome through its outbox as a fact whose id is the command id and whose
//! `causationid` is the request. A command asked again (a retry, or a saga resumed after a
//! crash) is answered with the same fact, never acted on twice. The saga meets each answer
//! in `keel::saga::Replies`, within a patience per attempt and the step's durable deadline;
//! email and analytics react to the same facts. [`run`] ends with a [`Summary`] whose
//! [`Summary::violations`] are the self-check.

mod backbone;
mod database;
mod error;
pub mod events;
mod inventory;
mod notify;
mod order;
mod payment;
mod run;
mod services;
mod shipping;
mod summary;
mod tally;
mod timeline;

pub use backbone::Backbone;
pub use error::DemoError;
pub use inventory::ReservationCounts;
pub use order::{Order, OrderCommand, OrderCounts, OrderData, OrderEvent, OrderStatus};
pub use run::{DemoConfig, ORDERS_MAX, drive, run, serve};
pub use services::Service;
pub use summary::Summary;
pub use timeline::{Entry, Timeline};
