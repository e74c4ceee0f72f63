//! The catalog page: which event types travel on which topic, who publishes them (their
//! CloudEvents sources) and which groups consume the topic. On the owned log it is
//! `keel catalog`'s scan of every topic; on a cluster it is learned through the admin port
//! (`keel_schema::scan_port`) from the topics and groups of the console's sampler, a page of
//! topics at a time within [`CLUSTER_SCAN_TIME_MAX`], filtered by name — a cluster may hold
//! thousands of topics, and each read there is a fetch.
//!
//! Not here: the AsyncAPI document (`schemas_api.rs`), the scans (`keel_schema`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use keel_core::PartitionOffsets;
use keel_schema::{Catalog, is_catalogued};
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageResult, ROWS_PER_PAGE, Viewer, encode, page, pager};
use crate::app::{ApiError, App};
use crate::source::Source;

/// A topic with its partitions' stored ranges, as `keel_schema::scan_port` takes them.
pub(crate) type TopicRanges = (String, Vec<PartitionOffsets>);

/// Longest the catalog of one page of a cluster's topics reads records.
pub(crate) const CLUSTER_SCAN_TIME_MAX: Duration = Duration::from_secs(3);

pub(super) fn routes() -> Router<App> {
    Router::new().route("/catalog", get(catalog_page))
}

/// `?q=&page=` of the catalog.
#[derive(Debug, Default, Deserialize)]
struct CatalogParams {
    /// Only topics whose name contains this.
    q: Option<String>,
    page: Option<usize>,
}

async fn catalog_page(
    State(app): State<App>,
    viewer: Viewer,
    Query(params): Query<CatalogParams>,
) -> PageResult {
    let filter = params.q.unwrap_or_default();
    let page_number = params.page.unwrap_or(1).max(1);
    let body = match app.source {
        Source::Log(_) => {
            let (mut catalog, errors) = app
                .with_log(|log| Ok::<_, ApiError>(keel_schema::scan(log)))
                .await?;
            catalog.topics.retain(|topic, _| topic.contains(&filter));
            html! {
                p.muted { "Learned from the newest events of each topic: who publishes each event type (its CloudEvents sources) and which consumer groups read the topic. The same as an AsyncAPI 3.0 document: " a href="/api/catalog/asyncapi.json" data-figure="asyncapi" { "/api/catalog/asyncapi.json" } " (or " code { "keel catalog" } ")." }
                (filter_form(&filter))
                (catalog_table(&catalog, &errors))
            }
        }
        Source::Cluster(_) => cluster_catalog(&app, &filter, page_number).await?,
    };
    Ok(page("Catalog", "/catalog", viewer, body))
}

/// A page of a cluster's topics sampled through the port, or what the page waits for.
async fn cluster_catalog(app: &App, filter: &str, page_number: usize) -> Result<Markup, ApiError> {
    let skip = (page_number - 1) * ROWS_PER_PAGE;
    let Some((matching_count, topics)) = sampled_topics(app, filter, skip, ROWS_PER_PAGE) else {
        return Ok(html! {
            section #catalog data-live {
                p.muted data-figure="catalog-waits" { "The catalog reads the topics the console's sampler lists; its first sample is being taken." }
            }
        });
    };
    let (catalog, errors) = scan_cluster(app, topics, CLUSTER_SCAN_TIME_MAX).await?;
    let query = format!("q={}", encode(filter));
    let document = format!("/api/catalog/asyncapi.json?{query}");
    Ok(html! {
        p.muted { "Learned through the cluster's admin port from the newest events of each partition of " (matching_count) " topics, " (ROWS_PER_PAGE) " a page: who publishes each event type (its CloudEvents sources) and which consumer groups read the topic (the groups the console's sampler measured). The matching topics as an AsyncAPI 3.0 document: " a href=(document) data-figure="asyncapi" { "asyncapi.json" } "." }
        (filter_form(filter))
        (pager("/catalog", &query, page_number, matching_count))
        (catalog_table(&catalog, &errors))
    })
}

/// The catalogued topics of the sampler's last listing whose name contains `filter`: how
/// many match, and from the `skip`th at most `take` of them with their partitions' ranges
/// (only those copied: a cluster may list thousands); `None` before its first sample.
pub(crate) fn sampled_topics(
    app: &App,
    filter: &str,
    skip: usize,
    take: usize,
) -> Option<(usize, Vec<TopicRanges>)> {
    let sampled = app.history.topics()?;
    let matching: Vec<(&String, &Vec<PartitionOffsets>)> = sampled
        .topics
        .iter()
        .filter(|(name, _)| is_catalogued(name) && name.contains(filter))
        .collect();
    let page = matching
        .iter()
        .skip(skip)
        .take(take)
        .map(|(name, ranges)| ((*name).clone(), (*ranges).clone()))
        .collect();
    Some((matching.len(), page))
}

/// The catalog of a cluster's `topics`, read through its admin port for at most `time_max`,
/// with the groups the sampler measured on each; read errors and the topics the budget cut
/// short come alongside.
pub(crate) async fn scan_cluster(
    app: &App,
    topics: Vec<TopicRanges>,
    time_max: Duration,
) -> Result<(Catalog, Vec<String>), ApiError> {
    let consumers = consumers_of(app, &topics);
    app.on_ports(move |admin, _| {
        Box::pin(async move {
            Ok::<_, ApiError>(keel_schema::scan_port(admin, &topics, &consumers, time_max).await)
        })
    })
    .await
}

/// The groups with commits in each of `topics`, at the sampler's last measure of each.
fn consumers_of(app: &App, topics: &[TopicRanges]) -> BTreeMap<String, BTreeSet<String>> {
    let wanted: BTreeSet<&str> = topics.iter().map(|(name, _)| name.as_str()).collect();
    let mut consumers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in app.history.groups().groups {
        for topic in group.topics.iter().filter(|t| wanted.contains(t.as_str())) {
            consumers
                .entry(topic.clone())
                .or_default()
                .insert(group.group.clone());
        }
    }
    consumers
}

fn filter_form(filter: &str) -> Markup {
    html! {
        form.inline method="get" action="/catalog" {
            label { "Topic name contains" input name="q" value=(filter) autocomplete="off"; }
            button.secondary type="submit" { "Filter" }
        }
    }
}

fn catalog_table(catalog: &Catalog, errors: &[String]) -> Markup {
    html! {
        @for error in errors { p.warn data-figure="catalog-error" { (error) } }
        table data-figure="catalog" {
            thead { tr { th { "topic" } th { "event type" } th { "published by" } th { "consumed by" } th { "schema versions seen" } th.num { "events sampled" } } }
            tbody {
                @for (topic, facts) in &catalog.topics {
                    @for (ty, event) in &facts.events {
                        tr data-topic=(topic) data-type=(ty) {
                            td { a href=(format!("/topics/{}", encode(topic))) { (topic) } }
                            td { a href=(format!("/schemas/{}", encode(ty))) { (ty) } }
                            td data-figure="sources" { (event.sources.iter().cloned().collect::<Vec<_>>().join(", ")) }
                            td data-figure="consumers" { (facts.consumers.iter().cloned().collect::<Vec<_>>().join(", ")) }
                            td { (event.versions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td.num data-figure="events-sampled" { (event.count) }
                        }
                    }
                }
            }
        }
    }
}
