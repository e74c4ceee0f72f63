//! The log: a data directory of topics, their lifecycle, and the background maintenance
//! thread (interval flushes, retention, compaction).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::compaction::compact;
use crate::config::{CleanupPolicy, FsyncPolicy, TopicConfig};
use crate::error::{OpenError, TopicError};
use crate::handles::{BoundedStorage, OpenFiles};
use crate::offsets::{GroupOffsets, OFFSETS_TOPIC};
use crate::partition::{Partition, PartitionRecovery};
use crate::storage::{DirLock, DiskStorage, Storage};
use crate::topic::{Topic, is_internal_topic, validate_topic_name};
use keel_core::{Clock, SystemClock};

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
    /// Most segment and index files kept open at once: beyond it the least recently used are
    /// closed, and reopened when next used (`handles.rs`). The default leaves a reserve of the
    /// process's descriptor limit to connections ([`crate::open_files_max_default`]).
    pub open_files_max: usize,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            storage: Arc::new(DiskStorage),
            clock: Arc::new(SystemClock),
            background: true,
            retention_check_interval: Duration::from_secs(300),
            open_files_max: crate::handles::open_files_max_default(),
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
    /// The options given, with `storage` replaced by `files`.
    options: LogOptions,
    files: Arc<BoundedStorage>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    maintenance: Mutex<MaintenanceSignal>,
    maintenance_wake: Condvar,
    /// Numbers the directories of topics being deleted, so two deletions in one millisecond
    /// never meet in [`DELETING_DIR`].
    deletions: AtomicU64,
}

/// What wakes the maintenance thread before its next deadline.
#[derive(Debug, Default)]
struct MaintenanceSignal {
    /// The log is being dropped.
    stop: bool,
    /// A topic was created, deleted or its config altered: its flush interval may be new or
    /// shorter than what the thread sleeps for, or its last flush time is no longer needed.
    topics_changed: bool,
}

const TOPICS_DIR: &str = "topics";
/// Where a deleted topic's directory is moved before it is removed. A sibling of
/// [`TOPICS_DIR`], never a name pattern inside it: every name in `topics/` is a user's topic,
/// and any legal topic name (`user.deleted-events`) must survive a restart. Whatever is left
/// here by a crash mid-deletion is removed at the next open.
const DELETING_DIR: &str = "deleting";
const CONFIG_FILE: &str = "topic.conf";
/// Lock file in the data directory's root; see [`Storage::lock_exclusive`].
const LOCK_FILE: &str = "keel.lock";

impl Log {
    /// Opens (recovering) or creates a log in `root` with default options.
    pub fn open(root: impl AsRef<Path>) -> Result<Log, OpenError> {
        Log::open_with(root, LogOptions::default())
    }

