//! How Keel's names map onto JetStream's: a topic's stream and its partitions' subjects, a
//! group's durable consumer per partition, and the key-value keys of partition leases and
//! member slots — all under one namespace, so several Keel installations (or test runs)
//! share a server without meeting.
//!
//! Stream and consumer names allow neither `.` nor wildcards, and key-value keys only
//! `[-/_=.A-Za-z0-9]`, while a topic may be `orders.dlq`: every Keel name is escaped
//! ([`escape`]: letters, digits and `-` kept, any other byte as `_XX`), which is injective,
//! so two names never share a stream. Pure string work; no I/O.

use keel_core::{escape_name, unescape_name};

/// The names of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    namespace: String,
}

/// A durable consumer's name, parsed: `<group>_p<partition>_g<generation>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerName {
    pub(crate) group: String,
    pub(crate) partition: u32,
    pub(crate) generation: u64,
}

impl Names {
    /// Names under `namespace`, which must be letters and digits ([`valid_namespace`]).
    pub(crate) fn new(namespace: &str) -> Names {
        debug_assert!(valid_namespace(namespace));
        Names {
            namespace: namespace.to_string(),
        }
    }

    /// The stream holding `topic`.
    pub(crate) fn stream(&self, topic: &str) -> String {
        format!("{}_{}", self.namespace, escape(topic))
    }

    /// The topic a stream of this namespace holds; `None` for any other stream.
    pub(crate) fn topic(&self, stream: &str) -> Option<String> {
        let escaped = stream.strip_prefix(&self.namespace)?.strip_prefix('_')?;
        unescape(escaped)
    }

    /// The subject of `partition` of `topic`.
    pub(crate) fn subject(&self, topic: &str, partition: u32) -> String {
        format!("{}.{}.{partition}", self.namespace, escape(topic))
    }

    /// The subjects of a topic of `partitions` partitions, in partition order: a stream's
    /// subject list is its partition count.
    pub(crate) fn subjects(&self, topic: &str, partitions: u32) -> Vec<String> {
        (0..partitions).map(|p| self.subject(topic, p)).collect()
    }

    /// The key-value bucket of the leases whose time to live is `ttl_ms` (a bucket has one
    /// maximum age for all its keys on NATS 2.9, so each session timeout gets its own).
    pub(crate) fn lease_bucket(&self, ttl_ms: u128) -> String {
        format!("{}_leases_{ttl_ms}ms", self.namespace)
    }

    /// The lease key of `partition` of `topic` for `group`.
    pub(crate) fn lease_key(&self, topic: &str, group: &str, partition: u32) -> String {
        format!("{}.{}.p{partition}", escape(topic), escape(group))
    }

    /// The key of member slot `slot` of `group` on `topic`.
    pub(crate) fn slot_key(&self, topic: &str, group: &str, slot: u32) -> String {
        format!("{}.{}.m{slot}", escape(topic), escape(group))
    }
}

impl ConsumerName {
    /// The consumer's name on the server.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}_p{}_g{}",
            escape(&self.group),
            self.partition,
            self.generation
        )
    }

    /// A name [`ConsumerName::encode`] made; `None` for any other consumer.
    pub(crate) fn parse(name: &str) -> Option<ConsumerName> {
        let mut parts = name.rsplitn(3, '_');
        let generation = parts.next()?.strip_prefix('g')?.parse().ok()?;
        let partition = parts.next()?.strip_prefix('p')?.parse().ok()?;
        let group = unescape(parts.next()?)?;
        Some(ConsumerName {
            group,
            partition,
            generation,
        })
    }
}

/// Whether `namespace` can prefix streams, subjects and buckets: 1 to 32 ASCII letters and
/// digits.
pub(crate) fn valid_namespace(namespace: &str) -> bool {
    (1..=32).contains(&namespace.len()) && namespace.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The bytes NATS names keep as they are: ASCII letters, digits and `-`.
fn kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

/// `name` with every byte but ASCII letters, digits and `-` written as `_XX`.
pub(crate) fn escape(name: &str) -> String {
    escape_name(name, kept)
}

/// The name [`escape`] wrote; `None` when `escaped` is not such a name.
pub(crate) fn unescape(escaped: &str) -> Option<String> {
    unescape_name(escaped, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_never_collide() {
        let names = Names::new("keel");
        for topic in ["orders", "orders.dlq", "orders_2Edlq", "a-b", "ü", "a b"] {
            let stream = names.stream(topic);
            assert!(!stream.contains(['.', '*', '>', ' ']), "{stream}");
            assert_eq!(names.topic(&stream).as_deref(), Some(topic), "{stream}");
        }
        assert_ne!(names.stream("orders.dlq"), names.stream("orders_2Edlq"));
        assert_eq!(names.subject("orders.dlq", 3), "keel.orders_2Edlq.3");
        assert_eq!(names.topic("other_orders"), None);
        assert_eq!(names.topic("keelx_orders"), None);
        assert_eq!(unescape("a_2e"), None, "lower-case hex is not ours");
        assert_eq!(unescape("a_2"), None);
    }

    #[test]
    fn consumer_names_parse_back() {
        for group in ["billing", "a_p1_g2", "x.y"] {
            let name = ConsumerName {
                group: group.to_string(),
                partition: 7,
                generation: 12,
            };
            assert_eq!(ConsumerName::parse(&name.encode()), Some(name));
        }
        assert_eq!(ConsumerName::parse("someone-elses"), None);
    }
}
