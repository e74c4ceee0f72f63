//! A Keel record as a JetStream message and back: the payload is the record's value; the
//! key, the creation time and the record's headers travel as NATS headers.
//!
//! NATS header values are text without line breaks, while Keel's are bytes or null: a value
//! that is not such text (a handler's multi-line error in a dead letter, a binary key) is
//! stored base64-encoded under `Keel-B64-<name>`, a null one as `Keel-Null-<name>`, so every
//! record comes back as it was written. Names starting with `Nats-` or `Keel-` are NATS's
//! and this mapping's own and are refused in a record. The order of headers of different
//! names is not kept (NATS stores a map); values of one name keep theirs.
//!
//! Not here: subjects, streams, deduplication ids (`publisher.rs`).

use async_nats::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use keel_core::{Header, HeaderName, NewRecord, Record};

/// The record's key.
const KEY: &str = "Keel-Key";
/// The record's creation time, ms since the epoch (the stream's own time otherwise).
const TIME: &str = "Keel-Time";
/// A value of `name` stored base64-encoded under `Keel-B64-<name>`.
const BASE64_PREFIX: &str = "Keel-B64-";
/// A null value of `name` stored as `Keel-Null-<name>`.
const NULL_PREFIX: &str = "Keel-Null-";
/// The pseudo-header of a null (tombstone) record value.
const VALUE: &str = "Keel-Value";

/// Why a record cannot be written as a NATS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EncodeError {
    /// A header name NATS cannot carry or this mapping reserves.
    #[error(
        "header name '{0}' is not allowed on NATS (empty, not printable ASCII, ':' or a 'Nats-'/'Keel-' prefix)"
    )]
    HeaderName(String),
}

/// The headers and payload of `record`, created at `now_ms` when it has no time.
pub(crate) fn encode(record: &NewRecord, now_ms: i64) -> Result<(HeaderMap, Bytes), EncodeError> {
    let mut headers = HeaderMap::new();
    for header in &record.headers {
        if !valid_name(&header.key) || reserved(&header.key) {
            return Err(EncodeError::HeaderName(header.key.to_string()));
        }
        append(&mut headers, &header.key, header.value.as_deref());
    }
    if let Some(key) = &record.key {
        append(&mut headers, KEY, Some(key));
    }
    if record.value.is_none() {
        append(&mut headers, VALUE, None);
    }
    let time = record.timestamp_ms.unwrap_or(now_ms);
    headers.insert(TIME, time.to_string().as_str());
    Ok((headers, record.value.clone().unwrap_or_default()))
}

/// The record stored at `offset` with these headers and payload, stored by the stream at
/// `stream_time_ms`.
pub(crate) fn decode(
    offset: u64,
    headers: Option<&HeaderMap>,
    payload: Bytes,
    stream_time_ms: i64,
) -> Record {
    let mut record = Record {
        offset,
        timestamp_ms: stream_time_ms,
        key: None,
        value: Some(payload),
        headers: Vec::with_capacity(headers.map_or(0, HeaderMap::len)),
    };
    let Some(headers) = headers else {
        return record;
    };
    // The text values a record keeps are copied into one buffer and sliced from it: one
    // allocation per record instead of one per value.
    let kept_bytes = headers
        .iter()
        .filter(|(name, _)| kept_text(name.as_ref()))
        .flat_map(|(_, values)| values)
        .map(|value| value.as_str().len())
        .sum();
    let mut buffer = BytesMut::with_capacity(kept_bytes);
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        for text in values {
            let text: &str = text.as_ref();
            // Only the values a record keeps are copied out of the message.
            let (name, value) = if let Some(name) = name.strip_prefix(BASE64_PREFIX) {
                (name, Value::Base64(text))
            } else if let Some(name) = name.strip_prefix(NULL_PREFIX) {
                (name, Value::Null)
            } else {
                (name, Value::Text(text))
            };
            match name {
                TIME => {
                    if let Some(time) = value.time_ms() {
                        record.timestamp_ms = time;
                    }
                }
                KEY => record.key = value.bytes(&mut buffer),
                VALUE => record.value = None,
                _ if name.starts_with("Nats-") => {}
                _ => record.headers.push(Header::new(
                    HeaderName::interned(name),
                    value.bytes(&mut buffer),
                )),
            }
        }
    }
    // NATS keeps headers in a hash map: sorted by name, a record reads the same every time
    // (a stable sort keeps the values of one name in their order).
    record.headers.sort_by(|a, b| a.key.cmp(&b.key));
    record
}

