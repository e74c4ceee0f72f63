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
//! invalid mode, 42205 operation not permitted, 42208 invalid subject, 50001 storage error.
//!
//! Differences from Confluent, on purpose: only `JSON` schemas are accepted, and a
//! registration without `schemaType` is read as JSON (Confluent assumes Avro); schema
//! references are refused; modes are `READWRITE` and `READONLY` only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_schema::{
    CompatibilityLevel, Mode, Registry, RegistryError, Schema, SchemaType, SubjectVersion,
    VersionSelector,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The media type Confluent's API answers with.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Params = Query<HashMap<String, String>>;

/// The routes over a registry.
pub(crate) fn router(registry: Arc<Registry>) -> Router {
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
        .route("/schemas/types", get(|| async { reply(json!(["JSON"])) }))
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
        .with_state(registry)
}

/// An API error: Confluent's error code and a one-line message.
struct ApiError {
    code: u32,
    message: String,
}

impl ApiError {
    fn new(code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
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
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::ReadOnly(_) | RegistryError::LimitReached(_) => 42205,
            RegistryError::InvalidSubject { .. } => 42208,
            _ => 50001,
        };
        ApiError::new(code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code {
            409 => StatusCode::CONFLICT,
            40000..=40499 => StatusCode::NOT_FOUND,
            42200..=42299 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({"error_code": self.code, "message": self.message});
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
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
    references: Vec<Value>,
}

fn parse_schema_request(body: &[u8]) -> Result<(SchemaType, Schema), ApiError> {
    let request: SchemaRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(42201, format!("invalid request body: {e}")))?;
    if !request.references.is_empty() {
        return Err(ApiError::new(
            42201,
            "schema references are not supported; inline shared parts under $defs",
        ));
    }
    let schema_type = match request.schema_type.as_deref() {
        None => SchemaType::Json,
        Some(text) => text
            .parse()
            .map_err(|e: keel_schema::SchemaError| ApiError::new(42201, e.to_string()))?,
    };
    let schema = Schema::parse(schema_type, &request.schema)
        .map_err(|e| ApiError::new(42201, e.to_string()))?;
    Ok((schema_type, schema))
}

fn version_json(found: &SubjectVersion) -> Value {
    json!({
        "subject": found.subject,
        "version": found.version,
        "id": found.id,
        "schemaType": found.schema_type.as_str(),
        "schema": found.schema.canonical(),
    })
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
    body: Bytes,
) -> Reply {
    let (schema_type, schema) = parse_schema_request(&body)?;
    let found = blocking(registry, move |r| r.register(&subject, schema_type, schema)).await?;
    let mut body = version_json(&found);
    body["id"] = json!(found.id);
    Ok(reply(body))
}

async fn lookup(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Reply {
    let (_, schema) = parse_schema_request(&body)?;
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
    Ok(reply(version_json(&found)))
}

async fn version_schema(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Reply {
    let selector = parse_version(&version)?;
    let found = blocking(registry, move |r| r.version(&subject, selector, false)).await?;
    Ok(reply(found.schema.document().clone()))
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

async fn schema_by_id(State(registry): State<Arc<Registry>>, Path(id): Path<String>) -> Reply {
    let id = parse_id(&id)?;
    let (schema_type, schema) = blocking(registry, move |r| r.schema_by_id(id)).await?;
    Ok(reply(json!({
        "schemaType": schema_type.as_str(),
        "schema": schema.canonical(),
    })))
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

async fn check(
    registry: Arc<Registry>,
    subject: String,
    version: Option<VersionSelector>,
    params: HashMap<String, String>,
    body: Bytes,
) -> Reply {
    let (_, schema) = parse_schema_request(&body)?;
    let found = blocking(registry, move |r| r.check(&subject, version, &schema)).await?;
    let mut answer = json!({"is_compatible": found.is_empty()});
    if flag(&params, "verbose") {
        let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
        answer["messages"] = json!(messages);
    }
    Ok(reply(answer))
}

async fn check_all(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Reply {
    check(registry, subject, None, params, body).await
}

async fn check_version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Reply {
    let selector = parse_version(&version)?;
    check(registry, subject, Some(selector), params, body).await
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

async fn set_global_config(State(registry): State<Arc<Registry>>, body: Bytes) -> Reply {
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
    body: Bytes,
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

async fn set_global_mode(State(registry): State<Arc<Registry>>, body: Bytes) -> Reply {
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
    body: Bytes,
) -> Reply {
    set_mode(registry, Some(subject), body).await
}

async fn delete_subject_mode(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Reply {
    delete_mode(registry, Some(subject)).await
}
