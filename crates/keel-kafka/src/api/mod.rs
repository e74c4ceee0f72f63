//! One handler file per api key, and the table of versions served.
//!
//! Versions are capped where a newer version would need something Keel does not have: topic
//! ids (Produce 13, Fetch 13+, DeleteTopics 6), ListOffsets' max-timestamp lookup (7+),
//! KIP-890's second transaction version (InitProducerId 5+, EndTxn 5, TxnOffsetCommit 5,
//! AddOffsetsToTxn 4, AddPartitionsToTxn 4+, which is broker-to-broker besides). Clients
//! negotiate down through ApiVersions.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use keel_log::{Partition, Topic};

pub(crate) mod add_offsets_to_txn;
pub(crate) mod add_partitions_to_txn;
pub(crate) mod alter_configs;
pub(crate) mod alter_user_scram_credentials;
pub(crate) mod api_versions;
pub(crate) mod create_acls;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_acls;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_acls;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_user_scram_credentials;
pub(crate) mod end_txn;
pub(crate) mod fetch;
pub(crate) mod fetch_frame;
pub(crate) mod incremental_alter_configs;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod produce;
pub(crate) mod txn_offset_commit;

/// Api keys served by the broker itself, with their inclusive version ranges.
pub(crate) const VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // v0 of SaslHandshake sends the mechanism's bytes as raw frames; clients that speak v1
    // wrap them in SaslAuthenticate, which is all Keel serves. v0 is still advertised:
    // librdkafka before 2.1 (Debian's kcat) turns SASL off unless the broker lists v0, then
    // speaks v1; a v0 handshake itself is refused (broker.rs).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The versions served for `api_key` by the broker itself.
pub(crate) fn versions(api_key: ApiKey) -> Option<(i16, i16)> {
    VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// The wire code of an error.
pub(crate) fn code(error: ResponseError) -> i16 {
    error.code()
}

/// Partition `index` of `topic` (looked up once per topic of a request), when both exist; a
/// negative index names none.
pub(crate) fn partition_of(topic: Option<&Arc<Topic>>, index: i32) -> Option<Arc<Partition>> {
    let index = u32::try_from(index).ok()?;
    topic?.partition(index).cloned()
}

/// An owned protocol string.
pub(crate) fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}
