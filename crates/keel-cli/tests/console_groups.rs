//! The console's group list and overview with hundreds of consumer groups, on `keel serve`
//! and on the real Apache Kafka broker (`keel console --brokers`): both pages and
//! `/api/overview` answer within [`PAGE_MS_MAX`] because they show the sampler's last
//! measure instead of measuring every group per request (minutes on a cluster), every
//! group the test made shows its lag once the samples have measured it (a sample
//! measures at most `--console-sample-groups-max` groups, new ones first, and
//! `keel_console_sample_groups_skipped` counts the rest), and a group's own page still
//! measures it on demand. The groups are made cheaply: committed offsets through the admin
//! port (OffsetCommit), no members. Needs the `kafka` feature; the Apache Kafka half needs
//! `KEEL_TEST_KAFKA_BROKERS` (unset: says it did not run; set: an unreachable broker fails),
//! and deletes its topic and groups from the broker at its end, passed or failed.
#![cfg(feature = "kafka")]

#[allow(dead_code)]
#[path = "support/console.rs"]
mod console;
#[path = "support/kafka_leftovers.rs"]
mod kafka_leftovers;
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod server;
#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use console::{get, get_json, get_page};
use futures_util::{StreamExt, stream};
use kafka_leftovers::KafkaLeftovers;
use keel_core::{AdminTransport, GroupOffset, NewRecord};
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher};
use support::Keel;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";
/// Groups the test makes.
const GROUPS: usize = 300;
/// Most the group list, the overview and its API may take to answer, in ms (debug build,
/// a shared machine under load).
const PAGE_MS_MAX: u128 = 3_000;
/// How long the samples may take to measure the groups a test waits for.
const MEASURED_WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_serve_lists_hundreds_of_groups_from_its_sample() {
    let keel = Keel::new();
    // 100 groups a sample: every group the test makes is shown after three.
    let (mut server, line) = keel.start_server(&[
        "--console-sample-ms",
        "1000",
        "--console-sample-groups-max",
        "100",
    ]);
    let (http, kafka) = (
        server::address(&line, "http"),
        server::address(&line, "kafka"),
    );
    let groups = Groups::make(&kafka.to_string()).await;
    groups.check_console(http, 100, GROUPS, "keel serve");
    assert!(server::terminate(&mut server), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_console_lists_hundreds_of_groups_of_a_kafka_cluster_from_its_sample() {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!(
            "keel console --brokers with hundreds of groups: not run, {BROKERS_VAR} is unset"
        );
        return;
    };
    let groups = Groups::make(&brokers).await;
    let admin = KafkaAdmin::connect(&KafkaConfig::new(&brokers)).expect("admin clients");
    let mut leftovers = KafkaLeftovers::new(&admin);
    leftovers.topic(&groups.topic);
    for i in 0..GROUPS {
        leftovers.group(&groups.name(i));
    }
    // A shared cluster's groups took about 0.8 s each to measure at load 12–30 (an OffsetFetch
    // of every partition, a read per lagging partition): the test waits for the first
    // sample, 50 groups, the test's own ones first.
    let keel = Keel::new();
    let (mut console, http) = keel.start_console(
        &brokers,
        &[
            "--console-sample-ms",
            "1000",
            "--console-sample-groups-max",
            "50",
        ],
    );
    groups.check_console(http, 50, 50, "Apache Kafka");
    assert!(server::terminate(&mut console), "SIGTERM exits 0");
}

/// [`GROUPS`] groups made on a cluster: group i committed offset i % 3 of a partition of 3
/// events, so it lags 3 − i % 3.
struct Groups {
    topic: String,
}

impl Groups {
    /// Makes the groups through the admin port on `brokers`.
    async fn make(brokers: &str) -> Groups {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        // Groups never measured are measured first, by name: a shared cluster's hundreds of
        // groups (earlier runs' too: Kafka keeps offsets for a week) are all new to a
        // console that just started, and these names sort before them, a later run's first.
        let groups = Groups {
            topic: format!(
                "0-{:039}-keel-cli-console-groups-{}",
                u128::MAX - nanos,
                std::process::id()
            ),
        };
        let topic = &groups.topic;
        let config = KafkaConfig::new(brokers);
        let admin = KafkaAdmin::connect(&config).expect("admin clients");
        assert_eq!(admin.create_topic(topic, 1).await.expect("topic"), 1);
        let publisher = KafkaPublisher::new(&config).expect("producer");
        for n in 0..3 {
            let record = NewRecord {
                key: Some(Bytes::from(format!("k{n}"))),
                value: Some(Bytes::from_static(b"{}")),
                headers: Vec::new(),
                timestamp_ms: None,
            };
            publisher
                .send(topic, &record, Some(0))
                .await
                .expect("publish");
        }
        let started = Instant::now();
        let made: Vec<()> = stream::iter(0..GROUPS)
            .map(|i| {
                let (admin, groups) = (&admin, &groups);
                async move {
                    let offset = GroupOffset {
                        topic: groups.topic.clone(),
                        partition: 0,
                        offset: (i % 3) as u64,
                    };
                    admin
                        .commit(&groups.name(i), &[offset])
                        .await
                        .expect("commit");
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        assert_eq!(made.len(), GROUPS);
        eprintln!(
            "{brokers}: {GROUPS} groups committed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        groups
    }

    fn name(&self, i: usize) -> String {
        format!("{}-g{i:03}", self.topic)
    }

    /// Checks the console at `http`, whose samples measure at most `per_sample` groups:
    /// the group list, the overview and its API answer within [`PAGE_MS_MAX`] while the
    /// samples run, no group is shown with another lag than its own, and at least
    /// `shown_min` of them are shown within [`MEASURED_WAIT`]; the limit bites; a group's
    /// own page measures it on demand.
    fn check_console(&self, http: SocketAddr, per_sample: u64, shown_min: usize, on: &str) {
        let started = Instant::now();
        let timed = |path: &str| {
            let started = Instant::now();
            let (status, body) = get(http, path);
            let ms = started.elapsed().as_millis();
            assert_eq!(status, 200, "GET {path}: {body}");
            assert!(
                ms < PAGE_MS_MAX,
                "{on}: GET {path} took {ms} ms, over {PAGE_MS_MAX}"
            );
            (body, ms)
        };
        let deadline = started + MEASURED_WAIT;
        let mut slowest = [0u128; 3];
        let shown = loop {
            let (list, list_ms) = timed("/groups");
            let (_, overview_ms) = timed("/");
            let (overview, api_ms) = timed("/api/overview");
            for (slowest, ms) in slowest.iter_mut().zip([list_ms, overview_ms, api_ms]) {
                *slowest = (*slowest).max(ms);
            }
            let overview: serde_json::Value = serde_json::from_str(&overview).expect("JSON");
            let in_api = overview["groups"]["groups"].as_array().expect("groups");
            let mut shown = 0;
            for i in 0..GROUPS {
                let (name, lag) = (self.name(i), 3 - i % 3);
                let row = format!(r#"<tr data-group="{name}">"#);
                let Some(cell) = list
                    .split(&row)
                    .nth(1)
                    .and_then(|rest| rest.split(r#"data-figure="lag-events""#).nth(1))
                    .and_then(|cell| cell.split("</td>").next())
                else {
                    continue;
                };
                assert!(
                    cell.ends_with(&format!(">{lag}")),
                    "{on}: {name} shows {cell}"
                );
                let api = in_api.iter().find(|g| g["group"] == name.as_str());
                if let Some(api) = api {
                    assert_eq!(api["lag_events"], lag, "{on}: {api}");
                    shown += 1;
                }
            }
            if shown >= shown_min || Instant::now() > deadline {
                break shown;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let metrics = get_page(http, "/metrics");
        let metric = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in /metrics"))
                .trim()
                .parse()
                .expect("a count")
        };
        assert!(
            shown >= shown_min,
            "{on}: {shown} of the groups shown with their lag after {MEASURED_WAIT:?}, not {shown_min} (the last sample took {} ms)",
            metric("keel_console_sample_duration_ms")
        );
        eprintln!(
            "{on}: {shown} groups shown after {:.1} s, the last sample took {} ms; slowest answers: /groups {} ms, / {} ms, /api/overview {} ms",
            started.elapsed().as_secs_f64(),
            metric("keel_console_sample_duration_ms"),
            slowest[0],
            slowest[1],
            slowest[2]
        );
        let skipped = metric("keel_console_sample_groups_skipped");
        assert!(
            skipped >= GROUPS as u64 - per_sample,
            "{on}: the limit of {per_sample} groups a sample bites: {skipped} skipped"
        );
        // One group's page measures it now.
        let lags = get_json(http, &format!("/api/groups/{}", self.name(1)));
        assert_eq!(lags[0]["lag_events"], 2, "{lags}");
        let page = get_page(http, &format!("/groups/{}", self.name(1)));
        assert!(
            page.contains(r#"data-figure="lag-events">2 events<"#),
            "{page}"
        );
    }
}
