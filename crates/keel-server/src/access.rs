//! Who may change what through the HTTP listener: the two roles of the operator API and
//! the console, and the one gate every state-changing route passes.
//!
//! An authentication layer (issue 14) decides the caller's [`Role`] and puts it in the
//! request's extensions; everything after it asks [`CallerRole`]. Without such a layer no
//! role is set and every caller is [`Role::Admin`], which is what the API allowed before
//! roles existed (its listener binds 127.0.0.1 by default). State-changing routes are
//! wrapped in [`require_admin`], so a read-only caller is refused by the same code whether
//! it clicked a console button or called the API; the console also leaves out the buttons
//! a read-only caller could not use.
//!
//! Not here: authentication itself (credentials, tokens, TLS).

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sees everything, changes nothing.
    ReadOnly,
    /// Sees and changes everything the API offers.
    Admin,
}

impl Role {
    /// Whether this role may call state-changing routes.
    pub(crate) fn may_change(self) -> bool {
        self == Role::Admin
    }

    /// The role's name as pages show it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Admin => "admin",
        }
    }
}

/// The caller's role, as an extractor: the extension an authentication layer set, or
/// [`Role::Admin`] when none runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallerRole(pub(crate) Role);

impl<S: Send + Sync> FromRequestParts<S> for CallerRole {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(CallerRole(role_of(&parts.extensions)))
    }
}

fn role_of(extensions: &axum::http::Extensions) -> Role {
    extensions.get::<Role>().copied().unwrap_or(Role::Admin)
}

/// The gate in front of every state-changing route: a caller without the admin role gets
/// `403 Forbidden` and nothing runs.
pub(crate) async fn require_admin(request: Request, next: Next) -> Response {
    let role = role_of(request.extensions());
    if role.may_change() {
        return next.run(request).await;
    }
    let error = format!(
        "{} {} changes state and needs the admin role; this caller is {}",
        request.method(),
        request.uri().path(),
        role.as_str()
    );
    (StatusCode::FORBIDDEN, Json(json!({ "error": error }))).into_response()
}

/// [`require_admin`] for the requests that change state (every method but GET, HEAD and
/// OPTIONS), for a router whose routes are not split by hand (the schema registry).
pub(crate) async fn require_admin_to_change(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    require_admin(request, next).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app(role: Option<Role>) -> Router {
        let router = Router::new()
            .route("/change", post(|| async { "changed" }))
            .route_layer(axum::middleware::from_fn(require_admin));
        match role {
            Some(role) => router.layer(axum::Extension(role)),
            None => router,
        }
    }

    async fn status(role: Option<Role>) -> StatusCode {
        let request = Request::post("/change").body(Body::empty()).unwrap();
        app(role).oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn only_a_read_only_caller_is_refused() {
        assert_eq!(status(Some(Role::ReadOnly)).await, StatusCode::FORBIDDEN);
        assert_eq!(status(Some(Role::Admin)).await, StatusCode::OK);
        // No authentication layer: the API behaves as before roles existed.
        assert_eq!(status(None).await, StatusCode::OK);
    }
}
