//! End to end on the embedded bus: a publisher under contract refuses a payload that breaks
//! its registered schema (naming the path, writing nothing), and a consumer contract hands its
//! handler one shape — version 1 upcast, version 2 as is — while an unaccepted version and an
//! unknown type go to the dead-letter topic with that reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::{Event, EventType, SCHEMA_VERSION_ATTRIBUTE};
use keel_embedded::EmbeddedBus;
use keel_log::{Log, TopicConfig};
use keel_runtime::{Context, DeadLetterHeaders, HandlerResult, Route, Router};
use keel_schema::{Contract, Registry, Schema, SchemaPublishError, SchemaPublisher, SchemaType};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    total_cents: u64,
    #[serde(default)]
    coupon: Option<String>,
}

impl EventType for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    const VERSION: u32 = 2;
}

fn register(registry: &Registry, document: serde_json::Value) {
    let schema = Schema::from_value(document).unwrap();
    registry
        .register("order.placed", SchemaType::Json, schema)
        .unwrap();
}

/// Version 1 carried the total in whole units; version 2 in cents, with an optional coupon;
/// version 3 (which this consumer does not know yet) adds a currency.
fn register_versions(registry: &Registry) {
    registry
        .set_level(
            Some("order.placed"),
            Some(keel_schema::CompatibilityLevel::None),
        )
        .unwrap();
    register(
        registry,
        json!({"type": "object", "properties": {"order_id": {"type": "string"}, "total": {"type": "integer", "minimum": 0}}, "required": ["order_id", "total"]}),
    );
    register(
        registry,
        json!({"type": "object", "properties": {"order_id": {"type": "string"}, "total_cents": {"type": "integer", "minimum": 0}, "coupon": {"type": "string"}}, "required": ["order_id", "total_cents"]}),
    );
    register(
        registry,
        json!({"type": "object", "properties": {"order_id": {"type": "string"}, "total_cents": {"type": "integer"}, "currency": {"type": "string"}}, "required": ["order_id", "total_cents", "currency"]}),
    );
}

