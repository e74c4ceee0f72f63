//! A partition: an ordered sequence of segments with one writer and many readers.
//!
//! Three locks, always taken in this order: `writer` (the active segment and the next offset),
//! `durability` (what is known to be on disk), `visible` (what readers may see). Readers only
//! take `visible`, copy a snapshot and read files without any lock, so a slow reader never
//! blocks the writer. A batch becomes visible only after its bytes are completely written —
//! and, under `fsync = always`, after an `fdatasync` covers them — so a reader never sees a
//! partial batch or one that a power cut could take back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::batch::{
    BatchHeader, CheckedBatches, check_batch, check_batches, decode_records, encode_batch,
    set_base_offset,
};
use crate::config::{CleanupPolicy, FsyncPolicy, TopicConfig};
use crate::error::{AppendError, ReadError};
use crate::group_commit::DurableWaiters;
use crate::limits::{READ_BYTES_MAX, STORED_BATCH_BYTES_MAX};
use crate::segment::{Segment, corrupt, parse_segment_name, segment_file};
use crate::signal::{AppendSignal, HighWatermarkPast};
use crate::storage::Storage;
use keel_core::Clock;
use keel_core::{NewRecord, Record};

/// Offsets assigned to an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
}

/// Whole batches read from a partition, as stored (CRC-checked).
#[derive(Debug, Clone)]
pub struct ReadBatches {
    /// Concatenated RecordBatch v2 bytes; the first batch may start below the offset asked for.
    pub bytes: Bytes,
    /// One past the last readable offset at the time of the read.
    pub high_watermark: u64,
    /// First offset still stored.
    pub log_start_offset: u64,
}

/// Records decoded from a partition ([`Partition::read_records_from`]), and where the next
/// read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsRead {
    /// The records, in offset order; control batches' records are not among them.
    pub records: Vec<Record>,
    /// One past the last batch read (control batches included), or the offset asked for when
    /// nothing was read.
    pub next_offset: u64,
}

/// Counters of appends and data syncs, to show group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Appends acknowledged since open.
    pub appends: u64,
    /// `fdatasync` calls on segment data since open (rolls and flushes included).
    pub syncs: u64,
}

/// What opening a partition found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionRecovery {
    /// Bytes cut from the end of the active segment (torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Why they were cut: the first invalid batch's fault.
    pub truncation_reason: Option<String>,
    /// Leftover files of an interrupted compaction that were deleted.
    pub removed_files: Vec<String>,
}

/// One partition of a topic.
#[derive(Debug)]
pub struct Partition {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    /// Replaced whole by [`Partition::set_config`] when the topic's settings change.
    config: RwLock<TopicConfig>,
    writer: Mutex<Writer>,
    durability: Mutex<Durability>,
    pub(crate) durability_changed: Condvar,
    visible: Mutex<Visible>,
    visible_changed: Condvar,
    /// Wakes async waiters when the high watermark moves (`signal.rs`).
    appended: AppendSignal,
    /// Serialises retention and compaction, which both replace segments.
    pub(crate) maintenance: Mutex<()>,
    appends: AtomicU64,
    syncs: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) next_offset: u64,
    /// Bytes written to segments since the last sync (drives the interval flusher).
    unsynced: bool,
}

#[derive(Debug)]
pub(crate) struct Durability {
    pub(crate) durable_offset: u64,
    /// Whether a caller holds the sync claim (`group_commit.rs`): at most one syncs at a time.
    pub(crate) syncing: bool,
    pub(crate) failure: Option<String>,
    /// Async callers waiting for a sync to cover their records.
    pub(crate) waiters: DurableWaiters,
}

#[derive(Debug, Clone)]
pub(crate) struct Visible {
    pub(crate) segments: Arc<Vec<Arc<Segment>>>,
    pub(crate) high_watermark: u64,
    /// The first offset readers may see: the first segment's base, or past it once records
    /// were deleted inside that segment ([`Partition::delete_records_before`]).
    log_start: u64,
    /// Readers never read past this position of the segment whose base is `end_segment`.
    end_segment: u64,
    end_position: u64,
}

