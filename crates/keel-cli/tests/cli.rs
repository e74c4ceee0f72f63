//! The `keel` binary end to end: every verb run as a user would, on a fresh data directory.

use serde_json::Value;

mod support;

use support::Keel;

impl Keel {
    /// Consumed events as JSON values.
    fn consume(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["consume"];
        full.extend_from_slice(args);
        self.ok(&full, "")
            .lines()
            .map(|line| serde_json::from_str(line).expect("consume prints JSON lines"))
            .collect()
    }
}

fn order_lines(range: std::ops::Range<u32>) -> String {
    range
        .map(|i| {
            format!(
                r#"{{"key":"order-{}","type":"order.placed","data":{{"order_id":"order-{}","seq":{i}}}}}"#,
                i % 5,
                i % 5
            )
            .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn every_verb_has_help() {
    let keel = Keel::new();
    for verb in [
        &["--help"][..],
        &["topics", "--help"],
        &["topics", "create", "--help"],
        &["topics", "list", "--help"],
        &["topics", "describe", "--help"],
        &["topics", "delete", "--help"],
        &["produce", "--help"],
        &["consume", "--help"],
        &["bench", "--help"],
    ] {
        let out = keel.ok(verb, "");
        assert!(out.contains("Usage:"), "{verb:?}: {out}");
    }
}

#[test]
fn console_help_shows_only_the_flags_that_apply() {
    let help = Keel::new().ok(&["console", "--help"], "");
    for shown in [
        "--brokers",
        "--http ",
        "--http-tokens",
        "--console-sample-groups-max",
        "--kafka-property",
    ] {
        assert!(help.contains(shown), "{shown} missing: {help}");
    }
    for hidden in [
        "--kafka ",
        "--kafka-sasl-mechanisms",
        "--registry",
        "--log-open-files-max",
    ] {
        assert!(!help.contains(hidden), "{hidden} shown: {help}");
    }
    let serve = Keel::new().ok(&["serve", "--help"], "");
    assert!(serve.contains("--kafka-partitions"), "{serve}");
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--partitions", "3"], "");
    keel.ok(
        &[
            "topics",
            "create",
            "audit",
            "--fsync",
            "interval:50",
            "--config",
            "retention_ms=60000",
        ],
        "",
    );
    let list = keel.ok(&["topics", "list"], "");
    assert!(list.contains("orders") && list.contains("audit"), "{list}");
    let described = keel.ok(&["topics", "describe", "audit"], "");
    assert!(described.contains("fsync = interval(50)"), "{described}");
    assert!(described.contains("retention_ms = 60000"), "{described}");
    assert_eq!(
        keel.ok(&["topics", "describe", "orders"], "")
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count(),
        3
    );
    keel.ok(&["topics", "delete", "audit"], "");
    assert!(!keel.ok(&["topics", "list"], "").contains("audit"));
}

/// `--config` takes Kafka's names, as `kafka-topics --config` and the Kafka listener do.
#[test]
fn topic_settings_by_their_kafka_names() {
    let keel = Keel::new();
    let mut args = vec!["topics", "create", "compacted"];
    for setting in [
        "retention.ms=60000",
        "retention.bytes=-1",
        "cleanup.policy=compact",
        "max.message.bytes=2048",
        "segment.bytes=1048576",
        "keel.fsync=never",
    ] {
        args.extend(["--config", setting]);
    }
    keel.ok(&args, "");
    let described = keel.ok(&["topics", "describe", "compacted"], "");
    for line in [
        "retention_ms = 60000",
        "retention_bytes = none",
        "cleanup = compact",
        "max_batch_bytes = 2048",
        "segment_bytes = 1048576",
        "fsync = never",
    ] {
        assert!(described.contains(line), "{line}: {described}");
    }
    keel.fails(
        &["topics", "create", "typo", "--config", "retention.msec=1"],
        "",
        "config 'retention.msec': not supported by Keel",
    );
}

#[test]
fn topics_alter_changes_the_named_settings_and_keeps_the_rest_and_the_events() {
    let keel = Keel::new();
    keel.ok(
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
            "--config",
            "segment.bytes=1048576",
        ],
        "",
    );
    keel.ok(
        &["produce", "orders", "--type", "order.placed"],
        r#"{"id":1}"#,
    );
    let altered = keel.ok(
        &[
            "topics",
            "alter",
            "orders",
            "--config",
            "retention.ms=120000",
            "--config",
            "max_batch_bytes=4096",
            "--config",
            "keel.fsync=interval:100",
        ],
        "",
    );
    for line in [
        "retention_ms = 120000 (was 60000)",
        "max_batch_bytes = 4096 (was 1048576)",
        "fsync = interval(100) (was always)",
    ] {
        assert!(altered.contains(line), "{line}: {altered}");
    }
    let described = keel.ok(&["topics", "describe", "orders"], "");
    for line in [
        "partitions = 2",
        "retention_ms = 120000",
        "segment_bytes = 1048576",
        "max_batch_bytes = 4096",
        "fsync = interval(100)",
    ] {
        assert!(described.contains(line), "{line}: {described}");
    }
    let listed = keel.ok(&["topics", "list"], "");
    let row = listed.lines().find(|l| l.starts_with("orders")).unwrap();
    assert_eq!(row.split_whitespace().nth(2), Some("1"), "{listed}");
    let same = keel.ok(
        &[
            "topics",
            "alter",
            "orders",
            "--config",
            "retention.ms=120000",
        ],
        "",
    );
    assert!(same.contains("nothing changed"), "{same}");
    for (args, error) in [
        (
            &["topics", "alter", "orders", "--config", "partitions=3"][..],
            "partitions are added (CreatePartitions), not altered",
        ),
        (
            &["topics", "alter", "orders", "--config", "retention.msec=1"],
            "config 'retention.msec': not supported by Keel",
        ),
        (
            &["topics", "alter", "orders", "--config", "segment.bytes=10"],
            "config 'segment.bytes'",
        ),
        (
            &["topics", "alter", "missing", "--config", "retention.ms=1"],
            "topic 'missing' does not exist",
        ),
    ] {
        keel.fails(args, "", error);
    }
    let described_again = keel.ok(&["topics", "describe", "orders"], "");
    assert_eq!(
        described_again, described,
        "a refused change changes nothing"
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_a_failing_exit_code() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders"], "");
    let cases: &[(&[&str], &str, &str)] = &[
        (&["topics", "create", "bad/name"], "", "bad/name"),
        (&["topics", "create", "orders"], "", "orders"),
        (
            &["topics", "create", "x", "--partitions", "0"],
            "",
            "partitions",
        ),
        (
            &["topics", "create", "x", "--fsync", "sometimes"],
            "",
            "fsync",
        ),
        (
            &["topics", "create", "x", "--config", "nonsense=1"],
            "",
            "nonsense",
        ),
        (
            &["topics", "describe", "missing"],
            "",
            "topic 'missing' does not exist",
        ),
        (&["topics", "delete", "missing"], "", "missing"),
        (
            &["serve", "--kafka-group-consumer-session-timeout-ms", "1000"],
            "",
            "'group.consumer.session.timeout.ms': 1000 is not above group.consumer.heartbeat.interval.ms (5000)",
        ),
        (
            &["topics", "delete", "_keel_schemas"],
            "",
            "topic '_keel_schemas' is internal to Keel and cannot be deleted or altered",
        ),
        (
            &["produce", "missing"],
            "",
            "topic 'missing' does not exist",
        ),
        (&["produce", "orders"], "{not json\n", "line 1"),
        (&["produce", "orders"], "{\"key\":\"k\"}\n", "'type'"),
        (
            &["produce", "orders"],
            "{\"type\":\"t\",\"colour\":1}\n",
            "colour",
        ),
        (
            &["produce", "orders"],
            "{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}\n",
            "specversion",
        ),
        (
            &["produce", "orders"],
            "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"time\":\"yesterday\"}\n",
            "time",
        ),
        (
            &["consume", "orders", "--partition", "7"],
            "",
            "no partition 7",
        ),
        (&["consume", "orders", "--offset", "99"], "", "past the end"),
        (
            &["consume", "orders", "--from-time", "soon"],
            "",
            "--from-time",
        ),
    ];
    for (args, stdin, needle) in cases {
        keel.fails(args, stdin, needle);
    }
    assert!(
        keel.consume(&["orders", "--from-beginning"]).is_empty(),
        "nothing was stored by the failed commands"
    );
}

#[test]
fn an_error_puts_each_cause_of_a_long_chain_on_its_own_line() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders"], "");
    let output = keel.run(&["produce", "orders"], "{\"type\":\"a\"}\n{oops\n");
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "keel: error: line 2: 0 earlier event(s) were produced, none after\n  \
         caused by: not valid JSON\n  \
         caused by: key must be a string at line 1 column 2\n"
    );
    // What failed and why, and nothing more, stays one line.
    let output = keel.run(&["topics", "describe", "nosuch"], "");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("keel: error: topic 'nosuch' does not exist"),
        "{stderr}"
    );
}