fn event(ty: &str, version: u32, data: serde_json::Value) -> Event {
    Event::new("/orders", ty)
        .with_data_json(&data)
        .with_extension(SCHEMA_VERSION_ATTRIBUTE, version.to_string())
        .with_partition_key("o-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_validates_and_consumers_upcast_or_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("orders", TopicConfig::new(1)).unwrap();
    let registry = Arc::new(Registry::open(&log).unwrap());
    register_versions(&registry);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = SchemaPublisher::new(bus.publisher(), registry.clone());
    let orders = log.topic("orders").unwrap().partitions()[0].clone();

    // Refused before anything is written: a wrong type at a path, an unknown type, an
    // unregistered version.
    let error = publisher
        .publish(
            "orders",
            event(
                "order.placed",
                2,
                json!({"order_id": "o-1", "total_cents": "12"}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "refused event of type \"order.placed\" version 2: payload breaks its schema at \"/total_cents\": \"12\" is not of type \"integer\""
    );
    assert!(matches!(
        publisher
            .publish("orders", event("order.cancelled", 1, json!({})))
            .await,
        Err(SchemaPublishError::UnknownType { .. })
    ));
    assert!(matches!(
        publisher
            .publish("orders", event("order.placed", 9, json!({})))
            .await,
        Err(SchemaPublishError::UnknownVersion { version: 9, .. })
    ));
    assert_eq!(orders.high_watermark(), 0, "a refused event was written");

    // Accepted: one event per registered version, plus an event of a type nobody registered,
    // written by a plain publisher (another producer that bypasses the registry).
    publisher
        .publish(
            "orders",
            event("order.placed", 1, json!({"order_id": "o-1", "total": 12})),
        )
        .await
        .unwrap();
    publisher
        .publish(
            "orders",
            event(
                "order.placed",
                2,
                json!({"order_id": "o-1", "total_cents": 1250, "coupon": "WELCOME"}),
            ),
        )
        .await
        .unwrap();
    publisher
        .publish(
            "orders",
            event(
                "order.placed",
                3,
                json!({"order_id": "o-1", "total_cents": 990, "currency": "EUR"}),
            ),
        )
        .await
        .unwrap();
    bus.publisher()
        .publish(
            "orders",
            event("order.cancelled", 1, json!({"order_id": "o-1"})),
        )
        .await
        .unwrap();
    assert_eq!(orders.high_watermark(), 4);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let contract = Contract::<OrderPlaced>::new()
        .upcast(1, |mut data| {
            let total = data["total"]
                .as_u64()
                .ok_or("'total' is not a whole number")?;
            data["total_cents"] = (total * 100).into();
            Ok(data)
        })
        .validated_by(registry.clone());
    let handler = {
        let seen = seen.clone();
        contract
            .handler("bill", move |order: OrderPlaced, _ctx: Context| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(order);
                    HandlerResult::Ok(())
                }
            })
            .unwrap()
    };
    let router = Router::new(&bus)
        .route(Route::new("orders", "billing", handler))
        .start()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let dead_letters = loop {
        let dlq = log.topic("orders.dlq").map(|t| t.partitions()[0].clone());
        let stored = dlq.as_ref().map_or(0, |p| p.high_watermark());
        if seen.lock().unwrap().len() == 2 && stored == 2 {
            break dlq.unwrap().read_records(0, 1 << 20).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "timed out: handled {:?}, {stored} dead letters",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    router.shutdown().await;

    assert_eq!(
        *seen.lock().unwrap(),
        [
            OrderPlaced {
                order_id: "o-1".into(),
                total_cents: 1200,
                coupon: None
            },
            OrderPlaced {
                order_id: "o-1".into(),
                total_cents: 1250,
                coupon: Some("WELCOME".into())
            },
        ]
    );
    let reasons: Vec<String> = dead_letters
        .iter()
        .map(|record| {
            DeadLetterHeaders::decode(&record.headers)
                .expect("dead-letter headers")
                .error
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "handler cannot decode the event: invalid CloudEvents attribute 'schemaversion': version 3 of \"order.placed\" is not accepted by this consumer (accepts 1, 2)",
            "handler cannot decode the event: CloudEvents attribute 'type' is \"order.cancelled\", expected \"order.placed\"",
        ]
    );
}

#[test]
fn a_contract_with_a_gap_in_its_upcasters_is_refused() {
    let error = Contract::<OrderPlaced>::new()
        .accept(1)
        .validate()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "contract for \"order.placed\" is incomplete: accepted version 1 has no upcaster from version 1 to 2"
    );
    assert!(Contract::<OrderPlaced>::new().accept(3).validate().is_err());
}

/// An Avro contract end to end without a bus: `SchemaCodec` frames the event, the publisher's
/// check decodes and accepts it (and refuses framing with another version's schema), and a
/// consumer's contract decodes the framed data into its type.
#[test]
fn avro_events_pass_the_publisher_and_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Arc::new(Registry::open(&log).unwrap());
    let avro = |fields: &str| {
        let text = format!(r#"{{"type":"record","name":"OrderPlaced","fields":[{fields}]}}"#);
        let schema = registry.parse(SchemaType::Avro, &text, &[]).unwrap();
        registry
            .register("order.placed", SchemaType::Avro, schema)
            .unwrap()
    };
    avro(r#"{"name":"order_id","type":"string"},{"name":"total_cents","type":"long"}"#);
    let v2 = avro(
        r#"{"name":"order_id","type":"string"},{"name":"total_cents","type":"long"},{"name":"coupon","type":["null","string"],"default":null}"#,
    );
    let codec = keel_schema::SchemaCodec::new(registry.clone(), "http://127.0.0.1:8081");
    let value = json!({"order_id": "o-1", "total_cents": 1200, "coupon": null});
    let framed = codec
        .event(
            Event::new("/orders", "order.placed"),
            "order.placed",
            &value,
        )
        .unwrap()
        .with_extension(SCHEMA_VERSION_ATTRIBUTE, "2");
    assert_eq!(
        framed.data.as_deref().map(|d| d[0]),
        Some(0),
        "Confluent's magic byte"
    );

    let bus = EmbeddedBus::new(Arc::new(log));
    let publisher = SchemaPublisher::new(bus.publisher(), registry.clone());
    assert_eq!(publisher.check(&framed).unwrap(), v2.id);
    let as_v1 = framed.clone().with_extension(SCHEMA_VERSION_ATTRIBUTE, "1");
    let refused = publisher.check(&as_v1).unwrap_err().to_string();
    assert!(
        refused.contains("framed with schema id 2, version 1"),
        "{refused}"
    );

    let contract = Contract::<OrderPlaced>::new().validated_by(registry.clone());
    assert_eq!(
        contract.decode(&framed).unwrap(),
        OrderPlaced {
            order_id: "o-1".into(),
            total_cents: 1200,
            coupon: None
        }
    );
}
