//! The sparse offset and time indexes of one segment (`.index`, `.timeindex`).
//!
//! Entries are kept in memory (8 or 16 bytes per `INDEX_INTERVAL_BYTES` of log, so a 1 GiB
//! segment costs about 6 MiB) and appended to their files. The files are an optimisation, never
//! the truth: the active segment's index is rebuilt from the log on open, and a sealed
//! segment's index is rebuilt when its file is missing or torn. Layout: `docs/log-format.md`.

use std::io;
use std::sync::Arc;

use crate::storage::StorageFile;

/// One offset-index entry: a batch's base offset (relative to the segment) and byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

/// One time-index entry: the running max timestamp up to the batch at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp_ms: i64,
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 16;

/// Both indexes of a segment, with their files.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    pub(crate) offsets: Vec<OffsetEntry>,
    pub(crate) times: Vec<TimeEntry>,
    offset_file: Arc<dyn StorageFile>,
    time_file: Arc<dyn StorageFile>,
}

impl SegmentIndex {
    /// Empty indexes over (truncated) files.
    pub(crate) fn empty(
        offset_file: Arc<dyn StorageFile>,
        time_file: Arc<dyn StorageFile>,
    ) -> io::Result<SegmentIndex> {
        offset_file.set_len(0)?;
        time_file.set_len(0)?;
        Ok(SegmentIndex {
            offsets: Vec::new(),
            times: Vec::new(),
            offset_file,
            time_file,
        })
    }

    /// Loads both files; `None` when either is torn (length not a whole number of entries) or
    /// its entries are not strictly increasing, so the caller rebuilds instead of trusting it.
    pub(crate) fn load(
        offset_file: Arc<dyn StorageFile>,
        time_file: Arc<dyn StorageFile>,
    ) -> io::Result<Option<SegmentIndex>> {
        let offset_bytes = read_whole(&*offset_file, OFFSET_ENTRY_BYTES)?;
        let time_bytes = read_whole(&*time_file, TIME_ENTRY_BYTES)?;
        let (Some(offset_bytes), Some(time_bytes)) = (offset_bytes, time_bytes) else {
            return Ok(None);
        };
        let offsets: Vec<OffsetEntry> = offset_bytes
            .chunks_exact(OFFSET_ENTRY_BYTES)
            .map(|e| OffsetEntry {
                relative_offset: be_u32(&e[0..4]),
                position: be_u32(&e[4..8]),
            })
            .collect();
        let times: Vec<TimeEntry> = time_bytes
            .chunks_exact(TIME_ENTRY_BYTES)
            .map(|e| TimeEntry {
                timestamp_ms: i64::from_be_bytes(e[0..8].try_into().expect("8 bytes")),
                relative_offset: be_u32(&e[8..12]),
                position: be_u32(&e[12..16]),
            })
            .collect();
        let increasing = offsets
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && times.windows(2).all(|w| w[0].position <= w[1].position);
        Ok(increasing.then_some(SegmentIndex {
            offsets,
            times,
            offset_file,
            time_file,
        }))
    }

    /// Appends an offset entry to memory and file.
    pub(crate) fn push_offset(&mut self, entry: OffsetEntry) -> io::Result<()> {
        let mut bytes = [0u8; OFFSET_ENTRY_BYTES];
        bytes[0..4].copy_from_slice(&entry.relative_offset.to_be_bytes());
        bytes[4..8].copy_from_slice(&entry.position.to_be_bytes());
        let at = (self.offsets.len() * OFFSET_ENTRY_BYTES) as u64;
        self.offset_file.write_all_at(&bytes, at)?;
        self.offsets.push(entry);
        Ok(())
    }

    /// Appends a time entry to memory and file.
    pub(crate) fn push_time(&mut self, entry: TimeEntry) -> io::Result<()> {
        let mut bytes = [0u8; TIME_ENTRY_BYTES];
        bytes[0..8].copy_from_slice(&entry.timestamp_ms.to_be_bytes());
        bytes[8..12].copy_from_slice(&entry.relative_offset.to_be_bytes());
        bytes[12..16].copy_from_slice(&entry.position.to_be_bytes());
        let at = (self.times.len() * TIME_ENTRY_BYTES) as u64;
        self.time_file.write_all_at(&bytes, at)?;
        self.times.push(entry);
        Ok(())
    }

    /// Position of the last indexed batch starting at or below `relative_offset` (0 if none).
    pub(crate) fn position_for_offset(&self, relative_offset: u32) -> u32 {
        let after = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map_or(0, |i| self.offsets[i].position)
    }

    /// Position from which to scan for the first batch with max timestamp >= `timestamp_ms`:
    /// the last entry whose running max is below it (every batch before it is older).
    pub(crate) fn position_for_timestamp(&self, timestamp_ms: i64) -> u32 {
        let after = self
            .times
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        after.checked_sub(1).map_or(0, |i| self.times[i].position)
    }

    /// Makes both files durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.offset_file.sync_data()?;
        self.time_file.sync_data()
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
}

fn read_whole(file: &dyn StorageFile, entry_bytes: usize) -> io::Result<Option<Vec<u8>>> {
    let len = file.size()? as usize;
    if !len.is_multiple_of(entry_bytes) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.read_exact_into(&mut bytes, len, 0)?;
    Ok(Some(bytes))
}
