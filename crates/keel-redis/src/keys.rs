//! How Keel's names map onto Redis keys, all under one namespace so several installations
//! (or test runs) share a server: the topic registry (a hash, topic → partition count), a
//! stream per partition, and the lease and slot keys of a group.
//!
//! Redis keys are binary-safe, so names need no escaping, only an injective layout: a
//! stream key ends with `:<partition>` after the topic, and a group's keys carry the
//! topic's length before it, so no two (topic, group, partition) share a key. Pure string
//! work; no I/O.

/// The keys of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    namespace: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Keys {
        Keys {
            namespace: namespace.to_string(),
        }
    }

    /// The hash of topics: topic → partition count.
    pub(crate) fn topics(&self) -> String {
        format!("{}:topics", self.namespace)
    }

    /// The stream of `partition` of `topic`.
    pub(crate) fn stream(&self, topic: &str, partition: u32) -> String {
        format!("{}:stream:{topic}:{partition}", self.namespace)
    }

    /// The lease key of `partition` of `topic` for `group`.
    pub(crate) fn lease(&self, topic: &str, group: &str, partition: u32) -> String {
        format!("{}:p{partition}", self.group_prefix(topic, group))
    }

    /// The key of member slot `slot` of `group` on `topic`.
    pub(crate) fn slot(&self, topic: &str, group: &str, slot: u32) -> String {
        format!("{}:m{slot}", self.group_prefix(topic, group))
    }

    fn group_prefix(&self, topic: &str, group: &str) -> String {
        format!("{}:group:{}:{topic}:{group}", self.namespace, topic.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide() {
        let keys = Keys::new("keel");
        assert_eq!(keys.stream("orders.dlq", 3), "keel:stream:orders.dlq:3");
        assert_ne!(keys.lease("a:b", "c", 0), keys.lease("a", "b:c", 0));
        assert_ne!(keys.lease("t", "g", 1), keys.slot("t", "g", 1));
    }
}
