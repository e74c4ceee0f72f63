//! The consumer-group pages: every group with its lag and lag history, and one group's page
//! — its live members and their partitions (on the Kafka listener), its lag over time, each
//! partition's committed offset and lag in events and time (paginated: a group may read
//! thousands of partitions), and the
//! offset reset, which shows what each partition would re-read or skip (a dry run) before
//! its apply button unlocks, and the group's deletion behind a typed confirmation (audited,
//! refused while members run).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use keel_runtime::admin::groups;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    PageResult, ROWS_PER_PAGE, Viewer, chart, duration, encode, number, page, pager, result_area,
    shows_changes, sparkline,
};
use crate::admin_api::members_of;
use crate::app::{App, now_ms};
use crate::history::SampledGroups;
use crate::source::Source;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/groups", get(list_page))
        .route("/groups/{group}", get(group_page))
}

fn as_f64(values: &[u64]) -> Vec<f64> {
    values.iter().map(|v| *v as f64).collect()
}

async fn list_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    let sampled = app.history.groups();
    let body = html! {
        section #group-list data-live { (sampled_groups(&app, &sampled)) }
    };
    Ok(page("Consumer groups", "/groups", viewer, body))
}

/// The group list's and the overview's table: every group at its sampler's last measure
/// (measuring hundreds of groups per request takes minutes on a cluster), with its lag
/// over the last hour and how old the measures are.
pub(super) fn sampled_groups(app: &App, sampled: &SampledGroups) -> Markup {
    let alert_ms = app.console.lag_alert_ms;
    let every = duration(app.console.history.interval_ms);
    let now = now_ms();
    html! {
        @match (sampled.sampled_at_ms, sampled.oldest_measure_ms) {
            (None, _) => p.muted data-figure="sampled" { "Lag is measured every " (every) "; the first measure is being taken." },
            (Some(last), oldest) => p.muted data-figure="sampled" data-ms=(groups::age_ms(now, oldest.unwrap_or(last))) {
                "Lag as the console measures it every " (every) ", last " (duration(groups::age_ms(now, last))) " ago"
                @if sampled.skipped > 0 {
                    "; " (number(sampled.skipped as u64)) " of " (number((sampled.groups.len() + sampled.skipped) as u64))
                    " groups wait for the next samples (console_sample_groups_max), the oldest measure "
                    (duration(groups::age_ms(now, oldest.unwrap_or(last)))) " ago"
                }
                ". A group's own page measures it now."
            },
        }
        @if sampled.sampled_at_ms.is_some() && sampled.groups.is_empty() {
            p.muted { "No consumer group has committed offsets yet." }
        } @else if !sampled.groups.is_empty() {
            table data-figure="group-table" {
                thead { tr { th { "group" } th { "topics" } th.num { "lag (events)" } th.num { "lag (time)" } th { "lag, last hour" } } }
                tbody {
                    @for g in &sampled.groups {
                        @let history = app.history.lag(&g.group);
                        tr data-group=(g.group) {
                            td { a href=(format!("/groups/{}", encode(&g.group))) { (g.group) } }
                            td { (g.topics.join(", ")) }
                            td.num data-figure="lag-events" class=[(g.lag_events > 0).then_some("warn")] { (number(g.lag_events)) }
                            td.num data-figure="lag-ms" data-ms=(g.lag_ms) class=[(g.lag_ms > alert_ms).then_some("bad")] { (duration(g.lag_ms)) }
                            td { (sparkline(&as_f64(&history.lag_events), "lag")) }
                        }
                    }
                }
            }
        }
    }
}

/// `?page=` of a group's partitions.
#[derive(Debug, Default, Deserialize)]
struct GroupParams {
    page: Option<usize>,
}

