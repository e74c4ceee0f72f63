//! CreateAcls (30): adds bindings, each durable before it is answered. Needs Alter on the
//! cluster; a binding that is not one Kafka could store (ANY codes, an unknown code, a
//! principal not `User:<name>`) is `INVALID_REQUEST` with the reason, the others still added.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use crate::acl::{Caller, Operation, WireAcl};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};

/// Answers CreateAcls.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    let failed = |error: ResponseError, message: String| {
        AclCreationResult::default()
            .with_error_code(code(error))
            .with_error_message(Some(text(message)))
    };
    let acls = match broker.acls_for(caller, Operation::Alter) {
        Ok(acls) => acls.clone(),
        Err((error, message)) => {
            let results = request
                .creations
                .iter()
                .map(|_| failed(error, message.clone()))
                .collect();
            return CreateAclsResponse::default().with_results(results);
        }
    };
    let mut results = Vec::with_capacity(request.creations.len());
    for creation in &request.creations {
        let wire = WireAcl {
            resource_type: creation.resource_type,
            resource_name: Some(&creation.resource_name),
            pattern_type: creation.resource_pattern_type,
            principal: Some(&creation.principal),
            host: Some(&creation.host),
            operation: creation.operation,
            permission: creation.permission_type,
        };
        let binding = match wire.binding() {
            Ok(binding) => binding,
            Err(invalid) => {
                results.push(failed(ResponseError::InvalidRequest, invalid.0));
                continue;
            }
        };
        let acls = acls.clone();
        let added = binding.clone();
        results.push(match blocking(move || acls.add(added)).await {
            Ok(()) => {
                tracing::info!(target: "keel::audit", event = "acl_created", principal = %caller.principal, peer = %caller.peer, acl = ?binding, "ACL created");
                AclCreationResult::default()
            }
            Err(error) => failed(ResponseError::UnknownServerError, error.to_string()),
        });
    }
    CreateAclsResponse::default().with_results(results)
}
