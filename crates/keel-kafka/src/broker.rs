//! The broker: the state every connection shares (the log, producer state, the group hook)
//! and the dispatch of a decoded request to its handler in `api/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use keel_log::{AppendError, AppendInfo, CheckedBatches, Log, Partition, Topic};
use tokio::sync::watch;

use crate::acl::{Access, Authorizer, Caller, Operation, ResourceType};
use crate::api;
use crate::codec::{DecodedRequest, Request, encode_response, finish_frame, response_frame};
use crate::config::{BrokerConfig, NodeAddress};
use crate::fetch_session::FetchSessions;
use crate::group_hook::{GROUP_API_KEYS, GroupHook, GroupHookError, GroupRequest};
use crate::limits::INLINE_WRITE_BYTES_MAX;
use crate::memory::{MemoryBudget, MemoryPermit};
use crate::metrics::BrokerMetrics;
use crate::producers::Producers;
use crate::txn::Transactions;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};

use crate::sasl::{SASL_AUTHENTICATION_FAILED, SaslConfig, Session, Step};
use kafka_protocol::messages::ApiKey;

/// A Kafka broker over one [`Log`]. Shared by every connection of a [`crate::KafkaListener`].
pub struct Broker {
    pub(crate) log: Arc<Log>,
    pub(crate) config: BrokerConfig,
    pub(crate) node: NodeAddress,
    pub(crate) producers: Producers,
    /// The transaction coordinator.
    pub(crate) transactions: Transactions,
    pub(crate) metrics: BrokerMetrics,
    /// Request frames and fetch responses held at once (`in_flight_bytes_max`).
    pub(crate) memory: MemoryBudget,
    /// Consumers' fetch sessions (KIP-227).
    pub(crate) fetch_sessions: FetchSessions,
    /// Held from the capacity check of a topic creation to its end, so concurrent creations
    /// cannot together pass `topics_max` or `partitions_max`.
    creating: tokio::sync::Mutex<()>,
    /// Set to true when the listener stops, waking long-polling fetches. (Appends wake them
    /// through their partitions' signals, `Partition::high_watermark_past`.)
    shutdown: watch::Sender<bool>,
    /// Set when the listener stops: long-polling fetches answer at once instead of holding
    /// up the shutdown for their whole `max_wait_ms`.
    closing: AtomicBool,
    group: Option<Arc<dyn GroupHook>>,
    /// SASL on the listener; `None` serves everyone as `User:ANONYMOUS`.
    pub(crate) sasl: Option<SaslConfig>,
    /// TLS on the listener (`SSL`, or `SASL_SSL` with SASL); `None` is plaintext.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// ACLs; off by default (every principal may do everything but touch Keel's topics).
    pub(crate) authorizer: Arc<Authorizer>,
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
    /// A request other than ApiVersions or SASL came before authentication.
    #[error("{0:?} request before SASL authentication")]
    Unauthenticated(ApiKey),
}

impl Broker {
    /// A broker over `log`, advertising `node` to clients.
    pub fn new(log: Arc<Log>, config: BrokerConfig, node: NodeAddress) -> Broker {
        let metrics = BrokerMetrics::default();
        let memory = budget(&config, &metrics);
        Broker {
            log,
            config,
            node,
            producers: Producers::new(),
            transactions: Transactions::default(),
            memory,
            fetch_sessions: fetch_sessions(&metrics),
            metrics,
            creating: tokio::sync::Mutex::new(()),
            shutdown: watch::Sender::new(false),
            closing: AtomicBool::new(false),
            group: None,
            sasl: None,
            tls: None,
            authorizer: Arc::default(),
        }
    }

    /// Routes the consumer-group api keys to `hook` and advertises its versions.
    pub fn with_group_hook(mut self, hook: Arc<dyn GroupHook>) -> Broker {
        self.group = Some(hook);
        self
    }

    /// Requires SASL authentication with `sasl`'s mechanisms and users before any request
    /// but ApiVersions.
    pub fn with_sasl(mut self, sasl: SaslConfig) -> Broker {
        self.sasl = Some(sasl);
        self
    }

