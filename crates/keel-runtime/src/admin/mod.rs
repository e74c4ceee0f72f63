//! The operator tools' logic, written once over the administrative port
//! (`keel_core::AdminTransport`), so `keel groups` and the lag reports answer the same on
//! every transport: the embedded log, `keel serve`, a Kafka cluster.
//!
//! Time comes in as `now_ms` arguments, so tests are exact. Not here: printing, argument
//! parsing, or any engine's way of storing offsets (the port's implementations).

pub mod groups;
