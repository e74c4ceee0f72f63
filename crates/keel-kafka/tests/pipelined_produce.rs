//! Pipelined requests on one connection, sent without waiting for answers as librdkafka and
//! the Java client do (up to 5 in flight with idempotence): answers come back in request
//! order, idempotent producers' sequence rules hold exactly (every batch stored once and in
//! sequence order, a retry answered with its first attempt's offset, a gap refused with
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`), and a request that is not a Produce sees the effects of
//! the Produce requests sent before it. The topics use `fsync = always`, where pipelined
//! requests of every connection wait for their `fdatasync` side by side.
//!
//! That no acknowledged record is lost to a crash while requests are pipelined is
//! keel-server's `power_cut.rs`: its confluent-kafka producer keeps many requests in flight
//! on one connection through 50 simulated power cuts.

mod support;

use std::collections::{BTreeMap, VecDeque};

use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use keel_log::TopicConfig;
use support::{RawClient, TestBroker, batch, fetch_request, produce_request, producer_id};

const OK: i16 = 0;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// Requests a producer keeps in flight, as Kafka clients do with idempotence.
const WINDOW: usize = 5;
const PRODUCE_VERSION: i16 = 9;

/// What a pipelined Produce must be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Stored: success at an offset above every earlier one of this producer.
    Stored { sequence: i32 },
    /// A retry of `sequence`: success at that batch's offset, nothing stored.
    Retry { sequence: i32 },
    /// A gap: refused.
    Gap,
}

/// One producer's plan: each sequence in turn, a retry sent right behind every tenth (while
/// the first attempt may still wait for its sync) and a batch five sequences ahead (a gap)
/// behind others.
fn plan(batches: i32) -> Vec<Expect> {
    let mut plan = Vec::new();
    for sequence in 0..batches {
        plan.push(Expect::Stored { sequence });
        if sequence % 10 == 3 {
            plan.push(Expect::Retry { sequence });
        }
        if sequence % 10 == 6 {
            plan.push(Expect::Gap);
        }
    }
    plan
}

/// Sends `plan` as producer `n` on its own connection with [`WINDOW`] requests in flight and
/// checks every answer; returns the offset each sequence was stored at.
fn run_producer(address: std::net::SocketAddr, topic: &str, n: usize, plan: &[Expect]) -> Vec<i64> {
    let mut client = RawClient::connect(address);
    let id = producer_id(&mut client);
    let mut offsets = BTreeMap::new();
    let mut in_flight: VecDeque<(i32, Expect)> = VecDeque::new();
    let mut last_stored = -1;
    let mut receive = |client: &mut RawClient, (correlation_id, expect): (i32, Expect)| {
        let response = client.receive::<ProduceRequest>(PRODUCE_VERSION, correlation_id);
        let partition = &response.responses[0].partition_responses[0];
        let got = (partition.error_code, partition.base_offset);
        match expect {
            Expect::Stored { sequence } => {
                assert_eq!(got.0, OK, "producer {n} sequence {sequence}: {partition:?}");
                assert!(
                    got.1 > last_stored,
                    "producer {n}: offsets in sequence order"
                );
                last_stored = got.1;
                offsets.insert(sequence, got.1);
            }
            Expect::Retry { sequence } => {
                assert_eq!(
                    got,
                    (OK, offsets[&sequence]),
                    "producer {n}: retry of {sequence}"
                );
            }
            Expect::Gap => assert_eq!(got, (OUT_OF_ORDER_SEQUENCE_NUMBER, -1), "producer {n}: gap"),
        }
    };
    let mut next_sequence = 0;
    for &expect in plan {
        let records = match expect {
            Expect::Stored { sequence } | Expect::Retry { sequence } => {
                batch(&format!("p{n}-{sequence:03}"), 1, id, 0, sequence)
            }
            Expect::Gap => batch("gap", 1, id, 0, next_sequence + 5),
        };
        if let Expect::Stored { sequence } = expect {
            next_sequence = sequence + 1;
        }
        if in_flight.len() == WINDOW {
            let oldest = in_flight.pop_front().unwrap();
            receive(&mut client, oldest);
        }
        let correlation_id = client.send(PRODUCE_VERSION, &produce_request(topic, records));
        in_flight.push_back((correlation_id, expect));
    }
    while let Some(oldest) = in_flight.pop_front() {
        receive(&mut client, oldest);
    }
    offsets.into_values().collect()
}

#[test]
fn pipelined_idempotent_producers_are_answered_in_order_and_keep_their_sequences() {
    // Producers on connections of their own: their durability waits share the partition's
    // one sync claim, handed from connection to connection (`keel_log::DurableStep`).
    const PRODUCERS: usize = 8;
    const BATCHES: i32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker
        .log
        .create_topic("piped", TopicConfig::new(1))
        .unwrap();
    let address = broker.address;
    let plan = plan(BATCHES);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|n| {
            let plan = plan.clone();
            std::thread::spawn(move || run_producer(address, "piped", n, &plan))
        })
        .collect();
    let mut offsets: Vec<i64> = producers
        .into_iter()
        .flat_map(|producer| producer.join().unwrap())
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(
        offsets.len(),
        PRODUCERS * BATCHES as usize,
        "every batch at its own offset"
    );

    let topic = broker.log.topic("piped").unwrap();
    let stored = topic.partitions()[0].read_records(0, 1 << 20).unwrap();
    assert_eq!(
        stored.len(),
        PRODUCERS * BATCHES as usize,
        "no retry and no gap stored"
    );
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in stored {
        let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
        let producer = key.split('-').next().unwrap().to_string();
        keys.entry(producer).or_default().push(key);
    }
    for n in 0..PRODUCERS {
        let expected: Vec<String> = (0..BATCHES).map(|s| format!("p{n}-{s:03}-0")).collect();
        assert_eq!(
            keys[&format!("p{n}")],
            expected,
            "producer {n}: each once, in order"
        );
    }
    assert!(
        broker.metrics.pipelined_requests() > 0,
        "requests were served pipelined"
    );
}

#[test]
fn a_fetch_behind_pipelined_produces_sees_their_records() {
    const PRODUCES: i64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker
        .log
        .create_topic("seen", TopicConfig::new(1))
        .unwrap();
    let mut client = RawClient::connect(broker.address);
    let produced: Vec<i32> = (0..PRODUCES)
        .map(|i| {
            let records = batch(&format!("r{i}"), 1, -1, -1, -1);
            client.send(PRODUCE_VERSION, &produce_request("seen", records))
        })
        .collect();
    // No wait for the answers: the fetch is behind them on the connection, and must not
    // overtake them while they wait for their fdatasync.
    let fetched = client.send(11, &fetch_request("seen", 0, 0, 0));
    for (offset, correlation_id) in produced.into_iter().enumerate() {
        let response = client.receive::<ProduceRequest>(PRODUCE_VERSION, correlation_id);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (OK, offset as i64)
        );
    }
    let response = client.receive::<FetchRequest>(11, fetched);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.high_watermark, PRODUCES, "{partition:?}");
    let records = partition.records.clone().unwrap_or_default();
    assert!(
        !records.is_empty(),
        "the fetch returned the records produced before it"
    );
}
