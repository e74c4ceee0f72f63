//! The decision table, one request per line, through the layer and a route that reports the
//! role it saw.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use tower::ServiceExt;

use super::*;
use crate::access::CallerRole;

/// SHA-256 of "admin-token" and "reader-token".
fn tokens() -> Tokens {
    let hash = |token: &str| {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let admin = HttpToken::parse(&format!("ops:admin:{}", hash("admin-token"))).unwrap();
    let reader = HttpToken::parse(&format!("grafana:read-only:{}", hash("reader-token"))).unwrap();
    Tokens::new(vec![admin, reader], false)
}

fn app(tokens: Tokens) -> Router {
    let role = |CallerRole(role): CallerRole| async move { role.as_str() };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/api/x", get(role).post(role))
        .layer(axum::middleware::from_fn_with_state(tokens, authenticate))
}

async fn check(
    tokens: Tokens,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    expected: (u16, &str),
) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app(tokens)
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, expected.0, "{method} {path} {headers:?}: {body}");
    assert!(
        body.contains(expected.1),
        "{method} {path} {headers:?}: {body}"
    );
}

#[tokio::test]
async fn requests_are_decided_as_the_table_says() {
    let none = Tokens::default;
    let basic = |token: &str| format!("Basic {}", BASE64.encode(format!("anyone:{token}")));
    check(none(), "GET", "/api/x", &[], (200, "admin")).await;
    check(
        none(),
        "POST",
        "/api/x",
        &[("origin", "http://127.0.0.1:8080")],
        (200, "admin"),
    )
    .await;
    check(
        none(),
        "POST",
        "/api/x",
        &[("origin", "https://evil.example")],
        (403, "another origin"),
    )
    .await;
    check(
        none(),
        "POST",
        "/api/x",
        &[("sec-fetch-site", "cross-site")],
        (403, "another origin"),
    )
    .await;
    check(
        none(),
        "GET",
        "/api/x",
        &[("origin", "https://evil.example")],
        (200, "admin"),
    )
    .await;
    check(tokens(), "GET", "/api/x", &[], (401, "valid token")).await;
    check(tokens(), "GET", "/health", &[], (200, "ok")).await;
    check(
        tokens(),
        "GET",
        "/api/x",
        &[("authorization", "Bearer wrong")],
        (401, "valid token"),
    )
    .await;
    check(
        tokens(),
        "GET",
        "/api/x",
        &[("authorization", "Bearer admin-token")],
        (200, "admin"),
    )
    .await;
    check(
        tokens(),
        "POST",
        "/api/x",
        &[("authorization", "Bearer reader-token")],
        (200, "read-only"),
    )
    .await;
    check(
        tokens(),
        "GET",
        "/api/x",
        &[("authorization", &basic("reader-token"))],
        (200, "read-only"),
    )
    .await;
    check(
        tokens(),
        "GET",
        "/api/x",
        &[("authorization", &basic("admin-token"))],
        (200, "admin"),
    )
    .await;
}

#[tokio::test]
async fn a_login_session_carries_its_token_s_role_and_a_browser_without_one_is_sent_to_log_in() {
    let tokens = tokens();
    let reader = tokens.find(b"reader-token").unwrap().clone();
    let cookie = format!("theme=dark; keel_session={}", tokens.open_session(&reader));
    let html = ("accept", "text/html,application/xhtml+xml");
    check(
        tokens.clone(),
        "GET",
        "/api/x",
        &[("cookie", &cookie)],
        (200, "read-only"),
    )
    .await;
    check(
        tokens.clone(),
        "GET",
        "/api/x",
        &[("cookie", "keel_session=forged")],
        (401, "valid token"),
    )
    .await;
    check(tokens.clone(), "GET", "/api/x", &[html], (303, "")).await;
    check(tokens.clone(), "GET", "/login", &[html], (404, "")).await;
    check(tokens, "GET", "/console/console.css", &[], (404, "")).await;
}

#[test]
fn token_settings_name_what_is_wrong() {
    let check = |text: &str, expected: &str| {
        let error = HttpToken::parse(text).unwrap_err();
        assert!(error.contains(expected), "{text}: {error}");
    };
    check("ops", "name:role:sha256");
    check("ops:root:00", "role 'root'");
    check("ops:admin:abc", "64 hex digits");
    check(&format!(":admin:{}", "0".repeat(64)), "needs a name");
}
