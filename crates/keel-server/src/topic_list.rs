//! The topics the console and `GET /api/topics` show, from either source: on the owned log
//! with sizes and settings (`keel_embedded::admin::topics::topic_view`, as `keel topics`
//! shows them, read per request: the log answers at once); on a cluster from the console
//! sampler's last sample of the admin port — partitions and their stored offsets (asking a
//! cluster of 1,650 topics per request took ~28 s) — and read now for one topic's own page.
//! The brokers keep the sizes and settings, so those stay empty in a cluster's list.
//!
//! Lists are filtered and paged by name before any partition is looked at, so a page of
//! 50 costs the same with 10 or 10,000 topics.
//!
//! Creating a topic on a cluster is here too (through the port, joining the sampled list).
//!
//! Not here: creating on the log, deleting or changing topics (`topics_api.rs`), the
//! sampler (`history.rs`).

use std::collections::BTreeMap;

use keel_core::{AdminTransport, PartitionOffsets, TransportError};
use keel_embedded::admin::topics::PartitionView;
use keel_log::{TopicError, validate_topic_name};

use crate::app::{ApiError, App};
use crate::history::offsets_of;
use crate::source::{Cluster, Source};
use crate::topics_api::{TopicView, topic_view};

/// A page of the topic list.
#[derive(Debug)]
pub(crate) struct TopicPage {
    /// Topics whose name matches, in all.
    pub(crate) total: usize,
    /// The page's topics, by name.
    pub(crate) views: Vec<TopicView>,
    /// When the sample they come from was taken (ms since the epoch); `None` when read now
    /// (the owned log, or a cluster before the sampler's first sample).
    pub(crate) sampled_at_ms: Option<i64>,
}

/// Topics whose name contains `filter`: how many match, and the views of page `page`
/// (from 1) of `per_page`, by name.
pub(crate) async fn page(
    app: &App,
    filter: String,
    page: usize,
    per_page: usize,
) -> Result<TopicPage, ApiError> {
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
                Ok::<_, ApiError>(TopicPage {
                    total: matching.len(),
                    views,
                    sampled_at_ms: None,
                })
            })
            .await;
    }
    if let Some(sampled) = app.history.topics() {
        let matching: Vec<_> = sampled
            .topics
            .iter()
            .filter(|(name, _)| name.contains(&filter))
            .collect();
        let views = matching
            .iter()
            .skip(skip)
            .take(per_page)
            .map(|(name, ranges)| view_of(name, ranges))
            .collect();
        return Ok(TopicPage {
            total: matching.len(),
            views,
            sampled_at_ms: Some(sampled.sampled_at_ms),
        });
    }
    // Before the first sample's topics: asked now, as the sampler does.
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
            let page = names.iter().skip(skip).take(per_page).cloned();
            // A topic deleted since it was listed is left out of the page.
            let views = offsets_of(admin, page)
                .await?
                .iter()
                .map(|(name, ranges)| view_of(name, ranges))
                .collect();
            Ok::<_, TransportError>(TopicPage {
                total: names.len(),
                views,
                sampled_at_ms: None,
            })
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

/// Creates `name` with `partitions` on `cluster` through the admin port, refusing an
/// existing topic (the port's create keeps one) and settings (the port creates with the
/// brokers' defaults; change them with the cluster's tools). The new topic joins the
/// sampled list at once, so the list shows it before the next sample.
pub(crate) async fn create_on_cluster(
    app: &App,
    cluster: &Cluster,
    name: String,
    partitions: u32,
    config: &BTreeMap<String, String>,
) -> Result<TopicView, ApiError> {
    if let Some(key) = config.keys().next() {
        return Err(ApiError::bad_request(format!(
            "setting '{key}' at creation needs a data directory; the cluster {} creates topics with its brokers' defaults (change them with its own tools)",
            cluster.name
        )));
    }
    validate_topic_name(&name)?;
    if partitions == 0 {
        return Err(ApiError::bad_request("a topic needs at least 1 partition"));
    }
    let admin = &*cluster.admin;
    if port_view(admin, &name).await?.is_some() {
        return Err(TopicError::AlreadyExists(name).into());
    }
    admin.create_topic(&name, partitions).await?;
    let view = port_view(admin, &name)
        .await?
        .ok_or_else(|| TopicError::NotFound(name.clone()))?;
    tracing::info!(topic = %name, partitions, cluster = %cluster.name, "topic created over HTTP");
    app.history.note_topic(&name, &view_ranges(&view));
    Ok(view)
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

/// The partitions' stored ranges of a view read through the port.
fn view_ranges(view: &TopicView) -> Vec<PartitionOffsets> {
    view.partitions
        .iter()
        .map(|p| PartitionOffsets {
            partition: p.partition,
            log_start: p.log_start_offset,
            high_watermark: p.high_watermark,
        })
        .collect()
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
