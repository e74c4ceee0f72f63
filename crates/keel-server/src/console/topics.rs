//! The topics pages: the list (filtered by name, paginated, with sizes, settings and rates)
//! with the form that creates a topic, and one topic's page (settings, throughput, its
//! partitions paginated, the groups reading it, its settings — the log's or the cluster's —
//! changed after a preview of old → new, and its deletion behind a typed confirmation).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use keel_core::TopicSetting;
use keel_runtime::admin::groups;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    PageResult, ROWS_PER_PAGE, Viewer, bytes, chart, duration, encode, not_found, number, page,
    pager, rate, result_area, shows_changes,
};
use crate::app::{App, now_ms};
use crate::source::Source;
use crate::topic_list;
use crate::topic_settings;
use crate::topics_api::{TopicView, is_keel_owned};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/topics", get(list_page))
        .route("/topics/{topic}", get(topic_page))
}

/// `?q=&page=` of the list.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    q: Option<String>,
    page: Option<usize>,
}

async fn list_page(
    State(app): State<App>,
    viewer: Viewer,
    Query(params): Query<ListParams>,
) -> PageResult {
    let filter = params.q.clone().unwrap_or_default();
    let page_number = params.page.unwrap_or(1).max(1);
    let topic_list::TopicPage {
        total,
        views,
        sampled_at_ms,
    } = topic_list::page(&app, filter.clone(), page_number, ROWS_PER_PAGE).await?;
    // A cluster's brokers keep sizes and settings; only the owned log shows them.
    let local = matches!(app.source, Source::Log(_));
    let rates = app.history.latest_rates();
    let query = if filter.is_empty() {
        String::new()
    } else {
        format!("q={}", encode(&filter))
    };
    let body = html! {
        form.inline method="get" action="/topics" {
            label { "Name contains" input type="search" name="q" value=(filter) placeholder="orders"; }
            button.secondary type="submit" { "Filter" }
        }
        section #topic-list data-live {
            @if let Some(at) = sampled_at_ms {
                p.muted data-figure="sampled" data-ms=(groups::age_ms(now_ms(), at)) {
                    "Partitions and events as the console samples them every " (duration(app.console.history.interval_ms))
                    ", last " (duration(groups::age_ms(now_ms(), at))) " ago. A topic's own page reads it now."
                }
            }
            (pager("/topics", &query, page_number, total))
            table data-figure="topic-table" {
                thead { tr {
                    th { "topic" } th.num { "partitions" } th.num { "events" } th.num { "size" }
                    th { "retention" } th { "cleanup" } th { "fsync" } th.num { "in" } th.num { "out" }
                } }
                tbody {
                    @for t in &views {
                        @let (in_rate, out_rate) = rates.get(&t.name).copied().unwrap_or((0.0, 0.0));
                        tr data-topic=(t.name) {
                            td { a href=(format!("/topics/{}", encode(&t.name))) { (t.name) } }
                            td.num data-figure="partitions" { (t.partitions.len()) }
                            td.num data-figure="events" { (number(t.events)) }
                            @if local {
                                td.num { (bytes(t.bytes)) }
                                td { (retention(t)) }
                            } @else {
                                td.num { "-" } td { "-" }
                            }
                            td { (setting(t, "cleanup")) }
                            td { (setting(t, "fsync")) }
                            td.num { (rate(in_rate)) }
                            td.num { (rate(out_rate)) }
                        }
                    }
                }
            }
        }
        @if shows_changes(viewer) {
            (create_form(local))
        }
    };
    Ok(page("Topics", "/topics", viewer, body))
}

fn setting<'a>(topic: &'a TopicView, key: &str) -> &'a str {
    topic.config.get(key).map_or("-", String::as_str)
}

