//! The RabbitMQ transport's limits, in one place.

use std::time::Duration;

/// The most partitions a topic may have (streams probed when counting them).
pub(crate) const PARTITIONS_MAX: u32 = 1024;

/// How many unacknowledged messages a stream consumer may have in flight (RabbitMQ
/// requires a prefetch on stream consumers; acknowledging gives credit back).
pub(crate) const PREFETCH: u16 = 1000;

/// How long a bounded read of a stream (an administrative read, a stream's tail) waits for
/// a further message before it takes the stream as read to its end: RabbitMQ 3.10's AMQP
/// side has no request for a stream's last offset, so the end is where deliveries stop.
pub(crate) const READ_IDLE: Duration = Duration::from_millis(250);

/// The longest a bounded read of a stream may take in all.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a stream declaration is tried before it fails (`Client::declare_stream`).
pub(crate) const DECLARE_ATTEMPTS_MAX: u32 = 5;

/// The pause between two tries of a stream declaration.
pub(crate) const DECLARE_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How often a member tries to join before its route gives up (`RabbitTransport::join`).
pub(crate) const JOIN_ATTEMPTS_MAX: u32 = 5;

/// The pause between two tries of a join.
pub(crate) const JOIN_RETRY_DELAY: Duration = Duration::from_millis(200);

/// The longest a confirmed publish waits for RabbitMQ's confirm before it fails (and the
/// publishing channel is opened afresh): after a node restart a channel may never get one.
pub(crate) const CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// The longest any other one request to RabbitMQ may take — opening the connection and a
/// channel (with confirm mode) together, a declaration, a consumer's start, a read — before
/// it fails and the connection is dropped (`Client::bounded`): lapin itself bounds none of
/// them, and one that never returns would hold every request behind the client's lock.
pub(crate) const REQUEST_WAIT: Duration = Duration::from_secs(10);
