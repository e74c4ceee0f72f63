//! The operator verbs on a secured Kafka cluster: a `keel serve` whose Kafka listener takes
//! only SASL_SSL with SCRAM-SHA-512 (certificate from `keel_listener::testing`; the operator
//! `alice` a super user, as ACLs deny everyone else), reached with
//! the client properties of the config file's `[kafka_properties]` and `--kafka-property`.
//! `keel consume --group` reads through it as a group member, `keel groups lag` sees that
//! group's commits; a wrong password (a flag overriding the file) fails naming the brokers'
//! refusal, a user the ACLs deny is refused as a member at once, and a property Keel fixes is
//! refused naming it.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`).
#![cfg(feature = "kafka")]

#[path = "support/serve.rs"]
mod serve;
mod support;

use std::path::Path;

use keel_listener::testing::self_signed;
use serde_json::Value;
use support::Keel;

/// The config file of an operator of that cluster: its brokers and how to reach them.
fn secured_config(dir: &Path, brokers: &str, ca: &Path) -> String {
    let path = dir.join("operator.toml");
    let text = format!(
        "brokers = \"{brokers}\"\n\n[kafka_properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"alice\"\n\"sasl.password\" = \"pencil\"\n\"ssl.ca.location\" = \"{}\"\n",
        ca.display()
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn operator_verbs_reach_a_sasl_ssl_listener_with_the_file_s_kafka_properties() {
    let keel = Keel::new();
    let certs = tempfile::tempdir().unwrap();
    let (_, ca) = self_signed(certs.path());
    let key = certs.path().join("key.pem");
    keel.ok(&["users", "add", "alice", "--password", "pencil"], "");
    keel.ok(&["users", "add", "bob", "--password", "builder"], "");
    let (mut server, line) = keel.start_server(&[
        "--kafka-sasl-mechanisms",
        "SCRAM-SHA-512",
        "--kafka-super-users",
        "User:alice",
        "--kafka-tls-cert",
        ca.to_str().unwrap(),
        "--kafka-tls-key",
        key.to_str().unwrap(),
    ]);
    let brokers = serve::address(&line, "kafka").to_string();
    keel.ok(&["topics", "create", "t", "--partitions", "2"], "");
    let events: String = (1..=3)
        .map(|n| format!("{{\"key\":\"k{n}\",\"type\":\"t.made\",\"data\":{{\"n\":{n}}}}}\n"))
        .collect();
    keel.ok(&["produce", "t"], &events);
    let config = secured_config(certs.path(), &brokers, &ca);

    let printed = keel.ok(&["consume", "t", "--group", "g", "--config", &config], "");
    let mut seen: Vec<u64> = printed
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("a JSON line");
            event["event"]["data"]["n"].as_u64().expect("event.data.n")
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3], "the member read every event once");

    let lags: Value = serde_json::from_str(&keel.ok(
        &[
            "groups",
            "lag",
            "g",
            "--json",
            "--brokers",
            &brokers,
            "--config",
            &config,
        ],
        "",
    ))
    .expect("JSON lag");
    let lags = lags.as_array().expect("a list of partitions");
    assert_eq!(lags.len(), 2, "{lags:?}");
    for lag in lags {
        assert_eq!(lag["lag_events"], 0, "the member's commits: {lag}");
        assert!(lag["committed_offset"].is_u64(), "{lag}");
    }

    // librdkafka's admin client reports the refused login only as a failed metadata
    // request; the CLI asks the brokers why and prints their words.
    keel.fails(
        &[
            "groups",
            "lag",
            "g",
            "--config",
            &config,
            "-X",
            "sasl.password=wrong",
        ],
        "",
        "SASL authentication error: Authentication failed: invalid username or password",
    );
    // A user the ACLs deny is told so at once, not after waiting for an assignment.
    let started = std::time::Instant::now();
    keel.fails(
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--config",
            &config,
            "-X",
            "sasl.username=bob",
            "-X",
            "sasl.password=builder",
        ],
        "",
        "the cluster refused this member of group 'g'",
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the refusal took {:?}, the assignment wait is 30 s",
        started.elapsed()
    );
    keel.fails(
        &["groups", "lag", "g", "--config", &config, "-X", "acks=1"],
        "",
        "Keel fixes the Kafka property 'acks'",
    );
    assert!(serve::terminate(&mut server), "keel serve stops cleanly");
}
