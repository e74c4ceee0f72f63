//! [`NatsConfig`]: where the NATS server is and the namespace Keel's streams, subjects and
//! lease buckets live under.

use crate::names::valid_namespace;

/// The namespace when none is given.
pub const NAMESPACE_DEFAULT: &str = "keel";

/// How to reach NATS and which names to use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    url: String,
    namespace: String,
}

/// A namespace NATS names cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid NATS namespace '{0}': use 1 to 32 ASCII letters and digits")]
pub struct NamespaceError(String);

impl NatsConfig {
    /// The server at `url` (`nats://host:4222`), namespace [`NAMESPACE_DEFAULT`].
    pub fn new(url: impl Into<String>) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            namespace: NAMESPACE_DEFAULT.to_string(),
        }
    }

    /// The same server under `namespace`: streams `<namespace>_<topic>`, subjects
    /// `<namespace>.<topic>.<partition>`, buckets `<namespace>_leases_*`.
    pub fn with_namespace(mut self, namespace: &str) -> Result<NatsConfig, NamespaceError> {
        if !valid_namespace(namespace) {
            return Err(NamespaceError(namespace.to_string()));
        }
        self.namespace = namespace.to_string();
        Ok(self)
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}
