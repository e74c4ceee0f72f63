//! DeleteAcls (31): removes the bindings each filter matches and answers them, durable
//! before the answer. Needs Alter on the cluster.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use crate::acl::{Caller, Operation, WireAcl};
use crate::api::{code, text};
use crate::broker::{Broker, blocking};

/// Answers DeleteAcls.
pub(crate) async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    let failed = |error: ResponseError, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code(error))
            .with_error_message(Some(text(message)))
    };
    let acls = match broker.acls_for(caller, Operation::Alter) {
        Ok(acls) => acls.clone(),
        Err((error, message)) => {
            let results = request
                .filters
                .iter()
                .map(|_| failed(error, message.clone()))
                .collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let mut results = Vec::with_capacity(request.filters.len());
    for wanted in &request.filters {
        let wire = WireAcl {
            resource_type: wanted.resource_type_filter,
            resource_name: wanted.resource_name_filter.as_ref(),
            pattern_type: wanted.pattern_type_filter,
            principal: wanted.principal_filter.as_ref(),
            host: wanted.host_filter.as_ref(),
            operation: wanted.operation,
            permission: wanted.permission_type,
        };
        let filter = match wire.filter() {
            Ok(filter) => filter,
            Err(invalid) => {
                results.push(failed(ResponseError::InvalidRequest, invalid.0));
                continue;
            }
        };
        let acls = acls.clone();
        let removed = match blocking(move || acls.remove(&filter)).await {
            Ok(removed) => removed,
            Err(error) => {
                results.push(failed(ResponseError::UnknownServerError, error.to_string()));
                continue;
            }
        };
        let matching = removed
            .into_iter()
            .map(|binding| {
                tracing::info!(target: "keel::audit", event = "acl_deleted", principal = %caller.principal, peer = %caller.peer, acl = ?binding, "ACL deleted");
                DeleteAclsMatchingAcl::default()
                    .with_resource_type(binding.resource_type.code())
                    .with_resource_name(text(binding.resource_name))
                    .with_pattern_type(binding.pattern_type.code())
                    .with_principal(text(binding.principal))
                    .with_host(text(binding.host))
                    .with_operation(binding.operation.code())
                    .with_permission_type(binding.permission.code())
            })
            .collect();
        results.push(DeleteAclsFilterResult::default().with_matching_acls(matching));
    }
    DeleteAclsResponse::default().with_filter_results(results)
}