    /// Opens (recovering) or creates a log in `root`.
    pub fn open_with(root: impl AsRef<Path>, mut options: LogOptions) -> Result<Log, OpenError> {
        let root = root.as_ref().to_path_buf();
        let files = Arc::new(BoundedStorage::new(
            options.storage.clone(),
            options.open_files_max,
        ));
        options.storage = files.clone();
        let storage = options.storage.clone();
        let topics_dir = root.join(TOPICS_DIR);
        let deleting_dir = root.join(DELETING_DIR);
        let io_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| OpenError::Io { path, source }
        };
        for dir in [&topics_dir, &deleting_dir] {
            storage.create_dir_all(dir).map_err(io_error(dir))?;
        }
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
            files,
            topics: RwLock::new(BTreeMap::new()),
            maintenance: Mutex::default(),
            maintenance_wake: Condvar::new(),
            deletions: AtomicU64::new(0),
        });
        // Deletions a crash interrupted: their directories left `topics/` before anything else
        // happened to them, so finishing them here touches no topic.
        for name in storage
            .list_dir(&deleting_dir)
            .map_err(io_error(&deleting_dir))?
        {
            let dir = deleting_dir.join(&name);
            storage.remove_dir_all(&dir).map_err(io_error(&dir))?;
        }
        let mut recovery = RecoveryReport::default();
        for name in storage
            .list_dir(&topics_dir)
            .map_err(io_error(&topics_dir))?
        {
            let dir = topics_dir.join(&name);
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

    /// Creates one of Keel's internal topics: its name starts with `__`, so no Kafka client
    /// reaches it (`create_topic` refuses such names; brokers hide them). For components that
    /// keep their state in the log, such as the users of SASL/SCRAM.
    pub fn create_internal_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if !name.starts_with("__") {
            return Err(TopicError::InvalidName {
                name: name.into(),
                reason: "internal topic names start with '__'",
            });
        }
        self.shared.create_topic(name, config)
    }

    /// Raises a user topic's partition count to `partitions` (Kafka's CreatePartitions): the
    /// new partitions start empty and existing ones are untouched. The returned topic (and
    /// [`Log::topic`] from now on) has them all; a `Topic` fetched before keeps the old count,
    /// as a Kafka client keeps its metadata until it refreshes. `docs/log-format.md` has the
    /// crash analysis.
    pub fn add_partitions(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, TopicError> {
        if is_internal_topic(name) {
            return Err(TopicError::InvalidName {
                name: name.into(),
                reason: "internal topics keep their partitions",
            });
        }
        self.shared.add_partitions(name, partitions)
    }

    /// Changes a user topic's settings while it runs (Kafka's AlterConfigs): retention,
    /// cleanup, segment size and age, the largest batch, the fsync policy. `config` is the
    /// whole new configuration; its partition count must be the topic's own
    /// ([`Log::add_partitions`] raises it). The new `topic.conf` is committed first (written
    /// beside, fsynced, renamed over, directory fsynced — after a crash the topic has either
    /// the old or the new settings, never a mix), then appends, reads and maintenance follow
    /// it. A lowered `max_batch_bytes` applies to new appends only: stored batches stay
    /// readable. Keel's own topics ([`is_internal_topic`]) keep their settings.
    pub fn alter_topic_config(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Arc<Topic>, TopicError> {
        if is_internal_topic(name) {
            return Err(TopicError::Internal(name.into()));
        }
        config.validate()?;
        let topics = self.shared.topics.write().expect("topics lock");
        let topic = topics
            .get(name)
            .cloned()
            .ok_or_else(|| TopicError::NotFound(name.into()))?;
        let have = topic.partitions().len() as u32;
        if config.partitions != have {
            return Err(crate::ConfigError {
                key: "partitions".into(),
                reason: format!(
                    "the topic has {have}; partitions are added, not altered (add_partitions)"
                ),
            }
            .into());
        }
        let dir = self.shared.root.join(TOPICS_DIR).join(name);
        self.shared.write_config(&dir, &config)?;
        topic.set_config(config);
        self.shared.wake_maintenance();
        Ok(topic)
    }

    /// Deletes a topic, its data and every group's committed offsets in it. Keel's own
    /// topics ([`is_internal_topic`]) are refused. The offsets go first (tombstones): after
    /// a crash between the two steps the topic is still there, its groups start over, and
    /// nothing of a topic created again later is ever skipped. Then the topic's directory is
    /// renamed out of `topics/` (the commit point: after a crash the topic is gone, and the
    /// next open removes the rest), so the name can be created again at once.
    pub fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if is_internal_topic(name) {
            return Err(TopicError::Internal(name.into()));
        }
        let mut topics = self.shared.topics.write().expect("topics lock");
        if !topics.contains_key(name) {
            return Err(TopicError::NotFound(name.into()));
        }
        self.offsets.delete_topic(name).map_err(|error| {
            TopicError::Io(std::io::Error::other(format!(
                "cannot forget the committed offsets of topic '{name}': {error}"
            )))
        })?;
        topics.remove(name);
        drop(topics);
        self.shared.wake_maintenance();
        let storage = &self.shared.options.storage;
        let topics_dir = self.shared.root.join(TOPICS_DIR);
        let deleting_dir = self.shared.root.join(DELETING_DIR);
        // Named by time and a counter, never by the topic: a 249-character name plus any
        // suffix would not fit a 255-byte directory entry.
        let doomed = deleting_dir.join(format!(
            "{}-{}",
            self.shared.options.clock.now_ms(),
            self.shared.deletions.fetch_add(1, Ordering::Relaxed)
        ));
        storage.rename(&topics_dir.join(name), &doomed)?;
        storage.sync_dir(&topics_dir)?;
        storage.sync_dir(&deleting_dir)?;
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

    /// Partitions that refuse writes after a failed fsync, as `(topic, partition, reason)`;
    /// empty while every partition is healthy. Internal topics included.
    pub fn failed_partitions(&self) -> Vec<(String, u32, String)> {
        let mut failed = Vec::new();
        for topic in self.shared.all_topics() {
            for (index, partition) in topic.partitions().iter().enumerate() {
                if let Some(reason) = partition.failure() {
                    failed.push((topic.name().to_string(), index as u32, reason));
                }
            }
        }
        failed
    }

    /// The segment and index files open now, the budget and how often it closed some.
    pub fn open_files(&self) -> OpenFiles {
        self.shared.files.open_files()
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }
}

impl Drop for Log {
    /// Stops the maintenance thread, syncs what is unsynced and cuts the zeros written ahead
    /// of each active segment (a clean shutdown).
    fn drop(&mut self) {
        self.shared
            .maintenance
            .lock()
            .expect("maintenance lock")
            .stop = true;
        self.shared.maintenance_wake.notify_all();
        if let Some(handle) = self.maintenance.take() {
            let _ = handle.join();
        }
        let _ = self.flush();
        for topic in self.shared.all_topics() {
            for partition in topic.partitions() {
                // Left uncut, the zeros are cut by the next open's recovery scan instead.
                let _ = partition.trim_preallocated();
            }
        }
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
        self.write_config(&dir, &config)?;
        storage.sync_dir(&topics_dir)?;
        topics.insert(name.to_string(), topic.clone());
        self.wake_maintenance();
        Ok(topic)
    }

    /// Tells the maintenance thread the topics changed, so it computes its next deadline
    /// again (a new `fsync = interval` topic must not wait out a longer sleep).
    fn wake_maintenance(&self) {
        self.maintenance
            .lock()
            .expect("maintenance lock")
            .topics_changed = true;
        self.maintenance_wake.notify_all();
    }

    fn add_partitions(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, TopicError> {
        let mut topics = self.topics.write().expect("topics lock");
        let old = topics
            .get(name)
            .cloned()
            .ok_or_else(|| TopicError::NotFound(name.into()))?;
        let have = old.partitions().len() as u32;
        if partitions <= have {
            return Err(TopicError::PartitionsNotIncreased {
                topic: name.into(),
                have,
                asked: partitions,
            });
        }
        let config = TopicConfig {
            partitions,
            ..old.config()
        };
        config.validate()?;
        let storage = &self.options.storage;
        let dir = self.root.join(TOPICS_DIR).join(name);
        let mut all = old.partitions().to_vec();
        for index in have..partitions {
            let partition_dir = dir.join(index.to_string());
            // A leftover of an addition cut by a crash before its commit: never served.
            if storage.exists(&partition_dir) {
                storage.remove_dir_all(&partition_dir)?;
            }
            let (partition, _) = Partition::open(
                storage.clone(),
                self.options.clock.clone(),
                &partition_dir,
                config.clone(),
            )?;
            all.push(Arc::new(partition));
        }
        storage.sync_dir(&dir)?;
        self.write_config(&dir, &config)?;
        let topic = Arc::new(Topic::new(name.to_string(), config, all));
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Commits `config` as the topic's `topic.conf`: written beside it, fsynced, renamed over
    /// it, and the directory fsynced.
    fn write_config(&self, dir: &Path, config: &TopicConfig) -> std::io::Result<()> {
        let storage = &self.options.storage;
        let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
        let file = storage.open(&tmp, true)?;
        let text = config.to_conf();
        file.set_len(0)?;
        file.write_all_at(text.as_bytes(), 0)?;
        file.sync_data()?;
        storage.rename(&tmp, &dir.join(CONFIG_FILE))?;
        storage.sync_dir(dir)
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
    /// on its interval, stop when the log is dropped. Between them it sleeps until the
    /// earliest one is due (or a topic changes), not on a fixed tick: an idle broker's
    /// thread used to wake every 10 ms and copy every topic's name (10% of an idle server's
    /// samples).
    fn maintain(&self) {
        let mut last_flush: BTreeMap<String, Instant> = BTreeMap::new();
        let mut last_cleanup = Instant::now();
        let mut topics_changed = false;
        loop {
            if std::mem::take(&mut topics_changed) {
                last_flush.retain(|name, _| self.topic(name).is_some());
            }
            let now = Instant::now();
            let mut next_flush: Option<Instant> = None;
            let topics = self.all_topics();
            for topic in &topics {
                let FsyncPolicy::Interval(interval) = topic.config().fsync else {
                    continue;
                };
                let last = match last_flush.get_mut(topic.name()) {
                    Some(last) => last,
                    None => last_flush.entry(topic.name().to_string()).or_insert(now),
                };
                if now.duration_since(*last) >= interval {
                    *last = now;
                    for partition in topic.partitions() {
                        // A failure is sticky in the partition and reported to its appenders.
                        let _ = partition.flush();
                    }
                }
                let due = *last + interval;
                next_flush = Some(next_flush.map_or(due, |next| next.min(due)));
            }
            drop(topics);
            let cleanup_every = self.options.retention_check_interval;
            if now.duration_since(last_cleanup) >= cleanup_every {
                last_cleanup = now;
                let _ = self.run_cleanup();
            }
            let until_cleanup = cleanup_every.saturating_sub(last_cleanup.elapsed());
            let until_flush = next_flush.map_or(Duration::MAX, |next| {
                next.saturating_duration_since(Instant::now())
            });
            let signal = self.maintenance.lock().expect("maintenance lock");
            let (mut signal, _) = self
                .maintenance_wake
                .wait_timeout_while(signal, until_cleanup.min(until_flush), |signal| {
                    !signal.stop && !signal.topics_changed
                })
                .expect("maintenance lock");
            if signal.stop {
                return;
            }
            topics_changed = std::mem::take(&mut signal.topics_changed);
        }
    }
}

fn read_text(storage: &dyn Storage, path: &Path) -> std::io::Result<String> {
    let file = storage.open(path, false)?;
    let mut bytes = Vec::new();
    file.read_exact_into(&mut bytes, file.size()? as usize, 0)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
