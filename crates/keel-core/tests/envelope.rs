//! Tests of the envelope at its boundary: events through Kafka binary mode and the JSON
//! structured format and back, the exact wire shapes the CloudEvents specs show, and a table
//! of malformed inputs that must be rejected with the attribute named.
//!
//! Not here: typed payloads (`typed.rs`), `traceparent` parsing (`trace.rs`), random events
//! (`round_trip_properties.rs`).

use chrono::{DateTime, TimeZone, Utc};
use keel_core::{EnvelopeError, Event, TraceParent};
use serde_json::json;

/// An event with every attribute Keel knows, two unknown extensions and JSON data.
fn full_event() -> Event {
    Event::new("https://example.com/orders", "com.example.order.placed")
        .with_id("0190b5a4-5d6e-7f00-8000-000000000001")
        .with_time(Some(
            Utc.with_ymd_and_hms(2018, 4, 5, 17, 31, 0).unwrap()
                + chrono::Duration::nanoseconds(123_456_789),
        ))
        .with_subject("order/7")
        .with_data_json(&json!({"order_id": "o-7", "total_cents": 4197, "lines": [1, 2]}))
        .with_dataschema("https://schemas.example.com/order-placed/v1.json")
        .with_partition_key("o-7")
        .with_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        )
        .with_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        .with_correlation_id("c-1")
        .with_causation_id("e-0")
        .with_extension("comexampleextension1", "value")
        .with_extension("schemaversion", "3")
}

/// An event with only the REQUIRED attributes.
fn minimal_event() -> Event {
    Event::new("/orders", "com.example.order.placed")
        .with_id("1")
        .with_time(None)
}

/// One trip out to a wire form and back.
type RoundTrip = fn(&Event) -> Result<Event, EnvelopeError>;

fn via_binary(event: &Event) -> Result<Event, EnvelopeError> {
    let record = event.to_binary();
    let headers = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())));
    Event::from_binary(record.key.as_deref(), headers, record.value.as_deref())
}

fn via_structured(event: &Event) -> Result<Event, EnvelopeError> {
    Event::from_structured_json(event.to_structured_json().to_string().as_bytes())
}

fn via_structured_record(event: &Event) -> Result<Event, EnvelopeError> {
    let record = event.to_structured_record();
    let headers = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())));
    Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
}

fn via_binary_record(event: &Event) -> Result<Event, EnvelopeError> {
    let record = event.to_binary();
    let headers = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())));
    Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
}

#[test]
fn round_trips_through_every_mode() {
    let with_binary_data = minimal_event().with_data("application/octet-stream", vec![0, 255, 1]);
    let with_text_data = minimal_event().with_data("text/plain; charset=utf-8", "héllo");
    let with_empty_data = minimal_event().with_data("application/octet-stream", Vec::new());
    let with_type_but_no_data = Event {
        datacontenttype: Some("application/xml".to_owned()),
        ..minimal_event()
    };
    let with_bad_json = minimal_event().with_data("application/json", "{not json");
    let with_json_null = minimal_event().with_data("application/problem+json", "null");
    let events = [
        ("full", full_event()),
        ("minimal", minimal_event()),
        ("binary data", with_binary_data),
        ("text data", with_text_data),
        ("empty data", with_empty_data),
        ("content type without data", with_type_but_no_data),
        ("data that claims JSON but is not", with_bad_json),
        ("JSON null data", with_json_null),
    ];
    let modes: [(&str, RoundTrip); 4] = [
        ("binary", via_binary),
        ("structured", via_structured),
        ("structured record", via_structured_record),
        ("binary record", via_binary_record),
    ];
    for (name, event) in &events {
        event.validate().unwrap();
        for (mode, round_trip) in modes {
            assert_eq!(round_trip(event).as_ref(), Ok(event), "{name} via {mode}");
        }
    }
}

