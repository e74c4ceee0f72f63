//! `keel-listener`: the accept loop every listener of `keel serve` runs (Kafka, HTTP, schema
//! registry), so a client cannot hold the server's connections, file descriptors or accept
//! loop hostage.
//!
//! - [`Listener::serve`] accepts connections and hands each to the caller's handler on its own
//!   task. At [`ListenerLimits::connections_max`] a new connection is admitted by evicting the
//!   connection that has been idle longest (nothing in flight), so idle or stalled clients can
//!   never lock out a new one; only when every connection is busy is the newcomer refused.
//!   Accept errors (`EMFILE` and friends) back off instead of spinning, and an exhausted
//!   descriptor table also evicts the longest-idle connection.
//! - [`ConnectionGuard`] is the handler's side: it marks requests in flight
//!   ([`ConnectionGuard::busy`]), records activity, and tells the handler when the listener
//!   wants the connection back ([`ConnectionGuard::evicted`]). Idle and request timeouts are
//!   the handler's to enforce, because only the protocol knows where a request starts.
//! - [`ListenerMetrics`] counts open connections, connections closed by a limit (by reason)
//!   accept errors and clients whose security does not match the listener's
//!   ([`SecurityMismatch`]), under a prefix per listener (`keel_kafka_connections`, ...).
//!
//! - [`tls`] loads a listener's certificate and key into a rustls configuration (the `ring`
//!   provider) and tells a TLS client from a plaintext one, for every listener that encrypts.
//!
//! - `testing::self_signed` (feature `testing`) makes the certificate the TLS tests of every
//!   listener use.
//!
//! Not here: protocols, the TLS handshake itself and authentication (the handlers' and
//! `keel-server`'s).

mod connections;
mod listener;
mod metrics;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

pub use connections::{Activity, Busy, ConnectionGuard, InFlight};
pub use listener::{
    ACCEPT_BACKOFF_MS_MAX, ACCEPT_BACKOFF_MS_MIN, Connection, LimitsError, Listener, ListenerLimits,
};
pub use metrics::{CloseReason, ListenerMetrics, SecurityMismatch};
