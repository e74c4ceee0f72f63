//! A client whose security does not match the listener's gets the connection closed, counted in
//! `keel_kafka_security_mismatches_total`: a plaintext Kafka request (a raw ApiVersions, kcat
//! with `security.protocol=plaintext`) on a TLS listener, and a TLS ClientHello (rustls, kcat
//! with `security.protocol=ssl`) on a plaintext one. Neither gets a Kafka answer.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use keel_listener::SecurityMismatch;
use keel_listener::testing::self_signed;
use support::{TestBroker, client_available, kcat};

/// An ApiVersions v0 request (correlation id 7, no client id): what every Kafka client sends
/// first.
const API_VERSIONS: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

fn mismatches(broker: &TestBroker, mismatch: SecurityMismatch) -> u64 {
    broker.metrics.listener().security_mismatch_count(mismatch)
}

/// Everything the listener sends before it closes the connection (a reset, since the
/// request is left unread, or an end of stream).
fn answer_to(broker: &TestBroker, request: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(broker.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the listener did not close the connection: {error}"),
    }
    answer
}

#[test]
fn a_plaintext_request_on_a_tls_listener_is_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _ca) = self_signed(dir.path());
    let tls = identity.server_config().unwrap();
    let broker = TestBroker::start_configured(
        &dir.path().join("data"),
        keel_kafka::BrokerConfig::default(),
        |_, broker| broker.with_tls(tls),
    );
    assert_eq!(answer_to(&broker, &API_VERSIONS), b"");
    assert_eq!(mismatches(&broker, SecurityMismatch::PlaintextOnTls), 1);
    if client_available("kcat", "kcat", &["-V"]) {
        let listed = kcat()
            .args(["-b", &broker.bootstrap(), "-L", "-m", "2"])
            .args(["-X", "security.protocol=plaintext"])
            .output()
            .unwrap();
        assert!(
            !listed.status.success(),
            "kcat listed metadata in the clear"
        );
        assert!(mismatches(&broker, SecurityMismatch::PlaintextOnTls) >= 2);
    }
    assert_eq!(mismatches(&broker, SecurityMismatch::TlsOnPlaintext), 0);
}

#[test]
fn a_tls_client_on_a_plaintext_listener_is_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    // rustls's ClientHello; no certificate is ever shown, so no root is needed.
    #[allow(deprecated)] // the ring provider: see keel_listener::tls
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(broker.address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let handshake = tls.write_all(&API_VERSIONS).and_then(|()| tls.flush());
    let mut answer = Vec::new();
    let read = handshake.and_then(|()| tls.read_to_end(&mut answer));
    assert!(read.is_err(), "TLS over a plaintext listener: {answer:?}");
    assert_eq!(mismatches(&broker, SecurityMismatch::TlsOnPlaintext), 1);
    // Plaintext Kafka on the same listener is still served.
    let served = answer_to_api_versions(&broker);
    assert!(served > 0);
    if client_available("kcat", "kcat", &["-V"]) {
        let listed = kcat()
            .args(["-b", &broker.bootstrap(), "-L", "-m", "2"])
            .args(["-X", "security.protocol=ssl"])
            .args(["-X", "enable.ssl.certificate.verification=false"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&listed.stderr);
        assert!(!listed.status.success(), "kcat listed metadata over TLS");
        assert!(
            mismatches(&broker, SecurityMismatch::TlsOnPlaintext) >= 2,
            "{stderr}"
        );
    }
    assert_eq!(mismatches(&broker, SecurityMismatch::PlaintextOnTls), 0);
}

/// The length of the plaintext listener's answer to ApiVersions (the connection kept open).
fn answer_to_api_versions(broker: &TestBroker) -> usize {
    let mut stream = std::net::TcpStream::connect(broker.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&API_VERSIONS).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    u32::from_be_bytes(length) as usize
}
