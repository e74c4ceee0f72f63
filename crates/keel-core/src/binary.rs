//! The CloudEvents Kafka protocol binding: binary content mode, and telling the two content
//! modes apart on a received record.
//!
//! Binary mode puts each context attribute in a `ce_<name>` header (UTF-8 string values),
//! `datacontenttype` in the `content-type` header, and the data bytes, untouched, in the record
//! value. This file works on keys, headers and values as bytes; it knows nothing of any Kafka
//! client, of topics or of partitions. The JSON format itself is in `structured.rs`.

use std::borrow::Cow;

use crate::attribute::{self, Attributes, SPEC_VERSION, check_name, event_from_attributes};
use crate::error::EnvelopeError;
use crate::event::Event;

/// The header that carries `datacontenttype` in binary mode and the event format's media type
/// in structured mode. Matched case-insensitively on receipt.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// The prefix that turns a CloudEvents attribute name into a Kafka header name.
pub const ATTRIBUTE_HEADER_PREFIX: &str = "ce_";

/// The parts of a Kafka record that carry an event, as a producer should send them.
///
/// Kept free of any Kafka client type so that `keel-core` stays without I/O; a transport
/// copies these three fields into its own record type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryEvent {
    /// The record key: the `partitionkey` attribute, so a key-hashing partitioner keeps one
    /// entity's events in one partition, in order. `None` when the event has no partition key.
    pub key: Option<Vec<u8>>,
    /// The record headers, in a fixed order (`ce_specversion`, `ce_id`, `ce_source`,
    /// `ce_type`, `ce_time`, Keel's extensions, other extensions by name, `content-type`), so
    /// equal events give equal records.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record value: the data bytes as they are. `None` when the event has no data, which
    /// a compacted topic treats as a tombstone.
    pub value: Option<Vec<u8>>,
}

impl BinaryEvent {
    /// The value of the first header called `name`, for tests and routing code that look at
    /// one attribute without decoding the event.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_slice())
    }
}

impl Event {
    /// The binary-mode form of the event. Infallible: an invalid event is encoded as it is,
    /// so call [`Event::validate`] before publishing an event built by hand.
    ///
    /// `partitionkey` goes both to the key and to its `ce_partitionkey` header, because the
    /// binding forbids a key mapper to drop the attribute from the event.
    pub fn to_binary(&self) -> BinaryEvent {
        let mut headers = Vec::with_capacity(12 + self.extensions.len());
        let mut push = |name: &str, value: &str| {
            headers.push((
                format!("{ATTRIBUTE_HEADER_PREFIX}{name}"),
                value.as_bytes().to_vec(),
            ));
        };
        push("specversion", SPEC_VERSION);
        push("id", &self.id);
        push("source", &self.source);
        push("type", &self.ty);
        if let Some(time) = &self.time {
            push("time", &attribute::format_time(time));
        }
        for (name, value) in self.optional_string_attributes() {
            push(name, &value);
        }
        for (name, value) in &self.extensions {
            push(name, value);
        }
        if let Some(content_type) = &self.datacontenttype {
            headers.push((
                CONTENT_TYPE_HEADER.to_owned(),
                content_type.as_bytes().to_vec(),
            ));
        }
        BinaryEvent {
            key: self
                .partitionkey
                .as_ref()
                .map(|key| key.as_bytes().to_vec()),
            headers,
            value: self.data.clone(),
        }
    }

