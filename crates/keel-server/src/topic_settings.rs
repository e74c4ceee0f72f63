//! A topic's settings, read and changed over HTTP (`PATCH /api/topics/{topic}/config`, the
//! topic's page) under Kafka's names, on either source.
//!
//! On the owned log, the changes asked for (by Kafka's names or `topic.conf`'s) are applied
//! to the topic's settings as they are and checked ([`plan`]), and committed through
//! `Log::alter_topic_config`. On a cluster, the admin port reads them (DescribeConfigs) and
//! the brokers check and apply a change (AlterConfigs; a dry run asks them to validate
//! only). Either way, what differs is listed as old → new, so the console previews a change
//! with the same code that then makes it.

use std::collections::BTreeMap;

use keel_core::TopicSetting;
use keel_log::{ConfigError, TopicConfig, TopicError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{ApiError, App};
use crate::source::Source;

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

/// Every setting of `topic` under Kafka's names, by name; on the log, those Keel keeps
/// (default: as a new topic of its partition count would have it).
pub(crate) async fn describe(app: &App, topic: String) -> Result<Vec<TopicSetting>, ApiError> {
    if let Source::Log(_) = app.source {
        return app
            .with_log(move |log| {
                let config = log
                    .topic(&topic)
                    .ok_or_else(|| TopicError::NotFound(topic.clone()))?
                    .config();
                let defaults = keel_kafka::kafka_configs(&TopicConfig::new(config.partitions));
                let settings = keel_kafka::kafka_configs(&config)
                    .into_iter()
                    .zip(defaults)
                    .map(|((name, value), (_, default))| TopicSetting {
                        is_default: value == default,
                        name: name.into(),
                        value,
                    });
                let mut settings: Vec<TopicSetting> = settings.collect();
                settings.sort_by(|a, b| a.name.cmp(&b.name));
                Ok::<_, TopicError>(settings)
            })
            .await;
    }
    app.on_ports(move |admin, _| Box::pin(async move { admin.topic_config(&topic).await }))
        .await
}

/// Changes the settings of `topic` named in `changes` (unless `dry_run`): the settings
/// that differ, old → new, and whether they are in force now. A bad name or value, or a
/// topic Keel keeps for itself, is refused, naming it.
pub(crate) async fn change(
    app: &App,
    topic: String,
    changes: BTreeMap<String, String>,
    dry_run: bool,
) -> Result<(Vec<SettingChange>, bool), ApiError> {
    if let Source::Log(_) = app.source {
        return app
            .with_log(move |log| {
                let current = log
                    .topic(&topic)
                    .ok_or_else(|| TopicError::NotFound(topic.clone()))?
                    .config();
                let (config, altered) = plan(&topic, &current, &changes)?;
                if dry_run || altered.is_empty() {
                    return Ok((altered, false));
                }
                log.alter_topic_config(&topic, config)?;
                tracing::info!(%topic, changes = ?altered, "topic settings changed over HTTP");
                Ok::<_, TopicError>((altered, true))
            })
            .await;
    }
    if keel_log::is_internal_topic(&topic) {
        return Err(TopicError::Internal(topic).into());
    }
    let current = describe(app, topic.clone()).await?;
    let altered = differences(&topic, &current, &changes)?;
    if altered.is_empty() {
        return Ok((altered, false));
    }
    let asked: BTreeMap<String, String> = altered
        .iter()
        .map(|c| (c.setting.clone(), c.to.clone()))
        .collect();
    app.on_ports(move |admin, _| {
        Box::pin(async move {
            admin
                .alter_topic_config(&topic, &asked, dry_run)
                .await
                .inspect(|()| {
                    if !dry_run {
                        tracing::info!(%topic, ?asked, "topic settings changed on the cluster over HTTP");
                    }
                })
        })
    })
    .await?;
    Ok((altered, !dry_run))
}

/// The settings `changes` alters in `current`, old → new; a name `current` lacks is
/// refused, naming it.
fn differences(
    topic: &str,
    current: &[TopicSetting],
    changes: &BTreeMap<String, String>,
) -> Result<Vec<SettingChange>, ApiError> {
    let mut altered = Vec::new();
    for (name, value) in changes {
        let Some(setting) = current.iter().find(|s| &s.name == name) else {
            return Err(ApiError::bad_request(format!(
                "topic '{topic}' has no setting '{name}' (the cluster takes Kafka's names, such as retention.ms)"
            )));
        };
        let value = value.trim();
        if setting.value != value {
            altered.push(SettingChange {
                setting: name.clone(),
                from: setting.value.clone(),
                to: value.to_string(),
            });
        }
    }
    Ok(altered)
}

/// `current` with `changes` applied, and the settings that differ; a bad name or value, a
/// partition count, or a topic Keel keeps for itself is refused, naming it.
fn plan(
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
