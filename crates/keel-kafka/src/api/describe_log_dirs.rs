//! DescribeLogDirs (35): the one log directory (the data directory's `topics/`) with each
//! partition's size on disk, for admin tools. Keel has no replicas moving between
//! directories, so every partition's `offset_lag` is 0 and none is a future replica. Needs
//! Describe on the cluster (`CLUSTER_AUTHORIZATION_FAILED`), as Kafka.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use crate::acl::{Caller, Operation};
use crate::api::{code, text};
use crate::broker::Broker;

/// Kafka's "volume size not known" for `total_bytes` and `usable_bytes` (v4+).
const VOLUME_BYTES_UNKNOWN: i64 = -1;

/// Answers DescribeLogDirs: every user topic when the request names none (null), else the
/// named partitions that exist (Kafka leaves out what it does not host).
pub(crate) fn handle(
    broker: &Broker,
    caller: &Caller,
    request: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    if !broker.cluster_allowed(caller, Operation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(code(
            kafka_protocol::ResponseError::ClusterAuthorizationFailed,
        ));
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let topics = broker
        .log
        .topics()
        .into_iter()
        .filter_map(|topic| {
            let named = match &wanted {
                None => None,
                Some(wanted) => Some(
                    wanted
                        .iter()
                        .find(|(name, _)| name == topic.name())
                        .map(|(_, partitions)| partitions)?,
                ),
            };
            let partitions: Vec<DescribeLogDirsPartition> = topic
                .partitions()
                .iter()
                .enumerate()
                .filter(|(index, _)| named.is_none_or(|p| p.contains(&(*index as i32))))
                .map(|(index, partition)| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index as i32)
                        .with_partition_size(partition.size_bytes() as i64)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(text(topic.name())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = broker.log.root().join("topics");
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(text(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(VOLUME_BYTES_UNKNOWN)
            .with_usable_bytes(VOLUME_BYTES_UNKNOWN),
    ])
}
