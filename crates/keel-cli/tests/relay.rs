//! `keel relay` and `keel migrate` against a real PostgreSQL server
//! (`KEEL_TEST_POSTGRES_URL`): the relay process is killed with SIGKILL at random moments
//! while it publishes, restarted each time, and in the end every event is in the log, each
//! key's events in order (a republished event may repeat, never go missing or jump ahead).

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::Event;
use keel_log::Log;
use keel_sql::PgDatabase;
use support::Keel;

/// A schema of its own (`keel_sql::testing`); `None` (and a message) when the variable is
/// unset.
fn schema_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("KEEL_TEST_POSTGRES_URL") else {
        eprintln!("{test}: not run, KEEL_TEST_POSTGRES_URL is unset");
        return None;
    };
    let (url, _) = runtime().block_on(keel_sql::testing::fresh_postgres_schema(
        &base,
        &format!("cli_{test}"),
    ));
    Some(url)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn step(key: &str, seq: u32) -> Event {
    Event::new("/test", "test.step")
        .with_partition_key(key)
        .with_data_json(&serde_json::json!({ "key": key, "seq": seq }))
}

impl Keel {
    fn relay(&self, url: &str, extra: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_keel"))
            .args([
                "relay",
                "--database-url",
                url,
                "--to",
                "embedded",
                "--progress-interval-ms",
                "100",
            ])
            .args(extra)
            .env("KEEL_DATA", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keel relay")
    }
}

const KEYS: usize = 20;
const PER_KEY: u32 = 150;

fn keys() -> Vec<String> {
    (0..KEYS).map(|k| format!("key-{k}")).collect()
}

#[test]
fn a_relay_killed_at_random_moments_loses_nothing_and_keeps_key_order() {
    let Some(url) = schema_url("sigkill") else {
        return;
    };
    let keel = Keel::new();
    keel.ok(&["migrate", "--database-url", &url], "");
    runtime().block_on(async {
        let db = PgDatabase::connect(&url).await.unwrap();
        let outbox = db.outbox();
        let mut client = db.pool().get().await.unwrap();
        for seq in 0..PER_KEY {
            let tx = client.transaction().await.unwrap();
            let events: Vec<(&str, Event)> =
                keys().iter().map(|k| ("orders", step(k, seq))).collect();
            outbox.enqueue_batch(&tx, &events).await.unwrap();
            tx.commit().await.unwrap();
        }
    });
    kill_repeatedly_then_check(&keel, &url, &["--relays", "2"]);
}

/// A CDC relay whose slot is dropped from under it while a row commits exits with a line
/// saying what to do, and the row stays in the outbox for the polling relay.
#[test]
fn a_cdc_relay_whose_slot_was_lost_with_rows_committed_meanwhile_exits_saying_so() {
    let Ok(base) = std::env::var("KEEL_TEST_POSTGRES_URL") else {
        eprintln!("cdc slot lost: not run, KEEL_TEST_POSTGRES_URL is unset");
        return;
    };
    let rt = runtime();
    let (url, slot) = rt.block_on(keel_sql::testing::fresh_postgres_schema(
        &base,
        "cli_cdc_slot_lost",
    ));
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--fsync", "never"], "");
    let mut child = keel.relay(&url, &["--cdc-slot", &slot]);
    let db = rt.block_on(PgDatabase::connect(&url)).unwrap();
    rt.block_on(async {
        let admin = db.pool().get().await.unwrap();
        let streaming = "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active";
        let started = Instant::now();
        while admin
            .query_opt(streaming, &[&slot])
            .await
            .unwrap()
            .is_none()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the relay streaming"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Held, the lock the relay takes to create a slot ("klc", cdc_slot.rs) keeps it
        // from replacing the slot before the row below commits.
        let lock = "SELECT pg_advisory_lock(7040099, hashtext($1))";
        admin.execute(lock, &[&slot]).await.unwrap();
        let dropper = db.pool().get().await.unwrap();
        while dropper
            .execute(
                "SELECT pg_terminate_backend(active_pid), pg_drop_replication_slot(slot_name)
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the slot dropped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut client = db.pool().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        db.outbox()
            .enqueue(&tx, "orders", &step("k", 0))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        admin
            .execute(&lock.replace("_lock(", "_unlock("), &[&slot])
            .await
            .unwrap();
    });
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "keel relay exits"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("replication slot was lost") && stderr.contains("--exit-when-idle"),
        "{stderr}"
    );
    let pending = rt.block_on(db.outbox().backlog()).unwrap().pending;
    assert_eq!(pending, 1, "the row kept for the polling relay");
    rt.block_on(db.outbox().drop_cdc_slot(&keel_sql::CdcSlot::named(&slot)))
        .unwrap();
}

#[test]
fn a_sqlite_relay_killed_at_random_moments_loses_nothing_and_keeps_key_order() {
    let keel = Keel::new();
    let path = keel.dir.path().join("app.db");
    let outbox = keel_sql::SqliteOutbox::open(&path).unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    for seq in 0..PER_KEY {
        let tx = connection.transaction().unwrap();
        let events: Vec<(&str, Event)> = keys().iter().map(|k| ("orders", step(k, seq))).collect();
        outbox.enqueue_batch(&tx, &events).unwrap();
        tx.commit().unwrap();
    }
    kill_repeatedly_then_check(&keel, &format!("sqlite:{}", path.display()), &[]);
}

/// `keel relay --metrics` serves the outbox's numbers to Prometheus behind a token, and its
/// health (open, as a load balancer's probe needs) reports the drained backlog.
#[test]
fn a_relay_serves_its_progress_to_prometheus_behind_a_token() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "orders", "--fsync", "never"], "");
    let path = keel.dir.path().join("app.db");
    let outbox = keel_sql::SqliteOutbox::open(&path).unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    let tx = connection.transaction().unwrap();
    let events: Vec<(&str, Event)> = (0..200).map(|seq| ("orders", step("k", seq))).collect();
    outbox.enqueue_batch(&tx, &events).unwrap();
    tx.commit().unwrap();
    // The SHA-256 of "relay-scraper-token" (`printf %s relay-scraper-token | sha256sum`).
    let token =
        "scraper:read-only:741268d921d5e66c32493099fba8257929e5bd5d221479055bea4798fcfbffd1";
    let url = format!("sqlite:{}", path.display());
    let mut relay = keel.relay(
        &url,
        &["--metrics", "127.0.0.1:0", "--metrics-tokens", token],
    );
    let metrics = metrics_address(&mut relay);

    let scrape = |token: Option<&str>| {
        let mut request = ureq::get(format!("http://{metrics}/metrics"));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("scrape");
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    };
    let started = Instant::now();
    loop {
        let (status, text) = scrape(Some("relay-scraper-token"));
        assert_eq!(status, 200, "{text}");
        if text.contains("keel_outbox_published_total 200")
            && text.contains("keel_outbox_backlog_events 0")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the relay's metrics never showed 200 published and nothing left: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = scrape(None);
    assert_eq!(status, 401, "/metrics without the token");
    let (status, _) = scrape(Some("another-token"));
    assert_eq!(status, 401, "/metrics with a wrong token");

    let health: serde_json::Value = ureq::get(format!("http://{metrics}/health"))
        .call()
        .expect("health")
        .into_body()
        .read_json()
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["published"], 200, "{health}");
    assert_eq!(health["backlog"], 0, "{health}");
    let pid = relay.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        relay.wait().unwrap().success(),
        "the relay exits cleanly on SIGTERM"
    );
}

