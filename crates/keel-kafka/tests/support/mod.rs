//! Starts a broker on a free port in a background runtime, and finds the real Kafka clients
//! the compatibility tests drive.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use keel_kafka::{Broker, BrokerConfig, KafkaListener};
use keel_log::Log;
use tokio::sync::oneshot;

/// A broker serving a log on 127.0.0.1, stopped (gracefully) on drop.
pub(crate) struct TestBroker {
    pub(crate) address: SocketAddr,
    pub(crate) log: Arc<Log>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestBroker {
    pub(crate) fn start(dir: &Path) -> TestBroker {
        TestBroker::start_with(dir, BrokerConfig::default())
    }

    pub(crate) fn start_with(dir: &Path, config: BrokerConfig) -> TestBroker {
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
        let broker = Arc::new(Broker::new(
            log.clone(),
            config.clone(),
            config.node_address(address),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(listener.serve(broker, async {
                let _ = stopped.await;
            }));
        });
        TestBroker {
            address,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
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

/// A Python client script shipped beside the tests.
pub(crate) fn script(name: &str) -> String {
    format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}
