//! The CPU a fetch's read costs `keel serve`, without a network or a consumer in the way: one
//! partition of RECORDS records of SIZE bytes (batches of about 16 KiB, as the Java producer
//! makes them) on the real disk, then, round by round, every segment file read in 1 MiB
//! chunks (a consumer's `max.partition.fetch.bytes`) into a buffer zeroed first and into one's
//! spare capacity (`StorageFile::read_exact_into`), and the whole partition through
//! `Partition::read` (the fetch path: read, CRC and offset checks). The two file reads are
//! alternated in one process, so both see the same page cache and the same load.
//!
//! ```sh
//! cargo run --release -p keel-log --example fetch_reads -- <dir> [records] [size] [rounds]
//! ```
//!
//! Prints the thread's CPU time per record (`/proc/thread-self/schedstat`) of each read, round
//! by round. `dir` holds the log for the run and is emptied at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_log::{DiskStorage, FsyncPolicy, Log, NewRecord, Storage, StorageFile, TopicConfig};

/// A consumer's `max.partition.fetch.bytes`: what one fetch reads of a partition.
const FETCH_BYTES: usize = 1024 * 1024;
/// The Java producer's `batch.size`.
const BATCH_BYTES: usize = 16 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: fetch_reads <dir> [records] [size] [rounds]"),
    );
    let records: usize = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("records"));
    let size: usize = args.next().map_or(1024, |s| s.parse().expect("size"));
    let rounds: u32 = args.next().map_or(5, |s| s.parse().expect("rounds"));

    let log = Log::open(&dir).expect("open log");
    let config = TopicConfig::new(1).with_fsync(FsyncPolicy::Never);
    let partition = log
        .create_topic("reads", config)
        .expect("create topic")
        .partition(0)
        .expect("partition 0")
        .clone();
    let batch: Vec<NewRecord> = (0..(BATCH_BYTES / size).max(1))
        .map(|_| NewRecord::new(None::<Vec<u8>>, vec![b'x'; size]))
        .collect();
    let mut written = 0;
    while written < records {
        let appended = partition.append(&batch).expect("append");
        written += (appended.last_offset - appended.base_offset + 1) as usize;
    }
    let segments = segment_files(&dir);

    for round in 1..=rounds {
        let zeroed = cpu_ns(|| {
            read_files(&segments, |file, len, position| {
                let mut buf = vec![0u8; len];
                keel_log::read_exact_at(&**file, &mut buf, position).expect("read");
                buf
            })
        });
        let spare = cpu_ns(|| {
            read_files(&segments, |file, len, position| {
                let mut buf = Vec::new();
                file.read_exact_into(&mut buf, len, position).expect("read");
                buf
            })
        });
        let fetched = cpu_ns(|| {
            let mut offset = 0;
            while offset < written as u64 {
                let read = partition.read(offset, FETCH_BYTES).expect("read");
                offset = last_offset(&read.bytes) + 1;
            }
        });
        let per_record = |ns: u64| ns as f64 / written as f64 / 1000.0;
        println!(
            "round {round}, {written} records of {size} B: file read zeroed first {:.3} µs/record, into spare capacity {:.3} µs/record; Partition::read {:.3} µs/record; load {}",
            per_record(zeroed),
            per_record(spare),
            per_record(fetched),
            load(),
        );
    }
    drop(partition);
    drop(log);
    std::fs::remove_dir_all(&dir).expect("remove the log");
}

/// Every segment file of the one partition under `dir`, opened through the real storage.
fn segment_files(dir: &Path) -> Vec<(Arc<dyn StorageFile>, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).expect("list dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "log") {
                let file = DiskStorage.open(&path, false).expect("open segment");
                let size = file.size().expect("segment size");
                files.push((file, size));
            }
        }
    }
    files
}

/// Reads every file whole in fetch-sized chunks with `read`, keeping one chunk alive at a time
/// as a fetch response does.
fn read_files(
    files: &[(Arc<dyn StorageFile>, u64)],
    read: impl Fn(&Arc<dyn StorageFile>, usize, u64) -> Vec<u8>,
) {
    for (file, size) in files {
        let mut position = 0;
        while position < *size {
            let len = FETCH_BYTES.min((size - position) as usize);
            let chunk = read(file, len, position);
            assert_eq!(chunk.len(), len);
            position += len as u64;
        }
    }
}

/// The last offset of the last batch in `bytes`.
fn last_offset(bytes: &[u8]) -> u64 {
    let mut position = 0;
    let mut last = None;
    while position < bytes.len() {
        let header = keel_log::BatchHeader::parse(&bytes[position..], u32::MAX).expect("batch");
        last = Some(header.last_offset());
        position += header.size();
    }
    last.expect("a read past the end returns at least one batch")
}

/// This thread's CPU time (user and system) spent in `work`, in nanoseconds.
fn cpu_ns(work: impl FnOnce()) -> u64 {
    let thread_cpu_ns = || {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux /proc");
        text.split(' ')
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .expect("schedstat's first field")
    };
    let before = thread_cpu_ns();
    work();
    thread_cpu_ns() - before
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