/// Retention in words: by time and size, or kept forever.
fn retention(topic: &TopicView) -> String {
    let time = setting(topic, "retention_ms");
    let size = setting(topic, "retention_bytes");
    match (time, size) {
        ("none", "none") => "forever".into(),
        (time, "none") => format!("{} ms", number(time.parse().unwrap_or(0))),
        ("none", size) => bytes(size.parse().unwrap_or(0)),
        (time, size) => format!(
            "{} ms or {}",
            number(time.parse().unwrap_or(0)),
            bytes(size.parse().unwrap_or(0))
        ),
    }
}

/// The form that creates a topic; with the log's settings when `local` (a cluster creates
/// with its brokers' defaults).
fn create_form(local: bool) -> Markup {
    html! {
        form.panel data-api="/api/topics" data-method="POST" data-then="reload"
            data-done="created topic {name}" #create-topic {
            h2 { "Create a topic" }
            div.toolbar {
                label { "Name" input name="name" required placeholder="orders" pattern="[A-Za-z0-9._-]+"; }
                label { "Partitions" input name="partitions" type="number" min="1" value="3" data-type="number"; }
                @if local {
                    label { "fsync" select name="config.fsync" {
                        option value="always" { "always (durable on ack)" }
                        option value="interval(100)" { "every 100 ms" }
                        option value="never" { "never" }
                    } }
                    label { "Retention (ms, empty = forever)" input name="config.retention_ms" type="number" min="1"; }
                    label { "Cleanup" select name="config.cleanup" {
                        option value="delete" { "delete" } option value="compact" { "compact" }
                    } }
                } @else {
                    span.muted { "Settings: the brokers' defaults." }
                }
                button type="submit" { "Create" }
            }
            (result_area())
        }
    }
}

/// `?page=` of a topic's partitions.
#[derive(Debug, Default, Deserialize)]
struct TopicParams {
    page: Option<usize>,
}

async fn topic_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(params): Query<TopicParams>,
) -> PageResult {
    let local = matches!(app.source, Source::Log(_));
    let view = topic_list::one(&app, name.clone())
        .await?
        .ok_or_else(|| not_found(format!("topic '{name}' does not exist")))?;
    let settings = topic_settings::describe(&app, name.clone()).await?;
    let consumers = app.history.readers_of(&name);
    let throughput = app.history.throughput(Some(&name));
    let page_number = params.page.unwrap_or(1).max(1);
    let encoded = encode(&name);
    let body = html! {
        p.toolbar {
            a href=(format!("/topics/{encoded}/events")) { "Browse events →" }
            @if shows_changes(viewer) { a href=(format!("/topics/{encoded}/events#produce")) { "Produce an event →" } }
        }
        section #topic-figures.figures data-live {
            div.figure { span.label { "Partitions" } span.value data-figure="partitions" { (view.partitions.len()) } }
            div.figure { span.label { "Events stored" } span.value data-figure="events" { (number(view.events)) } }
            @if local {
                div.figure { span.label { "Size" } span.value data-figure="bytes" { (bytes(view.bytes)) } }
                div.figure { span.label { "Retention" } span.value { (retention(&view)) } }
            }
        }
        section #topic-throughput data-live {
            h2 { "Throughput, last hour" }
            div.chart-box {
                (chart(&throughput.in_per_s, &throughput.out_per_s, "throughput"))
                p.legend { span.in { "— in" } " " span.out { "- - out" } " · events per second" }
            }
        }
        h2 { "Settings" }
        @if shows_changes(viewer) && !is_keel_owned(&name) {
            (settings_form(&name, &settings, local))
        } @else {
            (settings_table(&settings, false))
        }
        h2 { "Consumer groups" }
        p.muted { "Lag as the console measures it every " (duration(app.console.history.interval_ms)) " (the group list's figures); a group's own page measures it now." }
        @if consumers.is_empty() {
            p.muted { "No group has committed offsets in this topic." }
        } @else {
            table {
                thead { tr { th { "group" } th.num { "lag (events)" } th.num { "lag (time)" } } }
                tbody { @for (group, events, ms) in &consumers {
                    tr { td { a href=(format!("/groups/{}", encode(group))) { (group) } } td.num { (number(*events)) } td.num { (super::duration(*ms)) } }
                } }
            }
        }
        section #partitions data-live {
            h2 { "Partitions" }
            (pager(&format!("/topics/{encoded}"), "", page_number, view.partitions.len()))
            table data-figure="partition-table" {
                thead { tr { th.num { "partition" } th.num { "log start" } th.num { "high watermark" } th.num { "events" } th.num { "size" } th.num { "segments" } th {} } }
                tbody {
                    @for p in view.partitions.iter().skip((page_number - 1) * ROWS_PER_PAGE).take(ROWS_PER_PAGE) {
                        tr {
                            td.num { (p.partition) }
                            td.num { (number(p.log_start_offset)) }
                            td.num data-figure="high-watermark" { (number(p.high_watermark)) }
                            td.num { (number(p.high_watermark - p.log_start_offset)) }
                            td.num { (bytes(p.bytes)) }
                            td.num { (p.segments) }
                            td { a href=(format!("/topics/{encoded}/events?partition={}", p.partition)) { "events" } }
                        }
                    }
                }
            }
        }
        @if shows_changes(viewer) && !is_keel_owned(&name) {
            (delete_form(&name))
        }
    };
    Ok(page(&format!("Topic {name}"), "/topics", viewer, body))
}

