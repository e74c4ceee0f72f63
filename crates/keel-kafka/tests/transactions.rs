//! Transactions on `keel serve` through hand-made requests (the Java client's transactional
//! suite is `compat/java`): the coordinator's answers, the markers in the log, the last
//! stable offset and the aborted-transaction list a `read_committed` fetch gets, fencing by
//! epoch, offsets committed only with their transaction, a timed-out transaction aborted by
//! the broker — and all of it again after a restart, from the log alone. Also: OffsetFetch
//! with `require_stable` while a transactional commit is pending, TxnOffsetCommit's member
//! and generation checks, the transaction metrics and the expiry of idle transactional ids.

mod support;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, FetchRequest, GroupId,
    InitProducerIdRequest, JoinGroupRequest, ListOffsetsRequest, OffsetFetchRequest,
    ProduceRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use keel_kafka::BrokerConfig;
use keel_log::TopicConfig;
use support::{RawClient, TestBroker, batch, fetch_request, produce_request, transactional_batch};

const OK: i16 = 0;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const TOPIC: &str = "txn-orders";

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A transactional producer on its own connection.
struct Producer {
    client: RawClient,
    id: String,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
}

impl Producer {
    /// InitProducerId for `id`: the error code, and the producer when it succeeded.
    fn init(client: RawClient, id: &str, timeout_ms: i32) -> Result<Producer, i16> {
        let mut client = client;
        let response = client.call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(text(id))))
                .with_transaction_timeout_ms(timeout_ms),
        );
        if response.error_code != OK {
            return Err(response.error_code);
        }
        Ok(Producer {
            client,
            id: id.into(),
            producer_id: response.producer_id.0,
            epoch: response.producer_epoch,
            sequence: 0,
        })
    }

    fn add_partition(&mut self) -> i16 {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(text(&self.id)))
            .with_v3_and_below_producer_id(ProducerId(self.producer_id))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(text(TOPIC)))
                    .with_partitions(vec![0]),
            ]);
        let response = self.client.call(3, &request);
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    /// Produces `count` transactional records: the error code and base offset.
    fn produce(&mut self, prefix: &str, count: i64) -> (i16, i64) {
        let records =
            transactional_batch(prefix, count, self.producer_id, self.epoch, self.sequence);
        let request: ProduceRequest = produce_request(TOPIC, records)
            .with_transactional_id(Some(TransactionalId(text(&self.id))));
        let response = self.client.call(9, &request);
        let partition = &response.responses[0].partition_responses[0];
        if partition.error_code == OK {
            self.sequence += count as i32;
        }
        (partition.error_code, partition.base_offset)
    }

    fn end(&mut self, commit: bool) -> i16 {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(text(&self.id)))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        self.client.call(3, &request).error_code
    }

    /// AddOffsetsToTxn and TxnOffsetCommit of `offset` for `group` in partition 0.
    fn send_offsets(&mut self, group: &str, offset: i64) -> (i16, i16) {
        self.send_member_offsets(group, ("", -1), offset)
    }

    /// [`Producer::send_offsets`] as `member` (id, generation) of the group.
    fn send_member_offsets(&mut self, group: &str, member: (&str, i32), offset: i64) -> (i16, i16) {
        let added = self
            .client
            .call(
                3,
                &AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(text(&self.id)))
                    .with_producer_id(ProducerId(self.producer_id))
                    .with_producer_epoch(self.epoch)
                    .with_group_id(GroupId(text(group))),
            )
            .error_code;
        let committed = self.client.call(
            3,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(text(&self.id)))
                .with_group_id(GroupId(text(group)))
                .with_producer_id(ProducerId(self.producer_id))
                .with_producer_epoch(self.epoch)
                .with_generation_id(member.1)
                .with_member_id(text(member.0))
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(text(TOPIC)))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset),
                        ]),
                ]),
        );
        (added, committed.topics[0].partitions[0].error_code)
    }
}

/// What a fetch of partition 0 from offset 0 sees: last stable offset, high watermark, the
/// first offsets of the aborted transactions it is told of (`None` when not told: a
/// `read_uncommitted` fetch), and the offsets of the batches it gets.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    last_stable_offset: i64,
    high_watermark: i64,
    aborted: Option<Vec<(i64, i64)>>,
    batches: Vec<i64>,
}

