//! Records as callers see them: what goes into an append and what comes out of a read.

use bytes::Bytes;
use kafka_protocol::records::Record as WireRecord;

/// A record header. Keys are strings (as in Kafka); values are bytes or null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

/// A record to append. The log assigns its offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Partitioning and compaction key.
    pub key: Option<Bytes>,
    /// Payload; `None` is a tombstone on compacted topics.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Creation time in ms since the epoch; the log's clock when `None`.
    pub timestamp_ms: Option<i64>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the partition.
    pub offset: u64,
    /// Creation time in ms since the epoch.
    pub timestamp_ms: i64,
    /// Partitioning and compaction key.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl NewRecord {
    /// A record with a key and a value, timestamped by the log.
    pub fn new(key: Option<impl Into<Bytes>>, value: impl Into<Bytes>) -> NewRecord {
        NewRecord {
            key: key.map(Into::into),
            value: Some(value.into()),
            ..NewRecord::default()
        }
    }
}

impl From<WireRecord> for Record {
    fn from(wire: WireRecord) -> Record {
        Record {
            offset: wire.offset as u64,
            timestamp_ms: wire.timestamp,
            key: wire.key,
            value: wire.value,
            headers: wire
                .headers
                .into_iter()
                .map(|(key, value)| Header {
                    key: key.to_string(),
                    value,
                })
                .collect(),
        }
    }
}
