//! `keel-projection`: read models (the query side of CQRS) fed from an event store or a
//! topic, with the checkpoint committed in the same transaction as the model, rebuild from
//! zero with progress, and [`Projector::wait_for`] so a caller can read its own write.
//!
//! The port is [`ProjectionStore`]: a read model that applies a batch of events *and*
//! records the position after them in one transaction. The SQL implementations are
//! `keel_sql::SqliteProjection` and, with keel-sql's `postgres` feature,
//! `keel_sql::PgProjection` (SQL lives in `keel-sql` only). [`Projector`] drives any such
//! model from any [`Source`]: every [`keel_store::EventStore`] is one (a single partition,
//! its global order), and [`TopicSource`] reads a `keel-log` topic's partitions, with one
//! checkpoint per partition.
//!
//! # Why the checkpoint lives in the model's transaction
//!
//! A checkpoint kept elsewhere (a consumer offset, a file) is committed before or after the
//! model: a crash between the two either skips events (checkpoint first) or applies them
//! twice (model first), which a counter or a sum cannot tell. In one transaction there is no
//! "between": after a crash the model and its checkpoints describe the same prefix of each
//! partition, and the projector resumes right after it.

mod model;
mod projector;
mod source;
mod topic;

pub use model::{ProjectionError, ProjectionStore};
pub use projector::{Progress, Projector, WaitError};
pub use source::Source;
pub use topic::{NoSuchTopic, TOPIC_POLL, TopicSource};

/// Events a projector hands to its model per transaction: large enough that a rebuild pays
/// one commit per many events, small enough that a failing event rolls back little work.
pub const BATCH_EVENTS_DEFAULT: usize = 500;
/// Most events one batch may hold.
pub const BATCH_EVENTS_MAX: usize = keel_store::limits::READ_EVENTS_MAX;