fn fetch(client: &mut RawClient, isolation_level: i8) -> Seen {
    let request: FetchRequest = fetch_request(TOPIC, 0, 0, 0).with_isolation_level(isolation_level);
    let response = client.call(11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, OK);
    let mut batches = Vec::new();
    let mut bytes = partition.records.clone().unwrap_or_default();
    while !bytes.is_empty() {
        let header = keel_log::BatchHeader::parse(&bytes, u32::MAX).expect("whole batches");
        batches.push(header.base_offset as i64);
        bytes = bytes.slice(header.size()..);
    }
    Seen {
        last_stable_offset: partition.last_stable_offset,
        high_watermark: partition.high_watermark,
        aborted: partition.aborted_transactions.as_ref().map(|list| {
            list.iter()
                .map(|t| (t.producer_id.0, t.first_offset))
                .collect()
        }),
        batches,
    }
}

/// ListOffsets' latest offset of partition 0 for `isolation_level`.
fn latest(client: &mut RawClient, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(text(TOPIC)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let response = client.call(5, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, OK);
    partition.offset
}

const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

#[test]
fn markers_the_stable_offset_and_aborted_transactions_hold_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker.log.create_topic(TOPIC, TopicConfig::new(1)).unwrap();
    let address = broker.address;
    let mut reader = RawClient::connect(address);
    let mut first = Producer::init(RawClient::connect(address), "orders-tx", 60_000).unwrap();
    assert_eq!(first.epoch, 0);

    // A partition not added to the transaction is refused, and nothing is stored.
    assert_eq!(first.produce("early", 1).0, INVALID_TXN_STATE);
    // A transaction that aborts (offsets 0-2), a plain record beside it (3), its marker (4).
    assert_eq!(first.add_partition(), OK);
    assert_eq!(first.produce("aborted", 3), (OK, 0));
    let plain = produce_request(TOPIC, batch("plain", 1, -1, -1, -1));
    assert_eq!(
        reader.call(9, &plain).responses[0].partition_responses[0].base_offset,
        3
    );
    let pending = fetch(&mut reader, READ_COMMITTED);
    assert_eq!((pending.last_stable_offset, pending.batches.len()), (0, 0));
    assert_eq!(fetch(&mut reader, READ_UNCOMMITTED).batches, [0, 3]);
    assert_eq!(latest(&mut reader, READ_COMMITTED), 0);
    assert_eq!(latest(&mut reader, READ_UNCOMMITTED), 4);
    assert_eq!(first.end(false), OK);
    assert_eq!(first.end(false), OK, "a repeated end is answered as done");

    // A transaction that commits (5-6, marker 7) with a group's offset in it.
    assert_eq!(first.add_partition(), OK);
    assert_eq!(first.produce("committed", 2), (OK, 5));
    assert_eq!(first.send_offsets("txn-group", 4), (OK, OK));
    let offsets = broker.log.group_offsets();
    assert_eq!(
        offsets.fetch("txn-group", TOPIC, 0),
        None,
        "not before the commit"
    );
    assert_eq!(first.end(true), OK);
    assert_eq!(
        offsets.fetch("txn-group", TOPIC, 0).map(|c| c.offset),
        Some(4)
    );
    assert_eq!(first.end(false), INVALID_TXN_STATE, "the commit is over");
    let pid = first.producer_id;
    let committed = Seen {
        last_stable_offset: 8,
        high_watermark: 8,
        aborted: Some(vec![(pid, 0)]),
        batches: vec![0, 3, 4, 5, 7],
    };
    assert_eq!(fetch(&mut reader, READ_COMMITTED), committed);
    assert_eq!(fetch(&mut reader, READ_UNCOMMITTED).aborted, None);

    // A third transaction left open (8) across a restart.
    assert_eq!(first.add_partition(), OK);
    assert_eq!(first.produce("open", 1), (OK, 8));
    drop((first, reader));
    drop(broker);

    let broker = TestBroker::start(dir.path());
    let address = broker.address;
    let mut reader = RawClient::connect(address);
    let open = fetch(&mut reader, READ_COMMITTED);
    assert_eq!(
        (open.last_stable_offset, open.high_watermark),
        (8, 9),
        "rebuilt from the log: {open:?}"
    );
    assert_eq!(open.batches, committed.batches);
    assert_eq!(open.aborted, Some(vec![(pid, 0)]));

    // The same transactional id again: its open transaction is aborted (marker 9) and the
    // old producer fenced.
    let second = Producer::init(RawClient::connect(address), "orders-tx", 60_000).unwrap();
    assert_eq!(second.producer_id, pid);
    assert!(second.epoch > 0);
    let after = fetch(&mut reader, READ_COMMITTED);
    assert_eq!((after.last_stable_offset, after.high_watermark), (10, 10));
    assert_eq!(after.aborted, Some(vec![(pid, 0), (pid, 8)]));
    let mut zombie = Producer {
        client: RawClient::connect(address),
        id: "orders-tx".into(),
        producer_id: pid,
        epoch: 0,
        sequence: 6,
    };
    assert_eq!(zombie.end(true), PRODUCER_FENCED);
    assert_eq!(zombie.add_partition(), PRODUCER_FENCED);
    assert_eq!(zombie.produce("zombie", 1).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(fetch(&mut reader, READ_UNCOMMITTED).high_watermark, 10);
}

#[test]
fn the_broker_aborts_a_transaction_past_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker.log.create_topic(TOPIC, TopicConfig::new(1)).unwrap();
    let refused = Producer::init(RawClient::connect(broker.address), "slow", 900_001);
    assert_eq!(refused.err(), Some(INVALID_TRANSACTION_TIMEOUT));
    let mut slow = Producer::init(RawClient::connect(broker.address), "slow", 1_000).unwrap();
    assert_eq!(slow.add_partition(), OK);
    assert_eq!(slow.produce("slow", 2), (OK, 0));
    let mut reader = RawClient::connect(broker.address);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let seen = loop {
        let seen = fetch(&mut reader, READ_COMMITTED);
        if seen.last_stable_offset == 3 || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        seen.last_stable_offset, 3,
        "aborted with a marker at 2: {seen:?}"
    );
    assert_eq!(seen.aborted, Some(vec![(slow.producer_id, 0)]));
    assert_eq!(
        slow.end(true),
        PRODUCER_FENCED,
        "the late producer is fenced"
    );
    let text = metrics(&broker);
    assert!(
        text.contains("keel_kafka_transactions_timed_out_total 1")
            && text.contains(r#"keel_kafka_transactions_total{outcome="aborted"} 1"#),
        "{text}"
    );
}

/// OffsetFetch v7 of `group`'s partition 0 with or without `require_stable`: the error code
/// and offset.
fn fetch_offset(client: &mut RawClient, group: &str, require_stable: bool) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(text(TOPIC)))
                .with_partition_indexes(vec![0]),
        ]))
        .with_require_stable(require_stable);
    let partition = &client.call(7, &request).topics[0].partitions[0];
    (partition.error_code, partition.committed_offset)
}

