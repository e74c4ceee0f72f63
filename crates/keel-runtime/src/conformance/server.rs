//! [`PrivateServer`]: a broker process of a test's own — Redis, NATS or RabbitMQ started
//! from the binary `scripts/services` installed, on a free port, in a data directory of the
//! test's — so a check may stop and start the server mid-run without touching the shared
//! servers other tests use.
//!
//! The server runs in a process group of its own and a kill reaches the whole group:
//! `rabbitmq-server` is a script that starts the Erlang VM as its child.
//!
//! Not here: what a server's command line is (each transport's test builds it), the checks
//! run against it (`keel_sql::conformance::restart`).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a check stops its server before starting it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM to the server's process, waiting for its own shutdown (at most
    /// [`STOP_WAIT`]).
    Graceful,
    /// SIGKILL to the server's process group: what it wrote before is all it has.
    Kill,
}

/// The longest a graceful stop or a start may take: a private RabbitMQ node took 16–51 s to
/// start here at load 16–20, and once more than 60 s.
pub const STOP_WAIT: Duration = Duration::from_secs(120);

/// Makes the server's command afresh for every start (a `Command` runs once).
pub type Launch = Box<dyn Fn() -> Command + Send + Sync>;

/// A server process the test owns; dropped, it is killed.
pub struct PrivateServer {
    name: String,
    launch: Launch,
    /// The port that answers once the server is up.
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl std::fmt::Debug for PrivateServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateServer")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A TCP port on 127.0.0.1 nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateServer {
    /// Starts `launch`'s command, its output appended to `log`, and waits until `port`
    /// accepts connections.
    pub async fn start(name: &str, port: u16, log: PathBuf, launch: Launch) -> PrivateServer {
        let mut server = PrivateServer {
            name: name.to_string(),
            launch,
            port,
            log,
            child: None,
        };
        server.spawn().await;
        server
    }

    /// The port the server answers on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as `stop` says, then starts it again on the same port and data.
    pub async fn restart(&mut self, stop: Stop) {
        self.stop(stop).await;
        self.spawn().await;
    }

    /// Stops the server as `stop` says and reaps it.
    pub async fn stop(&mut self, stop: Stop) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        match stop {
            Stop::Kill => signal(&child, "-KILL", true),
            Stop::Graceful => signal(&child, "-TERM", false),
        }
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if child.try_wait().expect("the server's status").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                signal(&child, "-KILL", true);
                panic!("{} did not stop within {STOP_WAIT:?} of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The port is free once nothing accepts there.
        until_port(self.port, false, &self.name, &self.log).await;
    }

    async fn spawn(&mut self) {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server's log");
        let child = (self.launch)()
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        self.child = Some(child);
        until_port(self.port, true, &self.name, &self.log).await;
        eprintln!(
            "{}: answering on port {} {:?} after its start",
            self.name,
            self.port,
            started.elapsed()
        );
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "-KILL", true);
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (`-KILL`, `-TERM`) to `child`, or to its whole process group.
fn signal(child: &Child, signal: &str, group: bool) {
    let target = if group {
        format!("-{}", child.id())
    } else {
        child.id().to_string()
    };
    // The process may have exited already: nothing to report then.
    let _ = Command::new("kill")
        .args([signal, "--", &target])
        .stderr(Stdio::null())
        .status();
}

/// Waits until `port` accepts connections (`open`) or refuses them, failing after
/// [`STOP_WAIT`] with the end of the server's log.
async fn until_port(port: u16, open: bool, name: &str, log: &PathBuf) {
    let deadline = Instant::now() + STOP_WAIT;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() != open {
        if Instant::now() >= deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            panic!(
                "{name}: port {port} not {} within {STOP_WAIT:?}; its log ends:\n{}",
                if open { "open" } else { "closed" },
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
