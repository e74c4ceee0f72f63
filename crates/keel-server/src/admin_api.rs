//! The operator API under `/api`: the same views and actions as `keel groups` and `keel dlq`,
//! for a data directory that a running server owns (the CLI cannot open it then: one process
//! owns a data directory) and for the console.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api/topics` | every topic with partitions, log start and high watermark |
//! | `GET /api/groups` | every group that committed offsets, with total lag |
//! | `GET /api/groups/{group}` | the group's lag per partition, in events and ms |
//! | `POST /api/groups/{group}/reset` (JSON target + `dry_run`) | the offsets moved (or, dry, that would move) |
//! | `DELETE /api/groups/{group}?command=` | the group deleted, audited, with the offsets it had (409 while members run) |
//! | `GET /api/dead-letters` | per dead-letter topic: pending, replayed, purged, oldest age, causes |
//! | `GET /api/dead-letters/{topic}?group=&kind=&type=&key=&event_id=&partition=&offset=&limit=` | the dead letters, each with its CloudEvent |
//! | `POST /api/dead-letters/{topic}/replay` (JSON filter + `canary`, `force`, `to_group`) | the replay report |
//! | `GET /api/dead-letters/canary/{id}` | pending, handled or dead-lettered again |
//! | `POST /api/dead-letters/{topic}/purge` (JSON filter + `confirm`) | what was (or would be) purged |
//! | `GET /api/audit?topic=` | the audit log of replays, purges and group deletions |
//!
//! (Topics and events are `topics_api.rs`; `GET /api/openapi.json` describes them all.)
//!
//! The logic is `keel_runtime::admin`, run on the server's source through the ports
//! ([`App::on_ports`]: the owned log, or a Kafka cluster for `keel serve --brokers`); this
//! file maps HTTP to it and its errors to status codes with a one-line JSON
//! `{"error": ...}`. Replays, purges and group deletions are recorded in the audit log with the
//! request line and the caller's address as the command. State-changing routes sit behind
//! [`require_admin`](crate::access::require_admin).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use keel_core::TransportError;
use keel_runtime::admin::audit::{self, AuditError};
use keel_runtime::admin::dead_letters::{self, DeadLetterError, DeadLetterFilter};
use keel_runtime::admin::groups::{self, GroupsError, ResetTarget};
use keel_runtime::admin::replay;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::require_admin;
use crate::app::{ApiError, App, ErrorBody, now_ms};

/// Most dead letters one list answer holds unless the caller asks for fewer.
const LIST_LIMIT_DEFAULT: usize = 100;

/// The `/api` routes of groups, dead letters and the audit log; the state-changing ones
/// need the admin role.
pub(crate) fn routes() -> OpenApiRouter<App> {
    let changes = OpenApiRouter::new()
        .routes(routes!(reset_group))
        .routes(routes!(delete_group))
        .routes(routes!(replay))
        .routes(routes!(purge))
        .route_layer(axum::middleware::from_fn(require_admin));
    OpenApiRouter::new()
        .routes(routes!(list_groups))
        .routes(routes!(group_lag))
        .routes(routes!(group_members))
        .routes(routes!(dead_letter_summaries))
        .routes(routes!(canary))
        .routes(routes!(list_dead_letters))
        .routes(routes!(audit_log))
        .merge(changes)
}

