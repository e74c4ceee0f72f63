//! Fuzz target: keel-kafka's request decoding — `codec::decode_request` on arbitrary frames,
//! exactly as a connection calls it after reading a length prefix, with the group coordinator's
//! keys and versions served too; a group body it accepts is then decoded with the
//! `kafka-protocol` type for its key, as the group hook does.
//!
//! Input: the frame. Its first two bytes are replaced by an api key the broker serves (picked
//! by the first byte) and its version clamped into the served range (from the second and
//! third bytes), so the fuzzer spends its time in the header and body decoders rather than in
//! front of the version check; one input in eight keeps its raw key and version.
//!
//! Properties: nothing panics or aborts (an array count claiming more elements than bytes
//! left must be refused before `kafka-protocol` reserves memory for it); a decoded request
//! reports the key, version and correlation id of the frame; a refused key or version is
//! refused with the frame's correlation id.

#![no_main]

use bytes::Bytes;
use std::sync::OnceLock;

use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::Decodable;
use keel_kafka::codec::{DecodeError, Request, broker_versions, decode_request};
use keel_kafka::group::GroupCoordinator;
use libfuzzer_sys::fuzz_target;

/// Every api key `keel serve` serves, from the served versions themselves, so a key added to
/// the broker (SASL, ACLs, configs, groups) is fuzzed without editing this list.
fn served() -> &'static [ApiKey] {
    static SERVED: OnceLock<Vec<ApiKey>> = OnceLock::new();
    SERVED.get_or_init(|| {
        ApiKey::iter()
            .filter(|&key| versions(key).is_some())
            .collect()
    })
}

/// The versions `keel serve` serves: the broker's own and the group coordinator's.
fn versions(key: ApiKey) -> Option<(i16, i16)> {
    broker_versions(key).or_else(|| GroupCoordinator::versions(key))
}

/// Decodes a group body with its `kafka-protocol` type, as the group hook does.
fn decode_group(key: ApiKey, version: i16, mut body: Bytes) {
    fn decode<T: Decodable>(body: &mut Bytes, version: i16) {
        let _ = T::decode(body, version);
    }
    let body = &mut body;
    match key {
        ApiKey::FindCoordinator => decode::<FindCoordinatorRequest>(body, version),
        ApiKey::JoinGroup => decode::<JoinGroupRequest>(body, version),
        ApiKey::SyncGroup => decode::<SyncGroupRequest>(body, version),
        ApiKey::Heartbeat => decode::<HeartbeatRequest>(body, version),
        ApiKey::LeaveGroup => decode::<LeaveGroupRequest>(body, version),
        ApiKey::OffsetCommit => decode::<OffsetCommitRequest>(body, version),
        ApiKey::OffsetFetch => decode::<OffsetFetchRequest>(body, version),
        ApiKey::ListGroups => decode::<ListGroupsRequest>(body, version),
        ApiKey::DescribeGroups => decode::<DescribeGroupsRequest>(body, version),
        ApiKey::DeleteGroups => decode::<DeleteGroupsRequest>(body, version),
        ApiKey::OffsetDelete => decode::<OffsetDeleteRequest>(body, version),
        other => panic!("{other:?} reached the group hook"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut frame = data.to_vec();
    if frame.len() >= 8 && frame[0] & 7 != 0 {
        let served = served();
        let key = served[usize::from(frame[1]) % served.len()];
        let (min, max) = versions(key).expect("served");
        let version = min + i16::from(frame[2]) % (max - min + 1);
        frame[..2].copy_from_slice(&(key as i16).to_be_bytes());
        frame[2..4].copy_from_slice(&version.to_be_bytes());
    }
    let correlation_id = frame
        .get(4..8)
        .map(|b| i32::from_be_bytes(b.try_into().unwrap()));
    match decode_request(Bytes::from(frame.clone()), &versions) {
        Ok(decoded) => {
            if let Request::Group(body) = decoded.request {
                decode_group(decoded.api_key, decoded.version, body);
            }
            assert_eq!(
                decoded.api_key as i16,
                i16::from_be_bytes([frame[0], frame[1]])
            );
            assert_eq!(decoded.version, i16::from_be_bytes([frame[2], frame[3]]));
            assert_eq!(Some(decoded.header.correlation_id), correlation_id);
        }
        Err(
            DecodeError::UnsupportedApiKey {
                correlation_id: c, ..
            }
            | DecodeError::UnsupportedVersion {
                correlation_id: c, ..
            },
        ) => assert_eq!(Some(c), correlation_id),
        Err(_) => {}
    }
});
