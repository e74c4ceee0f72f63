//! DeleteTopics (20): removes topics, their data and their groups' committed offsets, and
//! forgets their producer state. Needs Delete on the topic; Keel's own topics are refused.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use keel_log::TopicError;

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};

/// Answers DeleteTopics.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    caller: &Caller,
    request: DeleteTopicsRequest,
    _version: i16,
) -> DeleteTopicsResponse {
    let mut responses = Vec::with_capacity(request.topic_names.len());
    for name in request.topic_names {
        if let Err((error, message)) = broker.topic_access(caller, Operation::Delete, &name) {
            responses.push(
                DeletableTopicResult::default()
                    .with_name(Some(TopicName(name.0.clone())))
                    .with_error_code(code(error))
                    .with_error_message(Some(text(message))),
            );
            continue;
        }
        let log = broker.log.clone();
        let owned = name.to_string();
        let outcome = blocking(move || log.delete_topic(&owned)).await;
        let result = DeletableTopicResult::default().with_name(Some(TopicName(name.0.clone())));
        responses.push(match outcome {
            Ok(()) => {
                broker.producers.forget_topic(&name);
                tracing::info!(topic = &**name, "topic deleted");
                result
            }
            Err(error) => {
                let kind = match &error {
                    TopicError::NotFound(_) => ResponseError::UnknownTopicOrPartition,
                    // Kafka's brokers delete even `__consumer_offsets` when asked (only its
                    // command-line tool refuses); Keel refuses its own topics here too.
                    TopicError::InvalidName { .. } | TopicError::Internal(_) => {
                        ResponseError::InvalidTopicException
                    }
                    _ => ResponseError::UnknownServerError,
                };
                result
                    .with_error_code(code(kind))
                    .with_error_message(Some(text(error.to_string())))
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
