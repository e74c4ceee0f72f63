//! Bindings and filters from the fields of CreateAcls, DescribeAcls and DeleteAcls, whose
//! filters share one shape; an unknown code is named in the error, answered
//! `INVALID_REQUEST`.

use kafka_protocol::protocol::StrBytes;

use super::{
    AclBinding, AclFilter, InvalidBinding, Operation, PatternType, Permission, ResourceType,
};

/// The seven fields of a binding or filter as they come off the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireAcl<'a> {
    pub(crate) resource_type: i8,
    pub(crate) resource_name: Option<&'a StrBytes>,
    pub(crate) pattern_type: i8,
    pub(crate) principal: Option<&'a StrBytes>,
    pub(crate) host: Option<&'a StrBytes>,
    pub(crate) operation: i8,
    pub(crate) permission: i8,
}

impl WireAcl<'_> {
    /// As a filter; `None` strings match everything.
    pub(crate) fn filter(&self) -> Result<AclFilter, InvalidBinding> {
        Ok(AclFilter {
            resource_type: known("resource type", self.resource_type, ResourceType::from_code)?,
            resource_name: self.resource_name.map(|s| s.to_string()),
            pattern_type: known("pattern type", self.pattern_type, PatternType::from_code)?,
            principal: self.principal.map(|s| s.to_string()),
            host: self.host.map(|s| s.to_string()),
            operation: known("operation", self.operation, Operation::from_code)?,
            permission: known("permission", self.permission, Permission::from_code)?,
        })
    }

    /// As a binding to create, validated.
    pub(crate) fn binding(&self) -> Result<AclBinding, InvalidBinding> {
        let filter = self.filter()?;
        let text = |s: Option<String>| s.unwrap_or_default();
        let binding = AclBinding {
            resource_type: filter.resource_type,
            resource_name: text(filter.resource_name),
            pattern_type: filter.pattern_type,
            principal: text(filter.principal),
            host: text(filter.host),
            operation: filter.operation,
            permission: filter.permission,
        };
        binding.validate()?;
        Ok(binding)
    }
}

fn known<T>(what: &str, code: i8, from: fn(i8) -> Option<T>) -> Result<T, InvalidBinding> {
    from(code).ok_or_else(|| InvalidBinding(format!("{what} code {code} is not one Keel knows")))
}
