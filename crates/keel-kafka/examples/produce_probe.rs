//! A probe of durable one-record produce requests that costs the client almost nothing per
//! request, so the server's limit can be seen on the same 2 cores (issue 16, part 1).
//! librdkafka spends ~0.6 ms of CPU per one-record request (`durable_small_writes` in
//! keel-kafka-client); this probe speaks the protocol itself through kafka-protocol's message
//! types: one thread (a current-thread tokio runtime), N TCP connections, each an idempotent
//! producer sending one-record `Produce` v9 requests with `acks=-1`, up to
//! [`IN_FLIGHT_MAX`] (5, librdkafka's default) in flight per connection.
//!
//! Usage: `produce_probe BOOTSTRAP TOPIC MODE N SECONDS [CONFIG=VALUE ...]`
//!
//! - `producers N`: N connections, each keeping its 5 requests in flight, for SECONDS:
//!   durable records/s (acknowledged within the window) and each request's send → response
//!   latency, p50/p99/p99.9/max.
//! - `rate N`: one connection at N requests/s for SECONDS. A request's latency runs from the
//!   moment it was due, not from when a free slot let it go, so a server that falls behind
//!   shows in the numbers (no coordinated omission). The due times come from a pacing thread
//!   that sleeps to each one (microseconds late, the kernel's timer slack), not from tokio's
//!   timer: that one ticks in milliseconds and rounds a deadline up to the next tick, so each
//!   request left up to 1 ms after it was due and that wait was in its latency (p50 1.2 ms
//!   at 10,000/s with no fsync at all).
//! - In `producers` mode a connection sends as soon as a slot is free, without a timer: a
//!   `sleep_until(now)` before each request cost it the rest of the millisecond, which held
//!   each connection to ~1,000 requests/s (16 connections: ~13,000/s whatever the server).
//! - `PROBE_WARM_UP_SECONDS=W` runs the same load for W seconds before the window; their
//!   acknowledgements are left out of every number (their failures are not): the requests
//!   of the first ~100 ms against a fresh `keel serve` were answered in up to 8–17 ms in
//!   every run, at any load, which is start-up, not the steady tail. `PROBE_SLOW_MS=M` says on stderr each request answered M ms
//!   or more after it was sent, with its send time, to line the tail up with a trace.
//! - In `rate` mode the pacing thread also says how late it woke past its due times in the
//!   window (`pacer_late_max_ms`, and `machine_paused_ms`: the sum of its wake-ups 1 ms or
//!   more late). It sleeps 100 µs at a time and does almost nothing, so a late wake-up is a
//!   pause of the machine (the guest's CPUs busy, or the host not running them), which every
//!   request due then waited out whatever the server.
//!
//! Every response is decoded and checked: a response out of request order ends the probe,
//! and a partition error (or a missing partition) counts the request as failed, by error
//! code in `errors` (and said on stderr). The probe's own CPU time per request (its main
//! thread's and the pacing thread's `schedstat`, start-up included) is in
//! `client_own_cpu_us_per_request`. The topic is created with one partition
//! and the CONFIG=VALUE settings when it does not exist (`keel.fsync=always` on `keel serve`,
//! `flush.messages=1` on Apache Kafka); BOOTSTRAP must be the partition's leader (a
//! one-node cluster). Prints one JSON line in `bench/kafka_acks.py`'s shape with
//! `"client": "protocol probe"`; `scripts/bench-kafka acks` runs it.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, InitProducerIdRequest, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Requests a connection keeps in flight, as librdkafka's
/// `max.in.flight.requests.per.connection` (5, the most an idempotent producer may use).
const IN_FLIGHT_MAX: usize = 5;

/// The Produce version sent: v9 is the first flexible one, which every client of today uses.
const PRODUCE_VERSION: i16 = 9;

/// How long requests still in flight after the window may take before the probe gives up.
const DRAIN: Duration = Duration::from_secs(30);

/// Each record's value: 100 bytes, as the other probes.
const VALUE: [u8; 100] = [b'x'; 100];

/// The error a response without the request's partition counts as (not a Kafka code).
const NO_PARTITION: i16 = i16::MIN;

