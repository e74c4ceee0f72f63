//! CreateTopics (19): topics with a partition count and Kafka config settings.
//!
//! Replication factor must be 1 or -1 (the default): one node holds every partition. A
//! manual assignment is accepted when it places every partition on this node. A topic that
//! would pass the server's `topics_max` or `partitions_max` is refused with
//! `POLICY_VIOLATION`.
//!
//! Needs Create on the cluster or the topic, as Kafka; setting `keel.fsync` at creation also
//! needs AlterConfigs on the topic, since it can trade the topic's durability away (Kafka's
//! own settings need Create alone, as in Kafka).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use keel_log::limits::PARTITIONS_MAX;
use keel_log::{TopicConfig, TopicError, validate_topic_name};

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};
use crate::topic_config::{KEEL_FSYNC, apply_kafka_config, kafka_configs};

/// Answers CreateTopics.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let result = match authorize(broker, caller, &topic).and_then(|()| plan(broker, &topic)) {
            Err((error, message)) => CreatableTopicResult::default()
                .with_error_code(code(error))
                .with_error_message(Some(text(message))),
            Ok(config) if request.validate_only => described(&config, version),
            Ok(config) => {
                let partitions = config.partitions as usize;
                broker
                    .within_topic_limits(1, partitions, create(broker, &name, config, version))
                    .await
                    .unwrap_or_else(|(error, message)| {
                        CreatableTopicResult::default()
                            .with_error_code(code(error))
                            .with_error_message(Some(text(message)))
                    })
            }
        };
        results.push(result.with_name(name));
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Whether `caller` may create `topic` with the settings it asks for.
fn authorize(
    broker: &Broker,
    caller: &Caller,
    topic: &CreatableTopic,
) -> Result<(), (ResponseError, String)> {
    let name = &*topic.name;
    broker.create_access(caller, name)?;
    if topic.configs.iter().any(|c| &*c.name == KEEL_FSYNC) {
        broker
            .topic_access(caller, Operation::AlterConfigs, name)
            .map_err(|(error, message)| (error, format!("{message} (needed to set keel.fsync)")))?;
    }
    Ok(())
}

/// The configuration a CreatableTopic asks for, or the error and message refusing it.
fn plan(broker: &Broker, topic: &CreatableTopic) -> Result<TopicConfig, (ResponseError, String)> {
    let name = &topic.name;
    if name.starts_with("__") {
        return Err((
            ResponseError::InvalidTopicException,
            format!("topic '{}': names starting with '__' are internal", &**name),
        ));
    }
    validate_topic_name(name).map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    if !matches!(topic.replication_factor, -1 | 1) && topic.assignments.is_empty() {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is not possible on one node (use 1 or -1)",
                topic.replication_factor
            ),
        ));
    }
    let node = broker.node.node_id;
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.config.topic_defaults.partitions,
            n if n >= 1 && n as u32 <= PARTITIONS_MAX => n as u32,
            n => {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("{n} partitions is not in 1..={PARTITIONS_MAX}"),
                ));
            }
        }
    } else {
        let on_this_node = topic.assignments.iter().enumerate().all(|(i, a)| {
            a.partition_index == i as i32 && a.broker_ids.iter().all(|b| b.0 == node)
        });
        if !on_this_node || topic.assignments.len() > PARTITIONS_MAX as usize {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("assignments must place partitions 0..n on node {node}"),
            ));
        }
        topic.assignments.len() as u32
    };
    let mut config = broker.config.topic_defaults.clone();
    config.partitions = partitions;
    for setting in &topic.configs {
        apply_kafka_config(&mut config, &setting.name, setting.value.as_deref())
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    Ok(config)
}

async fn create(
    broker: &Arc<Broker>,
    name: &str,
    config: TopicConfig,
    version: i16,
) -> CreatableTopicResult {
    let log = broker.log.clone();
    let owned = name.to_string();
    let created = config.clone();
    match blocking(move || log.create_topic(&owned, created)).await {
        Ok(_) => {
            tracing::info!(
                topic = name,
                partitions = config.partitions,
                "topic created"
            );
            described(&config, version)
        }
        Err(error) => {
            let kind = match &error {
                TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
                TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
                TopicError::Config(_) => ResponseError::InvalidConfig,
                _ => ResponseError::UnknownServerError,
            };
            CreatableTopicResult::default()
                .with_error_code(code(kind))
                .with_error_message(Some(text(error.to_string())))
        }
    }
}

/// A successful result; from version 5 on it carries the partition count and the settings.
fn described(config: &TopicConfig, version: i16) -> CreatableTopicResult {
    let result = CreatableTopicResult::default();
    if version < 5 {
        return result;
    }
    let configs = kafka_configs(config)
        .into_iter()
        .map(|(name, value)| {
            CreatableTopicConfigs::default()
                .with_name(text(name))
                .with_value(Some(text(value)))
                // Config source 1: a topic setting.
                .with_config_source(1)
        })
        .collect();
    result
        .with_num_partitions(config.partitions as i32)
        .with_replication_factor(1)
        .with_configs(Some(configs))
}
