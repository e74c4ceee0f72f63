//! Property tests: any valid event survives binary mode, structured mode, and both as Kafka
//! records, unchanged; and decoding never panics on arbitrary headers or JSON.
//!
//! The generator covers every attribute, unknown extensions and all three kinds of data (JSON,
//! opaque bytes, none). JSON data is generated in its canonical form (sorted keys, compact),
//! because the structured format carries JSON as a value, not as bytes. Not here: hand-picked
//! wire shapes and malformed inputs (`envelope.rs`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_core::{EnvelopeError, Event, TraceParent};
use proptest::prelude::*;
use serde_json::Value;

/// Printable text with no control characters or noncharacters (proptest's `\PC` excludes both).
fn text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::char::any(), len).prop_map(|chars| {
        chars
            .into_iter()
            .filter(|c| !c.is_control() && !(0xFDD0..=0xFDEF).contains(&u32::from(*c)))
            .filter(|c| u32::from(*c) & 0xFFFE != 0xFFFE)
            .collect()
    })
}

fn non_empty_text() -> impl Strategy<Value = String> {
    text(1..=16).prop_map(|s| if s.is_empty() { "x".to_owned() } else { s })
}

/// Whole seconds, milliseconds, microseconds and nanoseconds, which print with 0, 3, 6 and 9
/// fractional digits.
fn nanos() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        (1u32..1_000).prop_map(|millis| millis * 1_000_000),
        (1u32..1_000_000).prop_map(|micros| micros * 1_000),
        0u32..1_000_000_000,
    ]
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, nanos())
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

fn traceparent() -> impl Strategy<Value = TraceParent> {
    (any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>()).prop_map(
        |(mut trace_id, mut parent_id, flags)| {
            trace_id[15] |= 1;
            parent_id[7] |= 1;
            TraceParent {
                trace_id,
                parent_id,
                flags,
            }
        },
    )
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text(0..=8).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `(datacontenttype, data)`: none, JSON, opaque bytes, or a media type without data.
fn content() -> impl Strategy<Value = (Option<String>, Option<Vec<u8>>)> {
    prop_oneof![
        Just((None, None)),
        json_value().prop_map(|v| (
            Some("application/json".to_owned()),
            Some(v.to_string().into_bytes())
        )),
        json_value().prop_map(|v| (
            Some("application/vnd.keel+json; charset=utf-8".to_owned()),
            Some(v.to_string().into_bytes())
        )),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| (Some("application/octet-stream".to_owned()), Some(bytes))),
        text(0..=16).prop_map(|t| (
            Some("text/plain; charset=\"utf-8\"".to_owned()),
            Some(t.into_bytes())
        )),
        Just((Some("application/xml".to_owned()), None)),
    ]
}

fn extensions() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-z0-9]{1,24}", text(0..=12), 0..4).prop_map(|mut map| {
        map.retain(|name, _| {
            ![
                "id",
                "source",
                "type",
                "specversion",
                "time",
                "subject",
                "datacontenttype",
                "dataschema",
                "partitionkey",
                "traceparent",
                "tracestate",
                "correlationid",
                "causationid",
                "data",
            ]
            .contains(&name.as_str())
        });
        map
    })
}

prop_compose! {
    fn event()(
        id in non_empty_text(),
        source in "(/[a-z0-9%-]{0,8}){1,3}|urn:[a-z]{1,5}:[a-zA-Z0-9._~!$&'()*+,;=:@-]{1,12}|https://[a-z]{1,8}\\.example/[a-z]{0,8}\\?[a-z]=[0-9]{1,3}",
        ty in "[a-z]{1,8}(\\.[a-z0-9_]{1,8}){0,3}",
        time in proptest::option::of(time()),
        subject in proptest::option::of(non_empty_text()),
        dataschema in proptest::option::of("https://schemas\\.example/[a-z]{1,8}(#/[a-z]{1,4})?"),
        partitionkey in proptest::option::of(non_empty_text()),
        traceparent in proptest::option::of(traceparent()),
        tracestate in proptest::option::of("[a-z]{1,8}=[a-z0-9]{1,16}(,[a-z]{1,8}=[a-z0-9]{1,16}){0,2}"),
        correlationid in proptest::option::of(non_empty_text()),
        causationid in proptest::option::of(non_empty_text()),
        extensions in extensions(),
        (datacontenttype, data) in content(),
    ) -> Event {
        // A `%` from the source pattern must start a valid escape.
        let source = source.replace('%', "%2F");
        Event {
            id, source, ty, time, subject, datacontenttype, dataschema, partitionkey, traceparent,
            tracestate, correlationid, causationid, extensions, data,
        }
    }
}

