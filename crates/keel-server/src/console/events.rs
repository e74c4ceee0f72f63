//! The event browser of a topic (newest first or from an offset or time, filtered by key,
//! id, type, correlation id or a JSON path of the data, paginated by cursor), the form that
//! produces a test event checked against its type's schema, and one event's page: its
//! CloudEvent attributes, headers and data, its trace, and its journey — the events of its
//! conversation across topics, drawn as the tree their `causationid`s make.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use chrono::DateTime;
use keel_schema::VersionSelector;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageResult, Viewer, encode, json_block, page, result_area, shows_changes, time};
use crate::app::{ApiError, App};
use crate::config::TRACE_ID_PLACEHOLDER;
use crate::events::{self, EventQuery, FoundEvent, Start, attribute};
use crate::schemas_api::with_registry;

/// Deepest causation level drawn indented; deeper ones are drawn at this depth.
const TREE_DEPTH_MAX: usize = 4;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/topics/{topic}/events", get(browser_page))
        .route(
            "/topics/{topic}/events/{partition}/{offset}",
            get(event_page),
        )
}

/// The browser's `time` field, as people type it (RFC 3339); the API takes `time_ms`.
#[derive(Debug, Default, Deserialize)]
struct TimeParam {
    time: Option<String>,
}

async fn browser_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(topic): Path<String>,
    Query(mut query): Query<EventQuery>,
    Query(time_param): Query<TimeParam>,
) -> PageResult {
    let time_text = time_param.time.clone().unwrap_or_default();
    if !time_text.is_empty() {
        let parsed = DateTime::parse_from_rfc3339(&time_text).map_err(|e| {
            ApiError::bad_request(format!("time '{time_text}' is not RFC 3339: {e}"))
        })?;
        query.time_ms = Some(parsed.timestamp_millis());
    }
    let page_data = {
        let (topic, query) = (topic.clone(), query.clone());
        let limits = app.source.scan_limits();
        app.on_ports(move |admin, _| {
            Box::pin(async move { events::search(admin, &topic, &query, limits).await })
        })
        .await?
    };
    let templates = if shows_changes(viewer) {
        schema_templates(&app).await
    } else {
        Vec::new()
    };
    let encoded = encode(&topic);
    let start = query.start.unwrap_or_default();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let next_link = page_data.next_cursor.as_ref().map(|cursor| {
        let mut next = query.clone();
        next.cursor = Some(cursor.clone());
        let mut link = format!("/topics/{encoded}/events?{}", serde_urlencoded(&next));
        if !time_text.is_empty() {
            link.push_str(&format!("&time={}", encode(&time_text)));
        }
        link
    });
    let body = html! {
        p { a href=(format!("/topics/{encoded}")) { "← topic " (topic) } }
        form.panel method="get" action=(format!("/topics/{encoded}/events")) #event-filter {
            div.toolbar {
                label { "Start" select name="start" {
                    option value="newest" selected[start == Start::Newest] { "newest first" }
                    option value="offset" selected[start == Start::Offset] { "from offset" }
                    option value="time" selected[start == Start::Time] { "from time" }
                } }
                label { "Partition" input name="partition" type="number" min="0" value=[query.partition] placeholder="all"; }
                label { "Offset" input name="offset" type="number" min="0" value=[query.offset]; }
                label { "Time (RFC 3339)" input name="time" value=(time_text) placeholder="2026-12-06T10:00:00Z"; }
                label { "Key" input name="key" value=(text(&query.key)); }
                label { "Event id" input name="id" value=(text(&query.id)); }
                label { "Type" input name="type" value=(text(&query.ty)); }
                label { "Correlation id" input name="correlation" value=(text(&query.correlation)); }
                label { "JSON path of data" input name="path" value=(text(&query.path)) placeholder="customer.email"; }
                label { "equals" input name="value" value=(text(&query.value)); }
                button type="submit" { "Search" }
                a href=(format!("/topics/{encoded}/events")) { "clear" }
            }
        }
        section #events data-live {
            p.muted data-figure="scan" {
                (page_data.events.len()) " event(s) shown, " (page_data.scanned) " record(s) read"
                @if page_data.scan_limited { " — the search stopped after " (page_data.scan_records_max) " records, its budget here; narrow it or follow the next page" }
            }
            table data-figure="event-table" {
                thead { tr { th { "time" } th { "partition/offset" } th { "key" } th { "type" } th { "id" } th { "correlation" } th { "data" } } }
                tbody {
                    @for e in &page_data.events {
                        tr data-offset=(e.offset) data-partition=(e.partition) {
                            td.mono { (time(e.timestamp_ms)) }
                            td.mono { a href=(event_link(e)) { (e.partition) "/" (e.offset) } }
                            td.mono { (e.key.as_deref().unwrap_or("-")) }
                            td { (attribute(e, "type").unwrap_or("-")) }
                            td.mono { (attribute(e, "id").unwrap_or("-")) }
                            td.mono { (attribute(e, "correlationid").unwrap_or("-")) }
                            td.mono { (data_preview(e)) }
                        }
                    }
                }
            }
            @if let Some(link) = &next_link {
                nav.pager { a href=(link) rel="next" { @if start == Start::Newest { "older →" } @else { "newer →" } } }
            }
        }
        @if shows_changes(viewer) {
            (produce_form(&topic, &templates))
        }
    };
    Ok(page(&format!("Events of {topic}"), "/topics", viewer, body))
}

