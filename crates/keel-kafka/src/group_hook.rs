//! The seam where the consumer-group APIs plug into the broker.
//!
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups, DeleteGroups, OffsetDelete, ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe are served by a [`GroupHook`] given to
//! [`crate::Broker::with_group_hook`]. The broker decodes the request header, checks the
//! version against [`GroupHook::versions`] (which is also what ApiVersions advertises), and
//! hands over the body undecoded; the hook decodes it, does its work and returns the encoded
//! response body. Without a hook these keys are not advertised and are refused like any
//! unknown key. The hook never sees other keys, and the broker knows nothing of groups.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader};

use crate::acl::Access;
use crate::config::NodeAddress;
use crate::txn::PendingOffsets;

/// The api keys routed to the group hook.
pub const GROUP_API_KEYS: [ApiKey; 13] = [
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
];

/// One group request as received.
#[derive(Debug, Clone)]
pub struct GroupRequest {
    /// One of [`GROUP_API_KEYS`].
    pub api_key: ApiKey,
    /// A version within the hook's [`GroupHook::versions`] for this key.
    pub version: i16,
    /// The decoded request header (client id, correlation id).
    pub header: RequestHeader,
    /// The request body, to decode at `version`.
    pub body: Bytes,
    /// The client's address (DescribeGroups reports it as the member's host).
    pub peer: SocketAddr,
    /// This broker, the coordinator of every group (FindCoordinator answers with it).
    pub node: NodeAddress,
    /// Who sent it and what they may do; the hook authorizes with it (Kafka's ACLs on
    /// groups, and on the topics of offset requests).
    pub access: Access,
    /// The group offsets held in unfinished transactions, for an OffsetFetch with
    /// `require_stable`.
    pub pending_offsets: PendingOffsets,
}

/// Why a group request could not be answered; the connection is closed with this logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GroupHookError(pub String);

/// The future a hook returns: the encoded response body (without response header).
pub type GroupResponse<'a> =
    Pin<Box<dyn Future<Output = Result<BytesMut, GroupHookError>> + Send + 'a>>;

/// The consumer-group APIs, plugged into the broker.
pub trait GroupHook: Send + Sync + 'static {
    /// The inclusive version range served for `api_key`, or `None` when it is not served.
    fn versions(&self, api_key: ApiKey) -> Option<(i16, i16)>;

    /// Serves one request. Requests of one connection are handled one at a time, in order;
    /// a long wait (JoinGroup) holds back only that connection.
    fn handle(&self, request: GroupRequest) -> GroupResponse<'_>;

    /// Whether a TxnOffsetCommit for `group` may commit: its member and generation (or
    /// member epoch) as the group knows them, checked as Kafka checks a transactional
    /// commit (`ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`). The
    /// transaction coordinator asks before it holds the offsets.
    fn check_txn_offset_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError>;
}