/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// The writing side of a connection: encodes requests and numbers them.
struct Sender {
    writer: OwnedWriteHalf,
    correlation_id: i32,
    frame: BytesMut,
}

/// Opens a connection: its sender, and its reader for [`receive`].
async fn connect(bootstrap: &str) -> (Sender, BufReader<OwnedReadHalf>) {
    let stream = TcpStream::connect(bootstrap)
        .await
        .unwrap_or_else(|e| panic!("connecting to {bootstrap}: {e}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (reader, writer) = stream.into_split();
    let sender = Sender {
        writer,
        correlation_id: 0,
        frame: BytesMut::with_capacity(512),
    };
    (sender, BufReader::new(reader))
}

impl Sender {
    /// The correlation id the next [`Sender::send`] gives its request.
    fn next_correlation_id(&self) -> i32 {
        self.correlation_id + 1
    }

    /// Encodes and writes one request (length prefix, header, body).
    async fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("keel-produce-probe")));
        let header_version = ApiKey::try_from(R::KEY)
            .expect("a known API")
            .request_header_version(version);
        self.frame.clear();
        self.frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut self.frame, header_version)
            .expect("encode header");
        request
            .encode(&mut self.frame, version)
            .expect("encode request");
        let length = (self.frame.len() - 4) as i32;
        self.frame[..4].copy_from_slice(&length.to_be_bytes());
        self.writer
            .write_all(&self.frame)
            .await
            .expect("write request");
        self.correlation_id
    }
}

/// Reads the next response, which must answer `correlation_id`: responses come in request
/// order, and a probe that saw them out of order proves nothing, so it stops.
async fn receive<R: Request>(
    reader: &mut BufReader<OwnedReadHalf>,
    version: i16,
    correlation_id: i32,
) -> R::Response {
    let length = reader.read_i32().await.expect("read a response's length");
    let mut frame = vec![0; length as usize];
    reader
        .read_exact(&mut frame)
        .await
        .expect("read a response");
    let mut frame = Bytes::from(frame);
    let header_version = ApiKey::try_from(R::KEY)
        .expect("a known API")
        .response_header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version).expect("a response header");
    assert_eq!(
        header.correlation_id, correlation_id,
        "responses out of request order"
    );
    R::Response::decode(&mut frame, version).expect("a response body")
}

/// Sends one request and waits for its response (set-up calls, nothing in flight).
async fn call<R: Request>(
    (sender, reader): &mut (Sender, BufReader<OwnedReadHalf>),
    version: i16,
    request: &R,
) -> R::Response {
    let correlation_id = sender.send(version, request).await;
    receive::<R>(reader, version, correlation_id).await
}

/// Creates `topic` with one partition and `configs` unless it exists.
async fn create_topic(bootstrap: &str, topic: &str, configs: &[(String, String)]) {
    let mut connection = connect(bootstrap).await;
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs),
        ]);
    let response = call(&mut connection, 5, &request).await;
    for result in response.topics {
        assert!(
            [0, TOPIC_ALREADY_EXISTS].contains(&result.error_code),
            "creating topic {topic}: error {} {:?}",
            result.error_code,
            result.error_message
        );
    }
}

/// What all connections measured together.
struct Tally {
    /// Send (or due) → response, in microseconds, of every acknowledged request.
    latencies: Histogram<u64>,
    acked_in_window: u64,
    acked: u64,
    failed: u64,
    /// Failed requests by Kafka error code.
    errors: BTreeMap<i16, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latencies: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            acked_in_window: 0,
            acked: 0,
            failed: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Counts one Produce response, `latency` after its request was sent (or due): a failure
    /// whenever it was sent, an acknowledgement only when sent after the warm-up.
    fn count(
        &mut self,
        response: &ProduceResponse,
        latency: Duration,
        warm_up: bool,
        in_window: bool,
    ) {
        let error = response
            .responses
            .first()
            .and_then(|topic| topic.partition_responses.first())
            .map_or(NO_PARTITION, |partition| partition.error_code);
        if error == 0 && warm_up {
            return;
        }
        if error == 0 {
            self.acked += 1;
            self.acked_in_window += u64::from(in_window);
            let us = latency.as_micros().max(1) as u64;
            self.latencies.saturating_record(us);
        } else {
            self.failed += 1;
            *self.errors.entry(error).or_default() += 1;
        }
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return -1.0;
        }
        self.latencies.value_at_quantile(q) as f64 / 1000.0
    }
}

