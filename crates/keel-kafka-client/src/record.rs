//! [`record`]: a consumed Kafka message as the runtime's [`Record`], from either way a
//! message arrives — the `rdkafka` crate's `BorrowedMessage` (the admin side's reads) or a
//! partition batch's message (`batch_queue.rs`, the router's path).
//!
//! Not here: reading messages.

use std::borrow::Cow;

use bytes::Bytes;
use keel_core::{Header, HeaderName, Record};
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// What [`record`] reads of a consumed message.
pub(crate) trait KafkaMessage {
    fn offset(&self) -> i64;
    /// Milliseconds since the epoch; 0 when the message has none.
    fn timestamp_ms(&self) -> i64;
    fn key(&self) -> Option<&[u8]>;
    fn payload(&self) -> Option<&[u8]>;
    /// The headers in order, read once: each look-up of one in librdkafka searches its
    /// list again.
    fn headers(&self) -> Vec<(Cow<'_, str>, Option<&[u8]>)>;
}

/// `message` as a record. The key, the payload and the header values are copied into one
/// buffer the record's fields share: one allocation (and one free) per record instead of
/// one per field, on the path every consumed event takes (a Keel event carries about
/// eight headers).
pub(crate) fn record(message: &impl KafkaMessage) -> Record {
    let headers = message.headers();
    let (key, payload) = (message.key(), message.payload());
    let fields = || {
        key.into_iter()
            .chain(payload)
            .chain(headers.iter().filter_map(|(_, value)| *value))
    };
    let mut buffer = Vec::with_capacity(fields().map(<[u8]>::len).sum());
    for field in fields() {
        buffer.extend_from_slice(field);
    }
    // The fields in the order they were copied.
    let buffer = Bytes::from(buffer);
    let mut start = 0;
    let mut next = |field: &[u8]| {
        let bytes = buffer.slice(start..start + field.len());
        start += field.len();
        bytes
    };
    Record {
        offset: message.offset() as u64,
        timestamp_ms: message.timestamp_ms(),
        key: key.map(&mut next),
        value: payload.map(&mut next),
        headers: headers
            .iter()
            .map(|(name, value)| Header::new(HeaderName::interned(name), value.map(&mut next)))
            .collect(),
    }
}

impl KafkaMessage for BorrowedMessage<'_> {
    fn offset(&self) -> i64 {
        Message::offset(self)
    }

    fn timestamp_ms(&self) -> i64 {
        self.timestamp().to_millis().unwrap_or(0)
    }

    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }

    fn payload(&self) -> Option<&[u8]> {
        Message::payload(self)
    }

    fn headers(&self) -> Vec<(Cow<'_, str>, Option<&[u8]>)> {
        // Sized first: librdkafka's header iterator gives no size hint, and growing the
        // list reallocated it for every event of eight headers.
        Message::headers(self)
            .map(|headers| {
                let mut list = Vec::with_capacity(headers.count());
                list.extend(headers.iter().map(|h| (Cow::Borrowed(h.key), h.value)));
                list
            })
            .unwrap_or_default()
    }
}
