//! Consumer groups of real clients against the broker: kafka-python and confluent-kafka
//! (librdkafka) run three-member groups (`tests/clients/group_consumers.py`) whose members
//! join and leave while records flow, then restart — with the broker restarted too — and
//! resume from their committed offsets.

mod support;

use std::process::Command;

use keel_log::TopicConfig;
use support::{TestBroker, python_module, run, script};

/// Records produced while the group changes, then after the restart.
const FLOW_RECORDS: u32 = 3_000;
const RESUME_RECORDS: u32 = 600;
/// Must match `PARTITIONS` in the script.
const PARTITIONS: u32 = 6;

/// Runs the script in `mode` and returns its `RESULT` line.
fn group_run(client: &str, bootstrap: &str, mode: &str, first: u32, count: u32) -> String {
    let topic = format!("group-{client}");
    let group = format!("g-{client}");
    let output = run(Command::new("python3").args([
        script("group_consumers.py").as_str(),
        client,
        bootstrap,
        &topic,
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

fn check(module: &str, client: &str) {
    if !python_module(module) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker
        .log
        .create_topic(&format!("group-{client}"), TopicConfig::new(PARTITIONS))
        .unwrap();
    let flow = group_run(client, &broker.bootstrap(), "flow", 0, FLOW_RECORDS);
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

#[test]
fn kafka_python_group_rebalances_and_resumes_from_committed_offsets() {
    check("kafka", "kafka-python");
}

#[test]
fn confluent_kafka_group_rebalances_and_resumes_from_committed_offsets() {
    check("confluent_kafka", "confluent");
}
