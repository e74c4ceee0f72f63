//! The record shape every transport speaks: what a publisher hands a transport
//! ([`NewRecord`]) and what a consumer reads back ([`Record`]) — key, value, headers,
//! timestamp and, once stored, where it came from (its offset in the partition it was read
//! from; the topic and partition are the lease's).
//!
//! Not here: how an engine lays records out (Kafka's RecordBatch in `keel-log`, a JetStream
//! message, ...) or how events map onto records (CloudEvents binary mode, `binary.rs`).

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::binary::WELL_KNOWN_HEADERS;

/// A record header. Keys are strings (as in Kafka); values are bytes or null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: HeaderName,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

/// A header's name. The names every Keel event carries (its CloudEvents attributes'
/// `ce_<name>` headers and `content-type`, [`HeaderName::interned`]) are held as
/// `&'static str`, so encoding or decoding an event allocates none of its ~9 header names;
/// any other name is an owned `String`. Reads as a `&str` (`Deref`), compares with one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeaderName(Cow<'static, str>);

impl Header {
    /// A header called `key` (a `&'static str`, a `String` or a [`HeaderName`]).
    pub fn new(key: impl Into<HeaderName>, value: Option<Bytes>) -> Header {
        Header {
            key: key.into(),
            value,
        }
    }
}

impl HeaderName {
    /// `name` as a header name: the static name when it is one every Keel event carries (a
    /// transport decoding a record calls this, so those names are never copied), else a copy.
    pub fn interned(name: &str) -> HeaderName {
        match WELL_KNOWN_HEADERS.iter().find(|known| **known == name) {
            Some(known) => HeaderName(Cow::Borrowed(known)),
            None => HeaderName(Cow::Owned(name.to_owned())),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for HeaderName {
    fn from(name: &'static str) -> HeaderName {
        HeaderName(Cow::Borrowed(name))
    }
}

impl From<String> for HeaderName {
    fn from(name: String) -> HeaderName {
        HeaderName(Cow::Owned(name))
    }
}

impl From<HeaderName> for String {
    fn from(name: HeaderName) -> String {
        name.0.into_owned()
    }
}

impl Deref for HeaderName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for HeaderName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for HeaderName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for HeaderName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for HeaderName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for HeaderName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_read_as_their_text_and_well_known_ones_are_not_copied() {
        for (name, well_known) in [
            ("ce_id", true),
            ("ce_traceparent", true),
            ("content-type", true),
            ("Content-Type", false),
            ("ce_orderid", false),
            ("keel_dlq_topic", false),
            ("", false),
        ] {
            let interned = HeaderName::interned(name);
            assert_eq!(interned, name);
            assert_eq!(interned.as_str(), name);
            assert_eq!(interned, HeaderName::from(name.to_owned()), "{name}");
            assert_eq!(matches!(interned.0, Cow::Borrowed(_)), well_known, "{name}");
        }
    }
}
