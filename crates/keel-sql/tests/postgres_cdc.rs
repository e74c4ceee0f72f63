//! The change-data-capture relay (feature `cdc`) against a real PostgreSQL with
//! `wal_level=logical` (`KEEL_TEST_POSTGRES_URL`): events in commit order across concurrent
//! writers; nothing lost and nothing duplicated across a dropped replication connection and
//! a server restart (a private cluster started here: the shared one is never restarted);
//! nothing lost across a relay killed with SIGKILL (this binary's `relay_process` as a child
//! process), its duplicates the same events; a slot that was never checked, lost under a
//! running relay, invalidated, or left by a relay from before schema version 7 is handled
//! without losing a row (`cdc_slot.rs`). Every test uses its own schema, slot and
//! publication and drops the slot at the end (a slot left behind holds WAL forever).

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use keel_core::{Event, PublishPort};
use keel_embedded::EmbeddedBus;
use keel_sql::{AfterPublish, CdcMetrics, CdcSlot, OutboxMetrics, PgDatabase, RelayOptions};
use support::{HeldPort, Step, check_per_key_order, embedded, fresh_schema, step, steps, until};

const WAIT: Duration = Duration::from_secs(90);

fn options() -> RelayOptions {
    RelayOptions {
        batch_rows_max: 64,
        after_publish: AfterPublish::Delete,
        housekeeping_interval: Duration::from_millis(100),
        retry_delay_min: Duration::from_millis(20),
        retry_delay_max: Duration::from_millis(500),
        name: "cdc test".to_string(),
        ..RelayOptions::default()
    }
}

/// Enqueues the steps `seqs` of each key, one transaction per step number.
async fn enqueue_steps(db: &PgDatabase, topic: &str, keys: &[String], seqs: std::ops::Range<u32>) {
    let outbox = db.outbox();
    for seq in seqs {
        let mut client = db.pool().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let events: Vec<(&str, Event)> = keys.iter().map(|k| (topic, step(k, seq))).collect();
        outbox.enqueue_batch(&tx, &events).await.unwrap();
        tx.commit().await.unwrap();
    }
}

/// A CDC relay of the outbox in `db` through `port`, with the tests' options.
async fn cdc_relay(
    db: &PgDatabase,
    port: impl PublishPort + 'static,
    slot: &CdcSlot,
) -> Result<keel_sql::RelayHandle, keel_sql::CdcError> {
    cdc_relay_with(db, port, slot, CdcMetrics::new()).await
}

/// As [`cdc_relay`], updating `metrics`.
async fn cdc_relay_with(
    db: &PgDatabase,
    port: impl PublishPort + 'static,
    slot: &CdcSlot,
    metrics: CdcMetrics,
) -> Result<keel_sql::RelayHandle, keel_sql::CdcError> {
    db.outbox()
        .cdc_relay(
            Arc::new(port),
            options(),
            slot.clone(),
            OutboxMetrics::new(),
            metrics,
        )
        .await
}

