//! The HTTP listener's routes: `GET /health`, `GET /metrics`, the operator API under `/api`
//! (`admin_api.rs`, `topics_api.rs`, `schemas_api.rs`, the overview) with its OpenAPI
//! document at `GET /api/openapi.json`, and the web console (`console/`).
//!
//! Health answers from memory (is the log open, which topics exist) so a load balancer's
//! probe never waits on disk; metrics encode one registry holding the runtime's families
//! (whose lag and dead-letter gauges read the log at each scrape) and the Kafka listener's.
//! The OpenAPI document is generated from the handlers' annotations as the API router is
//! built (`utoipa-axum`), so a route cannot exist undocumented.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use keel_runtime::METRICS_CONTENT_TYPE;
use prometheus_client::registry::Registry;
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::App;
use crate::source::Source;
use crate::{admin_api, console, schemas_api, topics_api};

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(info(
    title = "Keel operator API",
    description = "The API behind `keel serve`'s console and the `keel groups`, `keel dlq` and \
                   `keel topics` verbs: topics and events, consumer groups and offset resets, \
                   dead letters with replay, canary and purge, the audit log, schemas. Routes \
                   that change state answer 403 to a read-only caller."
))]
struct ApiDoc;

/// Every route of the HTTP listener; `/metrics` encodes `registry`, which holds the
/// runtime's families and the Kafka listener's.
pub(crate) fn router(app: App, registry: Arc<Registry>) -> Router {
    let (api, document) = api_routes().split_for_parts();
    let document = Arc::new(
        document
            .to_pretty_json()
            .expect("the API document serializes"),
    );
    Router::new()
        .route("/health", get(health))
        .route(
            "/api/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.as_str().to_owned(),
                )
            }),
        )
        .merge(api)
        .merge(console::routes())
        .with_state(app)
        .merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(registry),
        )
}

/// The JSON API and its description.
pub(crate) fn api_routes() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(admin_api::routes())
        .merge(topics_api::routes())
        .merge(schemas_api::routes())
        .merge(console::api_routes())
}

/// `{"status":"ok","topics":N}` from a server whose log is open and whose partitions all take
/// writes; `503` with `"status":"failing"` and the partitions that refuse writes after a
/// failed fsync (sticky until the server restarts), so a load balancer or an operator sees
/// that acknowledged writes have stopped.
async fn health(State(app): State<App>) -> impl IntoResponse {
    let bus = match &app.source {
        Source::Log(bus) => bus,
        // The brokers answer for their own health; this process is up.
        Source::Cluster(cluster) => {
            return (
                StatusCode::OK,
                Json(json!({ "status": "ok", "cluster": cluster.name })),
            );
        }
    };
    let failed: Vec<serde_json::Value> = bus
        .log()
        .failed_partitions()
        .into_iter()
        .map(|(topic, partition, error)| {
            json!({ "topic": topic, "partition": partition, "error": error })
        })
        .collect();
    let topics = bus.log().topics().len();
    if failed.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({ "status": "ok", "topics": topics })),
        );
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "failing", "topics": topics, "failed_partitions": failed })),
    )
}

/// The Prometheus registry in the OpenMetrics text format.
pub(crate) async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    // Scraping reads partition high watermarks and dead-letter heads from disk: keep that
    // off the async workers.
    let text = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    })
    .await
    .unwrap_or_else(|_| String::from("# metrics encoding panicked\n"));
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text)
}
