//! The NATS transport against the transport conformance suite (`keel_runtime::conformance`)
//! on the real server at `KEEL_TEST_NATS_URL` (`scripts/services start nats`;
//! `scripts/services env` prints the variable): unset, each check says it did not run;
//! set, an unreachable server fails it. Each check gets a namespace of its own, so checks
//! and parallel runs share the server without meeting.
//!
//! The server-restart check runs on a NATS server of its own (`KEEL_TEST_NATS_SERVER_BIN`,
//! the `nats-server` binary; unset, it says it did not run) with JetStream's file storage,
//! killed with SIGKILL mid-run, and in a second check stopped with SIGTERM (a clean shutdown).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_nats::{NatsConfig, NatsTransport};
use keel_runtime::conformance::{Harness, PrivateServer, Stop, free_port, inherited_broker};
use keel_runtime::{Publisher, Transport};

const URL_VAR: &str = "KEEL_TEST_NATS_URL";
const SERVER_BIN_VAR: &str = "KEEL_TEST_NATS_SERVER_BIN";

/// A fresh namespace on the server.
struct Nats {
    transport: NatsTransport,
    namespace: String,
}

impl Harness for Nats {
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

async fn nats() -> Option<Nats> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("nats conformance: not run, {URL_VAR} is unset");
        return None;
    };
    Some(nats_at(&url).await)
}

async fn nats_at(url: &str) -> Nats {
    // A child process of a check (a member killed there) works in its parent's namespace.
    let namespace = inherited_broker()
        .unwrap_or_else(|| format!("t{}", uuid::Uuid::now_v7().simple())[..32].to_string());
    let config = NatsConfig::new(url)
        .with_namespace(&namespace)
        .expect("namespace");
    let transport = NatsTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("NATS at {url} is unreachable: {e}"));
    Nats {
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

/// The server-restart check on a private server stopped as `stop` says.
async fn restarted_mid_run(stop: Stop) {
    let Ok(bin) = std::env::var(SERVER_BIN_VAR) else {
        eprintln!("nats restart ({stop:?}): not run, {SERVER_BIN_VAR} is unset");
        return;
    };
    let dir = tempfile::tempdir().expect("the server's directory");
    let port = free_port();
    let store = dir.path().join("jetstream");
    let mut server = PrivateServer::start(
        "nats-server",
        port,
        dir.path().join("nats.log"),
        Box::new(move || {
            let mut command = Command::new(&bin);
            command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&store);
            command
        }),
    )
    .await;
    let nats = nats_at(&format!("nats://127.0.0.1:{port}")).await;
    let report =
        keel_sql::conformance::restart::the_server_restarted_mid_run_loses_nothing_acknowledged(
            &nats,
            server.restart(stop),
        )
        .await;
    eprintln!("nats restart ({stop:?}, file storage): {report:?}");
}

keel_runtime::conformance_tests!(optional nats());
keel_sql::relay_conformance_tests!(optional nats());
// Offsets skip the other partitions' sequences; the admin port counts a partition's records.
keel_runtime::admin_conformance_tests!(optional nats());
keel_runtime::group_deletion_conformance_tests!(optional nats());
keel_runtime::topic_deletion_conformance_tests!(optional nats());
keel_runtime::dead_letter_conformance_tests!(optional nats());
keel_runtime::gauge_conformance_tests!(optional nats());
keel_runtime::live_lag_conformance_tests!(optional nats());
