//! The flags of a long-running verb's metrics listener (`keel relay --metrics ADDR`), turned
//! into a `keel_server::MetricsListenerConfig`: the same tokens and certificate settings as
//! `keel serve`'s HTTP listener, under their own names.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use keel_server::MetricsListenerConfig;

use crate::serve::{http_tokens, tls_identity};

/// Flags of the metrics listener.
#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    /// Serve GET /metrics (Prometheus text) and GET /health on ADDR, e.g. 127.0.0.1:9464
    /// [default: no listener].
    #[arg(long = "metrics", env = "KEEL_METRICS", value_name = "ADDR")]
    addr: Option<SocketAddr>,
    /// Tokens /metrics requires, comma-separated `name:role:sha256` as `keel serve
    /// --http-tokens` takes them (any role may read); scrapers send `Authorization: Bearer
    /// <token>` [default: none, open to whoever reaches ADDR].
    #[arg(
        long,
        env = "KEEL_METRICS_TOKENS",
        value_name = "LIST",
        value_delimiter = ',',
        requires = "addr"
    )]
    metrics_tokens: Vec<String>,
    /// PEM certificate chain of the metrics listener: with --metrics-tls-key it speaks HTTPS
    /// only [default: plain HTTP].
    #[arg(
        long,
        env = "KEEL_METRICS_TLS_CERT",
        value_name = "FILE",
        requires_all = ["metrics_tls_key", "addr"]
    )]
    metrics_tls_cert: Option<PathBuf>,
    /// PEM private key of the metrics listener's certificate.
    #[arg(
        long,
        env = "KEEL_METRICS_TLS_KEY",
        value_name = "FILE",
        requires = "metrics_tls_cert"
    )]
    metrics_tls_key: Option<PathBuf>,
}

impl MetricsArgs {
    /// The listener the flags ask for; `None` without `--metrics`.
    pub(crate) fn config(self) -> anyhow::Result<Option<MetricsListenerConfig>> {
        let Some(addr) = self.addr else {
            return Ok(None);
        };
        let mut config = MetricsListenerConfig::new(addr);
        config.tokens = http_tokens("metrics_tokens", &self.metrics_tokens)?;
        config.tls = tls_identity("metrics_tls", self.metrics_tls_cert, self.metrics_tls_key)?;
        Ok(Some(config))
    }
}