impl From<DeadLetterError> for ApiError {
    fn from(error: DeadLetterError) -> ApiError {
        let status = match error {
            DeadLetterError::TopicNotFound(_) | DeadLetterError::CanaryNotFound(_) => {
                StatusCode::NOT_FOUND
            }
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
            // A cluster refuses to move a running group's offsets (409); an engine that
            // cannot do what was asked says so (501).
            GroupsError::Transport(error) => return error.into(),
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

#[utoipa::path(
    get, path = "/api/groups", tag = "groups",
    responses((status = 200, description = "Every group that committed offsets, with its total lag", body = Vec<groups::GroupSummary>))
)]
async fn list_groups(State(app): State<App>) -> Result<Json<Vec<groups::GroupSummary>>, ApiError> {
    app.on_ports(|admin, _| Box::pin(groups::list_groups(admin, now_ms())))
        .await
        .map(Json)
}

#[utoipa::path(
    get, path = "/api/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "The consumer group")),
    responses(
        (status = 200, description = "The group's lag per partition of every topic it committed in", body = Vec<groups::PartitionLag>),
        (status = 404, description = "No such group", body = ErrorBody)
    )
)]
async fn group_lag(
    State(app): State<App>,
    Path(group): Path<String>,
) -> Result<Json<Vec<groups::PartitionLag>>, ApiError> {
    app.on_ports(move |admin, _| {
        Box::pin(async move { groups::group_lag(admin, &group, now_ms()).await })
    })
    .await
    .map(Json)
}

/// Where `POST /api/groups/{group}/reset` moves a group's committed offsets.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "to")]
pub(crate) enum ResetTo {
    /// The first stored offset: everything stored is read again.
    Earliest,
    /// The high watermark: everything stored is skipped.
    Latest,
    /// This offset, clamped to the stored range.
    Offset {
        /// The offset.
        offset: u64,
    },
    /// The first event at or after this time.
    Time {
        /// Ms since the epoch.
        time_ms: i64,
    },
}

/// `POST /api/groups/{group}/reset` body.
#[derive(Debug, Deserialize, ToSchema)]
struct ResetBody {
    /// The topic whose offsets move.
    topic: String,
    /// One partition; every partition of the topic when absent.
    partition: Option<u32>,
    /// Where to.
    #[serde(flatten)]
    target: ResetTo,
    /// Only answer what would move (and how many events each partition would re-read or
    /// skip); nothing is committed.
    #[serde(default)]
    dry_run: bool,
    /// Reset even while members of the group are connected (their next commit may
    /// overwrite it).
    #[serde(default)]
    force: bool,
}

/// One partition's move in a reset, with what it means for the group.
#[derive(Debug, Serialize, ToSchema)]
struct ResetMove {
    #[serde(flatten)]
    reset: groups::OffsetReset,
    /// Events the group will read again (the offset moves back) — positive — or skip (it
    /// moves forward) — negative.
    reread_events: i64,
}

/// A reset's answer.
#[derive(Debug, Serialize, ToSchema)]
struct ResetReport {
    /// The group.
    group: String,
    /// Whether offsets were committed (false for a dry run).
    applied: bool,
    /// One move per partition.
    moves: Vec<ResetMove>,
}

/// Moves a group's committed offsets in one topic, or with `dry_run` shows the moves first.
///
/// Refused (409) while members of the group are connected to the Kafka listener, as Kafka
/// refuses resets of non-empty groups: a running member's next commit would overwrite it
/// (`force` resets anyway). A group without committed offsets is not found (404).
/// Embedded consumers in other processes cannot exist (the server owns the log).
#[utoipa::path(
    post, path = "/api/groups/{group}/reset", tag = "groups",
    params(("group" = String, Path, description = "The consumer group")),
    request_body = ResetBody,
    responses(
        (status = 200, description = "The moves made, or with `dry_run` the moves a reset would make", body = ResetReport),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such topic or partition", body = ErrorBody),
        (status = 409, description = "Members of the group are connected", body = ErrorBody)
    )
)]
async fn reset_group(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(group): Path<String>,
    Json(body): Json<ResetBody>,
) -> Result<Json<ResetReport>, ApiError> {
    let live = members_of(&app, &group).map_or(0, |view| view.members.len());
    if live > 0 && !body.dry_run && !body.force {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "group '{group}' has {live} member(s) connected to the Kafka listener; stop them first (their next commit would overwrite the reset), or force the reset"
            ),
        ));
    }
    let target = match body.target {
        ResetTo::Earliest => ResetTarget::Earliest,
        ResetTo::Latest => ResetTarget::Latest,
        ResetTo::Offset { offset } => ResetTarget::Offset(offset),
        ResetTo::Time { time_ms } => ResetTarget::Time(time_ms),
    };
    app.on_ports(move |admin, _| {
        Box::pin(async move {
            let plan =
                groups::plan_reset(admin, &group, &body.topic, body.partition, target).await?;
            // Without a commit the group would start at the log start.
            let log_starts = admin.partition_offsets(&body.topic).await?;
            if !body.dry_run {
                groups::apply_reset(admin, &group, &plan).await?;
                tracing::info!(%group, topic = %body.topic, %peer, partitions = plan.len(), "offsets reset over HTTP");
            }
            let moves = plan
                .into_iter()
                .map(|reset| {
                    let log_start = log_starts
                        .iter()
                        .find(|p| p.partition == reset.partition)
                        .map_or(0, |p| p.log_start);
                    let before = reset.offset_before.unwrap_or(log_start);
                    let reread_events = before as i64 - reset.offset_after as i64;
                    ResetMove {
                        reset,
                        reread_events,
                    }
                })
                .collect();
            Ok::<_, GroupsError>(ResetReport {
                group,
                applied: !body.dry_run,
                moves,
            })
        })
    })
    .await
    .map(Json)
}

