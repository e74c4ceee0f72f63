//! Topic ids: the 16-byte id Kafka gives each topic (KIP-516), which Metadata v10+ reports and
//! the consumer protocol's assignments (ConsumerGroupHeartbeat) name topics by.
//!
//! keel-log stores no topic id, so Keel derives one from the topic's name: the first 16 bytes
//! of SHA-256 over a fixed prefix and the name. It is stable across restarts and the same for
//! every connection, which is all a client needs to map assignments to names. Unlike Kafka's
//! random ids, a topic deleted and created again under the same name keeps its id.

use ring::digest;
use uuid::Uuid;

/// Keeps Keel's ids apart from any other use of SHA-256 over a topic name.
const DOMAIN: &[u8] = b"keel topic id\0";

/// The id of the topic named `name`.
pub(crate) fn topic_id(name: &str) -> Uuid {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(DOMAIN);
    context.update(name.as_bytes());
    let hash = context.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_never_kafkas_reserved_ones() {
        assert_eq!(topic_id("orders"), topic_id("orders"));
        assert_ne!(topic_id("orders"), topic_id("orders2"));
        // Kafka reserves the zero id (no id) and 0…01 (the metadata topic).
        assert_ne!(topic_id(""), Uuid::nil());
        assert_ne!(topic_id("orders"), Uuid::from_u128(1));
    }
}
