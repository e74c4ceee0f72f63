//! Every limit keel-runtime enforces, in one place: the ceilings policies are validated
//! against and the defaults they start from.
//!
//! A limit that is not written here does not exist. This file holds numbers only; the policy
//! structs that use them are in `policy.rs`. Group timing limits belong to `GroupPolicy` in
//! `keel-core`; each transport's own limits (group sizes, batch sizes) are in its crate.

use std::time::Duration;

/// Default handler attempts per event (the first try included) before it is dead-lettered.
pub const ATTEMPTS_DEFAULT: u32 = 5;
/// Most attempts a retry policy may ask for; a poison event must reach the dead letters.
pub const ATTEMPTS_MAX: u32 = 100;
/// Default upper bound of the first retry delay (full jitter draws below it).
pub const RETRY_DELAY_MIN_DEFAULT: Duration = Duration::from_millis(100);
/// Default cap of any retry delay.
pub const RETRY_DELAY_MAX_DEFAULT: Duration = Duration::from_secs(30);
/// Longest retry delay a policy may ask for.
pub const RETRY_DELAY_MAX_CEILING: Duration = Duration::from_secs(3600);
/// Default factor between successive retry delay bounds.
pub const RETRY_MULTIPLIER_DEFAULT: u32 = 2;
/// Largest factor between successive retry delay bounds.
pub const RETRY_MULTIPLIER_MAX: u32 = 16;

/// First pause before a route asks again to join its group after the transport answered
/// that it cannot now (unreachable, a coordinator moving); doubled per failure.
pub const JOIN_RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest pause between two join attempts of one route.
pub const JOIN_RETRY_MAX: Duration = Duration::from_secs(10);

/// Default time one handler attempt may take before it counts as a transient failure.
pub const ATTEMPT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Longest attempt timeout a policy may ask for.
pub const ATTEMPT_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// Default number of handler calls one partition runs at once (different keys only).
pub const CONCURRENCY_DEFAULT: usize = 16;
/// Most handler calls one partition may run at once.
pub const CONCURRENCY_MAX: usize = 4096;
/// Default number of fetched, unfinished events one partition holds (backpressure).
pub const IN_FLIGHT_DEFAULT: usize = 1024;
/// Most fetched, unfinished events one partition may hold.
pub const IN_FLIGHT_MAX: usize = 1_000_000;
/// Default bytes asked of the log per fetch.
pub const FETCH_BYTES_DEFAULT: usize = 1024 * 1024;
/// Most bytes asked of the log per fetch.
pub const FETCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Default interval at which an idle partition checks the log for events appended by
/// something other than this process's publishers (those wake consumers at once).
pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);
/// Default interval between offset commits while events are handled (also committed on
/// revocation and shutdown).
pub const COMMIT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Longest poll or commit interval a policy may ask for.
pub const INTERVAL_MAX: Duration = Duration::from_secs(600);

/// Default number of event ids an in-memory dedupe window remembers.
pub const DEDUPE_WINDOW_DEFAULT: usize = 100_000;
/// Most event ids an in-memory dedupe window may remember.
pub const DEDUPE_WINDOW_MAX: usize = 10_000_000;

/// Longest error message carried in a `keel_dlq_error` header; longer ones are cut.
pub const DLQ_ERROR_BYTES_MAX: usize = 4096;
/// Suffix of the dead-letter topic of a topic.
pub const DLQ_SUFFIX: &str = ".dlq";
/// Suffix of the redelivery topic of a topic (retry-topic retries, replays to one group).
pub const RETRY_SUFFIX: &str = ".retry";

/// Most (group, partition) pairs whose lag one metrics scrape reports; each costs a small read
/// of the log when the group is behind.
pub const LAG_PARTITIONS_MAX: usize = 10_000;

/// Longest a scrape waits for a networked engine's administrative port to answer the lag
/// and dead-letter questions (`admin::gauges`); past it the gauges are left out of that
/// scrape rather than hold the scraper.
pub const GAUGE_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
