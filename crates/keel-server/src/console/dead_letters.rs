//! The dead-letter pages: every dead-letter topic with its depth, oldest age and causes per
//! group (on a cluster as the console's last sample counted them); one topic's dead letters (filtered like `keel dlq list`) each with its error
//! history, headers and event, replayed one by one or by filter — to the topic or straight
//! to the group that failed, with a canary first — or purged after a preview; and the audit
//! log of every replay, purge and group deletion.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use keel_runtime::admin::dead_letters::DeadLetterSummary;
use keel_runtime::admin::groups::age_ms;
use keel_runtime::admin::{audit, dead_letters};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{
    PageResult, Viewer, duration, encode, json_block, number, page, result_area, shows_changes,
    time,
};
use crate::app::{ApiError, App, now_ms};
use crate::source::Source;

/// Dead letters listed on one page.
const LETTERS_PER_PAGE: usize = 200;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/dead-letters", get(list_page))
        .route("/dead-letters/{topic}", get(topic_page))
        .route("/audit", get(audit_page))
}

/// Every dead-letter topic's counts, and when they were sampled: on a cluster the console
/// sampler's last ones once it has taken one (reading every dead letter of a cluster's
/// hundreds of `.dlq` topics per request outlasted the browser's patience), else read now.
async fn summaries(app: &App) -> Result<(Vec<DeadLetterSummary>, Option<i64>), ApiError> {
    if let Source::Cluster(_) = app.source
        && let Some((sampled_at_ms, sampled)) = app.history.sampled_dead_letters()
    {
        return Ok((sampled, Some(sampled_at_ms)));
    }
    let now = app
        .on_ports(|admin, _| Box::pin(dead_letters::summaries(admin, now_ms())))
        .await?;
    Ok((now, None))
}

