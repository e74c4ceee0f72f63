//! The relay's wake-up: a dedicated connection that `LISTEN`s on the outbox channel and
//! wakes the relay when a notification for its schema arrives.
//!
//! Notifications are a hint, never the source of truth: one can be missed while the
//! connection is down, so the relay also polls, and every (re)connect wakes it once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::one_line;
use super::schema::NOTIFY_CHANNEL;

/// The listening task; stops when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    task: JoinHandle<()>,
}

impl Listener {
    /// Starts listening for `schema`'s notifications, reconnecting with backoff.
    pub(crate) fn start(
        config: tokio_postgres::Config,
        schema: String,
        wake: Arc<Notify>,
        delay_min: Duration,
        delay_max: Duration,
    ) -> Listener {
        let task = tokio::spawn(async move {
            let mut delay = delay_min;
            loop {
                match listen(&config, &schema, &wake).await {
                    Ok(()) => delay = delay_min,
                    Err(error) => {
                        tracing::warn!(%error, ?delay, "outbox LISTEN connection failed; reconnecting");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(delay_max);
            }
        });
        Listener { task }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection's life: connect, `LISTEN`, forward notifications until it ends.
async fn listen(
    config: &tokio_postgres::Config,
    schema: &str,
    wake: &Arc<Notify>,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| one_line(&e))?;
    // The connection must be polled for `LISTEN` to complete, so both run in this task
    // (and so stop together when the listener is dropped).
    let forward = async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) if note.payload() == schema => {
                    wake.notify_one();
                }
                Ok(_) => {}
                Err(error) => return Err(one_line(&error)),
            }
        }
        Ok(())
    };
    let subscribe = async {
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await
            .map_err(|e| one_line(&e))?;
        // Rows may have committed while no one listened.
        wake.notify_one();
        std::future::pending::<Result<(), String>>().await
    };
    tokio::select! {
        outcome = forward => outcome,
        outcome = subscribe => outcome,
    }
}
