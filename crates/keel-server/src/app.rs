//! What every handler of the HTTP listener shares ([`App`]), the JSON error answer, and the
//! helper that runs log work off the async workers.
//!
//! Not here: routes (`http.rs`), the handlers themselves.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_embedded::EmbeddedBus;
use keel_kafka::group::GroupCoordinator;
use keel_log::Log;
use keel_schema::Registry;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::config::ConsoleConfig;
use crate::history::History;
use crate::server::BoundAddrs;

/// The state behind the HTTP listener: the bus over the log, the schema registry when one
/// is served, the console's history and settings, where every listener is bound, and the
/// Kafka group coordinator.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// The bus that owns the log.
    pub(crate) bus: Arc<EmbeddedBus>,
    /// The schema registry, when `keel serve` serves one.
    pub(crate) registry: Option<Arc<Registry>>,
    /// Sampled throughput and lag.
    pub(crate) history: Arc<History>,
    /// The console's settings.
    pub(crate) console: Arc<ConsoleConfig>,
    /// Where the listeners are bound.
    pub(crate) listeners: BoundAddrs,
    /// The Kafka listener's group coordinator (live members), when Kafka is served.
    pub(crate) groups: Option<Arc<GroupCoordinator>>,
}

impl FromRef<App> for Arc<EmbeddedBus> {
    fn from_ref(app: &App) -> Arc<EmbeddedBus> {
        app.bus.clone()
    }
}

impl App {
    /// Runs `f` on the log on a blocking thread (log reads may wait for the disk).
    pub(crate) async fn with_log<T, E>(
        &self,
        f: impl FnOnce(&Log) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        blocking_log(&self.bus, f).await
    }
}

/// Runs `f` on the bus's log on a blocking thread; a panic becomes a 500 answer.
pub(crate) async fn blocking_log<T, E>(
    bus: &EmbeddedBus,
    f: impl FnOnce(&Log) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let log = bus.log().clone();
    match tokio::task::spawn_blocking(move || f(&log)).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request panicked; see the server log".into(),
        )),
    }
}

/// The wall clock in ms since the epoch (0 before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An error answer: a status and one line naming the problem.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, in one line.
    pub(crate) error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl ApiError {
    /// A 400 answer.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }

    /// A 404 answer.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
}
