//! Fetch sessions (KIP-227) against hand-made requests: a full fetch opens a session, later
//! fetches name only what changed and get only partitions with news, forgotten partitions are
//! dropped, and stale or unknown sessions are refused with Kafka's codes.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use keel_log::{NewRecord, TopicConfig};
use support::{RawClient, TestBroker};

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.into()))
}

/// Fetch list entries: (topic, partition, fetch offset).
fn wanted(partitions: &[(&str, i32, i64)]) -> Vec<FetchTopic> {
    partitions
        .iter()
        .map(|&(topic, partition, offset)| {
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ])
        })
        .collect()
}

/// A Fetch v12 in session `id` at `epoch`, answered at once.
fn fetch(
    client: &mut RawClient,
    id: i32,
    epoch: i32,
    partitions: &[(&str, i32, i64)],
    forgotten: &[(&str, i32)],
) -> FetchResponse {
    let forgotten = forgotten
        .iter()
        .map(|&(topic, partition)| {
            ForgottenTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![partition])
        })
        .collect();
    client.call(
        12,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(wanted(partitions))
            .with_forgotten_topics_data(forgotten),
    )
}

/// The partitions an answer carries: (topic, partition, records' bytes).
fn carried(response: &FetchResponse) -> Vec<(String, i32, usize)> {
    let mut carried: Vec<_> = response
        .responses
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                let bytes = p.records.as_ref().map_or(0, Bytes::len);
                (topic.topic.to_string(), p.partition_index, bytes)
            })
        })
        .collect();
    carried.sort();
    carried
}

fn names(response: &FetchResponse) -> Vec<(String, i32)> {
    carried(response)
        .into_iter()
        .map(|(topic, partition, _)| (topic, partition))
        .collect()
}

#[test]
fn a_session_carries_only_what_changed_and_refuses_stale_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let a = broker.log.create_topic("a", TopicConfig::new(2)).unwrap();
    let b = broker.log.create_topic("b", TopicConfig::new(1)).unwrap();
    let append = |topic: &keel_log::Topic, partition: u32| {
        let record = NewRecord::new(Some(Bytes::from("k")), Bytes::from("v"));
        topic
            .partition(partition)
            .unwrap()
            .append(&[record])
            .unwrap();
    };
    append(&a, 0);
    append(&b, 0);
    let mut client = RawClient::connect(broker.address);

    // A full fetch opens a session and answers every partition.
    let full = fetch(
        &mut client,
        0,
        0,
        &[("a", 0, 0), ("a", 1, 0), ("b", 0, 0)],
        &[],
    );
    assert_eq!(full.error_code, 0);
    let id = full.session_id;
    assert_ne!(id, 0, "no session opened");
    let all = carried(&full);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].2 > 0 && all[1].2 == 0 && all[2].2 > 0, "{all:?}");

    // The client read a/0 and b/0 to their ends: nothing moved, nothing to carry.
    let quiet = fetch(&mut client, id, 1, &[("a", 0, 1), ("b", 0, 1)], &[]);
    assert_eq!((quiet.error_code, quiet.session_id), (0, id));
    assert!(carried(&quiet).is_empty(), "{:?}", carried(&quiet));

    // A record in a/1, which the client did not name again: only it is carried.
    append(&a, 1);
    let news = fetch(&mut client, id, 2, &[], &[]);
    assert_eq!(names(&news), [("a".to_owned(), 1)]);
    assert!(carried(&news)[0].2 > 0);

    // The same epoch again is stale; an id never given is unknown. Neither answers data.
    let stale = fetch(&mut client, id, 2, &[], &[]);
    assert_eq!(
        (stale.error_code, stale.session_id),
        (INVALID_FETCH_SESSION_EPOCH, 0)
    );
    assert!(stale.responses.is_empty());
    let unknown = fetch(&mut client, id.wrapping_add(7), 1, &[], &[]);
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // b/0 forgotten: its new record is not carried, a/0's is.
    let forgot = fetch(&mut client, id, 3, &[("a", 1, 1)], &[("b", 0)]);
    assert!(carried(&forgot).is_empty(), "{:?}", carried(&forgot));
    append(&b, 0);
    append(&a, 0);
    let after = fetch(&mut client, id, 4, &[], &[]);
    assert_eq!(names(&after), [("a".to_owned(), 0)]);

    // Epoch -1 closes the session and answers the request as sent, without a session.
    let closed = fetch(&mut client, id, -1, &[("b", 0, 0)], &[]);
    assert_eq!((closed.error_code, closed.session_id), (0, 0));
    assert_eq!(names(&closed), [("b".to_owned(), 0)]);
    let gone = fetch(&mut client, id, 5, &[], &[]);
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);
}