    /// Encrypts every connection with TLS (`config` from [`keel_listener::tls::TlsIdentity`]).
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Broker {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Authorizes every request with `authorizer` (Kafka ACLs).
    pub fn with_authorizer(mut self, authorizer: Authorizer) -> Broker {
        self.authorizer = Arc::new(authorizer);
        self
    }

    /// Counts into `metrics` (shared with whoever registered them) instead of a private set.
    pub fn with_metrics(mut self, metrics: BrokerMetrics) -> Broker {
        self.memory = budget(&self.config, &metrics);
        self.fetch_sessions = fetch_sessions(&metrics);
        self.metrics = metrics;
        self
    }

    /// Runs `create` (which creates topics of `partitions` partitions in all) if the server's
    /// topic and partition limits leave room for `topics` more topics; otherwise refuses with
    /// `POLICY_VIOLATION`, naming the limit, and counts the refusal.
    pub(crate) async fn within_topic_limits<T>(
        &self,
        topics: usize,
        partitions: usize,
        create: impl Future<Output = T>,
    ) -> Result<T, (ResponseError, String)> {
        let _creating = self.creating.lock().await;
        let existing = self.log.topics();
        let existing_partitions: usize = existing.iter().map(|t| t.partitions().len()).sum();
        let refused = |limit: &'static str, max: usize, have: usize, adding: usize| {
            self.metrics.limit_refusal(limit);
            Err((
                ResponseError::PolicyViolation,
                format!("the server holds {have} of its {limit} = {max}; {adding} more do not fit"),
            ))
        };
        if existing.len() + topics > self.config.topics_max {
            return refused("topics_max", self.config.topics_max, existing.len(), topics);
        }
        if existing_partitions + partitions > self.config.partitions_max {
            return refused(
                "partitions_max",
                self.config.partitions_max,
                existing_partitions,
                partitions,
            );
        }
        Ok(create.await)
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

    /// Whether `caller` may do `operation` to the topic `name`: the error code and message
    /// refusing it, with an audit line, when not. Keel's own topics
    /// ([`keel_log::is_internal_topic`]) are never written, created, deleted or altered
    /// through the protocol, whoever asks (`INVALID_TOPIC_EXCEPTION`, as Kafka answers a
    /// client's write to an internal topic): Keel itself is their only writer. Otherwise the
    /// ACLs decide (`TOPIC_AUTHORIZATION_FAILED`).
    pub(crate) fn topic_access(
        &self,
        caller: &Caller,
        operation: Operation,
        name: &str,
    ) -> Result<(), (ResponseError, String)> {
        let reads = matches!(
            operation,
            Operation::Read | Operation::Describe | Operation::DescribeConfigs
        );
        if keel_log::is_internal_topic(name) && !reads {
            tracing::warn!(target: "keel::audit", event = "authorization_denied", principal = %caller.principal, peer = %caller.peer, ?operation, resource_type = "Topic", resource = name, "Keel's own topic: only Keel writes it");
            return Err((
                ResponseError::InvalidTopicException,
                format!("topic '{name}' is Keel's own: only Keel writes it"),
            ));
        }
        if self
            .authorizer
            .authorize(caller, operation, ResourceType::Topic, name)
        {
            return Ok(());
        }
        Err((
            ResponseError::TopicAuthorizationFailed,
            format!("no {operation:?} permission on topic '{name}'"),
        ))
    }

    /// Whether `caller` may write as the transactional id `id` (Write on it, as Kafka asks
    /// of every transactional request): `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, audited,
    /// when not.
    pub(crate) fn transactional_id_access(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ResponseError> {
        if self
            .authorizer
            .authorize(caller, Operation::Write, ResourceType::TransactionalId, id)
        {
            Ok(())
        } else {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        }
    }

    /// Whether `caller` may commit `group`'s offsets in `id`'s transactions (AddOffsetsToTxn,
    /// TxnOffsetCommit): Write on the transactional id, then Read on the group, refused in
    /// that order as Kafka checks them.
    pub(crate) fn txn_group_access(
        &self,
        caller: &Caller,
        id: &str,
        group: &str,
    ) -> Result<(), ResponseError> {
        self.transactional_id_access(caller, id)?;
        if self
            .authorizer
            .authorize(caller, Operation::Read, ResourceType::Group, group)
        {
            Ok(())
        } else {
            Err(ResponseError::GroupAuthorizationFailed)
        }
    }

    /// Whether the group member a TxnOffsetCommit names is current (see
    /// [`GroupHook::check_txn_offset_commit`]); without a group hook there are no groups.
    pub(crate) fn check_txn_offset_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        self.group.as_ref().map_or(Ok(()), |hook| {
            hook.check_txn_offset_commit(group, generation, member_id, instance_id)
        })
    }

    /// Whether `caller` may create the topic `name`: Create on the cluster (not audited when
    /// missing) or on the topic, as Kafka; refused as [`Broker::topic_access`].
    pub(crate) fn create_access(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(), (ResponseError, String)> {
        let cluster = self.authorizer.allows(
            caller,
            Operation::Create,
            ResourceType::Cluster,
            crate::acl::CLUSTER_NAME,
        );
        if cluster && !keel_log::is_internal_topic(name) {
            return Ok(());
        }
        self.topic_access(caller, Operation::Create, name)
    }

    /// Whether `caller` may do `operation` to the cluster, with an audit line when not.
    pub(crate) fn cluster_allowed(&self, caller: &Caller, operation: Operation) -> bool {
        self.authorizer.authorize(
            caller,
            operation,
            ResourceType::Cluster,
            crate::acl::CLUSTER_NAME,
        )
    }

    /// The ACL store for an ACL request needing `operation` on the cluster, or the error
    /// answering it: `SECURITY_DISABLED` when authorization is off (as Kafka without an
    /// authorizer), `CLUSTER_AUTHORIZATION_FAILED` when the caller lacks the permission.
    pub(crate) fn acls_for(
        &self,
        caller: &Caller,
        operation: Operation,
    ) -> Result<&Arc<crate::acl::Acls>, (ResponseError, String)> {
        let Some(acls) = self.authorizer.acls() else {
            return Err((
                ResponseError::SecurityDisabled,
                "ACLs are off on this server".into(),
            ));
        };
        if !self.cluster_allowed(caller, operation) {
            return Err((
                ResponseError::ClusterAuthorizationFailed,
                format!("no {operation:?} permission on the cluster"),
            ));
        }
        Ok(acls)
    }

    /// The user database for a SCRAM-credentials request needing `operation` on the
    /// cluster, or the error answering it: `CLUSTER_AUTHORIZATION_FAILED` when the caller
    /// lacks the permission, `SECURITY_DISABLED` on a listener without SASL (whose users
    /// `keel users` manages while no server runs).
    pub(crate) fn users_for(
        &self,
        caller: &Caller,
        operation: Operation,
    ) -> Result<&Arc<crate::sasl::Users>, (ResponseError, String)> {
        if !self.cluster_allowed(caller, operation) {
            return Err((
                ResponseError::ClusterAuthorizationFailed,
                format!("no {operation:?} permission on the cluster"),
            ));
        }
        self.sasl.as_ref().map(|sasl| &sasl.users).ok_or_else(|| {
            (
                ResponseError::SecurityDisabled,
                "SASL is off on this listener".into(),
            )
        })
    }

    /// Tells waiting fetches to answer now: the listener is shutting down.
    pub(crate) fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
    }

    /// Whether the listener is shutting down.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// A receiver that sees the listener begin to shut down.
    pub(crate) fn watch_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Handles one request; returns the response frame, or none when the protocol wants no
    /// answer (Produce with `acks = 0`). A Produce returns once its records are written, with
    /// its answer still to come ([`Reply::Durable`]).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        request: DecodedRequest,
        peer: SocketAddr,
        session: &mut Session,
    ) -> Result<Reply, HandleError> {
        let DecodedRequest {
            api_key,
            version,
            header,
            request,
        } = request;
        let sasl_step = matches!(
            request,
            Request::ApiVersions(_) | Request::SaslHandshake(_) | Request::SaslAuthenticate(_)
        );
        if session.principal().is_none() && !sasl_step {
            tracing::warn!(target: "keel::audit", event = "unauthenticated_request", %peer, ?api_key, "request before SASL authentication; connection closed");
            return Err(HandleError::Unauthenticated(api_key));
        }
        let caller = Caller {
            principal: session
                .principal()
                .cloned()
                .unwrap_or(crate::sasl::Principal::Anonymous),
            peer,
        };
        let caller = &caller;
        let correlation_id = header.correlation_id;
        let encode = |result| encoded(api_key, version, result);
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
        let handled = match request {
            Request::ApiVersions(_) => answer!(api::api_versions::handle(self, version)),
            Request::Metadata(r) => answer!(api::metadata::handle(self, caller, r, version).await),
            Request::CreateTopics(r) => {
                answer!(api::create_topics::handle(self, caller, r, version).await)
            }
            Request::DeleteTopics(r) => {
                answer!(api::delete_topics::handle(self, caller, r, version).await)
            }
            Request::DeleteRecords(r) => {
                answer!(api::delete_records::handle(self, caller, r, version).await)
            }
            Request::Produce(r) => {
                // The header's client id points into the request buffer; without it the
                // record sets may own that buffer and be appended without a copy.
                drop(header);
                let started = std::time::Instant::now();
                let written = api::produce::write(self, caller, r, version).await;
                let broker = self.clone();
                return Ok(Reply::Durable(Box::pin(async move {
                    let response = written.answer(&broker).await;
                    broker.metrics.request(api_key, started.elapsed());
                    match response {
                        Some(response) => encoded(
                            api_key,
                            version,
                            encode_response(api_key, version, correlation_id, &response),
                        ),
                        None => Ok(Handled::default()),
                    }
                })));
            }
            Request::Fetch(r) => {
                let (response, budget) = api::fetch::handle(self, caller, r, version).await;
                let frame = api::fetch_frame::encode(version, correlation_id, response);
                let frame = frame.map_err(|error| HandleError::Encode {
                    api_key,
                    version,
                    reason: format!("{error:#}"),
                })?;
                let mut handled = Handled::frame(frame.head);
                handled.rest = frame.rest;
                handled.budget = Some(budget);
                Ok(handled)
            }
            Request::ListOffsets(r) => {
                answer!(api::list_offsets::handle(self, caller, r, version).await)
            }
            Request::InitProducerId(r) => {
                answer!(api::init_producer_id::handle(self, caller, r, version).await)
            }
            Request::AddPartitionsToTxn(r) => {
                answer!(api::add_partitions_to_txn::handle(self, caller, r, version).await)
            }
            Request::AddOffsetsToTxn(r) => {
                answer!(api::add_offsets_to_txn::handle(self, caller, r, version).await)
            }
            Request::EndTxn(r) => answer!(api::end_txn::handle(self, caller, r, version).await),
            Request::TxnOffsetCommit(r) => {
                answer!(api::txn_offset_commit::handle(self, caller, r, version).await)
            }
            Request::DescribeConfigs(r) => {
                answer!(api::describe_configs::handle(self, caller, r, version))
            }
            Request::AlterConfigs(r) => {
                answer!(api::alter_configs::handle(self, caller, r, version).await)
            }
            Request::IncrementalAlterConfigs(r) => {
                answer!(api::incremental_alter_configs::handle(self, caller, r, version).await)
            }
            Request::DescribeCluster(r) => {
                answer!(api::describe_cluster::handle(self, r, version))
            }
            Request::CreatePartitions(r) => {
                answer!(api::create_partitions::handle(self, caller, r, version).await)
            }
            Request::DescribeLogDirs(r) => {
                answer!(api::describe_log_dirs::handle(self, caller, r, version))
            }
            Request::DescribeAcls(r) => {
                answer!(api::describe_acls::handle(self, caller, r, version))
            }
            Request::CreateAcls(r) => {
                answer!(api::create_acls::handle(self, caller, r, version).await)
            }
            Request::DeleteAcls(r) => {
                answer!(api::delete_acls::handle(self, caller, r, version).await)
            }
            Request::DescribeUserScramCredentials(r) => {
                answer!(api::describe_user_scram_credentials::handle(
                    self, caller, r, version
                ))
            }
            Request::AlterUserScramCredentials(r) => {
                answer!(api::alter_user_scram_credentials::handle(self, caller, r, version).await)
            }
            Request::SaslHandshake(r) => {
                // A v0 handshake would be followed by raw SASL frames, which Keel does not
                // read: refused with the mechanisms, the session unchanged.
                let error_code = match version {
                    0 => crate::sasl::UNSUPPORTED_SASL_MECHANISM,
                    _ => session.handshake(&r.mechanism),
                };
                let mechanisms = session.mechanisms().into_iter().map(api::text).collect();
                answer!(
                    SaslHandshakeResponse::default()
                        .with_error_code(error_code)
                        .with_mechanisms(mechanisms)
                )
            }
            Request::SaslAuthenticate(r) => match session.authenticate(&r.auth_bytes, peer) {
                Step::Answer { error_code, bytes } => answer!(
                    SaslAuthenticateResponse::default()
                        .with_error_code(error_code)
                        .with_auth_bytes(bytes.into())
                ),
                Step::Failed => {
                    // The client is told no more than this, whatever went wrong; the audit
                    // line has the reason. Kafka closes the connection after it too.
                    let mut handled = answer!(
                        SaslAuthenticateResponse::default()
                            .with_error_code(SASL_AUTHENTICATION_FAILED)
                            .with_error_message(Some(api::text(
                                "Authentication failed: invalid username or password"
                            )))
                    )?;
                    handled.close = true;
                    Ok(handled)
                }
            },
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
                        access: Access {
                            caller: caller.clone(),
                            authorizer: self.authorizer.clone(),
                        },
                        pending_offsets: self.transactions.pending.clone(),
                    })
                    .await?;
                let mut frame = encode(response_frame(api_key, version, correlation_id))?
                    .frame
                    .expect("a frame");
                frame.extend_from_slice(&body);
                Ok(Handled::frame(finish_frame(frame)))
            }
        };
        handled.map(Reply::Now)
    }
}

