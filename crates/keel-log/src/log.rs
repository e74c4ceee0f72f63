//! The log: a data directory of topics, their lifecycle, and the background maintenance
//! thread (interval flushes, retention, compaction).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::compaction::compact;
use crate::config::{CleanupPolicy, FsyncPolicy, TopicConfig};
use crate::error::{OpenError, TopicError};
use crate::offsets::{GroupOffsets, OFFSETS_TOPIC};
use crate::partition::{Partition, PartitionRecovery};
use crate::storage::{DirLock, DiskStorage, Storage};
use crate::topic::{Topic, validate_topic_name};

/// How to open a log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Where bytes go; [`DiskStorage`] unless a test injects faults.
    pub storage: Arc<dyn Storage>,
    /// Wall-clock time for timestamps, retention and roll by age.
    pub clock: Arc<dyn Clock>,
    /// Run a background thread for interval flushes, retention and compaction. Tests that
    /// drive maintenance by hand turn it off.
    pub background: bool,
    /// How often retention and compaction run in the background (Kafka's default: 5 min).
    pub retention_check_interval: Duration,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            storage: Arc::new(DiskStorage),
            clock: Arc::new(SystemClock),
            background: true,
            retention_check_interval: Duration::from_secs(300),
        }
    }
}

/// What opening the log found and repaired, per `topic/partition`.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Partitions where something was truncated or removed.
    pub repaired: Vec<(String, u32, PartitionRecovery)>,
}

/// A data directory of topics. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Log {
    shared: Arc<Shared>,
    offsets: GroupOffsets,
    recovery: RecoveryReport,
    maintenance: Option<JoinHandle<()>>,
    /// Held for the log's lifetime; declared last so it is released after the final flush.
    _lock: DirLock,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    options: LogOptions,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    stop: Mutex<bool>,
    stop_changed: Condvar,
}

const TOPICS_DIR: &str = "topics";
const CONFIG_FILE: &str = "topic.conf";
const DELETED_MARK: &str = ".deleted-";
/// Lock file in the data directory's root; see [`Storage::lock_exclusive`].
const LOCK_FILE: &str = "keel.lock";

impl Log {
    /// Opens (recovering) or creates a log in `root` with default options.
    pub fn open(root: impl AsRef<Path>) -> Result<Log, OpenError> {
        Log::open_with(root, LogOptions::default())
    }

    /// Opens (recovering) or creates a log in `root`.
    pub fn open_with(root: impl AsRef<Path>, options: LogOptions) -> Result<Log, OpenError> {
        let root = root.as_ref().to_path_buf();
        let storage = options.storage.clone();
        let topics_dir = root.join(TOPICS_DIR);
        let io_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| OpenError::Io { path, source }
        };
        storage
            .create_dir_all(&topics_dir)
            .map_err(io_error(&topics_dir))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = storage.lock_exclusive(&lock_path).map_err(|source| {
            let path = lock_path.display().to_string();
            if source.kind() == std::io::ErrorKind::WouldBlock {
                OpenError::Locked { path }
            } else {
                OpenError::Io { path, source }
            }
        })?;
        let shared = Arc::new(Shared {
            root,
            options,
            topics: RwLock::new(BTreeMap::new()),
            stop: Mutex::new(false),
            stop_changed: Condvar::new(),
        });
        let mut recovery = RecoveryReport::default();
        for name in storage
            .list_dir(&topics_dir)
            .map_err(io_error(&topics_dir))?
        {
            let dir = topics_dir.join(&name);
            if name.contains(DELETED_MARK) {
                storage.remove_dir_all(&dir).map_err(io_error(&dir))?;
                continue;
            }
            let conf_path = dir.join(CONFIG_FILE);
            if !storage.exists(&conf_path) {
                // A topic whose creation never completed: its config rename is the commit point.
                storage.remove_dir_all(&dir).map_err(io_error(&dir))?;
                continue;
            }
            let text = read_text(&*storage, &conf_path).map_err(io_error(&conf_path))?;
            let config = TopicConfig::from_conf(&text).map_err(|source| OpenError::Config {
                topic: name.clone(),
                source,
            })?;
            let topic = shared
                .open_topic(&name, config, &mut recovery)
                .map_err(io_error(&dir))?;
            shared
                .topics
                .write()
                .expect("topics lock")
                .insert(name, topic);
        }
        let offsets_topic = match shared.topic(OFFSETS_TOPIC) {
            Some(topic) => topic,
            None => shared
                .create_topic(OFFSETS_TOPIC, GroupOffsets::topic_config())
                .map_err(|e| OpenError::Io {
                    path: OFFSETS_TOPIC.into(),
                    source: std::io::Error::other(e.to_string()),
                })?,
        };
        let offsets = GroupOffsets::load(offsets_topic.partitions()[0].clone()).map_err(|e| {
            OpenError::Io {
                path: OFFSETS_TOPIC.into(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        let maintenance = shared.options.background.then(|| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("keel-log-maintenance".into())
                .spawn(move || shared.maintain())
                .expect("spawn maintenance thread")
        });
        Ok(Log {
            shared,
            offsets,
            recovery,
            maintenance,
            _lock: lock,
        })
    }

    /// Creates a topic. Its directory appears atomically: partitions are created first, and
    /// the renamed `topic.conf` commits the topic.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if name.starts_with("__") {
            return Err(TopicError::InvalidName {
                name: name.into(),
                reason: "names starting with '__' are internal",
            });
        }
        self.shared.create_topic(name, config)
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if name.starts_with("__") {
            return Err(TopicError::InvalidName {
                name: name.into(),
                reason: "internal topics cannot be deleted",
            });
        }
        let topic = self
            .shared
            .topics
            .write()
            .expect("topics lock")
            .remove(name);
        let Some(_topic) = topic else {
            return Err(TopicError::NotFound(name.into()));
        };
        let storage = &self.shared.options.storage;
        let topics_dir = self.shared.root.join(TOPICS_DIR);
        let doomed = topics_dir.join(format!(
            "{name}{DELETED_MARK}{}",
            self.shared.options.clock.now_ms()
        ));
        storage.rename(&topics_dir.join(name), &doomed)?;
        storage.sync_dir(&topics_dir)?;
        storage.remove_dir_all(&doomed)?;
        Ok(())
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.shared.topic(name)
    }

