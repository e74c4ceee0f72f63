//! The HTTP listener of a Keel process that serves no data directory — `keel relay`, run
//! beside a service — so Prometheus scrapes it the way it scrapes `keel serve`: `GET
//! /metrics` (the process's registry, OpenMetrics text) and `GET /health` (a JSON status
//! the process computes at each request).
//!
//! It is `keel serve`'s HTTP listener cut down to those two routes, with everything that
//! makes that one safe on a network: the connection cap and the header-read and idle
//! timeouts (`http_listener.rs`), HTTPS with a certificate, bearer tokens (`/health` stays
//! open, as on the server, for load balancers' probes) and the `Host` allow-list against DNS
//! rebinding. Its own connections are counted as `keel_http_*` in the registry it serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use keel_listener::ListenerMetrics;
use keel_listener::tls::TlsIdentity;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::allowed_hosts::AllowedHosts;
use crate::authentication::{HttpToken, Tokens};
use crate::http_listener::{self, HttpLimits};
use crate::server::{ServeError, bind, guarded, local_addr, server_tls};

/// What `/health` answers: whether the process is doing its work, and what to show.
pub type HealthCheck = Arc<dyn Fn() -> (bool, serde_json::Value) + Send + Sync>;

/// Where and how a [`MetricsListener`] serves.
#[derive(Debug, Clone)]
pub struct MetricsListenerConfig {
    /// The address to bind; a loopback address unless other machines must scrape it.
    pub addr: SocketAddr,
    /// Connection cap and timeouts.
    pub limits: HttpLimits,
    /// Certificate and key: HTTPS only when set.
    pub tls: Option<TlsIdentity>,
    /// Tokens `/metrics` requires (any role); none: open to whoever reaches the address.
    pub tokens: Vec<HttpToken>,
}

impl MetricsListenerConfig {
    /// Plain HTTP on `addr` with the default limits and no tokens.
    pub fn new(addr: SocketAddr) -> MetricsListenerConfig {
        MetricsListenerConfig {
            addr,
            limits: HttpLimits::default(),
            tls: None,
            tokens: Vec::new(),
        }
    }
}

/// A running metrics listener; [`MetricsListener::stop`] ends it.
pub struct MetricsListener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl MetricsListener {
    /// Binds `config.addr` and serves `registry` at `/metrics` and `health` at `/health`
    /// until stopped. Warns (as `keel serve` does) when the address is reachable from other
    /// machines and no token is required.
    pub async fn start(
        config: MetricsListenerConfig,
        mut registry: Registry,
        health: HealthCheck,
    ) -> Result<MetricsListener, ServeError> {
        let tls = config
            .tls
            .as_ref()
            .map(|identity| server_tls("metrics", identity).map(TlsAcceptor::from))
            .transpose()?;
        let listener = bind("metrics", config.addr).await?;
        let addr = local_addr("metrics", &listener)?;
        let connections = ListenerMetrics::default();
        connections.register(&mut registry, "keel_http", "HTTP metrics listener");
        let tokens = Tokens::new(config.tokens, tls.is_some());
        if !addr.ip().is_loopback() && tokens.is_empty() {
            tracing::warn!(%addr, "SECURITY: the metrics listener on {addr} is reachable from other machines and asks nobody who they are; bind it to 127.0.0.1 or give it tokens (docs/security.md)");
        }
        let routes = Router::new()
            .route(
                "/health",
                get(move || {
                    let health = health.clone();
                    async move { answer_health(health.as_ref()) }
                }),
            )
            .route("/metrics", get(crate::http::metrics))
            .with_state(Arc::new(registry));
        let routes = guarded(routes, &tokens, AllowedHosts::new(addr, &[]));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(http_listener::serve(
            listener,
            config.limits,
            connections,
            tls,
            routes,
            stopped,
        ));
        tracing::info!(%addr, "serving /metrics and /health");
        Ok(MetricsListener { addr, stop, server })
    }

    /// The bound address (the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish for at most `grace`, then closes the rest.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, &mut self.server).await.is_err() {
            self.server.abort();
        }
    }
}

/// `200` with the check's JSON when it says healthy, `503` with it otherwise.
fn answer_health(check: &(dyn Fn() -> (bool, serde_json::Value) + Send + Sync)) -> Response {
    let (healthy, body) = check();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