/// What handling a request returned.
pub(crate) enum Reply {
    /// Handled; the answer (if any) is ready.
    Now(Handled),
    /// A Produce whose records are written and whose sync is started: the connection's
    /// writer awaits the answer in its turn while the reader goes on. Not a task of its own:
    /// answers leave in request order anyway, and a task per request cost a spawn and a
    /// wake-up of another thread per one-record request.
    Durable(Answer),
}

/// The answer of a Produce still to come (once its records are durable).
pub(crate) type Answer =
    std::pin::Pin<Box<dyn Future<Output = Result<Handled, HandleError>> + Send>>;

/// An encoded response as handled, or the encoding's failure.
fn encoded(
    api_key: ApiKey,
    version: i16,
    result: anyhow::Result<BytesMut>,
) -> Result<Handled, HandleError> {
    result
        .map(Handled::frame)
        .map_err(|error| HandleError::Encode {
            api_key,
            version,
            reason: format!("{error:#}"),
        })
}

/// A handled request: the response frame (none for Produce with `acks = 0`) and the
/// in-flight budget it holds until written.
#[derive(Debug, Default)]
pub(crate) struct Handled {
    pub(crate) frame: Option<BytesMut>,
    /// The pieces of the frame that follow `frame`: a Fetch answer's record sets, written
    /// from the buffers they were read into (`api/fetch_frame.rs`).
    pub(crate) rest: Vec<Bytes>,
    pub(crate) budget: Option<MemoryPermit>,
    /// Close the connection once the frame is written (a failed authentication).
    pub(crate) close: bool,
}

