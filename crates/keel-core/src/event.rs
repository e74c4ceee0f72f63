//! The CloudEvents 1.0 envelope as a Rust value: [`Event`], its builder methods and its rules.
//!
//! An `Event` is independent of how it travels: the Kafka binary mode is in `binary.rs`, the
//! JSON structured mode in `structured.rs`, typed payloads in `typed.rs`. This file does no
//! encoding; it only says what a valid event is.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::attribute::{
    JSON_MEDIA_TYPE, check_extension_name, check_media_type, check_non_empty, check_string,
    check_uri, check_uri_reference,
};
use crate::error::EnvelopeError;
use crate::trace::TraceParent;

/// One CloudEvents 1.0 event: the context attributes Keel knows, any other extension
/// attributes, and the data as bytes.
///
/// `specversion` is not a field: Keel only reads and writes `1.0`, so a value that could say
/// anything else would only be a way to build an invalid event.
///
/// Fields are public so that tests, adapters and the CLI can build any event, valid or not;
/// [`Event::validate`] is the gate, and every decoder calls it before returning an event.
/// Values use the canonical string encoding of the CloudEvents type system except where Rust
/// has a better type (`time`, `traceparent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `id`: with `source`, identifies the event, so a consumer can drop a redelivered
    /// duplicate. A UUIDv7 by default, so ids also sort by creation time. Non-empty.
    pub id: String,
    /// `source`: the context the event happened in (a service, a resource path), as a
    /// non-empty URI reference such as `/orders` or `urn:keel:orders`.
    pub source: String,
    /// `type`: what happened, such as `com.example.order.placed`; consumers route on it.
    /// Non-empty.
    pub ty: String,
    /// `time`: when the occurrence happened. Set to the creation time by [`Event::new`].
    pub time: Option<DateTime<Utc>>,
    /// `subject`: the thing inside `source` that the event is about, for filtering without
    /// decoding `data`. Non-empty when present.
    pub subject: Option<String>,
    /// `datacontenttype`: the media type of `data` (RFC 2046). In Kafka binary mode it is the
    /// `content-type` header. Absent means JSON in the structured format.
    pub datacontenttype: Option<String>,
    /// `dataschema`: an absolute URI of the schema `data` follows.
    pub dataschema: Option<String>,
    /// `partitionkey` (Partitioning extension): the entity whose events must stay in order,
    /// such as an order id. Mapped to the Kafka record key as well as its own header.
    /// Non-empty when present.
    pub partitionkey: Option<String>,
    /// `traceparent` (Distributed Tracing extension): the trace the event was produced in.
    pub traceparent: Option<TraceParent>,
    /// `tracestate`: vendor trace data that travels with `traceparent`, kept opaque.
    pub tracestate: Option<String>,
    /// `correlationid`: the id of the first event of the conversation this one belongs to,
    /// so every event of one business flow can be found by one id. Non-empty when present.
    pub correlationid: Option<String>,
    /// `causationid`: the id of the event that directly caused this one. Non-empty when
    /// present.
    pub causationid: Option<String>,
    /// Every other extension attribute, by name, as canonical strings, so attributes Keel does
    /// not know survive a trip through it. Names follow the CloudEvents naming rule and may not
    /// reuse the name of a field above; typed events keep their schema version here under
    /// `schemaversion`.
    pub extensions: BTreeMap<String, String>,
    /// The event payload as bytes, encoded as `datacontenttype` says. `None` is "no data",
    /// which is distinct from empty data (in binary mode `None` is a record with no value).
    pub data: Option<Vec<u8>>,
}

impl Event {
    /// A new event that happened now: a fresh UUIDv7 id, `time` set to the current time, no
    /// data. `source` and `ty` are checked by [`Event::validate`], not here, so building stays
    /// infallible.
    pub fn new(source: impl Into<String>, ty: impl Into<String>) -> Event {
        Event {
            id: new_id(),
            source: source.into(),
            ty: ty.into(),
            time: Some(Utc::now()),
            subject: None,
            datacontenttype: None,
            dataschema: None,
            partitionkey: None,
            traceparent: None,
            tracestate: None,
            correlationid: None,
            causationid: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// Replaces the generated id, for producers that derive ids deterministically (an outbox
    /// row id) so a retried publish is recognisably the same event.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Event {
        self.id = id.into();
        self
    }

    /// Sets `time`, for events that record an occurrence from the past or for tests that
    /// need a fixed clock; `None` removes it.
    #[must_use]
    pub fn with_time(mut self, time: Option<DateTime<Utc>>) -> Event {
        self.time = time;
        self
    }

    /// Sets `subject`.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Event {
        self.subject = Some(subject.into());
        self
    }

