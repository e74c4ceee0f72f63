//! `keel-kafka`: the Kafka wire protocol over `keel-log`, so unmodified Kafka clients can use
//! a Keel data directory as their broker (`keel serve`).
//!
//! The crate is being built in steps (see `ARCHITECTURE.md`): the connection and request
//! handling for topics, produce and fetch, and the group coordinator, each in its own module.
//! It touches storage only through `keel-log`'s public API and opens no HTTP port (that is
//! `keel-server`'s job).
