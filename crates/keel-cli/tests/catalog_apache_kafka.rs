//! The catalog page of `keel console --brokers` on the real Apache Kafka broker: a topic's
//! event types, who published them (their CloudEvents sources) and the group that reads the
//! topic, learned through the admin port from the console sampler's topics and groups — as
//! the embedded log's catalog shows them — and the same topic as the AsyncAPI document the
//! page links. Finds its own topic among the shared broker's
//! thousands with the page's filter. Needs the `kafka` feature and `KEEL_TEST_KAFKA_BROKERS`
//! (`scripts/services start kafka`): unset, the test says it did not run; set, an
//! unreachable broker fails it. Its topic and the group it commits are deleted at
//! the end, passed or failed.
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

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use console::{get_json, get_page};
use kafka_leftovers::KafkaLeftovers;
use keel_core::{AdminTransport, Event, GroupOffset, NewRecord};
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher};
use keel_runtime::event_record;
use support::Keel;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";
/// How long the console's first sample of the shared broker, and then the measure of a new
/// group, may take.
const SAMPLE_WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_of_a_cluster_names_each_event_types_publishers_and_consumers() {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!("keel console --brokers catalog: not run, {BROKERS_VAR} is unset");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let topic = format!("keel-cli-catalog-{}-{nanos}", std::process::id());
    let group = format!("{topic}-readers");
    let config = KafkaConfig::new(&brokers);
    let admin = KafkaAdmin::connect(&config).expect("admin clients");
    let mut leftovers = KafkaLeftovers::new(&admin);
    leftovers.topic(&topic);
    leftovers.group(&group);
    assert_eq!(admin.create_topic(&topic, 2).await.expect("topic"), 2);
    let publisher = KafkaPublisher::new(&config).expect("producer");
    let published = [
        ("/orders", "order.placed", 0),
        ("/orders", "order.placed", 1),
        ("/orders", "order.placed", 1),
        ("/billing", "invoice.sent", 0),
        ("/billing", "invoice.sent", 1),
    ];
    for (source, ty, partition) in published {
        let record = event_record(
            &Event::new(source, ty).with_data("application/json", b"{\"n\":1}".to_vec()),
        );
        publisher
            .send(&topic, &record, Some(partition))
            .await
            .expect("publish");
    }
    let plain = NewRecord::new(Some(Bytes::from_static(b"k")), "not a CloudEvent");
    publisher
        .send(&topic, &plain, Some(0))
        .await
        .expect("publish");

    let keel = Keel::new();
    let (mut console, http) = keel.start_console(&brokers, &["--console-sample-ms", "3000"]);
    // A group that appears after the first sample's listing is measured at the next one,
    // before the shared broker's thousands never measured yet.
    let deadline = Instant::now() + SAMPLE_WAIT;
    while get_json(http, "/api/overview")["groups"]["sampled_at_ms"].is_null() {
        assert!(Instant::now() < deadline, "no first sample");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let committed = [0, 1].map(|partition| GroupOffset {
        topic: topic.clone(),
        partition,
        offset: 1,
    });
    admin.commit(&group, &committed).await.expect("commit");

    let path = format!("/catalog?q={topic}");
    let row = |page: &str, ty: &str| -> Option<String> {
        let start = page.find(&format!(r#"data-type="{ty}""#))?;
        let end = start + page[start..].find("</tr>")?;
        Some(page[start..end].to_string())
    };
    let page = loop {
        let page = get_page(http, &path);
        if row(&page, "order.placed").is_some_and(|r| r.contains(&group)) {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the catalog never named {group} as a consumer: {page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let placed = row(&page, "order.placed").expect("order.placed");
    assert!(
        placed.contains(r#"data-figure="sources">/orders<"#),
        "{placed}"
    );
    assert!(
        placed.contains(r#"data-figure="events-sampled">3<"#),
        "{placed}"
    );
    let sent = row(&page, "invoice.sent").expect("invoice.sent");
    assert!(
        sent.contains(r#"data-figure="sources">/billing<"#),
        "{sent}"
    );
    assert!(
        sent.contains(r#"data-figure="events-sampled">2<"#),
        "{sent}"
    );
    assert!(
        sent.contains(&format!(r#"data-figure="consumers">{group}<"#)),
        "{sent}"
    );
    assert_eq!(
        page.matches(&format!(r#"data-topic="{topic}""#)).count(),
        2,
        "two event types; the plain record is no CloudEvent: {page}"
    );

    // The page links the same topics as an AsyncAPI document, learned through the same port.
    let document_path = format!("/api/catalog/asyncapi.json?q={topic}");
    assert!(
        page.contains(&format!(r#"href="{document_path}""#)),
        "the page links its document: {page}"
    );
    let document = get_json(http, &document_path);
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(
        document["channels"].as_object().map(|c| c.len()),
        Some(1),
        "only the filtered topic: {document}"
    );
    let messages: BTreeSet<&str> = document["channels"][&topic]["messages"]
        .as_object()
        .expect("the topic's channel lists its messages")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(messages, BTreeSet::from(["invoice.sent", "order.placed"]));
    let operations = &document["operations"];
    assert_eq!(
        operations[format!("{group}_receives_from_{topic}")]["x-keel-consumer-group"],
        group.as_str(),
        "{document}"
    );
    assert_eq!(
        operations[format!("_orders_sends_to_{topic}")]["x-keel-source"],
        "/orders",
        "{document}"
    );
    assert!(document.get("x-keel-scan-errors").is_none(), "{document}");

    assert!(server::terminate(&mut console), "SIGTERM exits 0");
}
