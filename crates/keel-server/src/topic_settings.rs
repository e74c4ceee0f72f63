//! A topic's settings changed over HTTP (`PATCH /api/topics/{topic}/config`): the changes
//! asked for (by Kafka's names or `topic.conf`'s) are applied to the topic's settings as
//! they are and checked, and what would differ is listed as old → new under Kafka's names.
//! A dry run stops there, so the console previews a change with the same code that then
//! makes it; otherwise the new settings are committed through `Log::alter_topic_config`.

use std::collections::BTreeMap;

use keel_log::{ConfigError, TopicConfig, TopicError};
use serde::Serialize;
use utoipa::ToSchema;

/// One setting a change alters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct SettingChange {
    /// The setting, as Kafka names it (`retention.ms`, `keel.fsync`, …).
    pub(crate) setting: String,
    /// Its value now (Kafka's form: -1 for no limit).
    pub(crate) from: String,
    /// Its value after the change.
    pub(crate) to: String,
}

/// `current` with `changes` applied, and the settings that differ; a bad name or value, a
/// partition count, or a topic Keel keeps for itself is refused, naming it.
pub(crate) fn plan(
    topic: &str,
    current: &TopicConfig,
    changes: &BTreeMap<String, String>,
) -> Result<(TopicConfig, Vec<SettingChange>), TopicError> {
    if keel_log::is_internal_topic(topic) {
        return Err(TopicError::Internal(topic.into()));
    }
    let mut config = current.clone();
    for (name, value) in changes {
        keel_kafka::apply_named_config(&mut config, name, value.trim())
            .map_err(ConfigError::from)?;
    }
    if config.partitions != current.partitions {
        return Err(ConfigError {
            key: "partitions".into(),
            reason: "partitions are added, not altered".into(),
        }
        .into());
    }
    config.validate()?;
    let before = keel_kafka::kafka_configs(current);
    let altered = keel_kafka::kafka_configs(&config)
        .into_iter()
        .zip(before)
        .filter(|((_, to), (_, from))| to != from)
        .map(|((setting, to), (_, from))| SettingChange {
            setting: setting.into(),
            from,
            to,
        })
        .collect();
    Ok((config, altered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_plan_lists_what_differs_under_kafka_names_and_names_what_is_wrong() {
        let current = TopicConfig::new(3);
        let (config, altered) = plan(
            "orders",
            &current,
            &changes(&[
                ("retention.ms", "60000"),
                ("cleanup", "delete"),
                ("keel.fsync", "never"),
            ]),
        )
        .unwrap();
        assert_eq!(config.retention_ms, Some(60_000));
        let settings: Vec<_> = altered.iter().map(|c| c.setting.as_str()).collect();
        assert_eq!(
            settings,
            ["retention.ms", "keel.fsync"],
            "cleanup did not change"
        );
        assert_eq!(altered[0].from, "-1");
        assert_eq!(altered[0].to, "60000");

        let refused = |pairs: &[(&str, &str)]| {
            plan("orders", &current, &changes(pairs))
                .unwrap_err()
                .to_string()
        };
        let bad = refused(&[("retention.ms", "soon")]);
        assert!(
            bad.contains("retention.ms") && bad.contains("soon"),
            "{bad}"
        );
        assert!(refused(&[("colour", "blue")]).contains("colour"));
        assert!(refused(&[("partitions", "4")]).contains("partitions"));
        assert!(refused(&[("segment.bytes", "1")]).contains("segment"));
        assert!(
            plan("_keel_schemas", &current, &BTreeMap::new()).is_err(),
            "Keel's own topics keep their settings"
        );
    }
}
