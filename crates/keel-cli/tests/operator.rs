//! The operator verbs end to end through the `keel` binary: `keel groups list|lag|reset` and
//! `keel dlq list|show|replay|canary|purge|history`, on a fresh data directory.
//!
//! Dead letters are written by the test with the router's `keel_dlq_*` headers (the binary
//! runs no router); `keel_runtime`'s own tests produce them with a real router.

use keel_log::{Log, NewRecord, TopicConfig};
use keel_runtime::{DeadLetterHeaders, DeadLetterKind, IncompletePayload, PayloadLoss};
use serde_json::Value;

mod support;

use support::Keel;

impl Keel {
    /// Runs and expects JSON on stdout.
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args, "")).expect("JSON output")
    }

    /// Creates `orders` (one partition) with five events, keys `poison` and `ok`.
    fn orders(&self) {
        self.ok(&["topics", "create", "orders"], "");
        let lines: String = (0..5)
            .map(|i| {
                let key = if i % 2 == 0 { "poison" } else { "ok" };
                format!(r#"{{"key":"{key}","type":"order.placed","data":{{"seq":{i}}}}}"#) + "\n"
            })
            .collect();
        let output = self.run(&["produce", "orders"], &lines);
        assert!(output.status.success(), "{output:?}");
    }

    /// Writes the `poison` events of `orders` to `orders.dlq` as the router would.
    fn dead_letter_poison(&self) {
        self.dead_letter_poison_marked(|_| None);
    }

    /// As [`Keel::dead_letter_poison`], adding the mark `incomplete` gives the dead letter
    /// of the event at an offset of `orders`, as the outbox relay writes it.
    fn dead_letter_poison_marked(&self, incomplete: impl Fn(u64) -> Option<IncompletePayload>) {
        let log = Log::open(self.dir.path()).expect("open log");
        let dlq = log
            .create_topic("orders.dlq", TopicConfig::new(1))
            .expect("create dlq");
        let orders = log.topic("orders").unwrap();
        let records = orders.partitions()[0].read_records(0, 1 << 20).unwrap();
        for record in records
            .into_iter()
            .filter(|r| r.key.as_deref() == Some(&b"poison"[..]))
        {
            let mut headers = record.headers.clone();
            let dead_letter = DeadLetterHeaders {
                topic: "orders".into(),
                partition: 0,
                offset: record.offset,
                group: "shipping".into(),
                handler: "ship".into(),
                attempts: 3,
                first_failure_ms: 1000,
                last_failure_ms: 2000,
                error: "no such warehouse".into(),
                kind: DeadLetterKind::Permanent,
            };
            headers.extend(dead_letter.encode());
            headers.extend(incomplete(record.offset).iter().flat_map(|i| i.encode()));
            dlq.partitions()[0]
                .append(&[NewRecord {
                    key: record.key,
                    value: record.value,
                    headers,
                    timestamp_ms: None,
                }])
                .unwrap();
        }
    }
}

#[test]
fn operator_verbs_have_help() {
    let keel = Keel::new();
    for verb in [
        &["groups", "--help"][..],
        &["groups", "list", "--help"],
        &["groups", "lag", "--help"],
        &["groups", "reset", "--help"],
        &["groups", "delete", "--help"],
        &["dlq", "--help"],
        &["dlq", "list", "--help"],
        &["dlq", "show", "--help"],
        &["dlq", "replay", "--help"],
        &["dlq", "canary", "--help"],
        &["dlq", "purge", "--help"],
        &["dlq", "history", "--help"],
    ] {
        let out = keel.ok(verb, "");
        assert!(out.contains("Usage:"), "{verb:?}: {out}");
    }
}

