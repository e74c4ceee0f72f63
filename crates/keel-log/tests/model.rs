//! Property test: random sequences of append / read / flush / roll / clean reopen / power cut,
//! run against the real partition code on the simulated disk and compared with a model (a
//! plain vector of acknowledged records).
//!
//! The model's promise per policy: under `always`, every acknowledged record survives a power
//! cut; under `never`, a power cut keeps a prefix of the acknowledged records that is at least
//! as long as what the last flush or segment roll made durable. Reads always return exactly the
//! model's records from the requested offset, contiguously. The active segment runs ahead of
//! its end with zeros (`preallocate_bytes`, up to the 1 KiB segment size here), so power cuts
//! tear appends into zeros; after every reopen each sealed segment's file must end at its last
//! batch.

use std::sync::Arc;

use bytes::Bytes;
use keel_log::sim::SimStorage;
use keel_log::{
    FsyncPolicy, Log, LogOptions, ManualClock, NewRecord, Partition, TopicConfig, check_batches,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    Read { at: u8, max_bytes: u16 },
    Flush,
    AgeSegment,
    Reopen,
    PowerCut(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..6).prop_map(Op::Append),
        3 => (any::<u8>(), 1..4096u16).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Flush),
        1 => Just(Op::AgeSegment),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::PowerCut),
    ]
}

struct Harness {
    storage: SimStorage,
    clock: Arc<ManualClock>,
    log: Option<Log>,
    config: TopicConfig,
}

impl Harness {
    fn open(&mut self) -> Arc<Partition> {
        let options = LogOptions {
            storage: Arc::new(self.storage.clone()),
            clock: self.clock.clone(),
            background: false,
            ..LogOptions::default()
        };
        let log = Log::open_with("/model", options).expect("reopen");
        let topic = match log.topic("t") {
            Some(topic) => topic,
            None => log.create_topic("t", self.config.clone()).expect("create"),
        };
        let partition = topic.partition(0).expect("partition 0").clone();
        self.log = Some(log);
        partition
    }

    /// Whether every sealed segment's file is whole batches, zeros written ahead cut.
    fn sealed_files_end_at_their_last_batch(&self, partition: &Partition) -> bool {
        let paths = partition.segment_paths();
        paths[..paths.len() - 1].iter().all(|path| {
            let bytes = self.storage.file_bytes(path).expect("segment file");
            check_batches(&bytes, u32::MAX).is_ok()
        })
    }
}

fn run(policy: FsyncPolicy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut config = TopicConfig::new(1)
        .with_segment_bytes(1024)
        .with_fsync(policy);
    config.segment_ms = 60_000;
    let mut harness = Harness {
        storage: SimStorage::new(),
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        log: None,
        config,
    };
    let mut partition = harness.open();
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut durable = 0usize;
    for op in ops {
        match op {
            Op::Append(values) => {
                let segments_before = partition.segment_count();
                let records: Vec<NewRecord> = values
                    .iter()
                    .map(|v| NewRecord {
                        value: Some(Bytes::copy_from_slice(v)),
                        ..NewRecord::default()
                    })
                    .collect();
                let info = partition.append(&records).expect("append");
                prop_assert_eq!(info.base_offset, model.len() as u64);
                if partition.segment_count() > segments_before {
                    durable = model.len();
                }
                model.extend(values);
                if policy == FsyncPolicy::Always {
                    durable = model.len();
                }
            }
            Op::Read { at, max_bytes } => {
                let offset = if model.is_empty() {
                    0
                } else {
                    u64::from(at) % (model.len() as u64 + 1)
                };
                let records = partition
                    .read_records(offset, usize::from(max_bytes))
                    .expect("read");
                if offset < model.len() as u64 {
                    prop_assert!(!records.is_empty(), "read at {} returned nothing", offset);
                }
                for (i, record) in records.iter().enumerate() {
                    let expected = offset as usize + i;
                    prop_assert_eq!(record.offset, expected as u64);
                    prop_assert_eq!(record.value.as_deref(), Some(&model[expected][..]));
                }
            }
            Op::Flush => {
                partition.flush().expect("flush");
                durable = model.len();
            }
            Op::AgeSegment => harness.clock.advance(61_000),
            Op::Reopen => {
                drop(partition);
                harness.log = None;
                partition = harness.open();
                durable = model.len();
                prop_assert_eq!(partition.high_watermark(), model.len() as u64);
                prop_assert!(harness.sealed_files_end_at_their_last_batch(&partition));
            }
            Op::PowerCut(seed) => {
                harness.storage.power_cut(seed);
                drop(partition);
                harness.log = None;
                partition = harness.open();
                let survived = partition.high_watermark() as usize;
                prop_assert!(
                    survived >= durable,
                    "lost durable records: {} < {}",
                    survived,
                    durable
                );
                prop_assert!(
                    survived <= model.len(),
                    "invented records: {} > {}",
                    survived,
                    model.len()
                );
                model.truncate(survived);
                durable = survived;
                prop_assert!(harness.sealed_files_end_at_their_last_batch(&partition));
            }
        }
    }
    // A read returns batches from one segment at most, so reading everything takes a loop.
    let mut offset = 0;
    while offset < model.len() as u64 {
        let records = partition
            .read_records(offset, 64 << 20)
            .expect("final read");
        prop_assert!(!records.is_empty(), "nothing readable at {}", offset);
        for record in &records {
            prop_assert_eq!(
                record.value.as_deref(),
                Some(&model[record.offset as usize][..])
            );
        }
        offset = records.last().expect("non-empty").offset + 1;
    }
    prop_assert_eq!(partition.high_watermark(), model.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn always_keeps_every_acknowledged_record(ops in prop::collection::vec(op(), 1..120)) {
        run(FsyncPolicy::Always, ops)?;
    }

    #[test]
    fn never_keeps_a_prefix_at_least_as_long_as_the_last_sync(ops in prop::collection::vec(op(), 1..120)) {
        run(FsyncPolicy::Never, ops)?;
    }
}
