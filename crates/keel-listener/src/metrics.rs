//! [`ListenerMetrics`]: one listener's connections as Prometheus families, registered under
//! the listener's prefix (`keel_kafka`, `keel_http`, `keel_registry`).
//!
//! | family | type | labels | what |
//! |---|---|---|---|
//! | `<prefix>_connections` | gauge | — | connections open now |
//! | `<prefix>_connections_closed_by_limit_total` | counter | `reason` | connections the server closed or refused because a limit bit ([`CloseReason`]) |
//! | `<prefix>_accept_errors_total` | counter | — | failed `accept` calls (each followed by a backoff) |
//! | `<prefix>_security_mismatches_total` | counter | `client` | connections closed because the client speaks TLS to a plaintext listener or in the clear to a TLS one ([`SecurityMismatch`]) |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why the server closed a connection (or refused it) because of a limit; each names the
/// setting that bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Evicted, idle, to admit a new connection at `connections_max`.
    Evicted,
    /// Refused at `connections_max`: every open connection had a request in flight.
    Refused,
    /// Nothing in flight and no bytes for the idle timeout.
    Idle,
    /// A request (or its response) did not finish moving within the request timeout: a
    /// half-sent frame, headers sent slowly, a reader that stopped reading.
    RequestTimeout,
}

impl CloseReason {
    /// The metric label: the limit that bit.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Evicted => "connections_max_evicted",
            CloseReason::Refused => "connections_max_refused",
            CloseReason::Idle => "idle_timeout",
            CloseReason::RequestTimeout => "request_timeout",
        }
    }
}

/// A client whose security does not match the listener's: a misconfigured client (Kafka's
/// `security.protocol`, an `http://` URL), answered by closing the connection — counted, so an
/// operator sees clients failing for a reason their own logs explain poorly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecurityMismatch {
    /// A client speaking in the clear to a TLS listener.
    PlaintextOnTls,
    /// A TLS client on a plaintext listener.
    TlsOnPlaintext,
}

impl SecurityMismatch {
    /// The metric label: what the client spoke.
    pub fn label(self) -> &'static str {
        match self {
            SecurityMismatch::PlaintextOnTls => "plaintext_on_tls",
            SecurityMismatch::TlsOnPlaintext => "tls_on_plaintext",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClientLabels {
    client: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// A listener's metrics. Cheap to clone; clones share their values.
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    connections: Gauge,
    closed_by_limit: Family<ReasonLabels, Counter>,
    accept_errors: Counter,
    security_mismatches: Family<ClientLabels, Counter>,
}

impl ListenerMetrics {
    /// Registers the families as `<prefix>_connections`, ... into `registry`.
    pub fn register(&self, registry: &mut Registry, prefix: &str, what: &str) {
        registry.register(
            format!("{prefix}_connections"),
            format!("{what} connections open now"),
            self.connections.clone(),
        );
        registry.register(
            format!("{prefix}_connections_closed_by_limit"),
            format!("{what} connections closed or refused because a limit bit, by reason"),
            self.closed_by_limit.clone(),
        );
        registry.register(
            format!("{prefix}_accept_errors"),
            format!("Failed accepts on the {what} listener, each followed by a backoff"),
            self.accept_errors.clone(),
        );
        registry.register(
            format!("{prefix}_security_mismatches"),
            format!(
                "Connections to the {what} listener closed because the client spoke TLS to a plaintext listener or in the clear to a TLS one"
            ),
            self.security_mismatches.clone(),
        );
    }

    /// Counts a connection closed because its client's security does not match the listener's.
    pub fn security_mismatch(&self, mismatch: SecurityMismatch) {
        self.security_mismatches
            .get_or_create(&ClientLabels {
                client: mismatch.label(),
            })
            .inc();
    }

    /// How many connections `mismatch` closed so far.
    pub fn security_mismatch_count(&self, mismatch: SecurityMismatch) -> u64 {
        self.security_mismatches
            .get_or_create(&ClientLabels {
                client: mismatch.label(),
            })
            .get()
    }

    /// Counts a connection closed or refused because of `reason`.
    pub fn closed_by(&self, reason: CloseReason) {
        self.closed_by_limit
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }

    /// How many connections `reason` closed so far.
    pub fn closed_by_count(&self, reason: CloseReason) -> u64 {
        self.closed_by_limit
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .get()
    }

    /// Connections open now.
    pub fn open(&self) -> i64 {
        self.connections.get()
    }

    pub(crate) fn opened(&self) {
        self.connections.inc();
    }

    pub(crate) fn closed(&self) {
        self.connections.dec();
    }

    pub(crate) fn accept_error(&self) {
        self.accept_errors.inc();
    }
}