/// The broker's metrics as `/metrics` shows them.
fn metrics(broker: &TestBroker) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    broker.metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[test]
fn a_pending_transactional_commit_makes_require_stable_fetches_unstable() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker.log.create_topic(TOPIC, TopicConfig::new(1)).unwrap();
    let mut reader = RawClient::connect(broker.address);
    let mut producer =
        Producer::init(RawClient::connect(broker.address), "stable", 60_000).unwrap();
    assert_eq!(producer.add_partition(), OK);
    assert_eq!(producer.send_offsets("stable-group", 4), (OK, OK));
    assert!(metrics(&broker).contains("keel_kafka_transactions_ongoing 1"));
    assert_eq!(
        fetch_offset(&mut reader, "stable-group", true),
        (UNSTABLE_OFFSET_COMMIT, -1)
    );
    assert_eq!(
        fetch_offset(&mut reader, "other-group", true),
        (OK, -1),
        "only the group with the pending commit"
    );
    assert_eq!(fetch_offset(&mut reader, "stable-group", false), (OK, -1));
    assert_eq!(producer.end(true), OK);
    assert_eq!(fetch_offset(&mut reader, "stable-group", true), (OK, 4));

    // An aborted transaction's offsets are stable (dropped) once it ends.
    assert_eq!(producer.send_offsets("stable-group", 9), (OK, OK));
    assert_eq!(
        fetch_offset(&mut reader, "stable-group", true).0,
        UNSTABLE_OFFSET_COMMIT
    );
    assert_eq!(producer.end(false), OK);
    assert_eq!(fetch_offset(&mut reader, "stable-group", true), (OK, 4));
    let text = metrics(&broker);
    for line in [
        "keel_kafka_transactions_ongoing 0",
        r#"keel_kafka_transactions_total{outcome="committed"} 1"#,
        r#"keel_kafka_transactions_total{outcome="aborted"} 1"#,
        "keel_kafka_transactions_timed_out_total 0",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[test]
fn txn_offset_commit_checks_the_member_and_generation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker.log.create_topic(TOPIC, TopicConfig::new(1)).unwrap();
    let mut producer =
        Producer::init(RawClient::connect(broker.address), "members", 60_000).unwrap();
    assert_eq!(producer.add_partition(), OK);
    // No such group: a generation is stale, none (-1) is a client managing its own offsets.
    assert_eq!(
        producer.send_member_offsets("no-group", ("ghost", 3), 1).1,
        ILLEGAL_GENERATION
    );
    assert_eq!(producer.send_offsets("no-group", 1).1, OK);

    let mut member = RawClient::connect(broker.address);
    let joined = member.call(
        3,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(text("members-group")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(bytes::Bytes::from_static(b"subscription")),
            ]),
    );
    assert_eq!(joined.error_code, OK);
    let (id, generation) = (joined.member_id.to_string(), joined.generation_id);
    let group = "members-group";
    assert_eq!(
        producer
            .send_member_offsets(group, ("ghost", generation), 2)
            .1,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        producer
            .send_member_offsets(group, (&id, generation + 1), 2)
            .1,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        producer.send_member_offsets(group, (&id, generation), 2).1,
        OK
    );
    // A commit naming no member (all there is before v3): the producer's epoch is the fence.
    assert_eq!(producer.send_offsets(group, 3).1, OK);
    assert_eq!(producer.end(true), OK);
    assert_eq!(
        broker
            .log
            .group_offsets()
            .fetch(group, TOPIC, 0)
            .map(|c| c.offset),
        Some(3)
    );
}

