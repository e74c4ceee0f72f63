//! Serving an axum router on a `keel-listener` listener with HTTP/1.1 limits: a connection
//! cap (the idlest connection makes room for a newcomer), a header-read timeout that also
//! bounds a kept-alive connection's wait for its next request, and an inactivity timeout
//! (nothing read or written) that drops a client stalling in a body or a response.
//!
//! `axum::serve` has none of these; hyper's connection builder has the header timeout, the
//! rest is `keel-listener`'s.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use keel_listener::{Activity, CloseReason, Connection, Listener, ListenerLimits, ListenerMetrics};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once; the idlest is evicted for a newcomer.
    pub connections_max: usize,
    /// A request's headers must arrive within this, counted from when the connection starts
    /// waiting for them (so it is also how long a kept-alive connection may sit idle).
    pub header_read_timeout_ms: u64,
    /// A connection on which nothing was read or written for this long is closed.
    pub idle_ms: u64,
}

/// Default most connections per HTTP listener: operators and scrapers, not the public.
pub const HTTP_CONNECTIONS_MAX_DEFAULT: usize = 1_024;
/// Default header-read timeout: a browser or a scraper sends its headers in one packet.
pub const HTTP_HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default inactivity timeout.
pub const HTTP_IDLE_MS_DEFAULT: u64 = 60_000;

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            connections_max: HTTP_CONNECTIONS_MAX_DEFAULT,
            header_read_timeout_ms: HTTP_HEADER_READ_TIMEOUT_MS_DEFAULT,
            idle_ms: HTTP_IDLE_MS_DEFAULT,
        }
    }
}

/// Serves `routes` on `listener` until `stop` turns true, then lets open requests finish
/// (the caller bounds how long).
pub(crate) async fn serve(
    listener: Listener,
    limits: HttpLimits,
    metrics: ListenerMetrics,
    routes: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let listener_limits = ListenerLimits {
        connections_max: limits.connections_max,
    };
    let handler =
        move |connection: Connection| serve_connection(connection, limits, routes.clone());
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    listener
        .serve(listener_limits, metrics, handler, shutdown)
        .await;
}

async fn serve_connection(connection: Connection, limits: HttpLimits, routes: axum::Router) {
    let Connection {
        stream,
        peer,
        guard,
        mut stopping,
    } = connection;
    // Connection info lets the audit log name who replayed or purged.
    let app = routes.layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)));
    let io = TokioIo::new(Tracked {
        stream,
        activity: guard.activity(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    let idle = Duration::from_millis(limits.idle_ms);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(error) = served {
                // A header-read timeout surfaces here as hyper's own error.
                if error.is_timeout() {
                    guard.metrics().closed_by(CloseReason::RequestTimeout);
                }
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
        }
        // Counted by the listener, which chose this connection.
        _ = guard.evicted() => {}
        _ = guard.inactive_for(idle) => guard.metrics().closed_by(CloseReason::Idle),
        _ = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A socket that records every read and write as activity of its connection.
struct Tracked {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
