//! Tests of typed events: what `from_typed` writes, and what `decode` accepts and refuses
//! (wrong type name, newer schema version, non-JSON data), with the attribute named.
//!
//! Not here: the wire modes themselves (`envelope.rs`).

use keel_core::{EnvelopeError, Event, EventType};
use serde::{Deserialize, Serialize};

/// Version 1 of an event: the first shape producers wrote.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OrderPlacedV1 {
    order_id: String,
}

impl EventType for OrderPlacedV1 {
    const TYPE: &'static str = "com.example.order.placed";
    const VERSION: u32 = 1;
}

/// Version 2 of the same event: one field added, with a default so version 1 still reads.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OrderPlacedV2 {
    order_id: String,
    #[serde(default)]
    total_cents: u64,
}

impl EventType for OrderPlacedV2 {
    const TYPE: &'static str = "com.example.order.placed";
    const VERSION: u32 = 2;
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PaymentFailed {
    order_id: String,
}

impl EventType for PaymentFailed {
    const TYPE: &'static str = "com.example.payment.failed";
    const VERSION: u32 = 1;
}

fn v1() -> Event {
    Event::from_typed(
        "/orders",
        &OrderPlacedV1 {
            order_id: "o-7".into(),
        },
    )
    .unwrap()
}

fn v2() -> Event {
    Event::from_typed(
        "/orders",
        &OrderPlacedV2 {
            order_id: "o-7".into(),
            total_cents: 4197,
        },
    )
    .unwrap()
}

#[test]
fn from_typed_declares_type_version_and_json() {
    let event = v2();
    assert_eq!(event.ty, "com.example.order.placed");
    assert_eq!(event.schema_version(), Some(2));
    assert_eq!(event.extensions["schemaversion"], "2");
    assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(
        event.data.as_deref(),
        Some(&br#"{"order_id":"o-7","total_cents":4197}"#[..])
    );
    assert_eq!(
        event.to_binary().header("ce_schemaversion"),
        Some(&b"2"[..])
    );
    let error = Event::from_typed(
        "",
        &PaymentFailed {
            order_id: "o".into(),
        },
    )
    .unwrap_err();
    assert_eq!(error.attribute(), Some("source"));
}

#[test]
fn decode_reads_the_same_and_older_versions() {
    assert_eq!(
        v2().decode::<OrderPlacedV2>(),
        Ok(OrderPlacedV2 {
            order_id: "o-7".into(),
            total_cents: 4197
        })
    );
    assert_eq!(
        v1().decode::<OrderPlacedV2>(),
        Ok(OrderPlacedV2 {
            order_id: "o-7".into(),
            total_cents: 0
        })
    );
    let mut unversioned = v1();
    unversioned.extensions.clear();
    assert_eq!(unversioned.schema_version(), None);
    assert_eq!(
        unversioned.decode::<OrderPlacedV1>(),
        Ok(OrderPlacedV1 {
            order_id: "o-7".into()
        })
    );
}

#[test]
fn decode_survives_both_wire_modes() {
    let event = v2();
    let record = event.to_binary();
    let headers = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())));
    let received =
        Event::from_binary(record.key.as_deref(), headers, record.value.as_deref()).unwrap();
    assert_eq!(
        received.decode::<OrderPlacedV2>().unwrap().total_cents,
        4197
    );
    let json = event.to_structured_json().to_string();
    let received = Event::from_structured_json(json.as_bytes()).unwrap();
    assert_eq!(
        received.decode::<OrderPlacedV2>().unwrap().total_cents,
        4197
    );
}

/// Which error variant a refused decode must give.
#[derive(Debug, Clone, Copy)]
enum Kind {
    WrongType,
    NewerSchemaVersion,
    InvalidAttribute,
    MissingData,
    Data,
}

/// `decode::<OrderPlacedV1>` of `event` must fail with `kind`, naming `attribute` in a
/// one-line message.
fn check(case: &str, event: Event, kind: Kind, attribute: &str) {
    let error = match event.decode::<OrderPlacedV1>() {
        Ok(decoded) => panic!("{case}: decoded {decoded:?}"),
        Err(error) => error,
    };
    let kind_matches = match kind {
        Kind::WrongType => matches!(error, EnvelopeError::WrongType { .. }),
        Kind::NewerSchemaVersion => matches!(error, EnvelopeError::NewerSchemaVersion { .. }),
        Kind::InvalidAttribute => matches!(error, EnvelopeError::InvalidAttribute { .. }),
        Kind::MissingData => matches!(error, EnvelopeError::MissingData { .. }),
        Kind::Data => matches!(error, EnvelopeError::Data { .. }),
    };
    assert!(kind_matches, "{case}: expected {kind:?}, got {error:?}");
    assert_eq!(error.attribute(), Some(attribute), "{case}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("'{attribute}'")) && !message.contains('\n'),
        "{case}: {message:?}"
    );
}

#[test]
#[rustfmt::skip] // A table: one case a line reads better than rustfmt's wrapping.
fn decode_refuses_what_the_type_cannot_promise_to_read() {
    use Kind::*;
    let payment = Event::from_typed("/payments", &PaymentFailed { order_id: "o".into() }).unwrap();
    let with_version = |text: &str| v1().with_extension("schemaversion", text);
    let other_shape = serde_json::json!({"id": 1});
    check("wrong type name", payment, WrongType, "type");
    check("newer version", v2(), NewerSchemaVersion, "schemaversion");
    check("version zero", with_version("0"), InvalidAttribute, "schemaversion");
    check("version not a number", with_version("two"), InvalidAttribute, "schemaversion");
    check("version with leading zero", with_version("01"), InvalidAttribute, "schemaversion");
    check("version with sign", with_version("+1"), InvalidAttribute, "schemaversion");
    check("version beyond u32", with_version("4294967296"), InvalidAttribute, "schemaversion");
    check("non-JSON media type", v1().with_data("text/plain", "{}"), InvalidAttribute, "datacontenttype");
    check("no data", Event { data: None, ..v1() }, MissingData, "data");
    check("data of another shape", v1().with_data_json(&other_shape), Data, "data");
    check("data not JSON", v1().with_data("application/json", "{"), Data, "data");
}

#[test]
fn errors_say_what_mismatched() {
    let payment = Event::from_typed(
        "/payments",
        &PaymentFailed {
            order_id: "o".into(),
        },
    );
    assert_eq!(
        payment.unwrap().decode::<OrderPlacedV1>(),
        Err(EnvelopeError::WrongType {
            expected: "com.example.order.placed",
            found: "com.example.payment.failed".to_owned()
        })
    );
    let newer = v2().decode::<OrderPlacedV1>().unwrap_err();
    assert_eq!(
        newer,
        EnvelopeError::NewerSchemaVersion {
            ty: "com.example.order.placed",
            found: 2,
            supported: 1
        }
    );
    assert_eq!(
        newer.to_string(),
        "CloudEvents attribute 'schemaversion' is 2, newer than version 1 of \
         \"com.example.order.placed\" that this build reads"
    );
}
