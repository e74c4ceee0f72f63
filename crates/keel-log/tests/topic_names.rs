//! Every legal Kafka topic name round-trips through create, append, restart and read, and
//! deleting a topic can never take another topic's data with it.
//!
//! Names are what users choose (`user.deleted-events` is a fine Kafka name), so nothing the
//! log keeps for itself may be recognised by a pattern a topic name can match. The real-disk
//! cases also cover the longest names, whose directory entries sit near the file system's
//! 255-byte limit. Not here: the name rules themselves (`partition.rs` tests the refusals).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use keel_log::sim::SimStorage;
use keel_log::{DirLock, DiskStorage, Storage, StorageFile};
use keel_log::{Log, LogOptions, ManualClock, NewRecord, TopicConfig};
use proptest::prelude::*;

/// Names that are legal in Kafka and look like what a log might use for itself.
fn tricky_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "user.deleted-events",
        "dlq.deleted-2024",
        "a.deleted-1",
        ".deleted-",
        "x.deleted-1700000000000",
        "topic.conf",
        "keel.lock",
        "deleted",
        "-",
        "_",
        "...",
        ".hidden",
        "0",
        "00000000000000000000.log",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("a".repeat(249));
    names.push(format!("{}.deleted-1", "b".repeat(239)));
    names.push(format!("{}{}", ".deleted-".repeat(27), "c".repeat(6)));
    names
}

fn options(storage: Arc<dyn Storage>) -> LogOptions {
    LogOptions {
        storage,
        clock: Arc::new(ManualClock::new(1_000)),
        background: false,
        ..LogOptions::default()
    }
}

fn value_of(name: &str, i: usize) -> Bytes {
    Bytes::from(format!("{name}/{i}"))
}

/// Creates every topic, appends three records to each, reopens the log and reads them back;
/// then deletes every other topic, reopens again, and checks the survivors are whole and the
/// deleted names can be created afresh (empty).
fn check_round_trip(storage: Arc<dyn Storage>, root: &Path, names: &[String]) {
    {
        let log = Log::open_with(root, options(storage.clone())).expect("open");
        for name in names {
            let topic = log
                .create_topic(name, TopicConfig::new(1))
                .unwrap_or_else(|e| panic!("create {name:?}: {e}"));
            let records: Vec<NewRecord> = (0..3)
                .map(|i| NewRecord::new(None::<Bytes>, value_of(name, i)))
                .collect();
            topic.partition(0).unwrap().append(&records).unwrap();
        }
    }
    let check = |log: &Log, name: &str| {
        let topic = log
            .topic(name)
            .unwrap_or_else(|| panic!("topic {name:?} lost at restart"));
        let values: Vec<Bytes> = topic
            .partition(0)
            .unwrap()
            .read_records(0, 1 << 20)
            .unwrap()
            .into_iter()
            .map(|r| r.value.unwrap())
            .collect();
        let expected: Vec<Bytes> = (0..3).map(|i| value_of(name, i)).collect();
        assert_eq!(values, expected, "records of {name:?} after a restart");
    };
    {
        let log = Log::open_with(root, options(storage.clone())).expect("reopen");
        for name in names {
            check(&log, name);
        }
        for name in names.iter().step_by(2) {
            log.delete_topic(name)
                .unwrap_or_else(|e| panic!("delete {name:?}: {e}"));
        }
    }
    let log = Log::open_with(root, options(storage)).expect("reopen after deletes");
    for (i, name) in names.iter().enumerate() {
        if i % 2 == 1 {
            check(&log, name);
            continue;
        }
        assert!(
            log.topic(name).is_none(),
            "deleted topic {name:?} came back"
        );
        let topic = log.create_topic(name, TopicConfig::new(1)).unwrap();
        assert_eq!(topic.partition(0).unwrap().high_watermark(), 0, "{name:?}");
    }
}

#[test]
fn legal_names_that_look_like_deletion_marks_survive_a_restart_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    check_round_trip(Arc::new(DiskStorage), dir.path(), &tricky_names());
}

#[test]
fn legal_names_that_look_like_deletion_marks_survive_a_restart_simulated() {
    check_round_trip(
        Arc::new(SimStorage::new()),
        Path::new("/data"),
        &tricky_names(),
    );
}

/// A legal topic name: 1..=249 of Kafka's characters, with the deletion-looking infix mixed
/// in often, never "." or "..", and not starting with `__` (Keel's internal topics, refused
/// at creation).
fn legal_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-zA-Z0-9._-]{1,30}",
        1 => Just(".deleted-".to_string()),
        1 => "[0-9]{1,13}",
    ];
    proptest::collection::vec(piece, 1..12)
        .prop_map(|pieces| {
            let mut name: String = pieces.concat();
            name.truncate(249);
            name
        })
        .prop_filter("reserved names", |n| {
            n != "." && n != ".." && !n.starts_with("__")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_legal_names_round_trip(names in proptest::collection::btree_set(legal_name(), 1..8)) {
        let names: Vec<String> = names.into_iter().collect();
        check_round_trip(Arc::new(SimStorage::new()), Path::new("/data"), &names);
    }
}

/// A disk whose directory removals fail while `fail_removals` is set: a deletion interrupted
/// after its rename, as a crash there would leave it.
#[derive(Debug)]
struct FailingRemovals {
    inner: DiskStorage,
    fail_removals: AtomicBool,
}

impl Storage for FailingRemovals {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        self.inner.open(path, create)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        if self.fail_removals.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("removal interrupted"));
        }
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn lock_exclusive(&self, path: &Path) -> std::io::Result<DirLock> {
        self.inner.lock_exclusive(path)
    }
}

#[test]
fn an_interrupted_deletion_is_finished_at_the_next_open_and_touches_no_other_topic() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(FailingRemovals {
        inner: DiskStorage,
        fail_removals: AtomicBool::new(false),
    });
    let doomed = "orders";
    let kept = ["orders.deleted-1000", "orders.deleted-", "x"];
    {
        let log = Log::open_with(dir.path(), options(storage.clone())).unwrap();
        for name in kept.iter().chain([&doomed]) {
            let topic = log.create_topic(name, TopicConfig::new(1)).unwrap();
            let record = NewRecord::new(None::<Bytes>, value_of(name, 0));
            topic.partition(0).unwrap().append(&[record]).unwrap();
        }
        storage.fail_removals.store(true, Ordering::SeqCst);
        // The topic is gone for this process once its directory was renamed, whatever the
        // removal does after.
        let _ = log.delete_topic(doomed);
        assert!(log.topic(doomed).is_none());
        storage.fail_removals.store(false, Ordering::SeqCst);
    }
    let log = Log::open_with(dir.path(), options(storage)).unwrap();
    assert!(log.topic(doomed).is_none(), "the deleted topic came back");
    let mut names: Vec<String> = log.topics().iter().map(|t| t.name().to_string()).collect();
    names.sort();
    let mut expected: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for name in kept {
        let topic = log.topic(name).unwrap();
        let records = topic
            .partition(0)
            .unwrap()
            .read_records(0, 1 << 20)
            .unwrap();
        assert_eq!(
            records[0].value.as_ref(),
            Some(&value_of(name, 0)),
            "{name}"
        );
    }
}
