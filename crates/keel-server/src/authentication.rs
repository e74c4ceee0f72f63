//! Who is calling the HTTP listeners: bearer tokens (or HTTP Basic with the token as the
//! password) checked against SHA-256 hashes from the configuration, each with a [`Role`], or
//! the session cookie the console's login page gave a browser (`sessions.rs`,
//! `console/login.rs`); and the cross-origin check that keeps a page on another site from
//! driving the operator API with the user's browser.
//!
//! Decision table for a request (the layer runs before every route of both listeners):
//!
//! | request | tokens configured | answer |
//! |---|---|---|
//! | POST, PUT, PATCH, DELETE whose `Origin` is not this `Host`, or `Sec-Fetch-Site: cross-site` | either | `403`, audit line |
//! | `GET /health`, the login page, the logout and the console's stylesheet and script | either | served (load balancers and the login page carry no token) |
//! | any | none | served as admin (the listener's default is 127.0.0.1) |
//! | a known token (bearer, or Basic password), or a live session cookie | yes | served with its role |
//! | none of those, a browser navigating (GET accepting `text/html`) | yes | `303` to the login page (saying the session ended when it sent a session cookie), audit line |
//! | none of those, any other request | yes | `401` with `WWW-Authenticate: Basic`, audit line |
//!
//! Tokens are never stored: only their SHA-256, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::access::Role;
use crate::app::now_ms;
use sessions::Sessions;

/// One accepted token: a name for the audit log, its SHA-256 and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpToken {
    /// Who holds it (logged, never secret).
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Whether it may change state.
    pub admin: bool,
}

impl HttpToken {
    /// Parses `name:role:sha256hex` (role `admin` or `read-only`), the form of the
    /// `http_tokens` setting; the error names what is wrong.
    pub fn parse(text: &str) -> Result<HttpToken, String> {
        let mut parts = text.trim().splitn(3, ':');
        let (Some(name), Some(role), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("'{text}' is not name:role:sha256"));
        };
        let admin = match role {
            "admin" => true,
            "read-only" => false,
            other => return Err(format!("role '{other}' is not admin or read-only")),
        };
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        let sha256 = <[u8; 32]>::try_from(bytes)
            .map_err(|_| format!("token '{name}': the hash is not 64 hex digits"))?;
        if name.is_empty() {
            return Err("a token needs a name".into());
        }
        Ok(HttpToken {
            name: name.into(),
            sha256,
            admin,
        })
    }
}

mod sessions;

pub(crate) use sessions::{SESSION_COOKIE, SESSION_TTL_MS};

/// The tokens the listeners accept (empty accepts everyone as admin) and the login sessions
/// opened with them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens {
    tokens: Arc<Vec<HttpToken>>,
    sessions: Arc<Sessions>,
    /// Whether the listener speaks HTTPS, so the session cookie is marked `Secure`.
    pub(crate) https: bool,
}

/// Paths served without credentials even when tokens are configured.
const OPEN_PATHS: &[&str] = &[
    "/health",
    crate::console::LOGIN_PATH,
    crate::console::LOGOUT_PATH,
    "/console/console.css",
    "/console/console.js",
];

impl Tokens {
    /// `tokens`, with no session open yet.
    pub(crate) fn new(tokens: Vec<HttpToken>, https: bool) -> Tokens {
        Tokens {
            tokens: Arc::new(tokens),
            sessions: Arc::default(),
            https,
        }
    }

    /// Whether no token is configured (everyone is admin).
    pub(crate) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The configured token `token` is, if any.
    pub(crate) fn find(&self, token: &[u8]) -> Option<&HttpToken> {
        find(&self.tokens, token)
    }

    /// Opens a login session for `token`; returns its id for the cookie.
    pub(crate) fn open_session(&self, token: &HttpToken) -> String {
        self.sessions.open(token, now_ms())
    }

    /// Ends the login session `id` (a logout); whether it was open.
    pub(crate) fn close_session(&self, id: &str) -> bool {
        self.sessions.close(id)
    }

    /// The role of the request's credentials (a token in `Authorization`, else the session
    /// cookie), and whether it came from a login session.
    fn role(&self, headers: &HeaderMap) -> Option<(Role, bool)> {
        let (admin, session) = match token(headers) {
            Some(token) => (self.find(&token)?.admin, false),
            None => (
                self.sessions.find(&session_id(headers)?, now_ms())?.admin,
                true,
            ),
        };
        Some((if admin { Role::Admin } else { Role::ReadOnly }, session))
    }
}

/// The layer: the cross-origin check, then authentication; puts the caller's [`Role`] in the
/// request's extensions for [`crate::access`].
pub(crate) async fn authenticate(
    State(tokens): State<Tokens>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.to_string())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    if changes_state(request.method()) && cross_origin(request.headers()) {
        tracing::warn!(target: "keel::audit", event = "cross_origin_refused", %peer, method = %request.method(), path, "a page on another origin tried to change state");
        let error = "a request from another origin may not change state";
        return (StatusCode::FORBIDDEN, Json(json!({ "error": error }))).into_response();
    }
    if tokens.is_empty() || OPEN_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    match tokens.role(request.headers()) {
        Some((role, session)) => {
            request.extensions_mut().insert(role);
            if session {
                request.extensions_mut().insert(LoginSession);
            }
            next.run(request).await
        }
        None if request.method() == Method::GET && wants_html(request.headers()) => {
            tracing::info!(target: "keel::audit", event = "http_login_required", %peer, path, "a browser without a session is sent to the login page");
            let back = request.uri().path_and_query().map_or("/", |p| p.as_str());
            // A cookie that no longer opens a session: it expired, was logged out, or the
            // server restarted. The login page says so.
            let ended = session_id(request.headers()).is_some();
            Redirect::to(&crate::console::login_url(
                back,
                ended.then_some(SESSION_ENDED),
            ))
            .into_response()
        }
        None => {
            tracing::warn!(target: "keel::audit", event = "http_authentication_failed", %peer, path, "no valid token");
            let error = "a valid token is required (Authorization: Bearer <token>)";
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, r#"Basic realm="keel""#)],
                Json(json!({ "error": error })),
            )
                .into_response()
        }
    }
}

/// State-changing only from the refused methods' point of view: GET, HEAD and OPTIONS are
/// what a cross-site page may send anyway.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the browser says the request comes from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` whose host and port differ from the `Host` asked for.
/// Non-browser clients send neither and pass.
fn cross_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return true;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            let authority = origin.split("://").nth(1).unwrap_or("null");
            !authority.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// Whether the client is a browser asking for a page.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// In a request's extensions when its caller logged in on the console's login page (so the
/// console offers a logout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginSession;

/// Why a browser is sent to the login page when its session cookie no longer works.
pub(crate) const SESSION_ENDED: &str = "ended";

/// The session id of the request's `Cookie` header.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| value.to_owned())
        })
}

/// The token of `Authorization: Bearer <token>` or `Basic base64(user:<token>)`.
fn token(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().as_bytes().to_vec());
    }
    let decoded = BASE64.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// The configured token whose hash is `token`'s; each comparison looks at every byte, so
/// its time says nothing about how much of a hash matched.
fn find<'a>(tokens: &'a [HttpToken], token: &[u8]) -> Option<&'a HttpToken> {
    let hash = ring::digest::digest(&ring::digest::SHA256, token);
    tokens.iter().find(|t| {
        let differing = t
            .sha256
            .iter()
            .zip(hash.as_ref())
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        differing == 0
    })
}

#[cfg(test)]
mod tests;