impl Partition {
    /// Opens (recovering) or creates the partition in `dir`.
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        dir: &Path,
        config: TopicConfig,
    ) -> io::Result<(Partition, PartitionRecovery)> {
        storage.create_dir_all(dir)?;
        let mut recovery = PartitionRecovery::default();
        let mut bases = Vec::new();
        for name in storage.list_dir(dir)? {
            if name.ends_with(".cleaned") || name == format!("{LOG_START_FILE}.tmp") {
                storage.remove_file(&dir.join(&name))?;
                recovery.removed_files.push(name);
            } else if let Some(base) = parse_segment_name(&name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let active = i + 1 == bases.len();
            let (segment, truncated) =
                Segment::open(&*storage, dir, base, active, STORED_BATCH_BYTES_MAX)?;
            if let Some((bytes, reason)) = truncated {
                recovery.truncated_bytes += bytes;
                recovery.truncation_reason = Some(reason);
            }
            segments.push(Arc::new(segment));
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(&*storage, dir, 0)?));
            storage.sync_dir(dir)?;
        }
        let active = segments.last().expect("at least one segment").clone();
        let (next_offset, end_position) = {
            let state = active.state();
            (state.next_offset, state.size)
        };
        let log_start = read_log_start(&*storage, dir)?
            .unwrap_or(0)
            .max(segments[0].base_offset)
            // Records at and past a stored start were lost with an unsynced tail: the next
            // append starts at the high watermark, so that is where readers start too.
            .min(next_offset);
        let visible = Visible {
            segments: Arc::new(segments.clone()),
            high_watermark: next_offset,
            log_start,
            end_segment: active.base_offset,
            end_position,
        };
        let partition = Partition {
            dir: dir.to_path_buf(),
            storage,
            clock,
            config: RwLock::new(config),
            writer: Mutex::new(Writer {
                segments,
                next_offset,
                unsynced: false,
            }),
            durability: Mutex::new(Durability {
                durable_offset: next_offset,
                syncing: false,
                failure: None,
                waiters: DurableWaiters::default(),
            }),
            durability_changed: Condvar::new(),
            visible: Mutex::new(visible),
            visible_changed: Condvar::new(),
            appended: AppendSignal::default(),
            maintenance: Mutex::new(()),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        };
        Ok((partition, recovery))
    }

    /// Appends records as one batch; returns their offsets once durable under the policy.
    pub fn append(&self, records: &[NewRecord]) -> Result<AppendInfo, AppendError> {
        if records.is_empty() {
            return Err(AppendError::Empty);
        }
        if self.config().cleanup == CleanupPolicy::Compact
            && records.iter().any(|r| r.key.is_none())
        {
            return Err(AppendError::KeyRequired);
        }
        let batch = encode_batch(records, self.clock.now_ms())?;
        self.append_checked(batch.to_vec(), false)
    }

    /// Appends one or more RecordBatch v2 exactly as a Kafka producer sent them (compressed or
    /// not). Every batch is validated (length, magic, CRC, record count) before any is written;
    /// base offsets are rewritten to the partition's next offsets.
    pub fn append_batches(&self, bytes: Vec<u8>) -> Result<AppendInfo, AppendError> {
        self.append_checked(bytes, true)
    }

    /// [`Partition::append_batches`] for batches already checked by
    /// [`CheckedBatches::check`]: the same validation and writing, without a second CRC pass.
    /// Their sizes are checked again against this partition's `max_batch_bytes`, which the
    /// caller may have checked against a different limit.
    pub fn append_checked_batches(
        &self,
        batches: CheckedBatches,
    ) -> Result<AppendInfo, AppendError> {
        let info = self.write_checked_batches(batches)?;
        self.wait_durable(info.last_offset + 1)?;
        Ok(info)
    }

    /// The first half of [`Partition::append_checked_batches`]: validates, assigns offsets
    /// and writes, and returns without waiting for durability — the records are not visible
    /// to readers or acknowledged under `fsync = always` until [`Partition::wait_durable`]
    /// covered them. For a caller that must order writes under its own lock (the broker's
    /// idempotent producer state) and wait outside it, so that concurrent writers still share
    /// one `fdatasync`.
    pub fn write_checked_batches(
        &self,
        batches: CheckedBatches,
    ) -> Result<AppendInfo, AppendError> {
        let (mut bytes, headers) = batches.into_parts();
        if bytes.is_empty() {
            return Err(AppendError::Empty);
        }
        let max = self.config().max_batch_bytes;
        if let Some(header) = headers.iter().find(|h| h.size() > max as usize) {
            return Err(AppendError::RecordTooLarge {
                size: header.size(),
                max,
            });
        }
        self.write_validated(&mut bytes, headers, true)
    }

    /// Returns once every offset below `end` is durable under the topic's policy: under
    /// `fsync = always` after an `fdatasync` covered it (group commit: concurrent waiters
    /// share one), under the other policies at once. A partition poisoned by a failed fsync
    /// answers `Poisoned`, so nothing written before the failure is acknowledged after it.
    pub fn wait_durable(&self, end: u64) -> Result<(), AppendError> {
        if self.config().fsync == FsyncPolicy::Always {
            self.group_commit(end)
        } else {
            match &self.durability().failure {
                Some(failure) => Err(AppendError::Poisoned(failure.clone())),
                None => Ok(()),
            }
        }
    }

    fn append_checked(&self, mut bytes: Vec<u8>, foreign: bool) -> Result<AppendInfo, AppendError> {
        if bytes.is_empty() {
            return Err(AppendError::Empty);
        }
        let max = self.config().max_batch_bytes;
        if let Ok(header) = BatchHeader::parse(&bytes, u32::MAX)
            && header.size() > max as usize
        {
            return Err(AppendError::RecordTooLarge {
                size: header.size(),
                max,
            });
        }
        let headers = check_batches(&bytes, max)?;
        self.append_validated(&mut bytes, headers, foreign)
    }

    /// Appends batches whose framing and CRC were checked, and waits for durability.
    fn append_validated(
        &self,
        bytes: &mut [u8],
        headers: Vec<BatchHeader>,
        foreign: bool,
    ) -> Result<AppendInfo, AppendError> {
        let info = self.write_validated(bytes, headers, foreign)?;
        self.wait_durable(info.last_offset + 1)?;
        Ok(info)
    }

    /// Writes batches whose framing and CRC were checked; `foreign` batches (from a client)
    /// are also checked for a consistent record count and, on compacted topics, keys.
    fn write_validated(
        &self,
        bytes: &mut [u8],
        headers: Vec<BatchHeader>,
        foreign: bool,
    ) -> Result<AppendInfo, AppendError> {
        if foreign {
            for (header, start) in headers.iter().zip(batch_starts(&headers)) {
                if header.record_count != header.last_offset_delta + 1 {
                    return Err(crate::batch::BatchError::Inconsistent(
                        "recordCount != lastOffsetDelta + 1",
                    )
                    .into());
                }
                if self.config().cleanup == CleanupPolicy::Compact {
                    let records = decode_records(Bytes::copy_from_slice(
                        &bytes[start..start + header.size()],
                    ))?;
                    if records.iter().any(|r| r.key.is_none()) {
                        return Err(AppendError::KeyRequired);
                    }
                }
            }
        }
        let info = self.write(bytes, &headers)?;
        self.appends.fetch_add(1, Ordering::Relaxed);
        Ok(info)
    }

    /// Assigns offsets and writes, under the writer lock. Everything below
    /// `last_offset + 1` must be durable before the append is acknowledged.
    fn write(&self, bytes: &mut [u8], headers: &[BatchHeader]) -> Result<AppendInfo, AppendError> {
        let now_ms = self.clock.now_ms();
        let mut writer = self.writer();
        if let Some(failure) = &self.durability().failure {
            return Err(AppendError::Poisoned(failure.clone()));
        }
        let incoming_offsets = headers
            .iter()
            .map(|h| u64::from(h.last_offset_delta) + 1)
            .sum();
        self.roll_if_needed(&mut writer, bytes.len() as u64, incoming_offsets, now_ms)?;
        let base_offset = writer.next_offset;
        let mut next = base_offset;
        let mut assigned = Vec::with_capacity(headers.len());
        for (header, start) in headers.iter().zip(batch_starts(headers)) {
            set_base_offset(&mut bytes[start..], next);
            assigned.push(BatchHeader {
                base_offset: next,
                ..*header
            });
            next += u64::from(header.last_offset_delta) + 1;
        }
        let active = writer
            .segments
            .last()
            .expect("a partition has an active segment")
            .clone();
        let end_position = active.append(bytes, &assigned, now_ms)?;
        writer.next_offset = next;
        writer.unsynced = true;
        if self.config().fsync != FsyncPolicy::Always {
            self.publish(&writer.segments, next, active.base_offset, end_position);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
        })
    }

    fn roll_if_needed(
        &self,
        writer: &mut Writer,
        incoming: u64,
        incoming_offsets: u64,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = writer.segments.last().expect("active segment").clone();
        let (size, first_append_ms) = {
            let state = active.state();
            (state.size, state.first_append_ms)
        };
        // Index entries hold offsets relative to the segment base in 32 bits, as Kafka's do,
        // so a batch that would start beyond that range goes to a new segment. Dense offsets
        // never get there within a segment's byte limit; a recovered segment can, when a
        // damaged `baseOffset` (not covered by the CRC) jumped ahead in a valid batch.
        let last_base = writer.next_offset + incoming_offsets.saturating_sub(1);
        let offsets_full = last_base - active.base_offset > u64::from(u32::MAX);
        let full = size > 0 && (size + incoming > self.config().segment_bytes || offsets_full);
        let old = first_append_ms.is_some_and(|t| now_ms - t >= self.config().segment_ms);
        if !(full || old) {
            return Ok(());
        }
        // Sealing always syncs, whatever the policy: a sealed segment is never scanned again on
        // open, so it must not be able to lose a tail to a power cut while a later segment
        // keeps its data — that would be a hole, not a lost suffix. It costs one fsync per
        // segment. The directory sync makes the new segment's entry durable for the same reason.
        // Any failure here poisons the partition: after a failed fsync the kernel may have
        // dropped the pages it could not write, and a later roll's successful fsync would
        // otherwise count them as durable.
        let sealed = (|| {
            active.seal()?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
            active.sync()?;
            let segment = Segment::create(&*self.storage, &self.dir, writer.next_offset)?;
            self.storage.sync_dir(&self.dir)?;
            Ok(Arc::new(segment))
        })();
        let segment = sealed.map_err(|error: io::Error| self.poison(error))?;
        {
            // The seal's sync covered everything written so far.
            let mut durability = self.durability();
            durability.durable_offset = durability.durable_offset.max(writer.next_offset);
            self.durability_changed.notify_all();
        }
        writer.segments.push(segment);
        self.publish(
            &writer.segments,
            writer.next_offset,
            active.base_offset,
            size,
        );
        Ok(())
    }

    /// Syncs the active segment and publishes what the sync covered. Called without locks.
    ///
    /// When a whole step is missing from the `preallocate_bytes` of zeros wanted ahead of the
    /// active segment's end, the round first writes that step (segment.rs "Pre-extension"), so
    /// that its one sync carries them and the file's new size, and the appends of the next
    /// rounds overwrite them. That round's waiters pay for one step; appenders never wait.
    pub(crate) fn sync_written(&self) -> io::Result<()> {
        let (segments, active, next_offset, size) = {
            let mut writer = self.writer();
            writer.unsynced = false;
            let active = writer.segments.last().expect("active segment").clone();
            let size = active.state().size;
            (writer.segments.clone(), active, writer.next_offset, size)
        };
        let config = self.config();
        if config.preallocate_bytes > 0 {
            // Only an optimisation: a disk that refuses zeros (full) refuses the next append
            // too, and that append reports it. Zeros half written are cut like any others.
            let _ = active.extend_ahead(config.preallocate_bytes, config.segment_bytes);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        active.sync_log()?;
        let mut durability = self.durability();
        if next_offset > durability.durable_offset {
            durability.durable_offset = next_offset;
            if self.config().fsync == FsyncPolicy::Always {
                self.publish(&segments, next_offset, active.base_offset, size);
            }
        }
        Ok(())
    }

    /// Syncs unsynced bytes now (the interval flusher and shutdown call this). A partition
    /// poisoned by an earlier failed fsync reports it here every time, whether or not bytes
    /// were written since: a shutdown must not report a clean sync of data the kernel may
    /// have dropped.
    pub fn flush(&self) -> Result<(), AppendError> {
        if let Some(failure) = self.failure() {
            return Err(AppendError::Poisoned(failure));
        }
        if !self.writer().unsynced {
            return Ok(());
        }
        self.sync_written().map_err(|error| {
            self.poison(io::Error::new(error.kind(), error.to_string()));
            AppendError::Io(error)
        })
    }

    /// Cuts the zeros written ahead of the active segment and syncs the cut, so a stopped
    /// log's files end at their last batch (a clean shutdown; segment.rs "Pre-extension").
    pub(crate) fn trim_preallocated(&self) -> io::Result<()> {
        if self.failure().is_some() {
            return Ok(());
        }
        let active = self
            .writer()
            .segments
            .last()
            .expect("active segment")
            .clone();
        if active.trim()? {
            active.sync_log()?;
        }
        Ok(())
    }

    /// Why the partition refuses writes, when an fsync (or a roll's sync) failed since it was
    /// opened; `None` while it is healthy. A server reports this in its health check.
    pub fn failure(&self) -> Option<String> {
        self.durability().failure.clone()
    }

    /// Records `error` as the partition's sticky failure (the first one is kept) and wakes
    /// waiting appenders, which then fail; returns the error for the caller.
    fn poison(&self, error: io::Error) -> io::Error {
        let mut durability = self.durability();
        durability.failure.get_or_insert_with(|| error.to_string());
        let waiters = durability.waiters.take_settled(0, true);
        drop(durability);
        self.durability_changed.notify_all();
        waiters.into_iter().for_each(Waker::wake);
        error
    }

    /// Makes `next_offset` (up to a batch end at `position` of segment `end_segment`) visible.
    fn publish(
        &self,
        segments: &[Arc<Segment>],
        next_offset: u64,
        end_segment: u64,
        position: u64,
    ) {
        let mut visible = self.visible();
        if next_offset < visible.high_watermark {
            return;
        }
        if visible.segments.len() != segments.len()
            || visible
                .segments
                .iter()
                .zip(segments)
                .any(|(a, b)| !Arc::ptr_eq(a, b))
        {
            visible.segments = Arc::new(segments.to_vec());
        }
        visible.high_watermark = next_offset;
        visible.end_segment = end_segment;
        visible.end_position = position;
        self.visible_changed.notify_all();
        drop(visible);
        self.appended.wake_all();
    }

    /// The signal `publish` wakes.
    pub(crate) fn append_signal(&self) -> &AppendSignal {
        &self.appended
    }

    /// Reads whole batches starting with the one that holds `offset`, up to about `max_bytes`
    /// (at least one batch is returned when any is readable, however large, so a consumer can
    /// always make progress). Reading at the high watermark returns no bytes.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadBatches, ReadError> {
        let visible = self.visible().clone();
        let log_start = visible.log_start;
        let out_of_range = ReadError::OffsetOutOfRange {
            offset,
            log_start,
            high_watermark: visible.high_watermark,
        };
        if offset > visible.high_watermark || offset < log_start {
            return Err(out_of_range);
        }
        let result = |bytes: Bytes| ReadBatches {
            bytes,
            high_watermark: visible.high_watermark,
            log_start_offset: log_start,
        };
        if offset == visible.high_watermark {
            return Ok(result(Bytes::new()));
        }
        let first = visible
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for segment in &visible.segments[first..] {
            if segment.base_offset > visible.end_segment {
                break;
            }
            let limit = if segment.base_offset == visible.end_segment {
                visible.end_position
            } else {
                segment.state().size
            };
            let max = STORED_BATCH_BYTES_MAX;
            let found = segment
                .position_for_offset(offset, limit, max)
                .map_err(|error| self.read_context(error.into(), offset))?;
            if let Some(position) = found {
                let bytes = self
                    .read_from(segment, position, limit, max_bytes, visible.high_watermark)
                    .map_err(|error| self.read_context(error, offset))?;
                return Ok(result(bytes));
            }
        }
        Ok(result(Bytes::new()))
    }

    /// Names the partition and the offset asked for in a corruption report, so an operator
    /// can tell which topic, partition, segment, byte and offset to look at.
    fn read_context(&self, error: ReadError, offset: u64) -> ReadError {
        let ReadError::Corrupt(message) = error else {
            return error;
        };
        let name = |path: Option<&Path>| {
            path.and_then(Path::file_name)
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        let topic = name(self.dir.parent());
        let partition = name(Some(&self.dir));
        ReadError::Corrupt(format!(
            "topic '{topic}' partition {partition}, reading offset {offset}: {message}"
        ))
    }

    /// Reads whole batches from `position` up to about `max_bytes`. A batch that fails its
    /// checks ends the read: when valid batches come before it they are returned and the next
    /// read, which starts at the bad batch, fails with [`ReadError::Corrupt`]; so a consumer
    /// gets every intact batch before a damaged one whatever its `max_bytes`. The checks are
    /// the CRC and the offsets: the CRC does not cover `baseOffset`, so a batch whose offsets
    /// do not increase or pass the high watermark is corrupt too.
    fn read_from(
        &self,
        segment: &Segment,
        position: u64,
        limit: u64,
        max_bytes: usize,
        high_watermark: u64,
    ) -> Result<Bytes, ReadError> {
        let max_bytes = max_bytes.clamp(1, READ_BYTES_MAX) as u64;
        let want = (limit - position).min(max_bytes.max(crate::batch::BATCH_HEADER_BYTES as u64));
        let mut bytes = Vec::new();
        segment
            .log
            .read_exact_into(&mut bytes, want as usize, position)?;
        let mut end = 0;
        let mut next_offset = segment.base_offset;
        loop {
            let at = position + end as u64;
            let header = match BatchHeader::parse(&bytes[end..], STORED_BATCH_BYTES_MAX) {
                Ok(header) => header,
                Err(crate::batch::BatchError::Truncated { .. }) if end > 0 => break,
                Err(crate::batch::BatchError::Truncated { .. }) => {
                    return Err(corrupt_read(
                        segment,
                        &self.dir,
                        position,
                        "batch extends past the segment end",
                    ));
                }
                Err(_) if end > 0 => break,
                Err(error) => {
                    return Err(corrupt(&self.dir, segment.base_offset, at, error).into());
                }
            };
            if end + header.size() > bytes.len() {
                if end > 0 {
                    break;
                }
                // The first batch is larger than max_bytes: read the rest of it and return it
                // whole.
                if position + header.size() as u64 > limit {
                    return Err(corrupt_read(
                        segment,
                        &self.dir,
                        position,
                        "batch extends past the segment end",
                    ));
                }
                let read = bytes.len();
                segment.log.read_exact_into(
                    &mut bytes,
                    header.size() - read,
                    position + read as u64,
                )?;
            }
            let checked = check_batch(&bytes[end..], STORED_BATCH_BYTES_MAX).and_then(|h| {
                if h.base_offset < next_offset || h.last_offset() >= high_watermark {
                    Err(crate::batch::BatchError::Inconsistent(
                        "batch offsets out of order or past the high watermark",
                    ))
                } else {
                    Ok(h)
                }
            });
            match checked {
                Ok(header) => next_offset = header.next_offset(),
                Err(_) if end > 0 => break,
                Err(error) => {
                    return Err(corrupt(&self.dir, segment.base_offset, at, error).into());
                }
            }
            end += header.size();
            if end == bytes.len() {
                break;
            }
        }
        bytes.truncate(end);
        Ok(bytes.into())
    }

    /// Reads and decodes records from `offset` on (records below `offset` in the first batch
    /// are skipped), up to about `max_bytes` of stored batches. Control batches (Kafka's
    /// transaction markers, written by `keel serve`'s transaction coordinator) hold no
    /// records and are skipped.
    pub fn read_records(&self, offset: u64, max_bytes: usize) -> Result<Vec<Record>, ReadError> {
        self.read_records_from(offset, max_bytes)
            .map(|read| read.records)
    }

    /// [`Partition::read_records`], with where the next read starts: one past the last batch
    /// read. A reader that moves on from its last record alone would read a trailing
    /// transaction marker again and again; this one moves past it.
    pub fn read_records_from(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<RecordsRead, ReadError> {
        let batches = self.read(offset, max_bytes)?;
        decode_batches(batches.bytes, offset)
    }

    /// Calls `apply` with every record from the log start to the high watermark, in order,
    /// reading `chunk_bytes` at a time: how a component rebuilds its state from the topic it
    /// keeps it in.
    pub fn replay(
        &self,
        chunk_bytes: usize,
        mut apply: impl FnMut(Record),
    ) -> Result<(), ReadError> {
        let mut offset = self.log_start_offset();
        while offset < self.high_watermark() {
            let read = self.read_records_from(offset, chunk_bytes)?;
            if read.next_offset <= offset {
                break;
            }
            offset = read.next_offset;
            read.records.into_iter().for_each(&mut apply);
        }
        Ok(())
    }

    /// The earliest offset whose record timestamp is at least `timestamp_ms`, or `None` when
    /// every stored record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, ReadError> {
        let visible = self.visible().clone();
        for segment in visible.segments.iter() {
            if segment.base_offset > visible.end_segment {
                break;
            }
            let (limit, max_ts) = {
                let state = segment.state();
                let limit = if segment.base_offset == visible.end_segment {
                    visible.end_position
                } else {
                    state.size
                };
                (limit, state.max_timestamp_ms)
            };
            if max_ts < timestamp_ms {
                continue;
            }
            let max = STORED_BATCH_BYTES_MAX;
            let Some(position) = segment.position_for_timestamp(timestamp_ms, limit, max)? else {
                continue;
            };
            let bytes = self.read_from(segment, position, limit, 1, visible.high_watermark)?;
            let records = decode_batches(bytes, 0)?.records;
            if let Some(record) = records.iter().find(|r| r.timestamp_ms >= timestamp_ms) {
                if record.offset < visible.log_start {
                    // Deleted: the answer is the first record from the log start on that is
                    // late enough, as Kafka searches from max(segment base, log start).
                    return self.scan_for_timestamp(visible.log_start, timestamp_ms);
                }
                return Ok(Some(record.offset));
            }
        }
        Ok(None)
    }

    /// The first offset from `offset` on whose record timestamp is at least `timestamp_ms`,
    /// read record by record.
    fn scan_for_timestamp(
        &self,
        mut offset: u64,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, ReadError> {
        loop {
            let records = self.read_records(offset, 1 << 20)?;
            let Some(last) = records.last() else {
                return Ok(None);
            };
            if let Some(record) = records.iter().find(|r| r.timestamp_ms >= timestamp_ms) {
                return Ok(Some(record.offset));
            }
            offset = last.offset + 1;
        }
    }

    /// One past the last offset readers can see.
    pub fn high_watermark(&self) -> u64 {
        self.visible().high_watermark
    }

    /// The first offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.visible().log_start
    }

    /// A future that resolves with the new high watermark once it is above `seen` — for async
    /// callers (a long-polling fetch) what [`Partition::wait_for`] is for threads. Woken by
    /// every writer of this partition and by no other partition.
    pub fn high_watermark_past(self: &Arc<Self>, seen: u64) -> HighWatermarkPast {
        HighWatermarkPast::new(self.clone(), seen)
    }

    /// Blocks until the high watermark passes `offset` (a record at `offset` is readable) or
    /// `timeout` elapses; returns the high watermark. Waits on a condition variable, never spins.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut visible = self.visible();
        while visible.high_watermark <= offset {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            visible = self
                .visible_changed
                .wait_timeout(visible, deadline - now)
                .expect("visible lock")
                .0;
        }
        visible.high_watermark
    }

    /// Appends and syncs since open.
    pub fn sync_stats(&self) -> SyncStats {
        SyncStats {
            appends: self.appends.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.writer().segments.iter().map(|s| s.state().size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.writer().segments.len()
    }

    /// The topic configuration this partition follows now (a copy: the settings may change
    /// while the log runs, see `Log::alter_topic_config`).
    pub fn config(&self) -> TopicConfig {
        self.config.read().expect("config lock poisoned").clone()
    }

    /// Follows `config` from the next append, read or maintenance pass on.
    pub(crate) fn set_config(&self, config: TopicConfig) {
        *self.config.write().expect("config lock poisoned") = config;
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().expect("writer lock poisoned")
    }

    pub(crate) fn durability(&self) -> MutexGuard<'_, Durability> {
        self.durability.lock().expect("durability lock poisoned")
    }

    fn visible(&self) -> MutexGuard<'_, Visible> {
        self.visible.lock().expect("visible lock poisoned")
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The time, in ms since the Unix epoch, that this partition stamps appends with: its
    /// log's clock, so callers that encode their own batches (the embedded event store)
    /// record the same time a test clock or the log would.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Replaces the segment list (retention, compaction) and republishes it to readers.
    pub(crate) fn replace_segments(&self, writer: &mut Writer, segments: Vec<Arc<Segment>>) {
        writer.segments = segments;
        let mut visible = self.visible();
        visible.segments = Arc::new(writer.segments.clone());
        visible.log_start = visible.log_start.max(writer.segments[0].base_offset);
        self.visible_changed.notify_all();
    }

    /// Deletes every record before `offset` (Kafka's DeleteRecords): readers start at
    /// `offset` from now on, sealed segments wholly before it are removed, and the new start
    /// is committed to the partition's `log-start` file (written beside, fsynced, renamed,
    /// directory fsynced) before it takes effect, so it survives a crash. Returns the log
    /// start offset afterwards; an `offset` at or before it changes nothing.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64, ReadError> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let (log_start, high_watermark) = {
            let visible = self.visible();
            (visible.log_start, visible.high_watermark)
        };
        if offset > high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start,
                high_watermark,
            });
        }
        if offset <= log_start {
            return Ok(log_start);
        }
        write_log_start(&*self.storage, &self.dir, offset)?;
        self.visible().log_start = offset;
        let writer = self.writer();
        // A sealed segment is wholly before `offset` when the next one starts at or before it.
        let doomed = writer
            .segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset <= offset)
            .count();
        self.remove_leading_segments(writer, doomed)?;
        Ok(offset)
    }

    /// Removes the first `count` segments: out of the list readers see first, then from disk.
    fn remove_leading_segments(
        &self,
        mut writer: MutexGuard<'_, Writer>,
        count: usize,
    ) -> io::Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let remaining = writer.segments.split_off(count);
        let removed = std::mem::take(&mut writer.segments);
        self.replace_segments(&mut writer, remaining);
        drop(writer);
        for segment in &removed {
            segment.remove_files(&*self.storage)?;
        }
        self.storage.sync_dir(&self.dir)?;
        Ok(removed.len())
    }

    /// Deletes sealed segments past the retention limits; returns how many were deleted.
    pub fn enforce_retention(&self) -> io::Result<usize> {
        let (retention_ms, retention_bytes) =
            (self.config().retention_ms, self.config().retention_bytes);
        if retention_ms.is_none() && retention_bytes.is_none() {
            return Ok(0);
        }
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let now_ms = self.clock.now_ms();
        let writer = self.writer();
        let mut total: u64 = writer.segments.iter().map(|s| s.state().size).sum();
        let sealed = writer.segments.len() - 1;
        let mut doomed = 0;
        for segment in &writer.segments[..sealed] {
            let state = segment.state();
            let expired = retention_ms.is_some_and(|ms| state.max_timestamp_ms < now_ms - ms);
            let oversized = retention_bytes.is_some_and(|max| total - state.size >= max);
            if !(expired || oversized) {
                break;
            }
            total -= state.size;
            doomed += 1;
        }
        self.remove_leading_segments(writer, doomed)
    }

    /// Path of a segment file, for tests that corrupt or inspect files.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.writer()
            .segments
            .iter()
            .map(|s| segment_file(&self.dir, s.base_offset, "log"))
            .collect()
    }
}

