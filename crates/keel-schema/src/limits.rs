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

/// Records read from the end of each partition when the catalog is learned through the admin
/// port (a cluster's topics, where each read is a fetch): one fetch for records of up to
/// about 10 KiB.
pub const CATALOG_PORT_SAMPLE_RECORDS: u64 = 100;

/// Most bytes of records the port's catalog reads of one partition, however large they are.
pub const CATALOG_PORT_SAMPLE_BYTES_MAX: usize = 1024 * 1024;

/// Topics the port's catalog samples at the same time (each reads its partitions in turn).
pub const CATALOG_PORT_TOPICS_CONCURRENCY: usize = 8;

/// Most schema pairs one compatibility check may visit (every earlier version and direction
/// together). A memoised comparison of real contracts visits a few thousand; past this the
/// schema is refused rather than compared for ever.
pub const COMPARISON_STEPS_MAX: u64 = 200_000;

/// Deepest nesting of one comparison, references followed. Beyond the document depth of
/// [`SCHEMA_DEPTH_MAX`], only `$ref` chains and recursive named types get here.
pub const COMPARISON_DEPTH_MAX: usize = 128;

/// Wall-clock budget of one compatibility check, in milliseconds: a request is answered
/// within this even when the step limit is not reached.
pub const COMPARISON_TIME_MAX_MS: u64 = 500;

/// Attempts at one registration whose subject changed while its check ran outside the
/// registry's lock; past this the registration is refused as a conflict.
pub const REGISTER_ATTEMPTS_MAX: usize = 8;

/// Largest request body the registry's HTTP API reads: a schema of [`SCHEMA_BYTES_MAX`] bytes
/// escaped into a JSON string (at most doubling it) plus room for references.
pub const REQUEST_BYTES_MAX: usize = 2 * SCHEMA_BYTES_MAX + 64 * 1024;

/// Most differences reported for one pair of schema nodes (the first ones found); a reader
/// needs one to know the change breaks, and the report of a crafted schema stays small.
pub const DIFFERENCES_PER_PAIR_MAX: usize = 32;

/// Most unreadable stored events one check lists (the rest are counted), so a check of a
/// large topic against a breaking schema reports in bounded memory.
pub const UNREADABLE_REPORTED_MAX: usize = 1000;
