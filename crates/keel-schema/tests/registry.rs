//! The registry over a real log on disk: numbering, global ids, dedupe, compatibility
//! configuration, soft and permanent deletes, modes, and what survives a restart and a
//! `kill -9` (a child process registers versions and is killed with SIGKILL).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_log::Log;
use keel_schema::{
    CompatibilityLevel, Mode, Registry, RegistryError, Schema, SchemaType, VersionSelector,
};
use serde_json::{Value, json};

const CHILD_TEST: &str = "kill_child_registers_until_killed";
const CHILD_DIR_VAR: &str = "KEEL_SCHEMA_KILL_CHILD_DIR";

fn schema(document: Value) -> Schema {
    Schema::from_value(document).expect("valid schema")
}

/// Version `n` of a closed `order.placed` contract: each adds an optional field `fN`.
fn order_v(n: u32) -> Schema {
    let mut properties = serde_json::Map::new();
    properties.insert("order_id".into(), json!({"type": "string"}));
    for field in 2..=n {
        properties.insert(format!("f{field}"), json!({"type": "integer"}));
    }
    schema(
        json!({"type": "object", "properties": properties, "required": ["order_id"], "additionalProperties": false}),
    )
}

fn register(registry: &Registry, subject: &str, schema: Schema) -> (u32, u32) {
    let registered = registry
        .register(subject, SchemaType::Json, schema)
        .expect("registered");
    (registered.version, registered.id)
}

#[test]
fn versions_are_numbered_ids_are_global_and_identical_schemas_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    assert_eq!(register(&registry, "order.placed", order_v(1)), (1, 1));
    // The same schema spelled differently (key order, spaces) is the same version.
    let respelled = Schema::parse(
        SchemaType::Json,
        r#"{ "additionalProperties": false, "required": ["order_id"], "type": "object",
             "properties": { "order_id": { "type": "string" } } }"#,
    )
    .unwrap();
    assert_eq!(
        register(&registry, "order.placed", respelled.clone()),
        (1, 1)
    );
    // The same schema under another subject keeps its global id.
    assert_eq!(register(&registry, "order.copied", respelled), (1, 1));
    assert_eq!(register(&registry, "order.placed", order_v(2)), (2, 2));
    assert_eq!(register(&registry, "order.placed", order_v(3)), (3, 3));
    assert_eq!(registry.versions("order.placed", false).unwrap(), [1, 2, 3]);
    assert_eq!(registry.subjects(false), ["order.copied", "order.placed"]);
    let latest = registry
        .version("order.placed", VersionSelector::Latest, false)
        .unwrap();
    assert_eq!((latest.version, latest.id), (3, 3));
    assert_eq!(registry.schema_by_id(2).unwrap().1, order_v(2));
    assert_eq!(
        registry
            .lookup("order.placed", &order_v(2))
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        registry.usages_of(1, false),
        [
            ("order.copied".to_string(), 1),
            ("order.placed".to_string(), 1)
        ]
    );
    assert!(matches!(
        registry.lookup("order.placed", &order_v(9)),
        Err(RegistryError::SchemaNotFound(_))
    ));
    assert!(matches!(
        registry.version("order.placed", VersionSelector::Number(7), false),
        Err(RegistryError::VersionNotFound { version: 7, .. })
    ));
}

#[test]
fn an_incompatible_version_is_refused_with_the_path_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    register(&registry, "order.placed", order_v(2));
    let breaking = schema(
        json!({"type": "object", "properties": {"order_id": {"type": "string"}, "f2": {"type": "string"}}, "required": ["order_id"], "additionalProperties": false}),
    );
    let error = registry
        .register("order.placed", SchemaType::Json, breaking.clone())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "schema being registered is incompatible with an earlier schema for subject \"order.placed\" (BACKWARD): the new schema cannot read data of version 1: #/properties/f2/type: TYPE_NARROWED: the writer allows 'integer', the reader accepts only 'string'"
    );
    assert_eq!(registry.versions("order.placed", false).unwrap(), [1]);
    // The check alone reports the same, and NONE on the subject lets it through.
    assert_eq!(
        registry
            .check("order.placed", None, &breaking)
            .unwrap()
            .len(),
        1
    );
    registry
        .set_level(Some("order.placed"), Some(CompatibilityLevel::None))
        .unwrap();
    assert!(
        registry
            .check("order.placed", None, &breaking)
            .unwrap()
            .is_empty()
    );
    assert_eq!(register(&registry, "order.placed", breaking), (2, 2));
}

