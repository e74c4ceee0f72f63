//! The Protobuf compatibility rules against Confluent Schema Registry's own test data: every
//! case of `protobuf-provider/src/test/resources/diff-schema-examples.json` (the
//! `SchemaDiffTest` table, as of confluentinc/schema-registry 794611bd) that needs no
//! metadata, references or dependencies — 46 pairs, kept as they are in
//! `fixtures/confluent-protobuf-diff-examples.json` (description, both schemas, Confluent's
//! list of changes and verdict),
//! original (registered first, the writer) → update (the reader), with Confluent's verdict
//! under `BACKWARD`; the same pair registered the other way round must give the same verdict
//! under `FORWARD`. Plus the codec and message indexes.

use std::sync::Arc;

use keel_core::Event;
use keel_log::Log;
use keel_schema::wire::{read_message_indexes, unframe, write_message_indexes};
use keel_schema::{
    CompatibilityLevel, Reference, Registry, Schema, SchemaCodec, SchemaType, check_compatibility,
};
use serde_json::json;

fn proto(text: &str) -> Schema {
    Schema::parse(SchemaType::Protobuf, text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// `update` registered after `original` under `BACKWARD`, and `original` after `update`
/// under `FORWARD`: both ask whether `update` reads `original`'s data. Every mismatch is
/// collected in `failed`, so one run names them all.
fn check(failed: &mut Vec<String>, name: &str, original: &str, update: &str, compatible: bool) {
    let (original, update) = (proto(original), proto(update));
    for (level, old, new) in [
        (CompatibilityLevel::Backward, &original, &update),
        (CompatibilityLevel::Forward, &update, &original),
    ] {
        let found = check_compatibility(level, new, &[(1, old)]).expect("within budget");
        if found.is_empty() != compatible {
            let found: Vec<String> = found.iter().map(ToString::to_string).collect();
            failed.push(format!(
                "cf {name}: {level} expected compatible={compatible}, found {found:?}"
            ));
        }
    }
}

#[test]
fn confluent_protobuf_diff_schema_examples() {
    let text = include_str!("fixtures/confluent-protobuf-diff-examples.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
    assert_eq!(cases.len(), 46);
    let failed = &mut Vec::new();
    for case in &cases {
        let field = |name: &str| {
            case[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {case}"))
        };
        let compatible = case["compatible"].as_bool().unwrap();
        check(
            failed,
            field("description"),
            field("original_schema"),
            field("update_schema"),
            compatible,
        );
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn message_indexes_are_written_as_confluent_writes_them() {
    for (indexes, bytes) in [
        (vec![0], vec![0u8]),
        (vec![1], vec![2, 2]),
        (vec![1, 0], vec![4, 2, 0]),
        (vec![0, 2, 64], vec![6, 0, 4, 128, 1]),
    ] {
        let mut written = Vec::new();
        write_message_indexes(&indexes, &mut written);
        assert_eq!(written, bytes, "{indexes:?}");
        let mut payload = written.clone();
        payload.push(42);
        assert_eq!(
            read_message_indexes(&payload).unwrap(),
            (indexes, &[42u8][..])
        );
    }
    assert!(read_message_indexes(&[0x80]).is_err(), "a truncated varint");
    assert!(
        read_message_indexes(&[200, 1]).is_err(),
        "100 indexes, past the limit"
    );
}

const ADDRESS: &str = "syntax = \"proto3\";\npackage shop;\nmessage Address { string zip = 1; }";
const ORDER: &str = "syntax = \"proto3\";\npackage shop;\nimport \"shop/address.proto\";\nmessage Order {\n  string id = 1;\n  int64 total_cents = 2;\n  shop.Address ship_to = 3;\n  repeated string items = 4;\n}";

#[test]
fn imports_resolve_through_references_and_the_codec_frames_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Arc::new(Registry::open(&log).unwrap());
    let protobuf = SchemaType::Protobuf;
    let address = registry.parse(protobuf, ADDRESS, &[]).unwrap();
    registry
        .register("shop/address.proto", protobuf, address)
        .unwrap();
    let unresolved = registry
        .parse(protobuf, ORDER, &[])
        .unwrap_err()
        .to_string();
    assert!(unresolved.contains("shop/address.proto"), "{unresolved}");
    let reference = Reference {
        name: "shop/address.proto".into(),
        subject: "shop/address.proto".into(),
        version: 1,
    };
    let order = registry.parse(protobuf, ORDER, &[reference]).unwrap();
    let registered = registry.register("orders-value", protobuf, order).unwrap();

    let codec = SchemaCodec::new(registry.clone(), "http://127.0.0.1:8081/");
    let value =
        json!({"id": "o-1", "totalCents": "4200", "shipTo": {"zip": "75001"}, "items": ["a", "b"]});
    let (id, bytes) = codec.serialize("orders-value", &value).unwrap();
    assert_eq!(id, registered.id);
    let framed = unframe(&bytes).unwrap();
    assert_eq!(framed.id, id);
    assert_eq!(
        framed.payload[0], 0,
        "message index [0] is the single byte 0"
    );
    assert_eq!(codec.deserialize(&bytes).unwrap(), (id, value.clone()));

    let event = codec
        .event(
            Event::new("/orders", "order.placed"),
            "orders-value",
            &value,
        )
        .unwrap();
    assert_eq!(
        event.datacontenttype.as_deref(),
        Some("application/protobuf")
    );
    assert_eq!(
        event.dataschema.as_deref(),
        Some(format!("http://127.0.0.1:8081/schemas/ids/{id}").as_str())
    );
    assert_eq!(codec.event_value(&event).unwrap(), value);

    let refused = codec
        .serialize("orders-value", &json!({"id": 7}))
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("value does not match its schema"),
        "{refused}"
    );
    assert!(
        codec.deserialize(&[1, 0, 0, 0, 1]).is_err(),
        "unknown magic byte"
    );
}
