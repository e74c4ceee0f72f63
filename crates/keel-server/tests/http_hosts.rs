//! The `Host` allow-list on both HTTP listeners of a running server: requests for the
//! loopback names, the bound address and a configured name are served; a request for any
//! other name — what a DNS-rebound page sends — gets `421` with a one-line reason.

mod support;

use keel_server::ServerConfig;
use support::{Running, http_get_from};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allowed_names_are_served_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.registry_addr = Some("127.0.0.1:0".parse().unwrap());
    config.http_allowed_hosts = vec!["keel.internal".into()];
    let running = Running::start(config).await;
    let (api, registry) = (running.bound.http, running.bound.registry.unwrap());
    tokio::task::spawn_blocking(move || {
        for (addr, path) in [(api, "/api/topics"), (registry, "/subjects")] {
            let port = addr.port();
            for host in [
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
                format!("Keel.Internal:{port}"),
            ] {
                let response = http_get_from(addr, &host, path);
                assert!(response.starts_with("HTTP/1.1 200"), "{host}: {response}");
            }
            let response = http_get_from(addr, &format!("attacker.example:{port}"), path);
            assert!(
                response.starts_with("HTTP/1.1 421"),
                "attacker.example: {response}"
            );
            assert!(
                response.contains(
                    "Host 'attacker.example:{port}' is not a name of this server; add it to http_allowed_hosts"
                        .replace("{port}", &port.to_string())
                        .as_str()
                ),
                "{response}"
            );
        }
    })
    .await
    .unwrap();
    running.stop().await;
}
