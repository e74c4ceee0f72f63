//! The operator API under `/api`: the same views and actions as `keel groups` and `keel dlq`,
//! for a data directory that a running server owns (the CLI cannot open it then: one process
//! owns a data directory) and for the dashboard.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api/topics` | every topic with partitions, log start and high watermark |
//! | `GET /api/groups` | every group that committed offsets, with total lag |
//! | `GET /api/groups/{group}` | the group's lag per partition, in events and ms |
//! | `GET /api/dead-letters` | per dead-letter topic: pending, replayed, purged, oldest age, causes |
//! | `GET /api/dead-letters/{topic}?group=&kind=&type=&key=&event_id=&partition=&offset=&limit=` | the dead letters, each with its CloudEvent |
//! | `POST /api/dead-letters/{topic}/replay` (JSON filter + `canary`, `force`) | the replay report |
//! | `GET /api/dead-letters/canary/{id}` | pending, handled or dead-lettered again |
//! | `POST /api/dead-letters/{topic}/purge` (JSON filter + `confirm`) | what was (or would be) purged |
//! | `GET /api/audit?topic=` | the audit log of replays and purges |
//!
//! The logic is `keel_runtime::admin`; this file maps HTTP to it and its errors to status
//! codes with a one-line JSON `{"error": ...}`. Every call reads the log on a blocking
//! thread. Replays and purges are recorded in the audit log with the request line and the
//! caller's address as the command.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use keel_log::Log;
use keel_runtime::EmbeddedBus;
use keel_runtime::admin::audit::AuditError;
use keel_runtime::admin::dead_letters::{self, DeadLetterError, DeadLetterFilter};
use keel_runtime::admin::groups::GroupsError;
use keel_runtime::admin::{audit, groups};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Most dead letters one list answer holds unless the caller asks for fewer.
const LIST_LIMIT_DEFAULT: usize = 100;

/// The `/api` routes over the bus's log.
pub(crate) fn router(bus: Arc<EmbeddedBus>) -> Router {
    Router::new()
        .route("/api/topics", get(topics))
        .route("/api/groups", get(list_groups))
        .route("/api/groups/{group}", get(group_lag))
        .route("/api/dead-letters", get(dead_letter_summaries))
        .route("/api/dead-letters/canary/{id}", get(canary))
        .route("/api/dead-letters/{topic}", get(list_dead_letters))
        .route("/api/dead-letters/{topic}/replay", post(replay))
        .route("/api/dead-letters/{topic}/purge", post(purge))
        .route("/api/audit", get(audit_log))
        .with_state(bus)
}

