//! The harness the server's client tests share: [`Running`], a [`Server`] serving on a tokio
//! task until the test stops it, [`http_get`] / [`http_get_from`], a blocking HTTP/1.1 request over a raw
//! socket (the limit tests need exactly what is sent), and [`curl`], the client nobody here
//! wrote for the HTTPS tests.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use keel_server::{BoundAddrs, ServeError, Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running on a task, with the addresses it bound.
pub(crate) struct Running {
    pub(crate) bound: BoundAddrs,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Opens `config`'s data directory and serves it; returns once every listener is bound.
    pub(crate) async fn start(config: ServerConfig) -> Running {
        let server = Server::open(config).unwrap();
        let (ready_sender, ready) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(
            async {
                let _ = stopped.await;
            },
            move |bound| {
                let _ = ready_sender.send(bound);
            },
        ));
        let bound = ready.await.expect("server ready");
        Running { bound, stop, task }
    }

    /// Shuts the server down and fails the test unless it stopped cleanly.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().expect("clean shutdown");
    }
}

/// `GET path` with `Connection: close`: the whole response (head and body) as text.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> String {
    http_get_from(addr, "localhost", path)
}

/// [`http_get`] with the `Host` header a browser would send for `host`.
pub(crate) fn http_get_from(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `curl` of `url` (with `args` first): its exit code, and the status line's code and the
/// body when it got an answer.
pub(crate) fn curl(args: &[&str], url: &str) -> (i32, String) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(["--write-out", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout)
}
