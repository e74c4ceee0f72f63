//! AlterUserScramCredentials (51): adds, replaces and deletes SCRAM credentials, as
//! `kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=…]'` sends them — the client
//! salts the password, so the broker never sees it. Needs Alter on the cluster. Each change
//! is durable in `__keel_users` before it is answered, and the listener's next
//! authentication sees it. Refusals as Kafka: an unknown mechanism
//! `UNSUPPORTED_SASL_MECHANISM`, iterations outside 4096..=16384 or a malformed salt
//! `UNACCEPTABLE_CREDENTIAL`, deleting a credential that does not exist `RESOURCE_NOT_FOUND`,
//! a user changed twice in one request `DUPLICATE_RESOURCE` (nothing of that user changed).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};
use crate::sasl::Users;
use crate::sasl::scram::{ScramCredential, ScramMechanism};

/// One change asked for.
enum Change {
    Delete(ScramMechanism),
    Upsert(ScramCredential),
}

/// Answers AlterUserScramCredentials.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    type Refusal = (ResponseError, String);
    // Every user's changes, in request order; a refusal replaces them.
    let mut changes: BTreeMap<String, Result<Vec<Change>, Refusal>> = BTreeMap::new();
    let mechanism = |kind: i8| {
        ScramMechanism::from_kafka_type(kind).ok_or_else(|| {
            (
                ResponseError::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism type {kind}"),
            )
        })
    };
    let mut add = |user: &str, change: Result<Change, Refusal>| {
        let entry = changes.entry(user.to_string()).or_insert(Ok(Vec::new()));
        if let Ok(list) = entry {
            match change {
                Ok(change) => list.push(change),
                Err(refusal) => *entry = Err(refusal),
            }
        }
    };
    for deletion in &request.deletions {
        add(
            &deletion.name,
            mechanism(deletion.mechanism).map(Change::Delete),
        );
    }
    for upsertion in &request.upsertions {
        let credential = mechanism(upsertion.mechanism).and_then(|m| {
            let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
            ScramCredential::from_salted_password(
                m,
                &upsertion.salted_password,
                upsertion.salt.to_vec(),
                iterations,
            )
            .map_err(|e| (ResponseError::UnacceptableCredential, e.to_string()))
        });
        add(&upsertion.name, credential.map(Change::Upsert));
    }
    let users = broker.users_for(caller, Operation::Alter).cloned();
    let mut results = Vec::with_capacity(changes.len());
    for (user, planned) in changes {
        let outcome = match (&users, planned) {
            (Err(refusal), _) => Err(refusal.clone()),
            (_, Err(refusal)) => Err(refusal),
            (Ok(users), Ok(list)) => {
                let (users, name) = (users.clone(), user.clone());
                blocking(move || apply(&users, &name, list)).await
            }
        };
        let result = AlterUserScramCredentialsResult::default().with_user(text(&user));
        results.push(match outcome {
            Ok(()) => {
                tracing::info!(target: "keel::audit", event = "scram_credentials_altered", principal = %caller.principal, peer = %caller.peer, user, "SCRAM credentials changed");
                result
            }
            Err((error, message)) => result
                .with_error_code(code(error))
                .with_error_message(Some(text(message))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Applies one user's changes; the first that fails stops the rest.
fn apply(users: &Users, user: &str, changes: Vec<Change>) -> Result<(), (ResponseError, String)> {
    let mut seen = Vec::new();
    for change in &changes {
        let mechanism = match change {
            Change::Delete(m) => *m,
            Change::Upsert(c) => c.mechanism,
        };
        if seen.contains(&mechanism) {
            return Err((
                ResponseError::DuplicateResource,
                format!("{} of user '{user}' changed twice", mechanism.name()),
            ));
        }
        seen.push(mechanism);
    }
    let storage =
        |e: crate::sasl::UsersError| (ResponseError::UnacceptableCredential, e.to_string());
    for change in changes {
        match change {
            Change::Upsert(credential) => users.upsert(user, credential).map_err(storage)?,
            Change::Delete(mechanism) => {
                if !users.remove(user, Some(mechanism)).map_err(storage)? {
                    return Err((
                        ResponseError::ResourceNotFound,
                        format!(
                            "attempt to delete a user credential that does not exist: {user} {}",
                            mechanism.name()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}
