//! Kafka ACLs: who may do what to which resource. The types and their wire codes (this file),
//! the durable set of bindings ([`Acls`], `store.rs`), and the decision for one request
//! ([`Authorizer`], `authorizer.rs`).
//!
//! A binding is Kafka's `AclBinding`: a resource pattern (type, name, literal or prefixed)
//! and an entry (principal `User:<name>` or `User:*`, host or `*`, operation, allow or deny).
//! The codes are Kafka's (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`
//! in `org.apache.kafka.common`), so `kafka-acls` and the Java AdminClient speak them as is.

mod authorizer;
mod store;
mod wire;

pub use authorizer::{Access, Authorizer, Caller};
pub use store::{ACLS_MAX, ACLS_TOPIC, Acls, AclsError};
pub(crate) use wire::WireAcl;

use serde::{Deserialize, Serialize};

/// The name of the one cluster resource (Kafka's `kafka-cluster`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name, principal or host that matches every one.
pub const WILDCARD: &str = "*";

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// By Kafka's wire code; `None` for an unknown code.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }
    };
}

wire_enum! {
    /// What kind of thing a binding or filter names (Kafka's `ResourceType`).
    ResourceType {
        /// In filters only: every type.
        Any = 1,
        /// A topic.
        Topic = 2,
        /// A consumer group.
        Group = 3,
        /// The cluster (name [`CLUSTER_NAME`]).
        Cluster = 4,
        /// A transactional id.
        TransactionalId = 5,
    }
}

wire_enum! {
    /// How a binding's resource name is matched (Kafka's `PatternType`).
    PatternType {
        /// In filters only: every pattern type.
        Any = 1,
        /// In filters only: the bindings that apply to the filter's name (literal equal or
        /// `*`, prefixed by a prefix of it).
        Match = 2,
        /// The name itself, or `*` for every resource of the type.
        Literal = 3,
        /// Every resource whose name starts with the binding's name.
        Prefixed = 4,
    }
}

wire_enum! {
    /// What a principal does (Kafka's `AclOperation`).
    Operation {
        /// In filters only: every operation.
        Any = 1,
        /// Every operation.
        All = 2,
        /// Fetch, commit offsets, join a group.
        Read = 3,
        /// Produce.
        Write = 4,
        /// Create topics.
        Create = 5,
        /// Delete topics or groups.
        Delete = 6,
        /// Add partitions; change ACLs and SCRAM users (on the cluster).
        Alter = 7,
        /// See that a resource exists, list offsets; list ACLs and users (on the cluster).
        Describe = 8,
        /// Broker-to-broker actions (no use with one node; accepted for compatibility).
        ClusterAction = 9,
        /// Read a resource's configuration.
        DescribeConfigs = 10,
        /// Change a resource's configuration (a topic's configuration at creation too).
        AlterConfigs = 11,
        /// Idempotent produce without a transactional id (on the cluster).
        IdempotentWrite = 12,
    }
}

wire_enum! {
    /// Whether a binding allows or denies (Kafka's `AclPermissionType`).
    Permission {
        /// In filters only: both.
        Any = 1,
        /// Deny: wins over every allow.
        Deny = 2,
        /// Allow.
        Allow = 3,
    }
}

/// One ACL: a resource pattern and who may or may not do what to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resource type (never `Any`).
    pub resource_type: ResourceType,
    /// The resource name, the prefix, or `*`.
    pub resource_name: String,
    /// `Literal` or `Prefixed`.
    pub pattern_type: PatternType,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// The client's IP address, or `*`.
    pub host: String,
    /// The operation (never `Any`).
    pub operation: Operation,
    /// `Allow` or `Deny`.
    pub permission: Permission,
}

/// Why a binding cannot be created (answered as `INVALID_REQUEST` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBinding(pub String);

impl AclBinding {
    /// Checks what CreateAcls may store, as Kafka's `AclControlManager` does.
    pub fn validate(&self) -> Result<(), InvalidBinding> {
        let invalid = |reason: String| Err(InvalidBinding(reason));
        if matches!(self.resource_type, ResourceType::Any) {
            return invalid("resource type ANY names no resource".into());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return invalid("pattern type must be LITERAL or PREFIXED".into());
        }
        if matches!(self.operation, Operation::Any) || matches!(self.permission, Permission::Any) {
            return invalid("operation ANY and permission ANY are for filters only".into());
        }
        if self.resource_name.is_empty() {
            return invalid("resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return invalid(format!("the cluster resource is named '{CLUSTER_NAME}'"));
        }
        match self.principal.strip_prefix("User:") {
            Some(name) if !name.is_empty() => {}
            _ => return invalid(format!("principal '{}' is not User:<name>", self.principal)),
        }
        if self.host.is_empty() {
            return invalid("host is empty (use '*' for every host)".into());
        }
        let text = [&self.resource_name, &self.principal, &self.host];
        if text.iter().any(|s| s.len() > NAME_BYTES_MAX) {
            return invalid(format!("names are at most {NAME_BYTES_MAX} bytes"));
        }
        Ok(())
    }

    /// Whether this binding's pattern covers the resource `name` of `resource_type`.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

/// The longest resource name, principal or host a binding holds.
pub const NAME_BYTES_MAX: usize = 1024;

/// A filter over bindings (DescribeAcls, DeleteAcls): `None` and the `Any` codes match all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    /// The resource type, or `Any`.
    pub resource_type: ResourceType,
    /// The resource name, or `None` for any.
    pub resource_name: Option<String>,
    /// A pattern type, `Any` or `Match`.
    pub pattern_type: PatternType,
    /// The principal, or `None` for any.
    pub principal: Option<String>,
    /// The host, or `None` for any.
    pub host: Option<String>,
    /// The operation, or `Any`.
    pub operation: Operation,
    /// The permission, or `Any`.
    pub permission: Permission,
}

impl AclFilter {
    /// The filter that matches every binding.
    pub const ANY: AclFilter = AclFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        principal: None,
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    };

    /// Whether `binding` passes this filter (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let equal =
            |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        let resource = match (self.pattern_type, &self.resource_name) {
            (PatternType::Match, Some(name)) => {
                binding.resource_name == *name
                    || (binding.pattern_type == PatternType::Literal
                        && binding.resource_name == WILDCARD)
                    || (binding.pattern_type == PatternType::Prefixed
                        && name.starts_with(&binding.resource_name))
            }
            (PatternType::Any | PatternType::Match, name) => equal(name, &binding.resource_name),
            (pattern, name) => {
                pattern == binding.pattern_type && equal(name, &binding.resource_name)
            }
        };
        resource
            && (self.resource_type == ResourceType::Any
                || self.resource_type == binding.resource_type)
            && equal(&self.principal, &binding.principal)
            && equal(&self.host, &binding.host)
            && (self.operation == Operation::Any || self.operation == binding.operation)
            && (self.permission == Permission::Any || self.permission == binding.permission)
    }
}

#[cfg(test)]
mod tests;
