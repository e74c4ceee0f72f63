//! `keel schema` and `keel catalog` as a user runs them: register versions from files, `check`
//! as a CI gate (exit code and the path of each incompatibility, and against the stored
//! events), list, diff, a catalog written to disk, the same verbs against a running
//! `keel serve`'s registry (found through the data directory, or `--registry`), and
//! `keel produce` refusing data that breaks its type's schema.

#[path = "support/serve.rs"]
mod server;
mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::Keel;

impl Keel {
    /// Writes a schema file into the data directory's parent and returns its path.
    fn schema_file(&self, name: &str, schema: Value) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, schema.to_string()).unwrap();
        path.display().to_string()
    }
}

fn contract(total_type: &str, extra: Option<&str>) -> Value {
    let mut properties = json!({"order_id": {"type": "string"}, "total": {"type": total_type}});
    if let Some(name) = extra {
        properties[name] = json!({"type": "string"});
    }
    json!({"type": "object", "properties": properties, "required": ["order_id"], "additionalProperties": false})
}

#[test]
fn register_check_list_and_diff() {
    let keel = Keel::new();
    let v1 = keel.schema_file("v1.json", contract("integer", None));
    let v2 = keel.schema_file("v2.json", contract("integer", Some("note")));
    let breaking = keel.schema_file("breaking.json", contract("string", None));
    assert_eq!(
        keel.ok(&["schema", "register", "order.placed", &v1], ""),
        "order.placed: registered version 1 (id 1)\n"
    );
    assert_eq!(
        keel.ok(&["schema", "register", "order.placed", &v1], ""),
        "order.placed: already registered as version 1 (id 1)\n"
    );
    let checked = keel.ok(&["schema", "check", "order.placed", &v2], "");
    assert!(
        checked.ends_with("compatible with order.placed under BACKWARD (1 earlier version(s))\n"),
        "{checked}"
    );
    keel.ok(&["schema", "register", "order.placed", &v2], "");

    // The CI gate: a breaking change exits non-zero, with the path on stdout.
    let stdout = keel.fails(
        &["schema", "check", "order.placed", &breaking],
        "",
        "incompatible change(s)",
    );
    assert!(
        stdout.contains("#/properties/total/type: TYPE_NARROWED: the writer allows 'integer', the reader accepts only 'string'"),
        "{stdout}"
    );
    keel.fails(
        &["schema", "register", "order.placed", &breaking],
        "",
        "#/properties/total/type: TYPE_NARROWED",
    );
    // Under NONE the same file passes the gate.
    keel.ok(
        &[
            "schema",
            "check",
            "order.placed",
            &breaking,
            "--level",
            "NONE",
        ],
        "",
    );

    let listed = keel.ok(&["schema", "list"], "");
    assert_eq!(listed, "order.placed\tversion 2\tid 2\tBACKWARD\n");
    assert_eq!(
        keel.ok(&["schema", "list", "order.placed"], "")
            .lines()
            .count(),
        2
    );

    let diffed = keel.ok(
        &["schema", "diff", "order.placed@1", "order.placed@latest"],
        "",
    );
    assert!(diffed.starts_with("BACKWARD compatible (new readers of old data), FORWARD breaks (old readers of new data), FULL breaks\n"), "{diffed}");
    assert!(diffed.contains("forward\t#/properties/note: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"), "{diffed}");
    keel.fails(
        &["schema", "register", "order.placed", "/nonexistent.json"],
        "",
        "cannot read /nonexistent.json",
    );
}

#[test]
fn a_property_added_to_an_open_content_model_is_refused_saying_how_to_close_it() {
    let keel = Keel::new();
    let open = |extra: Option<&str>| {
        let mut schema = contract("integer", extra);
        schema
            .as_object_mut()
            .unwrap()
            .remove("additionalProperties");
        schema
    };
    let v1 = keel.schema_file("open1.json", open(None));
    let v2 = keel.schema_file("open2.json", open(Some("note")));
    keel.ok(&["schema", "register", "order.placed", &v1], "");
    keel.fails(
        &["schema", "register", "order.placed", &v2],
        "",
        "#/properties/note: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL: property 'note' added",
    );
    keel.fails(
        &["schema", "register", "order.placed", &v2],
        "",
        "close the content model (\"additionalProperties\": false, from the subject's first version on)",
    );
}

