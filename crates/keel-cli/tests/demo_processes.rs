//! `keel demo` as separate processes against `keel serve`: five service processes and the
//! ordering one, sharing only the broker and a data directory; the payment service and
//! then the ordering process are killed with SIGKILL in the middle of the run and started
//! again, and the ordering process's self-check still holds (nothing lost, nothing charged
//! or shipped twice). The server starts empty: the services create the demo's topics.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`).
#![cfg(feature = "kafka")]

#[path = "support/serve.rs"]
mod server;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_demo::events::TOPICS;
use support::Keel;

/// How long the test waits for the run to reach the point where it kills the payment
/// service; only a broken system takes this long.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);

/// A child process, killed (SIGKILL) when dropped, so a failed test leaves nothing
/// running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM to a running process; whether it exited with status 0.
fn terminate(mut running: Running) -> bool {
    server::terminate(&mut running.0)
}

/// Starts `keel serve` on the data directory of `keel` and returns it with its Kafka
/// address.
fn serve(keel: &Keel) -> (Running, String) {
    let (child, line) = keel.start_server(&[]);
    (Running(child), server::address(&line, "kafka").to_string())
}

/// Starts `keel demo --brokers … --dir … --service <service> --quiet EXTRA`; its stdout
/// is piped for the ordering process and dropped for the others, its stderr (warnings) is
/// the test's.
fn demo(kafka: &str, dir: &Path, service: &str, extra: &[&str]) -> Child {
    let stdout = if service == "orders" {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["demo", "--brokers", kafka, "--service", service, "--quiet"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(stdout)
        .spawn()
        .expect("spawn keel demo")
}

/// Waits until the payment service has charged or declined `count` cards.
fn wait_for_payments(dir: &Path, count: i64) {
    let started = Instant::now();
    while payments(dir) < count {
        assert!(
            started.elapsed() < PROGRESS_TIMEOUT,
            "fewer than {count} payments after {PROGRESS_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Cards the payment service charged or declined so far (0 while it has no database).
fn payments(dir: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(
        dir.join("payment.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| c.query_row("SELECT COUNT(*) FROM payments", [], |r| r.get(0)))
    .unwrap_or(0)
}

#[test]
fn services_as_processes_keep_every_invariant_through_kill_9s() {
    let keel = Keel::new();
    keel.fails(&["demo", "--service", "payment"], "", "without --brokers");
    let (server, kafka) = serve(&keel);
    let demo_dir = tempfile::tempdir().unwrap();
    let dir = demo_dir.path();
    let payment_flags = ["--decline-rate", "0.2"];
    let mut services: Vec<Running> = ["inventory", "shipping", "email", "analytics"]
        .into_iter()
        .map(|service| Running(demo(&kafka, dir, service, &[])))
        .collect();
    let payment = Running(demo(&kafka, dir, "payment", &payment_flags));
    let ordering_flags = [
        "--orders",
        "40",
        "--place-interval",
        "50ms",
        "--poison-every",
        "9",
    ];
    let ordering = Running(demo(&kafka, dir, "orders", &ordering_flags));

    wait_for_payments(dir, 5);
    drop(payment); // SIGKILL, mid-run
    services.push(Running(demo(&kafka, dir, "payment", &payment_flags)));
    // Once the restarted payment service has answered, the ordering process (saga,
    // aggregate, projection) goes the same way; started again with the same flags, it
    // places the same orders (each placed once) and resumes the sagas where they were.
    wait_for_payments(dir, 15);
    drop(ordering); // SIGKILL
    let ordering = demo(&kafka, dir, "orders", &ordering_flags);

    let output = ordering.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(stdout.contains("orders placed          40"), "{stdout}");
    for service in services {
        assert!(terminate(service), "a service did not stop cleanly");
    }
    assert!(terminate(server));
    // The services created the demo's topics on the empty server, with the demo's
    // partition count.
    for topic in TOPICS {
        let described = keel.ok(&["topics", "describe", topic], "");
        let partitions = described
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count();
        assert_eq!(partitions, 3, "{topic}: {described}");
    }
}
