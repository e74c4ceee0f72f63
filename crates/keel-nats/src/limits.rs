//! Every limit of the NATS transport, in one place.

use std::time::Duration;

/// Most partitions a topic may have (subjects of one stream).
pub(crate) const PARTITIONS_MAX: u32 = 1024;

/// How long the stream remembers a `Nats-Msg-Id`: an event published again within it is
/// stored once (JetStream's default).
pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Most messages a partition's consumer delivers ahead of the group's commit. The lease's
/// read-ahead is bounded by [`BUFFERED_MAX`], not by this: what it bounds is what the router
/// handled since its last commit, so a partition cannot go faster than this many messages
/// per commit interval (1 s by default) — at 10,000 a 100,000-event run was held at ~40 k
/// events/s over 4 partitions, waiting for each commit. The server keeps one entry per
/// pending message, so the memory it costs is what is really pending, not this bound.
pub(crate) const ACK_PENDING_MAX: i64 = 200_000;

/// Most messages one pull asks for.
pub(crate) const PULL_MESSAGES_MAX: usize = 500;

/// How long one pull waits on the server for messages before asking again.
pub(crate) const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// How long a delivered message may stay unacknowledged before JetStream delivers it again.
/// Long: a new owner recreates the consumer at the group's commit instead of waiting for
/// redeliveries (see `lease.rs`), so this only matters for a handler stuck that long.
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(3600);

/// Records buffered by a lease between its pulls and the worker's fetches. The pull task
/// moves up to [`PULL_MESSAGES_MAX`] in at once, so there must be room for that many.
pub(crate) const BUFFERED_MAX: usize = 2 * PULL_MESSAGES_MAX;
const _: () = assert!(BUFFERED_MAX >= PULL_MESSAGES_MAX);

/// Most records one administrative read returns (each is a request to the server).
pub(crate) const READ_RECORDS_MAX: usize = 1_000;

/// How long an administrative question's ephemeral consumer (an offset by time, a count of
/// a partition's records) outlives its asker when it could not delete it.
pub(crate) const EPHEMERAL_INACTIVE: Duration = Duration::from_secs(10);