impl Handled {
    pub(crate) fn frame(frame: BytesMut) -> Handled {
        Handled {
            frame: Some(frame),
            rest: Vec::new(),
            budget: None,
            close: false,
        }
    }
}

/// The in-flight budget `config` asks for, counted in `metrics`.
fn budget(config: &BrokerConfig, metrics: &BrokerMetrics) -> MemoryBudget {
    let (held, waits) = metrics.in_flight();
    MemoryBudget::new(config.in_flight_bytes_max, held, waits)
}

fn fetch_sessions(metrics: &BrokerMetrics) -> FetchSessions {
    let (open, evictions) = metrics.fetch_sessions();
    FetchSessions::new(open, evictions)
}

/// Writes checked record sets to `partition` without waiting for durability. Up to
/// [`INLINE_WRITE_BYTES_MAX`] in place, on the connection's task: a copy into the page cache
/// under the partition's writer lock takes microseconds, less than the hop to a blocking
/// thread and back (two thread wake-ups per produce request, serialised per partition under an
/// idempotent producer's state). Larger record sets go to a blocking thread. In place too: the
/// rare segment roll (a sync of the sealed segment, once per `segment_bytes`).
pub(crate) async fn write_batches(
    partition: &Arc<Partition>,
    batches: CheckedBatches,
) -> Result<AppendInfo, AppendError> {
    if batches.bytes().len() <= INLINE_WRITE_BYTES_MAX {
        return partition.write_checked_batches(batches);
    }
    let writer = partition.clone();
    blocking(move || writer.write_checked_batches(batches)).await
}

/// Runs blocking log work off the executor; a panic there panics the calling connection task
/// only, which the listener logs.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
