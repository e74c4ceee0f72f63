//! How a record is laid out in an AMQP message: the value is the body; the key, the
//! creation time and the headers (in order, duplicates and nulls kept) are AMQP headers
//! under `keel-`; a stored message's offset is the `x-stream-offset` RabbitMQ adds when a
//! stream delivers it.
//!
//! Every field is a plain value: a stream stores messages as AMQP 1.0 and drops arrays and
//! tables from the headers, so header `i` is two fields, `keel-hn-<i>` (its name) and
//! `keel-hv-<i>` (its value, absent when null).
//!
//! Not here: how events map onto records (`keel_runtime::event_record`).

use bytes::Bytes;
use keel_core::{Header, HeaderName, NewRecord, Record};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};

/// The record's key; absent for a record without one.
const KEY: &str = "keel-key";
/// The record's creation time, ms since the epoch.
const TIMESTAMP: &str = "keel-ts";
/// Header `i`'s name is the field `keel-hn-<i>`, its value `keel-hv-<i>`.
const HEADER_NAME: &str = "keel-hn-";
const HEADER_VALUE: &str = "keel-hv-";
/// Present (true) when the value is null rather than empty.
const NULL_VALUE: &str = "keel-null-value";
/// Where RabbitMQ puts a stream message's offset when it delivers it.
const STREAM_OFFSET: &str = "x-stream-offset";

/// The message body and properties of `record`, created at `now_ms` unless it says when.
pub(crate) fn encode(record: &NewRecord, now_ms: i64) -> (Vec<u8>, BasicProperties) {
    let mut table = FieldTable::default();
    if let Some(key) = &record.key {
        table.insert(KEY.into(), long_string(key));
    }
    let timestamp_ms = record.timestamp_ms.unwrap_or(now_ms);
    table.insert(TIMESTAMP.into(), AMQPValue::LongLongInt(timestamp_ms));
    for (at, header) in record.headers.iter().enumerate() {
        table.insert(
            format!("{HEADER_NAME}{at}").into(),
            long_string(header.key.as_bytes()),
        );
        if let Some(value) = &header.value {
            table.insert(format!("{HEADER_VALUE}{at}").into(), long_string(value));
        }
    }
    if record.value.is_none() {
        table.insert(NULL_VALUE.into(), AMQPValue::Boolean(true));
    }
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(u64::try_from(timestamp_ms / 1000).unwrap_or(0))
        .with_headers(table);
    let body = record.value.as_deref().unwrap_or_default().to_vec();
    (body, properties)
}

/// The record a stream delivered; `None` when the message has no stream offset (it was not
/// read from a stream) or was not written by Keel in a readable way.
pub(crate) fn decode(body: Vec<u8>, properties: &BasicProperties) -> Option<Record> {
    let table = properties.headers().as_ref()?;
    let fields = table.inner();
    let offset = match fields.get(STREAM_OFFSET)? {
        AMQPValue::LongLongInt(offset) => u64::try_from(*offset).ok()?,
        _ => return None,
    };
    let timestamp_ms = match fields.get(TIMESTAMP) {
        Some(AMQPValue::LongLongInt(ms)) => *ms,
        _ => properties
            .timestamp()
            .map_or(0, |s| i64::try_from(s).unwrap_or(0) * 1000),
    };
    let key = fields.get(KEY).and_then(bytes);
    let mut headers = Vec::new();
    while let Some(name) = fields.get(format!("{HEADER_NAME}{}", headers.len()).as_str()) {
        let value = fields.get(format!("{HEADER_VALUE}{}", headers.len()).as_str());
        let name = bytes(name)?;
        headers.push(Header::new(
            HeaderName::interned(std::str::from_utf8(&name).ok()?),
            value.and_then(bytes),
        ));
    }
    let value = match fields.get(NULL_VALUE) {
        Some(AMQPValue::Boolean(true)) => None,
        _ => Some(Bytes::from(body)),
    };
    Some(Record {
        offset,
        timestamp_ms,
        key,
        value,
        headers,
    })
}

fn long_string(bytes: &[u8]) -> AMQPValue {
    AMQPValue::LongString(LongString::from(bytes.to_vec()))
}

fn bytes(value: &AMQPValue) -> Option<Bytes> {
    match value {
        AMQPValue::LongString(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        AMQPValue::ByteArray(b) => Some(Bytes::copy_from_slice(b.as_slice())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_message_layout() {
        let record = NewRecord {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![
                Header {
                    key: "b".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "a".into(),
                    value: None,
                },
                Header {
                    key: "b".into(),
                    value: Some(Bytes::from_static(b"2")),
                },
            ],
            timestamp_ms: Some(1_700_000_000_123),
        };
        let (body, properties) = encode(&record, 0);
        let mut table = properties.headers().clone().unwrap();
        table.insert(STREAM_OFFSET.into(), AMQPValue::LongLongInt(7));
        let read = decode(body, &properties.with_headers(table)).unwrap();
        assert_eq!(read.offset, 7);
        assert_eq!(read.timestamp_ms, 1_700_000_000_123);
        assert_eq!((read.key, read.value), (record.key, record.value));
        assert_eq!(
            read.headers, record.headers,
            "order, duplicates and nulls kept"
        );
    }

    #[test]
    fn a_null_value_stays_null_and_an_empty_one_empty() {
        for value in [None, Some(Bytes::new())] {
            let record = NewRecord {
                value: value.clone(),
                ..NewRecord::default()
            };
            let (body, properties) = encode(&record, 5);
            let mut table = properties.headers().clone().unwrap();
            table.insert(STREAM_OFFSET.into(), AMQPValue::LongLongInt(0));
            let read = decode(body, &properties.with_headers(table)).unwrap();
            assert_eq!((read.value, read.timestamp_ms), (value, 5));
        }
    }
}