    /// All user topics (internal `__` topics excluded), by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let topics = self.shared.topics.read().expect("topics lock");
        topics
            .iter()
            .filter(|(name, _)| !name.starts_with("__"))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Committed consumer-group offsets.
    pub fn group_offsets(&self) -> &GroupOffsets {
        &self.offsets
    }

    /// What was repaired when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Runs retention and compaction on every topic now.
    pub fn run_maintenance(&self) -> std::io::Result<()> {
        self.shared.run_cleanup()
    }

    /// Syncs every partition with unsynced bytes.
    pub fn flush(&self) -> Result<(), crate::AppendError> {
        for topic in self.shared.all_topics() {
            for partition in topic.partitions() {
                partition.flush()?;
            }
        }
        Ok(())
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }
}

impl Drop for Log {
    /// Stops the maintenance thread and syncs what is unsynced (a clean shutdown).
    fn drop(&mut self) {
        *self.shared.stop.lock().expect("stop lock") = true;
        self.shared.stop_changed.notify_all();
        if let Some(handle) = self.maintenance.take() {
            let _ = handle.join();
        }
        let _ = self.flush();
    }
}

impl Shared {
    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().expect("topics lock").get(name).cloned()
    }

    fn all_topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .cloned()
            .collect()
    }

    fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>, TopicError> {
        config.validate()?;
        let mut topics = self.topics.write().expect("topics lock");
        if topics.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.into()));
        }
        let storage = &self.options.storage;
        let topics_dir = self.root.join(TOPICS_DIR);
        let dir = topics_dir.join(name);
        if storage.exists(&dir) {
            storage.remove_dir_all(&dir)?;
        }
        storage.create_dir_all(&dir)?;
        let mut ignored = RecoveryReport::default();
        let topic = self.open_topic(name, config.clone(), &mut ignored)?;
        let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
        let file = storage.open(&tmp, true)?;
        let text = config.to_conf();
        file.set_len(0)?;
        file.write_all_at(text.as_bytes(), 0)?;
        file.sync_data()?;
        storage.rename(&tmp, &dir.join(CONFIG_FILE))?;
        storage.sync_dir(&dir)?;
        storage.sync_dir(&topics_dir)?;
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    fn open_topic(
        &self,
        name: &str,
        config: TopicConfig,
        recovery: &mut RecoveryReport,
    ) -> std::io::Result<Arc<Topic>> {
        let dir = self.root.join(TOPICS_DIR).join(name);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for index in 0..config.partitions {
            let (partition, repaired) = Partition::open(
                self.options.storage.clone(),
                self.options.clock.clone(),
                &dir.join(index.to_string()),
                config.clone(),
            )?;
            if repaired != PartitionRecovery::default() {
                recovery.repaired.push((name.to_string(), index, repaired));
            }
            partitions.push(Arc::new(partition));
        }
        Ok(Arc::new(Topic::new(name.to_string(), config, partitions)))
    }

    fn run_cleanup(&self) -> std::io::Result<()> {
        for topic in self.all_topics() {
            for partition in topic.partitions() {
                match topic.config().cleanup {
                    CleanupPolicy::Delete => {
                        partition.enforce_retention()?;
                    }
                    CleanupPolicy::Compact => {
                        compact(partition)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The maintenance loop: flush interval-policy partitions on their interval, run cleanup
    /// on its interval, stop when the log is dropped.
    fn maintain(&self) {
        let mut last_flush: BTreeMap<String, Instant> = BTreeMap::new();
        let mut last_cleanup = Instant::now();
        let tick = Duration::from_millis(10);
        loop {
            {
                let stop = self.stop.lock().expect("stop lock");
                let (stop, _) = self
                    .stop_changed
                    .wait_timeout(stop, tick)
                    .expect("stop lock");
                if *stop {
                    return;
                }
            }
            let now = Instant::now();
            for topic in self.all_topics() {
                let FsyncPolicy::Interval(interval) = topic.config().fsync else {
                    continue;
                };
                let last = last_flush.entry(topic.name().to_string()).or_insert(now);
                if now.duration_since(*last) >= interval {
                    *last = now;
                    for partition in topic.partitions() {
                        // A failure is sticky in the partition and reported to its appenders.
                        let _ = partition.flush();
                    }
                }
            }
            if now.duration_since(last_cleanup) >= self.options.retention_check_interval {
                last_cleanup = now;
                let _ = self.run_cleanup();
            }
        }
    }
}

fn read_text(storage: &dyn Storage, path: &Path) -> std::io::Result<String> {
    let file = storage.open(path, false)?;
    let mut bytes = vec![0u8; file.size()? as usize];
    crate::storage::read_exact_at(&*file, &mut bytes, 0)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