async fn list_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    let (summaries, sampled_at_ms) = summaries(&app).await?;
    let body = html! {
        p { a href="/audit" { "Audit log of replays, purges and group deletions →" } }
        section #dlq-list data-live {
            @if let Some(at) = sampled_at_ms {
                p.muted data-figure="sampled" data-ms=(age_ms(now_ms(), at)) {
                    "Counts as the console samples them every " (duration(app.console.history.interval_ms))
                    ", last " (duration(age_ms(now_ms(), at))) " ago. A dead-letter topic's own page reads it now."
                }
            }
            @if summaries.is_empty() {
                p.muted { "No dead-letter topic yet: nothing was ever given up on." }
            } @else {
                table data-figure="dlq-table" {
                    thead { tr { th { "subject" } th.num { "pending" } th.num { "oldest pending" } th.num { "replayed" } th.num { "purged" } th { "pending by group / handler / kind" } } }
                    tbody {
                        @for s in &summaries {
                            tr data-dlq=(s.dead_letter_topic) {
                                td { a href=(format!("/dead-letters/{}", encode(&s.dead_letter_topic))) { (s.dead_letter_topic) } }
                                td.num data-figure="pending" class=[(s.pending > 0).then_some("bad")] { (number(s.pending)) }
                                td.num data-figure="oldest" { @if s.pending > 0 { (duration(s.oldest_pending_age_ms)) } @else { "-" } }
                                td.num data-figure="replayed" { (number(s.replayed)) }
                                td.num data-figure="purged" { (number(s.purged)) }
                                td { @for c in &s.causes {
                                    div { (if c.group.is_empty() { "without keel_dlq_* headers" } else { &c.group }) " / " (c.handler) " / " (c.kind) ": " strong { (c.pending) } }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Dead letters", "/dead-letters", viewer, body))
}

/// The filter of a topic's dead letters (as `keel dlq list`).
#[derive(Debug, Default, Clone, Deserialize)]
struct Filter {
    group: Option<String>,
    kind: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    key: Option<String>,
    event_id: Option<String>,
}

impl Filter {
    fn to_filter(&self) -> dead_letters::DeadLetterFilter {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        dead_letters::DeadLetterFilter {
            group: set(&self.group),
            kind: set(&self.kind),
            event_type: set(&self.event_type),
            key: set(&self.key),
            event_id: set(&self.event_id),
            ..Default::default()
        }
    }
}

async fn topic_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(topic): Path<String>,
    Query(filter): Query<Filter>,
) -> PageResult {
    let wanted = filter.to_filter();
    let letters = {
        let (topic, wanted) = (topic.clone(), wanted.clone());
        app.on_ports(move |admin, _| {
            Box::pin(async move {
                dead_letters::dead_letters(admin, &topic, &wanted, LETTERS_PER_PAGE).await
            })
        })
        .await?
    };
    let groups: Vec<String> = {
        let mut groups: Vec<String> = letters
            .iter()
            .filter_map(|l| l.headers.as_ref().map(|h| h.group.clone()))
            .collect();
        groups.sort();
        groups.dedup();
        groups
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let pending = letters
        .iter()
        .filter(|l| l.status == dead_letters::DeadLetterStatus::Pending)
        .count();
    let api = format!("/api/dead-letters/{}", encode(&topic));
    let body = html! {
        p { a href="/dead-letters" { "← all dead-letter topics" } " · " a href=(format!("/audit?topic={}", encode(&topic))) { "audit log of this topic" } }
        form.panel.inline method="get" #dlq-filter {
            label { "Group" input name="group" value=(text(&filter.group)); }
            label { "Kind" select name="kind" {
                option value="" { "any" }
                @for kind in ["transient", "permanent", "decode"] { option value=(kind) selected[filter.kind.as_deref() == Some(kind)] { (kind) } }
            } }
            label { "Type" input name="type" value=(text(&filter.event_type)); }
            label { "Key" input name="key" value=(text(&filter.key)); }
            label { "Event id" input name="event_id" value=(text(&filter.event_id)); }
            button.secondary type="submit" { "Filter" }
        }
        @if shows_changes(viewer) {
            (bulk_forms(&api, &filter, &groups))
        }
        section #letters data-live {
            h2 { (letters.len()) " dead letter(s)" @if letters.len() == LETTERS_PER_PAGE { " (the first " (LETTERS_PER_PAGE) ")" } ", " span data-figure="pending" { (pending) } " pending" }
            table data-figure="letters" {
                thead { tr { th { "partition/offset" } th { "status" } th { "group / handler" } th { "kind" } th.num { "attempts" } th { "first → last failure" } th { "error" } th { "event" } th {} } }
                tbody {
                    @for l in &letters {
                        tr data-offset=(l.offset) data-partition=(l.partition) data-status=(status_name(l.status)) {
                            td.mono { (l.partition) "/" (l.offset) }
                            td { span class=(format!("tag {}", status_name(l.status))) { (status_name(l.status)) } }
                            @if let Some(h) = &l.headers {
                                td { (h.group) " / " (h.handler) }
                                td { (h.kind.as_str()) }
                                td.num { (h.attempts) }
                                td.mono { (time(h.first_failure_ms)) br; (time(h.last_failure_ms)) }
                                td { (h.error) }
                            } @else {
                                td colspan="5" .muted { "no keel_dlq_* headers" }
                            }
                            td {
                                details {
                                    summary { (l.event_type.as_deref().unwrap_or("?")) " " span.mono { (l.event_id.as_deref().unwrap_or("")) } }
                                    (json_block(&l.to_json().get("event").cloned().unwrap_or(Value::Null)))
                                    @if let Some(h) = &l.headers {
                                        p.muted { "from " (h.topic) "/" (h.partition) "/" (h.offset) }
                                    }
                                    @if let Some(of) = &l.replay_of { p.muted { "a replay of " (of) " that failed again" } }
                                }
                            }
                            td {
                                @if shows_changes(viewer) && l.status != dead_letters::DeadLetterStatus::Purged {
                                    (replay_one_form(&api, l.partition, l.offset))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &format!("Dead letters of {topic}"),
        "/dead-letters",
        viewer,
        body,
    ))
}

fn status_name(status: dead_letters::DeadLetterStatus) -> &'static str {
    match status {
        dead_letters::DeadLetterStatus::Pending => "pending",
        dead_letters::DeadLetterStatus::Replayed => "replayed",
        dead_letters::DeadLetterStatus::Purged => "purged",
    }
}

/// The filter as hidden fields of a bulk form.
fn hidden_filter(filter: &Filter) -> Markup {
    let fields = [
        ("group", &filter.group),
        ("kind", &filter.kind),
        ("type", &filter.event_type),
        ("key", &filter.key),
        ("event_id", &filter.event_id),
    ];
    html! {
        @for (name, value) in fields {
            @if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) { input type="hidden" name=(name) value=(value); }
        }
    }
}

fn bulk_forms(api: &str, filter: &Filter, groups: &[String]) -> Markup {
    html! {
        div.columns {
            form.panel #replay data-api=(format!("{api}/replay")) data-method="POST" data-then="canary"
                data-done="replay {id}: {replayed} replayed" data-render="table:replayed" {
                h2 { "Replay the dead letters shown" }
                p.muted { "Pending ones matching the filter above, below today's end of the topic (so failures during the replay do not loop), each once." }
                (hidden_filter(filter))
                div.toolbar {
                    label { "To" select name="to_group" {
                        option value="" { "the original topic (every group)" }
                        @for g in groups { option value=(g) { "group " (g) " only" } }
                    } }
                    label { "Canary first" input type="checkbox" name="canary" data-type="bool" checked; }
                    button type="submit" { "Replay" }
                }
                (result_area())
            }
            form.panel.danger #purge data-api=(format!("{api}/purge")) data-method="POST" data-then="reload"
                data-done="{purged} dead letter(s)" data-render="table:purged" {
                h2 { "Purge the dead letters shown" }
                p.muted { "Marks them purged in the audit log: hidden and never replayed. Preview first." }
                (hidden_filter(filter))
                div.toolbar {
                    button.secondary type="submit" name="confirm" value="false" data-type="bool" data-preview { "Preview" }
                    button.danger type="submit" name="confirm" value="true" data-type="bool" data-needs-preview disabled { "Purge" }
                }
                (result_area())
            }
        }
    }
}

fn replay_one_form(api: &str, partition: u32, offset: u64) -> Markup {
    html! {
        form.replay-one data-api=(format!("{api}/replay")) data-method="POST" data-then="reload"
            data-done="replayed {replayed}" {
            input type="hidden" name="partition" value=(partition) data-type="number";
            input type="hidden" name="offset" value=(offset) data-type="number";
            input type="hidden" name="force" value="true" data-type="bool";
            button.secondary type="submit" { "replay" }
            (result_area())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuditParams {
    topic: Option<String>,
}

async fn audit_page(
    State(app): State<App>,
    viewer: Viewer,
    Query(params): Query<AuditParams>,
) -> PageResult {
    let entries = {
        let topic = params.topic.clone();
        app.on_ports(move |admin, _| {
            Box::pin(async move { audit::history(admin, topic.as_deref()).await })
        })
        .await?
    };
    let body = html! {
        p { a href="/dead-letters" { "← dead letters" } }
        section #audit data-live {
            table data-figure="audit" {
                thead { tr { th { "time" } th { "action" } th { "subject" } th.num { "items" } th { "id" } th { "command" } } }
                tbody {
                    @for e in entries.iter().rev() {
                        tr data-action=(e.action.as_str()) {
                            td.mono { (time(e.time_ms)) }
                            td { (e.action.as_str()) }
                            td { (e.subject()) }
                            td.num { (e.items.len()) }
                            td.mono { (e.id) }
                            td.mono { (e.command) }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Audit log", "/dead-letters", viewer, body))
}
