//! What every handler of the HTTP listener shares ([`App`]), the JSON error answer, and the
//! helpers that run log work off the async workers and port work on either source.
//!
//! Not here: routes (`http.rs`), the handlers themselves.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_core::{AdminTransport, BoxFuture, PublishTransport, TransportError};
use keel_embedded::EmbeddedBus;
use keel_embedded::admin::{LogAdmin, at_once};
use keel_kafka::group::GroupCoordinator;
use keel_log::Log;
use keel_schema::Registry;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::config::ConsoleConfig;
use crate::history::History;
use crate::server::BoundAddrs;
use crate::source::Source;

/// The state behind the HTTP listener: where the data comes from (the owned log or a
/// cluster), the schema registry when one is served, the console's history and settings,
/// where every listener is bound, and the Kafka group coordinator.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// The owned log's bus, or the cluster's ports.
    pub(crate) source: Source,
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

impl App {
    /// Runs `f` on the log on a blocking thread (log reads may wait for the disk); on a
    /// cluster, the answer that this view needs a data directory.
    pub(crate) async fn with_log<T, E>(
        &self,
        f: impl FnOnce(&Log) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        blocking_log(self.source.bus("this view")?, f).await
    }

    /// Runs `f` on the source's ports: on the owned log as a [`LogAdmin`] on a blocking
    /// thread (every answer ready at once), on a cluster through its client. The one way
    /// the console and the API reach topics, groups, dead letters and events, so both
    /// sources run the same code.
    pub(crate) async fn on_ports<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: for<'a> FnOnce(
                &'a dyn AdminTransport,
                &'a dyn PublishTransport,
            ) -> BoxFuture<'a, Result<T, E>>
            + Send
            + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        match &self.source {
            Source::Log(bus) => {
                blocking_log(bus, move |log| {
                    let port = LogAdmin::new(log, now_ms());
                    at_once(f(&port, &port))
                })
                .await
            }
            Source::Cluster(cluster) => f(&*cluster.admin, &*cluster.publish)
                .await
                .map_err(Into::into),
        }
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

/// A port's failure as an answer: 404 for a topic that does not exist, 409 for a group
/// whose members run, 400 for a request the broker refuses for what it asks (a bad
/// setting), 501 for what the engine cannot do, 502 when the broker could not answer.
impl From<TransportError> for ApiError {
    fn from(error: TransportError) -> ApiError {
        let status = match error {
            TransportError::UnknownTopic { .. } => StatusCode::NOT_FOUND,
            TransportError::GroupActive { .. } => StatusCode::CONFLICT,
            TransportError::Refused { .. } => StatusCode::BAD_REQUEST,
            TransportError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, error.to_string())
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
