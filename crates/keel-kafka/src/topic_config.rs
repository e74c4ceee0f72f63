//! Kafka topic config names mapped onto [`TopicConfig`], for CreateTopics, DescribeConfigs,
//! AlterConfigs and IncrementalAlterConfigs.
//!
//! Only settings Keel honours are accepted; a few Kafka settings that mean nothing on one node
//! (`min.insync.replicas`, `unclean.leader.election.enable`) are accepted and ignored so
//! ordinary admin tools work; anything else is refused with a message naming the setting,
//! rather than silently ignored.

use keel_log::{CleanupPolicy, ConfigError, FsyncPolicy, TopicConfig};

/// A Kafka config setting that cannot be applied, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config '{name}': {reason}")]
pub struct TopicConfigError {
    /// The setting.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

/// Keel's own setting of a topic's fsync policy, whose change needs AlterConfigs.
pub(crate) const KEEL_FSYNC: &str = "keel.fsync";

/// Keel's own setting of the zeros written ahead of a topic's active segments
/// (`preallocate_bytes`; `0` turns it off): Kafka's `preallocate`, in bytes.
const KEEL_PREALLOCATE_BYTES: &str = "keel.preallocate.bytes";

/// The timestamp type of a topic's records; Keel keeps only [`CREATE_TIME`].
const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
const CREATE_TIME: &str = "CreateTime";

/// Settings accepted and ignored: replication settings meaningless on one node.
const IGNORED: &[&str] = &["min.insync.replicas", "unclean.leader.election.enable"];

/// Applies one Kafka topic setting (`cleanup.policy`, `retention.ms`, `retention.bytes`,
/// `segment.bytes`, `segment.ms`, `max.message.bytes`, `delete.retention.ms`,
/// `message.timestamp.type` = `CreateTime`, and Keel's own
/// `keel.fsync` = `always` | `never` | `interval(<ms>)` and `keel.preallocate.bytes`) to
/// `config`.
pub fn apply_kafka_config(
    config: &mut TopicConfig,
    name: &str,
    value: Option<&str>,
) -> Result<(), TopicConfigError> {
    let error = |reason: String| TopicConfigError {
        name: name.into(),
        reason,
    };
    if IGNORED.contains(&name) {
        return Ok(());
    }
    let Some(value) = value else {
        return Err(error("a value is required".into()));
    };
    let number = || {
        value
            .parse::<i64>()
            .map_err(|e| error(format!("'{value}': {e}")))
    };
    // Kafka spells "no limit" as -1.
    let optional = |n: i64| (n >= 0).then_some(n);
    match name {
        "cleanup.policy" => {
            config.cleanup = match value {
                "delete" => CleanupPolicy::Delete,
                "compact" => CleanupPolicy::Compact,
                _ => return Err(error(format!("'{value}' is not delete or compact"))),
            }
        }
        "retention.ms" => config.retention_ms = optional(number()?),
        "retention.bytes" => config.retention_bytes = optional(number()?).map(|n| n as u64),
        "segment.bytes" => {
            config.segment_bytes =
                u64::try_from(number()?).map_err(|_| error("must not be negative".into()))?
        }
        "segment.ms" => config.segment_ms = number()?,
        "max.message.bytes" => {
            config.max_batch_bytes =
                u32::try_from(number()?).map_err(|_| error("out of range".into()))?
        }
        "delete.retention.ms" => config.delete_retention_ms = number()?,
        // Records keep the producer's timestamp: Kafka's default, which Kafka Streams asks
        // for by name on its internal topics.
        MESSAGE_TIMESTAMP_TYPE if value == CREATE_TIME => {}
        MESSAGE_TIMESTAMP_TYPE => {
            return Err(error(format!(
                "'{value}' is not supported by Keel (records keep their {CREATE_TIME})"
            )));
        }
        KEEL_FSYNC => {
            config.fsync = value.parse::<FsyncPolicy>().map_err(error)?;
        }
        KEEL_PREALLOCATE_BYTES => {
            config.preallocate_bytes =
                u64::try_from(number()?).map_err(|_| error("must not be negative".into()))?
        }
        _ => return Err(error("not supported by Keel".into())),
    }
    config
        .validate()
        .map_err(|e| error(format!("'{value}': {}", e.reason)))
}

/// A setting refused by [`apply_named_config`], in the words of the naming it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamedConfigError {
    /// A setting by its Kafka name.
    #[error(transparent)]
    Kafka(#[from] TopicConfigError),
    /// A setting by its `topic.conf` name.
    #[error(transparent)]
    Keel(#[from] ConfigError),
}

impl From<NamedConfigError> for ConfigError {
    fn from(error: NamedConfigError) -> ConfigError {
        match error {
            NamedConfigError::Kafka(e) => ConfigError {
                key: e.name,
                reason: e.reason,
            },
            NamedConfigError::Keel(e) => e,
        }
    }
}

/// Applies one setting named as Kafka names it (the names have dots: `retention.ms`) or as
/// `topic.conf` does (`retention_ms`), so `keel topics alter --config` and the operator API's
/// `PATCH /api/topics/{topic}/config` take what `kafka-configs` and the Kafka listener take.
pub fn apply_named_config(
    config: &mut TopicConfig,
    name: &str,
    value: &str,
) -> Result<(), NamedConfigError> {
    if name.contains('.') {
        apply_kafka_config(config, name, Some(value))?;
    } else {
        config.set(name, value)?;
    }
    Ok(())
}

/// One change AlterConfigs or IncrementalAlterConfigs asks of a topic setting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConfigChange<'a> {
    /// The setting takes this value (`None` is refused, as for CreateTopics).
    Set(&'a str, Option<&'a str>),
    /// The setting goes back to the broker's default for topics (IncrementalAlterConfigs'
    /// DELETE).
    Reset(&'a str),
}

/// `base` with `changes` applied in order, each checked as CreateTopics checks it; a reset
/// takes its value from `defaults`. Nothing is written: the caller commits the result.
pub(crate) fn altered_config<'a>(
    base: &TopicConfig,
    defaults: &TopicConfig,
    changes: impl IntoIterator<Item = ConfigChange<'a>>,
) -> Result<TopicConfig, TopicConfigError> {
    let mut config = base.clone();
    let default_values = kafka_configs(defaults);
    for change in changes {
        match change {
            ConfigChange::Set(name, value) => apply_kafka_config(&mut config, name, value)?,
            ConfigChange::Reset(name) if IGNORED.contains(&name) => {}
            ConfigChange::Reset(name) => {
                let Some((_, value)) = default_values.iter().find(|(key, _)| *key == name) else {
                    return Err(TopicConfigError {
                        name: name.into(),
                        reason: "not supported by Keel".into(),
                    });
                };
                apply_kafka_config(&mut config, name, Some(value))?;
            }
        }
    }
    Ok(config)
}

/// A topic's settings under their Kafka names, for DescribeConfigs and the console.
pub fn kafka_configs(config: &TopicConfig) -> Vec<(&'static str, String)> {
    let or_unlimited = |value: Option<String>| value.unwrap_or_else(|| "-1".into());
    vec![
        ("cleanup.policy", config.cleanup.to_string()),
        (
            "retention.ms",
            or_unlimited(config.retention_ms.map(|v| v.to_string())),
        ),
        (
            "retention.bytes",
            or_unlimited(config.retention_bytes.map(|v| v.to_string())),
        ),
        ("segment.bytes", config.segment_bytes.to_string()),
        ("segment.ms", config.segment_ms.to_string()),
        ("max.message.bytes", config.max_batch_bytes.to_string()),
        (
            "delete.retention.ms",
            config.delete_retention_ms.to_string(),
        ),
        (MESSAGE_TIMESTAMP_TYPE, CREATE_TIME.to_string()),
        (KEEL_FSYNC, config.fsync.to_string()),
        (KEEL_PREALLOCATE_BYTES, config.preallocate_bytes.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: Option<&str>, expected: Result<&str, &str>) {
        let mut config = TopicConfig::new(1);
        let result = apply_kafka_config(&mut config, name, value);
        match (result, expected) {
            (Ok(()), Ok(key)) => {
                let shown = kafka_configs(&config)
                    .into_iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v);
                assert_eq!(shown.as_deref(), value, "{name}");
            }
            (Err(error), Err(fragment)) => {
                assert!(error.to_string().contains(fragment), "{error}")
            }
            (result, expected) => panic!("{name}={value:?}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn kafka_settings_round_trip_or_name_the_problem() {
        check("cleanup.policy", Some("compact"), Ok("cleanup.policy"));
        check("retention.ms", Some("60000"), Ok("retention.ms"));
        check("retention.ms", Some("-1"), Ok("retention.ms"));
        check("retention.bytes", Some("1048576"), Ok("retention.bytes"));
        check("segment.bytes", Some("2048"), Ok("segment.bytes"));
        check("max.message.bytes", Some("4096"), Ok("max.message.bytes"));
        check("keel.fsync", Some("interval(5)"), Ok("keel.fsync"));
        check(
            "keel.preallocate.bytes",
            Some("0"),
            Ok("keel.preallocate.bytes"),
        );
        check(
            "keel.preallocate.bytes",
            Some("-1"),
            Err("config 'keel.preallocate.bytes'"),
        );
        check(
            "keel.preallocate.bytes",
            Some("67108865"),
            Err("config 'keel.preallocate.bytes'"),
        );
        check(
            "cleanup.policy",
            Some("forever"),
            Err("'forever' is not delete or compact"),
        );
        check("segment.bytes", Some("10"), Err("config 'segment.bytes'"));
        check(
            "retention.ms",
            Some("soon"),
            Err("config 'retention.ms': 'soon'"),
        );
        check(
            "compression.type",
            Some("zstd"),
            Err("not supported by Keel"),
        );
        check("retention.ms", None, Err("a value is required"));
        check(
            "message.timestamp.type",
            Some("CreateTime"),
            Ok("message.timestamp.type"),
        );
        check(
            "message.timestamp.type",
            Some("LogAppendTime"),
            Err("'LogAppendTime' is not supported by Keel"),
        );
    }

    #[test]
    fn changes_apply_in_order_and_resets_take_the_defaults() {
        let defaults = TopicConfig::new(1).with_segment_bytes(4096);
        let mut base = TopicConfig::new(3);
        base.retention_ms = Some(1_000);
        let altered = altered_config(
            &base,
            &defaults,
            [
                ConfigChange::Set("retention.bytes", Some("2048")),
                ConfigChange::Reset("retention.ms"),
                ConfigChange::Reset("segment.bytes"),
                ConfigChange::Reset("min.insync.replicas"),
            ],
        )
        .unwrap();
        assert_eq!(altered.partitions, 3);
        assert_eq!(altered.retention_bytes, Some(2048));
        assert_eq!(altered.retention_ms, None);
        assert_eq!(altered.segment_bytes, 4096);
        let refused = altered_config(&base, &defaults, [ConfigChange::Reset("flush.ms")]);
        assert_eq!(
            refused.unwrap_err().to_string(),
            "config 'flush.ms': not supported by Keel"
        );
    }

    #[test]
    fn replication_settings_are_accepted_and_ignored() {
        let mut config = TopicConfig::new(3);
        apply_kafka_config(&mut config, "min.insync.replicas", Some("2")).unwrap();
        assert_eq!(config, TopicConfig::new(3));
    }
}