/// `?command=` of a state-changing request without a body: the caller's own description
/// for the audit log (the `keel` CLI sends its command line).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CommandParam {
    /// As [`ReplayBody::command`].
    command: Option<String>,
}

/// Deletes a group: its committed offsets and whatever else the source keeps for it
/// (`AdminTransport::delete_group`; Kafka's DeleteGroups on a cluster), recorded in the
/// audit log with the offsets it had.
///
/// Refused (409) while members of the group run — routes of this server, members
/// connected to its Kafka listener, or on a cluster (Kafka's NON_EMPTY_GROUP): they would
/// commit again. A group without committed offsets is not found (404); an engine that
/// cannot delete groups answers 501 with its reason.
#[utoipa::path(
    delete, path = "/api/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "The consumer group"), CommandParam),
    responses(
        (status = 200, description = "The group was deleted; its committed offsets, as the audit log records them", body = groups::GroupDeletion),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 409, description = "Members of the group run", body = ErrorBody),
        (status = 501, description = "The engine cannot delete groups", body = ErrorBody)
    )
)]
async fn delete_group(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(group): Path<String>,
    Query(params): Query<CommandParam>,
) -> Result<Json<groups::GroupDeletion>, ApiError> {
    // The owned log's members are of this process (its routes) or connected to its Kafka
    // listener; the log itself cannot tell (a cluster's DeleteGroups can).
    let routed_here = app.source.bus("").is_ok_and(|bus| bus.has_members(&group));
    if routed_here || members_of(&app, &group).is_some_and(|view| !view.members.is_empty()) {
        return Err(TransportError::GroupActive { group }.into());
    }
    let command = audit_command(
        &params.command,
        &format!("DELETE /api/groups/{group}"),
        peer,
    );
    app.on_ports(move |admin, publish| {
        Box::pin(async move {
            let deletion = groups::delete_group(admin, publish, &group, command, now_ms()).await?;
            tracing::info!(%group, %peer, partitions = deletion.offsets.len(), id = %deletion.id, "group deleted over HTTP");
            Ok::<_, GroupsError>(deletion)
        })
    })
    .await
    .map(Json)
}

/// One live member of a group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Member {
    /// The id the coordinator gave it.
    pub(crate) member_id: String,
    /// `group.instance.id` of a static member.
    pub(crate) instance_id: Option<String>,
    /// The client id it sent.
    pub(crate) client_id: String,
    /// Where it connects from.
    pub(crate) client_host: String,
    /// Its partitions as `topic/partition`.
    pub(crate) partitions: Vec<String>,
}

/// A group's live membership.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct Members {
    /// Kafka's state name; `Empty` when no member is connected.
    pub(crate) state: String,
    /// The assignor, once stable.
    pub(crate) protocol: String,
    /// The members.
    pub(crate) members: Vec<Member>,
}

