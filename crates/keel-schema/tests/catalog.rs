//! The catalog from a real log: event types per topic, publishers, consumer groups, schemas
//! and examples; the AsyncAPI document validates against the official AsyncAPI 3.0 JSON
//! Schema (from the npm package `@asyncapi/specs` 6.11.1, vendored in `tests/fixtures` with
//! its Apache-2.0 license and notice), and the HTML page shows the same, escaped; the scan
//! through the admin port (a cluster's) learns the same within its sample and budget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, Event, PartitionOffsets, SCHEMA_VERSION_ATTRIBUTE};
use keel_embedded::admin::{LogAdmin, at_once};
use keel_log::{Log, OffsetCommit, TopicConfig};
use keel_runtime::event_record;
use keel_schema::{Registry, Schema, SchemaType, asyncapi, html, scan, scan_port};
use serde_json::{Value, json};

fn asyncapi_validator() -> jsonschema::Validator {
    let text = include_str!("fixtures/asyncapi-3.0.0.schema.json");
    let schema: Value = serde_json::from_str(text).expect("the vendored AsyncAPI schema is JSON");
    jsonschema::validator_for(&schema).expect("the AsyncAPI schema compiles")
}

fn publish(log: &Log, topic: &str, source: &str, ty: &str, version: u32, data: Value) {
    let event = Event::new(source, ty)
        .with_data_json(&data)
        .with_extension(SCHEMA_VERSION_ATTRIBUTE, version.to_string())
        .with_partition_key("k-1");
    let topic = log.topic(topic).unwrap();
    let partition = topic.partition_for(Some(b"k-1"));
    topic.partitions()[partition as usize]
        .append(&[event_record(&event)])
        .unwrap();
}

#[test]
fn the_catalog_is_valid_asyncapi_3_and_names_who_publishes_and_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("orders", TopicConfig::new(2)).unwrap();
    log.create_topic("orders.dlq", TopicConfig::new(2)).unwrap();
    let registry = Registry::open(&log).unwrap();
    let placed = json!({"type": "object", "properties": {"order_id": {"type": "string"}, "total": {"type": "integer"}}, "required": ["order_id"], "$defs": {"unused": {"prefixItems": [true]}}});
    registry
        .register(
            "order.placed",
            SchemaType::Json,
            Schema::from_value(placed.clone()).unwrap(),
        )
        .unwrap();
    registry
        .register(
            "payment.requested",
            SchemaType::Json,
            Schema::from_value(json!({"type": "object"})).unwrap(),
        )
        .unwrap();
    publish(
        &log,
        "orders",
        "/orders",
        "order.placed",
        1,
        json!({"order_id": "o-1", "total": 10}),
    );
    publish(
        &log,
        "orders",
        "/orders",
        "order.placed",
        1,
        json!({"order_id": "o-2", "total": 42}),
    );
    publish(
        &log,
        "orders",
        "/ops?who=a&b",
        "order.cancelled",
        1,
        json!({"order_id": "o-1"}),
    );
    log.group_offsets()
        .commit(
            "billing",
            &[OffsetCommit {
                topic: "orders".into(),
                partition: 0,
                offset: 1,
                metadata: String::new(),
            }],
            0,
        )
        .unwrap();

    let (catalog, errors) = scan(&log);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        catalog.topics.keys().collect::<Vec<_>>(),
        ["orders"],
        "internal and dead-letter topics are not channels"
    );
    let orders = &catalog.topics["orders"];
    assert_eq!(orders.events["order.placed"].count, 2);
    assert_eq!(orders.undecodable, 0);
    assert_eq!(orders.consumers.iter().collect::<Vec<_>>(), ["billing"]);

    let document = asyncapi(&catalog, &registry, "Shop events");
    let validator = asyncapi_validator();
    let problems: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect();
    assert!(
        problems.is_empty(),
        "not valid AsyncAPI 3.0: {problems:#?}\n{document:#}"
    );

    assert_eq!(document["channels"]["orders"]["address"], "orders");
    let message = &document["components"]["messages"]["order.placed"];
    assert_eq!(message["payload"]["schema"], placed);
    assert_eq!(message["x-keel-schema-version"], 1);
    assert_eq!(
        message["examples"][0]["payload"],
        json!({"order_id": "o-2", "total": 42})
    );
    assert!(
        document["components"]["messages"]["order.cancelled"]
            .get("payload")
            .is_none()
    );
    // Registered but never seen on a topic: a message without a channel.
    assert!(document["components"]["messages"]["payment.requested"].is_object());
    let operations = document["operations"].as_object().unwrap();
    let send = &operations["_orders_sends_to_orders"];
    assert_eq!(send["action"], "send");
    assert_eq!(
        send["messages"],
        json!([{"$ref": "#/channels/orders/messages/order.placed"}])
    );
    let receive = &operations["billing_receives_from_orders"];
    assert_eq!(receive["action"], "receive");
    assert_eq!(
        receive["messages"].as_array().unwrap().len(),
        2,
        "{receive:#}"
    );

    let page = html(&document);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<h3 id=\"topic-orders\">orders</h3>"));
    assert!(
        page.contains(
            "<b>Published by</b> /ops?who=a&amp;b, /orders<br><b>Consumed by</b> billing"
        ),
        "{page}"
    );
    assert!(page.contains("&quot;total&quot;: 42"));
    assert!(!page.contains("a&b"));
}

