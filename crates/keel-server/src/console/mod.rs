//! The web console at `/`: server-rendered pages over the same functions the operator API
//! answers with, one file per section (overview, topics and events, groups, dead letters,
//! schemas and the catalog, the application databases' sagas, streams and outbox).
//!
//! Pages are HTML built with `maud` from typed data, with one stylesheet and one small script
//! compiled into the binary (`assets/console.css`, `assets/console.js`): nothing to build,
//! nothing to download. The script does two things. It refreshes the regions of a page
//! marked `data-live` every few seconds (it fetches the same URL and swaps those regions,
//! so forms being filled in are left alone). And it sends the forms marked `data-api` to
//! the JSON API as JSON: every state-changing action of the console is a call of the same
//! API the `keel` CLI uses, behind the same role check; a read-only caller's pages show no
//! such form. Lists are paginated on the server, so a page costs the same with 10 or 10,000
//! topics.
//!
//! Not here: the API (`admin_api.rs`, `topics_api.rs`, `schemas_api.rs`), the data logic.

mod applications;
pub(crate) mod catalog;
mod dead_letters;
mod events;
mod groups;
mod login;
mod overview;
mod schemas;
mod topics;

use std::convert::Infallible;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};
use utoipa_axum::router::OpenApiRouter;

use crate::access::{CallerRole, Role};
use crate::app::{ApiError, App};
use crate::authentication::LoginSession;

pub(crate) use login::{LOGIN_PATH, LOGOUT_PATH, login_url, routes as login_routes};

/// The stylesheet, compiled in.
const CSS: &str = include_str!("../../assets/console.css");
/// The script, compiled in.
const JS: &str = include_str!("../../assets/console.js");
/// How often live regions refresh, in ms.
const LIVE_REFRESH_MS: u64 = 3_000;
/// Rows per page of every list.
pub(crate) const ROWS_PER_PAGE: usize = 50;

/// The console's pages and assets.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/console/console.css", get(css))
        .route("/console/console.js", get(js))
        .merge(overview::routes())
        .merge(topics::routes())
        .merge(events::routes())
        .merge(groups::routes())
        .merge(dead_letters::routes())
        .merge(schemas::routes())
        .merge(catalog::routes())
        .merge(applications::routes())
}

/// The JSON API routes that exist for the console's pages (the overview, the application
/// databases).
pub(crate) fn api_routes() -> OpenApiRouter<App> {
    overview::api_routes().merge(applications::api_routes())
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// The console's sections, in the navigation's order: (path, name).
const SECTIONS: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/topics", "Topics"),
    ("/groups", "Consumer groups"),
    ("/dead-letters", "Dead letters"),
    ("/schemas", "Schemas"),
    ("/catalog", "Catalog"),
    ("/applications", "Sagas & outbox"),
];

/// Who is looking at a page: the caller's role, and whether a login session (so the page
/// offers a logout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Viewer {
    role: Role,
    session: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CallerRole(role) = CallerRole::from_request_parts(parts, state).await?;
        let session = parts.extensions.get::<LoginSession>().is_some();
        Ok(Viewer { role, session })
    }
}

/// A whole page: navigation, title, who is looking, and `body`.
pub(crate) fn page(title: &str, section: &str, viewer: Viewer, body: Markup) -> Markup {
    let role = viewer.role;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head_of(title))
                script src="/console/console.js" defer {}
            }
            body data-live-ms=(LIVE_REFRESH_MS) data-role=(role.as_str()) {
                nav.sidebar {
                    a.brand href="/" { "Keel" }
                    @for (path, name) in SECTIONS {
                        a href=(path) class=[(*path == section).then_some("active")] { (name) }
                    }
                    div.sidebar-foot {
                        a href="/api/openapi.json" { "API (OpenAPI)" }
                        a href="/metrics" { "Metrics" }
                        span.role title="What this caller may do" { "role: " (role.as_str()) }
                        @if viewer.session {
                            form.logout method="post" action=(LOGOUT_PATH) {
                                button #logout type="submit" title="Close this session on the server" { "Log out" }
                            }
                        }
                        span #live-status.muted { "live" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What every page's `<head>` holds: the title and the stylesheet.
pub(crate) fn head_of(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · Keel" }
        link rel="stylesheet" href="/console/console.css";
    }
}

/// An error page: what went wrong, with the API error's status.
pub(crate) struct PageError(pub(crate) ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ApiError(status, message) = self.0;
        let body = page(
            status.canonical_reason().unwrap_or("Error"),
            "",
            Viewer {
                role: Role::ReadOnly,
                session: false,
            },
            html! { p.alert { (message) } p { a href="/" { "Back to the overview" } } },
        );
        (status, body).into_response()
    }
}

/// A page's result.
pub(crate) type PageResult = Result<Markup, PageError>;

/// A number with thin-space thousands separators.
pub(crate) fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(digit);
    }
    out
}

