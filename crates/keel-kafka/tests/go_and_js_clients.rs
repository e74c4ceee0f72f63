//! The clients teams in other languages use, against the broker and against the real Apache
//! Kafka broker with the same checks: franz-go (Go, `compat/go`) and KafkaJS (Node.js,
//! `compat/js`) each produce records with keys and headers, run a consumer group of three
//! over six partitions (every record handled once), and resume a group from its commits.
//!
//! Apache Kafka is the reference: every check must pass there, and on this broker too. Each
//! run also records the API versions the client uses on that broker for
//! `docs/kafka-compatibility.md`'s matrix (`scripts/kafka-compat-matrix`).
//!
//! Needs Go and Node.js with `compat/js`'s locked packages (`npm ci --prefix compat/js`;
//! required when `KEEL_TEST_KAFKA_CLIENTS=1` or in CI, where `.ci/run` installs them). The
//! Apache Kafka runs read `KEEL_TEST_KAFKA_BROKERS` (`scripts/services env`): unset, they say
//! they did not run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{TestBroker, client_available, run};

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

/// The two suites: each prints `{"tests": {name: failure|null}, "usable": {api: version}}`.
#[derive(Clone, Copy)]
enum Client {
    FranzGo,
    KafkaJs,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::FranzGo => "franz-go",
            Client::KafkaJs => "kafkajs",
        }
    }

    fn project(self) -> PathBuf {
        let dir = match self {
            Client::FranzGo => "go",
            Client::KafkaJs => "js",
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../compat")
            .join(dir)
    }

    fn available(self) -> bool {
        match self {
            Client::FranzGo => client_available("Go (the franz-go suite)", "go", &["version"]),
            Client::KafkaJs => client_available(
                "Node.js with compat/js's packages (npm ci --prefix compat/js)",
                "node",
                &[
                    "-e",
                    &format!(
                        "require.resolve('kafkajs', {{ paths: [{:?}] }})",
                        self.project()
                    ),
                ],
            ),
        }
    }

    /// The command that runs the checks against `bootstrap`, with `prefix` naming what they
    /// create; franz-go's is built first, into `build`.
    fn command(self, build: &Path, bootstrap: &str, prefix: &str) -> Command {
        match self {
            Client::FranzGo => {
                let binary = build.join("franzgo");
                run(Command::new("go")
                    .current_dir(self.project())
                    .args(["build", "-o"])
                    .arg(&binary)
                    .arg("."));
                let mut command = Command::new(binary);
                command.args(["-bootstrap", bootstrap, "-prefix", prefix]);
                command
            }
            Client::KafkaJs => {
                let mut command = Command::new("node");
                command
                    .current_dir(self.project())
                    .args(["checks.js", bootstrap, prefix]);
                command
            }
        }
    }
}

/// Runs `client`'s checks against `bootstrap`, records what it found for the matrix, and
/// asserts every check passed.
fn check(client: Client, bootstrap: &str, broker: &str) {
    if !client.available() {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let prefix = format!(
        "compat-{}-{}-{}",
        client.name(),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let output = run(&mut client.command(build.path(), bootstrap, &prefix));
    let found: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no result ({e}):\n{}\n{}",
            client.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let tests = found["tests"].as_object().expect("tests");
    assert_eq!(tests.len(), 3, "{} ran {tests:?}", client.name());
    support::save_compat_results(client.name(), broker, &found["tests"], &found["usable"]);
    let failed: Vec<String> = tests
        .iter()
        .filter(|(_, failure)| !failure.is_null())
        .map(|(name, failure)| format!("{name}: {failure}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} fails on {broker}:\n{}\nstderr:\n{}",
        client.name(),
        failed.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn against_keel(client: Client) {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    check(client, &broker.bootstrap(), "keel");
}

fn against_apache_kafka(client: Client) {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!(
            "{} checks on apache kafka: not run, {BROKERS_VAR} is unset",
            client.name()
        );
        return;
    };
    check(client, &brokers, "kafka");
}

#[test]
fn franz_go_against_keel() {
    against_keel(Client::FranzGo);
}

#[test]
fn franz_go_against_apache_kafka() {
    against_apache_kafka(Client::FranzGo);
}

#[test]
fn kafkajs_against_keel() {
    against_keel(Client::KafkaJs);
}

#[test]
fn kafkajs_against_apache_kafka() {
    against_apache_kafka(Client::KafkaJs);
}
