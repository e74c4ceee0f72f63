//! The application databases' page (`/applications`) and `GET /api/applications`: for each
//! SQLite database named by `keel serve --console-database`, its saga instances by state
//! (stuck ones first), event-sourced streams by category, and outbox backlog and relay
//! throughput, read through `keel_sql::inspect_sqlite` (read-only); and the streams of an
//! embedded event store kept in the served log (`keel.events`), from its newest records.

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::get;
use keel_sql::{Inspection, inspect_sqlite};
use keel_store::EmbeddedStoreOptions;
use maud::{Markup, html};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageResult, Viewer, duration, encode, number, page, time};
use crate::app::{ApiError, App, now_ms};
use crate::events::{self, StoreStreams};

pub(super) fn routes() -> Router<App> {
    Router::new().route("/applications", get(applications_page))
}

pub(super) fn api_routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(applications_api))
}

/// One configured database and what it holds.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Application {
    /// The database file.
    pub(crate) database: String,
    /// Its sagas, streams and outbox (each `null` when the database has none).
    #[schema(value_type = Option<Object>)]
    pub(crate) inspection: Option<Inspection>,
    /// Why it could not be read.
    pub(crate) error: Option<String>,
}

async fn load(app: &App) -> Result<Vec<Application>, ApiError> {
    let databases = app.console.databases.clone();
    tokio::task::spawn_blocking(move || {
        let now = now_ms();
        databases
            .iter()
            .map(|path| {
                let (inspection, error) = match inspect_sqlite(path, now) {
                    Ok(inspection) => (Some(inspection), None),
                    Err(error) => (None, Some(error.to_string())),
                };
                Application {
                    database: path.display().to_string(),
                    inspection,
                    error,
                }
            })
            .collect()
    })
    .await
    .map_err(|_| ApiError::bad_request("reading the databases panicked"))
}

#[utoipa::path(
    get, path = "/api/applications", tag = "applications",
    responses((status = 200, description = "Each configured application database: sagas by state, streams by category, outbox backlog", body = Vec<Application>))
)]
async fn applications_api(State(app): State<App>) -> Result<Json<Vec<Application>>, ApiError> {
    load(&app).await.map(Json)
}

async fn applications_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    let applications = load(&app).await?;
    let store = EmbeddedStoreOptions::default();
    let streams = app
        .on_ports(move |admin, _| {
            Box::pin(async move {
                events::store_streams(admin, &store.topic, &store.snapshot_topic).await
            })
        })
        .await?;
    let now = now_ms();
    let body = html! {
        @if let Some(streams) = &streams {
            (store_view(streams))
        }
        @if applications.is_empty() && streams.is_none() {
            p.muted { "No application database is configured. Start keel serve with "
                code { "--console-database PATH" } " (repeatable) to see the sagas, event-sourced streams and outbox of services on SQLite." }
        }
        section #applications data-live {
            @for a in &applications {
                div.panel data-database=(a.database) {
                    h2.mono { (a.database) }
                    @if let Some(error) = &a.error { p.bad { (error) } }
                    @if let Some(inspection) = &a.inspection {
                        (inspection_view(inspection, now))
                    }
                }
            }
        }
    };
    Ok(page(
        "Sagas, streams and outbox",
        "/applications",
        viewer,
        body,
    ))
}

fn store_view(streams: &StoreStreams) -> Markup {
    let topic = encode(&streams.topic);
    html! {
        div.panel #embedded-store {
            h2 { "Embedded event store " span.mono { (streams.topic) } }
            p { span data-figure="store-events" { (number(streams.events)) } " events, " (number(streams.snapshots)) " snapshot record(s)."
                @if streams.scan_limited { " Categories and streams from the newest " (number(events::STORE_SCAN_RECORDS_MAX)) " events." } }
            table data-figure="store-categories" {
                thead { tr { th { "category" } th.num { "streams" } th.num { "events" } } }
                tbody { @for (category, count, events) in &streams.categories {
                    tr data-category=(category) { td { (category) } td.num data-figure="streams" { (number(*count)) } td.num { (number(*events)) } }
                } }
            }
            h3 { "Most recently written streams" }
            table {
                thead { tr { th { "stream" } th.num { "version" } th { "latest event" } } }
                tbody { @for (stream, version, ty, offset) in &streams.recent {
                    tr {
                        td { a href=(format!("/topics/{topic}/events?key={}", encode(stream))) { (stream) } }
                        td.num { (version) }
                        td { a href=(format!("/topics/{topic}/events/0/{offset}")) { (ty) } }
                    }
                } }
            }
        }
    }
}

fn inspection_view(inspection: &Inspection, now: i64) -> Markup {
    html! {
        @if inspection.sagas.is_none() && inspection.streams.is_none() && inspection.outbox.is_none() {
            p.muted { "No saga, event store or outbox table in this database." }
        }
        @if let Some(sagas) = &inspection.sagas {
            h3 { "Sagas" }
            table data-figure="saga-counts" {
                thead { tr { th { "saga" } th { "status" } th.num { "instances" } } }
                tbody { @for c in &sagas.counts {
                    tr data-status=(c.status) { td { (c.saga) } td { (c.status) } td.num data-figure="instances" { (number(c.instances)) } }
                } }
            }
            @if sagas.attention.is_empty() {
                p.ok { "No saga is running late, compensating or failed." }
            } @else {
                table data-figure="saga-attention" {
                    thead { tr { th { "instance" } th { "status" } th.num { "step" } th.num { "attempt" } th { "deadline" } th { "error" } th { "data" } } }
                    tbody { @for s in &sagas.attention {
                        tr class=[s.stuck.then_some("stuck")] {
                            td.mono { (s.saga) "/" (s.id) }
                            td { @if s.stuck { span.bad { "stuck past its deadline" } } @else { (s.status) } }
                            td.num { (s.step) } td.num { (s.attempt) }
                            td.mono { @match s.deadline_ms { Some(ms) => { (time(ms)) @if ms < now { br; span.bad { (duration((now - ms) as u64)) " ago" } } }, None => "-" } }
                            td { (s.error.as_deref().unwrap_or("-")) }
                            td.mono { (s.data) }
                        }
                    } }
                }
            }
        }
        @if let Some(streams) = &inspection.streams {
            h3 { "Event-sourced streams" }
            table data-figure="stream-categories" {
                thead { tr { th { "category" } th.num { "streams" } th.num { "events" } th { "latest event" } } }
                tbody { @for c in &streams.categories {
                    tr { td { (c.category) } td.num { (number(c.streams)) } td.num { (number(c.events)) } td.mono { (time(c.latest_ms)) } }
                } }
            }
            p.muted { (number(streams.snapshots)) " stream(s) with a snapshot." }
        }
        @if let Some(outbox) = &inspection.outbox {
            h3 { "Outbox" }
            div.figures {
                div.figure class=[(outbox.pending > 0).then_some("warn")] { span.label { "Unsent rows" } span.value data-figure="outbox-pending" { (number(outbox.pending)) } }
                div.figure { span.label { "Oldest unsent" } span.value { @match outbox.oldest_pending_ms { Some(ms) => (duration((now - ms).max(0) as u64)), None => "-" } } }
                div.figure { span.label { "Relayed, last minute" } span.value data-figure="outbox-relayed" { (number(outbox.published_last_minute)) } }
                div.figure class=[(outbox.dead > 0).then_some("bad")] { span.label { "Dead rows" } span.value { (number(outbox.dead)) } }
            }
        }
    }
}
