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

use keel_embedded::EmbeddedBus;
use keel_kafka::acl::{AclFilter, Acls, Authorizer};

use crate::allowed_hosts::AllowedHosts;
use crate::authentication::Tokens;
use keel_kafka::group::GroupCoordinator;
use keel_kafka::sasl::{SaslConfig, Users};
use keel_kafka::{Broker, BrokerMetrics, KafkaListener};
use keel_listener::tls::TlsIdentity;
use keel_listener::{Listener, ListenerMetrics};
use keel_log::{AppendError, Log, LogOptions, OpenError};
use keel_schema::{Registry, RegistryError};
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::app::{ApiError, App, now_ms};
use crate::config::{ConfigError, ServerConfig};
use crate::history::{History, HistoryConfig};
use crate::log_metrics::LogFiles;
use crate::source::Source;
use crate::{http, http_listener, schema_registry};

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
    /// A listener's certificate or key cannot be used.
    #[error("cannot use the {what} listener's TLS certificate: {source}")]
    Tls {
        /// Which listener.
        what: &'static str,
        /// Why.
        source: keel_listener::tls::TlsError,
    },
    /// The SASL user database could not be opened.
    #[error("cannot open the SASL users: {0}")]
    Users(keel_kafka::sasl::UsersError),
    /// The ACL store could not be opened.
    #[error("cannot open the Kafka ACLs: {0}")]
    Acls(keel_kafka::acl::AclsError),
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
        let mut options = LogOptions::default();
        if let Some(max) = config.log_open_files_max {
            options.open_files_max = max;
        }
        let log = Log::open_with(&config.data_dir, options).map_err(|source| ServeError::Open {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        Server::with_log(config, Arc::new(log))
    }

    /// Validates the configuration and serves a log the caller opened (`config.data_dir` is
    /// then only reported). For tests that put the log on a fault-injecting storage, such as
    /// the power-cut test on `keel_log::sim::SimStorage`.
    pub fn with_log(config: ServerConfig, log: Arc<Log>) -> Result<Server, ServeError> {
        config.validate()?;
        let registry = match config.registry_addr {
            Some(_) => Some(Arc::new(
                Registry::open(&log)?.with_check_limits(config.registry_checks),
            )),
            None => None,
        };
        let bus = Arc::new(EmbeddedBus::new(log));
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
        let http_metrics = ListenerMetrics::default();
        let registry_metrics = ListenerMetrics::default();
        let schema_metrics = schema_registry::SchemaMetrics::default();
        let history = Arc::new(History::default());
        let mut registry = MetricsRegistry::default();
        self.bus.metrics().register(&mut registry);
        http_metrics.register(&mut registry, "keel_http", "HTTP API");
        registry.register_collector(Box::new(LogFiles(self.bus.log().clone())));
        history.register(&mut registry);
        if kafka_listener.is_some() {
            kafka_metrics.register(&mut registry);
        }
        if registry_listener.is_some() {
            registry_metrics.register(&mut registry, "keel_registry", "Schema registry");
            schema_metrics.register(&mut registry);
        }
        // The Kafka listener's group coordinator, shared with the console (members, and
        // refusing offset resets of groups whose members run).
        let groups = kafka_listener.as_ref().map(|_| {
            Arc::new(GroupCoordinator::start(
                self.bus.log().clone(),
                self.config.groups.clone(),
            ))
        });
        let app = App {
            groups: groups.clone(),
            source: Source::Log(self.bus.clone()),
            registry: self.registry.clone(),
            history: history.clone(),
            console: Arc::new(self.config.console.clone()),
            listeners: bound,
        };
        let (stop_sender, stop) = watch::channel(false);
        let http_limits = self.config.http_limits;
        let sampler = tokio::spawn(sample_history(app.clone(), self.config.console.history));
        let Http {
            server: http_server,
            tls: http_tls,
            tokens,
        } = spawn_http(
            &self.config,
            http_listener,
            http_metrics,
            app,
            registry,
            stop.clone(),
        )?;
        let registry_server =
            registry_listener
                .zip(self.registry.clone())
                .map(|(listener, registry)| {
                    tokio::spawn(http_listener::serve(
                        listener,
                        http_limits,
                        registry_metrics,
                        http_tls.clone(),
                        guarded(
                            schema_registry::router(
                                registry,
                                self.bus.log().clone(),
                                schema_metrics.clone(),
                            )
                            .layer(axum::middleware::from_fn(
                                crate::access::require_admin_to_change,
                            )),
                            &tokens,
                            AllowedHosts::new(
                                bound.registry.expect("bound with its listener"),
                                &self.config.http_allowed_hosts,
                            ),
                        ),
                        stop.clone(),
                    ))
                });
        let sasl = match (&kafka_listener, self.config.kafka_sasl.is_empty()) {
            (Some(_), false) => Some(SaslConfig {
                mechanisms: self.config.kafka_sasl.clone(),
                users: Arc::new(Users::open(self.bus.log()).map_err(ServeError::Users)?),
            }),
            _ => None,
        };
        let tls = self
            .config
            .kafka_tls
            .as_ref()
            .filter(|_| kafka_listener.is_some())
            .map(|identity| server_tls("Kafka", identity))
            .transpose()?;
        warn_if_exposed(&bound, sasl.is_some(), !tokens.is_empty());
        let authorizer = match &kafka_listener {
            Some(_) => Some(self.authorizer(sasl.is_some())?),
            None => None,
        };
        let kafka_server = kafka_listener.zip(kafka_addr).map(|(listener, addr)| {
            let config = self.config.kafka.clone();
            let node = config.node_address(addr);
            let log = self.bus.log().clone();
            let groups = groups
                .clone()
                .expect("a coordinator runs with the Kafka listener");
            let mut broker = Broker::new(log, config, node)
                .with_group_hook(groups)
                .with_metrics(kafka_metrics);
            if let Some(sasl) = sasl {
                broker = broker.with_sasl(sasl);
            }
            if let Some(tls) = tls {
                broker = broker.with_tls(tls);
            }
            if let Some(authorizer) = authorizer {
                broker = broker.with_authorizer(authorizer);
            }
            let broker = Arc::new(broker);
            let mut stop = stop.clone();
            tokio::spawn(listener.serve(broker, async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }))
        });
        let kafka = bound
            .kafka
            .map_or_else(|| "off".to_string(), |addr| addr.to_string());
        tracing::info!(http = %bound.http, %kafka, data_dir = %self.config.data_dir.display(), "keel serve ready");
        on_ready(bound);

        shutdown.await;
        tracing::info!("shutdown requested: no new connections; finishing in-flight requests");
        sampler.abort();
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
        let served = finish_http(http_server, deadline, self.config.shutdown_grace_ms).await;
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

impl Server {
    /// The Kafka listener's ACLs over this data directory, with the configured super users
    /// and the default for resources no ACL covers (see
    /// [`ServerConfig::kafka_allow_if_no_acl`]).
    fn authorizer(&self, sasl: bool) -> Result<Authorizer, ServeError> {
        let acls = Acls::open(self.bus.log()).map_err(ServeError::Acls)?;
        let allow_if_no_acl = self.config.kafka_allow_if_no_acl.unwrap_or(!sasl);
        let super_users = &self.config.kafka_super_users;
        if !allow_if_no_acl && super_users.is_empty() && acls.matching(&AclFilter::ANY).is_empty() {
            tracing::warn!(
                "SECURITY: the Kafka listener denies every request: no ACL exists, none is open by default and no super user is set (--kafka-super-users User:<name>)"
            );
        }
        Ok(Authorizer::new(
            Arc::new(acls),
            super_users.iter().cloned(),
            allow_if_no_acl,
        ))
    }
}

/// `router` behind the `Host` allow-list (`allowed_hosts.rs`), then the token check and the
/// cross-origin check (`authentication.rs`).
pub(crate) fn guarded(router: axum::Router, tokens: &Tokens, hosts: AllowedHosts) -> axum::Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            tokens.clone(),
            crate::authentication::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            crate::allowed_hosts::check_host,
        ))
}

