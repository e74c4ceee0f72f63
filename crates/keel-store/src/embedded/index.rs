//! The embedded store's in-memory index: for each stream and each category, the positions
//! of its events in order; plus the offset of each stream's latest snapshot.
//!
//! The index is a cache of the log, never the truth: it is rebuilt by scanning the topic on
//! open, so a crash can never leave it disagreeing with what the log kept (recovery of the
//! log cuts a torn batch before the scan sees it). It costs 8 bytes per event twice (stream
//! and category lists).

use std::collections::HashMap;

use keel_log::{Partition, Record};

use crate::error::{ReadError, one_line};
use crate::limits::LOG_READ_BYTES;
use crate::stream::category;

use super::codec;

/// Positions per stream and per category, up to `next_position`.
#[derive(Debug, Default)]
pub(crate) struct Index {
    streams: HashMap<String, Vec<u64>>,
    categories: HashMap<String, Vec<u64>>,
    /// One past the last log offset indexed.
    pub(crate) next_position: u64,
}

impl Index {
    /// Indexes every record of `partition` from `next_position` up to its high watermark.
    /// Records the store did not write are skipped (they have no stream); a record whose
    /// version does not follow its stream's is a broken invariant, reported as corrupt.
    pub(crate) fn catch_up(&mut self, partition: &Partition) -> Result<(), ReadError> {
        while self.next_position < partition.high_watermark() {
            let records = read(partition, self.next_position)?;
            for record in &records {
                self.add(record)?;
            }
            match records.last() {
                Some(last) => self.next_position = last.offset + 1,
                None => break,
            }
        }
        Ok(())
    }

    /// Adds one record, which must be the next one in the log.
    pub(crate) fn add(&mut self, record: &Record) -> Result<(), ReadError> {
        if let Some((stream, version)) = codec::stream_of(record) {
            let positions = positions_of(&mut self.streams, stream);
            if version != positions.len() as u64 + 1 {
                return Err(ReadError::Corrupt {
                    position: record.offset,
                    reason: format!(
                        "stream '{stream}' event has version {version}, expected {}",
                        positions.len() + 1
                    ),
                });
            }
            positions.push(record.offset);
            positions_of(&mut self.categories, category(stream)).push(record.offset);
        }
        self.next_position = record.offset + 1;
        Ok(())
    }

    /// Adds the events the store itself just appended to `stream` at offsets
    /// `first..=last`, which must directly follow what is indexed.
    pub(crate) fn add_appended(&mut self, stream: &str, first: u64, last: u64) {
        assert_eq!(
            first, self.next_position,
            "appended records must follow the index"
        );
        positions_of(&mut self.streams, stream).extend(first..=last);
        positions_of(&mut self.categories, category(stream)).extend(first..=last);
        self.next_position = last + 1;
    }

    /// The stream's version (its number of events).
    pub(crate) fn version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |p| p.len() as u64)
    }

    /// Positions of the stream's versions `low..=high` (1-based, inclusive).
    pub(crate) fn stream_positions(&self, stream: &str, low: u64, high: u64) -> Vec<u64> {
        self.streams
            .get(stream)
            .map(|p| p[(low - 1) as usize..high as usize].to_vec())
            .unwrap_or_default()
    }

    /// Up to `max` positions of a category at or after `from`.
    pub(crate) fn category_positions(&self, category: &str, from: u64, max: usize) -> Vec<u64> {
        let Some(positions) = self.categories.get(category) else {
            return Vec::new();
        };
        let start = positions.partition_point(|&p| p < from);
        positions[start..].iter().take(max).copied().collect()
    }
}

/// The positions kept under `name`, created empty for its first event. Looked up by `&str`
/// first, so an append to a stream or category already indexed copies no name.
fn positions_of<'a>(map: &'a mut HashMap<String, Vec<u64>>, name: &str) -> &'a mut Vec<u64> {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), Vec::new());
    }
    map.get_mut(name).expect("inserted when missing")
}

/// Reads the records at `positions` (ascending) with as few log reads as their spacing
/// allows: one read returns a run of neighbouring records, and the walk keeps the wanted ones.
pub(crate) fn read_positions(
    partition: &Partition,
    positions: &[u64],
) -> Result<Vec<Record>, ReadError> {
    let mut out = Vec::with_capacity(positions.len());
    while out.len() < positions.len() {
        let wanted = positions[out.len()];
        let records = read(partition, wanted)?;
        if records.first().map(|r| r.offset) != Some(wanted) {
            return Err(ReadError::Corrupt {
                position: wanted,
                reason: "the index names a position the log does not hold".into(),
            });
        }
        for record in records {
            match positions.get(out.len()) {
                Some(&next) if next == record.offset => out.push(record),
                Some(&next) if next > record.offset => {}
                _ => break,
            }
        }
    }
    Ok(out)
}

/// One bounded read of records from `offset`.
pub(crate) fn read(partition: &Partition, offset: u64) -> Result<Vec<Record>, ReadError> {
    partition
        .read_records(offset, LOG_READ_BYTES)
        .map_err(|e| ReadError::Storage {
            operation: "log read",
            reason: one_line(e),
        })
}
