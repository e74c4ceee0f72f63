//! `keel-schema`: Keel's schema registry — event contracts as versioned JSON Schemas
//! (draft 2020-12), Avro or Protobuf schemas, with references between them, the compatibility rules
//! that guard their evolution (bounded by a [`Budget`]), validation of payloads, the Avro
//! codec, upcasting of old versions, and the event catalog.
//!
//! - [`reader_differences`] is the compatibility engine: whether a reader schema reads
//!   everything a writer schema allows, with every [`Difference`] named by its JSON path and
//!   described in words. [`check_compatibility`] applies a [`CompatibilityLevel`] (Confluent's
//!   seven: `BACKWARD` … `FULL_TRANSITIVE`, `NONE`) to a subject's earlier versions.
//!
//! - [`Registry`]: subjects of immutable numbered versions, global ids, per-subject and global
//!   compatibility levels and modes, soft and permanent deletes, stored in the compacted topic
//!   [`SCHEMAS_TOPIC`] of a `keel-log` log and replayed on open (durable under `kill -9`).
//! - [`PayloadValidator`]: a registered schema compiled by the `jsonschema` crate; a
//!   [`PayloadError`] names the failing path of the payload.
//! - [`SchemaPublisher`]: publishes an event only when its payload matches the schema
//!   registered for its type (the subject) and `schemaversion`; the refusal names the path.
//! - [`Contract`]: a consumer's accepted versions of one event type and the upcasters that
//!   bring old versions to the current shape; its [`Contract::handler`] dead-letters events of
//!   an unknown type or an unaccepted version with that reason.
//! - The catalog: [`scan`] learns from the log which event types travel on which topic, who
//!   publishes and who consumes them ([`scan_port`] the same of a cluster, through the admin
//!   port, within a time budget); [`asyncapi()`] makes it an AsyncAPI 3.0 document with the
//!   registered schemas and examples, [`html()`] a readable page of the same.
//!
//! This crate speaks no HTTP: `keel-server` serves the registry in Confluent's REST shape.

mod asyncapi;
mod avro;
mod budget;
mod catalog;
mod catalog_port;
mod codec;
mod compare;
mod compatibility;
mod contract;
mod difference;
mod error;
mod html;
pub mod limits;
mod memo;
mod protobuf;
mod publish;
mod registry;
mod schema;
mod store;
mod stored;
mod validation;
pub mod wire;

pub use asyncapi::{SCHEMA_FORMAT, SchemaSource, asyncapi};
pub use avro::{CodecError, decode_avro, encode_avro};
pub use budget::{Budget, CheckLimits, ComparisonError};
pub use catalog::{Catalog, EventFacts, TopicFacts, is_catalogued, scan};
pub use catalog_port::scan_port;
pub use codec::{SchemaCodec, media_type};
pub use compare::{reader_differences, reader_differences_within};
pub use compatibility::{
    Comparable, CompatibilityLevel, Direction, Incompatibility, SchemaDiff, UnknownLevel,
    check_compatibility, check_compatibility_within, diff,
};
pub use contract::{Contract, ContractError};
pub use difference::{Difference, DifferenceKind};
pub use error::RegistryError;
pub use html::html;
pub use protobuf::{decode_protobuf, encode_protobuf};
pub use publish::{SchemaPublishError, SchemaPublisher, check_event};
pub use registry::{Mode, Registry, SubjectVersion, VersionSelector};
pub use schema::{Reference, Schema, SchemaError, SchemaType};
pub use store::SCHEMAS_TOPIC;
pub use stored::{
    StoredCheck, StoredCheckError, StoredReport, Unreadable, Upcaster, check_stored_events,
};
pub use validation::{PayloadError, PayloadValidator};
