//! The HTTP listeners' limits against raw sockets: a client that sends its headers too
//! slowly is dropped at the header-read timeout, one that stalls in its body at the
//! inactivity timeout, and at the connection cap the idlest connection makes room, so `/health` keeps
//! answering through a flood of idle connections. Each is counted in `/metrics`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use keel_server::{HttpLimits, ServerConfig};
use support::{Running, http_get};

/// Blocks until the server closes `stream` (EOF); the time since `started`.
fn closed_after(started: Instant, mut stream: TcpStream) -> Duration {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("closed by the server, not timed out");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_silent_connections_and_floods_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.http_limits = HttpLimits {
        connections_max: 50,
        header_read_timeout_ms: 400,
        idle_ms: 800,
    };
    let running = Running::start(config).await;
    let http = running.bound.http;
    let checks = tokio::task::spawn_blocking(move || {
        // Half a request line, then nothing: dropped by the header-read timeout.
        let started = Instant::now();
        let mut slow = TcpStream::connect(http).unwrap();
        slow.write_all(b"GET /health HT").unwrap();
        let slow = closed_after(started, slow);
        assert!(
            slow >= Duration::from_millis(400) && slow < Duration::from_secs(5),
            "{slow:?}"
        );

        // Whole headers, then a body that stops: dropped when nothing moved for idle_ms.
        let mut stalled = TcpStream::connect(http).unwrap();
        stalled
            .write_all(
                b"POST /api/dead-letters/orders/replay HTTP/1.1\r\nHost: localhost\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"canary\"",
            )
            .unwrap();
        let stalled = closed_after(Instant::now(), stalled);
        assert!(
            stalled >= Duration::from_millis(800) && stalled < Duration::from_secs(5),
            "{stalled:?}"
        );

        // Three times the cap of idle connections: /health still answers at once.
        let flood: Vec<TcpStream> = (0..150)
            .map(|_| TcpStream::connect(http).unwrap())
            .collect();
        let started = Instant::now();
        let health = http_get(http, "/health");
        assert!(health.contains("200 OK"), "{health}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        drop(flood);
        let metrics = http_get(http, "/metrics");
        let count = |series: &str| {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Flooded connections leave by eviction, or at the header-read timeout when they
        // outlive it first.
        let evicted = count(
            r#"keel_http_connections_closed_by_limit_total{reason="connections_max_evicted"}"#,
        );
        let timed_out =
            count(r#"keel_http_connections_closed_by_limit_total{reason="request_timeout"}"#);
        assert!(evicted >= 1.0 && evicted + timed_out >= 100.0, "{metrics}");
        for reason in ["request_timeout", "idle_timeout"] {
            let series =
                format!(r#"keel_http_connections_closed_by_limit_total{{reason="{reason}"}}"#);
            assert!(count(&series) >= 1.0, "{series}: {metrics}");
        }
    });
    checks.await.unwrap();
    running.stop().await;
}
