//! Tokens and the cross-origin check on both HTTP listeners of a running server: without a
//! token the API and the registry answer 401 (the console's browser asks for a login), a
//! read-only token reads but is refused (403) what changes state, an admin token changes
//! state, `/health` needs none, and a page on another origin cannot change state even with
//! the browser's credentials.

mod support;

use std::net::SocketAddr;

use keel_server::{HttpToken, ServerConfig};
use support::Running;

/// SHA-256 in hex, as an operator makes it with `sha256sum`.
fn sha256(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One request: the status, and the `WWW-Authenticate` header when there is one.
fn call(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("http://{addr}{path}");
    let response = match method {
        "GET" | "DELETE" => {
            let mut request = match method {
                "GET" => agent.get(&url),
                _ => agent.delete(&url),
            };
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        _ => {
            let mut request = agent.post(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .send(r#"{"schema":"{\"type\":\"string\"}"}"#)
        }
    }
    .expect("request");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_roles_and_origins_are_checked_on_both_http_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = Some("127.0.0.1:0".parse().unwrap());
    config.http_tokens = vec![
        HttpToken::parse(&format!("ops:admin:{}", sha256("admin-token"))).unwrap(),
        HttpToken::parse(&format!("grafana:read-only:{}", sha256("reader-token"))).unwrap(),
    ];
    let running = Running::start(config).await;
    let (api, registry) = (running.bound.http, running.bound.registry.unwrap());
    let checks = tokio::task::spawn_blocking(move || {
        let admin = [("authorization", "Bearer admin-token")];
        let reader = [("authorization", "Bearer reader-token")];
        let purge = "/api/dead-letters/orders.dlq/purge";
        let register = "/subjects/s-value/versions";
        let (status, challenge) = call("GET", api, "/api/topics", &[]);
        assert_eq!(status, 401);
        assert_eq!(challenge.as_deref(), Some(r#"Basic realm="keel""#));
        assert_eq!(call("GET", api, "/health", &[]).0, 200);
        assert_eq!(call("GET", api, "/api/topics", &reader).0, 200);
        assert_eq!(call("POST", api, purge, &reader).0, 403);
        let status = call("POST", api, purge, &admin).0;
        assert!(status != 401 && status != 403, "admin purge: {status}");
        // A group's deletion: refused to a reader before anything is looked up; an admin
        // reaches the handler, which finds no such group.
        assert_eq!(call("DELETE", api, "/api/groups/billing", &reader).0, 403);
        assert_eq!(call("DELETE", api, "/api/groups/billing", &admin).0, 404);
        let cross = [admin[0], ("origin", "https://evil.example")];
        assert_eq!(call("POST", api, purge, &cross).0, 403);

        assert_eq!(call("GET", registry, "/subjects", &[]).0, 401);
        assert_eq!(call("GET", registry, "/subjects", &reader).0, 200);
        assert_eq!(call("POST", registry, register, &reader).0, 403);
        assert_eq!(call("POST", registry, register, &admin).0, 200);
    });
    checks.await.unwrap();
    running.stop().await;
}
