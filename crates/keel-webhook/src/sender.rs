//! [`DeadLetterWebhook`]: the bounded alert queue the hook fills and the thread that posts
//! from it.
//!
//! Not here: what is posted (`alert.rs`).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use keel_runtime::DeadLetter;
use serde_json::Value;

use crate::alert::alert_json;

/// Most alerts waiting to be posted; one more is dropped (and logged). A dead-letter storm
/// must not grow memory, and the first alerts are the ones that matter.
pub const WEBHOOK_QUEUE_MAX: usize = 64;
/// Longest time one `POST` may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per alert before it is given up (logged at error level).
pub const WEBHOOK_ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each later one.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Where and what to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    url: String,
    every_dead_letter: bool,
}

/// Why a webhook could not be set up. Its `Display` is one line naming the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not a plain `http://` URL.
    #[error("webhook URL '{url}' is not supported: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The sender thread could not be started.
    #[error("cannot start the webhook sender thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl WebhookConfig {
    /// Posts to `url` on the first dead letter of each group (since the router started).
    /// Only `http://` URLs: this crate is built without TLS.
    pub fn new(url: impl Into<String>) -> Result<WebhookConfig, WebhookError> {
        let url = url.into();
        let reason = if url.starts_with("https://") {
            Some("https is not built in; post to a local http relay")
        } else if !url.starts_with("http://") || url.len() == "http://".len() {
            Some("expected http://host[:port]/path")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(WebhookError::Url { url, reason });
        }
        Ok(WebhookConfig {
            url,
            every_dead_letter: false,
        })
    }

    /// Posts on every dead letter, not only on a group's first. The queue bound still holds.
    #[must_use]
    pub fn every_dead_letter(mut self) -> WebhookConfig {
        self.every_dead_letter = true;
        self
    }

    /// The URL posted to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A running webhook sender. [`hook`](DeadLetterWebhook::hook) gives the closure for
/// `Router::on_dead_letter`. Once the webhook and every hook made from it (that is, the
/// routers holding them) are dropped, the thread posts what is still queued and ends.
#[derive(Debug)]
pub struct DeadLetterWebhook {
    queue: SyncSender<Value>,
    every_dead_letter: bool,
}

impl DeadLetterWebhook {
    /// Starts the sender thread for `config`.
    pub fn start(config: WebhookConfig) -> Result<DeadLetterWebhook, WebhookError> {
        let (queue, alerts) = mpsc::sync_channel(WEBHOOK_QUEUE_MAX);
        let url = config.url.clone();
        // Detached: it ends by itself when the queue closes.
        std::thread::Builder::new()
            .name("keel-webhook".to_string())
            .spawn(move || post_all(&url, alerts))?;
        Ok(DeadLetterWebhook {
            queue,
            every_dead_letter: config.every_dead_letter,
        })
    }

    /// The dead-letter hook: queues an alert for each dead letter it should report (a
    /// group's first, or every one), without blocking.
    pub fn hook(&self) -> impl Fn(&DeadLetter) + Send + Sync + 'static {
        let queue = self.queue.clone();
        let every = self.every_dead_letter;
        move |dead_letter: &DeadLetter| {
            if !(every || dead_letter.first_in_group) {
                return;
            }
            match queue.try_send(alert_json(dead_letter)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => tracing::warn!(
                    event_id = dead_letter.event_id.as_deref().unwrap_or("<unreadable>"),
                    "dead-letter webhook queue full; alert dropped"
                ),
                Err(TrySendError::Disconnected(_)) => tracing::warn!(
                    event_id = dead_letter.event_id.as_deref().unwrap_or("<unreadable>"),
                    "dead-letter webhook stopped; alert dropped"
                ),
            }
        }
    }
}

/// Posts each queued alert until every sender end is gone.
fn post_all(url: &str, alerts: Receiver<Value>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .http_status_as_error(true)
        .build()
        .into();
    for alert in alerts {
        let mut pause = RETRY_PAUSE;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            match agent.post(url).send_json(&alert) {
                Ok(_) => break,
                Err(error) if attempt == WEBHOOK_ATTEMPTS => {
                    tracing::error!(%error, url, event_id = %alert["event_id"], "dead-letter webhook failed; alert given up");
                }
                Err(error) => {
                    tracing::warn!(%error, url, attempt, "dead-letter webhook failed; trying again");
                    std::thread::sleep(pause);
                    pause *= 2;
                }
            }
        }
    }
}