/// One idempotent producer on its own connection: the record batch of its next request.
struct Producer {
    topic: TopicName,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
}

impl Producer {
    /// The next one-record `acks=-1` request, its sequence one past the previous one's.
    fn next_request(&mut self) -> ProduceRequest {
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: self.sequence,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from_static(&VALUE)),
            headers: Default::default(),
            delete_horizon: false,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut records = BytesMut::with_capacity(256);
        RecordBatchEncoder::encode(
            &mut records,
            std::iter::once(&record),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode a record batch");
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(self.topic.clone())
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records.freeze())),
                    ]),
            ])
    }
}

/// When each request in flight was sent (or due), in order, and the slots that bound them.
struct InFlight {
    sent: RefCell<VecDeque<(i32, Instant)>>,
    slots: Semaphore,
}

/// Runs one connection for `window` after `start`, at `pace` requests/s (`None`: as fast as
/// its [`IN_FLIGHT_MAX`] slots allow), sending from `warm_up` before `start` on; what its
/// pacing thread spent and saw (nothing without a pace).
async fn run_connection(
    bootstrap: String,
    topic: String,
    start: Instant,
    warm_up: Duration,
    window: Duration,
    pace: Option<f64>,
    tally: Rc<RefCell<Tally>>,
) -> PacerReport {
    let mut connection = connect(&bootstrap).await;
    let init = call(
        &mut connection,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1),
    )
    .await;
    assert_eq!(init.error_code, 0, "InitProducerId failed");
    let mut producer = Producer {
        topic: TopicName(StrBytes::from_string(topic)),
        producer_id: init.producer_id.0,
        epoch: init.producer_epoch,
        sequence: 0,
    };
    let (mut sender, mut reader) = connection;
    let in_flight = Rc::new(InFlight {
        sent: RefCell::new(VecDeque::with_capacity(IN_FLIGHT_MAX)),
        slots: Semaphore::new(IN_FLIGHT_MAX),
    });
    let begin = start - warm_up;
    let end = start + window;
    let slow = slow_threshold();
    // Each response answers the oldest request in flight, which the sender queued before
    // writing it.
    let responses = tokio::task::spawn_local({
        let in_flight = in_flight.clone();
        let tally = tally.clone();
        async move {
            loop {
                // Wait for the next response to begin before taking its request's slot.
                let started = reader.fill_buf().await.map(|bytes| !bytes.is_empty());
                assert!(
                    started.expect("read a response"),
                    "the server closed the connection"
                );
                let (correlation_id, sent) = in_flight
                    .sent
                    .borrow_mut()
                    .pop_front()
                    .expect("a response answers a request in flight");
                let response =
                    receive::<ProduceRequest>(&mut reader, PRODUCE_VERSION, correlation_id).await;
                let now = Instant::now();
                let latency = now.duration_since(sent);
                if slow.is_some_and(|slow| latency >= slow) {
                    eprintln!(
                        "slow: sent at +{:.3} s, answered {:.3} ms later",
                        sent.saturating_duration_since(start).as_secs_f64(),
                        latency.as_secs_f64() * 1000.0
                    );
                }
                tally
                    .borrow_mut()
                    .count(&response, latency, sent < start, now <= end);
                in_flight.slots.add_permits(1);
            }
        }
    });
    let mut pacer = pace.map(|rate| Pacer::start(begin, start, end, rate));
    tokio::time::sleep_until(begin.into()).await;
    loop {
        // Due time for a paced request (its wait for a slot counts), else now.
        let due = match &mut pacer {
            Some(pacer) => match pacer.dues.recv().await {
                Some(due) => due,
                None => break,
            },
            None => Instant::now(),
        };
        if due >= end {
            break;
        }
        in_flight
            .slots
            .acquire()
            .await
            .expect("the slots are never closed")
            .forget();
        let request = producer.next_request();
        let since = if pacer.is_some() { due } else { Instant::now() };
        in_flight
            .sent
            .borrow_mut()
            .push_back((sender.next_correlation_id(), since));
        sender.send(PRODUCE_VERSION, &request).await;
    }
    let all_answered = in_flight.slots.acquire_many(IN_FLIGHT_MAX as u32);
    match tokio::time::timeout(DRAIN, all_answered).await {
        Ok(_) => responses.abort(),
        Err(_) => panic!("requests still unanswered {DRAIN:?} after the window"),
    }
    pacer.map_or_else(PacerReport::default, Pacer::report)
}

