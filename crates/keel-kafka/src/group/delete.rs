//! DeleteGroups and OffsetDelete: forgetting a group's committed offsets, all of them or
//! some partitions', with tombstones in `__consumer_offsets` (`keel_log::GroupOffsets`).
//!
//! As Kafka: a group with live members is not deleted (`NON_EMPTY_GROUP`), and an offset is
//! not deleted for a topic the live members consume (`GROUP_SUBSCRIBED_TO_TOPIC`, judged here
//! by their assignments: the coordinator does not decode subscriptions). A group known
//! neither live nor by its offsets is `GROUP_ID_NOT_FOUND`. The check and the deletion are
//! not one step: a member that joins in between finds the group as if it joined just after
//! the deletion, which is a state Kafka's own ordering allows too.
//!
//! Not here: KIP-848 groups, share groups, ACLs.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};

use super::coordinator::Shared;
use super::view::group_view;

/// Answers DeleteGroups: each group's offsets go in one batch of tombstones.
pub(crate) async fn delete_groups(
    shared: &Shared,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in request.groups_names {
        let id = group.to_string();
        let verdict = if id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else if shared.groups().contains(&id) {
            Err(ResponseError::NonEmptyGroup)
        } else if shared.log.group_offsets().group(&id).is_empty() {
            Err(ResponseError::GroupIdNotFound)
        } else {
            let log = shared.log.clone();
            let doomed = id.clone();
            stored(&id, move || log.group_offsets().delete_group(&doomed)).await
        };
        if verdict.is_ok() {
            tracing::info!(group = %id, "group deleted");
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(verdict.err().map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Answers OffsetDelete: the named partitions' offsets of one group, except those of topics
/// its live members consume.
pub(crate) async fn offset_delete(
    shared: &Shared,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let id = request.group_id.to_string();
    let live = group_view(shared, &id);
    if id.is_empty() {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::InvalidGroupId.code());
    }
    if live.is_none() && shared.log.group_offsets().group(&id).is_empty() {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    }
    let consumed = |topic: &str| {
        live.as_ref().is_some_and(|view| {
            view.members
                .iter()
                .any(|m| m.partitions.iter().any(|(t, _)| t == topic))
        })
    };
    let mut doomed: Vec<(String, u32)> = Vec::new();
    let mut answers: Vec<(usize, usize, ResponseError)> = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        for (p, partition) in topic.partitions.iter().enumerate() {
            if consumed(&topic.name) {
                answers.push((t, p, ResponseError::GroupSubscribedToTopic));
            } else if let Ok(index) = u32::try_from(partition.partition_index) {
                doomed.push((topic.name.to_string(), index));
            }
        }
    }
    let deleted = if doomed.is_empty() {
        Ok(())
    } else {
        let log = shared.log.clone();
        let group = id.clone();
        stored(&id, move || {
            log.group_offsets().delete_offsets(&group, &doomed)
        })
        .await
    };
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(t, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(p, partition)| {
                    let refused = answers
                        .iter()
                        .find(|(at, ap, _)| (*at, *ap) == (t, p))
                        .map(|(_, _, e)| *e);
                    let code = refused.or(deleted.err()).map_or(0, |e| e.code());
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// Runs a deletion of `group`'s offsets on a blocking thread; a failed append is logged and
/// answered `COORDINATOR_NOT_AVAILABLE`, as a failed commit is.
async fn stored(
    group: &str,
    delete: impl FnOnce() -> Result<(), keel_log::AppendError> + Send + 'static,
) -> Result<(), ResponseError> {
    let outcome = tokio::task::spawn_blocking(delete)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    outcome.map_err(|error| {
        tracing::error!(%group, %error, "deleting committed offsets failed");
        ResponseError::CoordinatorNotAvailable
    })
}
