//! DescribeUserScramCredentials (50): each user's SCRAM mechanisms and iteration counts
//! (never salts or keys) — every user's when none is named — as `kafka-configs --describe
//! --entity-type users` shows them. Needs
//! Describe on the cluster. A named user without credentials is `RESOURCE_NOT_FOUND`, a user
//! named twice `DUPLICATE_RESOURCE`, as Kafka.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::Broker;

/// Answers DescribeUserScramCredentials.
pub(crate) fn handle(
    broker: &Broker,
    caller: &Caller,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    let users = match broker.users_for(caller, Operation::Describe) {
        Ok(users) => users,
        Err((error, message)) => {
            return DescribeUserScramCredentialsResponse::default()
                .with_error_code(code(error))
                .with_error_message(Some(text(message)));
        }
    };
    let all: BTreeMap<String, _> = users.list().into_iter().collect();
    // No list and an empty list both ask for every user, as Kafka's controller reads them.
    let named: Vec<String> = match request.users {
        Some(names) if !names.is_empty() => names.into_iter().map(|u| u.name.to_string()).collect(),
        _ => all.keys().cloned().collect(),
    };
    let results = named
        .iter()
        .map(|user| {
            let result = DescribeUserScramCredentialsResult::default().with_user(text(user));
            let refused = |error: ResponseError, message: String| {
                result
                    .clone()
                    .with_error_code(code(error))
                    .with_error_message(Some(text(message)))
            };
            if named.iter().filter(|n| *n == user).count() > 1 {
                return refused(
                    ResponseError::DuplicateResource,
                    format!("user '{user}' named more than once"),
                );
            }
            match all.get(user) {
                None => refused(
                    ResponseError::ResourceNotFound,
                    format!("attempt to describe a user credential that does not exist: {user}"),
                ),
                Some(mechanisms) => result.clone().with_credential_infos(
                    mechanisms
                        .iter()
                        .map(|(mechanism, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism.kafka_type())
                                .with_iterations(*iterations as i32)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