/// Whether the values under header `name` are copied as text into a record: its key and
/// headers, not the creation time (parsed in place), NATS's own headers or encoded values.
fn kept_text(name: &str) -> bool {
    !(name == TIME
        || name.starts_with("Nats-")
        || name.starts_with(BASE64_PREFIX)
        || name.starts_with(NULL_PREFIX))
}

/// A header value as stored, before it is copied into a record.
enum Value<'a> {
    Text(&'a str),
    Base64(&'a str),
    Null,
}

impl Value<'_> {
    /// The value's bytes, text copied into `buffer`; `None` for a null one and for base64
    /// that does not decode.
    fn bytes(&self, buffer: &mut BytesMut) -> Option<Bytes> {
        match self {
            Value::Text(text) => {
                buffer.extend_from_slice(text.as_bytes());
                Some(buffer.split().freeze())
            }
            Value::Base64(text) => STANDARD.decode(text).ok().map(Bytes::from),
            Value::Null => None,
        }
    }

    /// The value read as a time in ms since the epoch.
    fn time_ms(&self) -> Option<i64> {
        match self {
            Value::Text(text) => text.parse().ok(),
            _ => std::str::from_utf8(&self.bytes(&mut BytesMut::new())?)
                .ok()?
                .parse()
                .ok(),
        }
    }
}

fn append(headers: &mut HeaderMap, name: &str, value: Option<&[u8]>) {
    match value {
        None => headers.append(format!("{NULL_PREFIX}{name}").as_str(), ""),
        Some(text) if plain_text(text) => {
            headers.append(name, std::str::from_utf8(text).expect("checked"))
        }
        Some(bytes) => headers.append(
            format!("{BASE64_PREFIX}{name}").as_str(),
            STANDARD.encode(bytes).as_str(),
        ),
    }
}

/// Whether a value is stored as it is: UTF-8 without control characters and without
/// leading or trailing blanks (which the header parser would trim).
fn plain_text(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    !text.chars().any(char::is_control) && text.trim() == text
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic() && c != ':')
}

fn reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("nats-") || lower.starts_with("keel-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &str, value: Option<&[u8]>) -> Header {
        Header::new(key.to_owned(), value.map(Bytes::copy_from_slice))
    }

    fn round_trip(record: NewRecord) -> Record {
        let (headers, payload) = encode(&record, 42).expect("encode");
        decode(9, Some(&headers), payload, 7)
    }

    #[test]
    fn records_come_back_as_written() {
        let headers = vec![
            header("ce_id", Some(b"id-1")),
            header("content-type", Some(b"text/plain")),
            header("keel_dlq_error", Some(b"line one\nline two")),
            header("binary", Some(&[0, 159, 255])),
            header("padded", Some(b" x ")),
            header("null", None),
            header("empty", Some(b"")),
        ];
        let record = NewRecord {
            key: Some(Bytes::from_static(&[1, 2, 3])),
            value: Some(Bytes::from_static(b"payload")),
            headers: headers.clone(),
            timestamp_ms: Some(1_700_000_000_000),
        };
        let read = round_trip(record);
        assert_eq!(read.offset, 9);
        assert_eq!(read.key.as_deref(), Some(&[1, 2, 3][..]));
        assert_eq!(read.value.as_deref(), Some(&b"payload"[..]));
        assert_eq!(read.timestamp_ms, 1_700_000_000_000);
        let mut expected = headers;
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        let mut got = read.headers;
        got.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got, expected);
    }

    #[test]
    fn a_tombstone_and_a_record_without_time_or_key() {
        let read = round_trip(NewRecord {
            key: Some(Bytes::from_static(b"k")),
            value: None,
            ..NewRecord::default()
        });
        assert_eq!((read.value, read.timestamp_ms), (None, 42));
        assert_eq!(read.key.as_deref(), Some(&b"k"[..]));
        let read = round_trip(NewRecord::new(None::<Bytes>, "v"));
        assert_eq!((read.key, read.headers.len()), (None, 0));
    }

    #[test]
    fn reserved_and_invalid_header_names_are_refused() {
        for name in ["Nats-Msg-Id", "keel-key", "a:b", "a b", ""] {
            let record = NewRecord {
                headers: vec![header(name, Some(b"x"))],
                ..NewRecord::default()
            };
            let error = encode(&record, 0).unwrap_err();
            assert!(error.to_string().contains(&format!("'{name}'")), "{error}");
        }
    }
}