#[test]
fn produced_events_come_back_as_cloudevents_in_key_order() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--partitions", "3"], "");
    keel.ok(&["produce", "orders"], &order_lines(0..50));
    let events = keel.consume(&["orders", "--from-beginning"]);
    assert_eq!(events.len(), 50);
    for key in 0..5 {
        let key = format!("order-{key}");
        let same_key: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"]["partitionkey"] == key.as_str())
            .collect();
        assert_eq!(same_key.len(), 10, "{key}");
        let partitions: std::collections::BTreeSet<_> =
            same_key.iter().map(|e| e["partition"].as_u64()).collect();
        assert_eq!(partitions.len(), 1, "one key, one partition: {key}");
        let seqs: Vec<u64> = same_key
            .iter()
            .map(|e| e["event"]["data"]["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    }
    let event = &events[0]["event"];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "order.placed");
    assert!(event["id"].as_str().is_some_and(|id| id.len() == 36));
    let one = keel.consume(&["orders", "--from-beginning", "--max", "1"]);
    assert_eq!(one.len(), 1);
}

#[test]
fn one_event_from_flags() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "payments"], "");
    keel.ok(
        &[
            "produce",
            "payments",
            "--type",
            "payment.charged",
            "--key",
            "order-9",
            "--data",
            r#"{"amount":42}"#,
        ],
        "",
    );
    let events = keel.consume(&["payments", "--from-beginning"]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"]["data"]["amount"], 42);
    assert_eq!(events[0]["event"]["partitionkey"], "order-9");
}

