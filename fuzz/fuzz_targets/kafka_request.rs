//! Fuzz target: keel-kafka's request decoding — `codec::decode_request` on arbitrary frames,
//! exactly as a connection calls it after reading a length prefix.
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
use kafka_protocol::messages::ApiKey;
use keel_kafka::codec::{DecodeError, broker_versions, decode_request};
use libfuzzer_sys::fuzz_target;

const SERVED: [ApiKey; 10] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::DescribeConfigs,
    ApiKey::DescribeCluster,
];

fuzz_target!(|data: &[u8]| {
    let mut frame = data.to_vec();
    if frame.len() >= 8 && frame[0] & 7 != 0 {
        let key = SERVED[usize::from(frame[1]) % SERVED.len()];
        let (min, max) = broker_versions(key).expect("served");
        let version = min + i16::from(frame[2]) % (max - min + 1);
        frame[..2].copy_from_slice(&(key as i16).to_be_bytes());
        frame[2..4].copy_from_slice(&version.to_be_bytes());
    }
    let correlation_id = frame.get(4..8).map(|b| i32::from_be_bytes(b.try_into().unwrap()));
    match decode_request(Bytes::from(frame.clone()), &broker_versions) {
        Ok(decoded) => {
            assert_eq!(decoded.api_key as i16, i16::from_be_bytes([frame[0], frame[1]]));
            assert_eq!(decoded.version, i16::from_be_bytes([frame[2], frame[3]]));
            assert_eq!(Some(decoded.header.correlation_id), correlation_id);
        }
        Err(
            DecodeError::UnsupportedApiKey { correlation_id: c, .. }
            | DecodeError::UnsupportedVersion { correlation_id: c, .. },
        ) => assert_eq!(Some(c), correlation_id),
        Err(_) => {}
    }
});