#[test]
fn produce_refuses_data_that_breaks_its_types_schema_unless_told_not_to_check() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--partitions", "2"], "");
    // Before any schema is registered, nothing is checked (and no registry is created).
    keel.ok(
        &[
            "produce",
            "orders",
            "--type",
            "order.placed",
            "--data",
            "{}",
        ],
        "",
    );
    let v1 = keel.schema_file("v1.json", contract("integer", None));
    keel.ok(&["schema", "register", "order.placed", &v1], "");

    let good = r#"{"key":"o-1","type":"order.placed","data":{"order_id":"o-1","total":3}}"#;
    let bad = r#"{"key":"o-2","type":"order.placed","data":{"order_id":"o-2","total":"3"}}"#;
    let other = r#"{"key":"o-3","type":"order.shipped","data":{"anything":true}}"#;
    keel.fails(
        &["produce", "orders"],
        &format!("{good}\n{other}\n{bad}\n"),
        "line 3: 0 earlier event(s) were produced, none after: refused event of type \"order.placed\" version 1: ",
    );
    let error = keel.fails(
        &[
            "produce",
            "orders",
            "--type",
            "order.placed",
            "--data",
            r#"{"total":1}"#,
        ],
        "",
        "(--no-validate stores it unchecked)",
    );
    assert!(error.is_empty(), "nothing printed on stdout: {error}");
    let stored = keel.ok(&["consume", "orders", "--from-beginning"], "");
    assert_eq!(
        stored.lines().count(),
        1,
        "only the unchecked first event: {stored}"
    );

    keel.ok(&["produce", "orders", "--no-validate"], &format!("{bad}\n"));
    keel.ok(&["produce", "orders"], &format!("{good}\n{other}\n"));
    let stored = keel.ok(&["consume", "orders", "--from-beginning"], "");
    assert_eq!(stored.lines().count(), 4, "{stored}");
}

#[test]
fn compatibility_levels_are_set_per_subject_or_globally() {
    let keel = Keel::new();
    let v1 = keel.schema_file("v1.json", contract("integer", None));
    let breaking = keel.schema_file("breaking.json", contract("string", None));
    assert_eq!(
        keel.ok(&["schema", "config"], ""),
        "(global): compatibility BACKWARD (inherited: global or default)\n"
    );
    assert_eq!(
        keel.ok(&["schema", "config", "--set", "FULL"], ""),
        "(global): compatibility FULL\n"
    );
    assert_eq!(
        keel.ok(&["schema", "config", "order.placed"], ""),
        "order.placed: compatibility FULL (inherited: global or default)\n"
    );
    let registered = keel.ok(
        &[
            "schema",
            "register",
            "order.placed",
            &v1,
            "--compatibility",
            "NONE",
        ],
        "",
    );
    assert_eq!(
        registered,
        "order.placed: compatibility NONE\norder.placed: registered version 1 (id 1)\n"
    );
    // Under NONE a breaking version registers; under the global FULL it would not.
    keel.ok(&["schema", "register", "order.placed", &breaking], "");
}

#[test]
fn catalog_writes_asyncapi_and_html() {
    let keel = Keel::new();
    let v1 = keel.schema_file("v1.json", contract("integer", None));
    keel.ok(&["schema", "register", "order.placed", &v1], "");
    keel.ok(&["topics", "create", "orders", "--partitions", "2"], "");
    keel.ok(
        &["produce", "orders"],
        "{\"key\":\"o-1\",\"type\":\"order.placed\",\"data\":{\"order_id\":\"o-1\",\"total\":42}}\n",
    );
    let out = keel.dir.path().join("catalog-out");
    let printed = keel.ok(
        &["catalog", "--out", out.to_str().unwrap(), "--title", "Shop"],
        "",
    );
    assert!(
        printed
            .starts_with("catalog: 1 topic(s), 1 event type(s) on them, 1 registered subject(s)\n"),
        "{printed}"
    );
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("asyncapi.json")).unwrap()).unwrap();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(document["info"]["title"], "Shop");
    assert_eq!(document["channels"]["orders"]["address"], "orders");
    assert_eq!(
        document["components"]["messages"]["order.placed"]["examples"][0]["payload"],
        json!({"order_id": "o-1", "total": 42})
    );
    let page = std::fs::read_to_string(out.join("catalog.html")).unwrap();
    assert!(
        page.contains("<h3 id=\"event-order.placed\">order.placed</h3>"),
        "{page}"
    );
}

