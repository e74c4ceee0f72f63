//! One segment: a `.log` file of record batches and its two sparse indexes.
//!
//! A segment knows how to append whole batches, find the batch holding an offset or a
//! timestamp, read byte ranges, scan itself for recovery and seal itself. It knows nothing of
//! durability policy or visibility: the partition decides when to sync and what readers see.
//!
//! # Pre-extension
//!
//! The active segment's file may run past its last batch: zeros written ahead of the end
//! ([`Segment::extend_ahead`], up to `preallocate_bytes` of the topic, one step per sync
//! round), so that an append overwrites blocks the file already has. On ext4 an `fdatasync`
//! of an append that grew the file waits for three device round trips one after the other —
//! the data, the inode's block (its new size) and the cache flush; one that only overwrote
//! waits for two (BENCHMARKS.md, "three device round trips"). `fallocate` would not do: its
//! extents are *unwritten*, and the first write into a block converts it, which changes the
//! extent tree the sync must then write (measured: docs/log-format.md).
//! So the zeros are written, and the sync that follows carries them and the new size once per
//! step of zeros instead of once per append. Their cost is disk bandwidth: every byte of a
//! segment is written twice, zeros first.
//!
//! The segment's logical end (`size`) is therefore no longer its file's length, and every
//! user of a size uses `size`. What the file holds past it, and why recovery can tell:
//!
//! | file past the last valid batch | how it got there | open |
//! |---|---|---|
//! | nothing | no pre-extension, or trimmed | as ever |
//! | zeros only | pre-extension (written, maybe synced) | end of the log, cut silently |
//! | a batch that fails its checks, then anything | a torn append (into zeros or not) | cut and reported, as ever |
//! | a zero header, then non-zero bytes | a torn append whose first page was lost | cut and reported |
//!
//! A valid batch header is never all zeros (its length and magic are not), so zeros past the
//! end are never mistaken for a batch, and a zero header with data after it is a torn write,
//! reported as one. Whatever is cut, the file is cut to the last valid batch, so a later
//! append never lands in front of stale bytes that a later scan could read on. A sealed
//! segment is cut to its end when it is sealed ([`Segment::seal`]) and the active one at a
//! clean shutdown, so the files of a stopped log look as they did before pre-extension; a
//! sealed segment that a crash left with its zeros (the cut not yet durable) is cut at open.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::batch::{BATCH_HEADER_BYTES, BatchError, BatchHeader, check_batch};
use crate::index::{OffsetEntry, SegmentIndex, TimeEntry};
use crate::limits::{INDEX_INTERVAL_BYTES, PREALLOCATE_STEP_BYTES, SCAN_CHUNK_BYTES};
use crate::storage::{Storage, StorageFile};

/// A segment of a partition.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) log: Arc<dyn StorageFile>,
    dir: PathBuf,
    state: Mutex<SegmentState>,
}

#[derive(Debug)]
pub(crate) struct SegmentState {
    /// Bytes of whole batches in `.log`: the segment's logical end.
    pub(crate) size: u64,
    /// Bytes the file is known to hold: `size` and the zeros written ahead of it.
    extent: u64,
    /// Sealed: nothing is appended or written ahead any more.
    sealed: bool,
    /// One past the last offset stored here (the base offset when empty).
    pub(crate) next_offset: u64,
    /// Largest batch max timestamp seen (`i64::MIN` when empty).
    pub(crate) max_timestamp_ms: i64,
    /// Clock time of the first append, for roll by age.
    pub(crate) first_append_ms: Option<i64>,
    bytes_since_index: u64,
    index: SegmentIndex,
}

/// Where a scan of a segment stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// End of the last valid batch.
    pub(crate) position: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub(crate) error: Option<BatchError>,
}

