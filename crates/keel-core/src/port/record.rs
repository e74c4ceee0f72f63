//! The record shape every transport speaks: what a publisher hands a transport
//! ([`NewRecord`]) and what a consumer reads back ([`Record`]) — key, value, headers,
//! timestamp and, once stored, where it came from (its offset in the partition it was read
//! from; the topic and partition are the lease's).
//!
//! Not here: how an engine lays records out (Kafka's RecordBatch in `keel-log`, a JetStream
//! message, ...) or how events map onto records (CloudEvents binary mode, `binary.rs`).

use bytes::Bytes;

/// A record header. Keys are strings (as in Kafka); values are bytes or null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

/// A record to store. The transport assigns its offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Partitioning (and compaction) key.
    pub key: Option<Bytes>,
    /// Payload; `None` is a tombstone on compacted topics.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Creation time in ms since the epoch; the transport's clock when `None`.
    pub timestamp_ms: Option<i64>,
}

/// A stored record, as read from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it came from: its offset in the partition it was read from.
    pub offset: u64,
    /// Creation time in ms since the epoch.
    pub timestamp_ms: i64,
    /// Partitioning (and compaction) key.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl NewRecord {
    /// A record with a key and a value, timestamped by the transport.
    pub fn new(key: Option<impl Into<Bytes>>, value: impl Into<Bytes>) -> NewRecord {
        NewRecord {
            key: key.map(Into::into),
            value: Some(value.into()),
            ..NewRecord::default()
        }
    }
}

impl Record {
    /// About what the record weighs in a fetch: key, value and headers, in bytes.
    pub fn size_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + headers
    }
}

/// The value of the header `name` among `headers` as UTF-8 text, if present.
pub fn header_text<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}
