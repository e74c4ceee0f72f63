//! Operator tools over the embedded log: topics at a glance ([`topics`]), consumer-group lag
//! and offset resets ([`groups`], the engine-neutral `keel_runtime::admin::groups` run on the
//! log through [`LogAdmin`]), and dead-letter inspection, replay and purge with an audit log
//! ([`dead_letters`], [`audit`]: `keel_runtime::admin`'s dead-letter tools, run the same
//! way). The `keel groups` and `keel dlq` verbs are thin wrappers
//! over these functions; a service can call them too. `port.rs` is the administrative half
//! of the transport port (`keel_core::AdminTransport`) on the same log, and `LogAdmin` the
//! publishing half the dead-letter tools append through.
//!
//! Everything here is synchronous and works on a [`keel_log::Log`] the caller opened. Time
//! comes in as `now_ms` arguments, so tests are exact.
//!
//! # One owner per data directory
//!
//! The embedded log is owned by one process at a time (`Log::open` takes an exclusive lock).
//! So while the `keel` binary runs one of these tools, no consumer of another process can
//! run on the same data directory, and an offset reset can never race a running consumer
//! there. Inside one process the log is shared: a service that calls [`groups::apply_reset`]
//! must first stop its own routes of that group, or the next commit of a running member
//! overwrites the reset. The library cannot see those routes (they live in the
//! `EmbeddedBus`), so this is the caller's duty.
//!
//! The same rule shapes the replay canary ([`dead_letters::canary_outcome`]): the consumer
//! that must handle the canary has to run while the outcome is observed. In one process (a
//! service replaying its own dead letters) the caller polls `canary_outcome` while its router
//! runs. From the `keel` binary the canary is a two-step protocol: `keel dlq replay --canary`
//! replays one event and exits; the operator runs the consumers; `keel dlq canary <id>` or
//! `keel dlq replay --after-canary <id>` reads the outcome from the log.
//!
//! Not here: printing, argument parsing, reading the clock or environment.

pub mod audit;
pub mod dead_letters;
pub mod groups;
mod port;
pub mod topics;

pub use port::{LogAdmin, at_once};
