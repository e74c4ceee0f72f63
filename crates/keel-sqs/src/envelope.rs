//! A record as an SQS/SNS message body. AWS gives a message at most ten attributes, fewer
//! than a CloudEvent's headers plus Keel's dead-letter headers, and a body of text only; so
//! the whole record travels in the body as one JSON object (serde_json), bytes in base64:
//!
//! ```json
//! {"t":1765000000000,"k":"b3JkZXItNw==","v":"eyJ0b3RhbCI6NH0=","h":[["ce_id","MDE5Mw=="]]}
//! ```
//!
//! `t` is the creation time in ms, `k` the key, `v` the value, `h` the headers in order
//! (a `null` value is Kafka's null). A body that is not such an object — a message sent to
//! the queue by something else than Keel — is read as a record whose value is the body, so
//! it reaches the router (and, if no handler takes it, the dead letters) instead of being
//! lost.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use keel_core::{Header, NewRecord, Record};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Envelope {
    t: i64,
    #[serde(default)]
    k: Option<String>,
    #[serde(default)]
    v: Option<String>,
    #[serde(default)]
    h: Vec<(String, Option<String>)>,
}

/// The body of `record`, timestamped `now_ms` when it has no time of its own.
pub(crate) fn encode(record: &NewRecord, now_ms: i64) -> String {
    let base64 = |bytes: &Bytes| STANDARD.encode(bytes);
    let envelope = Envelope {
        t: record.timestamp_ms.unwrap_or(now_ms),
        k: record.key.as_ref().map(base64),
        v: record.value.as_ref().map(base64),
        h: record
            .headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.as_ref().map(base64)))
            .collect(),
    };
    serde_json::to_string(&envelope).expect("an envelope of strings serializes")
}

/// The record a body holds, at `offset`; `sent_ms` (the message's SQS time) is the time of
/// a body Keel did not write.
pub(crate) fn decode(body: &str, offset: u64, sent_ms: i64) -> Record {
    let decoded = serde_json::from_str::<Envelope>(body).ok().and_then(|e| {
        let bytes = |text: Option<String>| match text {
            Some(text) => STANDARD.decode(text).ok().map(|b| Some(Bytes::from(b))),
            None => Some(None),
        };
        let mut headers = Vec::with_capacity(e.h.len());
        for (key, value) in e.h {
            headers.push(Header::new(key, bytes(value)?));
        }
        Some(Record {
            offset,
            timestamp_ms: e.t,
            key: bytes(e.k)?,
            value: bytes(e.v)?,
            headers,
        })
    });
    decoded.unwrap_or_else(|| Record {
        offset,
        timestamp_ms: sent_ms,
        key: None,
        value: Some(Bytes::copy_from_slice(body.as_bytes())),
        headers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_comes_back_as_it_was_sent() {
        let record = NewRecord {
            key: Some(Bytes::from_static(b"order-7")),
            value: Some(Bytes::from_static(&[0, 159, 146, 150])),
            headers: vec![
                Header {
                    key: "ce_id".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "empty".into(),
                    value: None,
                },
            ],
            timestamp_ms: Some(42),
        };
        let read = decode(&encode(&record, 7), 3, 0);
        assert_eq!(read.offset, 3);
        assert_eq!(read.timestamp_ms, 42);
        assert_eq!((read.key, read.value), (record.key, record.value));
        assert_eq!(read.headers, record.headers);
    }

    #[test]
    fn a_foreign_body_is_kept_as_the_value() {
        for body in [
            "plain text",
            "{\"t\":\"no\"}",
            "{\"t\":1,\"v\":\"not base64!\"}",
        ] {
            let read = decode(body, 0, 9);
            assert_eq!(read.value.as_deref(), Some(body.as_bytes()), "{body}");
            assert_eq!((read.timestamp_ms, read.headers.len()), (9, 0));
        }
    }
}