/// Decodes concatenated batches, keeping records at or after `from_offset`; control batches
/// (transaction markers) are skipped.
pub(crate) fn decode_batches(mut bytes: Bytes, from_offset: u64) -> Result<RecordsRead, ReadError> {
    let mut read = RecordsRead {
        records: Vec::new(),
        next_offset: from_offset,
    };
    while !bytes.is_empty() {
        let header =
            BatchHeader::parse(&bytes, u32::MAX).map_err(|e| ReadError::Corrupt(e.to_string()))?;
        let batch = bytes.split_to(header.size().min(bytes.len()));
        read.next_offset = read.next_offset.max(header.next_offset());
        if is_control(&batch) {
            continue;
        }
        let decoded = decode_records(batch).map_err(|e| ReadError::Corrupt(e.to_string()))?;
        read.records
            .extend(decoded.into_iter().filter(|r| r.offset >= from_offset));
    }
    Ok(read)
}

/// Whether a whole stored batch is a control batch (its attributes' bit 5, Kafka's format).
fn is_control(batch: &[u8]) -> bool {
    const CONTROL: u8 = 0x20;
    // `attributes` is a big-endian i16: the flag is in its low byte.
    batch[crate::batch::layout::ATTRIBUTES_AT + 1] & CONTROL != 0
}

