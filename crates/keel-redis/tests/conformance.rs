//! The Redis transport against the transport conformance suite (`keel_runtime::conformance`)
//! on the real server at `KEEL_TEST_REDIS_URL` (`scripts/services start redis`;
//! `scripts/services env` prints the variable): unset, each check says it did not run;
//! set, an unreachable server fails it. Each check gets a namespace of its own, so checks
//! and parallel runs share the server without meeting.
//!
//! The server-restart check runs on a Redis of its own (`KEEL_TEST_REDIS_SERVER_BIN`, the
//! `redis-server` binary; unset, it says it did not run): with `appendfsync always`, killed
//! with SIGKILL mid-run — the durability that setting promises is what the check holds it
//! to — and with `appendfsync everysec` (the AOF's default), stopped with SIGTERM: a clean
//! shutdown writes and syncs the AOF, so even that setting loses nothing then.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_redis::{RedisConfig, RedisTransport};
use keel_runtime::conformance::{Harness, PrivateServer, Stop, free_port, inherited_broker};
use keel_runtime::{Publisher, Transport};

const URL_VAR: &str = "KEEL_TEST_REDIS_URL";
const SERVER_BIN_VAR: &str = "KEEL_TEST_REDIS_SERVER_BIN";

/// A fresh namespace on the server.
struct Redis {
    transport: RedisTransport,
    namespace: String,
}

impl Harness for Redis {
    fn transport(&self) -> Transport {
        self.transport.transport()
    }

    fn admin(&self) -> Arc<dyn AdminTransport> {
        Arc::new(self.transport.clone())
    }

    fn publisher(&self) -> Publisher {
        self.transport.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        }
    }

    fn broker_for_child(&self) -> Option<String> {
        Some(self.namespace.clone())
    }
}

async fn redis() -> Option<Redis> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("redis conformance: not run, {URL_VAR} is unset");
        return None;
    };
    // A child process of a check (a member killed there) works in its parent's namespace.
    Some(redis_at(&url).await)
}

async fn redis_at(url: &str) -> Redis {
    let namespace = match inherited_broker() {
        Some(namespace) => namespace,
        None => support::fresh_namespace(url).await,
    };
    let config = RedisConfig::new(url)
        .with_namespace(&namespace)
        .expect("namespace");
    let transport = RedisTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is unreachable: {e}"));
    Redis {
        transport,
        namespace,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_mid_run_loses_nothing_acknowledged() {
    restarted_mid_run(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stopped_mid_run_loses_nothing_acknowledged() {
    restarted_mid_run(Stop::Graceful).await;
}

/// The server-restart check on a private server stopped as `stop` says, with the AOF synced
/// as often as that stop needs to keep every acknowledged entry: at every write before a
/// SIGKILL, once a second before a clean stop (which syncs the rest at shutdown).
async fn restarted_mid_run(stop: Stop) {
    let Ok(bin) = std::env::var(SERVER_BIN_VAR) else {
        eprintln!("redis restart ({stop:?}): not run, {SERVER_BIN_VAR} is unset");
        return;
    };
    let dir = tempfile::tempdir().expect("the server's directory");
    let port = free_port();
    let data = dir.path().to_path_buf();
    let fsync = match stop {
        Stop::Kill => "always",
        Stop::Graceful => "everysec",
    };
    let mut server = PrivateServer::start(
        "redis-server",
        port,
        dir.path().join("redis.log"),
        Box::new(move || {
            let mut command = Command::new(&bin);
            command
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(&data)
                .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", ""]);
            command
        }),
    )
    .await;
    let redis = redis_at(&format!("redis://127.0.0.1:{port}")).await;
    let report =
        keel_sql::conformance::restart::the_server_restarted_mid_run_loses_nothing_acknowledged(
            &redis,
            server.restart(stop),
        )
        .await;
    eprintln!("redis restart ({stop:?}, appendfsync {fsync}): {report:?}");
}

keel_runtime::conformance_tests!(optional redis());
keel_sql::relay_conformance_tests!(optional redis());
// Offsets are dense on Redis (entry 0-n is offset n − 1), so the operator checks apply.
keel_runtime::admin_conformance_tests!(optional redis());
keel_runtime::group_deletion_conformance_tests!(optional redis());
keel_runtime::topic_deletion_conformance_tests!(optional redis());
keel_runtime::dead_letter_conformance_tests!(optional redis());
keel_runtime::gauge_conformance_tests!(optional redis());
keel_runtime::live_lag_conformance_tests!(optional redis());
