//! Every limit keel-sql enforces, in one place: the ceilings options are validated against
//! and the defaults they start from.
//!
//! A limit that is not written here does not exist. Numbers only; the options that use them
//! are in `sqlite.rs`, `outbox.rs` and `postgres/`.

use std::time::Duration;

/// Default number of events one SQLite transaction commits together (group commit).
pub const BATCH_EVENTS_DEFAULT: usize = 512;
/// Most events one SQLite transaction may commit together.
pub const BATCH_EVENTS_MAX: usize = 65_536;
/// Default time a write waits for another connection's write lock before it fails as busy.
pub const BUSY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Longest busy timeout an option may ask for.
pub const BUSY_TIMEOUT_MAX: Duration = Duration::from_secs(600);
/// Most follow-up events one handled event may publish after its commit.
pub const FOLLOW_UPS_MAX: usize = 1024;
/// Most inbox rows one retention call deletes, so a cleanup never holds the write lock for
/// long; call again until it returns fewer.
pub const RETENTION_DELETE_MAX: u64 = 10_000;

/// Most bytes of one event's stored envelope (structured-mode JSON). Enqueue refuses
/// larger events at once, in the caller's transaction, rather than leave a row no relay can
/// publish.
pub const ENVELOPE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most events one `enqueue_batch` call takes.
pub const ENQUEUE_BATCH_MAX: usize = 10_000;
/// Default number of outbox rows one relay claims per transaction.
pub const RELAY_BATCH_ROWS_DEFAULT: usize = 256;
/// Most outbox rows one relay may claim per transaction.
pub const RELAY_BATCH_ROWS_MAX: usize = 10_000;
/// Default wait between two looks at the outbox when nothing woke the relay.
pub const RELAY_POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);
/// Longest poll interval an option may ask for.
pub const RELAY_POLL_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// Default number of publish attempts a row the transport *rejects* gets before it is moved
/// aside as a dead letter. Transient failures never move a row aside; they back off.
pub const RELAY_REJECTED_ATTEMPTS_DEFAULT: u32 = 3;
/// Most rejected attempts an option may ask for.
pub const RELAY_REJECTED_ATTEMPTS_MAX: u32 = 100;
/// Default first delay before a failed row is tried again; it doubles per attempt.
pub const RELAY_RETRY_DELAY_MIN_DEFAULT: Duration = Duration::from_millis(100);
/// Default longest delay between two attempts of one row, and between two reconnects.
pub const RELAY_RETRY_DELAY_MAX_DEFAULT: Duration = Duration::from_secs(30);
/// Longest retry delay an option may ask for.
pub const RELAY_RETRY_DELAY_MAX: Duration = Duration::from_secs(3600);
/// Default time a published row is kept (when published rows are marked, not deleted).
pub const PUBLISHED_RETENTION_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Default interval between two cleanups of published rows and two refreshes of the
/// backlog metrics.
pub const RELAY_HOUSEKEEPING_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Most published rows or inbox marks one cleanup statement deletes.
pub const CLEANUP_DELETE_MAX: i64 = 10_000;
/// Most dead rows the relay copies to the dead-letter topic per pass.
pub const DEAD_LETTER_BATCH_MAX: i64 = 100;
/// Default size of the PostgreSQL connection pool.
pub const PG_POOL_SIZE_DEFAULT: usize = 16;
/// Most appends the PostgreSQL event store commits in one transaction (its group commit),
/// and most appends waiting for it.
pub const PG_APPEND_BATCH_MAX: usize = 256;
/// Most connections a PostgreSQL pool may hold.
pub const PG_POOL_SIZE_MAX: usize = 1024;