/// Bytes in B, KiB, MiB or GiB.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration in ms as people read it: `850 ms`, `12.5 s`, `3.2 min`, `4.1 h`, `2.0 d`.
pub(crate) fn duration(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{s:.1} s"),
        120_000..7_200_000 => format!("{:.1} min", s / 60.0),
        7_200_000..172_800_000 => format!("{:.1} h", s / 3600.0),
        _ => format!("{:.1} d", s / 86_400.0),
    }
}

/// A time in ms since the epoch as RFC 3339 UTC, to the millisecond.
pub(crate) fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

/// A rate per second with one decimal.
pub(crate) fn rate(per_s: f64) -> String {
    format!("{per_s:.1}/s")
}

/// A small line chart of `values` (oldest first), scaled to its largest value.
pub(crate) fn sparkline(values: &[f64], class: &str) -> Markup {
    let (width, height) = (120.0, 28.0);
    chart_svg(values, &[], width, height, class, false)
}

/// A chart of one or two series over the same samples, with its scale labelled; the
/// second series (when not empty) is drawn dashed.
pub(crate) fn chart(first: &[f64], second: &[f64], class: &str) -> Markup {
    chart_svg(first, second, 560.0, 120.0, class, true)
}

fn chart_svg(
    first: &[f64],
    second: &[f64],
    width: f64,
    height: f64,
    class: &str,
    labelled: bool,
) -> Markup {
    let top = if labelled { 14.0 } else { 2.0 };
    let largest = first.iter().chain(second).copied().fold(0.0f64, f64::max);
    let scale = if largest <= 0.0 { 1.0 } else { largest * 1.15 };
    let points = |values: &[f64]| -> String {
        let step = width / (values.len().max(2) - 1) as f64;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = i as f64 * step;
                let y = height - 1.0 - (v / scale) * (height - 1.0 - top);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        svg.chart class=(class) width=(width) height=(height) viewBox=(format!("0 0 {width} {height}"))
            role="img" aria-label=(format!("largest value {largest:.1}")) {
            line x1="0" y1=(height - 1.0) x2=(width) y2=(height - 1.0) class="axis" {}
            @if labelled {
                text x="2" y="11" class="scale" { (format!("{largest:.1}")) }
            }
            @if first.len() > 1 {
                polyline class="series" points=(points(first)) {}
            }
            @if second.len() > 1 {
                polyline class="series second" points=(points(second)) {}
            }
        }
    }
}

/// Links to the pages of a list of `total` rows, `ROWS_PER_PAGE` each, keeping `query`
/// (already encoded, without `page`).
pub(crate) fn pager(path: &str, query: &str, page: usize, total: usize) -> Markup {
    let pages = total.div_ceil(ROWS_PER_PAGE).max(1);
    let link = |to: usize| {
        let separator = if query.is_empty() { "" } else { "&" };
        format!("{path}?{query}{separator}page={to}")
    };
    html! {
        nav.pager data-figure="pages" {
            @if page > 1 { a href=(link(page - 1)) rel="prev" { "← previous" } }
            span { "page " (page) " of " (pages) " · " (number(total as u64)) " rows" }
            @if page < pages { a href=(link(page + 1)) rel="next" { "next →" } }
        }
    }
}

/// Percent-encodes `text` for a URL path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Pretty-printed JSON.
pub(crate) fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// The result area of a `data-api` form, where the script writes the answer.
pub(crate) fn result_area() -> Markup {
    html! { output.result data-result {} }
}

/// Whether the page shows state-changing forms to this caller.
pub(crate) fn shows_changes(viewer: Viewer) -> bool {
    viewer.role.may_change()
}

/// A 404 page for something that is not there.
pub(crate) fn not_found(what: String) -> PageError {
    PageError(ApiError(StatusCode::NOT_FOUND, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(number(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(number(999), "999");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_500), "12.5 s");
        assert_eq!(duration(3 * 3_600_000), "3.0 h");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(encode("orders.dlq/x y"), "orders.dlq%2Fx%20y");
    }
}