#[test]
fn groups_lag_and_reset() {
    let keel = Keel::new();
    keel.orders();
    keel.ok(
        &[
            "consume",
            "orders",
            "--group",
            "g",
            "--from-beginning",
            "--max",
            "2",
        ],
        "",
    );
    let lag = keel.json(&["groups", "lag", "g", "--json"]);
    assert_eq!(lag[0]["committed_offset"], 2);
    assert_eq!(lag[0]["high_watermark"], 5);
    assert_eq!(lag[0]["lag_events"], 3);
    assert!(lag[0]["lag_ms"].as_u64().is_some());
    let table = keel.ok(&["groups", "lag"], "");
    assert!(
        table.contains("GROUP") && table.contains("orders"),
        "{table}"
    );
    let list = keel.json(&["groups", "list", "--json"]);
    assert_eq!(list[0]["group"], "g");
    assert_eq!(list[0]["lag_events"], 3);

    // A dry run commits nothing.
    let plan = keel.json(&[
        "groups",
        "reset",
        "g",
        "--topic",
        "orders",
        "--to-earliest",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(plan[0]["offset_before"], 2);
    assert_eq!(plan[0]["offset_after"], 0);
    assert_eq!(
        keel.json(&["groups", "lag", "g", "--json"])[0]["lag_events"],
        3
    );
    // (flags, committed offset afterwards)
    let cases: &[(&[&str], u64)] = &[
        (&["--to-earliest"], 0),
        (&["--to-latest"], 5),
        (&["--to-offset", "4"], 4),
        (&["--to-offset", "99"], 5),
        (&["--to-time", "0"], 0),
        (&["--to-time", "2999-01-01T00:00:00Z"], 5),
    ];
    for (flags, offset) in cases {
        let mut args = vec!["groups", "reset", "g", "--topic", "orders"];
        args.extend_from_slice(flags);
        keel.ok(&args, "");
        let lag = keel.json(&["groups", "lag", "g", "--json"]);
        assert_eq!(lag[0]["committed_offset"], *offset, "{flags:?}");
        assert_eq!(lag[0]["lag_events"], 5 - offset, "{flags:?}");
    }
    keel.fails(
        &["groups", "lag", "nobody"],
        "",
        "group 'nobody' has no committed offsets",
    );
    keel.fails(
        &["groups", "reset", "g", "--topic", "nope", "--to-earliest"],
        "",
        "topic 'nope' does not exist",
    );
    keel.fails(
        &["groups", "reset", "g", "--topic", "orders"],
        "",
        "--to-earliest",
    );
    // Two targets are a usage error (clap's multi-line usage report).
    let both = [
        "groups",
        "reset",
        "g",
        "--topic",
        "orders",
        "--to-earliest",
        "--to-latest",
    ];
    assert!(!keel.run(&both, "").status.success());
}

#[test]
fn a_replay_to_a_group_goes_to_the_redelivery_topic_addressed_to_it() {
    let keel = Keel::new();
    keel.orders();
    keel.dead_letter_poison();
    keel.fails(
        &[
            "dlq",
            "replay",
            "orders",
            "--group",
            "billing",
            "--to-group",
            "shipping",
        ],
        "",
        "--to-group shipping replays only dead letters of group shipping",
    );
    keel.fails(
        &["dlq", "replay", "orders", "--all", "--to-group", "billing"],
        "",
        "group 'billing' gave up on no dead letter in 'orders'",
    );
    let report = keel.json(&[
        "dlq",
        "replay",
        "orders",
        "--all",
        "--to-group",
        "shipping",
        "--json",
    ]);
    let replayed = report["replayed"].as_array().unwrap();
    assert_eq!(replayed.len(), 3);
    assert!(
        replayed.iter().all(|r| r["target"][0] == "orders.retry"),
        "{report}"
    );
    // Nothing went back to the original topic, where every group would see it.
    assert_eq!(keel.ok(&["consume", "orders", "--offset", "5"], ""), "");
    let log = Log::open(keel.dir.path()).expect("open log");
    let retry = log.topic("orders.retry").expect("the redelivery topic");
    let records = retry.partitions()[0].read_records(0, 1 << 20).unwrap();
    assert_eq!(records.len(), 3);
    for record in &records {
        let redelivery = keel_runtime::Redelivery::decode(&record.headers).expect("addressed");
        assert_eq!(
            (redelivery.group.as_str(), redelivery.attempts),
            ("shipping", 0)
        );
        assert_eq!(redelivery.topic, "orders");
    }
}

#[test]
fn dead_letters_are_listed_shown_replayed_once_purged_and_audited() {
    let keel = Keel::new();
    keel.orders();
    keel.fails(
        &["dlq", "show", "orders", "--all"],
        "",
        "no dead-letter topic 'orders'",
    );
    keel.dead_letter_poison();

    let list = keel.json(&["dlq", "list", "--json"]);
    assert_eq!(list[0]["dead_letter_topic"], "orders.dlq");
    assert_eq!(list[0]["pending"], 3);
    assert_eq!(list[0]["causes"][0]["group"], "shipping");
    assert_eq!(list[0]["causes"][0]["kind"], "permanent");
    assert!(keel.ok(&["dlq", "list"], "").contains("orders.dlq"));

    let shown = keel.ok(&["dlq", "show", "orders", "--offset", "1", "--json"], "");
    let shown: Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(
        shown["headers"]["offset"], 2,
        "the second poison event was offset 2"
    );
    assert_eq!(shown["headers"]["attempts"], 3);
    assert_eq!(shown["headers"]["error"], "no such warehouse");
    assert_eq!(shown["event"]["type"], "order.placed");
    let event_id = shown["event"]["id"].as_str().unwrap().to_string();
    let text = keel.ok(&["dlq", "show", "orders.dlq", "--id", &event_id], "");
    assert!(
        text.contains("orders/0/2") && text.contains("no such warehouse"),
        "{text}"
    );

    // Replay and purge need a selection.
    keel.fails(
        &["dlq", "replay", "orders"],
        "",
        "select dead letters with --all",
    );
    // A canary replays one; until the group handled it, continuing is refused.
    let canary = keel.json(&["dlq", "replay", "orders", "--all", "--canary", "--json"]);
    assert_eq!(canary["replayed"].as_array().unwrap().len(), 1);
    let canary_id = canary["id"].as_str().unwrap().to_string();
    keel.fails(&["dlq", "canary", &canary_id], "", "not handled yet");
    keel.fails(
        &[
            "dlq",
            "replay",
            "orders",
            "--all",
            "--after-canary",
            &canary_id,
        ],
        "",
        "not handled yet",
    );
    // The group runs (here: reads to the end and commits) and the canary counts as handled.
    keel.ok(
        &[
            "consume",
            "orders",
            "--group",
            "shipping",
            "--from-beginning",
        ],
        "",
    );
    assert!(
        keel.ok(&["dlq", "canary", &canary_id], "")
            .contains("handled")
    );
    let rest = keel.json(&[
        "dlq",
        "replay",
        "orders",
        "--all",
        "--after-canary",
        &canary_id,
        "--json",
    ]);
    assert_eq!(rest["replayed"].as_array().unwrap().len(), 2);
    assert_eq!(rest["skipped_replayed"], 1);
    let again = keel.json(&["dlq", "replay", "orders", "--all", "--json"]);
    assert_eq!(again["replayed"].as_array().unwrap().len(), 0);
    assert_eq!(again["skipped_replayed"], 3);
    let replays: Vec<Value> = keel
        .ok(&["consume", "orders", "--offset", "5"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replays.len(), 3, "each dead letter replayed once");
    assert!(
        replays
            .iter()
            .any(|r| r["event"]["id"] == event_id.as_str())
    );

    // Purge: without --yes it prints what would go and fails; with --yes it is done.
    let would = keel.fails(
        &["dlq", "purge", "orders", "--kind", "permanent"],
        "",
        "add --yes",
    );
    assert_eq!(would.lines().count(), 3, "{would}");
    keel.ok(
        &["dlq", "purge", "orders", "--kind", "permanent", "--yes"],
        "",
    );
    let list = keel.json(&["dlq", "list", "--json"]);
    assert_eq!(
        (list[0]["pending"].clone(), list[0]["purged"].clone()),
        (0.into(), 3.into())
    );

    let history: Vec<Value> = keel
        .ok(&["dlq", "history", "orders", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = history
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["canary", "replay", "replay", "purge"]);
    assert!(
        history[3]["command"]
            .as_str()
            .unwrap()
            .contains("dlq purge orders --kind permanent --yes")
    );
    assert!(keel.ok(&["dlq", "history"], "").contains("purge"));
}

/// A dead letter whose data was dropped, or that stands in for unreadable bytes, is not the
/// event that failed: replay refuses it, counts it, names where the original is kept and
/// exits non-zero, while the whole dead letters beside it are replayed.
#[test]
fn a_replay_refuses_dead_letters_that_do_not_hold_their_event() {
    let keel = Keel::new();
    keel.orders();
    keel.dead_letter_poison_marked(|offset| {
        let loss = match offset {
            0 => PayloadLoss::Dropped,
            2 => PayloadLoss::Unreadable,
            _ => return None,
        };
        Some(IncompletePayload {
            loss,
            original: format!("keel_outbox_dead row {offset} of the application database"),
        })
    });
    let shown = keel.ok(&["dlq", "show", "orders", "--offset", "0"], "");
    assert!(shown.contains("payload:         dropped"), "{shown}");
    let output = keel.run(&["dlq", "replay", "orders", "--all", "--json"], "");
    assert!(
        !output.status.success(),
        "a replay that refused some succeeded"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused 2 dead letter(s)")
            && stderr.contains("keel_outbox_dead row 0 of the application database"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["replayed"].as_array().unwrap().len(), 1);
    let refused: Vec<&str> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["loss"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["dropped", "unreadable"]);
    let replayed = keel.ok(&["consume", "orders", "--offset", "5"], "");
    assert_eq!(
        replayed.lines().count(),
        1,
        "only the whole dead letter: {replayed}"
    );
    // Asked again, they are refused again: never replayed, never counted as replayed.
    keel.fails(
        &["dlq", "replay", "orders", "--all"],
        "",
        "refused 2 dead letter(s)",
    );
}

/// A mistyped name is an error that names it, never a success that did nothing (or made an
/// empty directory, or a group that shows lag forever).
#[test]
fn typos_are_errors_not_silent_successes() {
    let keel = Keel::new();
    keel.orders();
    keel.dead_letter_poison();
    keel.ok(&["consume", "orders", "--group", "g"], "");
    let missing = keel.dir.path().join("no-such-dir");
    let missing = missing.to_str().unwrap();
    for verb in [
        &["topics", "list"][..],
        &["topics", "describe", "orders"],
        &["consume", "orders"],
        &["produce", "orders", "--type", "order.placed"],
        &["groups", "list"],
        &["dlq", "list"],
    ] {
        let mut args = vec!["--data-dir", missing];
        args.extend_from_slice(verb);
        keel.fails(&args, "", "does not exist");
    }
    assert!(
        !std::path::Path::new(missing).exists(),
        "a read created the directory"
    );
    keel.fails(
        &[
            "groups",
            "reset",
            "nosuchgroup",
            "--topic",
            "orders",
            "--to-earliest",
        ],
        "",
        "group 'nosuchgroup' has no committed offsets",
    );
    assert!(!keel.ok(&["groups", "list"], "").contains("nosuchgroup"));
    keel.fails(
        &[
            "dlq",
            "replay",
            "orders",
            "--all",
            "--to-group",
            "nosuchgroup",
        ],
        "",
        "group 'nosuchgroup' gave up on no dead letter in 'orders'",
    );
    keel.fails(
        &["dlq", "replay", "orders", "--type", "order.shipped"],
        "",
        "no dead letter in 'orders' matches the selection",
    );
    keel.fails(
        &["dlq", "purge", "orders", "--group", "nosuchgroup", "--yes"],
        "",
        "no dead letter in 'orders' matches the selection",
    );
    let bogus = keel.run(&["dlq", "replay", "orders", "--kind", "bogus"], "");
    assert!(!bogus.status.success());
    assert!(
        String::from_utf8_lossy(&bogus.stderr).contains("invalid value 'bogus' for '--kind"),
        "{bogus:?}"
    );
    for internal in ["_keel_schemas", "keel.dlq.audit", "__consumer_offsets"] {
        let output = keel.run(&["topics", "delete", internal], "");
        assert!(!output.status.success(), "deleted {internal}");
    }
    // groups delete forgets the group; a second delete names it as unknown.
    keel.ok(&["groups", "delete", "g"], "");
    keel.fails(
        &["groups", "lag", "g"],
        "",
        "group 'g' has no committed offsets",
    );
    keel.fails(
        &["groups", "delete", "g"],
        "",
        "group 'g' has no committed offsets",
    );
}

/// The config file's `brokers` entry stands in for --brokers (and `KEEL_BROKERS`, the same
/// clap argument), which win over it; a file with only `keel serve`'s keys leaves the
/// verbs on the data directory.
#[test]
fn the_config_files_brokers_entry_stands_in_for_the_flag() {
    let keel = Keel::new();
    keel.orders();
    let path = keel.dir.path().join("keel.toml");
    let config = path.to_str().unwrap();
    std::fs::write(&path, "kafka = \"127.0.0.1:9092\"\n").unwrap();
    keel.ok(&["groups", "list", "--config", config], "");
    std::fs::write(&path, "brokers = 5\n").unwrap();
    for verb in ["groups", "dlq"] {
        keel.fails(
            &[verb, "list", "--config", config],
            "",
            "invalid config file",
        );
    }
    keel.fails(&["demo", "--config", config], "", "invalid config file");
    #[cfg(not(feature = "kafka"))]
    {
        // The flag names the cluster, but the file is still read for its
        // [kafka_properties], so a broken file is reported all the same.
        keel.fails(
            &[
                "groups",
                "list",
                "--config",
                config,
                "--brokers",
                "127.0.0.1:1",
            ],
            "",
            "invalid config file",
        );
        std::fs::write(&path, "brokers = \"127.0.0.1:1\"\n").unwrap();
        keel.fails(
            &["groups", "list", "--config", config],
            "",
            "--brokers needs a keel built with the `kafka` feature",
        );
    }
    // `keel demo` finds the same cluster (and asks for the directory its processes share);
    // --engine and a named cluster together are refused.
    std::fs::write(&path, "brokers = \"127.0.0.1:1\"\n").unwrap();
    keel.fails(&["demo", "--config", config], "", "--brokers needs --dir");
    keel.fails(
        &[
            "demo",
            "--engine",
            "nats://127.0.0.1:1",
            "--brokers",
            "127.0.0.1:1",
        ],
        "",
        "both say where to run",
    );
}
