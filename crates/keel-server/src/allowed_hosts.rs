//! The `Host` allow-list of the HTTP listeners, against DNS rebinding: a page on
//! `attacker.example` whose name the attacker then points at 127.0.0.1 is same-origin with
//! itself, so the browser lets it read the API's answers and the cross-origin check never
//! fires — but every request it sends still carries `Host: attacker.example`.
//!
//! Decision table (the port is ignored, names compare case-insensitively):
//!
//! | `Host` | answer |
//! |---|---|
//! | absent (only non-browser clients omit it) | served |
//! | `localhost`, `127.0.0.1`, `::1`, the listener's bound address, a configured name | served |
//! | any IP address, when the listener binds every interface (`0.0.0.0`, `::`) | served: a page reached by address has that address as its origin, nothing to rebind |
//! | anything, when the configured names include `*` | served (the check is off) |
//! | any other name | `421 Misdirected Request` with a one-line reason, audit line |

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

/// The configured name that turns the check off.
const ANY_HOST: &str = "*";

/// The names one listener answers to.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts(Arc<Rules>);

#[derive(Debug)]
struct Rules {
    /// Lowercase names and addresses, without ports.
    names: Vec<String>,
    /// Whether any IP address is accepted (a listener on every interface).
    any_address: bool,
    /// Whether the check is off.
    any: bool,
}

impl AllowedHosts {
    /// The rules of a listener bound to `bound`, with the operator's `configured` names.
    pub(crate) fn new(bound: SocketAddr, configured: &[String]) -> AllowedHosts {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .chain(configured.iter().map(|name| normalized(name)))
            .collect();
        if !bound.ip().is_unspecified() {
            names.push(bound.ip().to_string());
        }
        AllowedHosts(Arc::new(Rules {
            names,
            any_address: bound.ip().is_unspecified(),
            any: configured.iter().any(|name| name.trim() == ANY_HOST),
        }))
    }

    /// Whether a request with this `Host` header value is served.
    fn allows(&self, host: &str) -> bool {
        let rules = &self.0;
        let name = normalized(host);
        rules.any
            || rules.names.contains(&name)
            || (rules.any_address && name.parse::<IpAddr>().is_ok())
    }
}

/// The layer: refuses a request whose `Host` is not one of the listener's names.
pub(crate) async fn check_host(
    State(allowed): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    match host {
        Some(host) if !allowed.allows(&host) => {
            let path = request.uri().path();
            tracing::warn!(target: "keel::audit", event = "host_refused", host, path, "a request for a name this server does not answer to (DNS rebinding?)");
            let error =
                format!("Host '{host}' is not a name of this server; add it to http_allowed_hosts");
            (
                StatusCode::MISDIRECTED_REQUEST,
                Json(json!({ "error": error })),
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// `host` without its port, brackets or trailing dot, in lowercase.
fn normalized(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            // One colon: `name:port`. More are an IPv6 address without brackets.
            Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
            _ => host,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bound: &str, configured: &[&str], host: &str, served: bool) {
        let configured: Vec<String> = configured.iter().map(|s| s.to_string()).collect();
        let allowed = AllowedHosts::new(bound.parse().unwrap(), &configured);
        assert_eq!(
            allowed.allows(host),
            served,
            "{bound} {configured:?} {host}"
        );
    }

    #[test]
    fn the_decision_table() {
        let local = "127.0.0.1:8080";
        check(local, &[], "localhost:8080", true);
        check(local, &[], "LOCALHOST.", true);
        check(local, &[], "127.0.0.1:8080", true);
        check(local, &[], "[::1]:8080", true);
        check(local, &[], "attacker.example", false);
        check(local, &[], "attacker.example:8080", false);
        check(local, &[], "localhost.attacker.example", false);
        check(local, &[], "10.0.0.5:8080", false);
        check(local, &["keel.internal"], "Keel.Internal:443", true);
        check(local, &["*"], "attacker.example", true);
        check("10.0.0.5:8080", &[], "10.0.0.5:8080", true);
        check("10.0.0.5:8080", &[], "10.0.0.6:8080", false);
        check("0.0.0.0:8080", &[], "10.0.0.6:8080", true);
        check("[::]:8080", &[], "[fe80::1]:8080", true);
        check("0.0.0.0:8080", &[], "attacker.example", false);
        check("0.0.0.0:8080", &["keel.internal"], "keel.internal", true);
    }
}
