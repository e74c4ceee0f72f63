//! The open connections of one listener: who is busy, who has been idle longest, and the
//! eviction signal.
//!
//! Times are milliseconds on tokio's clock since the table was made, so paused-time tests
//! drive idleness exactly. Eviction scans the table (under one short lock) and happens only
//! when the listener is full, so its cost is paid by the connection that needs the slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::ListenerMetrics;

/// The table of a listener's open connections.
#[derive(Debug)]
pub(crate) struct Connections {
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<State>>>,
    metrics: ListenerMetrics,
}

#[derive(Debug)]
struct State {
    last_active_ms: AtomicU64,
    busy: AtomicUsize,
    evicted: AtomicBool,
    evict: Notify,
}

/// A connection's place in its listener's table: held by the connection's handler for as
/// long as the connection is open (dropping it frees the slot).
#[derive(Debug)]
pub struct ConnectionGuard {
    id: u64,
    state: Arc<State>,
    table: Arc<Connections>,
}

/// A cloneable handle that records a connection's activity, for I/O wrappers that touch on
/// every read and write.
#[derive(Debug, Clone)]
pub struct Activity {
    state: Arc<State>,
    table: Arc<Connections>,
}

impl Activity {
    /// Records activity now.
    pub fn touch(&self) {
        self.state
            .last_active_ms
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

/// A request in flight on a connection: while one exists the connection is never evicted.
/// Dropping it counts as activity.
#[derive(Debug)]
pub struct Busy<'a> {
    guard: &'a ConnectionGuard,
}

impl Connections {
    pub(crate) fn new(metrics: ListenerMetrics) -> Connections {
        Connections {
            started: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How many connections are open.
    pub(crate) fn len(&self) -> usize {
        self.open.lock().expect("connections lock").len()
    }

    /// Adds a connection to the table.
    pub(crate) fn register(self: &Arc<Self>) -> ConnectionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(State {
            last_active_ms: AtomicU64::new(self.now_ms()),
            busy: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.open
            .lock()
            .expect("connections lock")
            .insert(id, state.clone());
        self.metrics.opened();
        ConnectionGuard {
            id,
            state,
            table: self.clone(),
        }
    }

    /// Asks the connection idle longest (nothing in flight, not already asked) to close;
    /// `false` when every connection is busy.
    pub(crate) fn evict_idlest(&self) -> bool {
        let open = self.open.lock().expect("connections lock");
        let victim = open
            .values()
            .filter(|s| s.busy.load(Ordering::Acquire) == 0 && !s.evicted.load(Ordering::Acquire))
            .min_by_key(|s| s.last_active_ms.load(Ordering::Relaxed));
        match victim {
            Some(state) => {
                state.evicted.store(true, Ordering::Release);
                state.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

impl ConnectionGuard {
    /// Records activity (bytes moved); eviction picks the connection idle longest.
    pub fn touch(&self) {
        self.state
            .last_active_ms
            .store(self.table.now_ms(), Ordering::Relaxed);
    }

    /// A handle recording this connection's activity from elsewhere (an I/O wrapper).
    pub fn activity(&self) -> Activity {
        Activity {
            state: self.state.clone(),
            table: self.table.clone(),
        }
    }

    /// Completes once nothing moved on the connection for `limit` (measured from the last
    /// [`ConnectionGuard::touch`]); for protocols whose handler cannot see where requests
    /// start, such as HTTP under hyper.
    ///
    /// Cancel safety: cancel safe.
    pub async fn inactive_for(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }

    /// Marks a request in flight until the returned value is dropped.
    pub fn busy(&self) -> Busy<'_> {
        self.state.busy.fetch_add(1, Ordering::AcqRel);
        Busy { guard: self }
    }

    /// How long since the last activity.
    pub fn idle_for(&self) -> Duration {
        let last = self.state.last_active_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.table.now_ms().saturating_sub(last))
    }

    /// Completes when the listener wants this connection closed to admit a new one. The
    /// handler closes it at once: it was chosen because nothing was in flight.
    ///
    /// Cancel safety: cancel safe; a request made before the call is not lost.
    pub async fn evicted(&self) {
        if self.state.evicted.load(Ordering::Acquire) {
            return;
        }
        self.state.evict.notified().await;
    }

    /// The listener's metrics, for handlers that close a connection by a limit.
    pub fn metrics(&self) -> &ListenerMetrics {
        &self.table.metrics
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .expect("connections lock")
            .remove(&self.id);
        self.table.metrics.closed();
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.guard.touch();
        self.guard.state.busy.fetch_sub(1, Ordering::AcqRel);
    }
}
