//! Every limit the embedded transport adds to the runtime's (`keel_runtime::limits`) and the
//! log's (`keel_log::limits`), in one place.

/// Most members one group may have.
pub const MEMBERS_MAX: usize = 1024;

/// Most records one append of a batch publish carries; a larger share of one partition is
/// appended in several.
pub const BATCH_APPEND_RECORDS_MAX: usize = 512;
