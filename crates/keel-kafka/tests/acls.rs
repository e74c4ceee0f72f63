//! Kafka ACLs with real clients: over SASL/SCRAM-SHA-512, a principal without an ACL gets
//! `TOPIC_AUTHORIZATION_FAILED` from confluent-kafka and kafka-python; a super user grants it
//! Write and Read with confluent-kafka's AdminClient (CreateAcls, DescribeAcls), after which
//! it produces and consumes in its group; DeleteAcls takes the grant back. Raw requests check
//! what the clients do not show: Keel's own topics stay closed to a super user
//! (`INVALID_TOPIC_EXCEPTION`, as Kafka's internal topics), ACL requests
//! need the cluster permission, and a restart keeps the ACLs. The AdminClient also manages
//! SCRAM users (AlterUserScramCredentials, DescribeUserScramCredentials), which the listener's
//! next authentication sees.

mod support;

use std::process::Command;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use keel_kafka::acl::Acls;
use keel_log::TopicConfig;
use support::{TestBroker, python_module, run, script};

/// Kafka's TOPIC_AUTHORIZATION_FAILED.
const TOPIC_AUTHORIZATION_FAILED: i64 = 29;

/// Kafka's INVALID_TOPIC_EXCEPTION, its answer to a client writing an internal topic.
const INVALID_TOPIC_EXCEPTION: i16 = 17;

fn step(broker: &TestBroker, step: &str, topic: &str, user: &str) -> serde_json::Value {
    step_on(broker, step, topic, user, "-")
}

