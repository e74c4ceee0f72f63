//! [`Listener`]: bind, accept within [`ListenerLimits`], hand each connection to a handler
//! task, and stop in order.
//!
//! Decision table for an accepted connection:
//!
//! | open connections | an idle one exists | action |
//! |---|---|---|
//! | below `connections_max` | — | served |
//! | at `connections_max` | yes | the idlest is asked to close ([`CloseReason::Evicted`]); the new one is served |
//! | at `connections_max` | no (all busy) | the new one is closed at once ([`CloseReason::Refused`]) |
//!
//! An `accept` error is counted and followed by a pause that doubles from
//! [`ACCEPT_BACKOFF_MS_MIN`] to [`ACCEPT_BACKOFF_MS_MAX`] (reset by the next success): errors
//! such as `EMFILE` repeat at once when retried, and a loop retrying them would spin a core.
//! When the process is out of descriptors the idlest connection is also evicted, so the next
//! accept can succeed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connections::{ConnectionGuard, Connections};
use crate::metrics::{CloseReason, ListenerMetrics};

/// First pause after a failed `accept`.
pub const ACCEPT_BACKOFF_MS_MIN: u64 = 5;
/// Longest pause between failed `accept`s.
pub const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// Ceiling for `connections_max`: each connection is a descriptor and a task.
const CONNECTIONS_MAX_CEILING: usize = 1_000_000;

/// What one listener may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Most connections open at once (Kafka's `max.connections`, per listener here). At the
    /// limit the idlest connection is evicted for a new one.
    pub connections_max: usize,
}

/// A limit out of range, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct LimitsError {
    /// The setting.
    pub key: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl ListenerLimits {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if !(1..=CONNECTIONS_MAX_CEILING).contains(&self.connections_max) {
            return Err(LimitsError {
                key: "connections_max",
                reason: format!(
                    "{} is outside 1..={CONNECTIONS_MAX_CEILING}",
                    self.connections_max
                ),
            });
        }
        Ok(())
    }
}

/// A bound listener. Bind first so the bound address (port 0 in tests) is known, then serve.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
}

/// An accepted connection, as handed to the handler.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// Who connected.
    pub peer: SocketAddr,
    /// The connection's slot: activity, requests in flight, eviction.
    pub guard: ConnectionGuard,
    /// Turns true when the listener stops: finish the request in hand and close.
    pub stopping: watch::Receiver<bool>,
}

impl Listener {
    /// Binds `address`.
    pub async fn bind(address: SocketAddr) -> std::io::Result<Listener> {
        Ok(Listener {
            tcp: TcpListener::bind(address).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves connections within `limits` until `shutdown` completes; then stops accepting,
    /// tells every connection through [`Connection::stopping`], and returns once every
    /// handler did. `metrics` counts what this listener does.
    ///
    /// Cancel safety: dropping the future drops the handles of the handler tasks, not the
    /// tasks; use `shutdown` for an orderly stop.
    pub async fn serve<H, F>(
        self,
        limits: ListenerLimits,
        metrics: ListenerMetrics,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) where
        H: Fn(Connection) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let table = Arc::new(Connections::new(metrics.clone()));
        let (stop, stopping) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut backoff_ms = 0;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "connection task panicked; other connections unaffected");
                    }
                }
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff_ms = 0;
                        if table.len() >= limits.connections_max {
                            if table.evict_idlest() {
                                metrics.closed_by(CloseReason::Evicted);
                            } else {
                                metrics.closed_by(CloseReason::Refused);
                                tracing::warn!(%peer, limit = limits.connections_max, "connection refused: connections_max reached and every connection is busy");
                                continue;
                            }
                        }
                        let connection = Connection {
                            stream,
                            peer,
                            guard: table.register(),
                            stopping: stopping.clone(),
                        };
                        tasks.spawn(handler(connection));
                    }
                    Err(error) => {
                        metrics.accept_error();
                        backoff_ms = (backoff_ms * 2).clamp(ACCEPT_BACKOFF_MS_MIN, ACCEPT_BACKOFF_MS_MAX);
                        let out_of_descriptors = matches!(error.raw_os_error(), Some(24 | 23));
                        if out_of_descriptors {
                            table.evict_idlest();
                        }
                        // One line per burst, not per failed call.
                        if backoff_ms == ACCEPT_BACKOFF_MS_MIN {
                            tracing::warn!(%error, "accept failed; backing off");
                        }
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                        }
                    }
                },
            }
        }
        let _ = stop.send(true);
        drop(self.tcp);
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "connection task panicked during shutdown");
            }
        }
    }
}
