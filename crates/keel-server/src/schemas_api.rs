//! The operator API's schemas, for the console: subjects with their versions, the comparison
//! of two versions under every compatibility level, a check of a schema before registering
//! it, and registering it — over the same `keel_schema::Registry` the Confluent-shaped
//! registry listener serves (`schema_registry.rs`).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api/schemas` | every subject with its versions and level |
//! | `GET /api/schemas/{subject}/versions/{version}` | one version's schema |
//! | `GET /api/schemas/{subject}/compare?old=&new=` | both schemas and the verdict of each level |
//! | `POST /api/schemas/{subject}/check` (JSON `schema`) | whether it may be registered, and why not |
//! | `POST /api/schemas/{subject}/versions` (JSON `schema`) | the registered version and id |
//! | `GET /api/catalog/asyncapi.json?q=` | the AsyncAPI 3.0 document of the catalog (as `keel catalog`), of the topics whose name contains `q` |
//!
//! Every answer is 503 when the server runs no registry (`keel serve --registry`), but the
//! AsyncAPI document of a cluster (`keel console --brokers`): learned through the cluster's
//! admin port as the console's catalog page is, it names channels and event types without
//! payload schemas when no registry runs here.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use keel_schema::{
    CompatibilityLevel, Registry, RegistryError, Schema, SchemaSource, SchemaType, SubjectVersion,
    VersionSelector, check_compatibility,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::require_admin;
use crate::app::{ApiError, App, ErrorBody};
use crate::console::catalog::{sampled_topics, scan_cluster};
use crate::source::Source;

pub(crate) fn routes() -> OpenApiRouter<App> {
    let changes = OpenApiRouter::new()
        .routes(routes!(register))
        .route_layer(axum::middleware::from_fn(require_admin));
    OpenApiRouter::new()
        .routes(routes!(subjects))
        .routes(routes!(version))
        .routes(routes!(compare))
        .routes(routes!(check))
        .routes(routes!(asyncapi_document))
        .merge(changes)
}

/// One subject.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubjectView {
    /// The subject (by default the CloudEvents `type`).
    pub(crate) subject: String,
    /// Its live versions, oldest first.
    pub(crate) versions: Vec<u32>,
    /// The global id of the latest version's schema.
    pub(crate) latest_id: u32,
    /// The compatibility level it is checked under.
    pub(crate) compatibility: String,
}

/// One version of a subject.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionView {
    /// The subject.
    pub(crate) subject: String,
    /// The version.
    pub(crate) version: u32,
    /// The global schema id.
    pub(crate) id: u32,
    /// The JSON Schema.
    #[schema(value_type = Object)]
    pub(crate) schema: Value,
}

/// What one compatibility level says about registering a schema after some versions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verdict {
    /// The level (`BACKWARD`, `FULL_TRANSITIVE`, …).
    pub(crate) level: String,
    /// Whether the schema may be registered under it.
    pub(crate) compatible: bool,
    /// Each reason it may not, with the version and JSON path.
    pub(crate) problems: Vec<String>,
}

/// Two versions side by side with every level's verdict on the newer one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Comparison {
    /// The older version.
    pub(crate) old: VersionView,
    /// The newer version.
    pub(crate) new: VersionView,
    /// Per level: could `new` be registered after the versions up to `old`?
    pub(crate) verdicts: Vec<Verdict>,
}

/// A check of a candidate schema.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckReport {
    /// The subject's level.
    pub(crate) level: String,
    /// Whether registering it would be accepted.
    pub(crate) compatible: bool,
    /// Why not.
    pub(crate) problems: Vec<String>,
    /// Every level's verdict against the subject's live versions.
    pub(crate) verdicts: Vec<Verdict>,
}

/// A registered schema.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Registered {
    /// The version (an existing one when the same schema was already live).
    pub(crate) version: u32,
    /// The global id.
    pub(crate) id: u32,
}

/// A candidate schema.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CandidateSchema {
    /// The JSON Schema document.
    #[schema(value_type = Object)]
    pub(crate) schema: Value,
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> ApiError {
        let status = match error {
            RegistryError::SubjectNotFound(_)
            | RegistryError::VersionNotFound { .. }
            | RegistryError::SchemaNotFound(_) => StatusCode::NOT_FOUND,
            RegistryError::Incompatible { .. } => StatusCode::CONFLICT,
            RegistryError::InvalidSchema(_) | RegistryError::InvalidSubject { .. } => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

/// Runs `f` on the registry on a blocking thread (a registration waits for an fsync).
pub(crate) async fn with_registry<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Registry) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let registry: Arc<Registry> = app.registry.clone().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server runs no schema registry (start keel serve with --registry)".into(),
        )
    })?;
    tokio::task::spawn_blocking(move || f(&registry))
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request panicked".into(),
            )
        })?
}

/// Every subject with its versions.
pub(crate) fn subject_views(registry: &Registry) -> Result<Vec<SubjectView>, ApiError> {
    let mut out = Vec::new();
    for subject in registry.subjects(false) {
        let versions = registry.versions(&subject, false)?;
        let latest = registry.version(&subject, VersionSelector::Latest, false)?;
        out.push(SubjectView {
            compatibility: registry.effective_level(&subject).as_str().to_string(),
            subject,
            versions,
            latest_id: latest.id,
        });
    }
    Ok(out)
}

