//! Every limit keel-log enforces, in one place.
//!
//! A limit that is not written here does not exist; unbounded growth on a request path is a
//! bug. Per-topic limits that users tune live in [`crate::TopicConfig`]; these are the hard
//! ceilings and the defaults.

/// Largest batch accepted by default (Kafka's `message.max.bytes` default, rounded).
pub const BATCH_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
/// Ceiling for a topic's `max_batch_bytes`: batch lengths are 32-bit and index positions too.
pub const BATCH_BYTES_MAX_CEILING: u32 = 64 * 1024 * 1024;
/// Largest batch a read, recovery or compaction accepts from disk: the ceiling, never the
/// topic's `max_batch_bytes`, which limits appends only — a topic whose limit was lowered
/// (`Log::alter_topic_config`) still reads and recovers the larger batches it stored before.
pub const STORED_BATCH_BYTES_MAX: u32 = BATCH_BYTES_MAX_CEILING;
/// Largest records section a compressed batch may expand to. Producers bound a batch's
/// uncompressed size (librdkafka's `batch.size`, 1 MB by default), so 64 MiB leaves room for
/// any real batch while a decompression bomb costs at most this much, once, per read.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most a snappy block can expand: its best case is a 3-byte copy of 64 bytes (21.3x), so a
/// block announcing more than this many times its own size is lying and is refused before
/// its announced length is allocated.
pub const SNAPPY_EXPANSION_MAX: usize = 22;
/// Default size at which the active segment is sealed and a new one started.
pub const SEGMENT_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// Segments must stay addressable by the index's 32-bit positions.
pub const SEGMENT_BYTES_CEILING: u64 = 1024 * 1024 * 1024;
/// Smallest segment size accepted (tests use small segments to exercise rolling).
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Default age after which the active segment is sealed: one week, as Kafka.
pub const SEGMENT_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// Default bytes of zeros kept written ahead of the active segment's end
/// ([`crate::TopicConfig::preallocate_bytes`]): how far appends can run between two sync
/// rounds (a burst, a slow disk) before they outrun the zeros and grow the file again.
pub const PREALLOCATE_BYTES_DEFAULT: u64 = 1024 * 1024;
/// Ceiling for `preallocate_bytes`: the zeros are cut when the segment is sealed, so this is
/// also the most a roll truncates.
pub const PREALLOCATE_BYTES_CEILING: u64 = 64 * 1024 * 1024;
/// Most bytes of zeros one sync round writes ahead (`Segment::extend_ahead`): its
/// `fdatasync` carries them and the file's new size, so one round in every this many appended
/// bytes pays for a write of this size and the inode's block, and none pays more.
pub const PREALLOCATE_STEP_BYTES: usize = 64 * 1024;
/// Bytes appended between two sparse index entries.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;
/// Most partitions a topic may have. Neither memory nor descriptors set it: a partition costs
/// about 1.8 KiB resident (`examples/partition_memory.rs`: 10,000 cost 17.6 MiB) and the open
/// files are bounded by `LogOptions::open_files_max` whatever the count. Creation does: each
/// partition's directory, segment files and directory sync cost about 5 ms on the development
/// machine under load, all under the log's topics lock, which every topic lookup (each Kafka
/// Metadata and Produce request, every console page) waits on — 1,024 partitions block them
/// for about 5 s, 10,000 would for about 50 s. Kafka caps nothing per topic and pays for it in
/// controller time; 10,000 partitions here are many topics (the console's test seeds 1,000 of
/// 10), each created in its own short turn.
pub const PARTITIONS_MAX: u32 = 1024;
/// Descriptors the default open-file budget leaves to the rest of the process (connections,
/// the lock file, SQLite files) out of the soft `RLIMIT_NOFILE`; see
/// [`crate::open_files_max_default`].
pub const OPEN_FILES_RESERVE: usize = 4096;
/// The default open-file budget when the process has no `RLIMIT_NOFILE`.
pub const OPEN_FILES_MAX_UNLIMITED: usize = 1 << 20;
/// Longest topic name (Kafka's limit).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Largest read a single call may return, whatever the caller asks for.
pub const READ_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes read per call while scanning a segment during recovery or lookup.
pub const SCAN_CHUNK_BYTES: usize = 1024 * 1024;
/// Most distinct keys compaction tracks in one pass; beyond it the pass is refused.
pub const COMPACTION_KEYS_MAX: usize = 10_000_000;
/// Default time a tombstone is kept after it is written, as Kafka's `delete.retention.ms`.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
