//! `keel serve --brokers`: the console and the operator API of a Kafka-protocol cluster
//! (Apache Kafka, Redpanda, another `keel serve`), with no data directory, Kafka listener
//! or schema registry of its own — only the HTTP listener, whose pages and API run on the
//! cluster's ports (`source.rs`) by the same code as on an owned log.
//!
//! Not here: the cluster's client (the binary builds it, so this crate never links
//! librdkafka), the pages.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keel_listener::ListenerMetrics;
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::sync::watch;

use crate::app::App;
use crate::config::{ConfigError, ServerConfig};
use crate::history::History;
use crate::server::{
    BoundAddrs, ServeError, bind, finish_http, local_addr, sample_history, spawn_http,
    warn_if_exposed,
};
use crate::source::{Cluster, Source};

/// The console of a cluster, ready to serve.
#[derive(Debug)]
pub struct ClusterServer {
    config: ServerConfig,
    cluster: Arc<Cluster>,
}

impl ClusterServer {
    /// Validates the configuration for serving `cluster`: the HTTP listener's settings
    /// apply; a Kafka listener or a schema registry is refused (they serve a data
    /// directory, which this server has none of).
    pub fn new(config: ServerConfig, cluster: Cluster) -> Result<ClusterServer, ServeError> {
        config.validate()?;
        let own_listener = [
            ("kafka_addr", config.kafka_addr),
            ("registry_addr", config.registry_addr),
        ]
        .into_iter()
        .find(|(_, addr)| addr.is_some());
        if let Some((key, _)) = own_listener {
            return Err(ConfigError {
                key,
                reason: format!(
                    "serving the console of the cluster {} leaves the Kafka protocol and the schema registry to the cluster; turn this listener off",
                    cluster.name
                ),
            }
            .into());
        }
        Ok(ClusterServer {
            config,
            cluster: Arc::new(cluster),
        })
    }

    /// Binds the HTTP listener, calls `on_ready` with its address, serves until `shutdown`
    /// completes, then lets in-flight requests finish within the grace period.
    ///
    /// Cancel safety: dropping the future closes every connection at once; nothing is
    /// stored here, so nothing is lost.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        on_ready: impl FnOnce(BoundAddrs),
    ) -> Result<(), ServeError> {
        let listener = bind("HTTP", self.config.http_addr).await?;
        let bound = BoundAddrs {
            http: local_addr("HTTP", &listener)?,
            kafka: None,
            registry: None,
        };
        let history = Arc::new(History::default());
        let http_metrics = ListenerMetrics::default();
        let mut registry = MetricsRegistry::default();
        http_metrics.register(&mut registry, "keel_http", "HTTP API");
        history.register(&mut registry);
        let app = App {
            source: Source::Cluster(self.cluster.clone()),
            registry: None,
            history,
            console: Arc::new(self.config.console.clone()),
            listeners: bound,
            groups: None,
        };
        let (stop_sender, stop) = watch::channel(false);
        let sampler = tokio::spawn(sample_history(app.clone(), self.config.console.history));
        let http = spawn_http(&self.config, listener, http_metrics, app, registry, stop)?;
        warn_if_exposed(&bound, true, !http.tokens.is_empty());
        tracing::info!(http = %bound.http, cluster = %self.cluster.name, "keel serve ready: the console of a Kafka cluster");
        on_ready(bound);

        shutdown.await;
        tracing::info!("shutdown requested: no new connections; finishing in-flight requests");
        sampler.abort();
        let _ = stop_sender.send(true);
        let grace_ms = self.config.shutdown_grace_ms;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(grace_ms);
        finish_http(http.server, deadline, grace_ms)
            .await
            .map_err(|source| ServeError::Serve {
                what: "HTTP",
                source,
            })?;
        tracing::info!("keel serve stopped");
        Ok(())
    }
}
