//! The topics the console and `GET /api/topics` show, from either source: on the owned log
//! with sizes and settings (`keel_embedded::admin::topics::topic_view`, as `keel topics`
//! shows them), on a cluster from the admin port — partitions and their stored offsets;
//! the brokers keep the sizes and settings, so those stay empty there.
//!
//! Lists are filtered and paged by name before any partition is looked at, so a page of
//! 50 costs the same with 10 or 10,000 topics.
//!
//! Not here: creating, deleting or changing topics (`topics_api.rs`, the owned log only).

use std::collections::BTreeMap;

use keel_core::{AdminTransport, PartitionOffsets, TransportError};
use keel_embedded::admin::topics::PartitionView;

use crate::app::{ApiError, App};
use crate::source::Source;
use crate::topics_api::{TopicView, topic_view};

/// Topics whose name contains `filter`: how many match, and the views of page `page`
/// (from 1) of `per_page`, by name.
pub(crate) async fn page(
    app: &App,
    filter: String,
    page: usize,
    per_page: usize,
) -> Result<(usize, Vec<TopicView>), ApiError> {
    let skip = (page.max(1) - 1).saturating_mul(per_page);
    if let Source::Log(_) = app.source {
        return app
            .with_log(move |log| {
                let topics = log.topics();
                let matching: Vec<_> = topics
                    .iter()
                    .filter(|t| t.name().contains(&filter))
                    .collect();
                let views = matching
                    .iter()
                    .skip(skip)
                    .take(per_page)
                    .map(|t| topic_view(t))
                    .collect();
                Ok::<_, ApiError>((matching.len(), views))
            })
            .await;
    }
    app.on_ports(move |admin, _| {
        Box::pin(async move {
            let mut names: Vec<String> = admin
                .topics()
                .await?
                .into_iter()
                .map(|t| t.name)
                .filter(|name| name.contains(&filter))
                .collect();
            names.sort();
            let mut views = Vec::new();
            for name in names.iter().skip(skip).take(per_page) {
                // A topic deleted since it was listed is left out of the page.
                if let Some(view) = port_view(admin, name).await? {
                    views.push(view);
                }
            }
            Ok::<_, TransportError>((names.len(), views))
        })
    })
    .await
}

/// The view of the topic `name`; `None` when it does not exist.
pub(crate) async fn one(app: &App, name: String) -> Result<Option<TopicView>, ApiError> {
    if let Source::Log(_) = app.source {
        return app
            .with_log(move |log| Ok::<_, ApiError>(log.topic(&name).map(|t| topic_view(&t))))
            .await;
    }
    app.on_ports(move |admin, _| Box::pin(async move { port_view(admin, &name).await }))
        .await
}

/// `name` as the admin port sees it: partitions and stored offsets, no sizes or settings.
async fn port_view(
    admin: &dyn AdminTransport,
    name: &str,
) -> Result<Option<TopicView>, TransportError> {
    let ranges = match admin.partition_offsets(name).await {
        Ok(ranges) => ranges,
        Err(TransportError::UnknownTopic { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(Some(view_of(name, &ranges)))
}

fn view_of(name: &str, ranges: &[PartitionOffsets]) -> TopicView {
    let partitions: Vec<PartitionView> = ranges
        .iter()
        .map(|range| PartitionView {
            partition: range.partition,
            log_start_offset: range.log_start,
            high_watermark: range.high_watermark,
            bytes: 0,
            segments: 0,
        })
        .collect();
    TopicView {
        name: name.to_string(),
        events: partitions
            .iter()
            .map(|p| p.high_watermark - p.log_start_offset)
            .sum(),
        bytes: 0,
        config: BTreeMap::new(),
        partitions,
    }
}
