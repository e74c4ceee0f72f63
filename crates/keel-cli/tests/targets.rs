//! The verbs that work on a data directory and on a running `keel serve` answer the same on
//! both: one scenario (topics create, list, describe, alter and delete; produce, with a
//! schema's refusal; consume; schema register and list; groups and dlq list; and with the
//! `kafka` feature a consumer group and its lag), run once against a bare data directory and
//! once while `keel serve` owns it, the CLI finding the server there.

#[path = "support/serve.rs"]
mod server;
mod support;

use serde_json::{Value, json};
use support::Keel;

/// Where the scenario's verbs act.
enum Target {
    Directory,
    Server,
}

#[test]
fn the_verbs_answer_the_same_on_a_data_directory() {
    scenario(Target::Directory);
}

#[test]
fn the_verbs_answer_the_same_through_keel_serve() {
    scenario(Target::Server);
}

fn scenario(target: Target) {
    let keel = Keel::new();
    let mut served = match target {
        Target::Directory => {
            keel.ok(&["topics", "create", "seed"], "");
            None
        }
        Target::Server => Some(keel.start_server(&[])),
    };

    keel.ok(
        &[
            "topics",
            "create",
            "t",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
        "",
    );
    let listed = keel.ok(&["topics", "list"], "");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("t\t") || l.starts_with("t ")),
        "{listed}"
    );
    let described = keel.ok(&["topics", "describe", "t"], "");
    assert!(described.contains("partitions = 2"), "{described}");
    assert!(described.contains("retention_ms = 60000"), "{described}");
    let altered = keel.ok(
        &["topics", "alter", "t", "--config", "retention.ms=120000"],
        "",
    );
    assert!(
        altered.contains("retention_ms = 120000 (was 60000)"),
        "{altered}"
    );
    if let Some((_, line)) = &served {
        // Named with --server, the same server answers the same.
        let url = format!("http://{}", server::address(line, "http"));
        let named = keel.ok(&["--server", &url, "topics", "describe", "t"], "");
        assert_eq!(named, keel.ok(&["topics", "describe", "t"], ""));
    }
    keel.fails(&["topics", "describe", "nosuch"], "", "nosuch");

    // A schema for one type; produce checks it on both targets.
    let schema = keel.dir.path().join("placed.json");
    let contract = json!({"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]});
    std::fs::write(&schema, contract.to_string()).unwrap();
    assert_eq!(
        keel.ok(
            &[
                "schema",
                "register",
                "order.placed",
                schema.to_str().unwrap()
            ],
            ""
        ),
        "order.placed: registered version 1 (id 1)\n"
    );
    assert_eq!(
        keel.ok(&["schema", "list"], ""),
        "order.placed\tversion 1\tid 1\tBACKWARD\n"
    );
    let lines = (0..4)
        .map(|n| {
            json!({"key": format!("o-{n}"), "type": "order.placed", "data": {"total": n}})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    keel.ok(&["produce", "t"], &lines);
    keel.fails(
        &[
            "produce",
            "t",
            "--type",
            "order.placed",
            "--data",
            r#"{"total":"x"}"#,
        ],
        "",
        "/total",
    );

    let read = keel.ok(&["consume", "t", "--from-beginning"], "");
    let mut totals: Vec<i64> = read
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]["data"]["total"]
                .as_i64()
                .unwrap()
        })
        .collect();
    totals.sort();
    assert_eq!(totals, [0, 1, 2, 3], "{read}");
    let one = keel.ok(
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--offset",
            "0",
            "--max",
            "1",
        ],
        "",
    );
    assert_eq!(one.lines().count(), 1, "{one}");
    assert!(one.contains("\"partition\":1"), "{one}");
    assert_eq!(
        keel.ok(&["consume", "t"], ""),
        "",
        "from the end: nothing yet"
    );

    #[cfg(feature = "kafka")]
    {
        let grouped = keel.ok(&["consume", "t", "--group", "g"], "");
        assert_eq!(grouped.lines().count(), 4, "{grouped}");
        assert_eq!(
            keel.ok(&["consume", "t", "--group", "g"], ""),
            "",
            "committed"
        );
        let lag = keel.ok(&["groups", "lag", "g"], "");
        assert!(lag.contains('t'), "{lag}");
    }
    keel.ok(&["groups", "list"], "");
    keel.ok(&["dlq", "list"], "");

    keel.ok(&["topics", "delete", "t"], "");
    keel.fails(&["topics", "describe", "t"], "", "'t'");
    if let Some((child, _)) = served.as_mut() {
        assert!(server::terminate(child));
    }
}
