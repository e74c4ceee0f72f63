//! `keel-schema`: Keel's schema registry — event contracts as versioned JSON Schemas
//! (draft 2020-12), the compatibility rules that guard their evolution, validation of
//! payloads, upcasting of old versions, and the event catalog.
//!
//! - [`reader_differences`] is the compatibility engine: whether a reader schema reads
//!   everything a writer schema allows, with every [`Difference`] named by its JSON path and
//!   described in words. [`check_compatibility`] applies a [`CompatibilityLevel`] (Confluent's
//!   seven: `BACKWARD` … `FULL_TRANSITIVE`, `NONE`) to a subject's earlier versions.
//!
//! This crate speaks no HTTP: `keel-server` serves the registry in Confluent's REST shape.

mod compare;
mod compatibility;
mod difference;
pub mod limits;

pub use compare::reader_differences;
pub use compatibility::{
    CompatibilityLevel, Direction, Incompatibility, SchemaDiff, UnknownLevel, check_compatibility,
    diff,
};
pub use difference::{Difference, DifferenceKind};