/// The live membership of `group` on the Kafka listener (empty without one).
pub(crate) fn members_of(app: &App, group: &str) -> Option<Members> {
    let view = app.groups.as_ref()?.group_view(group)?;
    Some(Members {
        state: view.state.to_string(),
        protocol: view.protocol,
        members: view
            .members
            .into_iter()
            .map(|m| Member {
                partitions: m
                    .partitions
                    .iter()
                    .flat_map(|(topic, partitions)| {
                        partitions.iter().map(move |p| format!("{topic}/{p}"))
                    })
                    .collect(),
                member_id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
            })
            .collect(),
    })
}

#[utoipa::path(
    get, path = "/api/groups/{group}/members", tag = "groups",
    params(("group" = String, Path, description = "The consumer group")),
    responses((status = 200, description = "Members connected to the Kafka listener and their partitions (none: state Empty)", body = Members))
)]
async fn group_members(State(app): State<App>, Path(group): Path<String>) -> Json<Members> {
    Json(members_of(&app, &group).unwrap_or_else(|| Members {
        state: "Empty".into(),
        ..Members::default()
    }))
}

#[utoipa::path(
    get, path = "/api/dead-letters", tag = "dead letters",
    responses((status = 200, description = "Per dead-letter topic: pending, replayed, purged, oldest pending age, causes", body = Vec<dead_letters::DeadLetterSummary>))
)]
async fn dead_letter_summaries(
    State(app): State<App>,
) -> Result<Json<Vec<dead_letters::DeadLetterSummary>>, ApiError> {
    app.on_ports(|admin, _| Box::pin(dead_letters::summaries(admin, now_ms())))
        .await
        .map(Json)
}

/// Which dead letters, as query parameters or JSON fields; every field set must match.
/// Unknown fields are ignored (serde cannot refuse them through `flatten`).
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
struct FilterParams {
    /// Partition of the dead-letter topic.
    partition: Option<u32>,
    /// Offset in the dead-letter topic.
    offset: Option<u64>,
    /// The CloudEvent id.
    event_id: Option<String>,
    /// The CloudEvent type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    #[schema(rename = "type")]
    event_type: Option<String>,
    /// The group that gave up.
    group: Option<String>,
    /// The error kind: transient, permanent or decode.
    kind: Option<String>,
    /// The record key.
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LimitParam {
    /// Most dead letters answered (default 100, at most 10,000).
    limit: Option<usize>,
}

#[utoipa::path(
    get, path = "/api/dead-letters/{topic}", tag = "dead letters",
    params(("topic" = String, Path, description = "A dead-letter topic or the topic it belongs to"), FilterParams, LimitParam),
    responses(
        (status = 200, description = "The matching dead letters, each with its decoded `keel_dlq_*` headers and CloudEvent", body = Vec<Object>),
        (status = 404, description = "No such dead-letter topic", body = ErrorBody)
    )
)]
async fn list_dead_letters(
    State(app): State<App>,
    Path(topic): Path<String>,
    Query(filter): Query<FilterParams>,
    Query(limit): Query<LimitParam>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let limit = limit.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    let filter = DeadLetterFilter::from(filter);
    app.on_ports(move |admin, _| {
        Box::pin(async move {
            let found = dead_letters::dead_letters(admin, &topic, &filter, limit).await?;
            Ok::<_, DeadLetterError>(found.iter().map(|d| d.to_json()).collect())
        })
    })
    .await
    .map(Json)
}

/// `POST …/replay` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
struct ReplayBody {
    /// Replay only the first matching dead letter, as a canary.
    #[serde(default)]
    canary: bool,
    /// The caller's own description for the audit log (the `keel` CLI sends its command
    /// line); the request line and peer address are recorded either way.
    command: Option<String>,
    /// Replay dead letters that were replayed before, too.
    #[serde(default)]
    force: bool,
    /// Replay to this group only (through `<topic>.retry`), not to every group of the
    /// original topic; only that group's dead letters are selected.
    to_group: Option<String>,
    #[serde(default, flatten)]
    filter: FilterParams,
}