async fn group_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(group): Path<String>,
    Query(params): Query<GroupParams>,
) -> PageResult {
    let page_number = params.page.unwrap_or(1).max(1);
    let members = members_of(&app, &group);
    // A cluster's coordinator is not this process: its members are not known here.
    let on_cluster = matches!(app.source, Source::Cluster(_));
    let connected = members.as_ref().is_some_and(|m| !m.members.is_empty());
    let lags = {
        let group = group.clone();
        app.on_ports(move |admin, _| {
            Box::pin(async move {
                match groups::group_lag(admin, &group, now_ms()).await {
                    // A group whose members joined but never committed has no lag to show yet.
                    Err(groups::GroupsError::GroupNotFound(_)) if connected => Ok(Vec::new()),
                    other => other,
                }
            })
        })
        .await?
    };
    let history = app.history.lag(&group);
    let mut topics: Vec<String> = lags.iter().map(|l| l.topic.clone()).collect();
    topics.dedup();
    let total: u64 = lags.iter().map(|l| l.lag_events).sum();
    let oldest = lags.iter().map(|l| l.lag_ms).max().unwrap_or(0);
    let body = html! {
        section #group-figures.figures data-live {
            div.figure { span.label { "Topics" } span.value { (topics.len()) } }
            div.figure { span.label { "Partitions" } span.value data-figure="partitions" { (lags.len()) } }
            div.figure class=[(total > 0).then_some("warn")] { span.label { "Lag" } span.value data-figure="lag-events" { (number(total)) " events" } }
            div.figure { span.label { "Oldest unhandled" } span.value data-figure="lag-ms" { (duration(oldest)) } }
        }
        section #group-chart data-live {
            h2 { "Lag, last hour" }
            div.chart-box {
                (chart(&as_f64(&history.lag_events), &[], "lag"))
                p.legend { "events behind, one point per sample" }
            }
        }
        section #members data-live {
            h2 { "Members" }
            @match &members {
                Some(m) if !m.members.is_empty() => {
                    p { "State " strong data-figure="state" { (m.state) } @if !m.protocol.is_empty() { ", assignor " (m.protocol) } }
                    table data-figure="members" {
                        thead { tr { th { "member" } th { "client" } th { "host" } th { "partitions" } } }
                        tbody { @for member in &m.members {
                            tr { td.mono { (member.member_id) } td { (member.client_id) } td { (member.client_host) } td.mono { (member.partitions.join(", ")) } }
                        } }
                    }
                },
                _ if on_cluster => { p.muted data-figure="state" { "Members are the cluster's to list (kafka-consumer-groups.sh --describe --members); offsets and lag are read from the cluster." } },
                _ => { p.muted data-figure="state" { "No member connected to the Kafka listener (state Empty); offsets and lag are read from the log." } },
            }
        }
        section #partition-lag data-live {
            h2 { "Partitions" }
            (pager(&format!("/groups/{}", encode(&group)), "", page_number, lags.len()))
            table data-figure="partition-lag" {
                thead { tr { th { "topic" } th.num { "partition" } th.num { "committed" } th.num { "high watermark" } th.num { "lag (events)" } th.num { "lag (time)" } th { "lag, last hour" } } }
                tbody {
                    @for l in lags.iter().skip((page_number - 1) * ROWS_PER_PAGE).take(ROWS_PER_PAGE) {
                        @let series = history.partitions.get(&format!("{}/{}", l.topic, l.partition)).cloned().unwrap_or_default();
                        tr data-topic=(l.topic) data-partition=(l.partition) {
                            td { a href=(format!("/topics/{}", encode(&l.topic))) { (l.topic) } }
                            td.num { (l.partition) }
                            td.num data-figure="committed" { (l.committed_offset.map_or_else(|| "-".to_string(), number)) }
                            td.num { (number(l.high_watermark)) }
                            td.num data-figure="lag-events" { (number(l.lag_events)) }
                            td.num { (duration(l.lag_ms)) }
                            td { (sparkline(&as_f64(&series), "lag")) }
                        }
                    }
                }
            }
        }
        @if shows_changes(viewer) {
            (reset_form(&group, &topics))
            (delete_form(&group, connected))
        }
    };
    Ok(page(&format!("Group {group}"), "/groups", viewer, body))
}

fn reset_form(group: &str, topics: &[String]) -> Markup {
    html! {
        form.panel #reset data-api=(format!("/api/groups/{}/reset", encode(group))) data-method="POST"
            data-render="table:moves" data-done="{moves} partition(s)" data-then="reload" {
            h2 { "Reset offsets" }
            p.muted { "Stop the group's consumers first: a running member's next commit overwrites a reset. Preview shows, per partition, the events the group will read again (positive) or skip (negative); apply unlocks after a preview of the same values." }
            div.toolbar {
                label { "Topic" select name="topic" { @for t in topics { option value=(t) { (t) } } } }
                label { "Partition" input name="partition" type="number" min="0" placeholder="all" data-type="number"; }
                label { "To" select name="to" {
                    option value="earliest" { "earliest" }
                    option value="latest" { "latest" }
                    option value="offset" { "offset" }
                    option value="time" { "time (ms since epoch)" }
                } }
                label { "Offset" input name="offset" type="number" min="0" data-type="number"; }
                label { "Time (ms)" input name="time_ms" type="number" data-type="number"; }
                button.secondary type="submit" name="dry_run" value="true" data-type="bool" data-preview { "Preview" }
                button.danger type="submit" name="dry_run" value="false" data-type="bool" data-needs-preview disabled { "Apply reset" }
            }
            (result_area())
        }
    }
}

/// The deletion of `group` through `DELETE /api/groups/{group}`, the API `keel groups
/// delete` uses; `connected` says that members are known to run now (on the Kafka
/// listener), so the operator reads why it will be refused before trying.
fn delete_form(group: &str, connected: bool) -> Markup {
    html! {
        form.panel.danger #delete-group data-api=(format!("/api/groups/{}", encode(group))) data-method="DELETE"
            data-confirm-field="confirm_name" data-confirm-value=(group) data-then="goto:/groups"
            data-done="deleted group {group}: {offsets} committed offset(s), kept in the audit log as {id}" {
            h2 { "Delete this group" }
            p { "Deleting loses the committed offsets of " code { (group) } " in every partition: its consumers, started again, begin where a new group begins (their offset reset policy) and re-read or skip events. The offsets it had are kept in the audit log." }
            p.muted { "Refused while members of the group run, as Kafka's DeleteGroups refuses a non-empty group (NON_EMPTY_GROUP): they would commit again. Stop its consumers first." }
            @if connected {
                p.alert data-figure="members-run" { "Members of this group are connected now: the deletion will be refused." }
            }
            div.toolbar {
                label { "Type the group name to confirm" input name="confirm_name" data-skip autocomplete="off"; }
                button.danger type="submit" { "Delete group" }
            }
            (result_area())
        }
    }
}