fn batch_starts(headers: &[BatchHeader]) -> impl Iterator<Item = usize> + '_ {
    headers.iter().scan(0usize, |start, header| {
        let this = *start;
        *start += header.size();
        Some(this)
    })
}

fn corrupt_read(segment: &Segment, dir: &Path, position: u64, reason: &'static str) -> ReadError {
    corrupt(
        dir,
        segment.base_offset,
        position,
        crate::batch::BatchError::Inconsistent(reason),
    )
    .into()
}

/// The partition's log start offset, when records were deleted inside its first segment.
const LOG_START_FILE: &str = "log-start";

/// The committed log start offset, if any: one decimal number.
fn read_log_start(storage: &dyn Storage, dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join(LOG_START_FILE);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let file = storage.open(&path, false)?;
    let mut bytes = Vec::new();
    file.read_exact_into(&mut bytes, file.size()? as usize, 0)?;
    let text = String::from_utf8_lossy(&bytes);
    text.trim().parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {text:?}, not an offset", path.display()),
        )
    })
}

/// Commits `offset` as the partition's log start: written beside, fsynced, renamed over the
/// old one, the directory fsynced — a crash leaves the old start or the new one.
fn write_log_start(storage: &dyn Storage, dir: &Path, offset: u64) -> io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    let file = storage.open(&tmp, true)?;
    file.set_len(0)?;
    file.write_all_at(format!("{offset}\n").as_bytes(), 0)?;
    file.sync_data()?;
    storage.rename(&tmp, &dir.join(LOG_START_FILE))?;
    storage.sync_dir(dir)
}
