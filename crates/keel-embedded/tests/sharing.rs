//! A partition worker shares its executor thread while a backlog lasts.
//!
//! Transports that buffer ahead (Kafka's prefetch queue, a NATS or Redis batch) answer every
//! fetch at once while a backlog lasts. The test stands in for them with a transport whose one
//! partition holds its records in memory, so nothing the worker awaits is ever pending, and
//! runs the router on a current-thread runtime, where a worker that never yields would keep
//! every other task (a service's own HTTP server, say) waiting until the backlog is gone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::{
    BoxFuture, CommitError, ConsumeTransport, FetchError, GroupPolicy, LeaseStart, Membership,
    MembershipEvent, PartitionLease, Record, StartFrom, TransportError,
};
use keel_embedded::EmbeddedBus;
use keel_runtime::{Context, Handler, Route, Router, Transport};

#[allow(dead_code)]
mod support;

use support::{Step, open_log, step};

/// Events in the backlog: far more than a worker handles within one cooperative budget.
const BACKLOG: usize = 50_000;

/// Records a fetch hands out at most, as a buffering transport's batch would.
const FETCH_RECORDS_MAX: usize = 64;

/// One partition whose records are all in memory: every fetch is answered at once.
#[derive(Debug)]
struct InMemory {
    records: Arc<Vec<Record>>,
}

impl InMemory {
    fn new(events: usize) -> InMemory {
        let records = (0..events)
            .map(|i| {
                let stored = step(&format!("k{}", i % 100), i as u32).to_record();
                Record {
                    offset: i as u64,
                    timestamp_ms: 0,
                    key: stored.key,
                    value: stored.value,
                    headers: stored.headers,
                }
            })
            .collect();
        InMemory {
            records: Arc::new(records),
        }
    }
}

impl ConsumeTransport for InMemory {
    fn engine(&self) -> &'static str {
        "memory"
    }

    fn now_ms(&self) -> i64 {
        0
    }

    fn check_route(&self, _: &str, _: &str, _: &GroupPolicy) -> Result<(), TransportError> {
        Ok(())
    }

    fn join<'a>(
        &'a self,
        _group: &'a str,
        _topic: &'a str,
        _policy: &'a GroupPolicy,
        _start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        let lease = Arc::new(InMemoryLease {
            records: self.records.clone(),
            committed: Mutex::new(None),
        });
        let membership: Box<dyn Membership> = Box::new(OneLease {
            lease: Some(lease),
            left: false,
        });
        Box::pin(async move { Ok(membership) })
    }
}

/// A membership that is handed partition 0 once and keeps it until it leaves.
struct OneLease {
    lease: Option<Arc<InMemoryLease>>,
    left: bool,
}

impl Membership for OneLease {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        if self.left {
            return Box::pin(async { None });
        }
        match self.lease.take() {
            Some(lease) => Box::pin(async move { Some(MembershipEvent::Assigned(lease)) }),
            None => Box::pin(std::future::pending()),
        }
    }

    fn leave(&mut self) {
        self.left = true;
    }
}

struct InMemoryLease {
    records: Arc<Vec<Record>>,
    committed: Mutex<Option<u64>>,
}

impl PartitionLease for InMemoryLease {
    fn partition(&self) -> u32 {
        0
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        let committed = *self.committed.lock().unwrap();
        let offset = committed.unwrap_or(0);
        Box::pin(async move { Ok(LeaseStart { offset, committed }) })
    }

    fn has_data(&self, next_offset: u64) -> bool {
        (next_offset as usize) < self.records.len()
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        if self.has_data(next_offset) {
            Box::pin(async {})
        } else {
            Box::pin(std::future::pending())
        }
    }

    fn fetch(
        &self,
        offset: u64,
        _bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        let from = (offset as usize).min(self.records.len());
        let to = (from + FETCH_RECORDS_MAX).min(self.records.len());
        let records = self.records[from..to].to_vec();
        Box::pin(async move { Ok(records) })
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        *self.committed.lock().unwrap() = Some(offset);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_worker_catching_up_a_backlog_lets_other_tasks_of_its_thread_run() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::new(open_log(dir.path()));
    let transport = Arc::new(InMemory::new(BACKLOG));
    let handled = Arc::new(AtomicUsize::new(0));
    // What another task of the thread saw when it first ran: spawned by the first event's
    // handler, so it can only run when the worker gives the thread back.
    let observed = Arc::new(Mutex::new(None::<usize>));
    let spawned = Arc::new(AtomicBool::new(false));
    let handler = {
        let handled = handled.clone();
        let observed = observed.clone();
        Handler::typed("count", move |_: Step, _ctx: Context| {
            let handled = handled.clone();
            if !spawned.swap(true, Ordering::SeqCst) {
                let handled = handled.clone();
                let observed = observed.clone();
                tokio::spawn(async move {
                    *observed.lock().unwrap() = Some(handled.load(Ordering::SeqCst));
                });
            }
            async move {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let router = Router::new(Transport::new(transport, bus.publisher()))
        .route(Route::new("backlog", "g", handler))
        .start()
        .unwrap();
    while handled.load(Ordering::SeqCst) < BACKLOG {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    router.shutdown().await;
    let observed = observed.lock().unwrap().expect("the other task ran");
    // With tokio's budget of 128 turns it runs after several hundred events; a fifth of
    // the backlog leaves room for a different budget, and none for a worker that never yields.
    assert!(
        observed < BACKLOG / 5,
        "the other task first ran after {observed} of {BACKLOG} events were handled: the \
         worker kept the thread while the backlog lasted"
    );
}
