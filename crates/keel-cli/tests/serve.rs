//! `keel serve` as an operator runs it: a real process, real sockets, real signals.

#[path = "support/serve.rs"]
mod server;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use server::{address, terminate};
use support::Keel;

/// A running `keel serve` child and the addresses it reported.
struct Served {
    child: Child,
    http: SocketAddr,
    kafka: SocketAddr,
}

impl Keel {
    /// Starts `keel serve` on free ports and waits for its "listening" line.
    fn serve(&self, extra: &[&str]) -> Served {
        let (child, line) = self.start_server(extra);
        Served {
            http: address(&line, "http"),
            kafka: address(&line, "kafka"),
            child,
        }
    }
}

impl Served {
    /// Sends SIGTERM and returns whether the server exited with status 0.
    fn terminate(mut self) -> bool {
        terminate(&mut self.child)
    }
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let response = ureq::get(format!("http://{addr}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.into_body().read_to_string().expect("body");
    (status, content_type, body)
}

#[test]
fn health_and_metrics_are_served_and_sigterm_exits_cleanly() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--partitions", "2"], "");
    keel.ok(&["topics", "create", "orders.dlq", "--partitions", "2"], "");
    let dead = r#"{"type":"order.placed","data":{"id":1}}"#;
    keel.ok(&["produce", "orders.dlq"], dead);
    let served = keel.serve(&[]);

    let (status, _, body) = http_get(served.http, "/health");
    assert_eq!(status, 200);
    assert!(body.contains(r#""status":"ok""#), "{body}");
    assert!(body.contains(r#""topics":"#), "{body}");

    let (status, content_type, body) = http_get(served.http, "/metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    // The dead-letter gauges are computed from the log at scrape time.
    assert!(
        body.contains("keel_dead_letters{topic=\"orders\"} 1"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");

    let (status, _, _) = http_get(served.http, "/nowhere");
    assert_eq!(status, 404);

    assert!(served.terminate(), "SIGTERM must exit 0");
    // The lock is released: a command gets the data directory at once, and the data is intact.
    let topics = keel.ok(&["topics", "list"], "");
    assert!(topics.contains("orders"), "{topics}");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_by_name() {
    let keel = Keel::new();
    let served = keel.serve(&[]);
    keel.fails(
        &["serve", "--http", "127.0.0.1:0"],
        "",
        "cannot open data directory",
    );
    assert!(served.terminate());
}

#[test]
fn a_taken_port_is_named_in_the_error() {
    let keel = Keel::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    keel.fails(
        &["serve", "--http", &addr],
        "",
        &format!("cannot listen for HTTP on {addr}"),
    );
}

#[test]
fn the_config_file_sets_values_and_flags_override_it() {
    let keel = Keel::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = keel.dir.path().join("keel.toml");
    std::fs::write(&config, format!("http = \"{addr}\"\n")).unwrap();
    let config = config.to_str().unwrap();
    // The file's address is used (and is taken, which proves it was read)...
    keel.fails(&["serve", "--config", config], "", &addr);
    // ...unless a flag overrides it.
    let served = keel.serve(&["--config", config]);
    assert_ne!(served.http.to_string(), addr);
    assert!(served.terminate());
}

#[test]
fn a_bad_config_file_is_one_line_naming_the_file() {
    let keel = Keel::new();
    let config = keel.dir.path().join("bad.toml");
    std::fs::write(&config, "http = \"nowhere\"\nunknown_key = 1\n").unwrap();
    keel.fails(
        &["serve", "--config", config.to_str().unwrap()],
        "",
        "invalid config file",
    );
}

#[test]
fn a_config_value_of_the_wrong_type_names_its_line_and_key() {
    let keel = Keel::new();
    let config = keel.dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "http = \"127.0.0.1:0\"\nkafka_partitions = \"three\"\n",
    )
    .unwrap();
    keel.fails(
        &["serve", "--config", config.to_str().unwrap()],
        "",
        "bad.toml, line 2, key `kafka_partitions`: invalid type: string \"three\"",
    );
}

/// Whether the Python `module` imports; when it does not, the test prints that it did not
/// run, unless clients are required (CI), where it fails.
fn python_module_available(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    let required = std::env::var("KEEL_TEST_KAFKA_CLIENTS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        ok || !required,
        "python module {module} is required but missing"
    );
    if !ok {
        eprintln!("{module} not found: this Kafka client test did not run");
    }
    ok
}

fn client_script(name: &str) -> String {
    format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn durability_script() -> String {
    client_script("kafka_durability.py")
}

/// The group coordinator's session-timeout bounds reach it from the config file, and a flag
/// overrides the file: kafka-python's join with a 10 s session is refused under a 20 s
/// minimum and accepted once the flag lowers the minimum to 5 s.
#[test]
fn coordinator_session_bounds_come_from_the_config_file_and_flags() {
    if !python_module_available("kafka") {
        return;
    }
    let keel = Keel::new();
    let config = keel.dir.path().join("keel.toml");
    std::fs::write(
        &config,
        "kafka_group_min_session_timeout_ms = 20000\nkafka_group_initial_rebalance_delay_ms = 0\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let join = |served: &Served| {
        let output = Command::new("python3")
            .args([
                &client_script("kafka_group_join.py"),
                &served.kafka.to_string(),
                "orders",
            ])
            .output()
            .expect("run the group member");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };

    let served = keel.serve(&["--config", config]);
    assert_eq!(join(&served), "refused InvalidSessionTimeoutError");
    assert!(served.terminate());

    let served = keel.serve(&[
        "--config",
        config,
        "--kafka-group-min-session-timeout-ms",
        "5000",
    ]);
    assert_eq!(join(&served), "joined");
    assert!(served.terminate());
}

#[test]
fn every_record_acknowledged_over_kafka_survives_kill_9() {
    if !python_module_available("confluent_kafka") {
        return;
    }
    let keel = Keel::new();
    let served = keel.serve(&["--kafka-fsync", "always"]);
    let mut producer = Command::new("python3")
        .args([
            &durability_script(),
            "produce",
            &served.kafka.to_string(),
            "durable",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the producer");
    // Read acknowledgements until enough arrived, then kill -9 the server mid-stream.
    let mut acks = BufReader::new(producer.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    for line in acks.by_ref() {
        acked.push(line.expect("an ack line"));
        if acked.len() == 2000 {
            break;
        }
    }
    let mut server = served.child;
    server.kill().expect("SIGKILL the server");
    server.wait().unwrap();
    // Acks the client printed before it noticed the server is gone are acks too.
    producer.kill().unwrap();
    acked.extend(acks.map_while(Result::ok));
    producer.wait().unwrap();
    assert!(acked.len() >= 2000, "{} acks", acked.len());

    let restarted = keel.serve(&[]);
    let dump = Command::new("python3")
        .args([
            &durability_script(),
            "dump",
            &restarted.kafka.to_string(),
            "durable",
        ])
        .output()
        .expect("run the dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let stored: std::collections::HashSet<String> = String::from_utf8(dump.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    eprintln!(
        "{} records acknowledged before and around the kill, {} stored after restart",
        acked.len(),
        stored.len()
    );
    for ack in &acked {
        let record = ack.strip_prefix("ack ").expect("ack line");
        assert!(
            stored.contains(record),
            "acknowledged {record} is missing after kill -9"
        );
    }
    assert!(restarted.terminate());
}

/// Makes `count` dead letters of group `billing` in `orders.dlq` with a real router whose
/// handler refuses everything, then closes the log.
fn make_dead_letters(keel: &Keel, count: usize) {
    use keel_core::Event;
    use keel_embedded::EmbeddedBus;
    use keel_runtime::{Handler, HandlerError, RetryPolicy, Route, Router};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let log = std::sync::Arc::new(keel_log::Log::open(keel.dir.path()).unwrap());
        log.create_topic("orders", keel_log::TopicConfig::new(1))
            .unwrap();
        let bus = EmbeddedBus::new(log.clone());
        let refuse = Handler::raw("charge", |_event: Event, _ctx| async {
            Err::<(), _>(HandlerError::permanent("card processor says no"))
        });
        let route = Route::new("orders", "billing", refuse).with_retry(RetryPolicy {
            attempts_max: 1,
            ..RetryPolicy::default()
        });
        let router = Router::new(&bus).route(route).start().unwrap();
        for n in 0..count {
            let event =
                Event::new("/test", "order.placed").with_partition_key(format!("order-{n}"));
            bus.publisher().publish("orders", event).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while keel_embedded::admin::dead_letters::summaries(&log, 0)
            .unwrap()
            .first()
            .is_none_or(|s| s.pending < count as u64)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "dead letters never appeared"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        router.shutdown().await;
    });
}

/// A canary replay that waits one second for its outcome.
const ONE_STEP_CANARY: [&str; 7] = [
    "dlq",
    "replay",
    "orders",
    "--all",
    "--canary",
    "--canary-wait",
    "1",
];

#[test]
fn operator_verbs_use_the_api_of_the_server_that_owns_the_data_directory() {
    let keel = Keel::new();
    make_dead_letters(&keel, 3);
    let served = keel.serve(&[]);

    // Found through the address file the server wrote: no flag needed (the audit entry
    // below names the HTTP request, which proves the server did the work).
    let list = keel.ok(&["dlq", "list"], "");
    assert!(
        list.contains("orders.dlq")
            && list.contains("group=billing handler=charge kind=permanent: 3"),
        "{list}"
    );

    let shown = keel.ok(&["dlq", "show", "orders", "--key", "order-1"], "");
    assert!(
        shown.contains("error:           card processor says no"),
        "{shown}"
    );
    assert!(shown.contains("\"type\":\"order.placed\""), "{shown}");

    // No consumer handles the canary here, so the one-step canary stops after it, on time.
    keel.fails(
        &ONE_STEP_CANARY,
        "",
        "was not handled within 1 s: nothing more replayed",
    );
    let list = keel.ok(&["dlq", "list", "--json"], "");
    let summaries: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(summaries[0]["replayed"], 1, "{list}");
    assert_eq!(summaries[0]["pending"], 2, "{list}");
    let history = keel.ok(&["dlq", "history"], "");
    assert!(
        history.contains("canary")
            && history.contains(
                "--canary-wait 1 (via POST /api/dead-letters/orders/replay from 127.0.0.1"
            ),
        "{history}"
    );

    let groups = keel.ok(&["groups", "list"], "");
    assert!(groups.contains("billing"), "{groups}");
    let lag = keel.ok(&["groups", "lag", "billing"], "");
    assert!(lag.contains("orders"), "{lag}");
    // A reset goes to the server (no member is connected), and so does a delete, which the
    // audit log records with the request.
    let reset = keel.ok(
        &[
            "groups",
            "reset",
            "billing",
            "--topic",
            "orders",
            "--to-earliest",
        ],
        "",
    );
    assert!(reset.contains("orders"), "{reset}");
    let deleted = keel.ok(&["groups", "delete", "billing"], "");
    assert!(deleted.contains("deleted group 'billing'"), "{deleted}");
    let groups = keel.ok(&["groups", "list"], "");
    assert!(!groups.contains("billing"), "{groups}");
    let history = keel.ok(&["dlq", "history"], "");
    assert!(
        history.contains("delete_group")
            && history.contains("group billing")
            && history.contains("(via DELETE /api/groups/billing from 127.0.0.1"),
        "{history}"
    );
    // An explicit --server that is not there is named.
    keel.fails(
        &["dlq", "list", "--server", "http://127.0.0.1:9"],
        "",
        "cannot reach the server at http://127.0.0.1:9",
    );

    assert!(served.terminate());
    // With the server gone the verbs open the data directory again, and the file is gone.
    assert!(!keel.dir.path().join("keel-serve.http").exists());
    keel.fails(
        &ONE_STEP_CANARY,
        "",
        "--canary-wait needs a running keel serve",
    );
    let list = keel.ok(&["dlq", "list"], "");
    assert!(list.contains("orders.dlq"), "{list}");
}

#[test]
fn the_advertised_kafka_address_is_what_metadata_tells_clients() {
    if std::process::Command::new("kcat")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("kcat not found: the advertised-address test did not run");
        return;
    }
    let keel = Keel::new();
    let served = keel.serve(&["--kafka-advertised", "kafka.example.test:19092"]);
    let listing = std::process::Command::new("kcat")
        .args(["-L", "-b", &served.kafka.to_string(), "-m", "10"])
        .output()
        .expect("kcat");
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(
        listing.contains("broker 0 at kafka.example.test:19092"),
        "{listing}"
    );
    assert!(served.terminate());
}

/// Kafka refuses to move the offsets of a group whose members are connected (their next
/// commit would undo it); so does `keel groups reset` through the server that owns the data
/// directory, unless --force.
#[test]
fn a_group_with_connected_members_is_reset_only_when_forced() {
    if Command::new("kcat").arg("-V").output().is_err() {
        eprintln!("kcat not found: the active-group reset test did not run");
        return;
    }
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders"], "");
    keel.ok(
        &["produce", "orders"],
        "{\"type\":\"order.placed\"}\n{\"type\":\"order.placed\"}\n",
    );
    let served = keel.serve(&[]);
    let mut member = Command::new("kcat")
        .args(["-b", &served.kafka.to_string(), "-G", "live", "orders"])
        .args([
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "auto.commit.interval.ms=100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kcat");
    let reset = [
        "groups",
        "reset",
        "live",
        "--topic",
        "orders",
        "--to-earliest",
    ];
    // The member has joined once it committed what it read.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !keel.run(&["groups", "lag", "live"], "").status.success() {
        assert!(std::time::Instant::now() < deadline, "kcat never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    keel.fails(
        &reset,
        "",
        "has 1 member(s) connected to the Kafka listener",
    );
    let mut forced = reset.to_vec();
    forced.push("--force");
    keel.ok(&forced, "");
    member.kill().expect("stop kcat");
    member.wait().expect("kcat exits");
    assert!(served.terminate());
}

/// While `keel serve` owns the data directory, `keel topics` goes to its API, and a verb
/// that cannot fails at once naming the server instead of waiting for the lock; `--server`
/// with a verb that cannot honour it is an error, not a run on the local directory.
#[test]
fn verbs_go_to_the_server_that_owns_the_directory_or_refuse_at_once() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders"], "");
    let served = keel.serve(&[]);
    let url = format!("http://{}", served.http);
    let list = keel.ok(&["topics", "list"], "");
    assert!(list.contains("orders"), "{list}");
    keel.ok(
        &[
            "topics",
            "create",
            "extra",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
        "",
    );
    let described = keel.ok(&["--server", &url, "topics", "describe", "extra"], "");
    assert!(described.contains("partitions = 2"), "{described}");
    assert!(described.contains("retention_ms = 60000"), "{described}");
    let altered = keel.ok(
        &[
            "topics",
            "alter",
            "extra",
            "--config",
            "retention.ms=120000",
        ],
        "",
    );
    assert!(
        altered.contains("retention_ms = 120000 (was 60000)"),
        "{altered}"
    );
    let described = keel.ok(&["--server", &url, "topics", "describe", "extra"], "");
    assert!(described.contains("retention_ms = 120000"), "{described}");
    keel.fails(
        &["topics", "alter", "extra", "--config", "cleanup=forever"],
        "",
        "invalid topic setting 'cleanup'",
    );
    keel.fails(
        &["topics", "delete", "_keel_schemas"],
        "",
        "internal to Keel",
    );
    keel.ok(&["topics", "delete", "extra"], "");
    keel.fails(&["topics", "describe", "extra"], "", "extra");
    // keel produce goes through the server's produce API, structured events as given.
    assert_eq!(
        keel.ok(
            &[
                "produce",
                "orders",
                "--type",
                "order.placed",
                "--key",
                "o-1"
            ],
            ""
        ),
        "produced 1 event to 'orders'\n"
    );
    let structured = r#"{"specversion":"1.0","id":"kept-id","source":"/test","type":"order.paid","partitionkey":"o-1","traceid":"t-1","data":{"n":2}}"#;
    keel.ok(
        &["--server", &url, "produce", "orders"],
        &format!("{structured}\n{{\"type\":\"order.shipped\"}}\n"),
    );
    keel.fails(
        &["produce", "orders"],
        "{\"type\":\"a\"}\nnot json\n",
        "line 2: 1 earlier event(s) were produced, none after",
    );
    keel.fails(
        &[
            "produce",
            "orders",
            "--type",
            "order.placed",
            "--no-validate",
        ],
        "",
        &format!("--no-validate cannot be honoured through the server at {url}"),
    );
    keel.fails(&["produce", "nosuch", "--type", "x"], "", "nosuch");
    // keel consume reads through the server's event API: the same lines as from the
    // directory (compared below, once the server stopped).
    let served_lines = keel.ok(&["consume", "orders", "--from-beginning"], "");
    assert_eq!(served_lines.lines().count(), 4, "{served_lines}");
    let some = keel.ok(
        &[
            "--server", &url, "consume", "orders", "--offset", "1", "--max", "2",
        ],
        "",
    );
    assert_eq!(some.lines().count(), 2, "{some}");
    assert!(some.contains("\"offset\":1,\"partition\":0,"), "{some}");
    assert_eq!(
        keel.ok(&["consume", "orders"], ""),
        "",
        "nothing after the end"
    );
    assert_eq!(
        keel.ok(&["consume", "orders", "--from-time", "0"], ""),
        served_lines,
        "everything is after the epoch"
    );
    assert_eq!(
        keel.ok(
            &["consume", "orders", "--from-time", "2100-01-01T00:00:00Z"],
            ""
        ),
        ""
    );
    keel.fails(
        &["consume", "orders", "--partition", "3"],
        "",
        "has no partition 3",
    );
    keel.fails(
        &["consume", "orders", "--offset", "9"],
        "",
        "--offset 9 is past the end",
    );
    keel.fails(
        &["--server", &url, "consume", "orders", "--group", "g"],
        "",
        "--group through --server",
    );
    keel.fails(
        &["--server", "http://127.0.0.1:9", "topics", "list"],
        "",
        "cannot reach the server at http://127.0.0.1:9",
    );
    assert!(served.terminate());
    // What the server stored: three events (not the refused line's), the structured one
    // as given.
    let stored = keel.ok(&["consume", "orders", "--from-beginning"], "");
    assert_eq!(
        stored, served_lines,
        "the server's lines are the directory's"
    );
    let events: Vec<serde_json::Value> = stored
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["event"].clone())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.len(), 4, "{stored}");
    assert_eq!(types.iter().filter(|t| **t == "a").count(), 1, "{stored}");
    let paid = events
        .iter()
        .find(|e| e["type"] == "order.paid")
        .expect("order.paid");
    assert_eq!(paid["id"], "kept-id");
    assert_eq!(paid["traceid"], "t-1");
    assert_eq!(paid["data"]["n"], 2);
}

/// Logs that go to a pipe (a file, a log collector) hold no ANSI colour codes, and no Rust
/// debug forms.
#[test]
fn logs_to_a_pipe_are_plain_text() {
    let keel = Keel::new();
    let (mut child, _) = keel.start_server_logging(&[], Stdio::piped());
    assert!(terminate(&mut child));
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("INFO"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in piped logs: {logs:?}"
    );
    assert!(!logs.contains("Some("), "Rust's Option in the logs: {logs}");
}
