//! The operator tools' logic, written once over the ports (`keel_core::AdminTransport` to
//! read, `keel_core::PublishTransport` to append), so `keel groups`, `keel dlq` and the lag
//! reports answer the same on every transport: the embedded log, `keel serve`, a Kafka
//! cluster, NATS, Redis, RabbitMQ.
//!
//! | file | holds |
//! |---|---|
//! | `groups.rs` | consumer groups: lag in events and seconds, offset resets, audited deletion |
//! | `gauges.rs` | the lag and dead-letter gauges of the networked engines, by the same code |
//! | `dead_letters.rs` | dead letters: list, show, counts and causes, purge |
//! | `replay.rs` | replaying dead letters, canary and once-only |
//! | `audit.rs` | the audit log of replays, purges and group deletions (the once-only memory) |
//! | `scan.rs` | reading a stretch of a partition record by record |
//!
//! The tools take time as `now_ms` arguments, so tests are exact; the gauges read the
//! system clock, as the brokers stamping the records do. Not here: printing, argument
//! parsing, or any engine's way of storing offsets (the port's implementations).

pub mod audit;
pub mod dead_letters;
pub mod gauges;
pub mod groups;
pub mod replay;
pub mod scan;
