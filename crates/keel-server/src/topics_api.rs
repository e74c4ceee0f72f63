//! The operator API's topics and events: list, describe, create and delete topics; browse,
//! show and produce events; an event's journey across topics.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api/topics[?q=]` | every topic (or those whose name contains `q`) with its settings, size and partitions (on a Kafka cluster: partitions and offsets only, from the console's last sample, its time in `x-keel-sampled-at-ms`) |
//! | `GET /api/topics/{topic}` | one topic |
//! | `POST /api/topics` (JSON name, partitions, config) | the created topic (on a Kafka cluster: name and partitions only, its settings the brokers' defaults) |
//! | `DELETE /api/topics/{topic}` | the deleted topic's name (on a Kafka cluster: DeleteTopics through the admin port) |
//! | `PATCH /api/topics/{topic}/config` (JSON config, dry_run) | the topic with its settings changed, and the changes old → new (on a Kafka cluster: checked and applied by its brokers, `topic_settings.rs`) |
//! | `GET /api/topics/{topic}/events?…` | a page of events (`events.rs` for the search) |
//! | `GET /api/topics/{topic}/events/{partition}/{offset}` | one event |
//! | `GET /api/topics/{topic}/events/{partition}/{offset}/journey` | its conversation |
//! | `POST /api/topics/{topic}/events` (JSON CloudEvent fields) | where it was stored |
//! | `GET /api/throughput[?topic=]` | events in and out per second over the last hour |
//!
//! Topics Keel keeps for itself (the schema registry's, the audit log) cannot be deleted
//! here. A produced event is checked against the schema registered for its type when the
//! server runs a registry; an event of a type without a schema is stored unchecked and the
//! answer says so.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Json;
use keel_core::{Event, SendError};
pub(crate) use keel_embedded::admin::topics::{TopicView, topic_view};
use keel_log::{TopicConfig, TopicError};
use keel_runtime::PublishError;
use keel_schema::{SchemaPublishError, SchemaPublisher};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::require_admin;
use crate::app::{ApiError, App, ErrorBody};
use crate::events::{self, EventPage, EventQuery, FoundEvent, Journey, SearchError};
use crate::history::Throughput;
use crate::source::Source;
use crate::topic_list;
use crate::topic_settings::{self, SettingChange};

/// The `/api` routes of topics and events; creating, deleting and producing need the admin
/// role.
pub(crate) fn routes() -> OpenApiRouter<App> {
    let changes = OpenApiRouter::new()
        .routes(routes!(create_topic))
        .routes(routes!(delete_topic))
        .routes(routes!(alter_topic_config))
        .routes(routes!(produce))
        .route_layer(axum::middleware::from_fn(require_admin));
    OpenApiRouter::new()
        .routes(routes!(list_topics))
        .routes(routes!(describe_topic))
        .routes(routes!(search_events))
        .routes(routes!(get_event))
        .routes(routes!(event_journey))
        .routes(routes!(throughput))
        .merge(changes)
}

/// Whether the console and the API keep their hands off `name`: one of Keel's own topics,
/// which the log refuses to delete.
pub(crate) fn is_keel_owned(name: &str) -> bool {
    keel_log::is_internal_topic(name)
}

impl From<TopicError> for ApiError {
    fn from(error: TopicError) -> ApiError {
        let status = match error {
            TopicError::NotFound(_) => StatusCode::NOT_FOUND,
            TopicError::AlreadyExists(_) => StatusCode::CONFLICT,
            TopicError::InvalidName { .. } | TopicError::Config(_) | TopicError::Internal(_) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> ApiError {
        let status = match error {
            SearchError::TopicNotFound(_)
            | SearchError::PartitionNotFound { .. }
            | SearchError::NoEvent { .. } => StatusCode::NOT_FOUND,
            SearchError::BadQuery(_) => StatusCode::BAD_REQUEST,
            SearchError::Transport(error) => return error.into(),
        };
        ApiError(status, error.to_string())
    }
}

/// The header of `GET /api/topics` that says when the sample it answers from was taken.
pub(crate) const SAMPLED_AT_HEADER: &str = "x-keel-sampled-at-ms";

/// `?q=` of the topic list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only topics whose name contains this.
    q: Option<String>,
}

#[utoipa::path(
    get, path = "/api/topics", tag = "topics",
    params(ListParams),
    responses((status = 200, description = "Every topic, by name (on a Kafka cluster: as the console's last sample read them)", body = Vec<TopicView>,
        headers(("x-keel-sampled-at-ms" = i64, description = "When the sample the list comes from was taken, ms since the epoch; absent when read now"))))
)]
async fn list_topics(
    State(app): State<App>,
    Query(params): Query<ListParams>,
) -> Result<(HeaderMap, Json<Vec<TopicView>>), ApiError> {
    let filter = params.q.unwrap_or_default();
    let page = topic_list::page(&app, filter, 1, usize::MAX).await?;
    let mut headers = HeaderMap::new();
    if let Some(at) = page.sampled_at_ms {
        headers.insert(SAMPLED_AT_HEADER, HeaderValue::from(at));
    }
    Ok((headers, Json(page.views)))
}

