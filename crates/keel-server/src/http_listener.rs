//! Serving an axum router on a `keel-listener` listener with HTTP/1.1 limits: a connection
//! cap (the idlest connection makes room for a newcomer), a header-read timeout that also
//! bounds a kept-alive connection's wait for its next request, and an inactivity timeout
//! (nothing read or written, and no request being answered) that drops a client stalling
//! in a body or a response. A request whose answer takes longer to compute than the
//! inactivity timeout (a page reading hundreds of a cluster's topics) keeps its connection,
//! and the connection is not evicted for a newcomer meanwhile.
//!
//! `axum::serve` has none of these; hyper's connection builder has the header timeout, the
//! rest is `keel-listener`'s.
//!
//! With a TLS configuration the listener speaks HTTPS only: the handshake must finish within
//! the header-read timeout, and a client that speaks plain HTTP to it gets a plain-text
//! `400` saying so (as nginx does) instead of a reset it cannot explain.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use keel_listener::tls::Opening;
use keel_listener::{
    Activity, CloseReason, Connection, Listener, ListenerLimits, ListenerMetrics, SecurityMismatch,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once; the idlest is evicted for a newcomer.
    pub connections_max: usize,
    /// A request's headers must arrive within this, counted from when the connection starts
    /// waiting for them (so it is also how long a kept-alive connection may sit idle).
    pub header_read_timeout_ms: u64,
    /// A connection on which nothing was read or written for this long, with no request
    /// being answered, is closed.
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

/// The answer to a plain-HTTP request on an HTTPS listener.
const PLAINTEXT_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 54\r\n\r\nthis listener speaks HTTPS only: use an https:// URL.\n";

/// Serves `routes` on `listener` (over TLS when `tls` is set) until `stop` turns true, then
/// lets open requests finish (the caller bounds how long).
pub(crate) async fn serve(
    listener: Listener,
    limits: HttpLimits,
    metrics: ListenerMetrics,
    tls: Option<TlsAcceptor>,
    routes: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let listener_limits = ListenerLimits {
        connections_max: limits.connections_max,
    };
    let handler = move |connection: Connection| {
        serve_connection(connection, limits, tls.clone(), routes.clone())
    };
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    listener
        .serve(listener_limits, metrics, handler, shutdown)
        .await;
}

async fn serve_connection(
    connection: Connection,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    routes: axum::Router,
) {
    let Connection {
        stream,
        peer,
        guard,
        stopping,
    } = connection;
    let header_read_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let tracked = Tracked {
        stream,
        activity: guard.activity(),
    };
    // Connection info lets the audit log name who replayed or purged.
    let app = routes
        .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)))
        .layer(axum::middleware::from_fn_with_state(
            tracked.activity.clone(),
            answer_in_flight,
        ));
    let Some(tls) = tls else {
        return serve_http(tracked, peer, app, limits, guard, stopping).await;
    };
    let handshake = async {
        match keel_listener::tls::opening(&tracked.stream).await? {
            Opening::Handshake => tls.accept(tracked).await.map(Some),
            Opening::Closed => Ok(None),
            Opening::Plaintext { .. } => {
                guard
                    .metrics()
                    .security_mismatch(SecurityMismatch::PlaintextOnTls);
                let mut stream = tracked.stream;
                stream.write_all(PLAINTEXT_REFUSAL).await?;
                stream.shutdown().await?;
                Ok(None)
            }
        }
    };
    match tokio::time::timeout(header_read_timeout, handshake).await {
        Ok(Ok(Some(stream))) => serve_http(stream, peer, app, limits, guard, stopping).await,
        Ok(Ok(None)) => {
            tracing::debug!(%peer, "plain HTTP on the HTTPS listener refused, or nothing sent")
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => guard.metrics().closed_by(CloseReason::RequestTimeout),
    }
}

/// HTTP/1.1 over one connection's byte stream (the socket, or TLS over it) until the client
/// leaves, a limit closes it or the listener stops.
async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    app: axum::Router,
    limits: HttpLimits,
    guard: keel_listener::ConnectionGuard,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
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

/// Most bytes of a request body, read whole before the request is handled. Above every
/// route's own limit (axum's 2 MiB for the operator API's extractors, the schema registry's
/// [`keel_schema::limits::REQUEST_BYTES_MAX`]), so a body over a route's limit is refused by
/// that route, in its API's error format; only a larger one meets this plain refusal.
const REQUEST_BODY_BYTES_MAX: usize = 2 * keel_schema::limits::REQUEST_BYTES_MAX;

/// Reads the request's body whole — a client stalling in it meets the inactivity timeout —
/// then marks the request in flight until its answer is ready, so an answer that takes
/// longer to compute than that timeout does not cost the connection.
async fn answer_in_flight(
    State(activity): State<Activity>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(error) => {
            let reason = format!(
                "the request body could not be read whole (at most {REQUEST_BODY_BYTES_MAX} bytes): {error}"
            );
            return (StatusCode::PAYLOAD_TOO_LARGE, reason).into_response();
        }
    };
    let _in_flight = activity.in_flight();
    next.run(Request::from_parts(parts, Body::from(body))).await
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
