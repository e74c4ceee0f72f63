//! `keel serve` started by a test: a real process on free ports, and the addresses it
//! reports on its first line. Included (`#[path]`) by the test files that run a server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::support::Keel;

impl Keel {
    /// Starts `keel serve EXTRA` on free ports with this data directory and waits for its
    /// "listening" line; returns the child and that line.
    pub(crate) fn start_server(&self, extra: &[&str]) -> (Child, String) {
        self.start_server_logging(extra, Stdio::null())
    }

    /// As [`Keel::start_server`], its logs (stderr) going to `logs`.
    pub(crate) fn start_server_logging(&self, extra: &[&str], logs: Stdio) -> (Child, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["serve", "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0"])
            .args(["--registry", "127.0.0.1:0"])
            .args(extra)
            .env("KEEL_DATA", self.dir.path())
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(logs)
            .spawn()
            .expect("spawn keel serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listening line");
        (child, line)
    }
}

/// The address `name` (`http`, `kafka`, ...) on a server's listening line.
pub(crate) fn address(line: &str, name: &str) -> SocketAddr {
    line.trim()
        .strip_prefix("keel serve listening ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .split(' ')
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} address in {line:?}"))
        .parse()
        .expect("an address")
}

/// Sends SIGTERM to `child` and returns whether it exited with status 0.
pub(crate) fn terminate(child: &mut Child) -> bool {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    child.wait().expect("wait for the process").success()
}
