//! The schema registry's REST API in the shape of Confluent Schema Registry's, so its
//! clients (the Confluent serializers, `SchemaRegistryClient`s in every language) work
//! against `keel serve` unchanged. The logic is `keel_schema::Registry`; this module only maps
//! requests, responses and error codes.
//!
//! Routes: `/subjects` (list, register, lookup, versions, delete), `/schemas/ids/{id}` (by id,
//! its raw schema, its subjects and versions), `/schemas/types`, `/compatibility/subjects/...`,
//! `/config` and `/mode` (global and per subject). Errors are
//! `{"error_code": N, "message": "..."}` with Confluent's codes: 40401 subject not found,
//! 40402 version not found, 40403 schema not found, 40404/40405 subject (not) soft-deleted,
//! 40406/40407 version (not) soft-deleted, 40408 no subject-level config, 409 incompatible,
//! 42201 invalid schema, 42202 invalid version, 42203 invalid compatibility level, 42204
//! invalid mode, 42205 operation not permitted, 42208 invalid subject, 50001 storage error,
//! 50003 a registration that lost every race to others (retry), and 413/415 for a body too
//! large or of a media type the API does not read. A compatibility check may also read the
//! stored events of the subject's type (`againstEvents=TOPIC`, Keel's own option; 40410 when
//! the topic does not exist).
//!
//! `JSON`, `AVRO` and `PROTOBUF` schemas are accepted, with `references` to other registered versions
//! (`/subjects/{s}/versions/{v}/referencedby` lists who references a version; a referenced
//! version cannot be deleted: 42206). A registration without `schemaType` is Avro, as in
//! Confluent's. Differences from Confluent, on purpose: modes are `READWRITE` and `READONLY`
//! only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_log::Log;
use keel_schema::limits::REQUEST_BYTES_MAX;
use keel_schema::{
    CompatibilityLevel, Mode, Reference, Registry, RegistryError, Schema, SchemaType, StoredCheck,
    SubjectVersion, VersionSelector, check_stored_events,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry as MetricsRegistry;
use serde::Deserialize;
use serde_json::{Value, json};

/// The media type Confluent's API answers with.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The request media types Confluent's API accepts (a request without one is read as
/// `application/octet-stream`, as Jersey does); anything else is refused with 415 before the
/// body is read.
const REQUEST_TYPES: [&str; 4] = [
    CONTENT_TYPE,
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

type Params = Query<HashMap<String, String>>;

/// What the routes serve: the registry, the log whose stored events a check may read, and
/// the counters of what the registry refused to work on.
#[derive(Clone)]
struct Served {
    registry: Arc<Registry>,
    log: Arc<Log>,
    metrics: SchemaMetrics,
}

/// Requests refused before or during the work a client chose, by the limits of
/// `keel_schema::limits`: the operator sees a client probing them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchemaMetrics {
    /// Registrations and checks refused because the comparison spent its budget.
    checks_refused: Counter,
    /// Bodies refused for their media type (415) or size (413).
    bodies_refused: Counter,
}

impl SchemaMetrics {
    /// Registers the counters as `keel_registry_checks_refused` and
    /// `keel_registry_bodies_refused`.
    pub(crate) fn register(&self, registry: &mut MetricsRegistry) {
        registry.register(
            "keel_registry_checks_refused",
            "Schema registrations and compatibility checks refused because the comparison spent its budget (steps, depth or time)",
            self.checks_refused.clone(),
        );
        registry.register(
            "keel_registry_bodies_refused",
            "Schema registry requests refused for their body's media type or size",
            self.bodies_refused.clone(),
        );
    }
}

impl FromRef<Served> for SchemaMetrics {
    fn from_ref(served: &Served) -> SchemaMetrics {
        served.metrics.clone()
    }
}

impl FromRef<Served> for Arc<Registry> {
    fn from_ref(served: &Served) -> Arc<Registry> {
        served.registry.clone()
    }
}

impl FromRef<Served> for Arc<Log> {
    fn from_ref(served: &Served) -> Arc<Log> {
        served.log.clone()
    }
}

/// The routes over a registry and the log it is stored in, counting refusals in `metrics`.
pub(crate) fn router(registry: Arc<Registry>, log: Arc<Log>, metrics: SchemaMetrics) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/schemas/types",
            get(|| async { reply(json!(["JSON", "AVRO", "PROTOBUF"])) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .route(
            "/config",
            get(global_config)
                .put(set_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/mode",
            get(global_mode)
                .put(set_global_mode)
                .delete(delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(subject_mode)
                .put(set_subject_mode)
                .delete(delete_subject_mode),
        )
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            count_refusals,
        ))
        .with_state(Served {
            registry,
            log,
            metrics,
        })
}

/// An API error: Confluent's error code and a one-line message.
struct ApiError {
    code: u32,
    message: String,
    /// Refused because a comparison spent its budget (counted as such).
    budget: bool,
}

impl ApiError {
    fn new(code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            budget: false,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> ApiError {
        let code = match &error {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) | RegistryError::TooComplex { .. } => 42201,
            RegistryError::Conflict(_) => 50003,
            RegistryError::ReadOnly(_) | RegistryError::LimitReached(_) => 42205,
            RegistryError::InvalidSubject { .. } => 42208,
            RegistryError::ReferenceExists { .. } => 42206,
            _ => 50001,
        };
        let budget = matches!(error, RegistryError::TooComplex { .. });
        ApiError {
            budget,
            ..ApiError::new(code, error.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code {
            409 => StatusCode::CONFLICT,
            413 => StatusCode::PAYLOAD_TOO_LARGE,
            415 => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            40000..=40499 => StatusCode::NOT_FOUND,
            42200..=42299 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({"error_code": self.code, "message": self.message});
        let mut response = (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response();
        if self.budget {
            response
                .headers_mut()
                .insert(BUDGET_HEADER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

type Reply = Result<Response, ApiError>;

fn reply(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// Runs a registry call off the async workers: a registration waits for an `fdatasync`.
async fn blocking<T, F>(registry: Arc<Registry>, call: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || call(&registry))
        .await
        .map_err(|panic| ApiError::new(50001, format!("registry call panicked: {panic}")))?
        .map_err(ApiError::from)
}

/// Counts the answers that are refusals by a limit: 413/415 (bodies) and 42201 answers that
/// name the comparison's budget. Reads only the status and a header set by [`ApiError`].
async fn count_refusals(
    State(metrics): State<SchemaMetrics>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            metrics.bodies_refused.inc();
        }
        _ if response.headers().contains_key(BUDGET_HEADER) => {
            metrics.checks_refused.inc();
        }
        _ => {}
    }
    response
}

/// Marks an answer refused because a comparison spent its budget, for [`count_refusals`].
const BUDGET_HEADER: &str = "x-keel-budget-exhausted";

/// A request body, read only when its media type is one of [`REQUEST_TYPES`] and only up to
/// [`REQUEST_BYTES_MAX`] bytes: a client cannot make the registry buffer more.
struct Body(Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Body, ApiError> {
        if let Some(media) = request.headers().get(header::CONTENT_TYPE) {
            let essence = media
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !REQUEST_TYPES.contains(&essence.as_str()) {
                return Err(ApiError::new(
                    415,
                    format!(
                        "unsupported media type {essence:?}: send {}",
                        REQUEST_TYPES.join(", ")
                    ),
                ));
            }
        }
        axum::body::to_bytes(request.into_body(), REQUEST_BYTES_MAX)
            .await
            .map(Body)
            .map_err(|_| {
                ApiError::new(
                    413,
                    format!("request body larger than {REQUEST_BYTES_MAX} bytes"),
                )
            })
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn parse_version(text: &str) -> Result<VersionSelector, ApiError> {
    match text {
        "latest" | "-1" => Ok(VersionSelector::Latest),
        _ => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=i32::MAX as u32).contains(n))
            .map(VersionSelector::Number)
            .ok_or_else(|| {
                ApiError::new(
                    42202,
                    format!(
                        "the specified version {text:?} is not a valid version id; allowed values are between [1, 2^31-1] and the string \"latest\""
                    ),
                )
            }),
    }
}

fn parse_id(text: &str) -> Result<u32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(40403, format!("schema {text:?} not found")))
}

/// The body of a registration, lookup or compatibility check.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

/// Parses a request's schema, resolving its references in the registry (on a blocking
/// thread: parsing a large schema is work a client chooses).
async fn parse_schema_request(
    registry: &Arc<Registry>,
    body: Bytes,
) -> Result<(SchemaType, Schema), ApiError> {
    let request: SchemaRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(42201, format!("invalid request body: {e}")))?;
    // Confluent reads a registration without `schemaType` as Avro.
    let schema_type = match request.schema_type.as_deref() {
        None => SchemaType::Avro,
        Some(text) => text
            .parse()
            .map_err(|e: keel_schema::SchemaError| ApiError::new(42201, e.to_string()))?,
    };
    let schema = blocking(registry.clone(), move |r| {
        r.parse(schema_type, &request.schema, &request.references)
    })
    .await?;
    Ok((schema_type, schema))
}

fn version_json(found: &SubjectVersion) -> Value {
    let mut body = json!({
        "subject": found.subject,
        "version": found.version,
        "id": found.id,
        "schema": found.schema.canonical(),
    });
    describe_schema(&mut body, &found.schema);
    body
}

/// Adds `schemaType` (left out for Avro, as Confluent does) and `references` (when any).
fn describe_schema(body: &mut Value, schema: &Schema) {
    if schema.schema_type() != SchemaType::Avro {
        body["schemaType"] = json!(schema.schema_type().as_str());
    }
    if !schema.references().is_empty() {
        body["references"] = json!(schema.references());
    }
}

async fn subjects(State(registry): State<Arc<Registry>>, Query(params): Params) -> Reply {
    let deleted = flag(&params, "deleted");
    let names = blocking(registry, move |r| Ok(r.subjects(deleted))).await?;
    Ok(reply(json!(names)))
}

async fn versions(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Reply {
    let deleted = flag(&params, "deleted");
    let found = blocking(registry, move |r| r.versions(&subject, deleted)).await?;
    Ok(reply(json!(found)))
}

async fn register(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Reply {
    let (schema_type, schema) = parse_schema_request(&registry, body).await?;
    let found = blocking(registry, move |r| r.register(&subject, schema_type, schema)).await?;
    let mut body = version_json(&found);
    body["id"] = json!(found.id);
    Ok(reply(body))
}

async fn lookup(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Reply {
    let (_, schema) = parse_schema_request(&registry, body).await?;
    let found = blocking(registry, move |r| r.lookup(&subject, &schema)).await?;
    Ok(reply(version_json(&found)))
}

async fn version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Reply {
    let selector = parse_version(&version)?;
    let deleted = flag(&params, "deleted");
    let found = blocking(registry, move |r| r.version(&subject, selector, deleted)).await?;
    let mut body = version_json(&found);
    serialize_if_asked(&mut body, &found.schema, &params);
    Ok(reply(body))
}

async fn version_schema(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Reply {
    let selector = parse_version(&version)?;
    let found = blocking(registry, move |r| r.version(&subject, selector, false)).await?;
    Ok(reply(found.schema.document().clone()))
}

async fn referenced_by(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Reply {
    let selector = parse_version(&version)?;
    let ids = blocking(registry, move |r| r.referenced_by(&subject, selector)).await?;
    Ok(reply(json!(ids)))
}

async fn delete_subject(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Reply {
    let permanent = flag(&params, "permanent");
    let deleted = blocking(registry, move |r| r.delete_subject(&subject, permanent)).await?;
    Ok(reply(json!(deleted)))
}

async fn delete_version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Reply {
    let selector = parse_version(&version)?;
    let permanent = flag(&params, "permanent");
    let deleted = blocking(registry, move |r| {
        r.delete_version(&subject, selector, permanent)
    })
    .await?;
    Ok(reply(json!(deleted)))
}

async fn schema_by_id(
    State(registry): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Reply {
    let id = parse_id(&id)?;
    let (_, schema) = blocking(registry, move |r| r.schema_by_id(id)).await?;
    let mut body = json!({"schema": schema.canonical()});
    describe_schema(&mut body, &schema);
    serialize_if_asked(&mut body, &schema, &params);
    Ok(reply(body))
}

/// `format=serialized` (Confluent's): a Protobuf schema as its base64 `FileDescriptorProto`,
/// which Confluent's Python, Go and .NET deserializers ask for.
fn serialize_if_asked(body: &mut Value, schema: &Schema, params: &HashMap<String, String>) {
    if params.get("format").is_some_and(|f| f == "serialized")
        && let Some(serialized) = schema.protobuf_serialized()
    {
        body["schema"] = json!(serialized);
    }
}

async fn raw_schema_by_id(State(registry): State<Arc<Registry>>, Path(id): Path<String>) -> Reply {
    let id = parse_id(&id)?;
    let (_, schema) = blocking(registry, move |r| r.schema_by_id(id)).await?;
    Ok(reply(schema.document().clone()))
}

async fn usages(
    registry: Arc<Registry>,
    id: &str,
    deleted: bool,
) -> Result<Vec<(String, u32)>, ApiError> {
    let id = parse_id(id)?;
    blocking(registry, move |r| {
        r.schema_by_id(id)?;
        Ok(r.usages_of(id, deleted))
    })
    .await
}

async fn subjects_of_id(
    State(registry): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Reply {
    let mut names: Vec<String> = usages(registry, &id, flag(&params, "deleted"))
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    names.dedup();
    Ok(reply(json!(names)))
}

async fn versions_of_id(
    State(registry): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Reply {
    let found: Vec<Value> = usages(registry, &id, flag(&params, "deleted"))
        .await?
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(json!(found)))
}

/// A compatibility check; with `againstEvents=TOPIC` (and `sample=N`, the newest N records
/// of each partition) also the stored events of the subject's type on that topic, read with
/// the new schema — each unreadable one is a message naming its partition, offset and path.
async fn check(
    (registry, log): (Arc<Registry>, Arc<Log>),
    subject: String,
    version: Option<VersionSelector>,
    params: HashMap<String, String>,
    body: Bytes,
) -> Reply {
    let (_, schema) = parse_schema_request(&registry, body).await?;
    let topic = params.get("againstEvents").cloned();
    let sample = match params.get("sample") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            ApiError::new(42202, format!("sample {text:?} is not a number of records"))
        })?),
    };
    let checked = blocking(registry, move |r| {
        let mut messages: Vec<String> = r
            .check(&subject, version, &schema)?
            .iter()
            .map(ToString::to_string)
            .collect();
        let Some(topic) = topic else {
            return Ok(Ok(messages));
        };
        let options = StoredCheck {
            sample_per_partition: sample,
            ..StoredCheck::default()
        };
        let report = match check_stored_events(
            &log,
            r,
            &topic,
            &subject,
            &schema,
            options,
            &mut |_, _| {},
        ) {
            Ok(report) => report,
            Err(error) => return Ok(Err(error)),
        };
        messages.extend(
            report
                .unreadable
                .iter()
                .map(|u| format!("a stored event cannot be read: {topic}/{u}")),
        );
        Ok(Ok(messages))
    })
    .await?;
    // Keel's own code: the topic named by `againstEvents` is not in the log.
    let messages = checked.map_err(|error| ApiError::new(40410, error.to_string()))?;
    let mut answer = json!({"is_compatible": messages.is_empty()});
    if flag(&params, "verbose") {
        answer["messages"] = json!(messages);
    }
    Ok(reply(answer))
}

async fn check_all(
    State(registry): State<Arc<Registry>>,
    State(log): State<Arc<Log>>,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Reply {
    check((registry, log), subject, None, params, body).await
}

async fn check_version(
    State(registry): State<Arc<Registry>>,
    State(log): State<Arc<Log>>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    Body(body): Body,
) -> Reply {
    let selector = parse_version(&version)?;
    check((registry, log), subject, Some(selector), params, body).await
}

fn parse_level(body: &[u8]) -> Result<CompatibilityLevel, ApiError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(42203, format!("invalid request body: {e}")))?;
    let text = request["compatibility"]
        .as_str()
        .or(request["compatibilityLevel"].as_str())
        .ok_or_else(|| ApiError::new(42203, "the body names no \"compatibility\""))?;
    text.parse()
        .map_err(|e: keel_schema::UnknownLevel| ApiError::new(42203, e.to_string()))
}

async fn config_of(registry: Arc<Registry>, subject: Option<String>, fallback: bool) -> Reply {
    let (own, global) = blocking(registry, {
        let subject = subject.clone();
        move |r| Ok((r.level(subject.as_deref()), r.level(None)))
    })
    .await?;
    let level = match (own, &subject) {
        (Some(level), _) => level,
        (None, None) => global.unwrap_or_default(),
        (None, Some(_)) if fallback => global.unwrap_or_default(),
        (None, Some(subject)) => {
            return Err(ApiError::new(
                40408,
                format!("subject {subject:?} does not have subject-level compatibility configured"),
            ));
        }
    };
    Ok(reply(json!({"compatibilityLevel": level.as_str()})))
}

async fn set_config(registry: Arc<Registry>, subject: Option<String>, body: Bytes) -> Reply {
    let level = parse_level(&body)?;
    blocking(registry, move |r| {
        r.set_level(subject.as_deref(), Some(level))
    })
    .await?;
    Ok(reply(json!({"compatibility": level.as_str()})))
}

async fn delete_config(registry: Arc<Registry>, subject: Option<String>) -> Reply {
    let previous = blocking(registry, move |r| {
        let previous = r.level(subject.as_deref());
        r.set_level(subject.as_deref(), None)?;
        Ok(previous)
    })
    .await?;
    Ok(reply(
        json!({"compatibilityLevel": previous.unwrap_or_default().as_str()}),
    ))
}

async fn global_config(State(registry): State<Arc<Registry>>) -> Reply {
    config_of(registry, None, true).await
}

async fn set_global_config(State(registry): State<Arc<Registry>>, Body(body): Body) -> Reply {
    set_config(registry, None, body).await
}

async fn delete_global_config(State(registry): State<Arc<Registry>>) -> Reply {
    delete_config(registry, None).await
}

async fn subject_config(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Reply {
    config_of(registry, Some(subject), flag(&params, "defaultToGlobal")).await
}

async fn set_subject_config(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Reply {
    set_config(registry, Some(subject), body).await
}

async fn delete_subject_config(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Reply {
    delete_config(registry, Some(subject)).await
}

fn parse_mode(body: &[u8]) -> Result<Mode, ApiError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(42204, format!("invalid request body: {e}")))?;
    let text = request["mode"].as_str().unwrap_or_default();
    Mode::parse(text).ok_or_else(|| {
        ApiError::new(
            42204,
            format!("invalid mode {text:?}: expected READWRITE or READONLY"),
        )
    })
}

async fn mode_of(registry: Arc<Registry>, subject: Option<String>) -> Reply {
    let mode = blocking(registry, move |r| {
        Ok(subject
            .as_deref()
            .and_then(|s| r.mode(Some(s)))
            .or_else(|| r.mode(None))
            .unwrap_or_default())
    })
    .await?;
    Ok(reply(json!({"mode": mode.as_str()})))
}

async fn set_mode(registry: Arc<Registry>, subject: Option<String>, body: Bytes) -> Reply {
    let mode = parse_mode(&body)?;
    blocking(registry, move |r| {
        r.set_mode(subject.as_deref(), Some(mode))
    })
    .await?;
    Ok(reply(json!({"mode": mode.as_str()})))
}

async fn delete_mode(registry: Arc<Registry>, subject: Option<String>) -> Reply {
    let previous = blocking(registry, move |r| {
        let previous = r.mode(subject.as_deref());
        r.set_mode(subject.as_deref(), None)?;
        Ok(previous)
    })
    .await?;
    Ok(reply(
        json!({"mode": previous.unwrap_or_default().as_str()}),
    ))
}

async fn global_mode(State(registry): State<Arc<Registry>>) -> Reply {
    mode_of(registry, None).await
}

async fn set_global_mode(State(registry): State<Arc<Registry>>, Body(body): Body) -> Reply {
    set_mode(registry, None, body).await
}

async fn delete_global_mode(State(registry): State<Arc<Registry>>) -> Reply {
    delete_mode(registry, None).await
}

async fn subject_mode(State(registry): State<Arc<Registry>>, Path(subject): Path<String>) -> Reply {
    mode_of(registry, Some(subject)).await
}

async fn set_subject_mode(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Reply {
    set_mode(registry, Some(subject), body).await
}

async fn delete_subject_mode(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Reply {
    delete_mode(registry, Some(subject)).await
}
