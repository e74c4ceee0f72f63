//! The operator tools' logic, written once over the ports (`keel_core::AdminTransport` to
//! read, `keel_core::PublishTransport` to append), so `keel groups`, `keel dlq` and the lag
//! reports answer the same on every transport: the embedded log, `keel serve`, a Kafka
//! cluster.
//!
//! | file | holds |
//! |---|---|
//! | `groups.rs` | consumer groups: lag in events and seconds, offset resets |
//! | `dead_letters.rs` | dead letters: list, show, counts and causes, purge |
//! | `replay.rs` | replaying dead letters, canary and once-only |
//! | `audit.rs` | the audit log of replays and purges (the once-only memory) |
//! | `scan.rs` | reading a stretch of a partition record by record |
//!
//! Time comes in as `now_ms` arguments, so tests are exact. Not here: printing, argument
//! parsing, or any engine's way of storing offsets (the port's implementations).

pub mod audit;
pub mod dead_letters;
pub mod groups;
pub mod replay;
mod scan;
