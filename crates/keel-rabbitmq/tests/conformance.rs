//! The RabbitMQ transport against the transport conformance suite
//! (`keel_runtime::conformance`), on the RabbitMQ at `KEEL_TEST_RABBITMQ_URL`
//! (`scripts/services start rabbitmq`; `scripts/services env` prints the variable): unset,
//! each check says it did not run; set, an unreachable server fails it. Every check works
//! in a namespace of its own, so runs and checks never see each other's topics.
//!
//! The server-restart check runs on a RabbitMQ node of its own (`KEEL_TEST_RABBITMQ_SERVER_BIN`,
//! the `rabbitmq-server` script; unset, it says it did not run): its own node name, data
//! directory and free ports, killed with SIGKILL mid-run, and in a second check stopped with
//! SIGTERM (a clean shutdown) — streams and the durable offset queues keep what they confirmed.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_rabbitmq::{RabbitConfig, RabbitTransport};
use keel_runtime::conformance::{Harness, PrivateServer, Stop, free_port, inherited_broker};
use keel_runtime::{Publisher, Transport};

const URL_VAR: &str = "KEEL_TEST_RABBITMQ_URL";
const SERVER_BIN_VAR: &str = "KEEL_TEST_RABBITMQ_SERVER_BIN";

/// One namespace on the shared RabbitMQ and a transport in it.
struct Rabbit {
    config: RabbitConfig,
    rabbit: RabbitTransport,
    prefix: String,
}

impl Harness for Rabbit {
    fn transport(&self) -> Transport {
        RabbitTransport::connect(&self.config)
            .expect("RabbitMQ transport")
            .transport()
    }

    fn admin(&self) -> Arc<dyn AdminTransport> {
        Arc::new(self.rabbit.admin())
    }

    fn publisher(&self) -> Publisher {
        self.rabbit.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        }
    }

    fn broker_for_child(&self) -> Option<String> {
        Some(self.prefix.clone())
    }
}

async fn rabbit() -> Option<Rabbit> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("rabbitmq conformance: not run, {URL_VAR} is unset");
        return None;
    };
    Some(rabbit_at(&url).await)
}

async fn rabbit_at(url: &str) -> Rabbit {
    // A child process of a check (a member killed there) works in its parent's namespace.
    let prefix =
        inherited_broker().unwrap_or_else(|| format!("conformance-{}.", uuid::Uuid::now_v7()));
    let config = RabbitConfig::new(url).with_prefix(&prefix);
    let rabbit = RabbitTransport::connect(&config).expect("RabbitMQ transport");
    rabbit
        .admin()
        .topics()
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {url} is unreachable: {e}"));
    Rabbit {
        config,
        rabbit,
        prefix,
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

/// The server-restart check on a private node stopped as `stop` says (SIGKILL of the
/// node's process group, or SIGTERM to `rabbitmq-server`, which stops the node cleanly).
async fn restarted_mid_run(stop: Stop) {
    let Ok(bin) = std::env::var(SERVER_BIN_VAR) else {
        eprintln!("rabbitmq restart ({stop:?}): not run, {SERVER_BIN_VAR} is unset");
        return;
    };
    let dir = tempfile::tempdir().expect("the node's directory");
    let (amqp, stream, dist) = (free_port(), free_port(), free_port());
    let home = dir.path().to_path_buf();
    std::fs::write(
        home.join("rabbitmq.conf"),
        format!(
            "listeners.tcp.1 = 127.0.0.1:{amqp}\nstream.listeners.tcp.1 = 127.0.0.1:{stream}\n\
             stream.advertised_host = 127.0.0.1\nloopback_users.guest = true\n"
        ),
    )
    .expect("rabbitmq.conf");
    std::fs::write(
        home.join("enabled_plugins"),
        "[rabbitmq_stream,rabbitmq_consistent_hash_exchange].",
    )
    .expect("enabled_plugins");
    let node = format!("keel-restart-{amqp}@localhost");
    let mut server = PrivateServer::start(
        "rabbitmq-server",
        amqp,
        home.join("rabbitmq.log"),
        Box::new(move || {
            let mut command = Command::new(&bin);
            command
                .env("RABBITMQ_NODENAME", &node)
                .env("RABBITMQ_MNESIA_BASE", home.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", home.join("log"))
                .env("RABBITMQ_PID_FILE", home.join("rabbitmq.pid"))
                .env("RABBITMQ_CONFIG_FILE", home.join("rabbitmq"))
                .env(
                    "RABBITMQ_ENABLED_PLUGINS_FILE",
                    home.join("enabled_plugins"),
                )
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_DIST_PORT", dist.to_string())
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .env(
                    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                    "-kernel inet_dist_use_interface {127,0,0,1}",
                )
                .env("HOME", &home);
            command
        }),
    )
    .await;
    let rabbit = rabbit_at(&format!("amqp://guest:guest@127.0.0.1:{amqp}/%2f")).await;
    if stop == Stop::Kill {
        past_first_stream(&rabbit, &mut server).await;
    }
    let report =
        keel_sql::conformance::restart::the_server_restarted_mid_run_loses_nothing_acknowledged(
            &rabbit,
            server.restart(stop),
        )
        .await;
    eprintln!("rabbitmq restart ({stop:?}, streams): {report:?}");
}

/// Takes a fresh node past the moment after its first stream declaration in which a SIGKILL
/// makes it forget its stream coordinator: RabbitMQ 3.10's Ra (2.2) writes the coordinator's
/// registration (`names.dets`) lazily, and a node killed before that write serves none of its
/// streams again (docs/engines.md) — a RabbitMQ bug, fixed in later Ra, that no client can
/// mend. A node in service is long past it; the check's node passes it through a first stream
/// and a clean restart, so the SIGKILL tests what a node in service does.
async fn past_first_stream(rabbit: &Rabbit, server: &mut PrivateServer) {
    rabbit
        .rabbit
        .publish_transport()
        .ensure_topic("first-stream", 1)
        .await
        .expect("the node's first stream");
    server.restart(Stop::Graceful).await;
}

keel_runtime::conformance_tests!(optional rabbit());
keel_sql::relay_conformance_tests!(optional rabbit());
keel_runtime::admin_conformance_tests!(optional rabbit());
keel_runtime::dead_letter_conformance_tests!(optional rabbit());
keel_runtime::gauge_conformance_tests!(optional rabbit());
keel_runtime::live_lag_conformance_tests!(optional rabbit());
keel_runtime::group_deletion_conformance_tests!(optional rabbit());
