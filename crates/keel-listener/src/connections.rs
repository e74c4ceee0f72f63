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

    /// Marks a request in flight until the returned value is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.state.request_started();
        InFlight {
            activity: self.clone(),
        }
    }
}

/// A request in flight on a connection: while one exists the connection is never evicted
/// nor closed as inactive. Dropping it counts as activity.
#[derive(Debug)]
pub struct Busy<'a> {
    guard: &'a ConnectionGuard,
}

/// [`Busy`] for a handler that cannot borrow the connection's guard (an HTTP service's
/// `'static` future), made from its [`Activity`] handle.
#[derive(Debug)]
pub struct InFlight {
    activity: Activity,
}

impl State {
    fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// A request's end counts as activity: the inactivity limit runs from there.
    fn request_ended(&self, now_ms: u64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
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
    /// [`ConnectionGuard::touch`] or request's end) and no request is in flight
    /// ([`ConnectionGuard::busy`], [`Activity::in_flight`]): a handler that works longer
    /// than `limit` before it answers keeps its connection.
    ///
    /// Cancel safety: cancel safe.
    pub async fn inactive_for(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            let busy = self.state.busy.load(Ordering::Acquire) > 0;
            if idle >= limit && !busy {
                return;
            }
            // A request's end moves the start of the count: look again a limit later.
            let wait = if busy { limit } else { limit - idle };
            tokio::time::sleep(wait).await;
        }
    }

    /// Marks a request in flight until the returned value is dropped.
    pub fn busy(&self) -> Busy<'_> {
        self.state.request_started();
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
        self.guard.state.request_ended(self.guard.table.now_ms());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.state.request_ended(activity.table.now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    /// Whether `inactive_for(LIMIT)` completes within `wait` of paused time.
    async fn closes_within(guard: &ConnectionGuard, wait: Duration) -> bool {
        tokio::time::timeout(wait, guard.inactive_for(LIMIT))
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_its_connection_past_the_inactivity_limit() {
        let table = Arc::new(Connections::new(ListenerMetrics::default()));
        let guard = table.register();
        let request = guard.activity().in_flight();
        assert!(
            !closes_within(&guard, 3 * LIMIT).await,
            "closed while a request was in flight"
        );
        drop(request);
        assert!(
            !closes_within(&guard, LIMIT - Duration::from_secs(1)).await,
            "the request's end is activity"
        );
        assert!(
            closes_within(&guard, Duration::from_secs(2)).await,
            "idle a whole limit after the request ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_after_the_limit() {
        let table = Arc::new(Connections::new(ListenerMetrics::default()));
        let guard = table.register();
        assert!(!closes_within(&guard, LIMIT - Duration::from_secs(1)).await);
        assert!(closes_within(&guard, Duration::from_secs(2)).await);
    }
}
