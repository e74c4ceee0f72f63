//! The schema registry API proved with a client nobody here wrote: Confluent's
//! `confluent-kafka` Python package (`SchemaRegistryClient`, `JSONSerializer`,
//! `JSONDeserializer`) against an in-process server — register, fetch by id, serialize and
//! deserialize a record, get refused on an incompatible change, and Confluent's error codes.
//!
//! Needs Python with `confluent-kafka[json,schemaregistry]`. Set `KEEL_TEST_SCHEMA_REGISTRY_CLIENT=1`
//! (as `.ci/run` does) to make a missing package a failure; unset, the test says it did not
//! run and returns.

mod support;

use std::process::Command;

use keel_server::ServerConfig;
use serde_json::{Value, json};
use support::Running;

const CLIENT_VAR: &str = "KEEL_TEST_SCHEMA_REGISTRY_CLIENT";

/// Runs `tests/clients/{script}` against a fresh server's registry: the JSON object of each
/// step it printed.
async fn run_client(script: &'static str) -> Vec<Value> {
    let (_dir, running, url) = registry_server().await;
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([&path, &url])
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    running.stop().await;
    assert!(
        output.status.success(),
        "{script} failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn step_of<'s>(steps: &'s [Value], name: &str) -> &'s Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:#?}"))
}

fn client_available() -> bool {
    let import = "from confluent_kafka.schema_registry.avro import AvroSerializer; from confluent_kafka.schema_registry.protobuf import ProtobufSerializer";
    let available = Command::new("python3")
        .args(["-c", import])
        .output()
        .is_ok_and(|output| output.status.success());
    match (available, std::env::var_os(CLIENT_VAR).is_some()) {
        (true, _) => true,
        (false, true) => panic!(
            "{CLIENT_VAR} is set but python3 cannot import confluent_kafka's schema registry client \
             (pip install 'confluent-kafka[avro,protobuf,json,schemaregistry]')"
        ),
        (false, false) => {
            println!(
                "schema registry client test did not run: confluent-kafka[avro,protobuf,json,schemaregistry] is not installed (set {CLIENT_VAR}=1 to require it)"
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_round_trip() {
    if !client_available() {
        return;
    }
    let steps = run_client("schema_registry_client.py").await;
    let step = |name: &str| step_of(&steps, name);

    // Confluent's wire format: magic byte 0, the 4-byte schema id, then the JSON.
    assert_eq!(step("serialized")["magic"], 0);
    assert_eq!(step("serialized")["id"], 1);
    assert_eq!(
        step("deserialized")["record"],
        json!({"order_id": "o-1", "total": 42})
    );
    assert_eq!(step("fetched")["schema_type"], "JSON");
    assert_eq!(
        step("fetched")["schema"]["properties"]["total"],
        json!({"type": "integer"})
    );
    assert_eq!(step("latest")["version"], 1);
    assert_eq!(step("latest")["subject"], "orders-value");
    assert_eq!(step("compatible_check")["v2"], true);
    assert_eq!(step("compatible_check")["breaking"], false);
    assert_eq!(step("registered_v2")["id"], 2);
    assert_eq!(step("registered_v2")["versions"], json!([1, 2]));
    let incompatible = step("incompatible");
    assert_eq!(incompatible["http"], 409);
    assert_eq!(incompatible["code"], 409);
    assert!(
        incompatible["message"]
            .as_str()
            .unwrap()
            .contains("#/properties/total/type: TYPE_NARROWED"),
        "{incompatible}"
    );
    assert_eq!(step("invalid_record")["refused"], true);
    assert_eq!(step("config")["subject"], "FULL");
    assert_eq!(step("config")["default"], "BACKWARD");
    assert_eq!(step("subjects")["names"], json!(["orders-value"]));
    for (name, http, code) in [
        ("missing_subject", 404, 40401),
        ("missing_version", 404, 40402),
        ("missing_id", 404, 40403),
        ("invalid_schema", 422, 42201),
    ] {
        assert_eq!(step(name)["http"], http, "{name}: {}", step(name));
        assert_eq!(step(name)["code"], code, "{name}: {}", step(name));
    }
    assert_eq!(step("soft_deleted")["version"], 2);
    assert_eq!(step("soft_deleted")["versions"], json!([1]));
}

/// Sends `body` with `media` as its content type; the status and the JSON answer.
fn send(url: &str, media: &str, body: Vec<u8>) -> (u16, Value) {
    let response = ureq::post(url)
        .header("content-type", media)
        .config()
        .http_status_as_error(false)
        .build()
        .send(&body[..])
        .expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.into_body().read_json().expect("a JSON body"),
    )
}

fn register_body(schema: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"schemaType": "JSON", "schema": schema.to_string()})).unwrap()
}