async fn start(
    db: &PgDatabase,
    port: impl PublishPort + 'static,
    slot: &CdcSlot,
) -> keel_sql::RelayHandle {
    cdc_relay(db, port, slot)
        .await
        .expect("start the cdc relay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_leave_in_commit_order_across_concurrent_writers() {
    let Some((url, schema)) = fresh_schema("cdc_order").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.unwrap();
    db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE turn (n bigint NOT NULL); INSERT INTO turn VALUES (0)")
        .await
        .unwrap();
    let slot = CdcSlot::named(&schema);
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 1, None);
    let relay = start(&db, publisher, &slot).await;
    // Each transaction takes the next turn under the row lock it holds to its commit, so
    // turns are commit order; the writers use different keys, so only commit order (not
    // any key's order) says how their events must interleave.
    let (writers, per_writer) = (4u32, 50u32);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..per_writer {
                    let mut client = db.pool().get().await.unwrap();
                    let tx = client.transaction().await.unwrap();
                    let n: i64 = tx
                        .query_one("UPDATE turn SET n = n + 1 RETURNING n", &[])
                        .await
                        .unwrap()
                        .get(0);
                    let event = step(&format!("writer-{w}"), n as u32);
                    db.outbox().enqueue(&tx, "orders", &event).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = (writers * per_writer) as usize;
    until("every event published", WAIT, || async {
        steps(bus.log(), "orders").len() >= total
    })
    .await;
    relay.shutdown().await;
    let turns: Vec<u32> = steps(bus.log(), "orders").iter().map(|s| s.seq).collect();
    let expected: Vec<u32> = (1..=total as u32).collect();
    assert_eq!(turns, expected, "events in commit order, each once");
    db.outbox().drop_cdc_slot(&slot).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_replication_connection_loses_and_duplicates_nothing() {
    let Some((url, schema)) = fresh_schema("cdc_drop").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.unwrap();
    let slot = CdcSlot::named(&schema);
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 2, None);
    let relay = start(&db, publisher, &slot).await;
    let keys: Vec<String> = (0..5).map(|k| format!("key-{k}")).collect();
    let per_key = 200;
    let writer = {
        let (db, keys) = (db.clone(), keys.clone());
        tokio::spawn(async move { enqueue_steps(&db, "orders", &keys, 0..per_key).await })
    };
    let admin = db.pool().get().await.unwrap();
    let mut terminated = 0;
    for round in 1..=3 {
        until("events flowing", WAIT, || async {
            steps(bus.log(), "orders").len() >= round * 200
        })
        .await;
        let killed: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(active_pid)
                 FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL) t",
                &[&slot.slot],
            )
            .await
            .unwrap()
            .get(0);
        terminated += killed;
    }
    writer.await.unwrap();
    assert!(terminated > 0, "the walsender was terminated");
    let total = keys.len() * per_key as usize;
    until("every event published", WAIT, || async {
        steps(bus.log(), "orders").len() >= total
    })
    .await;
    finish(&db, relay, &bus, &slot, &keys, per_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_from_before_the_slot_is_refused_not_lost() {
    let Some((url, schema)) = fresh_schema("cdc_backlog").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.unwrap();
    enqueue_steps(&db, "orders", &["k".to_string()], 0..3).await;
    let dir = tempfile::tempdir().unwrap();
    let (_bus, publisher) = embedded(dir.path(), "orders", 1, None);
    let slot = CdcSlot::named(&schema);
    let error = cdc_relay(&db, publisher, &slot)
        .await
        .expect_err("a backlog the slot would not stream");
    assert!(error.to_string().contains("3 unpublished rows"), "{error}");
    let admin = db.pool().get().await.unwrap();
    until("the refused slot dropped", WAIT, || async {
        admin
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot.slot],
            )
            .await
            .unwrap()
            .is_none()
    })
    .await;
    db.outbox().drop_cdc_slot(&slot).await.unwrap();
}

/// Whether the slot `name` exists.
async fn slot_exists(admin: &deadpool_postgres::Object, name: &str) -> bool {
    admin
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .is_some()
}

/// Creates the slot `name` as a relay does before its check, without the check.
async fn create_slot_unchecked(admin: &deadpool_postgres::Object, name: &str) {
    admin
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&name],
        )
        .await
        .unwrap();
}

/// Drops the slot `name` from under its relay, as an operator or a failover would: ends its
/// walsender and drops the slot before the relay's session takes it again.
async fn drop_from_under_the_relay(admin: &deadpool_postgres::Object, name: &str) {
    until("the slot dropped from under its relay", WAIT, || async {
        admin
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                 WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&name],
            )
            .await
            .unwrap();
        admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE slot_name = $1",
                &[&name],
            )
            .await
            .is_ok()
    })
    .await;
}

