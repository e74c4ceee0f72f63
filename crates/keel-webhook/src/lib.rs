//! `keel-webhook`: the dead-letter alert webhook. [`DeadLetterWebhook`] turns a router's
//! dead letters into JSON `POST`s to a URL (a chat, a pager, an incident tool), so the first
//! dead letter of a group pages someone at once, next to the error log line and the
//! `keel_events_dead_lettered_total` metric the runtime already gives.
//!
//! It plugs into the one alert seam the runtime has, [`Router::on_dead_letter`]:
//!
//! ```no_run
//! # fn demo(bus: &keel_embedded::EmbeddedBus, route: keel_runtime::Route) -> Result<(), Box<dyn std::error::Error>> {
//! use keel_webhook::{DeadLetterWebhook, WebhookConfig};
//!
//! let webhook = DeadLetterWebhook::start(WebhookConfig::new("http://127.0.0.1:9000/alerts")?)?;
//! let router = keel_runtime::Router::new(bus)
//!     .on_dead_letter(webhook.hook())
//!     .route(route)
//!     .start()?;
//! # Ok(()) }
//! ```
//!
//! This is its own crate because `keel-runtime` opens no sockets. The hook runs on a
//! partition's task and must not block it, so it only queues the alert (a bounded queue,
//! [`WEBHOOK_QUEUE_MAX`]; an alert that finds it full is dropped and logged); one sender
//! thread posts queued alerts with a timeout and a few retries. Delivery is best effort:
//! the dead letter itself is already stored, and `keel dlq list` shows it whatever happens
//! to the alert. Plain `http://` only (the workspace builds `ureq` without TLS); put a
//! local relay in front of an `https://` endpoint.
//!
//! [`Router::on_dead_letter`]: keel_runtime::Router::on_dead_letter

mod alert;
mod sender;

pub use alert::alert_json;
pub use sender::{
    DeadLetterWebhook, WEBHOOK_ATTEMPTS, WEBHOOK_QUEUE_MAX, WEBHOOK_TIMEOUT, WebhookConfig,
    WebhookError,
};
