//! A new schema checked against the events already stored: JSON payloads validated (with
//! and without an upcaster), Avro datums resolved from their writer's schema, the offset and
//! path of each unreadable event, sampling, and stopping at the first.

use std::sync::Arc;

use keel_core::{Event, SCHEMA_VERSION_ATTRIBUTE};
use keel_log::{Log, TopicConfig};
use keel_runtime::event_record;
use keel_schema::{
    Registry, Schema, SchemaCodec, SchemaType, StoredCheck, StoredCheckError, StoredReport,
    Unreadable, check_stored_events,
};
use serde_json::{Value, json};

fn append(log: &Log, event: &Event) {
    log.topic("orders").unwrap().partitions()[0]
        .append(&[event_record(event)])
        .unwrap();
}

fn json_event(version: u32, data: Value) -> Event {
    Event::new("/orders", "order.placed")
        .with_data_json(&data)
        .with_extension(SCHEMA_VERSION_ATTRIBUTE, version.to_string())
}

/// The stored `order.placed` events on `orders`, read with `schema`, no progress shown.
fn check(
    log: &Log,
    registry: &Registry,
    schema: &Schema,
    options: StoredCheck<'_>,
) -> Result<StoredReport, StoredCheckError> {
    check_stored_events(
        log,
        registry,
        "orders",
        "order.placed",
        schema,
        options,
        &mut |_, _| {},
    )
}

fn open() -> (tempfile::TempDir, Log, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("orders", TopicConfig::new(1)).unwrap();
    let registry = Registry::open(&log).unwrap();
    (dir, log, registry)
}

#[test]
fn json_events_the_new_schema_rejects_are_named_by_offset_and_path() {
    let (_dir, log, registry) = open();
    append(&log, &json_event(1, json!({"id": "o-1", "total": 10})));
    append(
        &log,
        &Event::new("/orders", "order.shipped").with_data_json(&json!({"id": 1})),
    );
    append(&log, &json_event(1, json!({"id": "o-2", "total": "12"})));
    append(
        &log,
        &json_event(2, json!({"id": "o-3", "total_cents": 1300})),
    );
    let strict = registry
        .parse(
            SchemaType::Json,
            r#"{"type":"object","properties":{"id":{"type":"string"},"total_cents":{"type":"integer"}},"required":["id","total_cents"]}"#,
            &[],
        )
        .unwrap();
    let mut seen = Vec::new();
    let report = check_stored_events(
        &log,
        &registry,
        "orders",
        "order.placed",
        &strict,
        StoredCheck::default(),
        &mut |done, total| seen.push((done, total)),
    )
    .unwrap();
    assert_eq!((report.read, report.checked), (4, 3));
    assert_eq!(seen.last(), Some(&(4, 4)));
    let offsets: Vec<(u64, &str)> = report
        .unreadable
        .iter()
        .map(|u| (u.offset, u.path.as_str()))
        .collect();
    assert_eq!(offsets, [(0, ""), (2, "")], "{:#?}", report.unreadable);
    assert!(
        report.unreadable[0].reason.contains("total_cents"),
        "{:?}",
        report.unreadable[0]
    );

    // The consumer's upcaster turns version 1 into the current shape: only the event whose
    // total is a string is still unreadable, at its path.
    let upcast = |version: u32, mut data: Value| -> Result<Value, String> {
        if version == 1 {
            let total = data["total"].take();
            data["total_cents"] = match total.as_i64() {
                Some(total) => json!(total * 100),
                None => total,
            };
        }
        Ok(data)
    };
    let options = StoredCheck {
        upcaster: Some(&upcast),
        ..StoredCheck::default()
    };
    let report = check(&log, &registry, &strict, options).unwrap();
    assert_eq!(
        report.unreadable,
        [Unreadable {
            partition: 0,
            offset: 2,
            path: "/total_cents".into(),
            reason: "\"12\" is not of type \"integer\"".into(),
        }]
    );

    // Sampling reads the newest record only; stopping at the first ends after one.
    let sampled = StoredCheck {
        sample_per_partition: Some(1),
        ..StoredCheck::default()
    };
    let report = check(&log, &registry, &strict, sampled).unwrap();
    assert_eq!(
        (report.read, report.checked, report.unreadable.len()),
        (1, 1, 0)
    );
    let first = StoredCheck {
        stop_at_first: true,
        ..StoredCheck::default()
    };
    let report = check(&log, &registry, &strict, first).unwrap();
    assert_eq!((report.read, report.unreadable.len()), (1, 1));
    assert!(
        check_stored_events(
            &log,
            &registry,
            "nope",
            "order.placed",
            &strict,
            first,
            &mut |_, _| {}
        )
        .is_err()
    );
}

#[test]
fn avro_events_are_read_through_schema_resolution() {
    let (_dir, log, registry) = open();
    let registry = Arc::new(registry);
    let v1 = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
    let schema = registry.parse(SchemaType::Avro, v1, &[]).unwrap();
    registry
        .register("order.placed", SchemaType::Avro, schema)
        .unwrap();
    let codec = SchemaCodec::new(registry.clone(), "http://127.0.0.1:8081");
    let event = codec
        .event(
            Event::new("/orders", "order.placed"),
            "order.placed",
            &json!({"id": "o-1"}),
        )
        .unwrap();
    append(&log, &event);
    let check = |text: &str| {
        let schema = registry.parse(SchemaType::Avro, text, &[]).unwrap();
        check(&log, &registry, &schema, StoredCheck::default()).unwrap()
    };
    let with_default = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"note","type":"string","default":""}]}"#;
    assert_eq!(check(with_default).unreadable, []);
    let without = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"note","type":"string"}]}"#;
    let report = check(without);
    assert_eq!(report.unreadable.len(), 1);
    assert_eq!(report.unreadable[0].offset, 0);
}