/// Runs each statement on its own: ALTER SYSTEM and CHECKPOINT refuse a transaction block.
async fn each(admin: &deadpool_postgres::Object, statements: &[&str]) {
    for statement in statements {
        admin.batch_execute(statement).await.unwrap();
    }
}

/// Rows left in the outbox: the unpublished ones (published ones are deleted,
/// `AfterPublish::Delete`).
async fn outbox_rows(admin: &deadpool_postgres::Object) -> i64 {
    admin
        .query_one("SELECT count(*) FROM keel_outbox", &[])
        .await
        .unwrap()
        .get(0)
}

/// Enqueues the steps `seqs` of each key and waits until the topic holds every step of
/// every key up to `seqs.end`.
async fn publish_steps(
    db: &PgDatabase,
    bus: &EmbeddedBus,
    keys: &[String],
    seqs: std::ops::Range<u32>,
) {
    let total = keys.len() * seqs.end as usize;
    enqueue_steps(db, "orders", keys, seqs).await;
    until("the events published", WAIT, || async {
        steps(bus.log(), "orders").len() >= total
    })
    .await;
}

/// Publishes what is left in the outbox with the polling relay, as an operator drains it
/// before starting the CDC relay again.
async fn drain_with_the_polling_relay(
    db: &PgDatabase,
    bus: &EmbeddedBus,
    admin: &deadpool_postgres::Object,
) {
    let polling = db
        .outbox()
        .relay(Arc::new(bus.publisher()), options())
        .unwrap();
    until("the outbox drained", WAIT, || async {
        outbox_rows(admin).await == 0
    })
    .await;
    polling.shutdown().await;
}

/// Stops `relay`, checks every key's steps `0..per_key` arrived once and in order, and
/// drops the slot.
async fn finish(
    db: &PgDatabase,
    relay: keel_sql::RelayHandle,
    bus: &EmbeddedBus,
    slot: &CdcSlot,
    keys: &[String],
    per_key: u32,
) {
    relay.shutdown().await;
    let seen = steps(bus.log(), "orders");
    assert_eq!(
        check_per_key_order(&seen, keys, per_key),
        0,
        "no duplicates"
    );
    db.outbox().drop_cdc_slot(slot).await.unwrap();
}

/// A CDC relay streaming a fresh schema's outbox into the embedded topic `orders`.
struct Streaming {
    db: PgDatabase,
    admin: deadpool_postgres::Object,
    slot: CdcSlot,
    bus: EmbeddedBus,
    metrics: CdcMetrics,
    relay: keel_sql::RelayHandle,
    _dir: tempfile::TempDir,
}