#[utoipa::path(
    post, path = "/api/dead-letters/{topic}/replay", tag = "dead letters",
    params(("topic" = String, Path, description = "A dead-letter topic or the topic it belongs to")),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "What was replayed and where it went", body = replay::ReplayReport),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such dead-letter topic", body = ErrorBody)
    )
)]
async fn replay(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(topic): Path<String>,
    Json(body): Json<ReplayBody>,
) -> Result<Json<replay::ReplayReport>, ApiError> {
    let command = audit_command(
        &body.command,
        &format!("POST /api/dead-letters/{topic}/replay"),
        peer,
    );
    app.on_ports(move |admin, publish| {
        Box::pin(async move {
            let filter = DeadLetterFilter::from(body.filter);
            let mut plan =
                replay::plan_replay(admin, &topic, filter, body.force, body.canary, command)
                    .await?;
            if let Some(group) = body.to_group.filter(|g| !g.is_empty()) {
                plan = plan.to_group(group);
            }
            replay::replay(admin, publish, &plan, now_ms()).await
        })
    })
    .await
    .map(Json)
}

#[utoipa::path(
    get, path = "/api/dead-letters/canary/{id}", tag = "dead letters",
    params(("id" = String, Path, description = "The canary replay's id")),
    responses(
        (status = 200, description = "Pending, handled, or dead-lettered again", body = replay::CanaryOutcome),
        (status = 404, description = "No canary with that id", body = ErrorBody)
    )
)]
async fn canary(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<replay::CanaryOutcome>, ApiError> {
    app.on_ports(move |admin, _| Box::pin(async move { replay::canary_outcome(admin, &id).await }))
        .await
        .map(Json)
}

/// `POST …/purge` body: without `"confirm": true` nothing is written and the answer lists
/// what would be purged.
#[derive(Debug, Default, Deserialize, ToSchema)]
struct PurgeBody {
    /// Write the purge; without it the answer is a preview.
    #[serde(default)]
    confirm: bool,
    /// As [`ReplayBody::command`].
    command: Option<String>,
    #[serde(default, flatten)]
    filter: FilterParams,
}

#[utoipa::path(
    post, path = "/api/dead-letters/{topic}/purge", tag = "dead letters",
    params(("topic" = String, Path, description = "A dead-letter topic or the topic it belongs to")),
    request_body = PurgeBody,
    responses(
        (status = 200, description = "What was purged, or without `confirm` what would be", body = dead_letters::PurgeReport),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such dead-letter topic", body = ErrorBody)
    )
)]
async fn purge(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(topic): Path<String>,
    Json(body): Json<PurgeBody>,
) -> Result<Json<dead_letters::PurgeReport>, ApiError> {
    let command = audit_command(
        &body.command,
        &format!("POST /api/dead-letters/{topic}/purge"),
        peer,
    );
    app.on_ports(move |admin, publish| {
        Box::pin(async move {
            let filter = DeadLetterFilter::from(body.filter);
            if body.confirm {
                dead_letters::purge(admin, publish, &topic, &filter, true, command, now_ms()).await
            } else {
                dead_letters::plan_purge(admin, &topic, &filter).await
            }
        })
    })
    .await
    .map(Json)
}

/// What the audit log records as the command of a request (`request`: its method and path)
/// over HTTP: the caller's own description, if any, and the request line and address.
fn audit_command(caller: &Option<String>, request: &str, peer: SocketAddr) -> String {
    let request = format!("{request} from {peer}");
    match caller {
        Some(command) => format!("{command} (via {request})"),
        None => request,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Only entries about this dead-letter topic.
    topic: Option<String>,
}

#[utoipa::path(
    get, path = "/api/audit", tag = "dead letters",
    params(AuditParams),
    responses((status = 200, description = "Every replay, canary, purge and group deletion, oldest first", body = Vec<audit::AuditEntry>))
)]
async fn audit_log(
    State(app): State<App>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<audit::AuditEntry>>, ApiError> {
    app.on_ports(move |admin, _| {
        Box::pin(async move { audit::history(admin, params.topic.as_deref()).await })
    })
    .await
    .map(Json)
}