/// The query of an [`EventQuery`] for a link.
fn serde_urlencoded(query: &EventQuery) -> String {
    let value = serde_json::to_value(query).unwrap_or(Value::Null);
    let Value::Object(fields) = value else {
        return String::new();
    };
    fields
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            format!("{k}={}", encode(&text))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn event_link(e: &FoundEvent) -> String {
    format!(
        "/topics/{}/events/{}/{}",
        encode(&e.topic),
        e.partition,
        e.offset
    )
}

/// The first 80 characters of the data, as compact JSON.
fn data_preview(e: &FoundEvent) -> String {
    let text = match e.event.as_ref().and_then(|ev| ev.get("data")) {
        Some(data) => data.to_string(),
        None => e.raw_value.clone().unwrap_or_default(),
    };
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

/// Registered subjects with a data template made from their latest schema.
async fn schema_templates(app: &App) -> Vec<(String, String)> {
    with_registry(app, |registry| {
        let mut out = Vec::new();
        for subject in registry.subjects(false) {
            if let Ok(version) = registry.version(&subject, VersionSelector::Latest, false) {
                let template = template(version.schema.document());
                out.push((
                    subject,
                    serde_json::to_string_pretty(&template).unwrap_or_default(),
                ));
            }
        }
        Ok::<_, ApiError>(out)
    })
    .await
    .unwrap_or_default()
}

/// A value that has the shape `schema` asks for: required properties (all of them when
/// none is required) filled with an empty value of their type, or the first enum value.
fn template(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.first().and_then(Value::as_str).unwrap_or("null"),
        Some(Value::String(ty)) => ty.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "null",
    };
    match ty {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = serde_json::Map::new();
            for (name, property) in properties.into_iter().flatten() {
                if required.is_empty() || required.contains(&name.as_str()) {
                    out.insert(name.clone(), template(property));
                }
            }
            Value::Object(out)
        }
        "array" => json!([]),
        "string" => json!(""),
        "integer" | "number" => json!(0),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

fn produce_form(topic: &str, templates: &[(String, String)]) -> Markup {
    html! {
        form.panel #produce data-api=(format!("/api/topics/{}/events", encode(topic))) data-method="POST"
            data-done="stored at partition {partition}, offset {offset} (schema id {schema_id})" data-render="json" {
            h2 { "Produce a test event" }
            p.muted { "The data is checked against the schema registered for its type before anything is stored; a type without a schema is stored unchecked and the answer says so." }
            div.toolbar {
                label { "Type" input name="type" required list="known-types" placeholder="order.placed"; }
                datalist #known-types { @for (subject, _) in templates { option value=(subject) {} } }
                @if !templates.is_empty() {
                    label { "Fill the data from a schema" select data-template-target="produce-data" data-skip {
                        option value="" { "—" }
                        @for (subject, template) in templates { option value=(subject) data-template=(template) { (subject) } }
                    } }
                }
                label { "Key" input name="key" placeholder="order-1"; }
                label { "Source" input name="source" placeholder="/keel-console"; }
                label { "Correlation id" input name="correlationid"; }
            }
            label { "Data (JSON)" textarea #produce-data name="data" data-type="json" { "{}" } }
            div.toolbar { button type="submit" { "Produce" } }
            (result_area())
        }
    }
}

async fn event_page(
    State(app): State<App>,
    viewer: Viewer,
    Path((topic, partition, offset)): Path<(String, u32, u64)>,
) -> PageResult {
    let limits = app.source.scan_limits();
    let (found, journey) = {
        let topic = topic.clone();
        app.on_ports(move |admin, _| {
            Box::pin(
                async move { events::journey_at(admin, &topic, partition, offset, limits).await },
            )
        })
        .await?
    };
    let id = attribute(&found, "id").unwrap_or_default().to_string();
    let cause = attribute(&found, "causationid").map(str::to_string);
    let trace_id = attribute(&found, "traceparent")
        .and_then(|t| t.split('-').nth(1))
        .map(str::to_string);
    let trace_link = trace_id.as_ref().and_then(|trace| {
        app.console
            .trace_url
            .as_ref()
            .map(|url| url.replace(TRACE_ID_PLACEHOLDER, trace))
    });
    let by_id: HashMap<&str, &FoundEvent> = journey
        .events
        .iter()
        .filter_map(|e| Some((attribute(e, "id")?, e)))
        .collect();
    let depth = |e: &FoundEvent| {
        let mut depth = 0;
        let mut at = e;
        while let Some(parent) = attribute(at, "causationid").and_then(|c| by_id.get(c)) {
            depth += 1;
            at = parent;
            if depth == TREE_DEPTH_MAX {
                break;
            }
        }
        depth
    };
    let caused: Vec<&FoundEvent> = journey
        .events
        .iter()
        .filter(|e| attribute(e, "causationid") == Some(id.as_str()))
        .collect();
    let parent = cause.as_deref().and_then(|c| by_id.get(c)).copied();
    let attributes = found.event.as_ref().and_then(Value::as_object);
    let body = html! {
        p { a href=(format!("/topics/{}/events", encode(&topic))) { "← events of " (topic) } }
        div.columns {
            div.panel {
                h2 { "CloudEvent" }
                @if let Some(error) = &found.event_error { p.bad { "Not a readable CloudEvent: " (error) } }
                dl.attributes data-figure="attributes" {
                    dt { "topic/partition/offset" } dd { (topic) "/" (partition) "/" (offset) }
                    dt { "stored" } dd { (time(found.timestamp_ms)) }
                    dt { "key" } dd { (found.key.as_deref().unwrap_or("-")) }
                    @for (name, value) in attributes.into_iter().flatten().filter(|(n, _)| *n != "data" && *n != "data_base64") {
                        dt { (name) } dd data-attribute=(name) { (value.as_str().map_or_else(|| value.to_string(), str::to_string)) }
                    }
                }
                h3 { "Trace" }
                @match (&trace_id, &trace_link) {
                    (Some(trace), Some(link)) => p { a href=(link) data-figure="trace" { "trace " (trace) " →" } },
                    (Some(trace), None) => { p { span.mono data-figure="trace" { (trace) } br; span.muted { "Set keel serve --console-trace-url to link it to a trace viewer." } } },
                    _ => p.muted { "No traceparent." },
                }
            }
            div.panel {
                h2 { "Data" }
                @match found.event.as_ref().and_then(|e| e.get("data")) {
                    Some(data) => (json_block(data)),
                    None => pre.json { (found.raw_value.as_deref().unwrap_or("(no data)")) },
                }
                h3 { "Headers" }
                table { tbody { @for (name, value) in &found.headers { tr { th.mono { (name) } td.mono { (value) } } } } }
            }
        }
        section.panel #causation {
            h2 { "Causation" }
            p data-figure="caused-by" {
                "Caused by: "
                @match (&cause, parent) {
                    (Some(_), Some(p)) => a href=(event_link(p)) { (attribute(p, "type").unwrap_or("?")) " " span.mono { (attribute(p, "id").unwrap_or("?")) } },
                    (Some(c), None) => { span.mono { (c) } span.muted { " (not found in the searched range)" } },
                    (None, _) => span.muted { "nothing: it starts its conversation" },
                }
            }
            p data-figure="caused" {
                "Caused: "
                @if caused.is_empty() { span.muted { "no event found" } }
                @for c in &caused { a href=(event_link(c)) { (attribute(c, "type").unwrap_or("?")) " in " (c.topic) } " " }
            }
            h3 { "Journey of correlation " span.mono { (journey.correlation) } }
            @if journey.scan_limited { p.muted data-figure="journey-limit" { "Stopped after " (journey.scanned) " records in " (journey.topics_searched) " of " (journey.topics_total) " topics: a journey reads at most the newest " (limits.journey_partition_records) " records of each partition, " (limits.journey_records) " in all, and goes on to a next topic for " (limits.journey_time.as_secs()) " s." } }
            @if !journey.unreadable.is_empty() { p.muted data-figure="journey-unreadable" { (journey.unreadable.len()) " topic(s) could not be read and were left out: " (journey.unreadable.join("; ")) } }
            table data-figure="journey" {
                thead { tr { th { "event" } th { "topic" } th { "time" } th { "id" } } }
                tbody {
                    @for e in &journey.events {
                        tr class=[(e.topic == topic && e.partition == partition && e.offset == offset).then_some("current")] {
                            td class=(format!("tree-{}", depth(e))) { a href=(event_link(e)) { (attribute(e, "type").unwrap_or("?")) } }
                            td { (e.topic) }
                            td.mono { (time(e.timestamp_ms)) }
                            td.mono { (attribute(e, "id").unwrap_or("-")) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &format!("Event {topic}/{partition}/{offset}"),
        "/topics",
        viewer,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_follow_the_schema_shape() {
        let schema = json!({
            "type": "object",
            "required": ["order_id", "total", "lines"],
            "properties": {
                "order_id": {"type": "string"},
                "total": {"type": "integer"},
                "currency": {"enum": ["EUR", "USD"]},
                "lines": {"type": "array"},
            }
        });
        assert_eq!(
            template(&schema),
            json!({"order_id": "", "total": 0, "lines": []})
        );
        assert_eq!(template(&json!({"enum": ["EUR"]})), json!("EUR"));
    }
}
