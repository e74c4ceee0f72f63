//! `keel serve`'s Kafka listener in-process for the transport tests: the broker and its
//! group coordinator over a fresh log in a temporary directory, on a free port of
//! 127.0.0.1, served by the test's own tokio runtime.

#![allow(dead_code)]

pub(crate) mod harness;

use std::net::SocketAddr;
use std::sync::Arc;

use keel_kafka::group::{GroupConfig, GroupCoordinator};
use keel_kafka::{Broker, BrokerConfig, KafkaListener};
use keel_log::{Log, TopicConfig};
use tokio::sync::oneshot;

/// A broker on a free port; stops serving when dropped.
pub(crate) struct Serve {
    pub(crate) address: SocketAddr,
    pub(crate) log: Arc<Log>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Serve {
    /// Starts the listener on the current runtime (call from a multi-thread tokio test).
    pub(crate) async fn start() -> Serve {
        Serve::start_with(GroupConfig::default()).await
    }

    /// Starts the listener with fast group timing: sessions down to one second and no
    /// initial rebalance delay, for tests whose members come and go.
    pub(crate) async fn start_fast_groups() -> Serve {
        Serve::start_with(GroupConfig {
            session_timeout_ms_min: 1_000,
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        })
        .await
    }

    async fn start_with(groups: GroupConfig) -> Serve {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = Arc::new(Log::open(dir.path()).expect("open log"));
        let listener = KafkaListener::bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind a free port");
        let address = listener.local_addr().expect("bound address");
        let config = BrokerConfig::default();
        let groups = Arc::new(GroupCoordinator::start(log.clone(), groups));
        let broker = Broker::new(log.clone(), config.clone(), config.node_address(address))
            .with_group_hook(groups);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(listener.serve(Arc::new(broker), async {
            let _ = stopped.await;
        }));
        Serve {
            address,
            log,
            _dir: dir,
            _stop: stop,
        }
    }

    /// The `bootstrap.servers` value.
    pub(crate) fn bootstrap(&self) -> String {
        self.address.to_string()
    }

    /// Creates `topic` with `partitions` in the broker's log.
    pub(crate) fn create_topic(&self, topic: &str, partitions: u32) {
        self.log
            .create_topic(topic, TopicConfig::new(partitions))
            .expect("create topic");
    }
}