/// One version.
pub(crate) fn version_view(
    registry: &Registry,
    subject: &str,
    version: u32,
) -> Result<VersionView, ApiError> {
    let found = registry.version(subject, VersionSelector::Number(version), false)?;
    Ok(VersionView {
        subject: subject.to_string(),
        version: found.version,
        id: found.id,
        schema: found.schema.document().clone(),
    })
}

/// Every level's verdict on registering `new` after `earlier` (oldest first).
pub(crate) fn verdicts(new: &Schema, earlier: &[(u32, Schema)]) -> Vec<Verdict> {
    let earlier: Vec<(u32, &Schema)> = earlier.iter().map(|(v, s)| (*v, s)).collect();
    CompatibilityLevel::ALL
        .into_iter()
        .map(|level| {
            let problems: Vec<String> = match check_compatibility(level, new, &earlier) {
                Ok(found) => found.iter().map(ToString::to_string).collect(),
                Err(error) => vec![format!("no verdict: {error}")],
            };
            Verdict {
                level: level.as_str().to_string(),
                compatible: problems.is_empty(),
                problems,
            }
        })
        .collect()
}

/// The live versions of `subject` up to `last` (all when `None`), oldest first.
fn versions_up_to(
    registry: &Registry,
    subject: &str,
    last: Option<u32>,
) -> Result<Vec<(u32, Schema)>, RegistryError> {
    let mut out = Vec::new();
    for version in registry.versions(subject, false)? {
        if last.is_none_or(|last| version <= last) {
            let found = registry.version(subject, VersionSelector::Number(version), false)?;
            out.push((version, found.schema));
        }
    }
    Ok(out)
}

/// Compares versions `old` and `new` of `subject`.
pub(crate) fn comparison(
    registry: &Registry,
    subject: &str,
    old: u32,
    new: u32,
) -> Result<Comparison, ApiError> {
    let old_view = version_view(registry, subject, old)?;
    let new_view = version_view(registry, subject, new)?;
    let new_schema = registry
        .version(subject, VersionSelector::Number(new), false)?
        .schema;
    let earlier = versions_up_to(registry, subject, Some(old))?;
    Ok(Comparison {
        verdicts: verdicts(&new_schema, &earlier),
        old: old_view,
        new: new_view,
    })
}

/// Checks `candidate` (a JSON Schema) against every live version of `subject` (none for a
/// new subject).
pub(crate) fn check_candidate(
    registry: &Registry,
    subject: &str,
    candidate: Value,
) -> Result<CheckReport, ApiError> {
    let schema = Schema::from_value(candidate).map_err(RegistryError::from)?;
    let problems: Vec<String> = match registry.check(subject, None, &schema) {
        Ok(found) => found.iter().map(ToString::to_string).collect(),
        Err(RegistryError::SubjectNotFound(_)) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let earlier = match versions_up_to(registry, subject, None) {
        Ok(earlier) => earlier,
        Err(RegistryError::SubjectNotFound(_)) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    Ok(CheckReport {
        level: registry.effective_level(subject).as_str().to_string(),
        compatible: problems.is_empty(),
        problems,
        verdicts: verdicts(&schema, &earlier),
    })
}

#[utoipa::path(
    get, path = "/api/schemas", tag = "schemas",
    responses(
        (status = 200, description = "Every subject, by name", body = Vec<SubjectView>),
        (status = 503, description = "No registry runs", body = ErrorBody)
    )
)]
async fn subjects(State(app): State<App>) -> Result<Json<Vec<SubjectView>>, ApiError> {
    with_registry(&app, subject_views).await.map(Json)
}

#[utoipa::path(
    get, path = "/api/schemas/{subject}/versions/{version}", tag = "schemas",
    params(("subject" = String, Path, description = "The subject"), ("version" = u32, Path, description = "The version")),
    responses(
        (status = 200, description = "The version", body = VersionView),
        (status = 404, description = "No such subject or version", body = ErrorBody)
    )
)]
async fn version(
    State(app): State<App>,
    Path((subject, version)): Path<(String, u32)>,
) -> Result<Json<VersionView>, ApiError> {
    with_registry(&app, move |r| version_view(r, &subject, version))
        .await
        .map(Json)
}

/// The two versions to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CompareParams {
    /// The older version.
    pub(crate) old: u32,
    /// The newer version.
    pub(crate) new: u32,
}

#[utoipa::path(
    get, path = "/api/schemas/{subject}/compare", tag = "schemas",
    params(("subject" = String, Path, description = "The subject"), CompareParams),
    responses(
        (status = 200, description = "Both versions and each level's verdict", body = Comparison),
        (status = 404, description = "No such subject or version", body = ErrorBody)
    )
)]
async fn compare(
    State(app): State<App>,
    Path(subject): Path<String>,
    Query(params): Query<CompareParams>,
) -> Result<Json<Comparison>, ApiError> {
    with_registry(&app, move |r| {
        comparison(r, &subject, params.old, params.new)
    })
    .await
    .map(Json)
}