#[test]
fn an_idle_transactional_id_is_forgotten_after_its_expiration() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        transactional_id_expiration_ms: 1_000,
        ..BrokerConfig::default()
    };
    let broker = TestBroker::start_with(dir.path(), config.clone());
    broker.log.create_topic(TOPIC, TopicConfig::new(1)).unwrap();
    let mut idle = Producer::init(RawClient::connect(broker.address), "idle", 60_000).unwrap();
    let mut busy = Producer::init(RawClient::connect(broker.address), "busy", 60_000).unwrap();
    assert_eq!(busy.add_partition(), OK);
    // Known and with no transaction: an end is out of place, not an unknown id.
    assert_eq!(idle.end(true), INVALID_TXN_STATE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while idle.end(true) != INVALID_PRODUCER_ID_MAPPING {
        assert!(std::time::Instant::now() < deadline, "never forgotten");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(metrics(&broker).contains("keel_kafka_transactional_ids_expired_total 1"));
    // The id with a transaction in progress is kept (until its timeout aborts it).
    assert_eq!(busy.end(true), OK);
    let (old, busy_id) = (idle.producer_id, busy.producer_id);
    drop((idle, busy));
    drop(broker);

    // Forgotten for good: after a restart the id starts again with a new producer id.
    let broker = TestBroker::start_with(dir.path(), config);
    let again = Producer::init(RawClient::connect(broker.address), "idle", 60_000).unwrap();
    assert!(again.producer_id != old && again.producer_id != busy_id);
    assert_eq!(again.epoch, 0);
}