async fn streaming(test: &str) -> Option<Streaming> {
    let (url, schema) = fresh_schema(test).await?;
    let db = PgDatabase::connect(&url).await.unwrap();
    let admin = db.pool().get().await.unwrap();
    let slot = CdcSlot::named(&schema);
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 2, None);
    let metrics = CdcMetrics::new();
    let relay = cdc_relay_with(&db, publisher, &slot, metrics.clone())
        .await
        .unwrap();
    Some(Streaming {
        db,
        admin,
        slot,
        bus,
        metrics,
        relay,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_check_never_ran_is_checked_before_it_streams() {
    let Some((url, schema)) = fresh_schema("cdc_unchecked").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.unwrap();
    let admin = db.pool().get().await.unwrap();
    let slot = CdcSlot::named(&schema);
    let keys = ["k".to_string()];
    enqueue_steps(&db, "orders", &keys, 0..3).await;
    // A relay killed after creating its slot and before counting the rows it would miss.
    create_slot_unchecked(&admin, &slot.slot).await;
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 1, None);
    let error = cdc_relay(&db, publisher, &slot)
        .await
        .expect_err("the rows committed before the unchecked slot");
    assert!(error.to_string().contains("3 unpublished rows"), "{error}");
    assert!(!slot_exists(&admin, &slot.slot).await, "the slot dropped");
    // Drained, the outbox holds nothing the slot would miss: an unchecked slot is checked,
    // created again and streamed from.
    drain_with_the_polling_relay(&db, &bus, &admin).await;
    create_slot_unchecked(&admin, &slot.slot).await;
    let relay = start(&db, bus.publisher(), &slot).await;
    publish_steps(&db, &bus, &keys, 3..6).await;
    finish(&db, relay, &bus, &slot, &keys, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_slot_is_created_again_when_nothing_was_committed_meanwhile() {
    let Some(s) = streaming("cdc_lost_clean").await else {
        return;
    };
    let keys: Vec<String> = (0..3).map(|k| format!("key-{k}")).collect();
    publish_steps(&s.db, &s.bus, &keys, 0..5).await;
    drop_from_under_the_relay(&s.admin, &s.slot.slot).await;
    until("the relay's new slot streaming", WAIT, || async {
        s.admin
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&s.slot.slot],
            )
            .await
            .unwrap()
            .is_some()
    })
    .await;
    publish_steps(&s.db, &s.bus, &keys, 5..10).await;
    assert!(!s.metrics.slot_lost());
    finish(&s.db, s.relay, &s.bus, &s.slot, &keys, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_slot_with_rows_committed_meanwhile_stops_the_relay_and_loses_nothing() {
    let Some(s) = streaming("cdc_lost_rows").await else {
        return;
    };
    let keys: Vec<String> = (0..2).map(|k| format!("key-{k}")).collect();
    publish_steps(&s.db, &s.bus, &keys, 0..5).await;
    // The relay takes this lock ("klc", cdc_slot.rs) to create a slot: held here, the rows
    // below commit while there is no slot, whenever the relay notices it is gone.
    let holder = s.db.pool().get().await.unwrap();
    let lock = "SELECT pg_advisory_lock(7040099, hashtext($1))";
    holder.execute(lock, &[&s.slot.slot]).await.unwrap();
    drop_from_under_the_relay(&s.admin, &s.slot.slot).await;
    enqueue_steps(&s.db, "orders", &keys, 5..8).await;
    holder
        .execute(&lock.replace("_lock(", "_unlock("), &[&s.slot.slot])
        .await
        .unwrap();
    until("the relay reporting its slot lost", WAIT, || async {
        s.metrics.slot_lost()
    })
    .await;
    assert_eq!(
        outbox_rows(&s.admin).await,
        6,
        "the rows committed meanwhile kept"
    );
    assert!(
        !slot_exists(&s.admin, &s.slot.slot).await,
        "the refused slot dropped"
    );
    assert_eq!(steps(s.bus.log(), "orders").len(), 10);
    s.relay.shutdown().await;
    // What the operator does: drain with the polling relay, start the CDC relay again.
    drain_with_the_polling_relay(&s.db, &s.bus, &s.admin).await;
    let relay = start(&s.db, s.bus.publisher(), &s.slot).await;
    publish_steps(&s.db, &s.bus, &keys, 8..10).await;
    finish(&s.db, relay, &s.bus, &s.slot, &keys, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_from_before_schema_version_7_streams_on_after_the_upgrade() {
    let Some((url, schema)) = fresh_schema("cdc_upgrade").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.unwrap();
    let admin = db.pool().get().await.unwrap();
    let slot = CdcSlot::named(&schema);
    // A schema at version 6 whose relay created (and checked) its slot, then stopped while
    // writers went on.
    admin
        .batch_execute(
            "DROP TABLE keel_cdc_slots; DELETE FROM keel_schema_migrations WHERE version = 7",
        )
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE keel_outbox WITH (publish = 'insert')",
            slot.publication
        ))
        .await
        .unwrap();
    create_slot_unchecked(&admin, &slot.slot).await;
    let keys = ["k".to_string()];
    enqueue_steps(&db, "orders", &keys, 0..3).await;
    let db = PgDatabase::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 1, None);
    let relay = start(&db, publisher, &slot).await;
    until(
        "the rows committed after the slot published",
        WAIT,
        || async { steps(bus.log(), "orders").len() >= 3 },
    )
    .await;
    finish(&db, relay, &bus, &slot, &keys, 3).await;
}

/// A PostgreSQL cluster of the test's own, on a free port, stopped when dropped.
struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// A cluster for `test`, or `None` (and a message) when `KEEL_TEST_POSTGRES_URL` is unset:
    /// the variable says PostgreSQL is installed here.
    fn start_for(test: &str) -> Option<PrivateCluster> {
        if std::env::var("KEEL_TEST_POSTGRES_URL").is_err() {
            eprintln!("{test}: not run, KEEL_TEST_POSTGRES_URL is unset");
            return None;
        }
        Some(PrivateCluster::start())
    }

    fn start() -> PrivateCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL installed (scripts/services installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .expect("a PostgreSQL version");
        // PostgreSQL refuses root and must reach its directory: /var/tmp, owned by postgres.
        let dir = tempfile::Builder::new()
            .prefix("keel-cdc-pg-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivateCluster { dir, bin, port };
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:", &cluster.dir.path().display().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8"],
        );
        cluster.pg_ctl("start");
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let output = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.data();
        let log = self.dir.path().join("log").display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4",
            self.port,
            self.dir.path().display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-m", "fast", "-o", &options, action,
            ],
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.pg_ctl("stop"));
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_and_duplicates_nothing() {
    // The variable says PostgreSQL is installed here; the test runs its own cluster.
    let Some(cluster) = PrivateCluster::start_for("a_server_restart_loses_and_duplicates_nothing")
    else {
        return;
    };
    let db = PgDatabase::connect(&cluster.url()).await.unwrap();
    let slot = CdcSlot::named("keel_cdc_restart");
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 2, None);
    let relay = start(&db, publisher, &slot).await;
    let keys: Vec<String> = (0..4).map(|k| format!("key-{k}")).collect();
    enqueue_steps(&db, "orders", &keys, 0..50).await;
    until("events flowing", WAIT, || async {
        steps(bus.log(), "orders").len() >= 100
    })
    .await;
    // Off the runtime's worker: a fast shutdown waits for the walsender, which waits for the
    // relay to confirm what it was sent, and a relay task left queued on a worker blocked in
    // `pg_ctl` cannot confirm anything (the restart then timed out after 60 s under load).
    tokio::task::block_in_place(|| cluster.pg_ctl("restart"));
    // Writers retry until the server is back.
    let mut seq = 50;
    while seq < 100 {
        let outbox = db.outbox();
        let attempt = async {
            let mut client = db.pool().get().await.map_err(|e| e.to_string())?;
            let tx = client.transaction().await.map_err(|e| e.to_string())?;
            let events: Vec<(&str, Event)> =
                keys.iter().map(|k| ("orders", step(k, seq))).collect();
            outbox
                .enqueue_batch(&tx, &events)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(()) => seq += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let total = keys.len() * 100;
    until("every event published after the restart", WAIT, || async {
        steps(bus.log(), "orders").len() >= total
    })
    .await;
    finish(&db, relay, &bus, &slot, &keys, 100).await;
}

/// A slot `max_slot_wal_keep_size` invalidated while its relay was down is dropped and
/// created again with its check: rows committed since are refused until drained, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_is_replaced_with_its_check() {
    let Some(cluster) = PrivateCluster::start_for("an_invalidated_slot_is_replaced_with_its_check")
    else {
        return;
    };
    let db = PgDatabase::connect(&cluster.url()).await.unwrap();
    let admin = db.pool().get().await.unwrap();
    let slot = CdcSlot::named("keel_cdc_invalidated");
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 1, None);
    let keys = ["k".to_string()];
    let relay = start(&db, publisher, &slot).await;
    publish_steps(&db, &bus, &keys, 0..2).await;
    relay.shutdown().await;
    enqueue_steps(&db, "orders", &keys, 2..4).await;
    each(
        &admin,
        &[
            "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'",
            "SELECT pg_reload_conf()",
            "CREATE TABLE filler (n int)",
        ],
    )
    .await;
    until("the slot invalidated", WAIT, || async {
        each(
            &admin,
            &[
                "INSERT INTO filler VALUES (1)",
                "SELECT pg_switch_wal()",
                "CHECKPOINT",
            ],
        )
        .await;
        admin
            .query_one(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot.slot],
            )
            .await
            .unwrap()
            .get::<_, Option<String>>(0)
            .as_deref()
            == Some("lost")
    })
    .await;
    let error = cdc_relay(&db, bus.publisher(), &slot)
        .await
        .expect_err("the rows the invalidated slot will never stream");
    assert!(error.to_string().contains("2 unpublished rows"), "{error}");
    drain_with_the_polling_relay(&db, &bus, &admin).await;
    let relay = start(&db, bus.publisher(), &slot).await;
    publish_steps(&db, &bus, &keys, 4..6).await;
    finish(&db, relay, &bus, &slot, &keys, 6).await;
}

