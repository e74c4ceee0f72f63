//! HTTPS on both HTTP listeners of a running server, driven by curl (a client nobody here
//! wrote): a request over TLS that trusts the server's certificate is served; a plain-HTTP
//! request to the same port gets a 400 that says to use https://; the console's login
//! cookie is `Secure` there; a certificate that does not parse stops the server from
//! starting, naming the listener.

mod support;

use std::net::SocketAddr;

use keel_listener::testing::self_signed;
use keel_server::{HttpToken, ServeError, Server, ServerConfig, TlsIdentity};
use support::{Running, curl};

fn url(scheme: &str, addr: SocketAddr, path: &str) -> String {
    format!("{scheme}://{addr}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_http_listeners_speak_https_and_refuse_plain_http_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, ca) = self_signed(dir.path());
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = Some("127.0.0.1:0".parse().unwrap());
    config.http_tls = Some(identity);
    let running = Running::start(config).await;
    let (api, registry) = (running.bound.http, running.bound.registry.unwrap());
    let ca = ca.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let trust = ["--cacert", ca.as_str()];
        let (code, out) = curl(&trust, &url("https", api, "/health"));
        assert_eq!(code, 0, "{out}");
        assert!(out.ends_with("\n200"), "{out}");
        let (code, out) = curl(&trust, &url("https", api, "/api/topics"));
        assert_eq!((code, out.ends_with("\n200")), (0, true), "{out}");
        let (code, out) = curl(&trust, &url("https", registry, "/subjects"));
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("[]") && out.ends_with("\n200"), "{out}");
        // Without the certificate as a trust anchor curl refuses the server (exit 60).
        assert_eq!(curl(&[], &url("https", api, "/health")).0, 60);
        for addr in [api, registry] {
            let (code, out) = curl(&[], &url("http", addr, "/health"));
            assert_eq!(code, 0, "{out}");
            assert!(
                out.contains("this listener speaks HTTPS only: use an https:// URL.")
                    && out.ends_with("\n400"),
                "{out}"
            );
        }
    })
    .await
    .unwrap();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_cookie_is_secure_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, ca) = self_signed(dir.path());
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = None;
    config.http_tls = Some(identity);
    let digest = ring::digest::digest(&ring::digest::SHA256, b"admin-token");
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    config.http_tokens = vec![HttpToken::parse(&format!("ops:admin:{hex}")).unwrap()];
    let running = Running::start(config).await;
    let api = running.bound.http;
    let ca = ca.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let login = [
            "--cacert",
            ca.as_str(),
            "--include",
            "--data",
            "token=admin-token",
        ];
        let (code, out) = curl(&login, &url("https", api, "/login"));
        assert_eq!(code, 0, "{out}");
        let cookie = out
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_else(|| panic!("no cookie: {out}"));
        for attribute in ["keel_session=", "HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(out.ends_with("\n303"), "{out}");
    })
    .await
    .unwrap();
    running.stop().await;
}

#[test]
fn a_certificate_that_does_not_parse_is_refused_by_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = None;
    config.kafka_addr = None;
    config.http_tls = Some(TlsIdentity {
        cert_pem: b"not a certificate".to_vec(),
        key_pem: b"not a key".to_vec(),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(Server::open(config).unwrap().run(async {}, |_| {}))
        .unwrap_err();
    assert!(
        matches!(error, ServeError::Tls { what: "HTTP", .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("cannot use the HTTP listener's TLS certificate"),
        "{error}"
    );
}
