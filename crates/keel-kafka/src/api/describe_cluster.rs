//! DescribeCluster (60): the one-node cluster, for admin tools.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::api::text;
use crate::broker::Broker;

/// Answers DescribeCluster.
pub(crate) fn handle(
    broker: &Broker,
    _request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let node = &broker.node;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(text(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(node.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(node.node_id))
                .with_host(text(node.host.clone()))
                .with_port(i32::from(node.port)),
        ]);
    if version >= 1 {
        // Endpoint type 1: brokers (2 would be controllers).
        response = response.with_endpoint_type(1);
    }
    response
}