#[test]
fn a_group_resumes_where_it_committed() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--partitions", "2"], "");
    keel.ok(&["produce", "orders"], &order_lines(0..10));
    let group = ["orders", "--group", "billing", "--from-beginning"];
    assert_eq!(keel.consume(&group).len(), 10);
    assert!(keel.consume(&["orders", "--group", "billing"]).is_empty());
    keel.ok(&["produce", "orders"], &order_lines(10..13));
    let fresh = keel.consume(&["orders", "--group", "billing"]);
    let seqs: std::collections::BTreeSet<u64> = fresh
        .iter()
        .map(|e| e["event"]["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (10..13).collect());
    assert_eq!(
        keel.consume(&["orders", "--group", "other"]).len(),
        13,
        "a new group starts at the oldest event, as Keel's router and rpk do"
    );
    assert!(
        keel.consume(&["orders"]).is_empty(),
        "without a group, reading starts at the end"
    );
}

/// Kafka forgets a deleted topic's committed offsets: a group reads a topic created again
/// under the same name from its first event, instead of skipping as many events as it had
/// read of the old one.
#[test]
fn a_recreated_topic_is_read_whole_by_an_old_group() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--partitions", "2"], "");
    keel.ok(&["produce", "orders"], &order_lines(0..10));
    assert_eq!(keel.consume(&["orders", "--group", "billing"]).len(), 10);
    keel.ok(&["topics", "delete", "orders"], "");
    keel.ok(&["topics", "create", "orders", "--partitions", "2"], "");
    keel.ok(&["produce", "orders"], &order_lines(20..23));
    let seqs: Vec<u64> = keel
        .consume(&["orders", "--group", "billing"])
        .iter()
        .map(|e| e["event"]["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 3, "{seqs:?}");
}

#[test]
fn start_positions_by_offset_and_time() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "clicks"], "");
    let lines: String = (0..6)
        .map(|i| {
            format!(
                "{{\"specversion\":\"1.0\",\"id\":\"{i}\",\"source\":\"/web\",\"type\":\"click\",\"time\":\"2026-01-0{}T00:00:00Z\"}}\n",
                i + 1
            )
        })
        .collect();
    keel.ok(&["produce", "clicks"], &lines);
    let ids = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| e["event"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(keel.consume(&["clicks", "--offset", "4"])), ["4", "5"]);
    assert_eq!(
        ids(keel.consume(&["clicks", "--from-time", "2026-01-05T00:00:00Z"])),
        ["4", "5"]
    );
    assert_eq!(
        ids(keel.consume(&["clicks", "--offset", "6"])),
        Vec::<String>::new()
    );
}

