//! SASL on the Kafka listener with real clients: confluent-kafka (librdkafka) and
//! kafka-python authenticate with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN against users stored
//! salted in `__keel_users`, produce and consume; a wrong password is refused with Kafka's
//! `SASL_AUTHENTICATION_FAILED` and the connection closed; a request before authentication
//! closes the connection.

mod support;

use std::process::Command;
use std::sync::Arc;

use kafka_protocol::messages::MetadataRequest;
use keel_kafka::sasl::scram::{ScramCredential, ScramMechanism};
use keel_kafka::sasl::{SaslConfig, SaslMechanism, Users};
use keel_listener::testing::self_signed;
use keel_listener::tls::TlsIdentity;
use support::{RawClient, TestBroker, python_module, run, script};

/// A broker requiring SASL (user `alice`, every mechanism), with TLS when `tls` is given.
fn broker_with_users(dir: &std::path::Path, tls: Option<&TlsIdentity>) -> TestBroker {
    let tls = tls.map(|identity| identity.server_config().unwrap());
    TestBroker::start_configured(dir, keel_kafka::BrokerConfig::default(), |log, broker| {
        let users = Users::open(log).unwrap();
        for mechanism in ScramMechanism::ALL {
            let credential = ScramCredential::new(mechanism, "alice-secret", 4096).unwrap();
            users.upsert("alice", credential).unwrap();
        }
        let broker = broker.with_sasl(SaslConfig {
            mechanisms: vec![
                SaslMechanism::Scram(ScramMechanism::Sha512),
                SaslMechanism::Scram(ScramMechanism::Sha256),
                SaslMechanism::Plain,
            ],
            users: Arc::new(users),
        });
        match tls {
            Some(tls) => broker.with_tls(tls),
            None => broker,
        }
    })
}

fn client(
    which: &str,
    broker: &TestBroker,
    topic: &str,
    password: &str,
    mechanism: &str,
    ca: Option<&std::path::Path>,
) -> serde_json::Value {
    let (protocol, ca) = match ca {
        Some(ca) => ("SASL_SSL", ca.to_str().unwrap()),
        None => ("SASL_PLAINTEXT", "-"),
    };
    let output = run(Command::new("python3").args([
        &script("sasl_client.py"),
        which,
        &broker.bootstrap(),
        topic,
        "alice",
        password,
        mechanism,
        protocol,
        ca,
    ]));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn real_clients_authenticate_with_scram_and_plain_and_a_wrong_password_is_refused() {
    if !python_module("confluent_kafka") || !python_module("kafka") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_users(dir.path(), None);
    for (which, mechanism) in [
        ("confluent", "SCRAM-SHA-512"),
        ("kafka-python", "SCRAM-SHA-512"),
        ("confluent", "SCRAM-SHA-256"),
        ("kafka-python", "PLAIN"),
    ] {
        let topic = format!("t-{which}-{}", mechanism.to_lowercase());
        let report = client(which, &broker, &topic, "alice-secret", mechanism, None);
        let expected: Vec<String> = (0..3).map(|i| format!("{which}-{i}")).collect();
        assert_eq!(
            report["consumed"],
            serde_json::json!(expected),
            "{which} {mechanism}: {report}"
        );
    }
    let refused = client(
        "kafka-python",
        &broker,
        "t-refused",
        "wrong",
        "SCRAM-SHA-512",
        None,
    );
    assert_eq!(refused["code"], 58, "kafka-python: {refused}");
    let refused = client(
        "confluent",
        &broker,
        "t-refused",
        "wrong",
        "SCRAM-SHA-512",
        None,
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Authentication failed"),
        "confluent-kafka: {refused}"
    );
    assert!(
        broker.log.topic("t-refused").is_none(),
        "nothing was created unauthenticated"
    );
}

#[test]
fn real_clients_produce_and_consume_over_sasl_ssl_with_scram_sha_512() {
    if !python_module("confluent_kafka") || !python_module("kafka") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (identity, ca) = self_signed(dir.path());
    let broker = broker_with_users(&dir.path().join("data"), Some(&identity));
    for which in ["confluent", "kafka-python"] {
        let topic = format!("tls-{which}");
        let report = client(
            which,
            &broker,
            &topic,
            "alice-secret",
            "SCRAM-SHA-512",
            Some(&ca),
        );
        let expected: Vec<String> = (0..3).map(|i| format!("{which}-{i}")).collect();
        assert_eq!(
            report["consumed"],
            serde_json::json!(expected),
            "{which}: {report}"
        );
    }
    let refused = client(
        "kafka-python",
        &broker,
        "tls-refused",
        "wrong",
        "SCRAM-SHA-512",
        Some(&ca),
    );
    assert_eq!(refused["code"], 58, "kafka-python over TLS: {refused}");
    // A plaintext client gets no Kafka answer from a TLS listener: at most a TLS alert
    // (record type 21), then the end of the stream.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(broker.address).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(&[0, 0, 0, 12, 0, 3, 0, 1, 0, 0, 0, 7, 0, 0, 0xff, 0xff])
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
}

#[test]
fn a_request_before_authentication_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_users(dir.path(), None);
    let mut client = RawClient::connect(broker.address);
    assert!(client.try_call(1, &MetadataRequest::default()).is_none());
}
