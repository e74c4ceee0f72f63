//! `KafkaAdmin`'s pool of readers (`readers.rs`) on `keel serve`'s broker in-process: many
//! concurrent reads and watermark listings of different topics, more than the pool has
//! readers, each answer holding its own topic's records and range — a reader handed from
//! one call to the next must not carry the last call's assignment into it.

mod support;

use std::collections::BTreeSet;

use keel_core::{AdminTransport, Event, PublishPort};
use keel_kafka_client::{ADMIN_READERS_PROPERTY, KafkaAdmin, KafkaConfig, KafkaPublisher};
use support::Serve;

const TOPICS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_of_different_topics_return_their_own_records() {
    let serve = Serve::start().await;
    let config = KafkaConfig::new(serve.bootstrap());
    let publisher = KafkaPublisher::new(&config).unwrap().publisher();
    let mut published: Vec<BTreeSet<String>> = Vec::new();
    for t in 0..TOPICS {
        let topic = format!("readers-{t}");
        serve.create_topic(&topic, 1);
        let mut ids = BTreeSet::new();
        // A different count per topic, so a range answered for another topic shows too.
        for n in 0..(t + 2) {
            let event = Event::new("/tests", "reader.checked").with_partition_key(format!("{n}"));
            ids.insert(event.id.clone());
            PublishPort::publish(&publisher, &topic, event)
                .await
                .unwrap();
        }
        published.push(ids);
    }
    let admin = KafkaAdmin::connect(&config.try_set(ADMIN_READERS_PROPERTY, "2").unwrap()).unwrap();
    // Three rounds over every topic at once: 18 calls of each kind on 2 readers.
    let topics: Vec<usize> = (0..3).flat_map(|_| 0..TOPICS).collect();
    let mut calls = tokio::task::JoinSet::new();
    for t in topics {
        let admin = admin.clone();
        calls.spawn(async move {
            let topic = format!("readers-{t}");
            let ranges = admin.partition_offsets(&topic).await.unwrap();
            let records = admin.read(&topic, 0, 0, 1 << 20).await.unwrap();
            (t, ranges, records)
        });
    }
    let reads = calls.join_all().await;
    for (t, ranges, records) in reads {
        assert_eq!(
            (ranges.len(), ranges[0].log_start, ranges[0].high_watermark),
            (1, 0, t as u64 + 2),
            "readers-{t}'s range"
        );
        let ids: BTreeSet<String> = records
            .iter()
            .filter_map(|r| r.headers.iter().find(|h| h.key == "ce_id"))
            .filter_map(|h| h.value.as_ref())
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
            .collect();
        assert_eq!(ids, published[t], "readers-{t}'s records, and only them");
    }
}