#[test]
fn users_are_added_listed_and_removed_without_storing_a_password() {
    let keel = Keel::new();
    let added = keel.ok(&["users", "add", "alice"], "s3cret-pw\n");
    assert!(added.contains("SCRAM-SHA-512 set"), "{added}");
    keel.ok(
        &[
            "users",
            "add",
            "bob",
            "--password",
            "other-pw",
            "--mechanism",
            "SCRAM-SHA-256",
        ],
        "",
    );
    let listed = keel.ok(&["users", "list"], "");
    assert!(
        listed.contains("alice\tSCRAM-SHA-256 (4096 iterations), SCRAM-SHA-512 (4096 iterations)"),
        "{listed}"
    );
    assert!(
        listed.contains("bob\tSCRAM-SHA-256 (4096 iterations)"),
        "{listed}"
    );
    keel.ok(&["users", "remove", "alice"], "");
    let listed = keel.ok(&["users", "list"], "");
    assert!(!listed.contains("alice"), "{listed}");
    // Only salted credentials reach the disk.
    let mut stored = Vec::new();
    for entry in walk(keel.dir.path()) {
        stored.extend(std::fs::read(entry).unwrap());
    }
    assert!(
        !stored.windows(9).any(|w| w == b"s3cret-pw"),
        "a password was stored"
    );
    assert!(
        !stored.windows(8).any(|w| w == b"other-pw"),
        "a password was stored"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `--offset` applies to every partition read; a partition shorter than it is read from its
/// end (Kafka's reset of an out-of-range offset) instead of failing the whole command.
#[test]
fn an_offset_past_a_short_partition_reads_the_longer_ones() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "uneven", "--partitions", "2"], "");
    let line = |key: &str| format!("{{\"type\":\"t\",\"key\":\"{key}\"}}\n");
    // Keys "a" and "d" map to partitions 0 and 1 of two (murmur2).
    keel.ok(&["produce", "uneven"], &(line("a").repeat(5) + &line("d")));
    let events = keel.consume(&["uneven", "--offset", "2"]);
    assert_eq!(events.len(), 3, "{events:?}");
    keel.fails(
        &["consume", "uneven", "--offset", "9"],
        "",
        "past the end of every partition",
    );
}

/// Keyless events spread over the partitions as Kafka's sticky partitioner spreads them (one
/// partition per batch), instead of all landing in partition 0.
#[test]
fn keyless_events_spread_over_partitions() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "loose", "--partitions", "4"], "");
    for _ in 0..20 {
        keel.ok(&["produce", "loose", "--type", "note.taken"], "");
    }
    keel.ok(
        &["produce", "loose"],
        &"{\"type\":\"note.batched\"}\n".repeat(10),
    );
    let events = keel.consume(&["loose", "--from-beginning"]);
    assert_eq!(events.len(), 30);
    let partitions: std::collections::BTreeSet<u64> = events
        .iter()
        .map(|e| e["partition"].as_u64().unwrap())
        .collect();
    // All in one partition has a chance of (1/4)^20 with random picks.
    assert!(
        partitions.len() > 1,
        "every keyless event in {partitions:?}"
    );
    let batch: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| e["event"]["type"] == "note.batched")
        .map(|e| e["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        batch.len(),
        1,
        "one batch sticks to one partition: {batch:?}"
    );
}