/// A fast shutdown that cuts a batch's write-back finishes: the relay ends its replication
/// session instead of leaving the walsender waiting for a confirmation it cannot give (before,
/// `pg_ctl` gave up after its 60 s). Once the server is back, the batch is written back and
/// nothing is published twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_shutdown_is_not_held_by_a_write_back_it_cut() {
    fast_shutdown_with_a_batch_in_flight(
        "a_fast_shutdown_is_not_held_by_a_write_back_it_cut",
        "keel_cdc_shutdown",
        Gate::OpensDuringTheShutdown,
    )
    .await;
}

/// A fast shutdown is not held by a transport that hangs with a batch: the relay notices
/// the server shutting down and ends its session (before, the shutdown waited until the
/// transport answered). The batch is published and written back once both are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_shutdown_is_not_held_by_a_transport_that_hangs() {
    fast_shutdown_with_a_batch_in_flight(
        "a_fast_shutdown_is_not_held_by_a_transport_that_hangs",
        "keel_cdc_shutdown_hang",
        Gate::OpensAfterTheRestart,
    )
    .await;
}

/// When the transport's gate opens for the batch held while the server shuts down.
enum Gate {
    /// Once the server refuses connections: the write-back finds it shutting down.
    OpensDuringTheShutdown,
    /// Once the server is back: the publish hangs through the whole shutdown.
    OpensAfterTheRestart,
}

