//! [`Transport`]: a broker as the runtime drives it — the consuming half of the port
//! (`keel_core::ConsumeTransport`) and a [`Publisher`] on its publishing half, which carries
//! the [`Metrics`] both count into. A router is built on one
//! ([`Router::new`](crate::Router::new)); each transport crate hands one out (the embedded
//! bus, `keel_kafka_client::KafkaTransport`), so service code names no engine type but the
//! one it starts with.
//!
//! Also here: [`wait_for_signal`], the one way a transport built on a `tokio::sync::Notify`
//! implements `PartitionLease::wait_for_data` without losing a wake-up.
//!
//! Not here: the ports themselves (`keel-core`), any engine.

use std::sync::Arc;

use keel_core::ConsumeTransport;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::publisher::Publisher;

/// Both halves of one transport, as routers and publishers use them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    consume: Arc<dyn ConsumeTransport>,
    publisher: Publisher,
}

impl Transport {
    /// The transport consuming through `consume` and publishing through `publisher` (whose
    /// metrics the routers count into too).
    pub fn new(consume: Arc<dyn ConsumeTransport>, publisher: Publisher) -> Transport {
        Transport { consume, publisher }
    }

    /// The consuming half.
    pub fn consume(&self) -> &Arc<dyn ConsumeTransport> {
        &self.consume
    }

    /// The publisher service code holds, the one every handler's context hands out.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The metrics of everything on this transport.
    pub fn metrics(&self) -> &Metrics {
        self.publisher.metrics()
    }
}

/// Completes when `signal` is notified, or at once when `ready()` says records are there:
/// registers for the signal *before* asking, so a notification between the two is not
/// lost. Cancel safe.
pub async fn wait_for_signal(signal: &Notify, ready: impl FnOnce() -> bool) {
    let notified = signal.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if !ready() {
        notified.await;
    }
}
