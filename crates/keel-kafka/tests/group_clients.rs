//! Consumer groups of real clients against the broker: kafka-python and confluent-kafka
//! (librdkafka) run three-member groups (`tests/clients/group_consumers.py`) whose members
//! join and leave while records flow, then restart — with the broker restarted too — and
//! resume from their committed offsets; and groups that lose a member to SIGKILL, whose
//! partitions move when its session times out.

mod support;

use std::process::Command;

use keel_log::TopicConfig;
use support::{TestBroker, python_module, run, script};

/// Records produced while the group changes, then after the restart.
const FLOW_RECORDS: u32 = 3_000;
const RESUME_RECORDS: u32 = 600;
/// Records produced while a member is killed.
const CRASH_RECORDS: u32 = 2_000;
/// Must match `PARTITIONS` in the script.
const PARTITIONS: u32 = 6;

/// Runs the script in `mode` on `topic` (group `g-<topic>`) and returns its `RESULT` line.
fn group_run(
    client: &str,
    bootstrap: &str,
    topic: &str,
    mode: &str,
    first: u32,
    count: u32,
) -> String {
    let group = format!("g-{topic}");
    let output = run(Command::new("python3").args([
        script("group_consumers.py").as_str(),
        client,
        bootstrap,
        topic,
        &group,
        mode,
        &first.to_string(),
        &count.to_string(),
    ]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{client} {mode}: no RESULT line in {stdout}"))
        .to_string();
    eprintln!("{client} {mode}: {result}");
    result
}

/// A broker on `dir` with `topic` created with the script's partition count.
fn broker_with_topic(dir: &std::path::Path, topic: &str) -> TestBroker {
    let broker = TestBroker::start(dir);
    broker
        .log
        .create_topic(topic, TopicConfig::new(PARTITIONS))
        .unwrap();
    broker
}

fn check(module: &str, client: &str) {
    if !python_module(module) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("group-{client}");
    let broker = broker_with_topic(dir.path(), &topic);
    let flow = group_run(client, &broker.bootstrap(), &topic, "flow", 0, FLOW_RECORDS);
    // The script fails on a duplicate or a gap; the summary must agree.
    assert!(
        flow.contains(&format!("\"distinct\": {FLOW_RECORDS}")),
        "{flow}"
    );
    assert!(flow.contains("\"duplicates\": 0"), "{flow}");
    drop(broker);

    let broker = TestBroker::start(dir.path());
    let resume = group_run(
        client,
        &broker.bootstrap(),
        &topic,
        "resume",
        FLOW_RECORDS,
        RESUME_RECORDS,
    );
    assert!(
        resume.contains(&format!("\"consumed\": {RESUME_RECORDS}")),
        "{resume}"
    );
    assert!(resume.contains("\"unexpected\": []"), "{resume}");
}

/// A member killed without LeaveGroup: its partitions move after its session timeout (6 s in
/// the script), and every record is still consumed.
fn check_crash(module: &str, client: &str) {
    if !python_module(module) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("crash-{client}");
    let broker = broker_with_topic(dir.path(), &topic);
    let crash = group_run(
        client,
        &broker.bootstrap(),
        &topic,
        "crash",
        0,
        CRASH_RECORDS,
    );
    assert!(
        crash.contains(&format!("\"distinct\": {CRASH_RECORDS}")),
        "{crash}"
    );
    assert!(crash.contains("\"duplicates\": 0"), "{crash}");
    // The killed member sent no LeaveGroup: its partitions moved only when its session (6 s
    // from its last heartbeat, at most 1 s before the kill) ran out.
    let takeover_ms: u64 = crash
        .split("\"takeover_ms\": ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no takeover time in {crash}"));
    assert!(
        (5_000..15_000).contains(&takeover_ms),
        "takeover after {takeover_ms} ms"
    );
}

#[test]
fn kafka_python_group_survives_a_killed_member() {
    check_crash("kafka", "kafka-python");
}

#[test]
fn confluent_kafka_group_survives_a_killed_member() {
    check_crash("confluent_kafka", "confluent");
}

#[test]
fn kafka_python_group_rebalances_and_resumes_from_committed_offsets() {
    check("kafka", "kafka-python");
}

#[test]
fn confluent_kafka_group_rebalances_and_resumes_from_committed_offsets() {
    check("confluent_kafka", "confluent");
}
