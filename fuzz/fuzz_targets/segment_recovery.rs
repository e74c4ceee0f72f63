//! Fuzz target: recovery of a partition whose segment files hold arbitrary bytes, on the
//! simulated disk, through `Log::open_with` — the production recovery path.
//!
//! Input: one flags byte, then the bytes. Bit 0 seals the bytes into CRC-valid batches and
//! bit 1 makes their offsets dense (`keel_log_fuzz::seal_batches`), so that recovery keeps
//! long prefixes; bits 2-3 pick `max_batch_bytes`. Bit 4 splits the input in two: a sealed
//! segment (base 0, no index files, so its index is rebuilt) and the active segment after it.
//!
//! Properties: opening never panics; the active segment keeps exactly the longest prefix of
//! whole, CRC-valid, offset-increasing batches (an independent model, `valid_prefix`), the
//! recovery report names every byte cut unless all of them are zeros (space written ahead of
//! the end, not damage), and the high watermark is one past its last offset;
//! reads of the active segment return exactly its kept bytes, CRC-valid, batch by batch up to
//! the high watermark and never past it; reads that reach damaged sealed bytes fail with
//! `ReadError::Corrupt` instead of returning them; decoding never panics; and the partition
//! accepts an append at the high watermark afterwards.

#![no_main]

use std::path::Path;
use std::sync::Arc;

use keel_log::sim::SimStorage;
use keel_log::{
    FsyncPolicy, Log, LogOptions, ManualClock, NewRecord, ReadError, Storage, TopicConfig,
    check_batches,
};
use keel_log_fuzz::{seal_batches, valid_prefix};
use libfuzzer_sys::fuzz_target;

const MAX_BATCH_BYTES: [u32; 4] = [256, 4096, 1 << 20, 1 << 20];
const PARTITION_DIR: &str = "/fuzz/topics/t/0";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let max = MAX_BATCH_BYTES[usize::from((flags >> 2) & 3)];
    let (mut sealed, mut active) = if flags & 0x10 != 0 && rest.len() >= 2 {
        let split = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % (rest.len() - 1);
        let (sealed, active) = rest[2..].split_at(split.min(rest.len() - 2));
        (Some(sealed.to_vec()), active.to_vec())
    } else {
        (None, rest.to_vec())
    };
    if flags & 1 != 0 {
        if let Some(sealed) = &mut sealed {
            seal_batches(sealed, flags & 2 != 0);
        }
        seal_batches(&mut active, flags & 2 != 0);
    }
    let sealed_prefix = sealed.as_ref().map(|bytes| valid_prefix(bytes, 0, max));
    // The active segment starts where the sealed one's valid batches end, as a roll would
    // (a roll never seals an empty segment, so it starts at 1 or later).
    let active_base = sealed_prefix.as_ref().map_or(0, |p| p.next_offset.max(1));
    let model = valid_prefix(&active, active_base, max);

    let storage = SimStorage::new();
    let dir = Path::new(PARTITION_DIR);
    storage.create_dir_all(dir).unwrap();
    let mut config = TopicConfig::new(1).with_fsync(FsyncPolicy::Always);
    config.max_batch_bytes = max;
    let topic_dir = dir.parent().expect("topic dir");
    write(
        &storage,
        &topic_dir.join("topic.conf"),
        config.to_conf().as_bytes(),
    );
    if let Some(sealed) = &sealed {
        write(&storage, &dir.join(segment_name(0)), sealed);
    }
    let active_path = dir.join(segment_name(active_base));
    write(&storage, &active_path, &active);

    let options = LogOptions {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        background: false,
        ..LogOptions::default()
    };
    let log = Log::open_with("/fuzz", options).expect("recovery opens any segment bytes");
    let partition = log
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();

    // Recovery keeps exactly the model's prefix of the active segment and reports the rest.
    let hw = partition.high_watermark();
    assert_eq!(hw, model.next_offset, "high watermark");
    let kept = storage.file_bytes(&active_path).expect("active segment");
    assert_eq!(kept, active[..model.end], "active segment after recovery");
    let cut: u64 = log
        .recovery_report()
        .repaired
        .iter()
        .filter(|(topic, _, _)| topic == "t")
        .map(|(_, _, repaired)| repaired.truncated_bytes)
        .sum();
    let zeros_only = active[model.end..].iter().all(|&b| b == 0);
    let damaged = if zeros_only { 0 } else { active.len() - model.end };
    assert_eq!(cut, damaged as u64, "reported truncation");

    // Reads of the sealed segment: CRC-valid batches or a clean `Corrupt` error.
    let max_read = 1 + usize::from(flags >> 5) * 700;
    if let Some(prefix) = &sealed_prefix {
        let mut offset = 0;
        while offset < prefix.next_offset {
            match partition.read(offset, max_read) {
                Ok(read) => {
                    let headers = check_batches(&read.bytes, max).expect("reads are CRC-valid");
                    let Some(last) = headers.last() else { break };
                    assert!(last.next_offset() <= hw, "read past the high watermark");
                    assert!(last.last_offset() >= offset);
                    for pair in headers.windows(2) {
                        assert!(pair[1].base_offset >= pair[0].next_offset(), "offset order");
                    }
                    offset = last.next_offset();
                }
                Err(ReadError::Corrupt(message)) => {
                    assert!(message.contains("corrupt batch"), "{message}");
                    break;
                }
                Err(error) => panic!("read at {offset}: {error}"),
            }
        }
    }

    // Reads of the active segment return its kept batches byte for byte, up to the watermark.
    let mut offset = active_base;
    let mut next_batch = 0;
    while offset < hw {
        let read = partition
            .read(offset, max_read)
            .expect("kept batches read back");
        assert_eq!(read.high_watermark, hw);
        let headers = check_batches(&read.bytes, max).expect("reads are CRC-valid");
        assert!(!headers.is_empty(), "nothing read at {offset} below {hw}");
        let (position, _) = model.batches[next_batch];
        let end = position + read.bytes.len();
        assert_eq!(&read.bytes[..], &active[position..end], "bytes at {offset}");
        next_batch += headers.len();
        offset = headers.last().expect("non-empty").next_offset();
        assert!(offset <= hw, "read past the high watermark");
        let _ = partition.read_records(headers[0].base_offset, max_read);
    }
    assert_eq!(next_batch, model.batches.len(), "every kept batch was read");
    assert!(
        partition
            .read(hw, max_read)
            .expect("read at hw")
            .bytes
            .is_empty()
    );
    assert!(matches!(
        partition.read(hw + 1, max_read),
        Err(ReadError::OffsetOutOfRange { .. })
    ));

    // The partition keeps serving: an append lands at the high watermark. Offsets near the
    // top of the i64 range cannot take more records, so those inputs stop here.
    if hw < 1 << 62 {
        let info = partition
            .append(&[NewRecord::new(Some("k"), "v")])
            .expect("append after recovery");
        assert_eq!(info.base_offset, hw);
        let records = partition
            .read_records(hw, 1 << 16)
            .expect("read the append");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
    }
});

fn write(storage: &SimStorage, path: &Path, bytes: &[u8]) {
    let file = storage.open(path, true).unwrap();
    file.write_all_at(bytes, 0).unwrap();
    file.sync_data().unwrap();
    storage.sync_dir(path.parent().unwrap()).unwrap();
}

fn segment_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}
