//! Every limit of the SQS/SNS transport, in one place. Most are AWS's own.

use std::time::Duration;

/// Most partitions a topic may have: they only spread keyless records and name where a
/// dead letter came from (SQS orders by message group, not by partition).
pub(crate) const PARTITIONS_MAX: u32 = 1024;

/// Longest SQS queue name AWS accepts, `.fifo` included.
pub(crate) const QUEUE_NAME_BYTES_MAX: usize = 80;

/// Longest SNS topic name AWS accepts, `.fifo` included.
pub(crate) const TOPIC_NAME_BYTES_MAX: usize = 256;

/// Largest message body SQS and SNS accept (256 KiB): a record's envelope above it is
/// refused before it is sent.
pub(crate) const MESSAGE_BYTES_MAX: usize = 256 * 1024;

/// Longest `MessageGroupId` / `MessageDeduplicationId` AWS accepts.
pub(crate) const MESSAGE_ID_BYTES_MAX: usize = 128;

/// Most messages one `ReceiveMessage`, `DeleteMessageBatch` or
/// `ChangeMessageVisibilityBatch` names (AWS's limit).
pub(crate) const BATCH_MAX: usize = 10;

/// Most received, not yet committed messages a lease holds: its read-ahead. Each is
/// invisible to the group's other members (and holds its message group) until committed or
/// given back.
pub(crate) const HELD_MAX: usize = 200;

/// How long one `ReceiveMessage` waits on the server for messages (long polling).
pub(crate) const RECEIVE_WAIT_S: i32 = 1;

/// Shortest visibility timeout a member uses: the lease renews its messages every third of
/// it, and a receive may wait [`RECEIVE_WAIT_S`] in between.
pub(crate) const VISIBILITY_MIN_S: i32 = 3;

/// Longest visibility timeout SQS accepts (12 hours).
pub(crate) const VISIBILITY_MAX_S: i32 = 43_200;

/// How long a group's queue keeps a message nobody deleted: SQS's longest (14 days).
pub(crate) const RETENTION_S: u32 = 1_209_600;

/// Pause after a failed receive before the next, so an unreachable server is not hammered.
pub(crate) const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// How long a lease with a full read-ahead waits before it looks for room again.
pub(crate) const HELD_FULL_PAUSE: Duration = Duration::from_millis(20);
