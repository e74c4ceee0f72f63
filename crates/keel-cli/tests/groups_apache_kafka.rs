//! `keel groups lag|reset --brokers` on the real Apache Kafka broker: a group's lag per
//! partition in events and seconds as the binary prints it, a reset of the stopped group
//! committed on the cluster, a reset and a delete refused while a member of the group runs,
//! and `keel groups delete --brokers` of the stopped group, kept in the audit log; its topic
//! is deleted at its end, passed or failed.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`) and
//! `KEEL_TEST_KAFKA_BROKERS` (`scripts/services start kafka`): unset, the test says it did
//! not run; set, an unreachable broker fails it.
#![cfg(feature = "kafka")]

#[path = "support/kafka_leftovers.rs"]
mod kafka_leftovers;
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_leftovers::KafkaLeftovers;
use keel_core::{AdminTransport, GroupOffset, NewRecord};
use keel_kafka_client::{
    KafkaAdmin, KafkaConfig, KafkaMember, KafkaPublisher, MemberEvent, MemberOptions,
};
use serde_json::Value;
use support::Keel;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_lag_and_reset_act_on_a_kafka_cluster() {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!("keel groups --brokers: not run, {BROKERS_VAR} is unset");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let topic = format!("keel-cli-groups-{}-{nanos}", std::process::id());
    let group = format!("{topic}-billing");
    let config = KafkaConfig::new(&brokers);
    let admin = KafkaAdmin::connect(&config).expect("admin clients");
    // The test deletes the group itself (`keel groups delete`) unless it fails before.
    let mut leftovers = KafkaLeftovers::new(&admin);
    leftovers.topic(&topic);
    leftovers.group(&group);
    assert_eq!(admin.create_topic(&topic, 2).await.expect("topic"), 2);
    let publisher = KafkaPublisher::new(&config).expect("producer");
    let created_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 60_000;
    for partition in 0..2u32 {
        for n in 0..5 {
            let record = NewRecord {
                key: Some(Bytes::from(format!("k{n}"))),
                value: Some(Bytes::from_static(b"{}")),
                headers: Vec::new(),
                timestamp_ms: Some(created_ms + n),
            };
            publisher
                .send(&topic, &record, Some(partition))
                .await
                .expect("publish");
        }
    }
    // The stopped group handled two events of partition 0 and none of partition 1.
    let committed = [
        GroupOffset {
            topic: topic.clone(),
            partition: 0,
            offset: 2,
        },
        GroupOffset {
            topic: topic.clone(),
            partition: 1,
            offset: 0,
        },
    ];
    admin.commit(&group, &committed).await.expect("commit");

    let keel = Keel::new();
    let lags: Value = json(&keel.ok(
        &["groups", "lag", &group, "--brokers", &brokers, "--json"],
        "",
    ));
    let lags = lags.as_array().expect("array");
    assert_eq!(lags.len(), 2, "{lags:?}");
    for (lag, (committed, behind, oldest)) in lags.iter().zip([(2, 3, 2), (0, 5, 0)]) {
        assert_eq!(lag["committed_offset"], committed, "{lag}");
        assert_eq!(lag["high_watermark"], 5, "{lag}");
        assert_eq!(lag["lag_events"], behind, "{lag}");
        // The oldest unconsumed event is about a minute old (its timestamp was set).
        let lag_ms = lag["lag_ms"].as_i64().expect("lag_ms");
        assert!(
            (60_000 - oldest..120_000).contains(&lag_ms),
            "age of the oldest unconsumed event: {lag}"
        );
    }

    let moves: Value = json(&keel.ok(
        &[
            "groups",
            "reset",
            &group,
            "--topic",
            &topic,
            "--to-latest",
            "--brokers",
            &brokers,
            "--json",
        ],
        "",
    ));
    assert_eq!(moves.as_array().expect("moves").len(), 2, "{moves}");
    let after = admin.committed(&group).await.expect("committed");
    assert!(
        after.iter().all(|o| o.topic == topic && o.offset == 5) && after.len() == 2,
        "reset to the end on the cluster: {after:?}"
    );

    // A running member: the cluster refuses the reset and nothing moves.
    let member = tokio::task::spawn_blocking({
        let (brokers, topic, group) = (brokers.clone(), topic.clone(), group.clone());
        move || running_member(&brokers, &group, &topic)
    })
    .await
    .expect("member");
    keel.fails(
        &[
            "groups",
            "reset",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--brokers",
            &brokers,
        ],
        "",
        "has running members",
    );
    // And the delete (Kafka's NON_EMPTY_GROUP): the group keeps its offsets.
    keel.fails(
        &["groups", "delete", &group, "--brokers", &brokers],
        "",
        "has running members",
    );
    drop(member);
    let after = admin.committed(&group).await.expect("committed");
    assert!(
        after.iter().all(|o| o.offset == 5),
        "nothing moved: {after:?}"
    );

    // The stopped group is deleted on the cluster (its member's leave may land just
    // after the drop), then no longer listed; a second delete names the missing group.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let delete = ["groups", "delete", &group, "--brokers", &brokers];
    while !keel.run(&delete, "").status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped group was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        admin.committed(&group).await.expect("committed"),
        Vec::new()
    );
    assert!(!admin.groups().await.expect("groups").contains(&group));
    // The audit log keeps the deletion and the offsets the group had (5 in each partition).
    let history = keel.ok(&["dlq", "history", "--json", "--brokers", &brokers], "");
    let deletion: Value = history
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .find(|entry| entry["action"] == "delete_group" && entry["group"] == group.as_str())
        .unwrap_or_else(|| panic!("no audit entry of the deletion: {history}"));
    let offsets: Vec<u64> = deletion["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["offset"].as_u64().expect("an offset"))
        .collect();
    assert_eq!(offsets, [5, 5], "{deletion}");
    keel.fails(
        &delete,
        "",
        &format!("group '{group}' has no committed offsets"),
    );
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A librdkafka member of `group` on `topic`, standing in for a running service, once the
/// group assigned it a partition.
fn running_member(brokers: &str, group: &str, topic: &str) -> KafkaMember {
    let config = KafkaConfig::new(brokers);
    let mut member =
        KafkaMember::join(&config, group, topic, &MemberOptions::default()).expect("join");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let assigned = runtime.block_on(tokio::time::timeout(Duration::from_secs(30), member.next()));
    assert!(
        matches!(assigned, Ok(Some(MemberEvent::Assigned(_)))),
        "the member was never assigned a partition"
    );
    member
}
