//! Starts a broker on a free port in a background runtime, and finds the real Kafka clients
//! the compatibility tests drive.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use keel_kafka::group::{GroupConfig, GroupCoordinator};
use keel_kafka::{Broker, BrokerConfig, BrokerMetrics, KafkaListener};
use keel_log::Log;
use tokio::sync::oneshot;

/// The system's kcat, to run. Cargo puts the librdkafka that rdkafka-sys built on a test's
/// LD_LIBRARY_PATH whenever rdkafka-sys is in the build — a workspace run, not `-p
/// keel-kafka` — and kcat, built against Debian's librdkafka, must load the system's one.
pub(crate) fn kcat() -> Command {
    let mut kcat = Command::new("kcat");
    kcat.env_remove("LD_LIBRARY_PATH");
    kcat
}

/// A broker serving a log on 127.0.0.1, stopped (gracefully) on drop.
pub(crate) struct TestBroker {
    pub(crate) address: SocketAddr,
    pub(crate) log: Arc<Log>,
    pub(crate) metrics: BrokerMetrics,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestBroker {
    pub(crate) fn start(dir: &Path) -> TestBroker {
        TestBroker::start_with(dir, BrokerConfig::default())
    }

    pub(crate) fn start_with(dir: &Path, config: BrokerConfig) -> TestBroker {
        TestBroker::start_configured(dir, config, |_, broker| broker)
    }

    /// A broker that `configure` finishes with the opened log at hand (SASL users live
    /// there) — SASL, TLS.
    pub(crate) fn start_configured(
        dir: &Path,
        config: BrokerConfig,
        configure: impl FnOnce(&Log, Broker) -> Broker,
    ) -> TestBroker {
        let log = Arc::new(Log::open(dir).expect("open log"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(KafkaListener::bind("127.0.0.1:0".parse().unwrap()))
            .expect("bind");
        let address = listener.local_addr().unwrap();
        // The group coordinator's timer task runs on the broker's runtime.
        let groups = {
            let _runtime = runtime.enter();
            Arc::new(GroupCoordinator::start(log.clone(), GroupConfig::default()))
        };
        let metrics = BrokerMetrics::default();
        let broker = Broker::new(log.clone(), config.clone(), config.node_address(address))
            .with_group_hook(groups)
            .with_metrics(metrics.clone());
        let broker = Arc::new(configure(&log, broker));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(listener.serve(broker, async {
                let _ = stopped.await;
            }));
        });
        TestBroker {
            address,
            log,
            metrics,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A broker requiring SCRAM-SHA-512 or PLAIN, with users `admin` (a super user), `bob`
    /// and `carol` (each with the password `<name>-secret`), and ACLs closed by default;
    /// over TLS with `tls` (`SASL_SSL`).
    pub(crate) fn start_secured(
        dir: &Path,
        tls: Option<&keel_listener::tls::TlsIdentity>,
    ) -> TestBroker {
        let tls = tls.map(|identity| identity.server_config().unwrap());
        use keel_kafka::acl::{Acls, Authorizer};
        use keel_kafka::sasl::scram::{ScramCredential, ScramMechanism};
        use keel_kafka::sasl::{SaslConfig, SaslMechanism, Users};
        TestBroker::start_configured(dir, BrokerConfig::default(), |log, broker| {
            let users = Users::open(log).unwrap();
            for user in ["admin", "bob", "carol"] {
                let password = format!("{user}-secret");
                let credential =
                    ScramCredential::new(ScramMechanism::Sha512, &password, 4096).unwrap();
                users.upsert(user, credential).unwrap();
            }
            let acls = Arc::new(Acls::open(log).unwrap());
            let broker = broker
                .with_sasl(SaslConfig {
                    mechanisms: vec![
                        SaslMechanism::Scram(ScramMechanism::Sha512),
                        SaslMechanism::Plain,
                    ],
                    users: Arc::new(users),
                })
                .with_authorizer(Authorizer::new(acls, ["User:admin".to_string()], false));
            match tls {
                Some(tls) => broker.with_tls(tls),
                None => broker,
            }
        })
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether missing clients must fail the test (CI installs them) rather than skip it.
fn clients_required() -> bool {
    std::env::var("KEEL_TEST_KAFKA_CLIENTS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `program --version`-like probe `args` runs; prints why the test is skipped, or
/// panics when clients are required.
pub(crate) fn client_available(what: &str, program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success());
    if !ok {
        assert!(
            !clients_required(),
            "{what} is required (KEEL_TEST_KAFKA_CLIENTS=1 or CI=true) but `{program}` is not usable; .ci/run installs it"
        );
        eprintln!(
            "{what} not found: this client test did not run (set KEEL_TEST_KAFKA_CLIENTS=1 to require it)"
        );
    }
    ok
}

/// Whether a Python module imports.
pub(crate) fn python_module(module: &str) -> bool {
    client_available(
        &format!("python module {module}"),
        "python3",
        &["-c", &format!("import {module}")],
    )
}

/// Runs a command, panicking with its output when it fails.
pub(crate) fn run(command: &mut Command) -> Output {
    let output = command.output().expect("spawn client");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes what one client suite found on one broker (`tests`: each test's failure or null;
/// `usable`: API versions by `Name(key)`) to `compat-results/<client>-<broker>.json` beside the
/// build, which `scripts/kafka-compat-matrix` tabulates in docs/kafka-compatibility.md.
pub(crate) fn save_compat_results(
    client: &str,
    broker: &str,
    tests: &serde_json::Value,
    usable: &serde_json::Value,
) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-results");
    std::fs::create_dir_all(&dir).unwrap();
    let json = serde_json::json!({
        "client": client,
        "broker": broker,
        "tests": tests,
        "usable": usable,
    });
    std::fs::write(
        dir.join(format!("{client}-{broker}.json")),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}

/// A Python client script shipped beside the tests.
pub(crate) fn script(name: &str) -> String {
    format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A minimal Kafka client over kafka-protocol's message types, for tests that need exact
/// control over bytes (bad frames, retried batches).
pub(crate) struct RawClient {
    stream: std::net::TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub(crate) fn connect(address: SocketAddr) -> RawClient {
        let stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        RawClient {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends a request and decodes its response.
    pub(crate) fn call<R>(&mut self, version: i16, request: &R) -> R::Response
    where
        R: kafka_protocol::protocol::Request,
    {
        self.try_call(version, request).expect("a response")
    }

    /// Sends a request and decodes its response; `None` when the server closed the
    /// connection instead of answering.
    pub(crate) fn try_call<R>(&mut self, version: i16, request: &R) -> Option<R::Response>
    where
        R: kafka_protocol::protocol::Request,
    {
        let correlation_id = self.send(version, request);
        self.try_receive::<R>(version, correlation_id)
    }

    /// Sends a request without waiting for its answer (pipelining); returns its correlation
    /// id, for [`RawClient::receive`].
    pub(crate) fn send<R>(&mut self, version: i16, request: &R) -> i32
    where
        R: kafka_protocol::protocol::Request,
    {
        use kafka_protocol::messages::{ApiKey, RequestHeader};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        self.correlation_id += 1;
        let api_key = ApiKey::try_from(R::KEY).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")));
        let mut frame = bytes::BytesMut::new();
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut frame, version).unwrap();
        self.send_frame(&frame);
        self.correlation_id
    }

    /// Reads the next response, which must answer the request sent with `correlation_id`.
    pub(crate) fn receive<R>(&mut self, version: i16, correlation_id: i32) -> R::Response
    where
        R: kafka_protocol::protocol::Request,
    {
        self.try_receive::<R>(version, correlation_id)
            .expect("a response")
    }

    fn try_receive<R>(&mut self, version: i16, correlation_id: i32) -> Option<R::Response>
    where
        R: kafka_protocol::protocol::Request,
    {
        use kafka_protocol::messages::{ApiKey, ResponseHeader};
        use kafka_protocol::protocol::Decodable;
        let api_key = ApiKey::try_from(R::KEY).unwrap();
        let mut response = bytes::Bytes::from(self.read_frame()?);
        let header =
            ResponseHeader::decode(&mut response, api_key.response_header_version(version))
                .unwrap();
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses in request order"
        );
        Some(R::Response::decode(&mut response, version).unwrap())
    }

    /// Writes a length prefix and `frame`.
    pub(crate) fn send_frame(&mut self, frame: &[u8]) {
        self.send_raw(&(frame.len() as i32).to_be_bytes());
        self.send_raw(frame);
    }

    /// Writes bytes as they are.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response frame; `None` when the server closed the connection.
    pub(crate) fn read_frame(&mut self) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut length = [0u8; 4];
        match self.stream.read_exact(&mut length) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(error) => panic!("read: {error}"),
        }
        let mut frame = vec![0u8; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        Some(frame)
    }

    /// Whether the server closed the connection (reads EOF within the read timeout).
    pub(crate) fn closed_by_server(&mut self) -> bool {
        self.read_frame().is_none()
    }
}

/// A new idempotent producer's id (InitProducerId).
pub(crate) fn producer_id(client: &mut RawClient) -> i64 {
    use kafka_protocol::messages::InitProducerIdRequest;
    let response = client.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1),
    );
    assert_eq!(response.error_code, 0);
    response.producer_id.0
}

/// A Fetch request for partition 0 of `topic` from `offset` (up to 1 MiB).
pub(crate) fn fetch_request(
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

/// A Produce request (`acks=all`) of `records` to partition 0 of `topic`.
pub(crate) fn produce_request(
    topic: &str,
    records: bytes::Bytes,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

/// One RecordBatch v2 of `count` records `prefix-i`, from producer `producer_id` (-1: none)
/// at `epoch`, first sequence `sequence`.
pub(crate) fn batch(
    prefix: &str,
    count: i64,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> bytes::Bytes {
    encoded_batch(prefix, count, (producer_id, epoch, sequence), false)
}

/// [`batch`] with the transactional bit set: part of `producer_id`'s open transaction.
pub(crate) fn transactional_batch(
    prefix: &str,
    count: i64,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> bytes::Bytes {
    encoded_batch(prefix, count, (producer_id, epoch, sequence), true)
}

fn encoded_batch(
    prefix: &str,
    count: i64,
    (producer_id, epoch, sequence): (i64, i16, i32),
    transactional: bool,
) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            control: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // Sequences advance with offsets even without a producer, or the encoder
            // splits the records into one batch each.
            sequence: sequence.wrapping_add(i as i32),
            timestamp: 1_700_000_000_000 + i,
            key: Some(bytes::Bytes::from(format!("{prefix}-{i}"))),
            value: Some(bytes::Bytes::from(format!("{prefix}-value-{i}"))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}