/// An error answer: a status and one line naming the problem.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<DeadLetterError> for ApiError {
    fn from(error: DeadLetterError) -> ApiError {
        let status = match error {
            DeadLetterError::TopicNotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

impl From<GroupsError> for ApiError {
    fn from(error: GroupsError) -> ApiError {
        let status = match error {
            GroupsError::TopicNotFound(_)
            | GroupsError::GroupNotFound(_)
            | GroupsError::PartitionNotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

/// Runs `f` on the log on a blocking thread and answers its value as JSON.
async fn with_log<T, E>(
    bus: &EmbeddedBus,
    f: impl FnOnce(&Log) -> Result<T, E> + Send + 'static,
) -> Result<Json<T>, ApiError>
where
    T: Serialize + Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let log = bus.log().clone();
    match tokio::task::spawn_blocking(move || f(&log)).await {
        Ok(result) => result.map(Json).map_err(Into::into),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request panicked; see the server log".into(),
        )),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One topic as `GET /api/topics` lists it.
#[derive(Serialize)]
struct TopicView {
    name: String,
    partitions: Vec<PartitionView>,
}

#[derive(Serialize)]
struct PartitionView {
    partition: u32,
    log_start_offset: u64,
    high_watermark: u64,
}

async fn topics(State(bus): State<Arc<EmbeddedBus>>) -> Result<Json<Vec<TopicView>>, ApiError> {
    with_log(&bus, |log| {
        Ok::<_, ApiError>(
            log.topics()
                .iter()
                .map(|topic| TopicView {
                    name: topic.name().to_string(),
                    partitions: (0u32..)
                        .zip(topic.partitions())
                        .map(|(partition, p)| PartitionView {
                            partition,
                            log_start_offset: p.log_start_offset(),
                            high_watermark: p.high_watermark(),
                        })
                        .collect(),
                })
                .collect(),
        )
    })
    .await
}

async fn list_groups(
    State(bus): State<Arc<EmbeddedBus>>,
) -> Result<Json<Vec<groups::GroupSummary>>, ApiError> {
    with_log(&bus, |log| groups::list_groups(log, now_ms())).await
}

async fn group_lag(
    State(bus): State<Arc<EmbeddedBus>>,
    Path(group): Path<String>,
) -> Result<Json<Vec<groups::PartitionLag>>, ApiError> {
    with_log(&bus, move |log| groups::group_lag(log, &group, now_ms())).await
}

async fn dead_letter_summaries(
    State(bus): State<Arc<EmbeddedBus>>,
) -> Result<Json<Vec<dead_letters::DeadLetterSummary>>, ApiError> {
    with_log(&bus, |log| dead_letters::summaries(log, now_ms())).await
}

/// Which dead letters, as query parameters or JSON fields; every field set must match.
/// Unknown fields are ignored (serde cannot refuse them through `flatten`).
#[derive(Debug, Default, Deserialize)]
struct FilterParams {
    partition: Option<u32>,
    offset: Option<u64>,
    event_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    group: Option<String>,
    kind: Option<String>,
    key: Option<String>,
}

impl From<FilterParams> for DeadLetterFilter {
    fn from(params: FilterParams) -> DeadLetterFilter {
        DeadLetterFilter {
            partition: params.partition,
            offset: params.offset,
            event_id: params.event_id,
            event_type: params.event_type,
            group: params.group,
            kind: params.kind,
            key: params.key,
        }
    }
}

/// `?limit=`, beside the filter (a separate extractor: flattened query numbers do not parse).
#[derive(Debug, Deserialize)]
struct LimitParam {
    limit: Option<usize>,
}

async fn list_dead_letters(
    State(bus): State<Arc<EmbeddedBus>>,
    Path(topic): Path<String>,
    Query(filter): Query<FilterParams>,
    Query(limit): Query<LimitParam>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let limit = limit.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    let filter = DeadLetterFilter::from(filter);
    with_log(&bus, move |log| {
        let found = dead_letters::dead_letters(log, &topic, &filter, limit)?;
        Ok::<_, DeadLetterError>(found.iter().map(|d| d.to_json()).collect())
    })
    .await
}

/// `POST …/replay` body.
#[derive(Debug, Default, Deserialize)]
struct ReplayBody {
    #[serde(default)]
    canary: bool,
    /// The caller's own description for the audit log (the `keel` CLI sends its command
    /// line); the request line and peer address are recorded either way.
    command: Option<String>,
    #[serde(default)]
    force: bool,
    #[serde(default, flatten)]
    filter: FilterParams,
}

async fn replay(
    State(bus): State<Arc<EmbeddedBus>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(topic): Path<String>,
    Json(body): Json<ReplayBody>,
) -> Result<Json<dead_letters::ReplayReport>, ApiError> {
    let command = audit_command(&body.command, "replay", &topic, peer);
    with_log(&bus, move |log| {
        let filter = DeadLetterFilter::from(body.filter);
        let plan =
            dead_letters::plan_replay(log, &topic, filter, body.force, body.canary, command)?;
        dead_letters::replay(log, &plan, now_ms())
    })
    .await
}

async fn canary(
    State(bus): State<Arc<EmbeddedBus>>,
    Path(id): Path<String>,
) -> Result<Json<dead_letters::CanaryOutcome>, ApiError> {
    with_log(&bus, move |log| dead_letters::canary_outcome(log, &id)).await
}

/// `POST …/purge` body: without `"confirm": true` nothing is written and the answer lists
/// what would be purged.
#[derive(Debug, Default, Deserialize)]
struct PurgeBody {
    #[serde(default)]
    confirm: bool,
    /// As [`ReplayBody::command`].
    command: Option<String>,
    #[serde(default, flatten)]
    filter: FilterParams,
}

async fn purge(
    State(bus): State<Arc<EmbeddedBus>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(topic): Path<String>,
    Json(body): Json<PurgeBody>,
) -> Result<Json<dead_letters::PurgeReport>, ApiError> {
    let command = audit_command(&body.command, "purge", &topic, peer);
    with_log(&bus, move |log| {
        let filter = DeadLetterFilter::from(body.filter);
        if body.confirm {
            dead_letters::purge(log, &topic, &filter, true, command, now_ms())
        } else {
            dead_letters::plan_purge(log, &topic, &filter)
        }
    })
    .await
}

/// What the audit log records as the command of a replay or purge over HTTP.
fn audit_command(caller: &Option<String>, action: &str, topic: &str, peer: SocketAddr) -> String {
    let request = format!("POST /api/dead-letters/{topic}/{action} from {peer}");
    match caller {
        Some(command) => format!("{command} (via {request})"),
        None => request,
    }
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    topic: Option<String>,
}

async fn audit_log(
    State(bus): State<Arc<EmbeddedBus>>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<audit::AuditEntry>>, ApiError> {
    with_log(&bus, move |log| {
        audit::history(log, params.topic.as_deref())
    })
    .await
}