/// The validator is not vacuous: a document missing `info` or with a bad operation fails.
#[test]
fn the_asyncapi_schema_rejects_broken_documents() {
    let validator = asyncapi_validator();
    assert!(!validator.is_valid(&json!({"asyncapi": "3.0.0"})));
    assert!(!validator.is_valid(&json!({
        "asyncapi": "3.0.0",
        "info": {"title": "t", "version": "1"},
        "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/a"}}},
    })));
    assert!(
        validator.is_valid(&json!({"asyncapi": "3.0.0", "info": {"title": "t", "version": "1"}}))
    );
}

/// Through the admin port (`scan_port`, as on a cluster) the catalog learns what the log's
/// scan learns — from the newest 100 records of each partition — with the consumers it is
/// given; a spent budget reads nothing more and names the topics it left.
#[test]
fn the_port_scan_learns_what_the_log_scan_does_within_its_sample_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("orders", TopicConfig::new(2)).unwrap();
    log.create_topic("orders.dlq", TopicConfig::new(1)).unwrap();
    log.create_topic("payments", TopicConfig::new(1)).unwrap();
    for n in 0..3 {
        publish(
            &log,
            "orders",
            "/orders",
            "order.placed",
            1,
            json!({"n": n}),
        );
    }
    publish(
        &log,
        "orders",
        "/ops",
        "order.cancelled",
        2,
        json!({"n": 0}),
    );
    for n in 0..150 {
        publish(
            &log,
            "payments",
            "/payments",
            "payment.charged",
            1,
            json!({"n": n}),
        );
    }
    let port = LogAdmin::new(&log, 0);
    let mut topics: Vec<(String, Vec<PartitionOffsets>)> = log
        .topics()
        .iter()
        .map(|t| {
            let ranges = at_once(port.partition_offsets(t.name())).unwrap();
            (t.name().to_string(), ranges)
        })
        .collect();
    topics.sort_by(|a, b| a.0.cmp(&b.0));
    let consumers = BTreeMap::from([(
        "orders".to_string(),
        BTreeSet::from(["billing".to_string()]),
    )]);

    let (catalog, errors) = at_once(scan_port(
        &port,
        &topics,
        &consumers,
        Duration::from_secs(60),
    ));
    assert!(errors.is_empty(), "{errors:?}");
    let (mut on_log, _) = scan(&log);
    on_log.topics.get_mut("orders").unwrap().consumers = consumers["orders"].clone();
    assert_eq!(catalog.topics["orders"], on_log.topics["orders"]);
    assert_eq!(
        catalog.topics.keys().collect::<Vec<_>>(),
        ["orders", "payments"],
        "no dead-letter topic"
    );
    let charged = &catalog.topics["payments"].events["payment.charged"];
    assert_eq!(charged.count, 100, "the newest 100 of the partition's 150");
    assert_eq!(charged.example, Some(json!({"n": 149})));

    let (spent, errors) = at_once(scan_port(&port, &topics, &consumers, Duration::ZERO));
    assert!(spent.topics.values().all(|t| t.events.is_empty()));
    assert_eq!(spent.topics["orders"].partitions, 2);
    assert_eq!(
        errors,
        ["2 topic(s) not read whole within 0 ms: orders, payments"]
    );
}
