//! DescribeConfigs (32): a topic's settings under their Kafka names, and the broker's few.
//! Needs DescribeConfigs on the topic (`TOPIC_AUTHORIZATION_FAILED`) or on the cluster for
//! the broker (`CLUSTER_AUTHORIZATION_FAILED`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::Broker;
use crate::topic_config::kafka_configs;

/// Kafka's resource type of a topic.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type of a broker.
const RESOURCE_BROKER: i8 = 4;
/// Config source: a per-topic setting.
const SOURCE_TOPIC: i8 = 1;
/// Config source: the broker's static configuration.
const SOURCE_STATIC_BROKER: i8 = 4;

/// Answers DescribeConfigs.
pub(crate) fn handle(
    broker: &Broker,
    caller: &Caller,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let denied = match resource.resource_type {
                RESOURCE_TOPIC => broker
                    .topic_access(caller, Operation::DescribeConfigs, &resource.resource_name)
                    .err()
                    .map(|(error, _)| error),
                RESOURCE_BROKER => (!broker.cluster_allowed(caller, Operation::DescribeConfigs))
                    .then_some(ResponseError::ClusterAuthorizationFailed),
                _ => None,
            };
            if let Some(error) = denied {
                return result.with_error_code(code(error));
            }
            let (configs, source): (Vec<(&str, String)>, i8) = match resource.resource_type {
                RESOURCE_TOPIC => match broker.user_topic(&resource.resource_name) {
                    Some(topic) => (kafka_configs(&topic.config()), SOURCE_TOPIC),
                    None => {
                        return result
                            .with_error_code(code(ResponseError::UnknownTopicOrPartition))
                            .with_error_message(Some(text(format!(
                                "topic '{}' does not exist",
                                &*resource.resource_name
                            ))));
                    }
                },
                RESOURCE_BROKER => (broker_configs(broker), SOURCE_STATIC_BROKER),
                other => {
                    return result
                        .with_error_code(code(ResponseError::InvalidRequest))
                        .with_error_message(Some(text(format!(
                            "resource type {other} is not described by Keel"
                        ))));
                }
            };
            let wanted = resource.configuration_keys;
            let configs = configs
                .into_iter()
                .filter(|(name, _)| {
                    wanted
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| &**k == *name))
                })
                .map(|(name, value)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(text(name))
                        .with_value(Some(text(value)))
                        .with_read_only(source == SOURCE_STATIC_BROKER)
                        .with_config_source(source)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The broker settings admin tools commonly read.
fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let config = &broker.config;
    vec![
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
        ),
        (
            "num.partitions",
            config.topic_defaults.partitions.to_string(),
        ),
        ("default.replication.factor", "1".into()),
        (
            "message.max.bytes",
            config.topic_defaults.max_batch_bytes.to_string(),
        ),
        (
            "socket.request.max.bytes",
            config.request_bytes_max.to_string(),
        ),
    ]
}