#[test]
fn levels_and_modes_apply_per_subject_then_globally() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    assert_eq!(registry.effective_level("a"), CompatibilityLevel::Backward);
    registry
        .set_level(None, Some(CompatibilityLevel::Full))
        .unwrap();
    registry
        .set_level(Some("b"), Some(CompatibilityLevel::ForwardTransitive))
        .unwrap();
    assert_eq!(registry.effective_level("a"), CompatibilityLevel::Full);
    assert_eq!(
        registry.effective_level("b"),
        CompatibilityLevel::ForwardTransitive
    );
    // FULL refuses an optional field added to a closed model (old readers would reject it).
    register(&registry, "a", order_v(1));
    assert!(matches!(
        registry.register("a", SchemaType::Json, order_v(2)),
        Err(RegistryError::Incompatible {
            level: CompatibilityLevel::Full,
            ..
        })
    ));
    registry.set_level(Some("b"), None).unwrap();
    assert_eq!(registry.level(Some("b")), None);
    assert_eq!(registry.effective_level("b"), CompatibilityLevel::Full);
    registry.set_mode(Some("a"), Some(Mode::ReadOnly)).unwrap();
    assert_eq!(
        registry
            .register("a", SchemaType::Json, order_v(1))
            .unwrap_err(),
        RegistryError::ReadOnly("a".into())
    );
    registry.set_mode(Some("a"), None).unwrap();
    assert_eq!(registry.mode(Some("a")), None);
}

#[test]
fn deletes_are_soft_then_permanent_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    for n in 1..=3 {
        register(&registry, "s", order_v(n));
    }
    assert_eq!(
        registry
            .delete_version("s", VersionSelector::Number(3), true)
            .unwrap_err(),
        RegistryError::VersionNotSoftDeleted {
            subject: "s".into(),
            version: 3
        }
    );
    assert_eq!(
        registry
            .delete_version("s", VersionSelector::Latest, false)
            .unwrap(),
        3
    );
    assert_eq!(
        registry
            .delete_version("s", VersionSelector::Number(3), false)
            .unwrap_err(),
        RegistryError::VersionSoftDeleted {
            subject: "s".into(),
            version: 3
        }
    );
    assert_eq!(registry.versions("s", false).unwrap(), [1, 2]);
    assert_eq!(registry.versions("s", true).unwrap(), [1, 2, 3]);
    assert!(
        registry
            .version("s", VersionSelector::Number(3), true)
            .unwrap()
            .deleted
    );
    // A soft-deleted version's schema stays readable by id, and numbering goes on.
    assert_eq!(registry.schema_by_id(3).unwrap().1, order_v(3));
    assert_eq!(register(&registry, "s", order_v(4)), (4, 4));
    assert_eq!(
        registry
            .delete_version("s", VersionSelector::Number(3), true)
            .unwrap(),
        3
    );
    assert_eq!(registry.versions("s", true).unwrap(), [1, 2, 4]);
    assert_eq!(
        registry.delete_subject("s", true).unwrap_err(),
        RegistryError::SubjectNotSoftDeleted("s".into())
    );
    assert_eq!(registry.delete_subject("s", false).unwrap(), [1, 2, 4]);
    assert!(registry.subjects(false).is_empty());
    assert_eq!(registry.subjects(true), ["s"]);
    assert_eq!(
        registry.delete_subject("s", false).unwrap_err(),
        RegistryError::SubjectSoftDeleted("s".into())
    );
    assert_eq!(registry.delete_subject("s", true).unwrap(), [1, 2, 4]);
    assert!(registry.subjects(true).is_empty());
    assert!(matches!(
        registry.versions("s", true),
        Err(RegistryError::SubjectNotFound(_))
    ));
}