/// One batch held at the transport's gate, a fast shutdown of the server that must finish
/// (`pg_ctl` fails after its 60 s otherwise), a restart, and the batch published once.
async fn fast_shutdown_with_a_batch_in_flight(test: &str, slot: &str, gate_opens: Gate) {
    let Some(cluster) = PrivateCluster::start_for(test) else {
        return;
    };
    let cluster = Arc::new(cluster);
    let db = PgDatabase::connect(&cluster.url()).await.unwrap();
    let slot = CdcSlot::named(slot);
    let dir = tempfile::tempdir().unwrap();
    let (bus, publisher) = embedded(dir.path(), "orders", 1, None);
    let (gate, open) = tokio::sync::watch::channel(false);
    let port = HeldPort::new(publisher, open, Duration::ZERO);
    let held = port.held();
    let relay = start(&db, port, &slot).await;
    let keys: Vec<String> = (0..3).map(|k| format!("key-{k}")).collect();
    enqueue_steps(&db, "orders", &keys, 0..1).await;
    held.notified().await;
    let stop = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.pg_ctl("stop"))
    };
    if let Gate::OpensDuringTheShutdown = gate_opens {
        until("the server refusing connections", WAIT, || async {
            tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls)
                .await
                .is_err()
        })
        .await;
        // Published now; its write-back finds the server shutting down.
        gate.send_replace(true);
    }
    stop.await.expect("the fast shutdown finished");
    cluster.pg_ctl("start");
    gate.send_replace(true);
    until("the batch written back after the restart", WAIT, || async {
        db.outbox().backlog().await.is_ok_and(|b| b.pending == 0)
    })
    .await;
    finish(&db, relay, &bus, &slot, &keys, 1).await;
}

