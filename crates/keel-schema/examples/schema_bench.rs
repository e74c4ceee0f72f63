//! The schema registry's costs per format, in one run: registrations per second (each a
//! durable append to `_keel_schemas`), compatibility checks per second (`BACKWARD`, the new
//! version against the latest, no I/O), and Keel's codecs (`SchemaCodec`: Confluent's wire
//! format) serializing and deserializing one order event, JSON next to Avro and Protobuf.
//! Prints a markdown table and the load average before and after.
//!
//! Run: `cargo run --release -p keel-schema --example schema_bench [ROUNDS]` (ROUNDS
//! multiplies the codec and check iterations; default 1). Not a test: nothing fails on a
//! slow number.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_log::Log;
use keel_schema::{
    CompatibilityLevel, Registry, Schema, SchemaCodec, SchemaType, check_compatibility,
};
use serde_json::{Value, json};

/// Versions registered per format (each a durable append).
const REGISTRATIONS: u32 = 100;
/// Compatibility checks per format and round.
const CHECKS: u32 = 5_000;
/// Serializations and deserializations per format and round.
const CODEC_OPS: u32 = 100_000;

/// The order contract of `fields` extra optional fields, in each format.
fn contract(schema_type: SchemaType, fields: u32) -> String {
    match schema_type {
        SchemaType::Json => {
            let mut properties = serde_json::Map::new();
            properties.insert("id".into(), json!({"type": "string"}));
            properties.insert("total_cents".into(), json!({"type": "integer"}));
            properties.insert("currency".into(), json!({"type": "string"}));
            properties.insert(
                "items".into(),
                json!({"type": "array", "items": {"type": "string"}}),
            );
            for n in 0..fields {
                properties.insert(format!("f{n}"), json!({"type": "string"}));
            }
            json!({"type": "object", "properties": properties, "required": ["id", "total_cents"], "additionalProperties": false}).to_string()
        }
        SchemaType::Avro => {
            let mut list = vec![
                json!({"name": "id", "type": "string"}),
                json!({"name": "total_cents", "type": "long"}),
                json!({"name": "currency", "type": "string", "default": "EUR"}),
                json!({"name": "items", "type": {"type": "array", "items": "string"}, "default": []}),
            ];
            for n in 0..fields {
                list.push(
                    json!({"name": format!("f{n}"), "type": ["null", "string"], "default": null}),
                );
            }
            json!({"type": "record", "name": "Order", "namespace": "shop", "fields": list})
                .to_string()
        }
        SchemaType::Protobuf => {
            let mut text = String::from(
                "syntax = \"proto3\";\npackage shop;\nmessage Order {\n  string id = 1;\n  int64 total_cents = 2;\n  string currency = 3;\n  repeated string items = 4;\n",
            );
            for n in 0..fields {
                text.push_str(&format!("  string f{n} = {};\n", n + 5));
            }
            text.push_str("}\n");
            text
        }
    }
}

/// The same order in each format's JSON mapping.
fn order(schema_type: SchemaType) -> Value {
    let items = json!(["sku-1", "sku-2", "sku-3"]);
    match schema_type {
        SchemaType::Protobuf => {
            json!({"id": "o-12345", "totalCents": "4200", "currency": "EUR", "items": items})
        }
        _ => json!({"id": "o-12345", "total_cents": 4200, "currency": "EUR", "items": items}),
    }
}

fn per_second(count: u32, elapsed: Duration) -> f64 {
    f64::from(count) / elapsed.as_secs_f64()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    println!("load average before: {}", load_average());
    println!();
    println!(
        "| format | registrations/s (fsync each) | checks/s (BACKWARD, latest) | serialize/s | deserialize/s | framed bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for schema_type in [SchemaType::Json, SchemaType::Avro, SchemaType::Protobuf] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = Log::open(dir.path()).expect("open the log");
        let registry = Arc::new(Registry::open(&log).expect("open the registry"));

        let started = Instant::now();
        for version in 0..REGISTRATIONS {
            let schema = Schema::parse(schema_type, &contract(schema_type, version)).unwrap();
            registry
                .register("orders-value", schema_type, schema)
                .unwrap();
        }
        let registrations = per_second(REGISTRATIONS, started.elapsed());

        let latest = Schema::parse(schema_type, &contract(schema_type, REGISTRATIONS - 1)).unwrap();
        let next = Schema::parse(schema_type, &contract(schema_type, REGISTRATIONS)).unwrap();
        let checks = CHECKS * rounds;
        let started = Instant::now();
        for _ in 0..checks {
            let found =
                check_compatibility(CompatibilityLevel::Backward, &next, &[(1, &latest)]).unwrap();
            assert!(found.is_empty(), "{found:?}");
        }
        let checked = per_second(checks, started.elapsed());

        // The codec against the first version: the order's own fields.
        let first = Schema::parse(schema_type, &contract(schema_type, 0)).unwrap();
        registry
            .register("order-codec", schema_type, first)
            .unwrap();
        let codec = SchemaCodec::new(registry.clone(), "http://127.0.0.1:8081");
        let value = order(schema_type);
        let ops = CODEC_OPS * rounds;
        let started = Instant::now();
        let mut bytes = Vec::new();
        for _ in 0..ops {
            bytes = codec.serialize("order-codec", &value).unwrap().1;
        }
        let serialized = per_second(ops, started.elapsed());
        let started = Instant::now();
        for _ in 0..ops {
            let (_, decoded) = codec.deserialize(&bytes).unwrap();
            std::hint::black_box(decoded);
        }
        let deserialized = per_second(ops, started.elapsed());
        println!(
            "| {schema_type} | {registrations:.0} | {checked:.0} | {serialized:.0} | {deserialized:.0} | {} |",
            bytes.len()
        );
    }
    println!();
    println!("load average after: {}", load_average());
}
