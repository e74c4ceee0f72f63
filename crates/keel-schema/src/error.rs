//! Why a registry operation failed, in the registry's words. Each variant maps to one of
//! Confluent Schema Registry's error codes in `keel-server`; the messages are one line.

use crate::budget::ComparisonError;
use crate::compatibility::{CompatibilityLevel, Incompatibility};
use crate::schema::SchemaError;

/// A failed registry operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No such subject (or only soft-deleted versions, when those were not asked for).
    #[error("subject {0:?} not found")]
    SubjectNotFound(String),
    /// The subject exists, the version does not.
    #[error("version {version} of subject {subject:?} not found")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: u32,
    },
    /// No schema with this id, or the schema is not registered under the subject.
    #[error("schema not found: {0}")]
    SchemaNotFound(String),
    /// A soft delete of a subject that is already soft-deleted.
    #[error("subject {0:?} was soft deleted; set permanent=true to delete it permanently")]
    SubjectSoftDeleted(String),
    /// A permanent delete of a subject that was not soft-deleted first.
    #[error("subject {0:?} was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// A soft delete of a version that is already soft-deleted.
    #[error(
        "version {version} of subject {subject:?} was soft deleted; set permanent=true to delete it permanently"
    )]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
    /// A permanent delete of a version that was not soft-deleted first.
    #[error(
        "version {version} of subject {subject:?} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
    /// The new schema breaks the subject's compatibility level.
    #[error("schema being registered is incompatible with an earlier schema for subject {subject:?} ({level}): {}", join(.incompatibilities))]
    Incompatible {
        /// The subject.
        subject: String,
        /// The level in force.
        level: CompatibilityLevel,
        /// Every reason, each with its path.
        incompatibilities: Vec<Incompatibility>,
    },
    /// The compatibility check spent its whole budget (steps, depth or time) before reaching
    /// a verdict; the schema is refused rather than compared for ever.
    #[error("schema being registered is too complex to check against subject {subject:?}: {error}")]
    TooComplex {
        /// The subject.
        subject: String,
        /// The limit crossed.
        error: ComparisonError,
    },
    /// The subject changed under every attempt at a registration (other registrations won
    /// each race); retrying later succeeds.
    #[error("subject {0:?} changed while the schema was being checked; retry")]
    Conflict(String),
    /// A version cannot be deleted while live schemas reference it.
    #[error(
        "one or more references exist to version {version} of subject {subject:?} (schema ids {ids:?}); delete those first"
    )]
    ReferenceExists {
        /// The subject.
        subject: String,
        /// The referenced version.
        version: u32,
        /// Ids of the schemas that reference it.
        ids: Vec<u32>,
    },
    /// The schema text is not an acceptable schema.
    #[error(transparent)]
    InvalidSchema(#[from] SchemaError),
    /// The subject name is empty, too long or has control characters.
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The name given.
        subject: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The subject (or the registry) is in read-only mode.
    #[error("subject {0:?} is in read-only mode")]
    ReadOnly(String),
    /// A limit of `limits.rs` was reached.
    #[error("registry limit reached: {0}")]
    LimitReached(String),
    /// The schemas topic could not be read or written; nothing was changed.
    #[error("schema storage failed: {0}")]
    Storage(String),
}

fn join(incompatibilities: &[Incompatibility]) -> String {
    incompatibilities
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