/// The metrics listener's address, from the relay's "metrics at" line on stderr; the rest
/// of stderr is drained on a thread so progress lines never block the relay.
fn metrics_address(relay: &mut Child) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the relay printed no metrics address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("keel relay: metrics at http://") {
            break rest
                .trim_end_matches("/metrics")
                .parse()
                .expect("an address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    address
}

/// Starts `keel relay ... extra` six times and SIGKILLs it at a random moment each time,
/// then lets a last one drain the outbox, and checks the log: every event, each key in order.
fn kill_repeatedly_then_check(keel: &Keel, url: &str, extra: &[&str]) {
    keel.ok(
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "4",
            "--fsync",
            "never",
        ],
        "",
    );
    // A small, seeded generator for the kill moments; the seed is printed to replay a run.
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill-moment seed: {seed}");
    for _ in 0..6 {
        let mut args = vec!["--batch", "5", "--poll-interval-ms", "20"];
        args.extend_from_slice(extra);
        let mut child = keel.relay(url, &args);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 400));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
    let output = keel
        .relay(url, &["--exit-when-idle"])
        .wait_with_output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = Log::open(keel.dir.path()).unwrap();
    let topic = log.topic("orders").unwrap();
    let mut next: BTreeMap<String, u32> = BTreeMap::new();
    let (mut stored, mut duplicates) = (0, 0);
    for partition in topic.partitions() {
        let mut offset = 0;
        while offset < partition.high_watermark() {
            for record in partition.read_records(offset, 1 << 20).unwrap() {
                offset = record.offset + 1;
                stored += 1;
                let headers = record
                    .headers
                    .iter()
                    .map(|h| (h.key.as_str(), h.value.as_deref()));
                let event =
                    Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
                        .unwrap();
                let data: serde_json::Value =
                    serde_json::from_slice(event.data.as_deref().unwrap()).unwrap();
                let key = data["key"].as_str().unwrap().to_string();
                let seq = data["seq"].as_u64().unwrap() as u32;
                let expected = next.entry(key.clone()).or_insert(0);
                if seq == *expected {
                    *expected += 1;
                } else {
                    assert!(
                        seq < *expected,
                        "key {key} jumped to {seq} before {expected}"
                    );
                    duplicates += 1;
                }
            }
        }
    }
    assert_eq!(next.len(), KEYS, "every key published");
    assert!(
        next.values().all(|&n| n == PER_KEY),
        "every event published: {next:?}"
    );
    eprintln!("6 kills; {stored} records stored, {duplicates} republished");
}

