//! `keel dlq list|show|replay|canary|purge|history --brokers` on the real Apache Kafka
//! broker: dead letters stored in a `.dlq` topic on the cluster are counted and shown, a
//! canary is pending until the group's committed offset passes the replayed record, a
//! replay appends to the partition the event came from with its id kept and happens once,
//! a dead letter without its data is refused, a purge needs --yes, and the audit log on the
//! cluster names every step. Its topics and group are deleted at its end, passed or failed.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`) and
//! `KEEL_TEST_KAFKA_BROKERS` (`scripts/services start kafka`): unset, the test says it did
//! not run; set, an unreachable broker fails it.
#![cfg(feature = "kafka")]

#[path = "support/kafka_leftovers.rs"]
mod kafka_leftovers;
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use kafka_leftovers::KafkaLeftovers;
use keel_core::{AdminTransport, Event, GroupOffset, header_text};
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher};
use keel_runtime::dead_letter::{DeadLetterKind, PayloadLoss};
use keel_runtime::{DeadLetterHeaders, IncompletePayload, event_record};
use serde_json::Value;
use support::Keel;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_once_purged_and_audited_on_a_kafka_cluster() {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!("keel dlq --brokers: not run, {BROKERS_VAR} is unset");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let topic = format!("keel-cli-dlq-{}-{nanos}", std::process::id());
    let dlq = format!("{topic}.dlq");
    let group = format!("{topic}-billing");
    let config = KafkaConfig::new(&brokers);
    let admin = KafkaAdmin::connect(&config).expect("admin clients");
    let mut leftovers = KafkaLeftovers::new(&admin);
    leftovers.topic(&topic);
    leftovers.topic(&dlq);
    leftovers.group(&group);
    assert_eq!(admin.create_topic(&topic, 2).await.expect("topic"), 2);
    assert_eq!(admin.create_topic(&dlq, 2).await.expect("dlq topic"), 2);
    let publisher = KafkaPublisher::new(&config).expect("producer");
    // (dead-letter partition, event id, key, original partition and offset, data dropped)
    let dead_letters = [
        (0, "e0", "k0", 0, 3, false),
        (1, "e1", "k1", 1, 7, false),
        (0, "e2", "k2", 0, 4, true),
    ];
    for (dlq_partition, id, key, partition, offset, dropped) in dead_letters {
        let event = Event::new("/test", "order.placed")
            .with_id(id)
            .with_partition_key(key)
            .with_data("text/plain", b"data".to_vec());
        let mut record = event_record(&event);
        record.headers.extend(
            DeadLetterHeaders {
                topic: topic.clone(),
                partition,
                offset,
                group: group.clone(),
                handler: "bill".into(),
                attempts: 3,
                first_failure_ms: 1,
                last_failure_ms: 2,
                error: "card declined".into(),
                kind: DeadLetterKind::Permanent,
            }
            .encode(),
        );
        if dropped {
            record.value = None;
            record.headers.extend(
                IncompletePayload {
                    loss: PayloadLoss::Dropped,
                    original: "s3://orders/e2".into(),
                }
                .encode(),
            );
        }
        publisher
            .send(&dlq, &record, Some(dlq_partition))
            .await
            .expect("store a dead letter");
    }

    let keel = Keel::new();
    let dlq_args = |args: &[&str]| {
        let mut all: Vec<String> = vec!["dlq".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(["--brokers".into(), brokers.clone()]);
        all
    };
    let ok = |args: &[&str]| {
        let args = dlq_args(args);
        keel.ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), "")
    };
    let fails = |args: &[&str], needle: &str| {
        let args = dlq_args(args);
        keel.fails(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            "",
            needle,
        )
    };
    let summary = || -> Value {
        let all = json(&ok(&["list", "--json"]));
        all.as_array()
            .expect("summaries")
            .iter()
            .find(|s| s["dead_letter_topic"] == dlq.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{dlq} not listed: {all}"))
    };

    let listed = summary();
    assert_eq!(
        (&listed["pending"], &listed["replayed"], &listed["purged"]),
        (&Value::from(3), &Value::from(0), &Value::from(0)),
        "{listed}"
    );
    assert_eq!(listed["causes"][0]["group"], group.as_str(), "{listed}");
    let shown: Vec<Value> = ok(&["show", &topic, "--all", "--json"])
        .lines()
        .map(json)
        .collect();
    let ids: Vec<&str> = shown
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e0", "e2", "e1"], "partition then offset order");
    assert_eq!(shown[1]["incomplete"]["loss"], "dropped", "{}", shown[1]);

    // A canary: pending until the group's committed offset passes the replayed record.
    let canary = json(&ok(&["replay", &topic, "--id", "e1", "--canary", "--json"]));
    let id = canary["id"].as_str().expect("canary id").to_string();
    let target = &canary["replayed"][0]["target"];
    assert_eq!(
        (&target[0], &target[1]),
        (&Value::from(topic.as_str()), &Value::from(1))
    );
    let replayed_at = target[2].as_u64().expect("offset");
    fails(&["canary", &id], "not handled yet");
    admin
        .commit(
            &group,
            &[GroupOffset {
                topic: topic.clone(),
                partition: 1,
                offset: replayed_at + 1,
            }],
        )
        .await
        .expect("commit past the canary");
    ok(&["canary", &id]);
    let stored = admin
        .read(&topic, 1, replayed_at, 1 << 20)
        .await
        .expect("read")
        .into_iter()
        .find(|r| r.offset == replayed_at)
        .expect("the replayed record");
    assert_eq!(
        header_text(&stored.headers, "keel_replay_of"),
        Some(format!("{dlq}/1/0").as_str())
    );
    assert_eq!(
        header_text(&stored.headers, "ce_id"),
        Some("e1"),
        "event id kept"
    );
    assert!(
        !stored
            .headers
            .iter()
            .any(|h| h.key.starts_with("keel_dlq_")),
        "dead-letter headers dropped"
    );

    // The rest after the canary: e0 replayed, e1 skipped (replayed before), e2 refused.
    fails(
        &["replay", &topic, "--all", "--after-canary", &id],
        "refused 1 dead letter(s)",
    );
    let again = json(&ok(&["replay", &topic, "--id", "e0", "--json"]));
    assert_eq!(again["replayed"], Value::Array(Vec::new()), "{again}");
    assert_eq!(again["skipped_replayed"], 1, "once only: {again}");

    fails(&["purge", &topic, "--id", "e2"], "add --yes");
    ok(&["purge", &topic, "--id", "e2", "--yes"]);
    let listed = summary();
    assert_eq!(
        (&listed["pending"], &listed["replayed"], &listed["purged"]),
        (&Value::from(0), &Value::from(2), &Value::from(1)),
        "{listed}"
    );
    let actions: Vec<String> = ok(&["history", &topic, "--json"])
        .lines()
        .map(|line| json(line)["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["canary", "replay", "replay", "purge"]);
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
