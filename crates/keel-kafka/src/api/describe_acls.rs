//! DescribeAcls (29): the bindings a filter matches, grouped by resource pattern. Needs
//! Describe on the cluster.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use crate::acl::{AclBinding, Caller, Operation, WireAcl};
use crate::api::{code, text};
use crate::broker::Broker;

/// Answers DescribeAcls.
pub(crate) fn handle(
    broker: &Broker,
    caller: &Caller,
    request: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    let failed = |error: ResponseError, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code(error))
            .with_error_message(Some(text(message)))
    };
    let acls = match broker.acls_for(caller, Operation::Describe) {
        Ok(acls) => acls,
        Err((error, message)) => return failed(error, message),
    };
    let wire = WireAcl {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_ref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_ref(),
        host: request.host_filter.as_ref(),
        operation: request.operation,
        permission: request.permission_type,
    };
    let filter = match wire.filter() {
        Ok(filter) => filter,
        Err(invalid) => return failed(ResponseError::InvalidRequest, invalid.0),
    };
    // The store's order keeps one resource pattern's bindings together.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for binding in acls.matching(&filter) {
        let same = resources.last().is_some_and(|r| same_pattern(r, &binding));
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(binding.resource_type.code())
                    .with_resource_name(text(binding.resource_name.clone()))
                    .with_pattern_type(binding.pattern_type.code()),
            );
        }
        let resource = resources.last_mut().expect("pushed above");
        resource.acls.push(
            AclDescription::default()
                .with_principal(text(binding.principal))
                .with_host(text(binding.host))
                .with_operation(binding.operation.code())
                .with_permission_type(binding.permission.code()),
        );
    }
    DescribeAclsResponse::default().with_resources(resources)
}

fn same_pattern(resource: &DescribeAclsResource, binding: &AclBinding) -> bool {
    resource.resource_type == binding.resource_type.code()
        && *resource.resource_name == binding.resource_name
        && resource.pattern_type == binding.pattern_type.code()
}