/// Logs a loud warning for every listener reachable beyond this machine that lets anyone in:
/// the Kafka listener without SASL; the HTTP listeners without tokens.
pub(crate) fn warn_if_exposed(
    bound: &BoundAddrs,
    kafka_authenticated: bool,
    http_authenticated: bool,
) {
    let exposed = |addr: &SocketAddr| !addr.ip().is_loopback();
    let open = [
        ("Kafka", bound.kafka.filter(|_| !kafka_authenticated)),
        ("HTTP API", Some(bound.http).filter(|_| !http_authenticated)),
        (
            "schema registry",
            bound.registry.filter(|_| !http_authenticated),
        ),
    ];
    for (what, addr) in open {
        if let Some(addr) = addr.filter(exposed) {
            tracing::warn!(listener = what, %addr, "SECURITY: the {what} listener on {addr} is reachable from other machines and asks nobody who they are; bind it to 127.0.0.1 or turn authentication on (docs/security.md)");
        }
    }
}

/// The rustls configuration of one listener's certificate, or which listener's is unusable.
pub(crate) fn server_tls(
    what: &'static str,
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    identity
        .server_config()
        .map_err(|source| ServeError::Tls { what, source })
}

pub(crate) async fn bind(what: &'static str, addr: SocketAddr) -> Result<Listener, ServeError> {
    Listener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

pub(crate) fn local_addr(
    what: &'static str,
    listener: &Listener,
) -> Result<SocketAddr, ServeError> {
    listener
        .local_addr()
        .map_err(|source| ServeError::Serve { what, source })
}

/// The HTTP listener's task, and what the other listeners share with it.
pub(crate) struct Http {
    /// Serves until the stop signal.
    pub(crate) server: JoinHandle<()>,
    /// The HTTPS acceptor, when `http_tls` is set (the registry's listener uses it too).
    pub(crate) tls: Option<TlsAcceptor>,
    /// The API tokens (the registry's listener checks them too).
    pub(crate) tokens: Tokens,
}

/// Starts the HTTP listener: health, metrics (`registry`), the API and the console over
/// `app`, and the login pages, behind the host and token checks.
pub(crate) fn spawn_http(
    config: &ServerConfig,
    listener: Listener,
    metrics: ListenerMetrics,
    app: App,
    registry: MetricsRegistry,
    stop: watch::Receiver<bool>,
) -> Result<Http, ServeError> {
    let tls = config
        .http_tls
        .as_ref()
        .map(|identity| server_tls("HTTP", identity).map(TlsAcceptor::from))
        .transpose()?;
    let tokens = Tokens::new(config.http_tokens.clone(), tls.is_some());
    let hosts = AllowedHosts::new(app.listeners.http, &config.http_allowed_hosts);
    let router = guarded(
        http::router(app, Arc::new(registry)).merge(crate::console::login_routes(tokens.clone())),
        &tokens,
        hosts,
    );
    let server = tokio::spawn(http_listener::serve(
        listener,
        config.http_limits,
        metrics,
        tls.clone(),
        router,
        stop,
    ));
    Ok(Http {
        server,
        tls,
        tokens,
    })
}

/// Waits for the HTTP listener to finish its in-flight requests until `deadline`, then
/// closes what is left open.
pub(crate) async fn finish_http(
    mut server: JoinHandle<()>,
    deadline: tokio::time::Instant,
    grace_ms: u64,
) -> std::io::Result<()> {
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(joined) => {
            joined.map_err(|panic| std::io::Error::other(format!("HTTP server panicked: {panic}")))
        }
        Err(_) => {
            tracing::warn!(grace_ms, "grace period over: closing open HTTP connections");
            server.abort();
            Ok(())
        }
    }
}

/// Samples the console's history through the source's ports every `config.interval_ms`,
/// until aborted. A sample that fails or panics is logged and the next one goes on.
pub(crate) async fn sample_history(app: App, config: HistoryConfig) {
    let mut ticks = tokio::time::interval(Duration::from_millis(config.interval_ms));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let history = app.history.clone();
        let sampled = app.on_ports(move |admin, _| {
            Box::pin(async move { history.sample(admin, now_ms(), config.groups_max).await })
        });
        if let Err(ApiError(_, error)) = sampled.await {
            tracing::warn!(%error, "console history sample failed");
        }
    }
}
