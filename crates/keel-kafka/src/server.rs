//! The Kafka listener: `keel-listener`'s accept loop (connection cap with eviction of the
//! idlest, accept backoff) serving each connection with `connection.rs` until shutdown, and
//! the transaction coordinator's timeout checks beside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_listener::{Listener, ListenerLimits};

use crate::broker::Broker;
use crate::connection::{self, ConnectionEnd};
use crate::limits::TRANSACTION_EXPIRY_CHECK_MS;

/// A bound Kafka listener. Bind first, so the bound address (port 0 in tests) can be
/// advertised by the [`Broker`], then [`KafkaListener::serve`].
#[derive(Debug)]
pub struct KafkaListener {
    listener: Listener,
}

impl KafkaListener {
    /// Binds `address`.
    pub async fn bind(address: SocketAddr) -> std::io::Result<KafkaListener> {
        Ok(KafkaListener {
            listener: Listener::bind(address).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections within the broker's limits until `shutdown` completes; then stops
    /// accepting, lets every connection finish and answer the request it is handling, and
    /// returns.
    ///
    /// Cancel safety: dropping the returned future drops the connection tasks' handles but not
    /// the tasks; use `shutdown` for an orderly stop.
    pub async fn serve(self, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
        let expiry = tokio::spawn(expire_transactions(broker.clone()));
        let limits = ListenerLimits {
            connections_max: broker.config.connections_max,
        };
        let metrics = broker.metrics.listener().clone();
        let stopping = broker.clone();
        let shutdown = async move {
            shutdown.await;
            // Long-polling fetches answer now instead of holding up the stop.
            stopping.begin_shutdown();
        };
        let serve = move |connection: keel_listener::Connection| {
            let broker = broker.clone();
            async move {
                let peer = connection.peer;
                tracing::debug!(%peer, "connection opened");
                let end = connection::serve(broker, connection).await;
                match end {
                    // A client that leaves mid-response is ordinary, not a warning.
                    ConnectionEnd::Closed | ConnectionEnd::Shutdown => {
                        tracing::debug!(%peer, reason = %end, "connection closed")
                    }
                    ConnectionEnd::Io(ref error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        tracing::debug!(%peer, reason = %end, "connection closed")
                    }
                    // Limits biting are counted in metrics; one line each would let a flood
                    // of stalled clients flood the log too.
                    ConnectionEnd::Limit(_) => {
                        tracing::debug!(%peer, reason = %end, "connection closed")
                    }
                    _ => tracing::warn!(%peer, reason = %end, "connection closed"),
                }
            }
        };
        self.listener.serve(limits, metrics, serve, shutdown).await;
        expiry.abort();
    }
}

/// Reads the transaction coordinator's state at start (finishing transactions decided before
/// a restart), then aborts transactions past their timeout every
/// [`TRANSACTION_EXPIRY_CHECK_MS`] until the listener stops.
async fn expire_transactions(broker: Arc<Broker>) {
    let mut shutdown = broker.watch_shutdown();
    let mut ticks = tokio::time::interval(Duration::from_millis(TRANSACTION_EXPIRY_CHECK_MS));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = shutdown.wait_for(|stopping| *stopping) => true,
        };
        if stopping {
            return;
        }
        broker.transactions.expire(&broker).await;
    }
}