    /// Reads a binary-mode record. Headers without the `ce_` prefix, other than
    /// `content-type`, belong to the application and are ignored.
    ///
    /// The record key is accepted so a transport can hand over a whole record, but it never
    /// becomes `partitionkey`: the binding forbids deriving attributes from the key, and the
    /// attribute travels in its own header. Rejected, naming the attribute: a missing required
    /// attribute, `specversion` other than `1.0`, a header without a value or not UTF-8, an
    /// attribute twice, a `ce_` header whose name breaks the naming rule,
    /// `ce_datacontenttype` (binary mode carries it in `content-type`), and anything
    /// [`Event::validate`] rejects.
    pub fn from_binary<'a>(
        key: Option<&'a [u8]>,
        headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
        value: Option<&'a [u8]>,
    ) -> Result<Event, EnvelopeError> {
        let _ = key;
        let mut attributes = Attributes::default();
        for (header, header_value) in headers {
            let name = if header.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
                "datacontenttype"
            } else if let Some(name) = header.strip_prefix(ATTRIBUTE_HEADER_PREFIX) {
                check_name(name)?;
                if name == "datacontenttype" {
                    return Err(EnvelopeError::invalid(
                        name,
                        "binary mode carries it in the 'content-type' header, not 'ce_datacontenttype'",
                    ));
                }
                name
            } else {
                continue;
            };
            let Some(bytes) = header_value else {
                return Err(EnvelopeError::invalid(
                    name,
                    format!("header {header:?} has no value"),
                ));
            };
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Err(EnvelopeError::invalid(
                    name,
                    format!("header {header:?} is not UTF-8"),
                ));
            };
            if attributes.insert(name, text) {
                return Err(EnvelopeError::invalid(
                    name,
                    "appears more than once in the headers",
                ));
            }
        }
        event_from_attributes(attributes, value.map(<[u8]>::to_vec))
    }

    /// Reads a received Kafka record in whichever content mode its producer chose: structured
    /// when the `content-type` header starts with `application/cloudevents` (ignoring case),
    /// binary otherwise, as the binding tells receivers to decide.
    ///
    /// Of the structured formats only JSON is read; another (`+avro`, the JSON batch format)
    /// is rejected as an invalid `datacontenttype` rather than passed on as opaque binary data,
    /// because Keel's consumers expect decoded events.
    pub fn from_record<'a>(
        key: Option<&'a [u8]>,
        headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
        value: Option<&'a [u8]>,
    ) -> Result<Event, EnvelopeError> {
        let headers: Vec<_> = headers.into_iter().collect();
        let content_type = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
            .and_then(|(_, value)| *value)
            .and_then(|value| std::str::from_utf8(value).ok());
        let Some(content_type) = content_type else {
            return Event::from_binary(key, headers, value);
        };
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !essence.starts_with(CLOUDEVENTS_MEDIA_TYPE_PREFIX) {
            return Event::from_binary(key, headers, value);
        }
        if essence != crate::structured::STRUCTURED_MEDIA_TYPE {
            return Err(EnvelopeError::invalid(
                "datacontenttype",
                format!(
                    "event format {essence:?} is not supported; Keel reads {:?}",
                    crate::structured::STRUCTURED_MEDIA_TYPE
                ),
            ));
        }
        let Some(value) = value else {
            return Err(EnvelopeError::NotJson {
                reason: "a structured-mode record has no value".to_owned(),
            });
        };
        Event::from_structured_json(value)
    }

    /// The optional attributes other than `time` and `datacontenttype`, as canonical
    /// strings in wire order, so both encoders write the same attributes the same way.
    pub(crate) fn optional_string_attributes(&self) -> Vec<(&'static str, Cow<'_, str>)> {
        fn borrowed(value: &Option<String>) -> Option<Cow<'_, str>> {
            value.as_deref().map(Cow::Borrowed)
        }
        [
            ("subject", borrowed(&self.subject)),
            ("dataschema", borrowed(&self.dataschema)),
            ("partitionkey", borrowed(&self.partitionkey)),
            (
                "traceparent",
                self.traceparent.map(|t| Cow::Owned(t.to_string())),
            ),
            ("tracestate", borrowed(&self.tracestate)),
            ("correlationid", borrowed(&self.correlationid)),
            ("causationid", borrowed(&self.causationid)),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
    }
}

/// The media type prefix that marks a structured-mode record (binding section 3).
const CLOUDEVENTS_MEDIA_TYPE_PREFIX: &str = "application/cloudevents";
