//! Opening the data directory, running the listeners, and the graceful shutdown sequence.
//!
//! Shutdown, in order: stop accepting connections; let in-flight requests finish for at
//! most the grace period; sync every partition; release the data directory's lock (when the
//! log is dropped). An error in any step is returned, never swallowed, so `keel serve` exits
//! non-zero when it could not stop cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_kafka::group::GroupCoordinator;
use keel_kafka::{Broker, BrokerMetrics, KafkaListener};
use keel_log::{AppendError, Log, OpenError};
use keel_runtime::EmbeddedBus;
use keel_schema::{Registry, RegistryError};
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{ConfigError, ServerConfig};
use crate::{http, schema_registry};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be opened (locked by another process, unreadable, …).
    #[error("cannot open data directory {path}: {source}")]
    Open {
        /// The data directory.
        path: String,
        /// Why.
        source: OpenError,
    },
    /// A listener could not bind its address.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A listener failed while serving.
    #[error("{what} listener failed: {source}")]
    Serve {
        /// Which listener.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The schema registry's topic could not be opened or replayed.
    #[error("cannot open the schema registry: {0}")]
    Registry(#[from] RegistryError),
    /// The final sync of the log failed: recently appended records may not be durable.
    #[error("final sync of the log failed: {0}")]
    Flush(#[from] AppendError),
}

/// An open data directory, ready to serve.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    bus: Arc<EmbeddedBus>,
    registry: Option<Arc<Registry>>,
}

/// The addresses the listeners actually bound (port 0 in the config becomes a real port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddrs {
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The Kafka listener, when one is configured.
    pub kafka: Option<SocketAddr>,
    /// The schema registry listener, when one is configured.
    pub registry: Option<SocketAddr>,
}

impl Server {
    /// Validates the configuration and opens (recovering) the log, taking its lock.
    pub fn open(config: ServerConfig) -> Result<Server, ServeError> {
        config.validate()?;
        let log = Log::open(&config.data_dir).map_err(|source| ServeError::Open {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let registry = match config.registry_addr {
            Some(_) => Some(Arc::new(Registry::open(&log)?)),
            None => None,
        };
        let bus = Arc::new(EmbeddedBus::new(Arc::new(log)));
        Ok(Server {
            config,
            bus,
            registry,
        })
    }

    /// The bus over the served log: the same log, metrics and groups the listeners use.
    pub fn bus(&self) -> &Arc<EmbeddedBus> {
        &self.bus
    }

    /// Binds every listener, calls `on_ready` with the bound addresses, serves until
    /// `shutdown` completes, then shuts down gracefully (see the module docs).
    ///
    /// Cancel safety: dropping the returned future aborts serving without the final sync;
    /// records appended with `fsync = always` are durable regardless, others may not be.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        on_ready: impl FnOnce(BoundAddrs),
    ) -> Result<(), ServeError> {
        let http_listener = bind("HTTP", self.config.http_addr).await?;
        let kafka_listener = match self.config.kafka_addr {
            Some(addr) => {
                Some(
                    KafkaListener::bind(addr)
                        .await
                        .map_err(|source| ServeError::Bind {
                            what: "Kafka",
                            addr,
                            source,
                        })?,
                )
            }
            None => None,
        };
        let kafka_addr = kafka_listener
            .as_ref()
            .map(|listener| {
                listener.local_addr().map_err(|source| ServeError::Serve {
                    what: "Kafka",
                    source,
                })
            })
            .transpose()?;
        let registry_listener = match self.config.registry_addr {
            Some(addr) => Some(bind("schema registry", addr).await?),
            None => None,
        };
        let bound = BoundAddrs {
            http: local_addr("HTTP", &http_listener)?,
            kafka: kafka_addr,
            registry: registry_listener
                .as_ref()
                .map(|listener| local_addr("schema registry", listener))
                .transpose()?,
        };
        let kafka_metrics = BrokerMetrics::default();
        let mut registry = MetricsRegistry::default();
        self.bus.metrics().register(&mut registry);
        if kafka_listener.is_some() {
            kafka_metrics.register(&mut registry);
        }
        let (stop_sender, stop) = watch::channel(false);
        let http_server = tokio::spawn(serve_http(
            http_listener,
            http::router(self.bus.clone(), Arc::new(registry)),
            stop.clone(),
        ));
        let registry_server =
            registry_listener
                .zip(self.registry.clone())
                .map(|(listener, registry)| {
                    tokio::spawn(serve_http(
                        listener,
                        schema_registry::router(registry),
                        stop.clone(),
                    ))
                });
        let kafka_server = kafka_listener.zip(kafka_addr).map(|(listener, addr)| {
            let config = self.config.kafka.clone();
            let node = config.node_address(addr);
            let log = self.bus.log().clone();
            let groups = Arc::new(GroupCoordinator::start(
                log.clone(),
                self.config.groups.clone(),
            ));
            let broker = Arc::new(
                Broker::new(log, config, node)
                    .with_group_hook(groups)
                    .with_metrics(kafka_metrics),
            );
            let mut stop = stop.clone();
            tokio::spawn(listener.serve(broker, async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }))
        });
        tracing::info!(http = %bound.http, kafka = ?bound.kafka, data_dir = %self.config.data_dir.display(), "keel serve ready");
        on_ready(bound);

        shutdown.await;
        tracing::info!("shutdown requested: no new connections; finishing in-flight requests");
        let _ = stop_sender.send(true);
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(mut kafka_server) = kafka_server {
            match tokio::time::timeout_at(deadline, &mut kafka_server).await {
                Ok(Ok(())) => {}
                Ok(Err(panic)) => tracing::error!(%panic, "Kafka listener panicked"),
                Err(_) => {
                    tracing::warn!(
                        grace_ms = self.config.shutdown_grace_ms,
                        "grace period over: closing open Kafka connections"
                    );
                    kafka_server.abort();
                }
            }
        }
        if let Some(mut registry_server) = registry_server
            && tokio::time::timeout_at(deadline, &mut registry_server)
                .await
                .is_err()
        {
            tracing::warn!("grace period over: closing open schema registry connections");
            registry_server.abort();
        }
        let served = match tokio::time::timeout_at(deadline, http_server).await {
            Ok(joined) => joined.unwrap_or_else(|panic| {
                Err(std::io::Error::other(format!(
                    "HTTP server panicked: {panic}"
                )))
            }),
            Err(_) => {
                tracing::warn!(
                    grace_ms = self.config.shutdown_grace_ms,
                    "grace period over: closing open HTTP connections"
                );
                Ok(())
            }
        };
        // Sync before reporting a listener error: durability comes first either way.
        let log = self.bus.log().clone();
        tokio::task::spawn_blocking(move || log.flush())
            .await
            .map_err(|panic| AppendError::Io(std::io::Error::other(panic.to_string())))??;
        served.map_err(|source| ServeError::Serve {
            what: "HTTP",
            source,
        })?;
        tracing::info!("keel serve stopped: log synced");
        Ok(())
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

fn local_addr(what: &'static str, listener: &TcpListener) -> Result<SocketAddr, ServeError> {
    listener
        .local_addr()
        .map_err(|source| ServeError::Serve { what, source })
}

/// Serves HTTP until `stop` turns true, then waits for open requests (axum's graceful mode).
async fn serve_http(
    listener: TcpListener,
    routes: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Connection info lets the audit log name who replayed or purged.
    let app = routes.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
}