/// A step that acts on `target` (a user whose credentials the step changes).
fn step_on(
    broker: &TestBroker,
    step: &str,
    topic: &str,
    user: &str,
    target: &str,
) -> serde_json::Value {
    let output = run(Command::new("python3").args([
        &script("acl_client.py"),
        step,
        &broker.bootstrap(),
        topic,
        user,
        &format!("{user}-secret"),
        target,
    ]));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_principal_without_an_acl_is_refused_until_a_super_user_grants_it() {
    if !python_module("confluent_kafka") || !python_module("kafka") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_secured(dir.path(), None);
    broker
        .log
        .create_topic("orders", TopicConfig::new(1))
        .unwrap();

    let refused = step(&broker, "produce-confluent", "orders", "bob");
    assert_eq!(
        refused["error"], "TOPIC_AUTHORIZATION_FAILED",
        "confluent-kafka: {refused}"
    );
    let refused = step(&broker, "produce-python", "orders", "carol");
    assert_eq!(
        refused["code"], TOPIC_AUTHORIZATION_FAILED,
        "kafka-python: {refused}"
    );

    let granted = step(&broker, "grant", "orders", "admin");
    assert_eq!(
        granted["described"],
        serde_json::json!(["User:bob READ ALLOW", "User:bob WRITE ALLOW"]),
        "{granted}"
    );
    let produced = step(&broker, "produce-confluent", "orders", "bob");
    assert_eq!(produced["ok"], true, "after the grant: {produced}");
    let consumed = step(&broker, "consume-confluent", "orders", "bob");
    assert_eq!(
        consumed["consumed"],
        serde_json::json!(["bob-value"]),
        "{consumed}"
    );
    let refused = step(&broker, "produce-python", "orders", "carol");
    assert_eq!(
        refused["code"], TOPIC_AUTHORIZATION_FAILED,
        "carol still has no ACL: {refused}"
    );

    let revoked = step(&broker, "revoke", "orders", "admin");
    assert_eq!(revoked["deleted"], 2, "{revoked}");
    let refused = step(&broker, "produce-confluent", "orders", "bob");
    assert_eq!(
        refused["error"], "TOPIC_AUTHORIZATION_FAILED",
        "after the revoke: {refused}"
    );
}

#[test]
fn the_admin_client_manages_scram_users_on_the_listener() {
    if !python_module("confluent_kafka") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_secured(dir.path(), None);
    broker
        .log
        .create_topic("ledger", TopicConfig::new(1))
        .unwrap();
    let unknown = step(&broker, "produce-confluent", "ledger", "dave");
    assert_eq!(unknown["error"], "authentication failed", "{unknown}");
    let refused = step_on(&broker, "scram-add", "ledger", "bob", "dave");
    assert_eq!(
        refused["error"], "CLUSTER_AUTHORIZATION_FAILED",
        "{refused}"
    );

    let added = step_on(&broker, "scram-add", "ledger", "admin", "dave");
    assert_eq!(added["ok"], true, "{added}");
    let described = step_on(&broker, "scram-describe", "ledger", "admin", "dave");
    assert_eq!(
        described["credentials"],
        serde_json::json!(["SCRAM_SHA_512 4096"]),
        "{described}"
    );
    // Dave authenticates now; with no ACL of his own the produce is refused by authorization.
    let authenticated = step(&broker, "produce-confluent", "ledger", "dave");
    assert_eq!(
        authenticated["error"], "TOPIC_AUTHORIZATION_FAILED",
        "{authenticated}"
    );

    let deleted = step_on(&broker, "scram-delete", "ledger", "admin", "dave");
    assert_eq!(deleted["ok"], true, "{deleted}");
    let gone = step_on(&broker, "scram-describe", "ledger", "admin", "dave");
    assert_eq!(gone["error"], "RESOURCE_NOT_FOUND", "{gone}");
    let unknown = step(&broker, "produce-confluent", "ledger", "dave");
    assert_eq!(unknown["error"], "authentication failed", "{unknown}");
}

/// A raw client authenticated with SASL/PLAIN (the exchange is one message).
fn authenticated(broker: &TestBroker, user: &str) -> support::RawClient {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let mut client = support::RawClient::connect(broker.address);
    let _: kafka_protocol::messages::SaslHandshakeResponse = client.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    let message = format!("\0{user}\0{user}-secret");
    let answer: kafka_protocol::messages::SaslAuthenticateResponse = client.call(
        1,
        &SaslAuthenticateRequest::default().with_auth_bytes(message.into_bytes().into()),
    );
    assert_eq!(answer.error_code, 0, "{user} authenticated");
    client
}

#[test]
fn keels_own_topics_stay_closed_and_acls_need_the_cluster_permission_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = TestBroker::start_secured(dir.path(), None);
        let mut admin = authenticated(&broker, "admin");
        for internal in ["_keel_schemas", "keel.dlq.audit"] {
            broker.log.create_topic(internal, TopicConfig::new(1)).ok();
            let produce = ProduceRequest::default()
                .with_acks(-1)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_static_str(internal)))
                        .with_partition_data(vec![PartitionProduceData::default()]),
                ]);
            let answer: ProduceResponse = admin.call(8, &produce);
            let code = answer.responses[0].partition_responses[0].error_code;
            assert_eq!(code, INVALID_TOPIC_EXCEPTION, "produce to {internal}");
            let delete = DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_static_str(internal))]);
            let answer: DeleteTopicsResponse = admin.call(4, &delete);
            let code = answer.responses[0].error_code;
            assert_eq!(code, INVALID_TOPIC_EXCEPTION, "delete {internal}");
        }
        let creation = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("orders"))
            .with_resource_pattern_type(3)
            .with_principal(StrBytes::from_static_str("User:bob"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(4)
            .with_permission_type(3);
        let request = CreateAclsRequest::default().with_creations(vec![creation]);
        let mut bob = authenticated(&broker, "bob");
        let answer: CreateAclsResponse = bob.call(2, &request);
        assert_eq!(
            answer.results[0].error_code, 31,
            "CLUSTER_AUTHORIZATION_FAILED"
        );
        let answer: CreateAclsResponse = admin.call(2, &request);
        assert_eq!(answer.results[0].error_code, 0, "{answer:?}");
    }
    let log = keel_log::Log::open(dir.path()).unwrap();
    let acls = Acls::open(&log).unwrap();
    let kept = acls.matching(&keel_kafka::acl::AclFilter::ANY);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].principal, "User:bob");
}
