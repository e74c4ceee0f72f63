//! The catalog as one readable HTML page, rendered from the AsyncAPI document so the two
//! never disagree: per topic, who publishes and who consumes, and per event type its schema
//! version, schema and example. Self-contained (inline CSS, no script); every value from the
//! log or registry is HTML-escaped.

use std::fmt::Write;

use serde_json::Value;

/// Renders `document` (as built by [`asyncapi`](crate::asyncapi())) as an HTML page.
pub fn html(document: &Value) -> String {
    let title = escape(
        document["info"]["title"]
            .as_str()
            .unwrap_or("Event catalog"),
    );
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{}</p>\n",
        escape(document["info"]["description"].as_str().unwrap_or_default())
    );
    let empty = serde_json::Map::new();
    let channels = document["channels"].as_object().unwrap_or(&empty);
    let operations = document["operations"].as_object().unwrap_or(&empty);
    let messages = document["components"]["messages"]
        .as_object()
        .unwrap_or(&empty);
    page.push_str("<h2>Topics</h2>\n");
    if channels.is_empty() {
        page.push_str("<p>No topics with events yet.</p>\n");
    }
    for (id, channel) in channels {
        let address = channel["address"].as_str().unwrap_or(id);
        let _ = writeln!(
            page,
            "<section class=\"topic\">\n<h3 id=\"topic-{}\">{}</h3>\n<p>{}</p>",
            escape(id),
            escape(address),
            escape(channel["description"].as_str().unwrap_or_default())
        );
        let channel_ref = format!("#/channels/{id}");
        let mut publishers = Vec::new();
        let mut consumers = Vec::new();
        for operation in operations.values() {
            if operation["channel"]["$ref"] != channel_ref.as_str() {
                continue;
            }
            match operation["action"].as_str() {
                Some("send") => publishers.push(operation["x-keel-source"].as_str().unwrap_or("?")),
                Some("receive") => {
                    consumers.push(operation["x-keel-consumer-group"].as_str().unwrap_or("?"))
                }
                _ => {}
            }
        }
        let list = |names: &[&str]| {
            if names.is_empty() {
                "none seen".to_string()
            } else {
                names
                    .iter()
                    .map(|n| escape(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(
            page,
            "<p><b>Published by</b> {}<br><b>Consumed by</b> {}</p>",
            list(&publishers),
            list(&consumers)
        );
        let types: Vec<String> = channel["messages"]
            .as_object()
            .map(|m| {
                m.keys()
                    .map(|k| format!("<a href=\"#event-{0}\">{0}</a>", escape(k)))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            page,
            "<p><b>Events</b> {}</p>\n</section>",
            types.join(", ")
        );
    }
    page.push_str("<h2>Event types</h2>\n");
    for (id, message) in messages {
        let _ = writeln!(
            page,
            "<section class=\"event\">\n<h3 id=\"event-{}\">{}</h3>\n<p>{}</p>",
            escape(id),
            escape(message["name"].as_str().unwrap_or(id)),
            escape(message["summary"].as_str().unwrap_or_default())
        );
        if let Some(schema) = message["payload"].get("schema") {
            let _ = writeln!(
                page,
                "<h4>Schema</h4>\n<pre>{}</pre>",
                escape(&pretty(schema))
            );
        }
        if let Some(example) = message["examples"].get(0).map(|e| &e["payload"]) {
            let _ = writeln!(
                page,
                "<h4>Example</h4>\n<pre>{}</pre>",
                escape(&pretty(example))
            );
        }
        page.push_str("</section>\n");
    }
    page.push_str("</body>\n</html>\n");
    page
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
section{border:1px solid #ddd;border-radius:6px;padding:0 1rem;margin:1rem 0}\
pre{background:#f6f8fa;padding:.75rem;overflow:auto}h3{margin-bottom:.25rem}";

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