/// An `anyOf` of two `$ref`s to the next level, 40 levels deep: 2^40 pairs unmemoised.
fn bomb(leaf: &str) -> Value {
    let mut defs = serde_json::Map::new();
    for level in 0..40 {
        let next = json!({"$ref": format!("#/$defs/l{}", level + 1)});
        defs.insert(format!("l{level}"), json!({"anyOf": [next.clone(), next]}));
    }
    defs.insert("l40".into(), json!({"type": leaf}));
    json!({"$defs": defs, "$ref": "#/$defs/l0"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_avro_and_protobuf_serializers_round_trip_with_references() {
    if !client_available() {
        return;
    }
    let steps = run_client("schema_registry_formats.py").await;
    let step = |name: &str| step_of(&steps, name);

    let registered = step("avro_registered");
    let order_id = registered["order_id"].clone();
    assert_ne!(registered["address_id"], order_id);
    assert_eq!(step("avro_serialized")["magic"], 0);
    assert_eq!(step("avro_serialized")["id"], order_id);
    assert_eq!(
        step("avro_deserialized")["record"],
        json!({"id": "o-1", "total_cents": 4200, "ship_to": {"zip": "75001"}})
    );
    assert_eq!(step("avro_referenced_by")["ids"], json!([order_id]));
    let incompatible = step("avro_incompatible");
    assert_eq!(
        (incompatible["http"].clone(), incompatible["code"].clone()),
        (json!(409), json!(409))
    );
    assert!(
        incompatible["message"]
            .as_str()
            .unwrap()
            .contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{incompatible}"
    );

    // Magic byte, id, then the message indexes: [0] is the single byte 0.
    let serialized = step("protobuf_serialized");
    assert_eq!(
        (serialized["magic"].clone(), serialized["index"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        serialized["subjects"],
        json!([
            "orders-avro-value",
            "orders-proto-value",
            "shop.Address",
            "shop/address.proto"
        ])
    );
    assert_eq!(
        step("protobuf_deserialized").clone(),
        json!({"step": "protobuf_deserialized", "id": "o-2", "total_cents": 990, "zip": "10115"})
    );
    assert_eq!(step("protobuf_latest")["schema_type"], "PROTOBUF");
    assert_eq!(
        step("protobuf_latest")["references"],
        json!([["shop/address.proto", "shop/address.proto", 1]])
    );
}

/// A server with only its registry listener of interest: its data directory (kept alive),
/// the running server and the registry's base URL.
async fn registry_server() -> (tempfile::TempDir, Running, String) {
    let dir = tempfile::tempdir().unwrap();
    let (running, base) = serve(dir.path(), |_| {}).await;
    (dir, running, base)
}

/// Serves the data directory `dir` with `adjust`ed settings: the running server and its
/// registry's base URL.
async fn serve(dir: &std::path::Path, adjust: impl FnOnce(&mut ServerConfig)) -> (Running, String) {
    let mut config = ServerConfig::new(dir);
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = Some("127.0.0.1:0".parse().unwrap());
    adjust(&mut config);
    let running = Running::start(config).await;
    let base = format!(
        "http://{}",
        running.bound.registry.expect("registry listener")
    );
    (running, base)
}

/// Sends `body` with `method` (`PUT`) and the registry's media type.
fn put(url: &str, body: &Value) -> u16 {
    ureq::put(url)
        .header("content-type", JSON_MEDIA)
        .config()
        .http_status_as_error(false)
        .build()
        .send(body.to_string().as_bytes())
        .expect("request")
        .status()
        .as_u16()
}

const JSON_MEDIA: &str = "application/vnd.schemaregistry.v1+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_bomb_is_answered_within_a_second_while_other_clients_are_served() {
    let (_dir, running, base) = registry_server().await;
    let versions = format!("{base}/subjects/bomb/versions");
    let (status, _) = send(&versions, JSON_MEDIA, register_body(&bomb("number")));
    assert_eq!(status, 200);

    let other = {
        let base = base.clone();
        std::thread::spawn(move || {
            let mut slowest = std::time::Duration::ZERO;
            for n in 0..20 {
                let started = std::time::Instant::now();
                let url = format!("{base}/subjects/other-{n}/versions");
                let (status, body) =
                    send(&url, JSON_MEDIA, register_body(&json!({"type": "object"})));
                assert_eq!(status, 200, "{body}");
                slowest = slowest.max(started.elapsed());
            }
            slowest
        })
    };
    let started = std::time::Instant::now();
    let (status, body) = tokio::task::spawn_blocking(move || {
        send(&versions, JSON_MEDIA, register_body(&bomb("integer")))
    })
    .await
    .unwrap();
    let bomb_took = started.elapsed();
    let slowest = tokio::task::spawn_blocking(move || other.join().unwrap())
        .await
        .unwrap();
    running.stop().await;
    // Integers cannot hold the numbers the first version allowed: refused, not hung.
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (409, Some(409)),
        "{body}"
    );
    assert!(
        bomb_took < std::time::Duration::from_secs(1),
        "the bomb took {bomb_took:?}"
    );
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "another client waited {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_checked_for_media_type_and_size() {
    let (_dir, running, base) = registry_server().await;
    let http = running.bound.http;
    let (answers, metrics) = tokio::task::spawn_blocking(move || {
        let url = format!("{base}/subjects/s/versions");
        let schema = register_body(&json!({"type": "string"}));
        let huge = vec![b' '; keel_schema::limits::REQUEST_BYTES_MAX + 1];
        // A reference chain deeper than a comparison may follow: refused by its budget.
        let deep = |leaf: &str| {
            let mut defs = serde_json::Map::new();
            for level in 0..200 {
                let next = json!({"$ref": format!("#/$defs/l{}", level + 1)});
                defs.insert(
                    format!("l{level}"),
                    json!({"type": "object", "properties": {"x": next}}),
                );
            }
            defs.insert("l200".into(), json!({"type": leaf}));
            json!({"$defs": defs, "$ref": "#/$defs/l0"})
        };
        let deep_url = format!("{base}/subjects/deep/versions");
        send(&deep_url, JSON_MEDIA, register_body(&deep("number")));
        let answers = [
            send(&url, "text/plain", schema.clone()),
            send(&url, "application/x-www-form-urlencoded", schema.clone()),
            send(&url, JSON_MEDIA, huge),
            send(&url, "application/json; charset=utf-8", schema),
            send(&deep_url, JSON_MEDIA, register_body(&deep("integer"))),
        ];
        let metrics = ureq::get(format!("http://{http}/metrics"))
            .call()
            .expect("metrics")
            .into_body()
            .read_to_string()
            .unwrap();
        (answers, metrics)
    })
    .await
    .unwrap();
    running.stop().await;
    let codes: Vec<(u16, Option<u64>)> = answers
        .iter()
        .map(|(status, body)| (*status, body["error_code"].as_u64()))
        .collect();
    assert_eq!(
        codes,
        [
            (415, Some(415)),
            (415, Some(415)),
            (413, Some(413)),
            (200, None),
            (422, Some(42201))
        ],
        "{answers:?}"
    );
    assert!(
        answers[4].1["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 128 levels"),
        "{answers:?}"
    );
    assert!(
        metrics.contains("keel_registry_bodies_refused_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keel_registry_checks_refused_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatibility_check_can_read_the_stored_events_too() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = keel_log::Log::open(dir.path()).unwrap();
        log.create_topic("orders", keel_log::TopicConfig::new(1))
            .unwrap();
        let partition = log.topic("orders").unwrap().partitions()[0].clone();
        for data in [json!({"id": "o-1"}), json!({"id": "o-2", "note": 5})] {
            let event = keel_core::Event::new("/orders", "order.placed").with_data_json(&data);
            partition
                .append(&[keel_runtime::event_record(&event)])
                .unwrap();
        }
    }
    let (running, base) = serve(dir.path(), |_| {}).await;
    let answers = tokio::task::spawn_blocking(move || {
        let open = json!({"type": "object", "properties": {"id": {"type": "string"}}});
        let noted = json!({"type": "object", "properties": {"id": {"type": "string"}, "note": {"type": "string"}}});
        send(&format!("{base}/subjects/order.placed/versions"), JSON_MEDIA, register_body(&open));
        assert_eq!(put(&format!("{base}/config/order.placed"), &json!({"compatibility": "NONE"})), 200);
        let check = |query: &str| {
            let url = format!("{base}/compatibility/subjects/order.placed/versions?verbose=true{query}");
            send(&url, JSON_MEDIA, register_body(&noted))
        };
        [check(""), check("&againstEvents=orders"), check("&againstEvents=orders&sample=1"), check("&againstEvents=nope")]
    })
    .await
    .unwrap();
    running.stop().await;
    assert_eq!(
        answers[0],
        (200, json!({"is_compatible": true, "messages": []}))
    );
    assert_eq!(
        answers[1],
        (
            200,
            json!({"is_compatible": false, "messages": ["a stored event cannot be read: orders/0@1: /note: 5 is not of type \"string\""]})
        )
    );
    assert_eq!(
        answers[2].1["messages"].as_array().map(Vec::len),
        Some(1),
        "the newest record only"
    );
    assert_eq!(
        (answers[3].0, answers[3].1["error_code"].clone()),
        (404, json!(40410))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_budget_is_a_server_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (running, base) = serve(dir.path(), |config| config.registry_checks.steps_max = 3).await;
    let answers = tokio::task::spawn_blocking(move || {
        let url = format!("{base}/subjects/orders/versions");
        let v1 = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
        let v2 = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}});
        [send(&url, JSON_MEDIA, register_body(&v1)), send(&url, JSON_MEDIA, register_body(&v2))]
    })
    .await
    .unwrap();
    running.stop().await;
    assert_eq!(answers[0].0, 200);
    assert_eq!(
        (answers[1].0, answers[1].1["error_code"].as_u64()),
        (422, Some(42201))
    );
    assert!(
        answers[1].1["message"]
            .as_str()
            .unwrap()
            .contains("more than 3 schema pairs"),
        "{answers:?}"
    );
}
