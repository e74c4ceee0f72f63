//! Why the demo could not run (as opposed to a failed self-check, which is a
//! [`Summary`](crate::Summary) with violations).

/// A setup or infrastructure failure of the demo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Opening a database, the log or a topic failed, or a setting is invalid.
    #[error("demo setup: {0}")]
    Setup(String),
    /// A service's database failed.
    #[error("demo database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A service command failed in a way the saga cannot handle.
    #[error("demo service: {0}")]
    Service(String),
}

impl From<String> for DemoError {
    fn from(reason: String) -> DemoError {
        DemoError::Service(reason)
    }
}

macro_rules! setup_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for DemoError {
            fn from(error: $ty) -> DemoError {
                DemoError::Setup(error.to_string())
            }
        }
    )*};
}

setup_errors!(
    keel::sql::OpenError,
    keel::log::OpenError,
    keel::log::TopicError,
    keel::store::OpenError,
    keel::runtime::StartError,
    keel::saga::SagaStoreError,
    keel::projection::ProjectionError
);