    /// Sets `data` to `value` as compact JSON and `datacontenttype` to `application/json`.
    #[must_use]
    pub fn with_data_json(self, value: &serde_json::Value) -> Event {
        self.with_data(JSON_MEDIA_TYPE, value.to_string().into_bytes())
    }

    /// Sets `data` to bytes of the given media type.
    #[must_use]
    pub fn with_data(mut self, content_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Event {
        self.datacontenttype = Some(content_type.into());
        self.data = Some(data.into());
        self
    }

    /// Sets `dataschema`.
    #[must_use]
    pub fn with_dataschema(mut self, dataschema: impl Into<String>) -> Event {
        self.dataschema = Some(dataschema.into());
        self
    }

    /// Sets `partitionkey`, which becomes the Kafka record key: events with the same key stay
    /// in order, events with different keys are processed in parallel.
    #[must_use]
    pub fn with_partition_key(mut self, key: impl Into<String>) -> Event {
        self.partitionkey = Some(key.into());
        self
    }

    /// Sets `traceparent`.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: TraceParent) -> Event {
        self.traceparent = Some(traceparent);
        self
    }

    /// Sets `tracestate`.
    #[must_use]
    pub fn with_tracestate(mut self, tracestate: impl Into<String>) -> Event {
        self.tracestate = Some(tracestate.into());
        self
    }

    /// Sets `correlationid`.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Event {
        self.correlationid = Some(id.into());
        self
    }

    /// Sets `causationid`.
    #[must_use]
    pub fn with_causation_id(mut self, id: impl Into<String>) -> Event {
        self.causationid = Some(id.into());
        self
    }

    /// Adds an extension attribute. The name is checked by [`Event::validate`].
    #[must_use]
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Event {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// Marks this event as caused by `cause`, so the chain of events can be followed across
    /// services: `causationid` becomes the cause's id; `correlationid` the cause's
    /// correlation id, or its id when the cause started the conversation; `traceparent` a
    /// child of the cause's, with its `tracestate`. A cause without a trace leaves this
    /// event's trace context as it was.
    #[must_use]
    pub fn caused_by(mut self, cause: &Event) -> Event {
        self.causationid = Some(cause.id.clone());
        self.correlationid = Some(
            cause
                .correlationid
                .clone()
                .unwrap_or_else(|| cause.id.clone()),
        );
        if let Some(parent) = &cause.traceparent {
            self.traceparent = Some(parent.child());
            self.tracestate = cause.tracestate.clone();
        }
        self
    }

    /// Checks every rule CloudEvents 1.0.2 and its extensions put on the attributes. Decoders
    /// call this on everything they return; producers should call it before publishing,
    /// because encoding is infallible and will faithfully carry an invalid event.
    ///
    /// `time` and `data` have no rules beyond their types. `tracestate` is checked only as a
    /// CloudEvents string: it belongs to the tracing vendors, and a consumer must not drop an
    /// event over a vendor's formatting.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        check_non_empty("id", &self.id)?;
        check_uri_reference("source", &self.source)?;
        check_non_empty("type", &self.ty)?;
        if let Some(subject) = &self.subject {
            check_non_empty("subject", subject)?;
        }
        if let Some(content_type) = &self.datacontenttype {
            check_media_type("datacontenttype", content_type)?;
        }
        if let Some(dataschema) = &self.dataschema {
            check_uri("dataschema", dataschema)?;
        }
        if let Some(key) = &self.partitionkey {
            check_non_empty("partitionkey", key)?;
        }
        if let Some(traceparent) = &self.traceparent
            && !traceparent.is_valid()
        {
            return Err(EnvelopeError::invalid(
                "traceparent",
                "the trace id and parent id must not be all zeros",
            ));
        }
        if let Some(tracestate) = &self.tracestate {
            check_string("tracestate", tracestate)?;
        }
        if let Some(id) = &self.correlationid {
            check_non_empty("correlationid", id)?;
        }
        if let Some(id) = &self.causationid {
            check_non_empty("causationid", id)?;
        }
        for (name, value) in &self.extensions {
            check_extension_name(name)?;
            check_string(name, value)?;
        }
        Ok(())
    }
}

/// A new event id: a UUIDv7 in its hyphenated lowercase form, written into an array rather
/// than through the formatter (which cost ~500 instructions of every new event).
fn new_id() -> String {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}
