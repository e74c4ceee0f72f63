//! [`RabbitConfig`]: where the RabbitMQ is and the namespace Keel's streams and queues live
//! in on it.

/// How to reach a RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
}

impl RabbitConfig {
    /// A RabbitMQ at `url` (`amqp://user:password@host:5672/%2f`).
    pub fn new(url: &str) -> RabbitConfig {
        RabbitConfig {
            url: url.to_string(),
            prefix: String::new(),
        }
    }

    /// Puts every stream and queue the transport declares under `prefix` (prepended to the
    /// names), so several Keel installations or test runs share one virtual host without
    /// seeing each other's topics.
    pub fn with_prefix(mut self, prefix: &str) -> RabbitConfig {
        self.prefix = prefix.to_string();
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}