/// `PROBE_SLOW_MS`, when set: each request answered that many milliseconds or more after it
/// was sent (or due) is said on stderr with its send time from the window's start, to line a
/// latency tail up with what the server (or the machine) did at that moment.
fn slow_threshold() -> Option<Duration> {
    let ms = std::env::var("PROBE_SLOW_MS").ok()?;
    let ms: f64 = ms
        .parse()
        .expect("PROBE_SLOW_MS is a number of milliseconds");
    Some(Duration::from_secs_f64(ms / 1000.0))
}

/// A thread that hands out a paced connection's due times, each when it comes: it sleeps to
/// the microsecond, where tokio's timer would round every deadline up to its next
/// millisecond tick.
struct Pacer {
    dues: UnboundedReceiver<Instant>,
    thread: std::thread::JoinHandle<PacerReport>,
}

/// What the pacing thread spent, and how late it woke. It sleeps ~100 µs at a time and does
/// almost nothing awake, so when it wakes milliseconds past a due time no CPU of the machine
/// ran it for that long: the guest was busy or the host did not run the guest's vCPU. The
/// server's requests of those milliseconds waited too, and that is not the server's doing.
#[derive(Debug, Clone, Copy, Default)]
struct PacerReport {
    cpu_ns: u64,
    /// The latest wake-up in the window.
    late_max: Duration,
    /// The sum of the wake-ups at least [`PAUSE_MIN`] late in the window: the machine's pauses.
    paused: Duration,
}

/// A pacing thread's wake-up this late or later counts as a pause of the machine.
const PAUSE_MIN: Duration = Duration::from_millis(1);

impl PacerReport {
    /// Two connections' reports as one: CPU times and pauses add up, the latest wake-up wins.
    fn merge(self, other: PacerReport) -> PacerReport {
        PacerReport {
            cpu_ns: self.cpu_ns + other.cpu_ns,
            late_max: self.late_max.max(other.late_max),
            paused: self.paused + other.paused,
        }
    }
}

impl Pacer {
    /// Starts handing out `rate` due times a second from `begin` until `end`; its lateness
    /// counts from `start` on (after the warm-up).
    fn start(begin: Instant, start: Instant, end: Instant, rate: f64) -> Pacer {
        let (send, dues) = unbounded_channel();
        let thread = std::thread::spawn(move || {
            let mut report = PacerReport::default();
            for n in 0u64.. {
                let due = begin + Duration::from_secs_f64(n as f64 / rate);
                if due >= end {
                    break;
                }
                let asleep = Instant::now();
                std::thread::sleep(due.saturating_duration_since(asleep));
                // Past the due time, or past the moment it went to sleep when it was already
                // behind: a pause counts once, not again in each due time it put behind.
                let late = due.max(asleep).elapsed();
                if due >= start {
                    report.late_max = report.late_max.max(late);
                    if late >= PAUSE_MIN {
                        report.paused += late;
                    }
                }
                if send.send(due).is_err() {
                    break;
                }
            }
            PacerReport {
                cpu_ns: cpu_ns("/proc/thread-self/schedstat"),
                ..report
            }
        });
        Pacer { dues, thread }
    }

    /// What the pacing thread spent and saw, once it handed out its last due time.
    fn report(self) -> PacerReport {
        self.thread.join().expect("the pacing thread")
    }
}

