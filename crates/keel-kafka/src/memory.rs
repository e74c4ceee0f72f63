//! The in-flight byte budget: request frames being read and held, and fetch responses being
//! built and written, over all connections (`in_flight_bytes_max`).
//!
//! A connection takes bytes from the budget before it allocates them and waits when the
//! budget is spent, so the server stops reading that socket (TCP pushes back on the client)
//! instead of allocating. The budget is a semaphore of bytes: fair (first come, first served),
//! never negative, released when the permit is dropped.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct MemoryBudget {
    bytes: Arc<Semaphore>,
    held: Gauge,
    waits: Counter,
}

/// Bytes taken from the budget, given back on drop.
#[derive(Debug)]
pub(crate) struct MemoryPermit {
    permit: Option<OwnedSemaphorePermit>,
    held: Gauge,
}

impl MemoryBudget {
    /// A budget of `bytes` (at most `u32::MAX`, checked by the config), reporting how much is
    /// held in `held` and how often a connection had to wait in `waits`.
    pub(crate) fn new(bytes: usize, held: Gauge, waits: Counter) -> MemoryBudget {
        MemoryBudget {
            bytes: Arc::new(Semaphore::new(bytes)),
            held,
            waits,
        }
    }

    /// Takes `bytes`, waiting until they are free.
    ///
    /// Cancel safety: cancel safe; nothing is taken unless the future completes.
    pub(crate) async fn take(&self, bytes: usize) -> MemoryPermit {
        let count = u32::try_from(bytes).expect("budget requests fit in u32");
        let permit = match self.bytes.clone().try_acquire_many_owned(count) {
            Ok(permit) => permit,
            Err(_) => {
                self.waits.inc();
                self.bytes
                    .clone()
                    .acquire_many_owned(count)
                    .await
                    .expect("the budget is never closed")
            }
        };
        self.held.inc_by(bytes as i64);
        MemoryPermit {
            permit: Some(permit),
            held: self.held.clone(),
        }
    }

    /// Takes between `min` and `want` bytes: as much as is free now, waiting only when less
    /// than `min` is.
    pub(crate) async fn take_up_to(&self, want: usize, min: usize) -> MemoryPermit {
        let min = min.min(want);
        let free = self.bytes.available_permits();
        self.take(if free >= min { free.min(want) } else { min })
            .await
    }

    /// Takes `bytes` more into `permit`, waiting until they are free.
    pub(crate) async fn grow(&self, permit: &mut MemoryPermit, bytes: usize) {
        let more = self.take(bytes).await;
        permit.merge(more);
    }
}

impl MemoryPermit {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Gives back everything above `bytes`.
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        let excess = self.bytes().saturating_sub(bytes);
        if let Some(permit) = &mut self.permit
            && let Some(returned) = permit.split(excess)
        {
            self.held.dec_by(returned.num_permits() as i64);
        }
    }

    fn merge(&mut self, mut other: MemoryPermit) {
        match (&mut self.permit, other.permit.take()) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (_, None) => {}
        }
    }
}

impl Drop for MemoryPermit {
    fn drop(&mut self) {
        self.held.dec_by(self.bytes() as i64);
    }
}
