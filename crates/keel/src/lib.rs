//! `keel`: an event backbone for services — the crate applications depend on.
//!
//! This facade holds no code of its own; it re-exports Keel's layers so a service needs one
//! dependency: [`core`] (the CloudEvents envelope, typed events, trace context) and [`log`]
//! (the embedded, durable, partitioned event log).

pub use keel_core as core;
pub use keel_log as log;
