//! The CloudEvents Kafka protocol binding: binary content mode, and telling the two content
//! modes apart on a received record.
//!
//! Binary mode puts each context attribute in a `ce_<name>` header (UTF-8 string values),
//! `datacontenttype` in the `content-type` header, and the data bytes, untouched, in the record
//! value; [`Event::to_record`] writes that as the port's `NewRecord`, its bytes in one buffer.
//! This file works on keys, headers and values as bytes; it knows nothing of any Kafka
//! client, of topics or of partitions. The JSON format itself is in `structured.rs`.

use bytes::BytesMut;

use crate::attribute::{
    self, Attributes, SPEC_VERSION, Slot, TIME_LEN_MAX, check_name, event_from_attributes,
};
use crate::error::EnvelopeError;
use crate::event::Event;
use crate::port::record::{Header, HeaderName, NewRecord};
use crate::trace::TRACEPARENT_LEN;

/// The header that carries `datacontenttype` in binary mode and the event format's media type
/// in structured mode. Matched case-insensitively on receipt.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// The prefix that turns a CloudEvents attribute name into a Kafka header name.
pub const ATTRIBUTE_HEADER_PREFIX: &str = "ce_";

/// The header names of the attributes the CloudEvents spec defines and of `content-type`:
/// what every event's record carries, so [`HeaderName`] holds them as static names.
pub(crate) const WELL_KNOWN_HEADERS: [&str; 13] = [
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "ce_dataschema",
    "ce_partitionkey",
    "ce_traceparent",
    "ce_tracestate",
    "ce_correlationid",
    "ce_causationid",
    CONTENT_TYPE_HEADER,
];

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
        self.each_binary_header(|header, value| {
            headers.push((header.into(), value.to_vec()));
        });
        BinaryEvent {
            key: self
                .partitionkey
                .as_ref()
                .map(|key| key.as_bytes().to_vec()),
            headers,
            value: self.data.clone(),
        }
    }

    /// The event's record in binary mode: [`Event::to_binary`]'s key, headers and value, with
    /// the event's `time` as the timestamp (the transport's clock when it has none).
    pub fn to_record(&self) -> NewRecord {
        self.to_record_with(self.partitionkey.as_deref().map(str::as_bytes), &[])
    }

    /// [`Event::to_record`] with `key` in place of the partition key and `extra_headers`
    /// after the event's own (a writer's bookkeeping, as the event store's stream version).
    ///
    /// The key, every header value and the data are copied into one buffer and sliced from
    /// it: one allocation for the record's bytes instead of one per part, which is most of
    /// what a one-event publish or append costs beside the write itself.
    pub fn to_record_with(&self, key: Option<&[u8]>, extra_headers: &[(&str, &[u8])]) -> NewRecord {
        let extra_len: usize = extra_headers.iter().map(|(_, value)| value.len()).sum();
        let mut buffer = BytesMut::with_capacity(
            self.binary_values_len() + key.map_or(0, <[u8]>::len) + extra_len,
        );
        let mut slice = |bytes: &[u8]| {
            buffer.extend_from_slice(bytes);
            buffer.split().freeze()
        };
        let key = key.map(&mut slice);
        let mut headers = Vec::with_capacity(12 + self.extensions.len() + extra_headers.len());
        self.each_binary_header(|header, value| {
            headers.push(Header {
                key: header,
                value: Some(slice(value)),
            });
        });
        for (name, value) in extra_headers {
            headers.push(Header::new(HeaderName::interned(name), Some(slice(value))));
        }
        NewRecord {
            key,
            value: self.data.as_deref().map(&mut slice),
            headers,
            timestamp_ms: self.time.map(|time| time.timestamp_millis()),
        }
    }

    /// Calls `each` with every binary-mode header in wire order (`ce_specversion`, `ce_id`,
    /// `ce_source`, `ce_type`, `ce_time`, Keel's extensions, other extensions by name,
    /// `content-type`) as its name and its value, so both record forms write the same
    /// headers. The names the binding defines are static: only an extension's is built.
    fn each_binary_header(&self, mut each: impl FnMut(HeaderName, &[u8])) {
        let mut known = |header: &'static str, value: &[u8]| each(HeaderName::from(header), value);
        known("ce_specversion", SPEC_VERSION.as_bytes());
        known("ce_id", self.id.as_bytes());
        known("ce_source", self.source.as_bytes());
        known("ce_type", self.ty.as_bytes());
        if let Some(time) = &self.time {
            known("ce_time", attribute::time_text(time).as_str().as_bytes());
        }
        for (_, header, value) in self.optional_string_attributes() {
            known(header, value.as_bytes());
        }
        for (name, value) in &self.extensions {
            each(extension_header(name), value.as_bytes());
        }
        if let Some(content_type) = &self.datacontenttype {
            each(
                HeaderName::from(CONTENT_TYPE_HEADER),
                content_type.as_bytes(),
            );
        }
    }

    /// The bytes of the header values and the data of the record: an upper bound unless a
    /// time is past year 9999, so the record's buffer is allocated once.
    fn binary_values_len(&self) -> usize {
        let required = [&self.id, &self.source, &self.ty];
        let optional = [
            &self.datacontenttype,
            &self.subject,
            &self.dataschema,
            &self.partitionkey,
            &self.tracestate,
            &self.correlationid,
            &self.causationid,
        ];
        let strings: usize = required.into_iter().map(String::len).sum::<usize>()
            + optional
                .into_iter()
                .flatten()
                .map(String::len)
                .sum::<usize>()
            + self.extensions.values().map(String::len).sum::<usize>();
        SPEC_VERSION.len()
            + strings
            + TIME_LEN_MAX
            + TRACEPARENT_LEN
            + self.data.as_ref().map_or(0, Vec::len)
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
            // The attribute, and its slot when it is a context attribute: a known name needs
            // no check of the naming rule.
            let (name, slot) = if header.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
                ("datacontenttype", Some(Slot::DataContentType))
            } else if let Some(name) = header.strip_prefix(ATTRIBUTE_HEADER_PREFIX) {
                let slot = Slot::of(name);
                match slot {
                    Some(Slot::DataContentType) => {
                        return Err(EnvelopeError::invalid(
                            name,
                            "binary mode carries it in the 'content-type' header, not 'ce_datacontenttype'",
                        ));
                    }
                    Some(_) => {}
                    None => check_name(name)?,
                }
                (name, slot)
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
            let repeated = match slot {
                Some(slot) => attributes.insert_context(slot, text),
                None => attributes.insert_extension(name, text),
            };
            if repeated {
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
    pub fn from_record<'a, H>(
        key: Option<&'a [u8]>,
        headers: H,
        value: Option<&'a [u8]>,
    ) -> Result<Event, EnvelopeError>
    where
        H: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
        H::IntoIter: Clone,
    {
        // Read twice, the content type first, rather than collected: a record is decoded on
        // every delivery.
        let headers = headers.into_iter();
        let content_type = headers
            .clone()
            .find(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
            .and_then(|(_, value)| value)
            .and_then(|value| std::str::from_utf8(value).ok());
        let Some(content_type) = content_type else {
            return Event::from_binary(key, headers, value);
        };
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let is_structured = essence
            .get(..CLOUDEVENTS_MEDIA_TYPE_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(CLOUDEVENTS_MEDIA_TYPE_PREFIX));
        if !is_structured {
            return Event::from_binary(key, headers, value);
        }
        if !essence.eq_ignore_ascii_case(crate::structured::STRUCTURED_MEDIA_TYPE) {
            return Err(EnvelopeError::invalid(
                "datacontenttype",
                format!(
                    "event format {:?} is not supported; Keel reads {:?}",
                    essence.to_ascii_lowercase(),
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

    /// The optional attributes other than `time` and `datacontenttype`, as their names,
    /// their binary-mode header names and their canonical text, in wire order, so both
    /// encoders write the same attributes the same way.
    pub(crate) fn optional_string_attributes(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, AttributeText<'_>)> {
        fn borrowed(value: &Option<String>) -> Option<AttributeText<'_>> {
            value.as_deref().map(AttributeText::Borrowed)
        }
        [
            ("subject", "ce_subject", borrowed(&self.subject)),
            ("dataschema", "ce_dataschema", borrowed(&self.dataschema)),
            (
                "partitionkey",
                "ce_partitionkey",
                borrowed(&self.partitionkey),
            ),
            (
                "traceparent",
                "ce_traceparent",
                self.traceparent
                    .map(|trace| AttributeText::TraceParent(trace.encode())),
            ),
            ("tracestate", "ce_tracestate", borrowed(&self.tracestate)),
            (
                "correlationid",
                "ce_correlationid",
                borrowed(&self.correlationid),
            ),
            ("causationid", "ce_causationid", borrowed(&self.causationid)),
        ]
        .into_iter()
        .filter_map(|(name, header, value)| value.map(|value| (name, header, value)))
    }
}

/// An optional attribute's canonical text: the event's own string, or `traceparent`'s
/// written into an array. Not a `String`: formatting the trace context allocated and ran the
/// formatter for every published event (~900 instructions).
pub(crate) enum AttributeText<'a> {
    Borrowed(&'a str),
    TraceParent([u8; TRACEPARENT_LEN]),
}

impl AttributeText<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            AttributeText::Borrowed(text) => text.as_bytes(),
            AttributeText::TraceParent(text) => text,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            AttributeText::Borrowed(text) => text,
            AttributeText::TraceParent(text) => {
                std::str::from_utf8(text).expect("hex digits and dashes are ASCII")
            }
        }
    }
}

/// The media type prefix that marks a structured-mode record (binding section 3).
const CLOUDEVENTS_MEDIA_TYPE_PREFIX: &str = "application/cloudevents";

/// An extension's header name: `ce_` and its name, built without the formatting machinery.
fn extension_header(name: &str) -> HeaderName {
    let mut header = String::with_capacity(ATTRIBUTE_HEADER_PREFIX.len() + name.len());
    header.push_str(ATTRIBUTE_HEADER_PREFIX);
    header.push_str(name);
    header.into()
}
