//! [`Replies`]: where the replies to a saga's commands meet the steps waiting for them, for
//! steps that talk to other services only through messages (a command event out, a reply
//! event back) instead of calling them.
//!
//! Not here: how commands are sent or replies consumed (the caller's transport and routes),
//! and the step's deadline (the runner's durable timer bounds the whole wait).
//!
//! # Why nothing here is durable
//!
//! A waiting request lives in memory only. If the saga's process stops while a step waits,
//! the resumed step sends its command again and waits again; the receiving service, being
//! idempotent by [`StepContext::command_id`](crate::StepContext), answers a repeated command
//! by announcing the outcome it already reached instead of acting twice. A reply that comes
//! when nobody waits for it (it answers an earlier attempt, or a process that is gone) is
//! dropped for the same reason. The one durable thing a message-driven step needs, its
//! deadline, is the runner's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::definition::StepError;

/// What a reply says about the command it answers: done, or failed (transient failures are
/// retried by the step's attempts, permanent ones make the saga compensate).
pub type Reply = Result<(), StepError>;

/// Most requests that may wait for a reply at once in one [`Replies`].
pub const REQUESTS_WAITING_MAX: usize = 100_000;

/// Requests waiting for their reply, by request id. Cheap to clone; clones share the waiting
/// requests, so the step actions and the reply handler hold the same one.
#[derive(Clone, Default)]
pub struct Replies {
    waiting: Arc<Mutex<Waiting>>,
}

/// The waiting requests, each with the number of the wait that registered it.
#[derive(Default)]
struct Waiting {
    requests: HashMap<String, (u64, oneshot::Sender<Reply>)>,
    waits: u64,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl Replies {
    /// No request waiting.
    pub fn new() -> Replies {
        Replies::default()
    }

    /// Runs `send` (which sends the command whose reply will carry `request_id`), then waits
    /// up to `patience` for that reply. No reply in time is a transient error, so the step's
    /// next attempt sends again and the receiver re-announces its outcome. The request waits
    /// from before `send` runs, so a reply faster than `send`'s return is not missed.
    ///
    /// Use [`StepContext::request_id`](crate::StepContext::request_id) as `request_id`: it
    /// differs per attempt, so a late reply to an earlier attempt never answers this one.
    ///
    /// Cancel safety: cancel safe; a dropped wait stops waiting (a reply that comes later
    /// is dropped). Whether the command was sent then depends on `send`.
    pub async fn request(
        &self,
        request_id: &str,
        patience: Duration,
        send: impl Future<Output = Result<(), StepError>>,
    ) -> Reply {
        let (sender, reply) = oneshot::channel();
        let wait = {
            let mut waiting = self.lock();
            let requests = waiting.requests.len();
            if requests >= REQUESTS_WAITING_MAX && !waiting.requests.contains_key(request_id) {
                return Err(StepError::Transient(format!(
                    "{REQUESTS_WAITING_MAX} requests already wait for a reply"
                )));
            }
            waiting.waits += 1;
            let wait = waiting.waits;
            // A second wait for the same id (two runners of one instance) replaces the first,
            // whose reply channel closes: that one fails transiently below.
            waiting
                .requests
                .insert(request_id.to_owned(), (wait, sender));
            wait
        };
        let _forget = Forget {
            replies: self,
            request_id,
            wait,
        };
        send.await?;
        match tokio::time::timeout(patience, reply).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(StepError::Transient(format!(
                "request {request_id} was replaced by another wait for it"
            ))),
            Err(_) => Err(StepError::Transient(format!(
                "no reply to {request_id} within {patience:?}"
            ))),
        }
    }

    /// Hands `reply` to the step waiting for `request_id`. Returns whether one was waiting;
    /// a reply nobody waits for is dropped (see the module docs for why that is safe).
    pub fn deliver(&self, request_id: &str, reply: Reply) -> bool {
        match self.lock().requests.remove(request_id) {
            Some((_, waiting)) => waiting.send(reply).is_ok(),
            None => false,
        }
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().requests.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The map is left consistent by every holder (single inserts and removes), so a
        // panic elsewhere while it was held does not make it unusable.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes a request that ended (answered, timed out or cancelled) from the waiting ones,
/// unless another wait for the same id replaced it.
struct Forget<'a> {
    replies: &'a Replies,
    request_id: &'a str,
    wait: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut waiting = self.replies.lock();
        if waiting
            .requests
            .get(self.request_id)
            .is_some_and(|(wait, _)| *wait == self.wait)
        {
            waiting.requests.remove(self.request_id);
        }
    }
}
