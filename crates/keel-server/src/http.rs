//! The HTTP listener's routes: `GET /health`, `GET /metrics`, and the operator API under
//! `/api` (`admin_api.rs`), and the dashboard at `/` (`assets/dashboard.html`).
//!
//! Health answers from memory (is the log open, which topics exist) so a load balancer's
//! probe never waits on disk; metrics encode one registry holding the runtime's families
//! (whose lag and dead-letter gauges read the log at each scrape) and the Kafka listener's.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use keel_runtime::{EmbeddedBus, METRICS_CONTENT_TYPE};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::admin_api;

/// The routes, sharing the bus that owns the log; `/metrics` encodes `registry`, which holds
/// the runtime's families and the Kafka listener's.
pub(crate) fn router(bus: Arc<EmbeddedBus>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(health))
        .with_state(bus.clone())
        .merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(registry),
        )
        .merge(admin_api::router(bus))
}

/// The dashboard: one static page over `/api`, compiled into the binary so serving it needs
/// no files and no front-end build step.
async fn dashboard() -> Html<&'static str> {
    Html(include_str!("../assets/dashboard.html"))
}

/// `{"status":"ok","topics":N}`; a server that answers at all has an open, recovered log.
async fn health(State(bus): State<Arc<EmbeddedBus>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "topics": bus.log().topics().len(),
    }))
}

/// The Prometheus registry in the OpenMetrics text format.
async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
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
