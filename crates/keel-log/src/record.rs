//! Records as the log sees them: the ports' record shape (`keel-core`'s [`Header`],
//! [`NewRecord`], [`Record`], re-exported by this crate) and its decoding from Kafka's wire
//! record.

use kafka_protocol::records::Record as WireRecord;
use keel_core::{Header, HeaderName, Record};

/// The stored record of a decoded wire record.
pub(crate) fn from_wire(wire: WireRecord) -> Record {
    Record {
        offset: wire.offset as u64,
        timestamp_ms: wire.timestamp,
        key: wire.key,
        value: wire.value,
        headers: wire
            .headers
            .into_iter()
            .map(|(key, value)| Header::new(HeaderName::interned(&key), value))
            .collect(),
    }
}
