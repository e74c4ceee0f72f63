//! What a saga is: [`Saga`], an ordered list of [`Step`]s, each an action with an optional
//! compensation, a timeout, attempts and backoff; the [`StepContext`] an action sees; and
//! [`StepError`], transient or permanent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The future an action or compensation returns.
pub type StepFuture<D> = Pin<Box<dyn Future<Output = Result<D, StepError>> + Send>>;

type Action<D> = Arc<dyn Fn(StepContext<D>) -> StepFuture<D> + Send + Sync>;

/// One step: do something, and how to undo it.
pub struct Step<D> {
    pub(crate) name: String,
    pub(crate) action: Action<D>,
    pub(crate) compensation: Option<Action<D>>,
    pub(crate) timeout: Duration,
    pub(crate) attempts_max: u32,
    pub(crate) backoff: Duration,
}

/// A saga definition: a name (the type of its instances) and its steps in order. `D` is the
/// saga's data, persisted as JSON with its state; actions may return an updated copy.
pub struct Saga<D> {
    pub(crate) name: String,
    pub(crate) steps: Vec<Step<D>>,
}

/// What an action or compensation sees.
#[derive(Debug, Clone)]
pub struct StepContext<D> {
    /// The saga instance.
    pub saga_id: String,
    /// The step's name.
    pub step: String,
    /// Attempt number of this action or compensation, from 1.
    pub attempt: u32,
    /// The saga's data as of the last completed step.
    pub data: D,
    /// `<saga id>/<step>/do` for actions, `<saga id>/<step>/undo` for compensations: the
    /// same on every attempt and after every restart, so receivers can deduplicate.
    pub command_id: String,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Might work later (a service down, a timeout): retried while attempts and the step's
    /// deadline last.
    #[error("transient: {0}")]
    Transient(String),
    /// Will not work (card declined, out of stock): the saga compensates at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl<D> StepContext<D> {
    /// `<command id>#<attempt>`: the id of the message this attempt sends, for steps that
    /// talk through messages ([`Replies`](crate::Replies)). It differs per attempt, so a
    /// receiver deduplicating messages by id still sees a retried command (and answers it
    /// by its [`command_id`](StepContext::command_id)), and it is the same when a resumed
    /// saga repeats an attempt, so a message re-sent after a crash is recognisably the same.
    pub fn request_id(&self) -> String {
        format!("{}#{}", self.command_id, self.attempt)
    }
}

impl<D> Step<D> {
    /// A step named `name` running `action`: by default one attempt, a 30 s timeout, no
    /// compensation.
    pub fn new<F, Fut>(name: impl Into<String>, action: F) -> Step<D>
    where
        F: Fn(StepContext<D>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, StepError>> + Send + 'static,
    {
        Step {
            name: name.into(),
            action: Arc::new(move |ctx| Box::pin(action(ctx))),
            compensation: None,
            timeout: Duration::from_secs(30),
            attempts_max: 1,
            backoff: Duration::from_millis(100),
        }
    }

    /// Undoes the step after a later step failed. Retried with the step's attempts and
    /// backoff (no deadline: an undo must eventually happen or be handed to an operator).
    #[must_use]
    pub fn compensate_with<F, Fut>(mut self, compensation: F) -> Step<D>
    where
        F: Fn(StepContext<D>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, StepError>> + Send + 'static,
    {
        self.compensation = Some(Arc::new(move |ctx| Box::pin(compensation(ctx))));
        self
    }

    /// The step's durable deadline, from its first start, across attempts and restarts.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Step<D> {
        self.timeout = timeout;
        self
    }

    /// Attempts for transient errors (1..=[`ATTEMPTS_MAX`](crate::ATTEMPTS_MAX)) and the
    /// delay between them (doubling, at most 32 × `backoff`).
    #[must_use]
    pub fn with_retries(mut self, attempts_max: u32, backoff: Duration) -> Step<D> {
        self.attempts_max = attempts_max.clamp(1, crate::ATTEMPTS_MAX);
        self.backoff = backoff;
        self
    }

    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.backoff * 2u32.pow(attempt.saturating_sub(1).min(5))
    }
}

impl<D> Saga<D> {
    /// A saga type named `name` (stored with each instance; one runner per name).
    pub fn new(name: impl Into<String>) -> Saga<D> {
        Saga {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Adds the next step. Panics past [`STEPS_MAX`](crate::STEPS_MAX) steps or on a
    /// repeated step name (names key command ids): both are definition bugs.
    #[must_use]
    pub fn step(mut self, step: Step<D>) -> Saga<D> {
        assert!(self.steps.len() < crate::STEPS_MAX, "too many saga steps");
        assert!(
            self.steps.iter().all(|s| s.name != step.name),
            "saga '{}' has two steps named '{}'",
            self.name,
            step.name
        );
        self.steps.push(step);
        self
    }

    /// The saga's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
