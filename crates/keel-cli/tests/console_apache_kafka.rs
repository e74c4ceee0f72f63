//! `keel console --brokers` on the real Apache Kafka broker: the console and the operator
//! API of a Kafka cluster, checked with real requests against what the cluster holds and
//! what `keel groups` and `keel dlq --brokers` say — a topic listed with its partitions and
//! events (API and page), its settings shown and changed after a preview (what the cluster
//! then holds read back through `KafkaAdmin`), a group's lag in events as `keel groups lag` prints it (API and
//! page), a dead letter replayed with a canary through the API whose effect `keel dlq`
//! sees, the event browser (newest first, filters, one event, its journey across topics),
//! a test event produced through the API, a topic deleted (DeleteTopics) with Keel's own
//! refused, the catalog's AsyncAPI document of the topic, and SIGTERM stopping it. The topics and the group it made are deleted at its end, passed or failed.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`) and
//! `KEEL_TEST_KAFKA_BROKERS` (`scripts/services start kafka`): unset, the test says it did
//! not run; set, an unreachable broker fails it.
#![cfg(feature = "kafka")]

#[allow(dead_code)]
#[path = "support/console.rs"]
mod console;
#[path = "support/kafka_leftovers.rs"]
mod kafka_leftovers;
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod server;
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use console::{delete, get, get_json, get_page, json_line, patch_json, post_json};
use kafka_leftovers::KafkaLeftovers;
use keel_core::{AdminTransport, Event, GroupOffset, NewRecord, TransportError};
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher};
use keel_runtime::dead_letter::DeadLetterKind;
use keel_runtime::{DeadLetterHeaders, event_record};
use serde_json::{Value, json};
use support::Keel;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_and_replays_what_a_kafka_cluster_holds() {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!("keel console --brokers: not run, {BROKERS_VAR} is unset");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let topic = format!("keel-cli-console-{}-{nanos}", std::process::id());
    let dlq = format!("{topic}.dlq");
    let group = format!("{topic}-billing");
    let config = KafkaConfig::new(&brokers);
    let admin = KafkaAdmin::connect(&config).expect("admin clients");
    let mut leftovers = KafkaLeftovers::new(&admin);
    leftovers.topic(&topic);
    leftovers.topic(&dlq);
    leftovers.group(&group);
    assert_eq!(admin.create_topic(&topic, 3).await.expect("topic"), 3);
    assert_eq!(admin.create_topic(&dlq, 1).await.expect("dlq topic"), 1);
    let publisher = KafkaPublisher::new(&config).expect("producer");
    // Partition p holds p + 1 events: 6 in all.
    for partition in 0..3u32 {
        for n in 0..=partition {
            let record = NewRecord {
                key: Some(Bytes::from(format!("k{n}"))),
                value: Some(Bytes::from_static(b"{}")),
                headers: Vec::new(),
                timestamp_ms: None,
            };
            publisher
                .send(&topic, &record, Some(partition))
                .await
                .expect("publish");
        }
    }
    // The stopped group handled everything in partition 0, nothing in 1 and one of 2's
    // three: 2 + 2 = 4 events behind.
    let committed = [(0, 1), (1, 0), (2, 1)].map(|(partition, offset)| GroupOffset {
        topic: topic.clone(),
        partition,
        offset,
    });
    admin.commit(&group, &committed).await.expect("commit");
    let mut dead = event_record(
        &Event::new("/test", "order.placed")
            .with_id("e-dead")
            .with_partition_key("k0")
            .with_data("application/json", b"{}".to_vec()),
    );
    dead.headers.extend(
        DeadLetterHeaders {
            topic: topic.clone(),
            partition: 2,
            offset: 0,
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
    publisher
        .send(&dlq, &dead, Some(0))
        .await
        .expect("store a dead letter");

    let keel = Keel::new();
    let (mut console, http) = keel.start_console(&brokers, &[]);

    // Topics: the API and the page list the topic with its partitions and events.
    // Filtered: before the sampler's first pass over the shared broker's ~1,700 topics,
    // the list is read per request.
    let topics = get_json(http, &format!("/api/topics?q={topic}"));
    let listed = topics
        .as_array()
        .expect("topics")
        .iter()
        .find(|t| t["name"] == topic.as_str())
        .unwrap_or_else(|| panic!("{topic} not listed: {topics}"));
    assert_eq!(
        listed["partitions"].as_array().unwrap().len(),
        3,
        "{listed}"
    );
    assert_eq!(listed["events"], 6, "{listed}");
    let page = get_page(http, &format!("/topics?q={topic}"));
    assert!(page.contains(&format!(r#"data-topic="{topic}""#)), "{page}");
    assert!(
        page.contains(r#"data-figure="partitions">3<"#),
        "the topic row shows 3 partitions: {page}"
    );

    // Settings: the page shows the cluster's; a preview changes nothing, a change is in
    // force on the cluster, a name the cluster lacks or a bad value is refused in one line.
    let page = get_page(http, &format!("/topics/{topic}"));
    assert!(
        page.contains(r#"data-setting="retention.ms">604800000<"#),
        "the broker's default retention: {page}"
    );
    assert!(page.contains(r#"id="topic-settings""#), "the form: {page}");
    let retention = |settings: &[keel_core::TopicSetting]| {
        settings
            .iter()
            .find(|s| s.name == "retention.ms")
            .map(|s| (s.value.clone(), s.is_default))
    };
    let config_path = format!("/api/topics/{topic}/config");
    let change = json!({ "config": { "retention.ms": "3600000", "cleanup.policy": "delete" }, "dry_run": true });
    let (status, body) = patch_json(http, &config_path, &change);
    assert_eq!(status, 200, "{body}");
    let preview = json_line(&body);
    assert_eq!(preview["applied"], false, "{preview}");
    assert_eq!(
        preview["changes"],
        json!([{ "setting": "retention.ms", "from": "604800000", "to": "3600000" }]),
        "cleanup.policy is delete already: {preview}"
    );
    let settings = admin.topic_config(&topic).await.expect("settings");
    assert_eq!(
        retention(&settings),
        Some(("604800000".into(), true)),
        "a preview changes nothing"
    );
    let mut apply = change.clone();
    apply["dry_run"] = json!(false);
    let (status, body) = patch_json(http, &config_path, &apply);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_line(&body)["applied"], true, "{body}");
    let settings = admin.topic_config(&topic).await.expect("settings");
    assert_eq!(retention(&settings), Some(("3600000".into(), false)));
    // Another change keeps the first: AlterConfigs carries the topic's own settings over.
    let (status, body) = patch_json(
        http,
        &config_path,
        &json!({ "config": { "segment.ms": "7200000" } }),
    );
    assert_eq!(status, 200, "{body}");
    let settings = admin.topic_config(&topic).await.expect("settings");
    assert_eq!(retention(&settings), Some(("3600000".into(), false)));
    let (status, body) = patch_json(
        http,
        &config_path,
        &json!({ "config": { "colour": "blue" } }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("colour"), "{body}");
    let (status, body) = patch_json(
        http,
        &config_path,
        &json!({ "config": { "retention.ms": "soon" } }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("retention.ms=soon"), "{body}");
    let page = get_page(http, &format!("/topics/{topic}"));
    assert!(
        page.contains(r#"data-setting="retention.ms">3600000<"#),
        "{page}"
    );

    // Lag: the API, the page and `keel groups lag --brokers` say the same.
    let lags = get_json(http, &format!("/api/groups/{group}"));
    let cli: Value = json_line(&keel.ok(
        &["groups", "lag", &group, "--brokers", &brokers, "--json"],
        "",
    ));
    let events = |lags: &Value| -> Vec<u64> {
        lags.as_array()
            .expect("lags")
            .iter()
            .map(|l| l["lag_events"].as_u64().expect("lag_events"))
            .collect()
    };
    assert_eq!(events(&lags), [0, 2, 2], "{lags}");
    assert_eq!(events(&lags), events(&cli), "API {lags} vs CLI {cli}");
    let page = get_page(http, &format!("/groups/{group}"));
    assert!(
        page.contains(r#"data-figure="lag-events">4 events<"#),
        "the group page shows 4 events behind: {page}"
    );
    assert!(
        page.contains("Members are the cluster's to list"),
        "no claim about a Kafka listener this process does not run: {page}"
    );

    // Dead letters: listed, replayed as a canary through the API, seen by `keel dlq`.
    let summaries = get_json(http, "/api/dead-letters");
    let summary = summaries
        .as_array()
        .expect("summaries")
        .iter()
        .find(|s| s["dead_letter_topic"] == dlq.as_str())
        .unwrap_or_else(|| panic!("{dlq} not listed: {summaries}"));
    assert_eq!(summary["pending"], 1, "{summary}");
    let report = post_json(
        http,
        &format!("/api/dead-letters/{topic}/replay"),
        &json!({ "canary": true }),
    );
    let id = report["id"].as_str().expect("canary id").to_string();
    let target = &report["replayed"][0]["target"];
    assert_eq!(
        (&target[0], &target[1]),
        (&Value::from(topic.as_str()), &Value::from(2)),
        "replayed to the partition it came from: {report}"
    );
    let replayed_at = target[2].as_u64().expect("offset");
    assert_eq!(replayed_at, 3, "appended after partition 2's three events");
    let outcome = get_json(http, &format!("/api/dead-letters/canary/{id}"));
    assert_eq!(outcome["outcome"], "pending", "{outcome}");
    let dlq_cli = |args: &[&str]| {
        let mut all = vec!["dlq"];
        all.extend(args);
        all.extend(["--brokers", &brokers]);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = dlq_cli(&["canary", &id]);
    keel.fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "",
        "not handled yet",
    );
    admin
        .commit(
            &group,
            &[GroupOffset {
                topic: topic.clone(),
                partition: 2,
                offset: replayed_at + 1,
            }],
        )
        .await
        .expect("commit past the canary");
    let args = dlq_cli(&["canary", &id]);
    keel.ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let outcome = get_json(http, &format!("/api/dead-letters/canary/{id}"));
    assert_eq!(outcome["outcome"], "handled", "{outcome}");
    let args = dlq_cli(&["history", &topic, "--json"]);
    let history = keel.ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let entry = json_line(history.lines().next().expect("an audit entry"));
    assert_eq!(
        (&entry["action"], &entry["id"]),
        (&Value::from("canary"), &Value::from(id.as_str())),
        "{entry}"
    );
    let page = get_page(http, "/dead-letters");
    assert!(page.contains(&format!(r#"data-dlq="{dlq}""#)), "{page}");

    // The event browser reads the cluster: newest first, filtered, one event, its journey.
    let page = get_json(http, &format!("/api/topics/{topic}/events"));
    assert_eq!(
        page["scanned"], 7,
        "6 events and the replayed canary: {page}"
    );
    assert_eq!(
        page["events"].as_array().expect("events").len(),
        7,
        "{page}"
    );
    let page = get_json(http, &format!("/api/topics/{topic}/events?key=k0"));
    assert_eq!(page["events"].as_array().unwrap().len(), 4, "{page}");
    let page = get_json(
        http,
        &format!("/api/topics/{topic}/events?type=order.placed"),
    );
    let found = &page["events"][0];
    assert_eq!(
        (&found["partition"], &found["offset"], &found["event"]["id"]),
        (
            &Value::from(2),
            &Value::from(replayed_at),
            &Value::from("e-dead")
        ),
        "{page}"
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    let one = get_json(http, &format!("/api/topics/{topic}/events/2/{replayed_at}"));
    assert_eq!(one["event"]["type"], "order.placed", "{one}");
    let (status, body) = get(http, &format!("/api/topics/{topic}/events/0/99"));
    assert_eq!(status, 404, "no event past the end: {body}");
    let journey = get_json(
        http,
        &format!("/api/topics/{topic}/events/2/{replayed_at}/journey"),
    );
    let topics_in = |journey: &Value| -> Vec<String> {
        journey["events"]
            .as_array()
            .expect("journey events")
            .iter()
            .map(|e| e["topic"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let seen = topics_in(&journey);
    assert!(
        seen.contains(&topic) && seen.contains(&dlq),
        "the dead letter and its replay share the id e-dead: {journey}"
    );
    let page = get_page(http, &format!("/topics/{topic}/events?type=order.placed"));
    assert!(page.contains("e-dead"), "{page}");
    let page = get_page(http, &format!("/topics/{topic}/events/2/{replayed_at}"));
    assert!(page.contains(r#"data-figure="journey""#), "{page}");

    // A test event produced from the console goes to the partition of its key.
    let produced = post_json(
        http,
        &format!("/api/topics/{topic}/events"),
        &json!({ "type": "console.test", "key": "k0", "data": { "n": 1 } }),
    );
    let at = format!(
        "/api/topics/{topic}/events/{}/{}",
        produced["partition"], produced["offset"]
    );
    let stored = get_json(http, &at);
    assert_eq!(
        (&stored["event"]["type"], &stored["event"]["id"]),
        (&Value::from("console.test"), &produced["id"]),
        "{stored}"
    );

    // The catalog's AsyncAPI document is learned through the cluster too (it answered 501
    // before: the last view that needed a data directory).
    let document = get_json(http, &format!("/api/catalog/asyncapi.json?q={topic}"));
    assert!(
        document["channels"][&topic]["messages"]["order.placed"].is_object(),
        "{document}"
    );
    assert_eq!(get(http, "/health").0, 200);

    // A topic deleted through the API is gone from the cluster and the list at once; a
    // second delete finds nothing, and Keel's own audit log is refused.
    let (status, body) = delete(http, &format!("/api/topics/{dlq}"));
    assert_eq!(status, 200, "{body}");
    assert!(
        matches!(
            admin.partition_offsets(&dlq).await,
            Err(TransportError::UnknownTopic { .. })
        ),
        "{dlq} is gone from the cluster"
    );
    assert_eq!(get_json(http, &format!("/api/topics?q={dlq}")), json!([]));
    let (status, body) = delete(http, &format!("/api/topics/{dlq}"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = delete(http, "/api/topics/keel.dlq.audit");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("internal to Keel"), "{body}");

    assert!(server::terminate(&mut console), "SIGTERM exits 0");
}