#[utoipa::path(
    post, path = "/api/schemas/{subject}/check", tag = "schemas",
    params(("subject" = String, Path, description = "The subject")),
    request_body = CandidateSchema,
    responses(
        (status = 200, description = "Whether it may be registered, and each level's verdict", body = CheckReport),
        (status = 400, description = "Not a valid JSON Schema", body = ErrorBody)
    )
)]
async fn check(
    State(app): State<App>,
    Path(subject): Path<String>,
    Json(body): Json<CandidateSchema>,
) -> Result<Json<CheckReport>, ApiError> {
    with_registry(&app, move |r| check_candidate(r, &subject, body.schema))
        .await
        .map(Json)
}

#[utoipa::path(
    post, path = "/api/schemas/{subject}/versions", tag = "schemas",
    params(("subject" = String, Path, description = "The subject")),
    request_body = CandidateSchema,
    responses(
        (status = 200, description = "Registered (or already live)", body = Registered),
        (status = 400, description = "Not a valid JSON Schema", body = ErrorBody),
        (status = 403, description = "The caller is read-only", body = ErrorBody),
        (status = 409, description = "Incompatible under the subject's level, with the reasons", body = ErrorBody)
    )
)]
async fn register(
    State(app): State<App>,
    Path(subject): Path<String>,
    Json(body): Json<CandidateSchema>,
) -> Result<Json<Registered>, ApiError> {
    with_registry(&app, move |r| {
        let schema = Schema::from_value(body.schema).map_err(RegistryError::from)?;
        let registered = r.register(&subject, SchemaType::Json, schema)?;
        tracing::info!(%subject, version = registered.version, "schema registered over HTTP");
        Ok(Registered {
            version: registered.version,
            id: registered.id,
        })
    })
    .await
    .map(Json)
}

/// `?q=` of the AsyncAPI document.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CatalogFilter {
    /// Only topics whose name contains this (a cluster may hold thousands).
    q: Option<String>,
}

/// Longest the AsyncAPI document of a cluster reads records: the console's page reads one
/// page of topics in
/// [`crate::console::catalog::CLUSTER_SCAN_TIME_MAX`]; the document reads every matching topic.
const CLUSTER_DOCUMENT_SCAN_TIME_MAX: Duration = Duration::from_secs(10);

/// The schemas of a cluster's catalog when no registry runs here: none, so the document
/// names channels and event types without payload schemas.
struct NoSchemas;

impl SchemaSource for NoSchemas {
    fn subjects(&self) -> Vec<String> {
        Vec::new()
    }

    fn latest(&self, _subject: &str) -> Option<SubjectVersion> {
        None
    }
}

#[utoipa::path(
    get, path = "/api/catalog/asyncapi.json", tag = "schemas",
    params(CatalogFilter),
    responses(
        (status = 200, description = "The AsyncAPI 3.0 document: channels (topics), the event types on each with their registered schemas, who publishes and who consumes them. On a cluster: learned through its admin port, payload schemas only when a registry runs here, and `x-keel-scan-errors` naming what could not be read", body = Object),
        (status = 503, description = "No registry runs (the owned log), or the console's first sample of the cluster is still being taken", body = ErrorBody)
    )
)]
async fn asyncapi_document(
    State(app): State<App>,
    Query(filter): Query<CatalogFilter>,
) -> Result<Json<Value>, ApiError> {
    let filter = filter.q.unwrap_or_default();
    if let Source::Cluster(_) = app.source {
        return cluster_document(&app, &filter).await.map(Json);
    }
    let log = app.source.bus("the catalog")?.log().clone();
    with_registry(&app, move |registry| {
        let (mut catalog, _) = keel_schema::scan(&log);
        catalog.topics.retain(|topic, _| topic.contains(&filter));
        Ok(keel_schema::asyncapi(&catalog, registry, DOCUMENT_TITLE))
    })
    .await
    .map(Json)
}

const DOCUMENT_TITLE: &str = "Keel event catalog";

/// The AsyncAPI document of a cluster's topics matching `filter`, from the console sampler's
/// listing and reads through the admin port.
async fn cluster_document(app: &App, filter: &str) -> Result<Value, ApiError> {
    let (_, topics) = sampled_topics(app, filter, 0, usize::MAX).ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the console's first sample of the cluster is still being taken; ask again in a few seconds".into(),
        )
    })?;
    let (catalog, errors) = scan_cluster(app, topics, CLUSTER_DOCUMENT_SCAN_TIME_MAX).await?;
    let mut document = if app.registry.is_some() {
        with_registry(app, move |registry| {
            Ok(keel_schema::asyncapi(&catalog, registry, DOCUMENT_TITLE))
        })
        .await?
    } else {
        keel_schema::asyncapi(&catalog, &NoSchemas, DOCUMENT_TITLE)
    };
    if !errors.is_empty() {
        document["x-keel-scan-errors"] = Value::from(errors);
    }
    Ok(document)
}
