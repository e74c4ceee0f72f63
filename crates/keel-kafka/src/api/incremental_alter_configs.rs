//! IncrementalAlterConfigs (44): changes only the topic settings a request names — SET to a
//! value, DELETE back to the broker's default — and keeps the rest, as in Kafka (KIP-339).
//! APPEND and SUBTRACT are for list settings; Keel's `cleanup.policy` is one value (delete or
//! compact), so they are refused with `INVALID_CONFIG`. Errors and permissions as AlterConfigs
//! (`alter_configs.rs`), whose commit step this shares.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use crate::acl::Caller;
use crate::api::alter_configs::{alter_topic, error_parts};
use crate::broker::Broker;
use crate::topic_config::{ConfigChange, TopicConfigError, altered_config};

/// Kafka's operation codes of IncrementalAlterConfigs.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Answers IncrementalAlterConfigs.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let outcome = alter_topic(
            broker,
            caller,
            (resource.resource_type, &resource.resource_name),
            request.validate_only,
            |current, defaults| {
                let changes = resource
                    .configs
                    .iter()
                    .map(|c| match c.config_operation {
                        OP_SET => Ok(ConfigChange::Set(&c.name, c.value.as_deref())),
                        OP_DELETE => Ok(ConfigChange::Reset(&c.name)),
                        other => Err(TopicConfigError {
                            name: c.name.to_string(),
                            reason: format!(
                                "operation {other} (APPEND or SUBTRACT) is for list settings; Keel's are single values"
                            ),
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                altered_config(current, defaults, changes)
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
