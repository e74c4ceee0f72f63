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

fn client_available() -> bool {
    let import = "from confluent_kafka.schema_registry.json_schema import JSONSerializer";
    let available = Command::new("python3")
        .args(["-c", import])
        .output()
        .is_ok_and(|output| output.status.success());
    match (available, std::env::var_os(CLIENT_VAR).is_some()) {
        (true, _) => true,
        (false, true) => panic!(
            "{CLIENT_VAR} is set but python3 cannot import confluent_kafka's schema registry client \
             (pip install 'confluent-kafka[json,schemaregistry]')"
        ),
        (false, false) => {
            println!(
                "schema registry client test did not run: confluent-kafka[json,schemaregistry] is not installed (set {CLIENT_VAR}=1 to require it)"
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
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let bound = running.bound;
    let url = format!("http://{}", bound.registry.expect("registry listener"));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/schema_registry_client.py"
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &url])
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    running.stop().await;
    assert!(
        output.status.success(),
        "client script failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let step = |name: &str| -> &Value {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {steps:#?}"))
    };

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
