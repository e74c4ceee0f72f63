//! `keel schema` and `keel catalog` as a user runs them: register versions from files, `check`
//! as a CI gate (exit code and the path of each incompatibility), list, diff, and a catalog
//! written to disk.

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