#[test]
fn binary_mode_matches_the_kafka_binding() {
    let record = full_event().to_binary();
    let headers: Vec<(&str, &str)> = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), std::str::from_utf8(value).unwrap()))
        .collect();
    assert_eq!(
        headers,
        [
            ("ce_specversion", "1.0"),
            ("ce_id", "0190b5a4-5d6e-7f00-8000-000000000001"),
            ("ce_source", "https://example.com/orders"),
            ("ce_type", "com.example.order.placed"),
            ("ce_time", "2018-04-05T17:31:00.123456789Z"),
            ("ce_subject", "order/7"),
            (
                "ce_dataschema",
                "https://schemas.example.com/order-placed/v1.json"
            ),
            ("ce_partitionkey", "o-7"),
            (
                "ce_traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ),
            ("ce_tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ("ce_correlationid", "c-1"),
            ("ce_causationid", "e-0"),
            ("ce_comexampleextension1", "value"),
            ("ce_schemaversion", "3"),
            ("content-type", "application/json"),
        ]
    );
    assert_eq!(record.key.as_deref(), Some(&b"o-7"[..]));
    assert_eq!(
        record.value.as_deref(),
        Some(&br#"{"lines":[1,2],"order_id":"o-7","total_cents":4197}"#[..])
    );
}

#[test]
fn binary_mode_without_data_is_a_record_without_value() {
    let record = minimal_event().to_binary();
    assert_eq!(record.value, None);
    assert_eq!(record.key, None);
    assert_eq!(record.header("content-type"), None);
    let empty = minimal_event().with_data("application/octet-stream", Vec::new());
    assert_eq!(empty.to_binary().value, Some(Vec::new()));
}

#[test]
fn binary_mode_reads_the_binding_example_and_ignores_foreign_headers() {
    let headers: [(&str, Option<&[u8]>); 8] = [
        ("ce_specversion", Some(b"1.0")),
        ("ce_type", Some(b"com.example.someevent")),
        ("ce_source", Some(b"/mycontext/subcontext")),
        ("ce_id", Some(b"1234-1234-1234")),
        ("ce_time", Some(b"2018-04-05T03:56:24Z")),
        ("Content-Type", Some(b"application/avro")),
        ("x-app-header", Some(&[0xff, 0xfe])),
        ("traceparent", None),
    ];
    let event = Event::from_binary(Some(b"mykey"), headers, Some(&[1, 2, 3])).unwrap();
    assert_eq!(event.id, "1234-1234-1234");
    assert_eq!(event.source, "/mycontext/subcontext");
    assert_eq!(event.ty, "com.example.someevent");
    assert_eq!(
        event.time,
        Some(Utc.with_ymd_and_hms(2018, 4, 5, 3, 56, 24).unwrap())
    );
    assert_eq!(event.datacontenttype.as_deref(), Some("application/avro"));
    assert_eq!(event.data.as_deref(), Some(&[1, 2, 3][..]));
    assert!(event.extensions.is_empty());
    // The binding forbids a key mapper to add attributes: the key stays the transport's.
    assert_eq!(event.partitionkey, None);
}

#[test]
fn time_offsets_are_read_as_utc() {
    let headers: [(&str, Option<&[u8]>); 5] = [
        ("ce_specversion", Some(b"1.0")),
        ("ce_type", Some(b"t")),
        ("ce_source", Some(b"/s")),
        ("ce_id", Some(b"1")),
        ("ce_time", Some(b"2018-04-05T19:31:00+02:00")),
    ];
    let event = Event::from_binary(None, headers, None).unwrap();
    let expected: DateTime<Utc> = Utc.with_ymd_and_hms(2018, 4, 5, 17, 31, 0).unwrap();
    assert_eq!(event.time, Some(expected));
}

#[test]
fn structured_mode_matches_the_json_format() {
    assert_eq!(
        full_event().to_structured_json(),
        json!({
            "specversion": "1.0",
            "id": "0190b5a4-5d6e-7f00-8000-000000000001",
            "source": "https://example.com/orders",
            "type": "com.example.order.placed",
            "time": "2018-04-05T17:31:00.123456789Z",
            "subject": "order/7",
            "datacontenttype": "application/json",
            "dataschema": "https://schemas.example.com/order-placed/v1.json",
            "partitionkey": "o-7",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            "correlationid": "c-1",
            "causationid": "e-0",
            "comexampleextension1": "value",
            "schemaversion": 3,
            "data": {"order_id": "o-7", "total_cents": 4197, "lines": [1, 2]},
        })
    );
    let binary = minimal_event().with_data("application/octet-stream", vec![0, 255, 1]);
    let json = binary.to_structured_json();
    assert_eq!(json["data_base64"], "AP8B");
    assert_eq!(json.get("data"), None);

    let record = full_event().to_structured_record();
    assert_eq!(
        record.header("content-type"),
        Some(&b"application/cloudevents+json; charset=UTF-8"[..])
    );
    assert_eq!(record.key.as_deref(), Some(&b"o-7"[..]));
}

/// The examples of the JSON event format specification, section 3.2.
#[test]
fn structured_mode_reads_the_json_format_examples() {
    let xml = Event::from_structured_json(
        br#"{
            "specversion" : "1.0",
            "type" : "com.example.someevent",
            "source" : "/mycontext",
            "id" : "B234-1234-1234",
            "time" : "2018-04-05T17:31:00Z",
            "comexampleextension1" : "value",
            "comexampleothervalue" : 5,
            "unsetextension": null,
            "datacontenttype" : "application/xml",
            "data" : "<much wow=\"xml\"/>"
        }"#,
    )
    .unwrap();
    assert_eq!(xml.data.as_deref(), Some(&br#"<much wow="xml"/>"#[..]));
    assert_eq!(xml.extensions["comexampleothervalue"], "5");
    assert!(!xml.extensions.contains_key("unsetextension"));
    // Binary mode carries the same string, as the specification's re-encoding shows.
    assert_eq!(
        xml.to_binary().header("ce_comexampleothervalue"),
        Some(&b"5"[..])
    );

    let string = Event::from_structured_json(
        br#"{
            "specversion" : "1.0",
            "type" : "com.example.someevent",
            "source" : "/mycontext",
            "subject": null,
            "id" : "D234-1234-1234",
            "time" : "2018-04-05T17:31:00Z",
            "data" : "I'm just a string"
        }"#,
    )
    .unwrap();
    assert_eq!(string.subject, None);
    // No datacontenttype means JSON, made explicit for the next hop; the string stays quoted.
    let record = string.to_binary();
    assert_eq!(
        record.header("content-type"),
        Some(&b"application/json"[..])
    );
    assert_eq!(
        record.value.as_deref(),
        Some(&br#""I'm just a string""#[..])
    );

    let base64 = Event::from_structured_json(
        br#"{"specversion":"1.0","type":"t","source":"/s","id":"1","data_base64":"Zm9vYmFy"}"#,
    )
    .unwrap();
    assert_eq!(base64.data.as_deref(), Some(&b"foobar"[..]));
    assert_eq!(base64.datacontenttype, None);
}

#[test]
fn from_record_picks_the_content_mode() {
    let event = full_event();
    let json = event.to_structured_json().to_string();
    let shouting: [(&str, Option<&[u8]>); 1] = [(
        "content-type",
        Some(b"Application/CloudEvents+JSON; charset=utf-8"),
    )];
    assert_eq!(
        Event::from_record(None, shouting, Some(json.as_bytes())),
        Ok(event)
    );
    let avro: [(&str, Option<&[u8]>); 1] =
        [("content-type", Some(b"application/cloudevents+avro"))];
    let error = Event::from_record(None, avro, Some(b"...")).unwrap_err();
    assert_eq!(error.attribute(), Some("datacontenttype"));
}

#[test]
fn unknown_extensions_round_trip() {
    let event = minimal_event()
        .with_extension("comexampleextension1", "value")
        .with_extension("a1", "")
        .with_extension("ext", "ünïcödé and spaces")
        .with_extension(
            "averyveryverylongextensionname",
            "longer than 20 is a SHOULD",
        );
    assert_eq!(via_binary(&event), Ok(event.clone()));
    assert_eq!(via_structured(&event), Ok(event.clone()));
}

#[test]
fn caused_by_carries_the_conversation_and_the_trace() {
    let root = full_event().with_correlation_id("conversation");
    let reaction = Event::new("/payments", "com.example.payment.requested").caused_by(&root);
    assert_eq!(reaction.causationid.as_deref(), Some(root.id.as_str()));
    assert_eq!(reaction.correlationid.as_deref(), Some("conversation"));
    let (parent, child) = (root.traceparent.unwrap(), reaction.traceparent.unwrap());
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.parent_id, parent.parent_id);
    assert_eq!(reaction.tracestate, root.tracestate);

    let first = minimal_event();
    let reaction = Event::new("/payments", "t").caused_by(&first);
    assert_eq!(reaction.correlationid.as_deref(), Some("1"));
    assert_eq!(reaction.traceparent, None);
}

#[test]
fn new_events_are_valid_and_distinct() {
    let (a, b) = (Event::new("/s", "t"), Event::new("/s", "t"));
    a.validate().unwrap();
    assert_ne!(a.id, b.id);
    assert!(a.id < b.id, "UUIDv7 ids sort by creation time");
    let id = uuid::Uuid::parse_str(&a.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(
        a.id,
        id.to_string(),
        "the id is the UUID's hyphenated lowercase text"
    );
    assert!(a.time.is_some());
}

/// What the error for a malformed input must say.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Missing(&'static str),
    Invalid(&'static str),
    UnsupportedSpecVersion,
    NotJson,
}

/// One malformed input, decoded, must be rejected as `expect` says, with a one-line message
/// that quotes the attribute name.
fn check(case: &str, result: Result<Event, EnvelopeError>, expect: Expect) {
    let error = match result {
        Ok(event) => panic!("{case}: accepted {event:?}"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        !message.contains('\n'),
        "{case}: multi-line message {message:?}"
    );
    let attribute = match (expect, &error) {
        (Expect::Missing(name), EnvelopeError::MissingAttribute { attribute }) => {
            assert_eq!(*attribute, name, "{case}");
            name
        }
        (Expect::Invalid(name), EnvelopeError::InvalidAttribute { attribute, .. }) => {
            assert_eq!(attribute, name, "{case}: {message}");
            name
        }
        (Expect::UnsupportedSpecVersion, EnvelopeError::UnsupportedSpecVersion { .. }) => {
            "specversion"
        }
        (Expect::NotJson, EnvelopeError::NotJson { .. }) => {
            assert_eq!(error.attribute(), None, "{case}");
            return;
        }
        _ => panic!("{case}: expected {expect:?}, got {error:?}"),
    };
    assert_eq!(error.attribute(), Some(attribute), "{case}");
    assert!(
        message.contains(&format!("'{attribute}'")),
        "{case}: {message:?} does not name '{attribute}'"
    );
}

/// A change to the headers of a valid minimal binary-mode event.
#[derive(Clone, Copy)]
enum Edit<'a> {
    /// Remove the header.
    Drop(&'a str),
    /// Add the header, replacing one of the same name.
    Set(&'a str, &'a [u8]),
    /// Add the header with no value (Kafka allows a null header value).
    NoValue(&'a str),
}

/// Decodes the headers of a valid minimal event, changed by `edits`, in binary mode.
fn binary_with(edits: &[Edit<'_>]) -> Result<Event, EnvelopeError> {
    let mut headers: Vec<(&str, Option<&[u8]>)> = vec![
        ("ce_specversion", Some(b"1.0")),
        ("ce_id", Some(b"1")),
        ("ce_source", Some(b"/s")),
        ("ce_type", Some(b"t")),
    ];
    for edit in edits {
        let (Edit::Drop(name) | Edit::Set(name, _) | Edit::NoValue(name)) = *edit;
        headers.retain(|(header, _)| *header != name);
    }
    for edit in edits {
        match *edit {
            Edit::Drop(_) => {}
            Edit::Set(name, value) => headers.push((name, Some(value))),
            Edit::NoValue(name) => headers.push((name, None)),
        }
    }
    Event::from_binary(None, headers, None)
}

#[test]
#[rustfmt::skip] // A table: one case a line reads better than rustfmt's wrapping.
fn malformed_binary_events_are_rejected_naming_the_attribute() {
    use Edit::*;
    use Expect::*;
    let b = |case: &str, edits: &[Edit<'_>], expect| check(case, binary_with(edits), expect);
    b("no id", &[Drop("ce_id")], Missing("id"));
    b("no source", &[Drop("ce_source")], Missing("source"));
    b("no type", &[Drop("ce_type")], Missing("type"));
    b("no specversion", &[Drop("ce_specversion")], Missing("specversion"));
    b("specversion 0.3", &[Set("ce_specversion", b"0.3")], UnsupportedSpecVersion);
    b("specversion 2.0", &[Set("ce_specversion", b"2.0")], UnsupportedSpecVersion);
    b("specversion 1", &[Set("ce_specversion", b"1")], UnsupportedSpecVersion);
    b("time not a date", &[Set("ce_time", b"yesterday")], Invalid("time"));
    b("time month 13", &[Set("ce_time", b"2024-13-01T00:00:00Z")], Invalid("time"));
    b("time no offset", &[Set("ce_time", b"2024-01-01T00:00:00")], Invalid("time"));
    b("time empty", &[Set("ce_time", b"")], Invalid("time"));
    b("traceparent garbage", &[Set("ce_traceparent", b"garbage")], Invalid("traceparent"));
    let zero_trace = b"00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    b("traceparent zero", &[Set("ce_traceparent", zero_trace)], Invalid("traceparent"));
    b("extension name uppercase", &[Set("ce_Foo", b"x")], Invalid("Foo"));
    b("extension name with dash", &[Set("ce_foo-bar", b"x")], Invalid("foo-bar"));
    b("extension name empty", &[Set("ce_", b"x")], Invalid(""));
    b("extension named data", &[Set("ce_data", b"x")], Invalid("data"));
    b("subject not UTF-8", &[Set("ce_subject", &[0x61, 0xff])], Invalid("subject"));
    b("extension not UTF-8", &[Set("ce_ext", &[0xc3])], Invalid("ext"));
    b("id without value", &[NoValue("ce_id")], Invalid("id"));
    b("id empty", &[Set("ce_id", b"")], Invalid("id"));
    b("id twice", &[Set("ce_id", b"1"), Set("ce_id", b"2")], Invalid("id"));
    b("source empty", &[Set("ce_source", b"")], Invalid("source"));
    b("source with space", &[Set("ce_source", b"/my source")], Invalid("source"));
    b("source bad escape", &[Set("ce_source", b"/a%2")], Invalid("source"));
    b("source bad scheme", &[Set("ce_source", b"1:2")], Invalid("source"));
    b("type empty", &[Set("ce_type", b"")], Invalid("type"));
    b("subject empty", &[Set("ce_subject", b"")], Invalid("subject"));
    b("subject newline", &[Set("ce_subject", b"a\nb")], Invalid("subject"));
    let nonchar = "a\u{fffe}".as_bytes();
    b("subject noncharacter", &[Set("ce_subject", nonchar)], Invalid("subject"));
    b("dataschema relative", &[Set("ce_dataschema", b"/s/1")], Invalid("dataschema"));
    let datacontenttype = Invalid("datacontenttype");
    b("content-type no subtype", &[Set("content-type", b"json")], datacontenttype);
    b("content-type space", &[Set("content-type", b"text/ plain")], datacontenttype);
    b("content-type bad parameter", &[Set("content-type", b"text/plain; cs")], datacontenttype);
    b("ce_datacontenttype", &[Set("ce_datacontenttype", b"text/plain")], datacontenttype);
    b("partitionkey empty", &[Set("ce_partitionkey", b"")], Invalid("partitionkey"));
    b("correlationid empty", &[Set("ce_correlationid", b"")], Invalid("correlationid"));
    b("causationid empty", &[Set("ce_causationid", b"")], Invalid("causationid"));
    b("tracestate control", &[Set("ce_tracestate", b"a=\x01")], Invalid("tracestate"));
}

#[test]
#[rustfmt::skip] // A table: one case a line reads better than rustfmt's wrapping.
fn malformed_structured_events_are_rejected_naming_the_attribute() {
    use Expect::*;
    let valid = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
    // Decodes the valid minimal event with the members of `overrides` replaced or added.
    let s = |case: &str, overrides: serde_json::Value, expect| {
        let mut object = valid.as_object().unwrap().clone();
        object.extend(overrides.as_object().unwrap().clone());
        let bytes = serde_json::to_vec(&object).unwrap();
        check(case, Event::from_structured_json(&bytes), expect);
    };
    s("no id", json!({"id": null}), Missing("id"));
    s("no source", json!({"source": null}), Missing("source"));
    s("no type", json!({"type": null}), Missing("type"));
    s("no specversion", json!({"specversion": null}), Missing("specversion"));
    s("specversion 0.3", json!({"specversion": "0.3"}), UnsupportedSpecVersion);
    s("specversion 2.0", json!({"specversion": "2.0"}), UnsupportedSpecVersion);
    s("specversion a number", json!({"specversion": 1.0}), Invalid("specversion"));
    s("time a date only", json!({"time": "2018-04-05"}), Invalid("time"));
    s("time a number", json!({"time": 1_522_949_460}), Invalid("time"));
    s("id a number", json!({"id": 5}), Invalid("id"));
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    s("traceparent uppercase", json!({"traceparent": upper}), Invalid("traceparent"));
    s("name uppercase", json!({"Foo": "x"}), Invalid("Foo"));
    s("name with underscore", json!({"foo_bar": "x"}), Invalid("foo_bar"));
    s("extension a fraction", json!({"ext": 1.5}), Invalid("ext"));
    s("extension beyond 32 bits", json!({"ext": 3_000_000_000_u64}), Invalid("ext"));
    s("extension an object", json!({"ext": {}}), Invalid("ext"));
    s("extension an array", json!({"ext": ["a"]}), Invalid("ext"));
    s("data and data_base64", json!({"data": 1, "data_base64": "AA=="}), Invalid("data"));
    s("data_base64 not base64", json!({"data_base64": "!!!!"}), Invalid("data_base64"));
    s("data_base64 unpadded", json!({"data_base64": "Zg"}), Invalid("data_base64"));
    s("data_base64 a number", json!({"data_base64": 7}), Invalid("data_base64"));
    let text_object = json!({"datacontenttype": "text/plain", "data": {"a": 1}});
    s("text data not a string", text_object, Invalid("data"));
    for (case, text) in [
        ("not JSON", "{"),
        ("an array", "[]"),
        ("a string", "\"1.0\""),
        ("empty", ""),
    ] {
        check(case, Event::from_structured_json(text.as_bytes()), NotJson);
    }
}

#[test]
#[rustfmt::skip] // A table: one case a line reads better than rustfmt's wrapping.
fn validate_rejects_hand_built_events_naming_the_attribute() {
    let zero_trace = TraceParent { trace_id: [0; 16], parent_id: [1; 8], flags: 1 };
    let v = |case: &str, event: Event, attribute| {
        check(case, event.validate().map(|()| event.clone()), Expect::Invalid(attribute));
    };
    v("extension name uppercase", minimal_event().with_extension("Bad", "x"), "Bad");
    v("extension shadows id", minimal_event().with_extension("id", "x"), "id");
    v("extension shadows partitionkey", minimal_event().with_extension("partitionkey", "x"), "partitionkey");
    v("extension value control", minimal_event().with_extension("ext", "a\u{7f}"), "ext");
    v("zero trace id", minimal_event().with_traceparent(zero_trace), "traceparent");
    v("source empty", Event::new("", "t"), "source");
    v("type empty", Event::new("/s", ""), "type");
    v("id empty", minimal_event().with_id(""), "id");
    v("dataschema not a URI", minimal_event().with_dataschema("not a uri"), "dataschema");
    v("datacontenttype empty", minimal_event().with_data("", "x"), "datacontenttype");
}
