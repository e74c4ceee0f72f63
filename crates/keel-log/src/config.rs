//! Topic configuration: what a user tunes per topic, its validation and its `topic.conf` form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::limits::{
    BATCH_BYTES_MAX_CEILING, BATCH_BYTES_MAX_DEFAULT, DELETE_RETENTION_MS_DEFAULT, PARTITIONS_MAX,
    PREALLOCATE_BYTES_CEILING, PREALLOCATE_BYTES_DEFAULT, SEGMENT_BYTES_CEILING,
    SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN, SEGMENT_MS_DEFAULT,
};

/// When an append is made durable; see the crate docs for the exact promise of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before acknowledging (group commit shares one sync among concurrent appends).
    Always,
    /// A background flusher syncs every interval; appends are acknowledged once written.
    Interval(Duration),
    /// Never sync explicitly; the OS writes back when it likes.
    Never,
}

/// What happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole segments are deleted by age and size.
    Delete,
    /// Only the latest record per key is kept; tombstones go after `delete_retention_ms`.
    Compact,
}

/// A topic's settings. Build with [`TopicConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions; only ever raised (`Log::add_partitions`).
    pub partitions: u32,
    /// Durability policy of appends.
    pub fsync: FsyncPolicy,
    /// Size at which the active segment is sealed.
    pub segment_bytes: u64,
    /// Age (by the segment's first append) at which the active segment is sealed.
    pub segment_ms: i64,
    /// Sealed segments whose newest record is older than this are deleted; `None` keeps all.
    pub retention_ms: Option<i64>,
    /// Oldest sealed segments are deleted while the partition is larger; `None` keeps all.
    pub retention_bytes: Option<u64>,
    /// Delete or compact.
    pub cleanup: CleanupPolicy,
    /// How long a tombstone survives compaction, measured from its batch's max timestamp.
    pub delete_retention_ms: i64,
    /// Largest batch accepted on append, in bytes on disk.
    pub max_batch_bytes: u32,
    /// Bytes of written, synced zeros kept ahead of the active segment's end (`0`: none), as
    /// Kafka's `preallocate` but written rather than `fallocate`d: an append into them is an
    /// overwrite, so its `fdatasync` does not also wait for the inode's new size (see
    /// `segment.rs`, "Pre-extension").
    pub preallocate_bytes: u64,
}

/// A configuration value that is out of range or unparsable, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic setting '{key}': {reason}")]
pub struct ConfigError {
    /// The setting.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TopicConfig {
    /// Defaults with `partitions` partitions: `fsync = always`, delete cleanup, no retention.
    pub fn new(partitions: u32) -> TopicConfig {
        TopicConfig {
            partitions,
            fsync: FsyncPolicy::Always,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            retention_ms: None,
            retention_bytes: None,
            cleanup: CleanupPolicy::Delete,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            max_batch_bytes: BATCH_BYTES_MAX_DEFAULT,
            preallocate_bytes: PREALLOCATE_BYTES_DEFAULT,
        }
    }

