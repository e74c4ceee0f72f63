//! The broker: the state every connection shares (the log, producer state, the group hook)
//! and the dispatch of a decoded request to its handler in `api/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use keel_log::{Log, Topic};
use tokio::sync::watch;

use crate::api;
use crate::codec::{DecodedRequest, Request, encode_response, finish_frame, response_frame};
use crate::config::{BrokerConfig, NodeAddress};
use crate::group_hook::{GROUP_API_KEYS, GroupHook, GroupHookError, GroupRequest};
use crate::metrics::BrokerMetrics;
use crate::producers::Producers;
use kafka_protocol::messages::ApiKey;

/// A Kafka broker over one [`Log`]. Shared by every connection of a [`crate::KafkaListener`].
pub struct Broker {
    pub(crate) log: Arc<Log>,
    pub(crate) config: BrokerConfig,
    pub(crate) node: NodeAddress,
    pub(crate) producers: Producers,
    pub(crate) metrics: BrokerMetrics,
    /// Bumped after every append this broker makes, so long-polling fetches wake up without
    /// a blocked thread each. The broker is the only writer of user topics while it holds the
    /// data directory's lock, so its own appends are all the appends there are.
    appended: watch::Sender<u64>,
    /// Set when the listener stops: long-polling fetches answer at once instead of holding
    /// up the shutdown for their whole `max_wait_ms`.
    closing: AtomicBool,
    group: Option<Arc<dyn GroupHook>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("root", &self.log.root())
            .field("node", &self.node)
            .field("group_hook", &self.group.is_some())
            .finish()
    }
}

/// Why a request was not answered; the connection is closed and this is logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandleError {
    /// The response could not be encoded at the version asked for (a broker bug).
    #[error("could not encode the {api_key:?} v{version} response: {reason}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    /// The group hook refused the request.
    #[error(transparent)]
    Group(#[from] GroupHookError),
}

impl Broker {
    /// A broker over `log`, advertising `node` to clients.
    pub fn new(log: Arc<Log>, config: BrokerConfig, node: NodeAddress) -> Broker {
        Broker {
            log,
            config,
            node,
            producers: Producers::new(),
            metrics: BrokerMetrics::default(),
            appended: watch::Sender::new(0),
            closing: AtomicBool::new(false),
            group: None,
        }
    }

    /// Routes the consumer-group api keys to `hook` and advertises its versions.
    pub fn with_group_hook(mut self, hook: Arc<dyn GroupHook>) -> Broker {
        self.group = Some(hook);
        self
    }

    /// Counts into `metrics` (shared with whoever registered them) instead of a private set.
    pub fn with_metrics(mut self, metrics: BrokerMetrics) -> Broker {
        self.metrics = metrics;
        self
    }

    /// What this broker counts; register it to serve it.
    pub fn metrics(&self) -> &BrokerMetrics {
        &self.metrics
    }

    /// The log served.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The address advertised to clients.
    pub fn node(&self) -> &NodeAddress {
        &self.node
    }

    /// The inclusive version range served for `api_key`, or `None` when it is not served.
    pub fn versions(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        if GROUP_API_KEYS.contains(&api_key) {
            return self.group.as_ref().and_then(|hook| hook.versions(api_key));
        }
        api::versions(api_key)
    }

    /// Every served api key with its version range, for ApiVersions.
    pub(crate) fn all_versions(&self) -> Vec<(ApiKey, i16, i16)> {
        api::VERSIONS
            .iter()
            .copied()
            .chain(
                GROUP_API_KEYS
                    .iter()
                    .filter_map(|&key| self.versions(key).map(|(min, max)| (key, min, max))),
            )
            .collect()
    }

    /// A user topic by name; internal `__` topics are not reachable through the protocol.
    pub(crate) fn user_topic(&self, name: &str) -> Option<Arc<Topic>> {
        if name.starts_with("__") {
            return None;
        }
        self.log.topic(name)
    }

    /// Tells waiting fetches that something was appended.
    pub(crate) fn notify_appended(&self) {
        self.appended
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Tells waiting fetches to answer now: the listener is shutting down.
    pub(crate) fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.notify_appended();
    }

    /// Whether the listener is shutting down.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// A receiver that sees the next append.
    pub(crate) fn watch_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Handles one request; returns the response frame, or `None` when the protocol wants no
    /// answer (Produce with `acks = 0`).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        request: DecodedRequest,
        peer: SocketAddr,
    ) -> Result<Option<BytesMut>, HandleError> {
        let DecodedRequest {
            api_key,
            version,
            header,
            request,
        } = request;
        let correlation_id = header.correlation_id;
        let encode = |result: anyhow::Result<BytesMut>| {
            result.map(Some).map_err(|error| HandleError::Encode {
                api_key,
                version,
                reason: format!("{error:#}"),
            })
        };
        macro_rules! answer {
            ($response:expr) => {
                encode(encode_response(
                    api_key,
                    version,
                    correlation_id,
                    &$response,
                ))
            };
        }
        match request {
            Request::ApiVersions(_) => answer!(api::api_versions::handle(self, version)),
            Request::Metadata(r) => answer!(api::metadata::handle(self, r, version).await),
            Request::CreateTopics(r) => {
                answer!(api::create_topics::handle(self, r, version).await)
            }
            Request::DeleteTopics(r) => {
                answer!(api::delete_topics::handle(self, r, version).await)
            }
            Request::Produce(r) => {
                // The header's client id points into the request buffer; without it the
                // record sets may own that buffer and be appended without a copy.
                drop(header);
                match api::produce::handle(self, r, version).await {
                    Some(response) => answer!(response),
                    None => Ok(None),
                }
            }
            Request::Fetch(r) => answer!(api::fetch::handle(self, r, version).await),
            Request::ListOffsets(r) => answer!(api::list_offsets::handle(self, r, version).await),
            Request::InitProducerId(r) => {
                answer!(api::init_producer_id::handle(self, r, version))
            }
            Request::DescribeConfigs(r) => {
                answer!(api::describe_configs::handle(self, r, version))
            }
            Request::DescribeCluster(r) => {
                answer!(api::describe_cluster::handle(self, r, version))
            }
            Request::Group(body) => {
                let hook = self
                    .group
                    .as_ref()
                    .ok_or_else(|| GroupHookError(format!("no group hook for {api_key:?}")))?;
                let body = hook
                    .handle(GroupRequest {
                        api_key,
                        version,
                        header,
                        body,
                        peer,
                        node: self.node.clone(),
                    })
                    .await?;
                let mut frame =
                    encode(response_frame(api_key, version, correlation_id))?.expect("a frame");
                frame.extend_from_slice(&body);
                Ok(Some(finish_frame(frame)))
            }
        }
    }
}

/// Runs blocking log work off the executor; a panic there panics the calling connection task
/// only, which the listener logs.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
