//! [`Authorizer`]: may this caller do this operation to this resource? Kafka's
//! `StandardAuthorizer` decision, in this order:
//!
//! | step | condition | answer |
//! |---|---|---|
//! | 1 | authorization off (no ACL store) | allowed |
//! | 2 | the principal is a super user (`super.users`) | allowed |
//! | 3 | a DENY binding covers the resource, principal (or `User:*`), host (or `*`) and operation (or ALL) | denied |
//! | 4 | no binding at all covers the resource | `allow.everyone.if.no.acl.found` |
//! | 5 | an ALLOW binding covers them, the operation being implied as in Kafka (DESCRIBE by READ, WRITE, DELETE, ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS) | allowed |
//! | 6 | otherwise | denied |
//!
//! A denial the client asked for by name is logged on target `keel::audit`
//! (`event="authorization_denied"`); filtering a listing (Metadata of every topic, ListGroups)
//! is not, as in Kafka.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::sasl::Principal;

use super::{AclBinding, Acls, Operation, Permission, ResourceType, WILDCARD};

/// Who sent a request, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated principal (`User:ANONYMOUS` without SASL).
    pub principal: Principal,
    /// The client's address; its IP is matched against bindings' hosts.
    pub peer: SocketAddr,
}

/// The decision for one request, over the ACLs of a data directory.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    /// `None`: authorization is off, every caller may do everything (ACL requests are
    /// answered `SECURITY_DISABLED`, as Kafka without an authorizer).
    acls: Option<Arc<Acls>>,
    /// Principals (`User:<name>`) allowed everything.
    super_users: BTreeSet<String>,
    /// The answer for a resource no binding covers.
    allow_if_no_acl: bool,
}

impl Authorizer {
    /// Authorization over `acls`: `super_users` (`User:<name>`) may do everything, and a
    /// resource no binding covers is open to all when `allow_if_no_acl`.
    pub fn new(
        acls: Arc<Acls>,
        super_users: impl IntoIterator<Item = String>,
        allow_if_no_acl: bool,
    ) -> Authorizer {
        Authorizer {
            acls: Some(acls),
            super_users: super_users.into_iter().collect(),
            allow_if_no_acl,
        }
    }

    /// The ACL store, or `None` when authorization is off.
    pub fn acls(&self) -> Option<&Arc<Acls>> {
        self.acls.as_ref()
    }

    /// Whether `caller` may do `operation` to the resource `name` of `resource_type`, with an
    /// audit line when not.
    pub fn authorize(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.allows(caller, operation, resource_type, name);
        if !allowed {
            tracing::warn!(target: "keel::audit", event = "authorization_denied", principal = %caller.principal, peer = %caller.peer, ?operation, ?resource_type, resource = name, "request denied by ACLs");
        }
        allowed
    }

    /// The decision alone, without an audit line (for filtering listings).
    pub fn allows(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(acls) = &self.acls else {
            return true;
        };
        let principal = caller.principal.to_string();
        if self.super_users.contains(&principal) {
            return true;
        }
        let host = caller.peer.ip().to_string();
        let applies = |b: &AclBinding| {
            (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == WILDCARD)
        };
        let (mut covered, mut denied, mut allowed) = (false, false, false);
        acls.each(|binding| {
            if !binding.covers(resource_type, name) {
                return;
            }
            covered = true;
            if !applies(binding) {
                return;
            }
            match binding.permission {
                Permission::Deny => {
                    denied |= binding.operation == Operation::All || binding.operation == operation
                }
                Permission::Allow => allowed |= grants(binding.operation, operation),
                Permission::Any => {}
            }
        });
        if denied {
            return false;
        }
        if !covered {
            return self.allow_if_no_acl;
        }
        allowed
    }
}

/// A caller with the authorizer deciding for it: what the group coordinator is handed with
/// each request, so it can authorize without knowing where the ACLs live.
#[derive(Debug, Clone)]
pub struct Access {
    /// Who asks.
    pub caller: Caller,
    /// Decides for them.
    pub authorizer: Arc<Authorizer>,
}

impl Access {
    /// Whether the caller may do `operation` to the group `name`, audited when not.
    pub fn group(&self, operation: Operation, name: &str) -> bool {
        self.authorizer
            .authorize(&self.caller, operation, ResourceType::Group, name)
    }

    /// Whether the caller may do `operation` to the topic `name`, audited when not.
    pub fn topic(&self, operation: Operation, name: &str) -> bool {
        self.authorizer
            .authorize(&self.caller, operation, ResourceType::Topic, name)
    }

    /// The decision alone, without an audit line (for filtering listings).
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.authorizer
            .allows(&self.caller, operation, resource_type, name)
    }
}

/// Whether an ALLOW of `granted` allows `wanted` (Kafka's implied operations).
fn grants(granted: Operation, wanted: Operation) -> bool {
    use Operation as O;
    granted == O::All
        || granted == wanted
        || (wanted == O::Describe && matches!(granted, O::Read | O::Write | O::Delete | O::Alter))
        || (wanted == O::DescribeConfigs && granted == O::AlterConfigs)
}
