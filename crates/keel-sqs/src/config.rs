//! [`SqsConfig`]: where the SQS/SNS API is, the region, the credentials and the namespace
//! Keel's topics and queues are named under.

/// The namespace when none is given.
pub const NAMESPACE_DEFAULT: &str = "keel";

/// The region when none is given.
pub const REGION_DEFAULT: &str = "us-east-1";

/// How to reach SQS and SNS. The binary fills it (from flags or the environment); this
/// crate reads no environment variable.
#[derive(Clone, PartialEq, Eq)]
pub struct SqsConfig {
    endpoint_url: Option<String>,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    namespace: String,
}

impl std::fmt::Debug for SqsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsConfig")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A namespace that cannot prefix Keel's topic and queue names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SQS namespace '{0}': use 1 to 32 ASCII letters or digits")]
pub struct NamespaceError(String);

impl SqsConfig {
    /// An API-compatible server at `endpoint_url` (`http://127.0.0.1:4566`, moto or
    /// LocalStack), region [`REGION_DEFAULT`], placeholder credentials (local servers check
    /// none), namespace [`NAMESPACE_DEFAULT`].
    pub fn local(endpoint_url: impl Into<String>) -> SqsConfig {
        SqsConfig {
            endpoint_url: Some(endpoint_url.into()),
            region: REGION_DEFAULT.to_string(),
            access_key_id: "keel".to_string(),
            secret_access_key: "keel".to_string(),
            namespace: NAMESPACE_DEFAULT.to_string(),
        }
    }

    /// Amazon's own endpoints in `region`, signed with the given key.
    pub fn aws(
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> SqsConfig {
        SqsConfig {
            endpoint_url: None,
            region: region.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            namespace: NAMESPACE_DEFAULT.to_string(),
        }
    }

    /// The same account under `namespace`: every topic and queue name starts with
    /// `<namespace>-`.
    pub fn with_namespace(mut self, namespace: &str) -> Result<SqsConfig, NamespaceError> {
        let valid = (1..=32).contains(&namespace.len())
            && namespace.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(NamespaceError(namespace.to_string()));
        }
        self.namespace = namespace.to_string();
        Ok(self)
    }

    /// The endpoint, when not Amazon's own.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn credentials(&self) -> (&str, &str) {
        (&self.access_key_id, &self.secret_access_key)
    }
}