/// A relay process, killed when dropped (so a failing test leaves none behind).
struct RelayProcess(Child);

impl RelayProcess {
    /// SIGKILL, and wait for it.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// This test binary, running only [`relay_process`]: a CDC relay into the embedded log in
/// `data` (a process of its own, so it can be SIGKILLed; nextest builds no examples).
fn spawn_relay(url: &str, slot: &str, data: &Path) -> RelayProcess {
    RelayProcess(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "relay_process", "--ignored", "--nocapture"])
            .env(
                "KEEL_CDC_RELAY_PROCESS",
                format!("{url}\n{slot}\n{}", data.display()),
            )
            .spawn()
            .expect("start the relay process"),
    )
}

/// The relay process of [`spawn_relay`]; runs until killed. Ignored: only that test starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the relay process the SIGKILL test starts"]
async fn relay_process() {
    let spec = std::env::var("KEEL_CDC_RELAY_PROCESS").expect("started by spawn_relay");
    let [url, slot, data] = spec.split('\n').collect::<Vec<_>>()[..] else {
        panic!("KEEL_CDC_RELAY_PROCESS is URL, SLOT and DATA_DIR on three lines");
    };
    let db = PgDatabase::connect(url).await.unwrap();
    let log = Arc::new(keel_log::Log::open(data).unwrap());
    let port = keel_embedded::EmbeddedBus::new(log).publisher();
    let _relay = start(&db, port, &CdcSlot::named(slot)).await;
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_stream_loses_nothing_and_repeats_only_the_same_events() {
    let Some((url, schema)) = fresh_schema("cdc_kill").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    drop(embedded(dir.path(), "orders", 2, None));
    let keys: Vec<String> = (0..5).map(|k| format!("key-{k}")).collect();
    let per_key = 300;
    let mut child = spawn_relay(&url, &schema, dir.path());
    let admin = db.pool().get().await.unwrap();
    // A walsender streams the slot: the relay has started replication, so its slot was made
    // and its backlog check passed. `active` alone is not that: a slot being created is
    // active (its walsender in `startup`) while it waits for every transaction in flight on
    // the server, another test's included, and rows the writer committed meanwhile were
    // refused as a backlog the slot would never stream.
    let streaming = || async {
        admin
            .query_opt(
                "SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r
                 ON r.pid = s.active_pid
                 WHERE s.slot_name = $1 AND r.state IN ('catchup', 'streaming')",
                &[&schema],
            )
            .await
            .unwrap()
            .is_some()
    };
    // The slot first: rows committed before it would be refused as a backlog.
    until("the relay streaming", WAIT, streaming).await;
    let writer = {
        let (db, keys) = (db.clone(), keys.clone());
        tokio::spawn(async move { enqueue_steps(&db, "orders", &keys, 0..per_key).await })
    };
    for _ in 0..3 {
        // Killed while it streams (its slot active) and the writer commits.
        until("the relay streaming", WAIT, streaming).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        child.kill();
        child = spawn_relay(&url, &schema, dir.path());
    }
    writer.await.unwrap();
    until("the outbox drained", WAIT, || async {
        admin
            .query_one("SELECT count(*) FROM keel_outbox", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    child.kill();
    let log = keel_log::Log::open(dir.path()).unwrap();
    let seen: Vec<Step> = steps(&log, "orders");
    let duplicates = check_per_key_order(&seen, &keys, per_key);
    eprintln!("{} events stored, {duplicates} duplicates", seen.len());
    drop(log);
    db.outbox()
        .drop_cdc_slot(&CdcSlot::named(&schema))
        .await
        .unwrap();
}
