//! [`RedisConfig`]: where the Redis server is and the namespace Keel's keys live under.

/// The namespace when none is given.
pub const NAMESPACE_DEFAULT: &str = "keel";

/// How to reach Redis and which key prefix to use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    url: String,
    namespace: String,
}

/// A namespace that cannot prefix Keel's keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Redis namespace '{0}': use 1 to 64 ASCII letters, digits, '-' or '_'")]
pub struct NamespaceError(String);

impl RedisConfig {
    /// The server at `url` (`redis://host:6379`), namespace [`NAMESPACE_DEFAULT`].
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            namespace: NAMESPACE_DEFAULT.to_string(),
        }
    }

    /// The same server under `namespace`: every key starts with `<namespace>:`.
    pub fn with_namespace(mut self, namespace: &str) -> Result<RedisConfig, NamespaceError> {
        let valid = (1..=64).contains(&namespace.len())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
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
