//! `keel-log`: Keel's storage engine — a durable, partitioned log of Kafka RecordBatch v2.
//!
//! A [`Log`] is a data directory of [`Topic`]s; a topic has [`Partition`]s; a partition is a
//! sequence of segments (`<base offset>.log` plus sparse `.index` and `.timeindex`). The bytes
//! on disk are Kafka's own batch format, so a broker can serve a fetch by copying file bytes.
//! The format and the crash analysis are in `docs/log-format.md`.
//!
//! This crate is synchronous Rust: no async runtime, no network, no SQL. Disk and clock come in
//! through the [`Storage`] and [`Clock`] traits so tests drive production code through
//! simulated power cuts ([`sim::SimStorage`]).
//!
//! # Durability: what an acknowledged append promises
//!
//! `append` returns offsets only after the batch is written completely, and:
//!
//! - **`fsync = always`** — after an `fdatasync` that covers the batch. The append survives a
//!   process crash and a power cut. Concurrent appenders share syncs (group commit): the first
//!   waiter syncs everything written so far while the others wait for that sync, and whatever
//!   is written meanwhile goes in the next one; async callers wait through
//!   [`Partition::durable_step`] without a thread each. Readers see a batch only once it is
//!   durable.
//! - **`fsync = interval(ms)`** — once written; a background thread syncs every partition with
//!   unsynced bytes every `ms`. Survives a process crash; a power cut loses at most about the
//!   last `ms` of acknowledged appends. Readers see a batch at once.
//! - **`fsync = never`** — once written to the OS. Survives a process crash (the bytes are in
//!   the page cache); a power cut may lose any unsynced suffix. Readers see a batch at once.
//!
//! Whatever the policy, sealing a segment (roll) syncs it and the partition directory, so a
//! power cut can only ever cost a suffix of the active segment, never a hole in the middle.
//!
//! In every mode recovery keeps exactly a prefix of whole, CRC-valid batches: a torn or
//! corrupt tail of the active segment is cut at the first bad batch, never served; zeros
//! after the last batch (the active segment's space written ahead,
//! [`TopicConfig::preallocate_bytes`]) are the end of the log, cut without a report. A failed
//! `fsync` is sticky: the partition refuses further appends until reopened.
//!
//! # Open files
//!
//! A partition costs no file descriptor while nobody uses it: the log keeps at most
//! [`LogOptions::open_files_max`] segment and index files open, closes the least recently used
//! beyond that and reopens them on their next use ([`Log::open_files`] counts both). Closing
//! never changes what an append promised: see `handles.rs`.
//!
//! # Reading
//!
//! [`Partition::read`] returns whole, CRC-checked batches from an offset, bounded by bytes;
//! [`Partition::read_records`] decodes them (gzip, snappy, lz4 and zstd batches from other
//! producers included); [`Partition::offset_for_timestamp`], [`Partition::high_watermark`] and
//! [`Partition::wait_for`] (block until an offset exists, without spinning) complete the API.

mod batch;
mod compaction;
mod compression;
mod config;
mod error;
mod group_commit;
mod handles;
mod index;
pub mod limits;
mod log;
mod offsets;
mod partition;
mod record;
mod segment;
mod signal;
pub mod sim;
mod storage;
mod topic;

pub use batch::layout as batch_layout;
pub use batch::{
    BATCH_HEADER_BYTES, BatchError, BatchHeader, CheckedBatches, LOG_OVERHEAD, check_batch,
    check_batches, decode_records, encode_batch,
};
pub use compaction::{CompactionOutcome, compact};
pub use config::{CleanupPolicy, ConfigError, FsyncPolicy, TopicConfig};
pub use error::{AppendError, OpenError, ReadError, TopicError};
pub use group_commit::{DurableStep, DurableWait, SyncClaim};
pub use handles::{OpenFiles, open_files_max_default};
pub use log::{Log, LogOptions, RecoveryReport};
pub use offsets::{CommittedOffset, GroupOffsets, OFFSETS_TOPIC, OffsetCommit};
pub use partition::{
    AppendInfo, Partition, PartitionRecovery, ReadBatches, RecordsRead, SyncStats,
};
pub use segment::CorruptBatch;
pub use signal::HighWatermarkPast;
pub use storage::{DirLock, DiskStorage, Storage, StorageFile, read_exact_at};
pub use topic::{Topic, is_internal_topic, validate_topic_name};

// The record shape and the clock are the ports' (`keel-core`), shared with every transport.
pub use keel_core::{
    Clock, Header, ManualClock, NewRecord, Record, SystemClock, murmur2, partition_for_key,
};
