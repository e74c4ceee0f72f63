//! The metrics listener of a process that is not a server (`keel relay --metrics`), driven by
//! curl: over HTTPS with a token it serves the registry it was given; without the token
//! `/metrics` is refused while `/health` stays open and answers what the process's check
//! says; plain HTTP to the HTTPS port gets the 400 that says to use https://.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_listener::testing::self_signed;
use keel_server::{HealthCheck, HttpToken, MetricsListener, MetricsListenerConfig};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::json;
use support::curl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_its_registry_over_https_to_token_holders_only() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, ca) = self_signed(dir.path());
    let digest = ring::digest::digest(&ring::digest::SHA256, b"scraper-token");
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let mut config = MetricsListenerConfig::new("127.0.0.1:0".parse().unwrap());
    config.tls = Some(identity);
    config.tokens = vec![HttpToken::parse(&format!("prometheus:read-only:{hex}")).unwrap()];
    let mut registry = Registry::default();
    let published: Counter = Counter::default();
    registry.register("relay_published", "Events published", published.clone());
    published.inc_by(42);
    let healthy = Arc::new(AtomicBool::new(true));
    let health: HealthCheck = {
        let healthy = healthy.clone();
        Arc::new(move || {
            let healthy = healthy.load(Ordering::SeqCst);
            (
                healthy,
                json!({ "status": if healthy { "ok" } else { "failing" } }),
            )
        })
    };
    let listener = MetricsListener::start(config, registry, health)
        .await
        .unwrap();
    let addr = listener.addr();
    let ca = ca.to_str().unwrap().to_owned();
    let healthy_flag = healthy.clone();
    tokio::task::spawn_blocking(move || {
        let https = |path: &str| format!("https://{addr}{path}");
        let trusted = ["--cacert", ca.as_str()];
        let bearer = "Authorization: Bearer scraper-token";
        let (code, out) = curl(&["--cacert", &ca, "--header", bearer], &https("/metrics"));
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("relay_published_total 42"), "{out}");
        assert!(
            out.contains("keel_http_connections"),
            "its own connections: {out}"
        );
        assert!(out.ends_with("\n200"), "{out}");

        let (code, out) = curl(&trusted, &https("/metrics"));
        assert_eq!((code, out.ends_with("\n401")), (0, true), "no token: {out}");
        let wrong = "Authorization: Bearer another-token";
        let (code, out) = curl(&["--cacert", &ca, "--header", wrong], &https("/metrics"));
        assert_eq!(
            (code, out.ends_with("\n401")),
            (0, true),
            "a wrong token: {out}"
        );

        let (code, out) = curl(&trusted, &https("/health"));
        assert_eq!(code, 0, "{out}");
        assert!(
            out.starts_with(r#"{"status":"ok"}"#) && out.ends_with("\n200"),
            "{out}"
        );
        healthy_flag.store(false, Ordering::SeqCst);
        let (_, out) = curl(&trusted, &https("/health"));
        assert!(
            out.starts_with(r#"{"status":"failing"}"#) && out.ends_with("\n503"),
            "{out}"
        );

        let (code, out) = curl(&[], &format!("http://{addr}/metrics"));
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("this listener speaks HTTPS only") && out.ends_with("\n400"),
            "{out}"
        );
    })
    .await
    .unwrap();
    listener.stop(Duration::from_secs(1)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens once stopped"
    );
}