fn headers_of(record: &keel_core::BinaryEvent) -> Vec<(&str, Option<&[u8]>)> {
    record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_events_round_trip_through_every_mode(event in event()) {
        prop_assert_eq!(event.validate(), Ok(()));

        let record = event.to_binary();
        let binary = Event::from_binary(record.key.as_deref(), headers_of(&record), record.value.as_deref());
        prop_assert_eq!(binary.as_ref(), Ok(&event));
        let binary_record = Event::from_record(record.key.as_deref(), headers_of(&record), record.value.as_deref());
        prop_assert_eq!(binary_record.as_ref(), Ok(&event));

        let json = serde_json::to_vec(&event.to_structured_json()).unwrap();
        let structured = Event::from_structured_json(&json);
        prop_assert_eq!(structured.as_ref(), Ok(&event));
        let record = event.to_structured_record();
        let structured_record = Event::from_record(record.key.as_deref(), headers_of(&record), record.value.as_deref());
        prop_assert_eq!(structured_record.as_ref(), Ok(&event));
    }

    /// The record forms are built in one walk with the values in one buffer; their bytes are
    /// those of the encoder before them, which formatted each `ce_` name and copied each
    /// value on its own (`headers_one_by_one`), and the record's parts are the binary form's.
    #[test]
    fn record_forms_match_the_header_by_header_encoder(event in event()) {
        let binary = event.to_binary();
        prop_assert_eq!(&binary.headers, &headers_one_by_one(&event));
        prop_assert_eq!(binary.key.as_deref(), event.partitionkey.as_deref().map(str::as_bytes));
        prop_assert_eq!(&binary.value, &event.data);

        let header = |(key, value): &(String, Vec<u8>)| {
            keel_core::Header::new(key.clone(), Some(value.clone().into()))
        };
        let record = event.to_record();
        prop_assert_eq!(record.key.as_deref(), binary.key.as_deref());
        prop_assert_eq!(record.value.as_deref(), binary.value.as_deref());
        prop_assert_eq!(&record.headers, &binary.headers.iter().map(header).collect::<Vec<_>>());
        prop_assert_eq!(record.timestamp_ms, event.time.map(|t| t.timestamp_millis()));

        let keyed = event.to_record_with(Some(b"stream-1"), &[("keel_stream_version", b"42")]);
        prop_assert_eq!(keyed.key.as_deref(), Some(&b"stream-1"[..]));
        prop_assert_eq!(&keyed.headers[..record.headers.len()], &record.headers[..]);
        prop_assert_eq!(&keyed.headers[record.headers.len()..], &[keel_core::Header::new(
            "keel_stream_version",
            Some(b"42".to_vec().into()),
        )]);
        prop_assert_eq!(keyed.value, record.value);
    }

    /// `ce_time` is written digit by digit for the years 0 to 9999 and by chrono for the
    /// rest and for leap seconds; either way it is chrono's RFC 3339 text.
    #[test]
    fn times_of_any_year_print_as_chrono_prints_them(
        secs in -70_000_000_000i64..350_000_000_000,
        nanos in nanos(),
        leap in any::<bool>(),
    ) {
        let (secs, nanos) = if leap { (secs - secs.rem_euclid(60) + 59, nanos % 1_000_000_000 + 1_000_000_000) } else { (secs, nanos) };
        let time = DateTime::from_timestamp(secs, nanos).unwrap();
        let event = Event::new("/t", "t.happened").with_time(Some(time));
        let expected = time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let binary = event.to_binary();
        prop_assert_eq!(binary.header("ce_time"), Some(expected.as_bytes()));
    }

    #[test]
    fn arbitrary_headers_never_panic(
        headers in proptest::collection::vec(
            (
                prop_oneof!["ce_[a-z]{1,12}", "ce_.{0,6}", "content-type", ".{0,8}"],
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)),
            ),
            0..10,
        ),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)),
    ) {
        let headers: Vec<(&str, Option<&[u8]>)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
        let result = Event::from_record(None, headers, value.as_deref());
        check_message(result)?;
    }

    #[test]
    fn arbitrary_json_never_panics(object in proptest::collection::btree_map(
        prop_oneof![
            Just("specversion".to_owned()), Just("id".to_owned()), Just("source".to_owned()),
            Just("type".to_owned()), Just("time".to_owned()), Just("data".to_owned()),
            Just("data_base64".to_owned()), "[a-zA-Z0-9_]{0,6}",
        ],
        json_value(),
        0..8,
    )) {
        let bytes = serde_json::to_vec(&object).unwrap();
        check_message(Event::from_structured_json(&bytes))?;
    }
}

/// Binary mode's headers as the first encoder wrote them: each name formatted from the
/// attribute's, each value copied alone, in the binding's order.
fn headers_one_by_one(event: &Event) -> Vec<(String, Vec<u8>)> {
    let mut headers = Vec::new();
    let mut push = |name: &str, value: &str| {
        headers.push((format!("ce_{name}"), value.as_bytes().to_vec()));
    };
    push("specversion", "1.0");
    push("id", &event.id);
    push("source", &event.source);
    push("type", &event.ty);
    if let Some(time) = &event.time {
        push(
            "time",
            &time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
    }
    let traceparent = event.traceparent.map(|t| {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        format!(
            "00-{}-{}-{:02x}",
            hex(&t.trace_id),
            hex(&t.parent_id),
            t.flags
        )
    });
    let optional = [
        ("subject", event.subject.as_deref()),
        ("dataschema", event.dataschema.as_deref()),
        ("partitionkey", event.partitionkey.as_deref()),
        ("traceparent", traceparent.as_deref()),
        ("tracestate", event.tracestate.as_deref()),
        ("correlationid", event.correlationid.as_deref()),
        ("causationid", event.causationid.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            push(name, value);
        }
    }
    for (name, value) in &event.extensions {
        push(name, value);
    }
    if let Some(content_type) = &event.datacontenttype {
        headers.push(("content-type".to_owned(), content_type.as_bytes().to_vec()));
    }
    headers
}

/// A rejection is one line; an acceptance is a valid event.
fn check_message(result: Result<Event, EnvelopeError>) -> Result<(), TestCaseError> {
    match result {
        Ok(event) => prop_assert_eq!(event.validate(), Ok(())),
        Err(error) => prop_assert!(!error.to_string().contains('\n'), "{error}"),
    }
    Ok(())
}