    /// Sets the durability policy.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> TopicConfig {
        self.fsync = fsync;
        self
    }

    /// Sets the segment size.
    pub fn with_segment_bytes(mut self, bytes: u64) -> TopicConfig {
        self.segment_bytes = bytes;
        self
    }

    /// Sets how many bytes of zeros are kept written ahead of the active segment's end.
    pub fn with_preallocate_bytes(mut self, bytes: u64) -> TopicConfig {
        self.preallocate_bytes = bytes;
        self
    }

    /// Sets the cleanup policy.
    pub fn with_cleanup(mut self, cleanup: CleanupPolicy) -> TopicConfig {
        self.cleanup = cleanup;
        self
    }

    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, reason: String| {
            Err(ConfigError {
                key: key.into(),
                reason,
            })
        };
        if self.partitions == 0 || self.partitions > PARTITIONS_MAX {
            return fail(
                "partitions",
                format!("{} is not in 1..={PARTITIONS_MAX}", self.partitions),
            );
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_CEILING).contains(&self.segment_bytes) {
            return fail(
                "segment_bytes",
                format!(
                    "{} is not in {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_CEILING}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_ms <= 0 {
            return fail("segment_ms", "must be positive".into());
        }
        if self.retention_ms.is_some_and(|ms| ms <= 0) {
            return fail("retention_ms", "must be positive".into());
        }
        if self.delete_retention_ms < 0 {
            return fail("delete_retention_ms", "must not be negative".into());
        }
        if self.max_batch_bytes < 64 || self.max_batch_bytes > BATCH_BYTES_MAX_CEILING {
            return fail(
                "max_batch_bytes",
                format!(
                    "{} is not in 64..={BATCH_BYTES_MAX_CEILING}",
                    self.max_batch_bytes
                ),
            );
        }
        if self.preallocate_bytes > PREALLOCATE_BYTES_CEILING {
            return fail(
                "preallocate_bytes",
                format!(
                    "{} is not in 0..={PREALLOCATE_BYTES_CEILING}",
                    self.preallocate_bytes
                ),
            );
        }
        if let FsyncPolicy::Interval(interval) = self.fsync
            && interval.is_zero()
        {
            return fail("fsync", "interval must be at least 1 ms".into());
        }
        Ok(())
    }

    /// The `topic.conf` text: one `key = value` line per setting. `preallocate_bytes` is
    /// written only when it is not the default: it changes no byte of the log, and without
    /// the line the file stays readable by a keel from before the setting (which refuses
    /// unknown keys), so format v1 directories stay exactly as they were.
    pub fn to_conf(&self) -> String {
        let optional = |value: Option<String>| value.unwrap_or_else(|| "none".into());
        let preallocate = (self.preallocate_bytes != PREALLOCATE_BYTES_DEFAULT)
            .then(|| format!("preallocate_bytes = {}", self.preallocate_bytes));
        [
            format!("partitions = {}", self.partitions),
            format!("fsync = {}", self.fsync),
            format!("segment_bytes = {}", self.segment_bytes),
            format!("segment_ms = {}", self.segment_ms),
            format!(
                "retention_ms = {}",
                optional(self.retention_ms.map(|v| v.to_string()))
            ),
            format!(
                "retention_bytes = {}",
                optional(self.retention_bytes.map(|v| v.to_string()))
            ),
            format!("cleanup = {}", self.cleanup),
            format!("delete_retention_ms = {}", self.delete_retention_ms),
            format!("max_batch_bytes = {}", self.max_batch_bytes),
        ]
        .into_iter()
        .chain(preallocate)
        .chain([String::new()])
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// Parses `topic.conf` text; unknown keys are errors so typos are not silently ignored.
    pub fn from_conf(text: &str) -> Result<TopicConfig, ConfigError> {
        let mut config = TopicConfig::new(1);
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError {
                    key: line.into(),
                    reason: "expected 'key = value'".into(),
                });
            };
            config.set(key.trim(), value.trim())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one setting from its text form, as used by `topic.conf` and the CLI's `--config`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let error = |reason: String| ConfigError {
            key: key.into(),
            reason,
        };
        let number = |value: &str| {
            value
                .parse::<i64>()
                .map_err(|e| error(format!("'{value}': {e}")))
        };
        let optional = |value: &str| -> Result<Option<i64>, ConfigError> {
            if value == "none" {
                Ok(None)
            } else {
                number(value).map(Some)
            }
        };
        match key {
            "partitions" => self.partitions = to_unsigned(number(value)?, key)?,
            "fsync" => self.fsync = value.parse().map_err(error)?,
            "segment_bytes" => self.segment_bytes = to_unsigned(number(value)?, key)?,
            "segment_ms" => self.segment_ms = number(value)?,
            "retention_ms" => self.retention_ms = optional(value)?,
            "retention_bytes" => {
                self.retention_bytes = optional(value)?.map(|v| to_unsigned(v, key)).transpose()?
            }
            "cleanup" => self.cleanup = value.parse().map_err(error)?,
            "delete_retention_ms" => self.delete_retention_ms = number(value)?,
            "max_batch_bytes" => self.max_batch_bytes = to_unsigned(number(value)?, key)?,
            "preallocate_bytes" => self.preallocate_bytes = to_unsigned(number(value)?, key)?,
            _ => return Err(error("unknown setting".into())),
        }
        Ok(())
    }
}

fn to_unsigned<T: TryFrom<i64>>(value: i64, key: &str) -> Result<T, ConfigError> {
    T::try_from(value).map_err(|_| ConfigError {
        key: key.into(),
        reason: format!("{value} is out of range"),
    })
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(interval) => write!(f, "interval({})", interval.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;

    /// Accepts `always`, `never`, `interval(<ms>)` and `interval:<ms>`.
    fn from_str(text: &str) -> Result<FsyncPolicy, String> {
        let interval = text
            .strip_prefix("interval(")
            .and_then(|rest| rest.strip_suffix(')'))
            .or_else(|| text.strip_prefix("interval:"));
        match (text, interval) {
            ("always", _) => Ok(FsyncPolicy::Always),
            ("never", _) => Ok(FsyncPolicy::Never),
            (_, Some(ms)) => ms
                .trim()
                .parse::<u64>()
                .map(|ms| FsyncPolicy::Interval(Duration::from_millis(ms)))
                .map_err(|_| format!("'{text}': interval needs whole milliseconds")),
            _ => Err(format!("'{text}' is not always, never or interval(<ms>)")),
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        })
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<CleanupPolicy, String> {
        match text {
            "delete" => Ok(CleanupPolicy::Delete),
            "compact" => Ok(CleanupPolicy::Compact),
            _ => Err(format!("'{text}' is not delete or compact")),
        }
    }
}
