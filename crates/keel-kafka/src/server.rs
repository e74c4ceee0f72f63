//! The TCP listener: accepts connections and serves each on its own task until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection::{self, ConnectionEnd};
use crate::limits::CONNECTIONS_MAX;

/// A bound Kafka listener. Bind first, so the bound address (port 0 in tests) can be
/// advertised by the [`Broker`], then [`KafkaListener::serve`].
#[derive(Debug)]
pub struct KafkaListener {
    listener: TcpListener,
}

impl KafkaListener {
    /// Binds `address`.
    pub async fn bind(address: SocketAddr) -> std::io::Result<KafkaListener> {
        Ok(KafkaListener {
            listener: TcpListener::bind(address).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until `shutdown` completes; then stops accepting, lets every
    /// connection finish and answer the request it is handling, and returns.
    ///
    /// Cancel safety: dropping the returned future drops the connection tasks' handles but not
    /// the tasks; use `shutdown` for an orderly stop.
    pub async fn serve(self, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "connection task panicked; other connections unaffected");
                    }
                }
                permit = slots.clone().acquire_owned() => {
                    let permit = permit.expect("semaphore never closed");
                    let (stream, peer) = tokio::select! {
                        _ = &mut shutdown => break,
                        accepted = self.listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(error) => {
                                tracing::warn!(%error, "accept failed");
                                continue;
                            }
                        },
                    };
                    let broker = broker.clone();
                    let stopped = stopped.clone();
                    connections.spawn(async move {
                        tracing::debug!(%peer, "connection opened");
                        let end = connection::serve(broker, stream, peer, stopped).await;
                        match end {
                            // A client that leaves mid-response is ordinary, not a warning.
                            ConnectionEnd::Closed | ConnectionEnd::Shutdown => {
                                tracing::debug!(%peer, reason = %end, "connection closed")
                            }
                            ConnectionEnd::Io(ref error)
                                if matches!(
                                    error.kind(),
                                    std::io::ErrorKind::BrokenPipe
                                        | std::io::ErrorKind::ConnectionReset
                                ) =>
                            {
                                tracing::debug!(%peer, reason = %end, "connection closed")
                            }
                            _ => tracing::warn!(%peer, reason = %end, "connection closed"),
                        }
                        drop(permit);
                    });
                }
            }
        }
        let _ = stop.send(true);
        broker.begin_shutdown();
        while let Some(joined) = connections.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "connection task panicked during shutdown");
            }
        }
    }
}
