//! The console's login page: a browser enters its token once and gets a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS) instead of sending the token with
//! every request. The token is checked as an `Authorization` header would be
//! (`authentication.rs`); the session keeps the token's role, so a read-only login sees
//! the console without the forms that change state, and the API refuses it those calls.
//! The logout closes the session on the server (the cookie no longer works anywhere, not
//! only in this browser), and the login page says why the browser is back: a logout, or a
//! session that ended (expired, logged out elsewhere, or the server restarted).
//!
//! Not here: sessions themselves (`authentication/sessions.rs`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::authentication::{SESSION_COOKIE, SESSION_ENDED, SESSION_TTL_MS, Tokens, session_id};

/// Where the login page is.
pub(crate) const LOGIN_PATH: &str = "/login";
/// Where the logout form posts.
pub(crate) const LOGOUT_PATH: &str = "/logout";
/// Why the login page shows after a logout.
const LOGGED_OUT: &str = "logged-out";

/// The login page's URL that returns to `back` (a path of this server) after the login,
/// saying why the browser is there (`reason`, if any).
pub(crate) fn login_url(back: &str, reason: Option<&str>) -> String {
    let mut pairs = vec![("next", back)];
    pairs.extend(reason.map(|reason| ("reason", reason)));
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{LOGIN_PATH}?{query}")
}

/// The login page, its form's target and the logout.
pub(crate) fn routes(tokens: Tokens) -> Router {
    Router::new()
        .route(LOGIN_PATH, get(login_page).post(log_in))
        .route(LOGOUT_PATH, post(log_out))
        .with_state(tokens)
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Login {
    token: String,
    next: Option<String>,
}

async fn login_page(State(tokens): State<Tokens>, Query(query): Query<Next>) -> Response {
    let next = local_path(query.next.as_deref());
    if tokens.is_empty() {
        // Nobody is asked who they are: there is nothing to log in to.
        return Redirect::to(next).into_response();
    }
    let notice = match query.reason.as_deref() {
        Some(LOGGED_OUT) => Some("You logged out: that session is closed on the server."),
        Some(SESSION_ENDED) => Some(
            "Your session has ended (it expired, was logged out, or the server restarted). Log in again.",
        ),
        _ => None,
    };
    form(next, notice.map(Notice::Info)).into_response()
}

/// Closes the caller's session on the server, clears its cookie and shows the login page.
async fn log_out(State(tokens): State<Tokens>, headers: HeaderMap) -> Response {
    let closed = session_id(&headers).is_some_and(|id| tokens.close_session(&id));
    tracing::info!(target: "keel::audit", event = "http_logout", closed, "console logout");
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&login_url("/", Some(LOGGED_OUT))),
    )
        .into_response()
}

/// A line the login page shows above its form.
enum Notice<'a> {
    /// Why the browser is here.
    Info(&'a str),
    /// What went wrong with the last attempt.
    Error(&'a str),
}

async fn log_in(State(tokens): State<Tokens>, Form(login): Form<Login>) -> Response {
    let next = local_path(login.next.as_deref());
    let Some(token) = tokens.find(login.token.trim().as_bytes()) else {
        tracing::warn!(target: "keel::audit", event = "http_authentication_failed", path = LOGIN_PATH, "login with an unknown token");
        return (
            StatusCode::UNAUTHORIZED,
            form(next, Some(Notice::Error("That token is not valid."))),
        )
            .into_response();
    };
    tracing::info!(target: "keel::audit", event = "http_login", name = token.name, admin = token.admin, "console login");
    let session = tokens.open_session(token);
    let secure = if tokens.https { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL_MS / 1000
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

/// `next` when it is a path of this server, else the overview: a login link must not send
/// the browser to another site afterwards.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

fn form(next: &str, notice: Option<Notice>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (super::head_of("Log in")) }
            body.login {
                main {
                    h1 { "Keel" }
                    @match notice {
                        Some(Notice::Error(error)) => p.alert role="alert" { (error) },
                        Some(Notice::Info(why)) => p.notice role="status" { (why) },
                        None => {},
                    }
                    form.panel method="post" action=(LOGIN_PATH) {
                        label {
                            "Token"
                            input type="password" name="token" autocomplete="current-password" required autofocus;
                        }
                        input type="hidden" name="next" value=(next);
                        button type="submit" { "Log in" }
                    }
                    p.muted { "The token an operator gave you (admin or read-only)." }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_a_login() {
        assert_eq!(local_path(Some("/topics?page=2")), "/topics?page=2");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(None), "/");
        assert_eq!(
            login_url("/groups?x=1&y", None),
            "/login?next=%2Fgroups%3Fx%3D1%26y"
        );
        assert_eq!(
            login_url("/", Some(SESSION_ENDED)),
            "/login?next=%2F&reason=ended"
        );
    }
}
