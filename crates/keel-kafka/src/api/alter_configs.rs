//! AlterConfigs (33): replaces a topic's settings while it runs (`Log::alter_topic_config`);
//! settings the request does not name go back to the broker's defaults for topics, as in
//! Kafka, where AlterConfigs sets the whole per-topic configuration. Also the commit step
//! IncrementalAlterConfigs shares.
//!
//! As Kafka: an unknown topic is `UNKNOWN_TOPIC_OR_PARTITION`, a setting Keel refuses or a
//! value out of range `INVALID_CONFIG` naming the setting, a resource other than a topic
//! `INVALID_REQUEST` (the broker's settings are static); `validate_only` checks without
//! changing. Needs AlterConfigs on the topic (`TOPIC_AUTHORIZATION_FAILED`); Keel's own
//! topics keep their settings (`INVALID_TOPIC_EXCEPTION`).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use keel_log::{TopicConfig, TopicError};

use crate::acl::{Caller, Operation};
use crate::api::describe_configs::RESOURCE_TOPIC;
use crate::api::{code, text};
use crate::broker::{Broker, blocking};
use crate::topic_config::{ConfigChange, TopicConfigError, altered_config};

/// Answers AlterConfigs.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let changes = resource
            .configs
            .iter()
            .map(|c| ConfigChange::Set(&c.name, c.value.as_deref()));
        let outcome = alter_topic(
            broker,
            caller,
            (resource.resource_type, &resource.resource_name),
            request.validate_only,
            |current, defaults| {
                let base = TopicConfig {
                    partitions: current.partitions,
                    ..defaults.clone()
                };
                altered_config(&base, defaults, changes)
            },
        )
        .await;
        let (error_code, message) = error_parts(outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(error_code)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// The error code and message answering one resource's `outcome` (0 and none for success).
pub(crate) fn error_parts(outcome: Result<(), (ResponseError, String)>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((error, message)) => (code(error), Some(text(message))),
    }
}

/// Changes the settings of the topic named by `resource` (type, name) to what `build` makes
/// of its current settings and the broker's defaults for topics (with the topic's partition
/// count), after checking the caller's permission; with `validate_only`, checks only.
pub(crate) async fn alter_topic(
    broker: &Arc<Broker>,
    caller: &Caller,
    (resource_type, name): (i8, &str),
    validate_only: bool,
    build: impl FnOnce(&TopicConfig, &TopicConfig) -> Result<TopicConfig, TopicConfigError>,
) -> Result<(), (ResponseError, String)> {
    if resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            format!(
                "resource type {resource_type} is not altered by Keel: only topics' settings change while it runs"
            ),
        ));
    }
    broker.topic_access(caller, Operation::AlterConfigs, name)?;
    let topic = broker.user_topic(name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let current = topic.config();
    let defaults = TopicConfig {
        partitions: current.partitions,
        ..broker.config.topic_defaults.clone()
    };
    let config = build(&current, &defaults)
        .map_err(|error| (ResponseError::InvalidConfig, error.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let log = broker.log.clone();
    let owned = name.to_string();
    blocking(move || log.alter_topic_config(&owned, config))
        .await
        .map(|topic| {
            tracing::info!(topic = topic.name(), config = %topic.config().to_conf().replace('\n', "; "), "topic settings changed");
        })
        .map_err(|error| {
            let kind = match &error {
                TopicError::NotFound(_) => ResponseError::UnknownTopicOrPartition,
                TopicError::Config(_) => ResponseError::InvalidConfig,
                TopicError::Internal(_) => ResponseError::InvalidTopicException,
                _ => ResponseError::UnknownServerError,
            };
            (kind, error.to_string())
        })
}
