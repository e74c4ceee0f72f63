//! A topic's settings on a Kafka cluster, for `KafkaAdmin`'s `topic_config` and
//! `alter_topic_config`: DescribeConfigs, and AlterConfigs with the topic's own settings
//! carried over.
//!
//! AlterConfigs (the request librdkafka's admin client offers) replaces a topic's whole set
//! of settings: whatever it leaves out goes back to the broker's default. So a change is
//! sent as every setting set on the topic now (DescribeConfigs' `DynamicTopic` entries)
//! with the asked ones replaced. Two operators altering one topic at once may undo each
//! other's change, as with `kafka-configs.sh --alter` before IncrementalAlterConfigs; a
//! sensitive setting (whose value the cluster never tells) would be lost, so a topic with
//! one is refused rather than altered.
//!
//! The broker checks the values, but rdkafka 0.39 drops AlterConfigs' per-topic errors
//! (`AlterConfigsFuture` answers `Ok` for every resource), so a change is read back until it
//! shows ([`CONFIG_VISIBLE_WAIT`]) and refused, naming the settings, when it does not. For the
//! same reason a `validate_only` preview checks only the names (against DescribeConfigs):
//! a bad value shows when the change is made.
//!
//! Not here: checking values ourselves — the broker's rules are the broker's.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use keel_core::{TopicSetting, TransportError};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigEntry, ConfigSource, ResourceSpecifier,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::limits::{CONFIG_VISIBLE_WAIT, METADATA_TIMEOUT, TOPIC_VISIBLE_POLL};
use crate::topics::unavailable;

/// Every setting of `topic`, by name.
pub(crate) async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Vec<TopicSetting>, TransportError> {
    let mut settings: Vec<TopicSetting> = entries(admin, topic)
        .await?
        .into_iter()
        .map(|entry| TopicSetting {
            value: entry.value.unwrap_or_default(),
            is_default: entry.is_default,
            name: entry.name,
        })
        .collect();
    settings.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(settings)
}

/// Sets `changes` on `topic`, keeping its other settings; only checks them when
/// `validate_only`.
pub(crate) async fn alter(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    changes: &BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), TransportError> {
    let current = entries(admin, topic).await?;
    if let Some(unknown) = changes
        .keys()
        .find(|name| !current.iter().any(|entry| &entry.name == *name))
    {
        return Err(TransportError::Refused {
            reason: format!("topic '{topic}' has no setting '{unknown}'"),
        });
    }
    let mut kept: HashMap<&str, &str> = HashMap::new();
    for entry in current
        .iter()
        .filter(|entry| matches!(entry.source, ConfigSource::DynamicTopic))
    {
        match &entry.value {
            Some(value) => kept.insert(&entry.name, value),
            None if changes.contains_key(&entry.name) => None,
            None => {
                return Err(TransportError::Refused {
                    reason: format!(
                        "topic '{topic}' has the sensitive setting '{}', whose value the cluster does not tell; altering the others would lose it",
                        entry.name
                    ),
                });
            }
        };
    }
    for (name, value) in changes {
        kept.insert(name, value);
    }
    let request = AlterConfig {
        specifier: ResourceSpecifier::Topic(topic),
        entries: kept,
    };
    let options = AdminOptions::new()
        .operation_timeout(Some(METADATA_TIMEOUT))
        .validate_only(validate_only);
    let results = admin
        .alter_configs([&request], &options)
        .await
        .map_err(|e| unavailable(format!("altering the settings of topic '{topic}': {e}")))?;
    let asked = || {
        changes
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for result in results {
        if let Err((_, code)) = result {
            return Err(refusal(topic, code, &asked()));
        }
    }
    if validate_only {
        return Ok(());
    }
    let deadline = Instant::now() + CONFIG_VISIBLE_WAIT;
    loop {
        let now = entries(admin, topic).await?;
        let missing: Vec<String> = changes
            .iter()
            .filter(|(name, value)| {
                !now.iter()
                    .any(|e| &e.name == *name && e.value.as_deref() == Some(value.as_str()))
            })
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TransportError::Refused {
                reason: format!(
                    "the cluster did not take {} for topic '{topic}' (a value it does not accept?)",
                    missing.join(", ")
                ),
            });
        }
        tokio::time::sleep(TOPIC_VISIBLE_POLL).await;
    }
}

/// DescribeConfigs of `topic`: every entry, as the cluster gives them.
async fn entries(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Vec<ConfigEntry>, TransportError> {
    let options = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|e| unavailable(format!("the settings of topic '{topic}': {e}")))?;
    match results.into_iter().next() {
        Some(Ok(resource)) => Ok(resource.entries),
        Some(Err(code)) => Err(refusal(topic, code, "reading them")),
        None => Err(unavailable(format!(
            "no settings of topic '{topic}' in the answer"
        ))),
    }
}

/// The port's error for a settings request the cluster refused: `what` says what was
/// asked (`retention.ms=soon`).
fn refusal(topic: &str, code: RDKafkaErrorCode, what: &str) -> TransportError {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
            TransportError::UnknownTopic {
                topic: topic.to_string(),
            }
        }
        RDKafkaErrorCode::InvalidConfig
        | RDKafkaErrorCode::InvalidRequest
        | RDKafkaErrorCode::PolicyViolation
        | RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => TransportError::Refused {
            reason: format!("the cluster refused {what} for topic '{topic}': {code}"),
        },
        _ => unavailable(format!("settings of topic '{topic}' ({what}): {code}")),
    }
}