#[test]
fn migrate_says_what_it_applied_to_a_sqlite_file() {
    let keel = Keel::new();
    let url = format!("sqlite:{}", keel.dir.path().join("app.db").display());
    let first = keel.ok(&["migrate", "--database-url", &url], "");
    // Every SQLite component's tables, as on PostgreSQL, not only the outbox's.
    for step in [
        "applied version 1: inbox table\n",
        "applied version 1: outbox tables\n",
        "applied version 1: saga instances\n",
        "applied version 1: projection checkpoints\n",
    ] {
        assert!(first.contains(step), "{step:?} in {first}");
    }
    assert!(first.contains("app.db migrated ("), "{first}");
    let second = keel.ok(&["migrate", "--database-url", &url], "");
    assert!(second.ends_with("app.db are already current\n"), "{second}");
}

#[test]
fn migrate_is_idempotent_and_a_bad_url_is_one_line() {
    let Some(url) = schema_url("migrate") else {
        return;
    };
    let keel = Keel::new();
    let first = keel.ok(&["migrate", "--database-url", &url], "");
    assert!(
        first.starts_with("applied version 1: outbox table\n"),
        "{first}"
    );
    assert!(first.contains("' migrated ("), "{first}");
    let second = keel.ok(&["migrate", "--database-url", &url], "");
    assert!(second.ends_with("' are already current\n"), "{second}");
    assert_eq!(second.lines().count(), 1, "{second}");
    keel.fails(
        &["migrate", "--database-url", "mysql://x"],
        "",
        "unsupported --database-url 'mysql://x'",
    );
    let started = Instant::now();
    keel.fails(
        &[
            "migrate",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/none",
        ],
        "",
        "cannot connect to postgres 127.0.0.1:1/none",
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
