//! Frames to typed requests and typed responses to frames. No I/O: the connection feeds it
//! frames, and the fuzz target feeds it arbitrary bytes.
//!
//! A frame is the bytes after Kafka's 4-byte length prefix: a request header (api key,
//! version, correlation id, client id, tagged fields from header v2 on) followed by the body.
//! The header's own version depends on the api key and version, so the key and version are
//! read first and checked against what the broker serves before anything else is parsed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest,
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest, CreateAclsRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeAclsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeLogDirsRequest, DescribeUserScramCredentialsRequest, EndTxnRequest, FetchRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::limits::REQUEST_HEADER_BYTES_MIN;

/// A request the broker serves, decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// ApiVersions (18).
    ApiVersions(ApiVersionsRequest),
    /// Metadata (3).
    Metadata(MetadataRequest),
    /// CreateTopics (19).
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics (20).
    DeleteTopics(DeleteTopicsRequest),
    /// DeleteRecords (21).
    DeleteRecords(DeleteRecordsRequest),
    /// Produce (0).
    Produce(ProduceRequest),
    /// Fetch (1).
    Fetch(FetchRequest),
    /// ListOffsets (2).
    ListOffsets(ListOffsetsRequest),
    /// InitProducerId (22).
    InitProducerId(InitProducerIdRequest),
    /// AddPartitionsToTxn (24).
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    /// AddOffsetsToTxn (25).
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    /// EndTxn (26).
    EndTxn(EndTxnRequest),
    /// TxnOffsetCommit (28).
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// DescribeConfigs (32).
    DescribeConfigs(DescribeConfigsRequest),
    /// AlterConfigs (33).
    AlterConfigs(AlterConfigsRequest),
    /// IncrementalAlterConfigs (44).
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    /// DescribeCluster (60).
    DescribeCluster(DescribeClusterRequest),
    /// CreatePartitions (37).
    CreatePartitions(CreatePartitionsRequest),
    /// DescribeLogDirs (35).
    DescribeLogDirs(DescribeLogDirsRequest),
    /// DescribeAcls (29).
    DescribeAcls(DescribeAclsRequest),
    /// CreateAcls (30).
    CreateAcls(CreateAclsRequest),
    /// DeleteAcls (31).
    DeleteAcls(DeleteAclsRequest),
    /// DescribeUserScramCredentials (50).
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    /// AlterUserScramCredentials (51).
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    /// SaslHandshake (17): answered by the connection's SASL session.
    SaslHandshake(SaslHandshakeRequest),
    /// SaslAuthenticate (36): answered by the connection's SASL session.
    SaslAuthenticate(SaslAuthenticateRequest),
    /// A consumer-group API; the body is decoded by the [`crate::GroupHook`].
    Group(Bytes),
}

/// A decoded frame: its header and the request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The api key (also in `header.request_api_key`).
    pub api_key: ApiKey,
    /// The request version (also in `header.request_api_version`).
    pub version: i16,
    /// The request header.
    pub header: RequestHeader,
    /// The body.
    pub request: Request,
}

/// Why a frame is not a request the broker serves. The first two are answered with
/// `UNSUPPORTED_VERSION` and the connection goes on; the others close the connection, because
/// the byte stream can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The api key is not one this broker serves.
    #[error("unsupported api key {api_key} (correlation id {correlation_id})")]
    UnsupportedApiKey {
        /// The key sent.
        api_key: i16,
        /// Echoed in the error response.
        correlation_id: i32,
    },
    /// The api key is served, but not at this version.
    #[error("unsupported version {version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The key sent.
        api_key: ApiKey,
        /// The version sent.
        version: i16,
        /// Echoed in the error response.
        correlation_id: i32,
    },
    /// Fewer bytes than the fixed part of a request header.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// The header or body does not parse at the version it claims.
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        /// The key sent.
        api_key: ApiKey,
        /// The version sent.
        version: i16,
        /// What the decoder reported.
        reason: String,
    },
}

/// The versions of an api key the broker serves, if any; see `api/mod.rs`.
pub type VersionsOf<'a> = &'a dyn Fn(ApiKey) -> Option<(i16, i16)>;

/// The versions the broker itself serves for `api_key` (group keys excluded: their versions
/// come from the [`crate::GroupHook`]).
pub fn broker_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    crate::api::versions(api_key)
}

/// Decodes one frame (without its length prefix). `versions` says which api keys and versions
/// are served; anything else is refused before its header or body is parsed.
pub fn decode_request(
    frame: Bytes,
    versions: VersionsOf<'_>,
) -> Result<DecodedRequest, DecodeError> {
    if frame.len() < REQUEST_HEADER_BYTES_MIN {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let mut fixed = &frame[..REQUEST_HEADER_BYTES_MIN];
    let raw_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Err(DecodeError::UnsupportedApiKey {
            api_key: raw_key,
            correlation_id,
        });
    };
    let Some((min, max)) = versions(api_key) else {
        return Err(DecodeError::UnsupportedApiKey {
            api_key: raw_key,
            correlation_id,
        });
    };
    if !(min..=max).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |error: anyhow::Error| DecodeError::Malformed {
        api_key,
        version,
        reason: format!("{error:#}"),
    };
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api_key.request_header_version(version))
        .map_err(malformed)?;
    crate::request_shape::check(api_key, version, &body)
        .map_err(|error| malformed(anyhow::Error::new(error)))?;
    let request = decode_body(api_key, version, &mut body).map_err(malformed)?;
    Ok(DecodedRequest {
        api_key,
        version,
        header,
        request,
    })
}

