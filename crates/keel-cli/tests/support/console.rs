//! `keel console --brokers` started by a test, and the plain HTTP requests the console
//! tests make of it or of `keel serve`. Included (`#[path]`) by the test files that need it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::Keel;

impl Keel {
    /// Starts `keel console --brokers BROKERS EXTRA` on a free port; returns it and its
    /// address.
    pub(crate) fn start_console(&self, brokers: &str, extra: &[&str]) -> (Child, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["console", "--brokers", brokers, "--http", "127.0.0.1:0"])
            .args(extra)
            .env("KEEL_DATA", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keel console");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listening line");
        let http = line
            .trim()
            .strip_prefix("keel console listening http=")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .expect("an address");
        (child, http)
    }
}

/// `GET path`: the status and the body.
pub(crate) fn get(http: SocketAddr, path: &str) -> (u16, String) {
    call(ureq::get(format!("http://{http}{path}")))
}

/// `DELETE path`: the status and the body.
pub(crate) fn delete(http: SocketAddr, path: &str) -> (u16, String) {
    call(ureq::delete(format!("http://{http}{path}")))
}

/// Sends `request` without a body: the status and the body, whatever the status.
fn call(request: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> (u16, String) {
    let response = request
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("request");
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().expect("body"))
}

/// `GET path`, which must answer 200 with JSON.
pub(crate) fn get_json(http: SocketAddr, path: &str) -> Value {
    let (status, body) = get(http, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    json_line(&body)
}

/// `GET path`, which must answer 200: the page.
pub(crate) fn get_page(http: SocketAddr, path: &str) -> String {
    let (status, body) = get(http, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// `POST path` with a JSON body, which must answer 2xx (200, or 201 for what it stores) with JSON.
pub(crate) fn post_json(http: SocketAddr, path: &str, body: &Value) -> Value {
    let (status, text) = send_json(ureq::post(format!("http://{http}{path}")), body);
    assert!((200..300).contains(&status), "POST {path}: {status} {text}");
    json_line(&text)
}

/// `PATCH path` with a JSON body: the status and the body.
pub(crate) fn patch_json(http: SocketAddr, path: &str, body: &Value) -> (u16, String) {
    send_json(ureq::patch(format!("http://{http}{path}")), body)
}

/// Sends `request` with a JSON body: the status and the body, whatever the status.
fn send_json(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    body: &Value,
) -> (u16, String) {
    let response = request
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .expect("request");
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().expect("body"))
}

/// `text` as JSON, or a failure quoting it.
pub(crate) fn json_line(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
