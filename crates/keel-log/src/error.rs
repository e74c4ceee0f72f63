//! Error types per operation, in domain words.

use std::io;

use crate::batch::BatchError;
use crate::config::ConfigError;

/// Why an append was refused. Nothing was stored when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The batch is larger than the topic's `max_batch_bytes`.
    #[error("record batch of {size} bytes exceeds the topic's max_batch_bytes ({max})")]
    RecordTooLarge {
        /// Size of the batch on disk.
        size: usize,
        /// The topic's limit.
        max: u32,
    },
    /// The bytes are not valid RecordBatch v2.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A compacted topic needs a key on every record.
    #[error("compacted topic requires a key on every record")]
    KeyRequired,
    /// Nothing to append.
    #[error("empty append")]
    Empty,
    /// An earlier fsync failed; the partition refuses writes until it is reopened.
    #[error("partition is read-only after a failed fsync: {0}")]
    Poisoned(String),
    /// The disk failed.
    #[error("i/o error while appending: {0}")]
    Io(#[from] io::Error),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is below the log start or above the high watermark.
    #[error("offset {offset} is out of range ({log_start}..={high_watermark})")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: u64,
        /// First offset still stored.
        log_start: u64,
        /// One past the last readable offset.
        high_watermark: u64,
    },
    /// A stored batch failed its checks; it is never returned as data.
    #[error("{0}")]
    Corrupt(String),
    /// The disk failed.
    #[error("i/o error while reading: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    /// Segment code reports a corrupt batch as `InvalidData`; everything else is the disk.
    fn from(error: io::Error) -> ReadError {
        if error.kind() == io::ErrorKind::InvalidData {
            ReadError::Corrupt(error.to_string())
        } else {
            ReadError::Io(error)
        }
    }
}

/// Why a topic operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name breaks the naming rules.
    #[error("invalid topic name '{name}': {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A topic with this name exists.
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    /// No topic with this name.
    #[error("topic '{0}' does not exist")]
    NotFound(String),
    /// One of Keel's own topics, which is never deleted and keeps its settings.
    #[error("topic '{0}' is internal to Keel and cannot be deleted or altered")]
    Internal(String),
    /// Partitions can only be added: the count asked for is not above the current one.
    #[error("topic '{topic}' has {have} partitions; {asked} would not add any")]
    PartitionsNotIncreased {
        /// The topic.
        topic: String,
        /// Its partitions now.
        have: u32,
        /// The count asked for.
        asked: u32,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The disk failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Why opening a log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A topic's `topic.conf` is unreadable or invalid.
    #[error("topic '{topic}': {source}")]
    Config {
        /// The topic.
        topic: String,
        /// What is wrong.
        source: ConfigError,
    },
    /// Another process has the data directory open; one process owns a log at a time.
    #[error("data directory {path} is in use by another process (its lock file is held)")]
    Locked {
        /// The lock file.
        path: String,
    },
    /// The disk failed.
    #[error("i/o error opening {path}: {source}")]
    Io {
        /// What was being opened.
        path: String,
        /// The error.
        source: io::Error,
    },
}