#[utoipa::path(
    get, path = "/api/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "The topic")),
    responses(
        (status = 200, description = "The topic", body = TopicView),
        (status = 404, description = "No such topic", body = ErrorBody)
    )
)]
async fn describe_topic(
    State(app): State<App>,
    Path(topic): Path<String>,
) -> Result<Json<TopicView>, ApiError> {
    topic_list::one(&app, topic.clone())
        .await?
        .map(Json)
        .ok_or_else(|| TopicError::NotFound(topic).into())
}

/// `POST /api/topics` body.
#[derive(Debug, Deserialize, ToSchema)]
struct NewTopic {
    /// The name (letters, digits, `.`, `_`, `-`).
    name: String,
    /// Partitions, fixed for the topic's life.
    partitions: u32,
    /// Settings by their `topic.conf` names (`fsync`, `retention_ms`, `retention_bytes`,
    /// `cleanup`, `segment_bytes`, …); the defaults for the rest.
    #[serde(default)]
    config: BTreeMap<String, String>,
}

#[utoipa::path(
    post, path = "/api/topics", tag = "topics",
    request_body = NewTopic,
    responses(
        (status = 201, description = "The created topic", body = TopicView),
        (status = 400, description = "A bad name or setting, named", body = ErrorBody),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 409, description = "The topic exists", body = ErrorBody)
    )
)]
async fn create_topic(
    State(app): State<App>,
    Json(body): Json<NewTopic>,
) -> Result<(StatusCode, Json<TopicView>), ApiError> {
    if let Source::Cluster(cluster) = &app.source {
        let view =
            topic_list::create_on_cluster(&app, cluster, body.name, body.partitions, &body.config)
                .await?;
        return Ok((StatusCode::CREATED, Json(view)));
    }
    let view = app
        .with_log(move |log| {
            let mut config = TopicConfig::new(body.partitions);
            for (key, value) in &body.config {
                config.set(key, value)?;
            }
            config.validate()?;
            let topic = log.create_topic(&body.name, config)?;
            tracing::info!(topic = %body.name, partitions = body.partitions, "topic created over HTTP");
            Ok::<_, TopicError>(topic_view(&topic))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PATCH /api/topics/{topic}/config` body.
#[derive(Debug, Deserialize, ToSchema)]
struct ConfigChanges {
    /// The settings to change, by Kafka's names (`retention.ms`, `cleanup.policy`,
    /// `max.message.bytes`, `keel.fsync`, …) or `topic.conf`'s (`retention_ms`, `cleanup`,
    /// `max_batch_bytes`, `fsync`, …; on a Kafka cluster Kafka's names only); the others
    /// keep their values.
    config: BTreeMap<String, String>,
    /// Check the changes and list them, but change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// What a settings change answers: the topic (with its new settings, unless a dry run) and
/// what changed or would change.
#[derive(Debug, Serialize, ToSchema)]
struct ConfigChanged {
    #[serde(flatten)]
    topic: TopicView,
    /// The settings that differ, old → new, by Kafka's names.
    changes: Vec<SettingChange>,
    /// Whether the new settings are in force (false for a dry run).
    applied: bool,
}

#[utoipa::path(
    patch, path = "/api/topics/{topic}/config", tag = "topics",
    params(("topic" = String, Path, description = "The topic")),
    request_body = ConfigChanges,
    responses(
        (status = 200, description = "The topic with its new settings, in force at once (or, for a dry run, as they are) and the settings that change", body = ConfigChanged),
        (status = 400, description = "A bad setting, named, or a topic Keel keeps for itself", body = ErrorBody),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody)
    )
)]
async fn alter_topic_config(
    State(app): State<App>,
    Path(name): Path<String>,
    Json(body): Json<ConfigChanges>,
) -> Result<Json<ConfigChanged>, ApiError> {
    let (changes, applied) =
        topic_settings::change(&app, name.clone(), body.config, body.dry_run).await?;
    let topic = topic_list::one(&app, name.clone())
        .await?
        .ok_or(TopicError::NotFound(name))?;
    Ok(Json(ConfigChanged {
        topic,
        changes,
        applied,
    }))
}

/// What a delete answers.
#[derive(Debug, Serialize, ToSchema)]
struct Deleted {
    /// The deleted topic.
    deleted: String,
}

#[utoipa::path(
    delete, path = "/api/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "The topic")),
    responses(
        (status = 200, description = "The topic and its data are gone", body = Deleted),
        (status = 400, description = "A topic Keel keeps for itself", body = ErrorBody),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 501, description = "The engine cannot delete topics", body = ErrorBody)
    )
)]
async fn delete_topic(
    State(app): State<App>,
    Path(topic): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    if is_keel_owned(&topic) {
        return Err(TopicError::Internal(topic).into());
    }
    let doomed = topic.clone();
    app.on_ports(move |admin, _| Box::pin(async move { admin.delete_topic(&doomed).await }))
        .await?;
    app.history.forget_topic(&topic);
    tracing::info!(%topic, "topic deleted over HTTP");
    Ok(Json(Deleted { deleted: topic }))
}

#[utoipa::path(
    get, path = "/api/topics/{topic}/events", tag = "events",
    params(("topic" = String, Path, description = "The topic"), EventQuery),
    responses(
        (status = 200, description = "A page of matching events", body = EventPage),
        (status = 400, description = "A malformed query, named", body = ErrorBody),
        (status = 404, description = "No such topic or partition", body = ErrorBody)
    )
)]
async fn search_events(
    State(app): State<App>,
    Path(topic): Path<String>,
    Query(query): Query<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limits = app.source.scan_limits();
    app.on_ports(move |admin, _| {
        Box::pin(async move { events::search(admin, &topic, &query, limits).await })
    })
    .await
    .map(Json)
}

#[utoipa::path(
    get, path = "/api/topics/{topic}/events/{partition}/{offset}", tag = "events",
    params(
        ("topic" = String, Path, description = "The topic"),
        ("partition" = u32, Path, description = "The partition"),
        ("offset" = u64, Path, description = "The offset")
    ),
    responses(
        (status = 200, description = "The event", body = FoundEvent),
        (status = 404, description = "No event there", body = ErrorBody)
    )
)]
async fn get_event(
    State(app): State<App>,
    Path((topic, partition, offset)): Path<(String, u32, u64)>,
) -> Result<Json<FoundEvent>, ApiError> {
    app.on_ports(move |admin, _| {
        Box::pin(async move { events::event_at(admin, &topic, partition, offset).await })
    })
    .await
    .map(Json)
}

#[utoipa::path(
    get, path = "/api/topics/{topic}/events/{partition}/{offset}/journey", tag = "events",
    params(
        ("topic" = String, Path, description = "The topic"),
        ("partition" = u32, Path, description = "The partition"),
        ("offset" = u64, Path, description = "The offset")
    ),
    responses(
        (status = 200, description = "The events of its conversation across topics, by time", body = Journey),
        (status = 404, description = "No event there", body = ErrorBody)
    )
)]
async fn event_journey(
    State(app): State<App>,
    Path((topic, partition, offset)): Path<(String, u32, u64)>,
) -> Result<Json<Journey>, ApiError> {
    let limits = app.source.scan_limits();
    app.on_ports(move |admin, _| {
        Box::pin(async move {
            let (_, journey) = events::journey_at(admin, &topic, partition, offset, limits).await?;
            Ok::<_, SearchError>(journey)
        })
    })
    .await
    .map(Json)
}

/// `POST /api/topics/{topic}/events` body: the CloudEvent to produce (or, with
/// `specversion`, a structured CloudEvent, stored as given).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewEvent {
    /// `type`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) ty: String,
    /// `source` (default `/keel-console`).
    pub(crate) source: Option<String>,
    /// The partition key (the record key).
    pub(crate) key: Option<String>,
    /// `subject`.
    pub(crate) subject: Option<String>,
    /// `correlationid`.
    pub(crate) correlationid: Option<String>,
    /// The schema version the data follows (`schemaversion`; 1 when absent).
    pub(crate) schemaversion: Option<u32>,
    /// The JSON data.
    #[schema(value_type = Object)]
    pub(crate) data: Value,
}

impl NewEvent {
    /// The CloudEvent this form describes, with a new id and the current time.
    fn into_event(self) -> Event {
        let mut event = Event::new(
            self.source.unwrap_or_else(|| "/keel-console".into()),
            self.ty,
        )
        .with_data_json(&self.data);
        if let Some(key) = self.key.filter(|k| !k.is_empty()) {
            event = event.with_partition_key(key);
        }
        if let Some(subject) = self.subject.filter(|s| !s.is_empty()) {
            event = event.with_subject(subject);
        }
        if let Some(correlation) = self.correlationid.filter(|c| !c.is_empty()) {
            event = event.with_correlation_id(correlation);
        }
        if let Some(version) = self.schemaversion {
            event = event.with_extension("schemaversion", version.to_string());
        }
        event
    }
}

/// Where a produced event went.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Produced {
    /// The event id.
    pub(crate) id: String,
    /// The partition its key mapped to.
    pub(crate) partition: u32,
    /// Its offset.
    pub(crate) offset: u64,
    /// The id of the schema it was checked against; `null` when its type has no schema (or
    /// the server runs no registry) and it was stored unchecked.
    pub(crate) schema_id: Option<u32>,
}

#[utoipa::path(
    post, path = "/api/topics/{topic}/events", tag = "events",
    params(("topic" = String, Path, description = "The topic")),
    request_body = NewEvent,
    responses(
        (status = 201, description = "Stored", body = Produced),
        (status = 400, description = "An invalid CloudEvent, or data that breaks its type's schema (the path and rule named)", body = ErrorBody),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody)
    )
)]
async fn produce(
    State(app): State<App>,
    Path(topic): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Produced>), ApiError> {
    let event = match body.get("specversion") {
        // A structured CloudEvent (`keel produce` through the server) is stored as given:
        // its id, time and extensions too.
        Some(_) => Event::from_structured_json(body.to_string().as_bytes())
            .map_err(|error| ApiError::bad_request(error.to_string()))?,
        None => serde_json::from_value::<NewEvent>(body)
            .map_err(|error| ApiError::bad_request(format!("invalid event: {error}")))?
            .into_event(),
    };
    // A Kafka producer may create a missing topic (auto.create.topics.enable): refuse first.
    let exists = topic.clone();
    app.on_ports(move |admin, _| {
        Box::pin(async move { admin.partition_offsets(&exists).await.map(drop) })
    })
    .await?;
    let publisher = app.source.publisher();
    let schema_id = match &app.registry {
        None => None,
        Some(registry) => {
            let checker = SchemaPublisher::new(publisher.clone(), registry.clone());
            let checked = event.clone();
            let outcome = tokio::task::spawn_blocking(move || checker.check(&checked))
                .await
                .map_err(|_| {
                    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "check panicked".into())
                })?;
            match outcome {
                Ok(id) => Some(id),
                Err(SchemaPublishError::UnknownType { .. }) => None,
                Err(error) => return Err(ApiError::bad_request(error.to_string())),
            }
        }
    };
    let id = event.id.clone();
    let published = publisher
        .publish(&topic, event)
        .await
        .map_err(|error| match error {
            PublishError::Send(SendError::UnknownTopic { .. }) => {
                ApiError::not_found(error.to_string())
            }
            PublishError::InvalidEvent(_) => ApiError::bad_request(error.to_string()),
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        })?;
    tracing::info!(%topic, %id, "event produced over HTTP");
    Ok((
        StatusCode::CREATED,
        Json(Produced {
            id,
            partition: published.partition,
            offset: published.offset,
            schema_id,
        }),
    ))
}

/// `?topic=` of the throughput history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ThroughputParams {
    /// One topic; every topic together when absent.
    topic: Option<String>,
}

#[utoipa::path(
    get, path = "/api/throughput", tag = "topics",
    params(ThroughputParams),
    responses((status = 200, description = "Events in and out per second, one point per sample interval of the last hour", body = Throughput))
)]
async fn throughput(
    State(app): State<App>,
    Query(params): Query<ThroughputParams>,
) -> Json<Throughput> {
    Json(app.history.throughput(params.topic.as_deref()))
}

#[cfg(test)]
mod tests {
    /// The names the log refuses to delete cover every topic Keel's components keep their
    /// state in, whichever crate names it.
    #[test]
    fn the_topics_keel_keeps_its_state_in_are_internal() {
        for name in [
            keel_log::OFFSETS_TOPIC,
            keel_kafka::sasl::USERS_TOPIC,
            keel_kafka::acl::ACLS_TOPIC,
            keel_schema::SCHEMAS_TOPIC,
            keel_embedded::admin::audit::AUDIT_TOPIC,
        ] {
            assert!(super::is_keel_owned(name), "{name}");
        }
        assert!(!super::is_keel_owned("orders.dlq"));
    }
}
