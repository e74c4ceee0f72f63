//! The coordinator as the broker's [`GroupHook`]: the broker hands over the undecoded body of
//! a group request; this decodes it at the request's version, routes it to the
//! [`GroupCoordinator`] method for its api key (through `authorize.rs`, which applies the
//! caller's ACLs), and encodes the answer at the same version.

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::group_hook::{GroupHook, GroupHookError, GroupRequest, GroupResponse};

use super::consumer::wire::heartbeat_error;
use super::coordinator::{GroupCoordinator, RequestContext};
use super::state::{join_error, sync_error};
use super::{authorize, offsets};

impl GroupHook for GroupCoordinator {
    fn versions(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        GroupCoordinator::versions(api_key)
    }

    fn check_txn_offset_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        offsets::check_membership(
            &self.shared,
            group,
            generation,
            member_id,
            instance_id,
            true,
        )
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
                access,
                pending_offsets,
            } = request;
            let access = &access;
            let denied = ResponseError::GroupAuthorizationFailed;
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
                ApiKey::FindCoordinator => serve!(FindCoordinatorRequest, |r| {
                    authorize::find_coordinator(self, &context, access, &node, r)
                }),
                ApiKey::JoinGroup => serve!(JoinGroupRequest, |r: JoinGroupRequest| async {
                    if !authorize::member(access, &r.group_id) {
                        return join_error(denied, &r.member_id);
                    }
                    self.join_group(&context, r).await
                }),
                ApiKey::SyncGroup => serve!(SyncGroupRequest, |r: SyncGroupRequest| async {
                    if !authorize::member(access, &r.group_id) {
                        return sync_error(denied);
                    }
                    self.sync_group(&context, r).await
                }),
                ApiKey::Heartbeat => serve!(HeartbeatRequest, |r: HeartbeatRequest| async {
                    if !authorize::member(access, &r.group_id) {
                        return HeartbeatResponse::default().with_error_code(denied.code());
                    }
                    self.heartbeat(&context, r).await
                }),
                ApiKey::LeaveGroup => serve!(LeaveGroupRequest, |r: LeaveGroupRequest| async {
                    if !authorize::member(access, &r.group_id) {
                        return LeaveGroupResponse::default().with_error_code(denied.code());
                    }
                    self.leave_group(&context, r).await
                }),
                ApiKey::OffsetCommit => serve!(OffsetCommitRequest, |r| {
                    authorize::offset_commit(self, &context, access, r)
                }),
                ApiKey::OffsetFetch => serve!(OffsetFetchRequest, |r: OffsetFetchRequest| async {
                    let (stable, group) = (r.require_stable, r.group_id.clone());
                    let mut response = authorize::offset_fetch(self, &context, access, r).await;
                    if stable {
                        offsets::mark_unstable(&mut response, &group, &pending_offsets);
                    }
                    response
                }),
                ApiKey::ListGroups => serve!(ListGroupsRequest, |r| {
                    authorize::list_groups(self, &context, access, r)
                }),
                ApiKey::DescribeGroups => serve!(DescribeGroupsRequest, |r| {
                    authorize::describe_groups(self, &context, access, r)
                }),
                ApiKey::DeleteGroups => serve!(DeleteGroupsRequest, |r| {
                    authorize::delete_groups(self, &context, access, r)
                }),
                ApiKey::OffsetDelete => serve!(OffsetDeleteRequest, |r| {
                    authorize::offset_delete(self, &context, access, r)
                }),
                ApiKey::ConsumerGroupHeartbeat => {
                    serve!(
                        ConsumerGroupHeartbeatRequest,
                        |r: ConsumerGroupHeartbeatRequest| {
                            async {
                                if !authorize::member(access, &r.group_id) {
                                    return heartbeat_error(denied, "not authorized to the group");
                                }
                                self.consumer_group_heartbeat(&context, r).await
                            }
                        }
                    )
                }
                ApiKey::ConsumerGroupDescribe => serve!(ConsumerGroupDescribeRequest, |r| {
                    authorize::consumer_group_describe(self, &context, access, r)
                }),
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
