//! A Keel record as a Redis stream entry and back. An entry is an ordered list of field
//! and value byte strings, so the record maps onto it whole: `t` the creation time (ms),
//! `k` the key, `v` the value (absent for a tombstone), then each header as `h:<name>` with
//! its value, or `n:<name>` for a null one — in order, duplicates kept.
//!
//! Offsets: entries are added with the id `0-*` (Redis 7: the time part fixed at 0, the
//! sequence counted by the server), so the entry `0-<n>` is offset `n − 1` — dense from 0
//! per partition, like Kafka's. The creation time travels in `t`, not in the id.
//!
//! Not here: keys, commands (`publisher.rs`, `lease.rs`).

use bytes::Bytes;
use keel_core::{Header, HeaderName, NewRecord, Record};
use redis::Value;

/// The id to add an entry with: the next sequence under time 0.
pub(crate) const NEXT_ID: &str = "0-*";

/// The fields of `record`, created at `now_ms` when it has no time.
pub(crate) fn encode(record: &NewRecord, now_ms: i64) -> Vec<(Vec<u8>, Bytes)> {
    let mut fields = Vec::with_capacity(record.headers.len() + 3);
    let time = record.timestamp_ms.unwrap_or(now_ms);
    fields.push((b"t".to_vec(), Bytes::from(time.to_string())));
    if let Some(key) = &record.key {
        fields.push((b"k".to_vec(), key.clone()));
    }
    if let Some(value) = &record.value {
        fields.push((b"v".to_vec(), value.clone()));
    }
    for header in &record.headers {
        match &header.value {
            Some(value) => fields.push((format!("h:{}", header.key).into_bytes(), value.clone())),
            None => fields.push((format!("n:{}", header.key).into_bytes(), Bytes::new())),
        }
    }
    fields
}

/// The offset of the entry id `0-<n>`; `None` for an id Keel did not write.
pub(crate) fn offset_of(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse::<u64>().ok()?.checked_sub(1)
}

/// The entry id of `offset`.
pub(crate) fn id_of(offset: u64) -> String {
    format!("0-{}", offset + 1)
}

/// The records of a reply listing entries (`XRANGE`, or one stream of `XREADGROUP`):
/// `[[id, [field, value, …]], …]`. Entries whose fields are gone (deleted while pending)
/// are skipped.
///
/// The reply is taken by value: each key, value and header value moves its bulk string's
/// buffer into the record instead of copying it, and the well-known header names are
/// interned, so a record costs one allocation of its own (its header list) beside the
/// buffers the reply already holds — this runs for every consumed entry.
pub(crate) fn decode_entries(reply: Value) -> Vec<Record> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    let mut records = Vec::with_capacity(entries.len());
    records.extend(entries.into_iter().filter_map(decode_entry));
    records
}

fn decode_entry(entry: Value) -> Option<Record> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let [id, Value::Array(fields)] = <[Value; 2]>::try_from(parts).ok()? else {
        return None;
    };
    let offset = offset_of(std::str::from_utf8(borrowed(&id)?).ok()?)?;
    let mut record = Record {
        offset,
        timestamp_ms: 0,
        key: None,
        value: None,
        headers: Vec::with_capacity(fields.len() / 2),
    };
    let mut fields = fields.into_iter();
    while let (Some(field), Some(value)) = (fields.next(), fields.next()) {
        let Some(field) = borrowed(&field) else {
            continue;
        };
        let Some(value) = owned(value) else {
            continue;
        };
        match field {
            b"t" => {
                record.timestamp_ms = std::str::from_utf8(&value).ok()?.parse().ok()?;
            }
            b"k" => record.key = Some(value),
            b"v" => record.value = Some(value),
            name => {
                let name = std::str::from_utf8(name).ok()?;
                if let Some(key) = name.strip_prefix("h:") {
                    record
                        .headers
                        .push(Header::new(HeaderName::interned(key), Some(value)));
                } else if let Some(key) = name.strip_prefix("n:") {
                    record
                        .headers
                        .push(Header::new(HeaderName::interned(key), None));
                }
            }
        }
    }
    Some(record)
}

/// A bulk or simple string reply's bytes, borrowed.
fn borrowed(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// A bulk or simple string reply's bytes, its buffer moved rather than copied.
fn owned(value: Value) -> Option<Bytes> {
    match value {
        Value::BulkString(bytes) => Some(Bytes::from(bytes)),
        Value::SimpleString(text) => Some(Bytes::from(text)),
        _ => None,
    }
}

/// A bulk or simple string reply's bytes.
pub(crate) fn bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(bytes) => Some(Bytes::copy_from_slice(bytes)),
        Value::SimpleString(text) => Some(Bytes::copy_from_slice(text.as_bytes())),
        _ => None,
    }
}

/// A string reply as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    String::from_utf8(bytes(value)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, fields: &[(Vec<u8>, Bytes)]) -> Value {
        let mut flat = Vec::new();
        for (field, value) in fields {
            flat.push(Value::BulkString(field.clone()));
            flat.push(Value::BulkString(value.to_vec()));
        }
        Value::Array(vec![
            Value::BulkString(id.as_bytes().to_vec()),
            Value::Array(flat),
        ])
    }

    #[test]
    fn records_come_back_as_written() {
        let headers = vec![
            Header::new("ce_id", Some(Bytes::from_static(b"1"))),
            Header::new("x".to_owned(), None),
            Header::new("ce_id", Some(Bytes::from_static(&[0, 255, b'\n']))),
        ];
        let record = NewRecord {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: headers.clone(),
            timestamp_ms: Some(5),
        };
        let reply = Value::Array(vec![entry("0-8", &encode(&record, 0))]);
        let read = decode_entries(reply);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].offset, 7);
        assert_eq!(read[0].timestamp_ms, 5);
        assert_eq!(read[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(read[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(read[0].headers, headers, "order and duplicates kept");
        let tombstone = NewRecord {
            value: None,
            ..NewRecord::default()
        };
        let read = decode_entries(Value::Array(vec![entry("0-1", &encode(&tombstone, 9))]));
        assert_eq!(
            (read[0].offset, read[0].value.clone(), read[0].timestamp_ms),
            (0, None, 9)
        );
    }

    #[test]
    fn ids_map_to_dense_offsets() {
        assert_eq!(offset_of("0-1"), Some(0));
        assert_eq!(offset_of(&id_of(41)), Some(41));
        assert_eq!(offset_of("0-0"), None);
        assert_eq!(offset_of("1700000000000-0"), None, "not an id Keel wrote");
    }
}