/// The CPU time so far of the thread whose `schedstat` is `path` (`/proc/self/schedstat`:
/// the main thread, which runs everything but the pacing), in nanoseconds.
fn cpu_ns(path: &str) -> u64 {
    let schedstat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    schedstat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat's first field is CPU time in ns")
}

/// Runs `connections` connections for `seconds`, each at `pace` (or as fast as it can), after
/// `warm_up` seconds of the same load whose acknowledgements are not counted, and reports
/// them as one JSON line.
async fn probe(
    bootstrap: &str,
    topic: &str,
    connections: usize,
    (warm_up, seconds): (f64, f64),
    pace: Option<f64>,
) -> serde_json::Value {
    let tally = Rc::new(RefCell::new(Tally::new()));
    let window = Duration::from_secs_f64(seconds);
    let warm_up = Duration::from_secs_f64(warm_up);
    let start = Instant::now() + Duration::from_millis(100) + warm_up;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::task::spawn_local(run_connection(
                bootstrap.to_string(),
                topic.to_string(),
                start,
                warm_up,
                window,
                pace,
                tally.clone(),
            ))
        })
        .collect();
    let mut pacing = PacerReport::default();
    for task in tasks {
        pacing = pacing.merge(task.await.expect("a connection's task"));
    }
    let tally = tally.borrow();
    let requests = (tally.acked + tally.failed).max(1);
    let errors: serde_json::Map<String, serde_json::Value> = tally
        .errors
        .iter()
        .map(|(code, n)| (code.to_string(), (*n).into()))
        .collect();
    let mut result = serde_json::json!({
        "client": "protocol probe", "seconds": seconds, "warm_up_seconds": warm_up.as_secs_f64(),
        "acked": tally.acked, "acked_per_s": (tally.acked_in_window as f64 / seconds).round(),
        "failed": tally.failed, "errors": errors,
        "p50_ms": tally.quantile_ms(0.50), "p99_ms": tally.quantile_ms(0.99),
        "p999_ms": tally.quantile_ms(0.999), "max_ms": tally.quantile_ms(1.0),
        "client_own_cpu_us_per_request": ((cpu_ns("/proc/self/schedstat") + pacing.cpu_ns) as f64 / 1000.0 / requests as f64).round(),
    });
    if pace.is_some() {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let pacer = serde_json::json!({
            "pacer_late_max_ms": ms(pacing.late_max), "machine_paused_ms": ms(pacing.paused),
        });
        result
            .as_object_mut()
            .expect("an object")
            .extend(pacer.as_object().expect("an object").clone());
    }
    let mode = match pace {
        Some(rate) => serde_json::json!({"mode": "ack-latency", "rate_per_s": rate}),
        None => serde_json::json!({"mode": "producers", "producers": connections}),
    };
    result
        .as_object_mut()
        .expect("an object")
        .extend(mode.as_object().expect("an object").clone());
    result
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, mode, n, seconds, configs @ ..] = &args[..] else {
        eprintln!(
            "usage: produce_probe BOOTSTRAP TOPIC producers|rate N SECONDS [CONFIG=VALUE ...]"
        );
        std::process::exit(2);
    };
    let configs: Vec<(String, String)> = configs
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => panic!("config '{c}' is not KEY=VALUE"),
        })
        .collect();
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let warm_up: f64 = std::env::var("PROBE_WARM_UP_SECONDS").map_or(0.0, |s| {
        s.parse().expect("PROBE_WARM_UP_SECONDS is a number")
    });
    let (connections, pace) = match mode.as_str() {
        "producers" => (n.parse().expect("N is a number of connections"), None),
        "rate" => (1, Some(n.parse().expect("N is requests per second"))),
        other => panic!("unknown mode '{other}' (producers or rate)"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = tokio::task::LocalSet::new().block_on(&runtime, async {
        create_topic(bootstrap, topic, &configs).await;
        probe(bootstrap, topic, connections, (warm_up, seconds), pace).await
    });
    if result["failed"].as_u64() != Some(0) {
        eprintln!(
            "produce_probe: {} requests failed: {}",
            result["failed"], result["errors"]
        );
    }
    println!("{result}");
}
