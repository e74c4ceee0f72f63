//! `keel-schema`: Keel's schema registry — event contracts as versioned JSON Schemas
//! (draft 2020-12), the compatibility rules that guard their evolution, validation of
//! payloads, upcasting of old versions, and the event catalog.
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
//!   publishes and who consumes them; [`asyncapi()`] makes it an AsyncAPI 3.0 document with the
//!   registered schemas and examples, [`html()`] a readable page of the same.
//!
//! This crate speaks no HTTP: `keel-server` serves the registry in Confluent's REST shape.

mod asyncapi;
mod catalog;
mod compare;
mod compatibility;
mod contract;
mod difference;
mod error;
mod html;
pub mod limits;
mod publish;
mod registry;
mod schema;
mod store;
mod validation;

pub use asyncapi::{SCHEMA_FORMAT, asyncapi};
pub use catalog::{Catalog, EventFacts, TopicFacts, is_catalogued, scan};
pub use compare::reader_differences;
pub use compatibility::{
    CompatibilityLevel, Direction, Incompatibility, SchemaDiff, UnknownLevel, check_compatibility,
    diff,
};
pub use contract::{Contract, ContractError};
pub use difference::{Difference, DifferenceKind};
pub use error::RegistryError;
pub use html::html;
pub use publish::{SchemaPublishError, SchemaPublisher};
pub use registry::{Mode, Registry, SubjectVersion, VersionSelector};
pub use schema::{Schema, SchemaError, SchemaType};
pub use store::SCHEMAS_TOPIC;
pub use validation::{PayloadError, PayloadValidator};
