//! Every limit of the schema registry, in one place.

/// Deepest nesting of a schema document (objects and arrays), and of the comparison's walk.
/// Deeper schemas are refused when registered, so the recursive diff cannot overflow the stack.
pub const SCHEMA_DEPTH_MAX: usize = 64;

/// Largest schema text accepted, in bytes (Confluent's default request limit is larger, but
/// an event contract beyond this is a design smell, and every version is kept in memory).
pub const SCHEMA_BYTES_MAX: usize = 1024 * 1024;

/// Most versions one subject may hold, deleted ones included.
pub const VERSIONS_PER_SUBJECT_MAX: usize = 10_000;

/// Most subjects a registry holds.
pub const SUBJECTS_MAX: usize = 100_000;

/// Longest subject name, in bytes.
pub const SUBJECT_BYTES_MAX: usize = 255;

/// How many bytes of the schemas topic one read asks for while replaying it on open.
pub const REPLAY_CHUNK_BYTES: usize = 1024 * 1024;

/// Records read from the end of each partition when `keel catalog` learns a topic's events.
pub const CATALOG_SAMPLE_RECORDS: u64 = 1000;