#[test]
fn bad_schemas_and_subjects_are_refused_with_one_line() {
    let refused = |text: &str| {
        Schema::parse(SchemaType::Json, text)
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused("{").starts_with("invalid schema: not JSON"),
        "{}",
        refused("{")
    );
    assert_eq!(
        refused("42"),
        "invalid schema: a JSON Schema is an object or a boolean"
    );
    assert_eq!(
        refused(r#"{"$ref": "https://example.com/x.json"}"#),
        "invalid schema: #/$ref \"https://example.com/x.json\" points outside the document; reference another schema by listing it in the request's references"
    );
    assert_eq!(
        refused(r##"{"properties": {"a": {"$ref": "#/$defs/missing"}}}"##),
        "invalid schema: #/properties/a/$ref \"#/$defs/missing\" does not resolve"
    );
    assert!(refused(r#"{"type": "strnig"}"#).starts_with("invalid schema: "));
    assert!(!refused(r#"{"type": "strnig"}"#).contains('\n'));
    assert!(
        Schema::parse(SchemaType::Avro, "{}")
            .unwrap_err()
            .to_string()
            .starts_with("invalid schema: not an Avro schema: ")
    );
    assert_eq!(
        Schema::parse(SchemaType::Protobuf, "syntax = \"proto3\";")
            .unwrap_err()
            .to_string(),
        "invalid schema: a Protobuf schema defines at least one message"
    );
    assert!(
        Schema::parse(SchemaType::Protobuf, "message {")
            .unwrap_err()
            .to_string()
            .starts_with("invalid schema: not a Protobuf schema: ")
    );
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    assert_eq!(
        registry
            .register("", SchemaType::Json, order_v(1))
            .unwrap_err()
            .to_string(),
        "invalid subject \"\": empty"
    );
}

#[test]
fn payload_errors_name_the_failing_path() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    let (_, id) = register(
        &registry,
        "order.placed",
        schema(
            json!({"type": "object", "properties": {"lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}}}}),
        ),
    );
    let validator = registry.validator(id).unwrap();
    validator.validate(&json!({"lines": [{"qty": 2}]})).unwrap();
    let error = validator
        .validate(&json!({"lines": [{"qty": 2}, {"qty": 0}]}))
        .unwrap_err();
    assert_eq!(error.path, "/lines/1/qty");
    assert_eq!(
        error.to_string(),
        "payload breaks its schema at \"/lines/1/qty\": 0 is less than the minimum of 1"
    );
}

#[test]
fn the_registry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        let registry = Registry::open(&log).unwrap();
        register(&registry, "a", order_v(1));
        register(&registry, "a", order_v(2));
        register(&registry, "b", order_v(2));
        registry
            .delete_version("a", VersionSelector::Number(1), false)
            .unwrap();
        registry
            .set_level(None, Some(CompatibilityLevel::FullTransitive))
            .unwrap();
        registry
            .set_level(Some("b"), Some(CompatibilityLevel::None))
            .unwrap();
        registry.set_mode(Some("a"), Some(Mode::ReadOnly)).unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    assert_eq!(registry.skipped_records(), 0);
    assert_eq!(registry.versions("a", false).unwrap(), [2]);
    assert_eq!(registry.versions("a", true).unwrap(), [1, 2]);
    assert_eq!(
        registry
            .version("b", VersionSelector::Latest, false)
            .unwrap()
            .id,
        2
    );
    assert_eq!(
        registry.level(None),
        Some(CompatibilityLevel::FullTransitive)
    );
    assert_eq!(registry.effective_level("b"), CompatibilityLevel::None);
    assert_eq!(registry.mode(Some("a")), Some(Mode::ReadOnly));
    // The next id continues after the replayed ones.
    assert_eq!(register(&registry, "b", order_v(5)), (2, 3));
}

#[test]
fn acknowledged_registrations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked: Vec<(u32, u32)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some(rest) = line.strip_prefix("ack ") {
            let mut numbers = rest.split(' ').map(|n| n.parse::<u32>().expect("number"));
            acked.push((numbers.next().unwrap(), numbers.next().unwrap()));
        }
        if acked.len() >= 25 || Instant::now() > deadline {
            break;
        }
    }
    // SIGKILL: no destructor runs, no flush, no clean shutdown of the log.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    assert!(
        acked.len() >= 25,
        "the child acknowledged only {} registrations",
        acked.len()
    );
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    for (version, id) in &acked {
        let found = registry
            .version("order.placed", VersionSelector::Number(*version), false)
            .unwrap_or_else(|e| panic!("acknowledged version {version} lost: {e}"));
        assert_eq!(found.id, *id);
        assert_eq!(found.schema, order_v(*version));
    }
    // Whatever the child wrote after its last acknowledgement is whole or absent, and the
    // registry goes on numbering after it.
    let stored = registry.versions("order.placed", false).unwrap();
    let next = *stored.last().unwrap() + 1;
    assert_eq!(register(&registry, "order.placed", order_v(next)).0, next);
}

/// The child of [`acknowledged_registrations_survive_sigkill`]: registers versions until it is
/// killed, printing `ack <version> <id>` after each returns. Returns at once in a normal run.
#[test]
fn kill_child_registers_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let log = Log::open(Path::new(&dir)).unwrap();
    let registry = Registry::open(&log).unwrap();
    let started = Instant::now();
    for n in 1.. {
        let (version, id) = register(&registry, "order.placed", order_v(n));
        println!("ack {version} {id}");
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
}
