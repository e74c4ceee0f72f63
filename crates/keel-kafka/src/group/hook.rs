//! The coordinator as the broker's [`GroupHook`]: the broker hands over the undecoded body of
//! a group request; this decodes it at the request's version, routes it to the
//! [`GroupCoordinator`] method for its api key, and encodes the answer at the same version.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::group_hook::{GroupHook, GroupHookError, GroupRequest, GroupResponse};

use super::coordinator::{GroupCoordinator, RequestContext};

impl GroupHook for GroupCoordinator {
    fn versions(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        GroupCoordinator::versions(api_key)
    }

    fn handle(&self, request: GroupRequest) -> GroupResponse<'_> {
        Box::pin(async move {
            let GroupRequest {
                api_key,
                version,
                header,
                mut body,
                peer,
                node,
            } = request;
            let context = RequestContext {
                api_version: version,
                client_id: header
                    .client_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                // Kafka shows a member's host as the peer address with a leading slash.
                client_host: format!("/{}", peer.ip()),
            };
            // Decode at the request's version, call the coordinator, encode at that version.
            macro_rules! serve {
                ($request:ty, $call:expr) => {{
                    let request = decode::<$request>(api_key, version, &mut body)?;
                    let response = $call(request).await;
                    encode(api_key, version, &response)
                }};
            }
            match api_key {
                ApiKey::FindCoordinator => serve!(FindCoordinatorRequest, |r| self
                    .find_coordinator(&context, &node, r)),
                ApiKey::JoinGroup => serve!(JoinGroupRequest, |r| self.join_group(&context, r)),
                ApiKey::SyncGroup => serve!(SyncGroupRequest, |r| self.sync_group(&context, r)),
                ApiKey::Heartbeat => serve!(HeartbeatRequest, |r| self.heartbeat(&context, r)),
                ApiKey::LeaveGroup => serve!(LeaveGroupRequest, |r| self.leave_group(&context, r)),
                ApiKey::OffsetCommit => {
                    serve!(OffsetCommitRequest, |r| self.offset_commit(&context, r))
                }
                ApiKey::OffsetFetch => {
                    serve!(OffsetFetchRequest, |r| self.offset_fetch(&context, r))
                }
                ApiKey::ListGroups => serve!(ListGroupsRequest, |r| self.list_groups(&context, r)),
                ApiKey::DescribeGroups => {
                    serve!(DescribeGroupsRequest, |r| self.describe_groups(&context, r))
                }
                ApiKey::DeleteGroups => {
                    serve!(DeleteGroupsRequest, |r| self.delete_groups(&context, r))
                }
                ApiKey::OffsetDelete => {
                    serve!(OffsetDeleteRequest, |r| self.offset_delete(&context, r))
                }
                other => Err(GroupHookError(format!("{other:?} is not a group api key"))),
            }
        })
    }
}

/// Decodes a request body; a body that does not parse at its version is a broken client or
/// stream, so the broker closes the connection with this error logged.
fn decode<T: Decodable>(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<T, GroupHookError> {
    T::decode(body, version)
        .map_err(|e| GroupHookError(format!("malformed {api_key:?} v{version} request: {e}")))
}

/// Encodes a response body at the request's version.
fn encode<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    response: &T,
) -> Result<BytesMut, GroupHookError> {
    let mut out = BytesMut::new();
    response.encode(&mut out, version).map_err(|e| {
        GroupHookError(format!(
            "could not encode the {api_key:?} v{version} response: {e}"
        ))
    })?;
    Ok(out)
}