#[test]
fn check_against_events_names_the_partition_offset_and_path_of_an_unreadable_event() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders"], "");
    let event = |id: &str, data: Value| {
        json!({"specversion": "1.0", "id": id, "source": "/orders", "type": "order.placed", "data": data})
            .to_string()
            + "\n"
    };
    let stdin = [
        event("1", json!({"order_id": "o-1", "total": 1})),
        event("2", json!({"order_id": "o-2", "total": 2, "note": 5})),
        event("3", json!({"order_id": "o-3", "total": 3, "note": "gift"})),
    ]
    .concat();
    keel.ok(&["produce", "orders"], &stdin);
    let open = json!({"type": "object", "properties": {"order_id": {"type": "string"}, "total": {"type": "integer"}}, "required": ["order_id"]});
    keel.ok(
        &[
            "schema",
            "register",
            "order.placed",
            &keel.schema_file("v1.json", open),
        ],
        "",
    );
    let noted = keel.schema_file("noted.json", json!({"type": "object", "properties": {"order_id": {"type": "string"}, "total": {"type": "integer"}, "note": {"type": "string"}}, "required": ["order_id"]}));
    let args = [
        "schema",
        "check",
        "order.placed",
        &noted,
        "--level",
        "NONE",
        "--against-events",
        "orders",
    ];
    let stdout = keel.fails(&args, "", "the first at partition 0 offset 1, path /note");
    assert!(
        stdout.contains("orders/0@1: /note: 5 is not of type \"string\""),
        "{stdout}"
    );
    let sampled = keel.ok(&[&args[..], &["--sample", "1"]].concat(), "");
    assert!(
        sampled
            .ends_with("reads all 1 stored order.placed event(s) on orders (1 record(s) read)\n"),
        "{sampled}"
    );
}

#[test]
fn schema_verbs_work_against_a_running_registry() {
    let keel = Keel::new();
    let (mut child, line) = keel.start_server(&[]);
    let registry = format!("http://{}", server::address(&line, "registry"));
    let v1 = keel.schema_file("v1.json", contract("integer", None));
    let breaking = keel.schema_file("breaking.json", contract("string", None));
    // The server owns the data directory: the verbs find its registry there.
    assert_eq!(
        keel.ok(&["schema", "register", "order.placed", &v1], ""),
        "order.placed: registered version 1 (id 1)\n"
    );
    assert_eq!(
        keel.ok(&["schema", "list"], ""),
        "order.placed\tversion 1\tid 1\tBACKWARD\n"
    );
    let stdout = keel.fails(
        &["schema", "check", "order.placed", &breaking],
        "",
        "incompatible change(s)",
    );
    assert!(
        stdout.contains("#/properties/total/type: TYPE_NARROWED"),
        "{stdout}"
    );
    keel.fails(
        &[
            "schema",
            "check",
            "order.placed",
            &v1,
            "--against-events",
            "orders",
        ],
        "",
        "which a running server owns",
    );
    // Compatibility levels through the server's registry: a subject's own, then inherited.
    assert_eq!(
        keel.ok(&["schema", "config", "order.placed"], ""),
        "order.placed: compatibility BACKWARD (inherited: global or default)\n"
    );
    keel.ok(&["schema", "config", "order.placed", "--set", "NONE"], "");
    assert_eq!(
        keel.ok(&["schema", "config", "order.placed"], ""),
        "order.placed: compatibility NONE\n"
    );
    keel.ok(&["schema", "check", "order.placed", &breaking], "");
    keel.ok(
        &["schema", "config", "order.placed", "--set", "BACKWARD"],
        "",
    );
    // Named explicitly, from anywhere (another, empty data directory).
    let elsewhere = Keel::new();
    let diff = elsewhere.ok(
        &[
            "schema",
            "diff",
            "order.placed@1",
            &breaking,
            "--registry",
            &registry,
        ],
        "",
    );
    assert!(diff.starts_with("BACKWARD breaks"), "{diff}");
    assert_eq!(
        elsewhere.ok(
            &[
                "schema",
                "register",
                "order.placed",
                &v1,
                "--registry",
                &registry
            ],
            ""
        ),
        "order.placed: already registered as version 1 (id 1)\n"
    );
    // The catalog takes its schemas from the server's registry.
    let out = keel.dir.path().join("catalog-served");
    let written = keel.ok(&["catalog", "--out", &out.display().to_string()], "");
    assert!(written.contains("1 registered subject(s)"), "{written}");
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("asyncapi.json")).unwrap()).unwrap();
    assert_eq!(
        document["components"]["messages"]["order.placed"]["x-keel-schema-version"], 1,
        "{document:#}"
    );
    assert!(server::terminate(&mut child));
}
