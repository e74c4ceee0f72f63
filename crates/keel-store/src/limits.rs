//! Every limit the event store enforces, in one place. A limit not written here does not
//! exist; the code that checks each one names it.

use std::time::Duration;

/// Longest stream id, in bytes. Stream ids are keys in the log and in SQL indexes.
pub const STREAM_ID_BYTES_MAX: usize = 256;
/// Most events one append may carry. An append is one atomic unit (one log batch, one SQL
/// transaction); a larger business fact belongs in fewer, richer events.
pub const APPEND_EVENTS_MAX: usize = 10_000;
/// Most events one read returns; callers page with the returned versions or positions.
pub const READ_EVENTS_MAX: usize = 10_000;
/// Most appends the embedded store commits with one log write (one fsync); more waiting
/// appends go in the next group.
pub const APPEND_GROUP_MAX: usize = 256;
/// Bytes asked of the log per read call when walking a stream's positions.
pub const LOG_READ_BYTES: usize = 256 * 1024;
/// Events a subscription fetches per page while catching up.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = 1_000;
/// How long a live subscription waits for a new event before it re-checks the head (the
/// head of a store written by another process is only seen by polling).
pub const SUBSCRIPTION_POLL: Duration = Duration::from_millis(100);
/// Most conflict retries a repository may be configured with.
pub const REPOSITORY_ATTEMPTS_MAX: u32 = 100;
