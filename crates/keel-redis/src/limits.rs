//! Every limit of the Redis transport, in one place.

use std::time::Duration;

/// Most partitions a topic may have (streams per topic).
pub(crate) const PARTITIONS_MAX: u32 = 1024;

/// Most entries one read (`XREADGROUP`, `XRANGE`) asks for.
pub(crate) const READ_COUNT_MAX: usize = 500;

/// Most connections a transport opens for its partitions' reads, beside the one it shares
/// for everything else: the redis crate parses each connection's replies on one task, so
/// reads over several connections are parsed on several cores (`connection.rs`).
pub(crate) const READ_CONNECTIONS_MAX: usize = 4;

/// How often an idle lease looks for new entries (the worker also looks every poll
/// interval).
pub(crate) const WAIT_POLL: Duration = Duration::from_millis(20);

/// Most entries one `XACK` or `XAUTOCLAIM` names.
pub(crate) const ACK_BATCH_MAX: usize = 1_000;

/// Most entries an offset-by-time search reads (it scans: Redis has no time index on
/// Keel's ids).
pub(crate) const TIME_SCAN_MAX: usize = 1_000_000;

/// The first wait before connecting again to a server that went away; each failed attempt
/// doubles it, up to [`RECONNECT_DELAY_MAX`].
pub(crate) const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);
pub(crate) const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);

/// Attempts of one reconnection before the request that started it fails; the next request
/// starts another.
pub(crate) const RECONNECT_ATTEMPTS: usize = 10;