/// The settings by Kafka's names, those set on the topic marked; `editable`, with an input
/// holding each value.
fn settings_table(settings: &[TopicSetting], editable: bool) -> Markup {
    html! {
        table.settings data-figure="settings" {
            tbody { @for setting in settings {
                @let key = &setting.name;
                tr {
                    th { (key) }
                    td.mono data-setting=(key) { (setting.value) }
                    td.muted { @if setting.is_default { "default" } @else { "set" } }
                    @if editable {
                        td { input name=(format!("config[{key}]")) value=(setting.value) aria-label=(key) autocomplete="off"; }
                    }
                }
            } }
        }
    }
}

/// The form that changes the settings: every setting with its value in an input; a preview
/// lists what differs (old → new) and opens the button that applies it.
fn settings_form(name: &str, settings: &[TopicSetting], local: bool) -> Markup {
    html! {
        form.panel #topic-settings data-api=(format!("/api/topics/{}/config", encode(name)))
            data-method="PATCH" data-render="table:changes" data-then="reload" {
            (settings_table(settings, true))
            @if local {
                p.muted { "Kafka's names and units: -1 is no limit. keel.fsync is always, never or interval(ms). In force at once for every partition; the partition count is fixed." }
            } @else {
                p.muted { "Kafka's names and units: -1 is no limit. The cluster's brokers check a change (the preview asks them without changing anything) and apply it to every partition; settings left at their default follow the brokers'." }
            }
            div.toolbar {
                button.secondary type="submit" name="dry_run" value="true" data-type="bool" data-preview
                    data-done="{changes} setting(s) would change" { "Preview changes" }
                button type="submit" name="dry_run" value="false" data-type="bool" data-needs-preview disabled
                    data-done="changed {changes} setting(s)" { "Apply" }
            }
            (result_area())
        }
    }
}

/// The form that deletes the topic once its name is typed: on the log as on a cluster,
/// whose brokers delete it (DeleteTopics).
fn delete_form(name: &str) -> Markup {
    html! {
        form.panel.danger #delete-topic data-api=(format!("/api/topics/{}", encode(name))) data-method="DELETE"
            data-confirm-field="confirm_name" data-confirm-value=(name) data-then="goto:/topics"
            data-done="deleted topic {deleted}" {
            h2 { "Delete this topic" }
            p { "Deleting removes every partition and event of " code { (name) } " and the consumer groups' committed offsets in it, at once." }
            div.toolbar {
                label { "Type the topic name to confirm" input name="confirm_name" data-skip autocomplete="off"; }
                button.danger type="submit" { "Delete topic" }
            }
            (result_area())
        }
    }
}