/// File names of a segment.
pub(crate) fn segment_file(dir: &Path, base_offset: u64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// Parses a `.log` file name into its base offset.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

impl Segment {
    /// Creates an empty segment, truncating any leftover files of the same name.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: u64,
    ) -> io::Result<Segment> {
        let log = storage.open(&segment_file(dir, base_offset, "log"), true)?;
        log.set_len(0)?;
        let index = SegmentIndex::empty(
            storage.open(&segment_file(dir, base_offset, "index"), true)?,
            storage.open(&segment_file(dir, base_offset, "timeindex"), true)?,
        )?;
        Ok(Segment::with_state(
            dir,
            base_offset,
            log,
            index,
            0,
            base_offset,
            i64::MIN,
        ))
    }

    /// Opens an existing segment. A sealed segment trusts its index and scans only the tail
    /// after the last entry; the active one (`recover`) scans everything, truncates at the
    /// first invalid batch and rebuilds its index. Returns the segment and, when something was
    /// truncated, how many bytes and why.
    pub(crate) fn open(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: u64,
        recover: bool,
        max_batch_bytes: u32,
    ) -> io::Result<(Segment, Option<(u64, String)>)> {
        let log = storage.open(&segment_file(dir, base_offset, "log"), false)?;
        let offset_file = storage.open(&segment_file(dir, base_offset, "index"), true)?;
        let time_file = storage.open(&segment_file(dir, base_offset, "timeindex"), true)?;
        let file_len = log.size()?;
        let loaded = if recover {
            None
        } else {
            SegmentIndex::load(offset_file.clone(), time_file.clone())?
        };
        let rebuild = loaded.is_none();
        let index = match loaded {
            Some(index) => index,
            None => SegmentIndex::empty(offset_file, time_file)?,
        };
        let (start_position, start_offset, max_ts) =
            match (index.offsets.last(), index.times.last()) {
                (Some(entry), time) => (
                    u64::from(entry.position),
                    base_offset + u64::from(entry.relative_offset),
                    time.map_or(i64::MIN, |t| t.timestamp_ms),
                ),
                (None, _) => (0, base_offset, i64::MIN),
            };
        let segment = Segment::with_state(dir, base_offset, log, index, 0, base_offset, max_ts);
        let mut state = segment.state();
        state.size = start_position;
        state.next_offset = start_offset;
        let end = segment.scan_into(
            &mut state,
            start_position,
            file_len,
            max_batch_bytes,
            rebuild,
            recover,
        )?;
        // Zeros past the last batch are written-ahead space, not damage (module docs).
        let zero_tail = end.error.is_some() && is_zero_tail(&*segment.log, end.position, file_len)?;
        let mut truncated = None;
        if (recover || zero_tail) && end.position < file_len {
            segment.log.set_len(end.position)?;
            if !zero_tail {
                let reason = end
                    .error
                    .map_or_else(|| "trailing bytes".to_string(), |e| e.to_string());
                truncated = Some((file_len - end.position, reason));
            }
        } else if !recover {
            // A sealed segment is trusted: its size is the file, and a bad batch inside it is
            // reported by the read that reaches it.
            state.size = file_len;
        }
        state.extent = state.size;
        state.sealed = !recover;
        drop(state);
        Ok((segment, truncated))
    }

    fn with_state(
        dir: &Path,
        base_offset: u64,
        log: Arc<dyn StorageFile>,
        index: SegmentIndex,
        size: u64,
        next_offset: u64,
        max_timestamp_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log,
            dir: dir.to_path_buf(),
            state: Mutex::new(SegmentState {
                size,
                extent: size,
                sealed: false,
                next_offset,
                max_timestamp_ms,
                first_append_ms: None,
                bytes_since_index: 0,
                index,
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, SegmentState> {
        self.state.lock().expect("segment lock poisoned")
    }

    /// Scans whole, valid batches from `position` up to `end`, indexing each (when `index`),
    /// and advances `state` past them.
    ///
    /// With `dense`, each batch must start exactly where the previous one ended. That holds
    /// in the active segment, which compaction never rewrites, and it is the only check on a
    /// batch's `baseOffset`: the CRC-32C does not cover it, so a flipped bit there would
    /// otherwise be accepted and make every later offset jump.
    fn scan_into(
        &self,
        state: &mut SegmentState,
        position: u64,
        end: u64,
        max_batch_bytes: u32,
        index: bool,
        dense: bool,
    ) -> io::Result<ScanEnd> {
        let mut next_expected = state.next_offset;
        let result = scan_batches(&*self.log, position, end, max_batch_bytes, |at, header| {
            if dense && header.base_offset != next_expected {
                return Err(BatchError::Inconsistent(
                    "base offset does not follow the previous batch",
                ));
            }
            if header.base_offset < next_expected {
                return Err(BatchError::Inconsistent("base offset does not increase"));
            }
            next_expected = header.next_offset();
            if index {
                state.index_batch(self.base_offset, at, header)?;
            } else {
                state.max_timestamp_ms = state.max_timestamp_ms.max(header.max_timestamp_ms);
            }
            state.size = at + header.size() as u64;
            state.next_offset = header.next_offset();
            Ok(())
        })?;
        Ok(result)
    }

    /// Writes whole batches at the end of the file and indexes them. On a failed write the
    /// file is cut back to its previous size so no partial batch stays behind.
    pub(crate) fn append(
        &self,
        bytes: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> io::Result<u64> {
        let mut state = self.state();
        let start = state.size;
        if let Err(error) = self.log.write_all_at(bytes, start) {
            state.cut_to(&*self.log, start)?;
            return Err(error);
        }
        let mut at = start;
        for header in headers {
            if let Err(error) = state.index_batch(self.base_offset, at, header) {
                // Cut the written bytes so a refused append cannot come back after a restart.
                state.cut_to(&*self.log, start)?;
                return Err(io::Error::other(error));
            }
            at += header.size() as u64;
        }
        state.size = at;
        state.extent = state.extent.max(at);
        state.next_offset = headers
            .last()
            .map_or(state.next_offset, |h| h.next_offset());
        state.first_append_ms.get_or_insert(now_ms);
        Ok(at)
    }

    /// Byte position of the batch holding `offset`, or of the first batch after it (offsets
    /// can be missing after compaction); `None` when no batch below `limit` qualifies.
    pub(crate) fn position_for_offset(
        &self,
        offset: u64,
        limit: u64,
        max_batch_bytes: u32,
    ) -> io::Result<Option<u64>> {
        let relative = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let start = u64::from(self.state().index.position_for_offset(relative));
        self.first_batch_from(start, limit, max_batch_bytes, |h| h.last_offset() >= offset)
    }

    /// Byte position of the first batch whose max timestamp is at least `timestamp_ms`.
    pub(crate) fn position_for_timestamp(
        &self,
        timestamp_ms: i64,
        limit: u64,
        max_batch_bytes: u32,
    ) -> io::Result<Option<u64>> {
        let start = u64::from(self.state().index.position_for_timestamp(timestamp_ms));
        self.first_batch_from(start, limit, max_batch_bytes, |h| {
            h.max_timestamp_ms >= timestamp_ms
        })
    }

    fn first_batch_from(
        &self,
        start: u64,
        limit: u64,
        max_batch_bytes: u32,
        wanted: impl Fn(&BatchHeader) -> bool,
    ) -> io::Result<Option<u64>> {
        let mut position = start;
        let mut header_bytes = [0u8; BATCH_HEADER_BYTES];
        while position + BATCH_HEADER_BYTES as u64 <= limit {
            crate::storage::read_exact_at(&*self.log, &mut header_bytes, position)?;
            let header = BatchHeader::parse(&header_bytes, max_batch_bytes)
                .map_err(|error| corrupt(&self.dir, self.base_offset, position, error))?;
            if wanted(&header) {
                return Ok(Some(position));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// Writes one step of zeros (`PREALLOCATE_STEP_BYTES`, or `ahead` when smaller) after
    /// what the file holds, when a whole step is missing from the `ahead` bytes wanted past the
    /// last batch; never past `limit` (the size at which the segment rolls) nor into a sealed
    /// segment. The caller syncs them. Returns the bytes written.
    ///
    /// Whole steps only: a top-up of what the last round appended would change the file's
    /// size in every round, and its sync would write the inode's block every time — the cost
    /// this removes. One step per call, so that no sync round carries more than one: the
    /// round's waiters wait for that write. Steps keep up as long as a round appends less than
    /// a step, which one-record requests (the case this is for) always do; larger appends
    /// overtake the zeros and grow the file as they would without them.
    pub(crate) fn extend_ahead(&self, ahead: u64, limit: u64) -> io::Result<u64> {
        static ZEROS: [u8; PREALLOCATE_STEP_BYTES] = [0; PREALLOCATE_STEP_BYTES];
        let mut state = self.state();
        let at = state.extent.max(state.size);
        let end = (at + ahead.min(PREALLOCATE_STEP_BYTES as u64)).min(limit);
        if state.sealed || end <= at || end > state.size + ahead {
            return Ok(0);
        }
        self.log.write_all_at(&ZEROS[..(end - at) as usize], at)?;
        state.extent = end;
        Ok(end - at)
    }

    /// Cuts the zeros written ahead, so the file ends at its last batch (a clean shutdown;
    /// [`Segment::seal`] does it too). Returns whether the file changed; the caller syncs.
    pub(crate) fn trim(&self) -> io::Result<bool> {
        self.state().cut_zeros_ahead(&*self.log)
    }

    /// Seals the segment: cuts the zeros written ahead of its end, so a sealed segment's file
    /// ends at its last batch as it always did, and records its final max timestamp in the
    /// time index. The caller syncs.
    pub(crate) fn seal(&self) -> io::Result<()> {
        let mut state = self.state();
        state.sealed = true;
        state.cut_zeros_ahead(&*self.log)?;
        let max_ts = state.max_timestamp_ms;
        let needs_entry = state
            .index
            .times
            .last()
            .is_none_or(|t| t.timestamp_ms < max_ts);
        if needs_entry
            && state.size > 0
            && let Some(last) = state.index.offsets.last().copied()
        {
            state.index.push_time(TimeEntry {
                timestamp_ms: max_ts,
                relative_offset: last.relative_offset,
                position: last.position,
            })?;
        }
        Ok(())
    }

    /// Makes the log bytes durable, not the indexes: enough for the active segment, whose
    /// indexes are rebuilt by the recovery scan on every open. One `fdatasync` per group
    /// commit instead of three.
    pub(crate) fn sync_log(&self) -> io::Result<()> {
        self.log.sync_data()
    }

    /// Makes the log and its indexes durable (sealing: a sealed segment's index is trusted).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.log.sync_data()?;
        self.state().index.sync()
    }

    /// Deletes the segment's files.
    pub(crate) fn remove_files(&self, storage: &dyn Storage) -> io::Result<()> {
        for extension in ["log", "index", "timeindex"] {
            let path = segment_file(&self.dir, self.base_offset, extension);
            if storage.exists(&path) {
                storage.remove_file(&path)?;
            }
        }
        Ok(())
    }
}

impl SegmentState {
    /// Cuts the file at `end` (the logical end, or an append's start after it failed).
    fn cut_to(&mut self, log: &dyn StorageFile, end: u64) -> io::Result<()> {
        log.set_len(end)?;
        self.extent = end;
        Ok(())
    }

    /// Cuts the zeros written ahead of the last batch; returns whether there were any.
    fn cut_zeros_ahead(&mut self, log: &dyn StorageFile) -> io::Result<bool> {
        let ahead = self.extent > self.size;
        if ahead {
            self.cut_to(log, self.size)?;
        }
        Ok(ahead)
    }

    /// Adds index entries for the batch at `position` when the interval has passed.
    fn index_batch(
        &mut self,
        base_offset: u64,
        position: u64,
        header: &BatchHeader,
    ) -> Result<(), BatchError> {
        let relative_offset = u32::try_from(header.base_offset - base_offset)
            .map_err(|_| BatchError::Inconsistent("offset too far from segment base"))?;
        let position32 = u32::try_from(position)
            .map_err(|_| BatchError::Inconsistent("segment larger than 4 GiB"))?;
        let grew = header.max_timestamp_ms > self.max_timestamp_ms;
        self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp_ms);
        if self.index.offsets.is_empty() || self.bytes_since_index >= INDEX_INTERVAL_BYTES {
            let entry = OffsetEntry {
                relative_offset,
                position: position32,
            };
            self.index
                .push_offset(entry)
                .map_err(|e| BatchError::Records(e.to_string()))?;
            if grew || self.index.times.is_empty() {
                let time = TimeEntry {
                    timestamp_ms: self.max_timestamp_ms,
                    relative_offset,
                    position: position32,
                };
                self.index
                    .push_time(time)
                    .map_err(|e| BatchError::Records(e.to_string()))?;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size() as u64;
        Ok(())
    }
}

/// An I/O error naming a corrupt batch's place, for reads of sealed data.
pub(crate) fn corrupt(dir: &Path, base_offset: u64, position: u64, error: BatchError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        CorruptBatch {
            segment: segment_file(dir, base_offset, "log"),
            position,
            error,
        },
    )
}

/// A batch that failed validation where data was expected to be valid.
#[derive(Debug, thiserror::Error)]
#[error("corrupt batch in {} at byte {position}: {error}", segment.display())]
pub struct CorruptBatch {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte position of the batch in it.
    pub position: u64,
    /// What is wrong.
    pub error: BatchError,
}

/// Whether every byte of `[position, end)` is zero: space written ahead of the last batch,
/// never a torn batch (module docs). Reads in chunks and stops at the first other byte.
fn is_zero_tail(file: &dyn StorageFile, mut position: u64, end: u64) -> io::Result<bool> {
    let mut chunk = vec![0u8; SCAN_CHUNK_BYTES.min((end - position) as usize)];
    while position < end {
        let n = chunk.len().min((end - position) as usize);
        crate::storage::read_exact_at(file, &mut chunk[..n], position)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        position += n as u64;
    }
    Ok(true)
}

/// Calls `visit` for each whole, CRC-valid batch in `[position, end)`, reading in chunks.
/// Stops at the first invalid batch or at a `visit` error, and reports where.
pub(crate) fn scan_batches(
    file: &dyn StorageFile,
    mut position: u64,
    end: u64,
    max_batch_bytes: u32,
    mut visit: impl FnMut(u64, &BatchHeader) -> Result<(), BatchError>,
) -> io::Result<ScanEnd> {
    let mut chunk: Vec<u8> = Vec::new();
    let mut chunk_start = position;
    while position < end {
        let offset_in_chunk = (position - chunk_start) as usize;
        let available = chunk.len().saturating_sub(offset_in_chunk);
        let needed =
            match BatchHeader::parse(&chunk[offset_in_chunk.min(chunk.len())..], max_batch_bytes) {
                Ok(header) => header.size(),
                Err(BatchError::Truncated { .. }) => BATCH_HEADER_BYTES,
                Err(error) => {
                    return Ok(ScanEnd {
                        position,
                        error: Some(error),
                    });
                }
            };
        if available < needed {
            let want = needed.max(SCAN_CHUNK_BYTES).min((end - position) as usize);
            if want < needed {
                let error = BatchError::Truncated {
                    needed,
                    available: want,
                };
                return Ok(ScanEnd {
                    position,
                    error: Some(error),
                });
            }
            chunk.resize(want, 0);
            crate::storage::read_exact_at(file, &mut chunk, position)?;
            chunk_start = position;
            continue;
        }
        let bytes = &chunk[offset_in_chunk..offset_in_chunk + needed];
        match check_batch(bytes, max_batch_bytes)
            .and_then(|header| visit(position, &header).map(|()| header))
        {
            Ok(header) => position += header.size() as u64,
            Err(error) => {
                return Ok(ScanEnd {
                    position,
                    error: Some(error),
                });
            }
        }
    }
    Ok(ScanEnd {
        position,
        error: None,
    })
}

impl Segment {
    /// The partition directory holding this segment.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}