fn decode_body(api_key: ApiKey, version: i16, body: &mut Bytes) -> anyhow::Result<Request> {
    use ApiKey as K;
    Ok(match api_key {
        K::ApiVersions => Request::ApiVersions(ApiVersionsRequest::decode(body, version)?),
        K::Metadata => Request::Metadata(MetadataRequest::decode(body, version)?),
        K::CreateTopics => Request::CreateTopics(CreateTopicsRequest::decode(body, version)?),
        K::DeleteTopics => Request::DeleteTopics(DeleteTopicsRequest::decode(body, version)?),
        K::DeleteRecords => Request::DeleteRecords(DeleteRecordsRequest::decode(body, version)?),
        K::Produce => Request::Produce(ProduceRequest::decode(body, version)?),
        K::Fetch => Request::Fetch(FetchRequest::decode(body, version)?),
        K::ListOffsets => Request::ListOffsets(ListOffsetsRequest::decode(body, version)?),
        K::InitProducerId => Request::InitProducerId(InitProducerIdRequest::decode(body, version)?),
        K::AddPartitionsToTxn => {
            Request::AddPartitionsToTxn(AddPartitionsToTxnRequest::decode(body, version)?)
        }
        K::AddOffsetsToTxn => {
            Request::AddOffsetsToTxn(AddOffsetsToTxnRequest::decode(body, version)?)
        }
        K::EndTxn => Request::EndTxn(EndTxnRequest::decode(body, version)?),
        K::TxnOffsetCommit => {
            Request::TxnOffsetCommit(TxnOffsetCommitRequest::decode(body, version)?)
        }
        K::DescribeConfigs => {
            Request::DescribeConfigs(DescribeConfigsRequest::decode(body, version)?)
        }
        K::AlterConfigs => Request::AlterConfigs(AlterConfigsRequest::decode(body, version)?),
        K::IncrementalAlterConfigs => {
            Request::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::decode(body, version)?)
        }
        K::DescribeCluster => {
            Request::DescribeCluster(DescribeClusterRequest::decode(body, version)?)
        }
        K::CreatePartitions => {
            Request::CreatePartitions(CreatePartitionsRequest::decode(body, version)?)
        }
        K::DescribeLogDirs => {
            Request::DescribeLogDirs(DescribeLogDirsRequest::decode(body, version)?)
        }
        K::DescribeAcls => Request::DescribeAcls(DescribeAclsRequest::decode(body, version)?),
        K::CreateAcls => Request::CreateAcls(CreateAclsRequest::decode(body, version)?),
        K::DeleteAcls => Request::DeleteAcls(DeleteAclsRequest::decode(body, version)?),
        K::DescribeUserScramCredentials => Request::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::decode(body, version)?,
        ),
        K::AlterUserScramCredentials => Request::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::decode(body, version)?,
        ),
        K::SaslHandshake => Request::SaslHandshake(SaslHandshakeRequest::decode(body, version)?),
        K::SaslAuthenticate => {
            Request::SaslAuthenticate(SaslAuthenticateRequest::decode(body, version)?)
        }
        _ => Request::Group(std::mem::take(body)),
    })
}

/// Encodes a response frame: length prefix, response header for `api_key`/`version`, body.
///
/// The frame is sized for the whole body before encoding: a Fetch response of a few MiB of
/// records grew from 64 bytes by doubling, copying what it held at every step.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) -> anyhow::Result<BytesMut> {
    let mut frame = response_frame(api_key, version, correlation_id)?;
    frame.reserve(body.compute_size(version)?);
    body.encode(&mut frame, version)?;
    Ok(finish_frame(frame))
}

/// Starts a response frame: a length placeholder and the response header. The caller appends
/// the body and calls [`finish_frame`].
pub fn response_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<BytesMut> {
    let mut frame = BytesMut::with_capacity(64);
    frame.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, api_key.response_header_version(version))?;
    Ok(frame)
}

/// Writes the length prefix of a frame started by [`response_frame`].
pub fn finish_frame(mut frame: BytesMut) -> BytesMut {
    let length = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    frame
}

/// The answer to a request for an api key this broker does not serve: a response header
/// (v0: the correlation id) and the error code `UNSUPPORTED_VERSION`. A client that did not
/// negotiate with ApiVersions first gets a clear error code instead of a dropped connection.
pub fn unsupported_api_key_response(correlation_id: i32) -> BytesMut {
    let mut frame = BytesMut::with_capacity(10);
    frame.put_i32(6);
    frame.put_i32(correlation_id);
    frame.put_i16(UNSUPPORTED_VERSION);
    frame
}

/// Kafka's `UNSUPPORTED_VERSION` error code.
pub const UNSUPPORTED_VERSION: i16 = 35;
