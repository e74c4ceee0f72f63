//! Metadata (3): brokers (this one) and topics with their partitions, all led by this node.
//!
//! An unknown topic named in the request is created with the broker's topic defaults when
//! auto-creation is on and the client allows it (Kafka's `auto.create.topics.enable`);
//! creation is synchronous, so the answer already describes the new topic.
//!
//! Authorization as Kafka's: a listing of every topic shows those the caller may Describe; a
//! named topic the caller may not Describe is `TOPIC_AUTHORIZATION_FAILED` whether it exists
//! or not, and auto-creation needs Create on the cluster or the topic.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use keel_log::{Topic, TopicError, validate_topic_name};

use crate::acl::{Caller, Operation, ResourceType};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};
use crate::topic_id::topic_id;

/// Answers Metadata.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = &broker.node;
    // Version 0 asks for every topic with an empty list; later versions with a null one.
    let requested = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let allow_create = version < 4 || request.allow_auto_topic_creation;
    let topics = match requested {
        None => broker
            .log
            .topics()
            .iter()
            .filter(|topic| {
                broker.authorizer.allows(
                    caller,
                    Operation::Describe,
                    ResourceType::Topic,
                    topic.name(),
                )
            })
            .map(|topic| describe(topic, node.node_id))
            .collect(),
        Some(requested) => {
            let mut topics = Vec::with_capacity(requested.len());
            for wanted in requested {
                let Some(name) = wanted.name else {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(None)
                            .with_topic_id(wanted.topic_id)
                            .with_error_code(code(ResponseError::UnknownTopicId)),
                    );
                    continue;
                };
                topics.push(lookup(broker, caller, name, allow_create).await);
            }
            topics
        }
    };
    let mut response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node.node_id))
                .with_host(text(node.host.clone()))
                .with_port(i32::from(node.port)),
        ])
        .with_topics(topics);
    if version >= 1 {
        response = response.with_controller_id(BrokerId(node.node_id));
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(text(broker.config.cluster_id.clone())));
    }
    response
}

/// One requested topic: described, created, or an error.
async fn lookup(
    broker: &Arc<Broker>,
    caller: &Caller,
    name: TopicName,
    allow_create: bool,
) -> MetadataResponseTopic {
    let failed = |error: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code(error))
    };
    if let Err((error, _)) = broker.topic_access(caller, Operation::Describe, &name) {
        return failed(error);
    }
    if let Some(topic) = broker.user_topic(&name) {
        return describe(&topic, broker.node.node_id);
    }
    if name.starts_with("__") || validate_topic_name(&name).is_err() {
        return failed(ResponseError::InvalidTopicException);
    }
    if !(allow_create && broker.config.auto_create_topics) {
        return failed(ResponseError::UnknownTopicOrPartition);
    }
    if let Err((error, _)) = broker.create_access(caller, &name) {
        return failed(error);
    }
    let log = broker.log.clone();
    let config = broker.config.topic_defaults.clone();
    let partitions = config.partitions as usize;
    let owned = name.to_string();
    let created = broker
        .within_topic_limits(
            1,
            partitions,
            blocking(move || log.create_topic(&owned, config)),
        )
        .await;
    let created = match created {
        Ok(created) => created,
        Err((_, message)) => {
            tracing::warn!(topic = &**name, reason = message, "topic not auto-created");
            return failed(ResponseError::UnknownTopicOrPartition);
        }
    };
    match created {
        Ok(topic) => {
            tracing::info!(topic = &**name, "topic auto-created");
            describe(&topic, broker.node.node_id)
        }
        // Another connection created it in the meantime.
        Err(TopicError::AlreadyExists(_)) => match broker.user_topic(&name) {
            Some(topic) => describe(&topic, broker.node.node_id),
            None => failed(ResponseError::UnknownTopicOrPartition),
        },
        Err(error) => {
            tracing::warn!(topic = &**name, %error, "topic auto-creation failed");
            failed(ResponseError::UnknownServerError)
        }
    }
}

/// A topic's metadata: every partition led by this node, its only replica.
pub(crate) fn describe(topic: &Topic, node_id: i32) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions().len() as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.name()))))
        .with_topic_id(topic_id(topic.name()))
        .with_partitions(partitions)
}
