//! Key compaction: keep only the latest record per key in sealed segments, and drop
//! tombstones older than `delete_retention_ms`.
//!
//! Each sealed segment is rewritten on its own and swapped in with an atomic rename, so a crash
//! leaves every segment wholly old or wholly new — both valid (the crash analysis is in
//! `docs/log-format.md`). Offsets and timestamps of surviving records are kept; the holes left
//! behind are normal, as in Kafka. The active segment is never rewritten.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{check_batch, decode_wire, encode_wire};
use crate::limits::{COMPACTION_KEYS_MAX, STORED_BATCH_BYTES_MAX};
use crate::partition::Partition;
use crate::segment::{Segment, segment_file};

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments rewritten with fewer records.
    pub segments_rewritten: usize,
    /// Segments deleted because nothing in them survived.
    pub segments_deleted: usize,
    /// Records removed.
    pub records_removed: u64,
}

/// Compacts the sealed segments of `partition`.
pub fn compact(partition: &Partition) -> io::Result<CompactionOutcome> {
    let _maintenance = partition.maintenance.lock().expect("maintenance lock");
    let segments = partition.writer().segments.clone();
    let mut outcome = CompactionOutcome::default();
    if segments.len() < 2 {
        return Ok(outcome);
    }
    let max_batch_bytes = STORED_BATCH_BYTES_MAX;
    let mut latest: HashMap<Bytes, u64> = HashMap::new();
    for segment in &segments {
        for batch in read_segment_batches(segment, max_batch_bytes)? {
            for record in batch.records {
                if let Some(key) = record.key {
                    latest.insert(key, record.offset as u64);
                }
            }
            if latest.len() > COMPACTION_KEYS_MAX {
                return Err(io::Error::other(format!(
                    "compaction refused: more than {COMPACTION_KEYS_MAX} distinct keys"
                )));
            }
        }
    }
    let horizon_ms = partition.now_ms() - partition.config().delete_retention_ms;
    let sealed = &segments[..segments.len() - 1];
    for segment in sealed {
        let batches = read_segment_batches(segment, max_batch_bytes)?;
        let total: usize = batches.iter().map(|b| b.records.len()).sum();
        let mut kept_bytes = Vec::new();
        let mut kept = 0;
        for batch in batches {
            let survivors: Vec<_> = batch
                .records
                .into_iter()
                .filter(|r| r.key.as_ref().and_then(|k| latest.get(k)) == Some(&(r.offset as u64)))
                .filter(|r| r.value.is_some() || batch.max_timestamp_ms > horizon_ms)
                .collect();
            if !survivors.is_empty() {
                kept += survivors.len();
                let encoded = encode_wire(&survivors).map_err(io::Error::other)?;
                kept_bytes.extend_from_slice(&encoded);
            }
        }
        if kept == total {
            continue;
        }
        outcome.records_removed += (total - kept) as u64;
        let replacement = if kept == 0 {
            outcome.segments_deleted += 1;
            None
        } else {
            outcome.segments_rewritten += 1;
            Some(Arc::new(rewrite(partition, segment, &kept_bytes)?))
        };
        let mut writer = partition.writer();
        let mut list = writer.segments.clone();
        let Some(at) = list.iter().position(|s| Arc::ptr_eq(s, segment)) else {
            continue;
        };
        match replacement {
            Some(new_segment) => list[at] = new_segment,
            None => {
                list.remove(at);
            }
        }
        partition.replace_segments(&mut writer, list);
        drop(writer);
        if kept == 0 {
            segment.remove_files(partition.storage())?;
            partition.storage().sync_dir(partition.dir())?;
        }
    }
    Ok(outcome)
}

/// Writes `bytes` as the new content of `segment` via `<base>.log.cleaned` and an atomic rename.
fn rewrite(partition: &Partition, segment: &Segment, bytes: &[u8]) -> io::Result<Segment> {
    let storage = partition.storage();
    let dir = partition.dir();
    let log_path = segment_file(dir, segment.base_offset, "log");
    let cleaned = dir.join(format!("{:020}.log.cleaned", segment.base_offset));
    let file = storage.open(&cleaned, true)?;
    file.set_len(0)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    for extension in ["index", "timeindex"] {
        let path = segment_file(dir, segment.base_offset, extension);
        if storage.exists(&path) {
            storage.remove_file(&path)?;
        }
    }
    storage.rename(&cleaned, &log_path)?;
    storage.sync_dir(dir)?;
    let (new_segment, _) = Segment::open(
        storage,
        dir,
        segment.base_offset,
        false,
        STORED_BATCH_BYTES_MAX,
    )?;
    new_segment.seal()?;
    new_segment.sync()?;
    Ok(new_segment)
}

struct DecodedBatch {
    max_timestamp_ms: i64,
    records: Vec<kafka_protocol::records::Record>,
}

fn read_segment_batches(segment: &Segment, max_batch_bytes: u32) -> io::Result<Vec<DecodedBatch>> {
    let size = segment.state().size;
    let mut bytes = Vec::new();
    segment.log.read_exact_into(&mut bytes, size as usize, 0)?;
    let bytes = Bytes::from(bytes);
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = check_batch(&bytes[position..], max_batch_bytes).map_err(|e| {
            crate::segment::corrupt(
                segment_dir(segment),
                segment.base_offset,
                position as u64,
                e,
            )
        })?;
        let records = decode_wire(bytes.slice(position..position + header.size()))
            .map_err(io::Error::other)?;
        batches.push(DecodedBatch {
            max_timestamp_ms: header.max_timestamp_ms,
            records,
        });
        position += header.size();
    }
    Ok(batches)
}

fn segment_dir(segment: &Segment) -> &std::path::Path {
    segment.dir()
}
