//! `keel-saga`: orchestrated sagas as durable state machines — steps with an action and a
//! compensation, a durable timeout and retries per step, compensation of completed steps in
//! reverse when a step fails, the state persisted after every transition, and resumption
//! after a crash.
//!
//! The port is [`SagaStore`] (`keel_sql::SqliteSagaStore` and, with keel-sql's `postgres`
//! feature, `keel_sql::PgSagaStore`; [`MemorySagaStore`] serves tests); [`SagaRunner`]
//! drives sagas of one [`Saga`] definition. Every store passes the same suite (feature
//! `conformance`, module `conformance`).
//!
//! # The state machine
//!
//! ```text
//!            action Ok                       last step Ok
//! Running(i) ─────────▶ Running(i+1) ─ … ─▶ Completed
//!    │ transient error, attempts and deadline left: Running(i), attempt+1 (after backoff)
//!    │ permanent error, attempts exhausted, or deadline passed
//!    ▼
//! Compensating(i-1) ─ compensation Ok ─▶ Compensating(i-2) ─ … ─▶ Compensated
//!    │ compensation fails after its attempts
//!    ▼
//! Failed (needs an operator: the record says which compensation and why)
//! ```
//!
//! Every arrow is persisted (compare-and-set on the record's version) *before* the next
//! action runs, so a process killed anywhere resumes at the last persisted state: the action
//! or compensation in flight runs again. Steps are therefore at-least-once, and each gets a
//! deterministic command id ([`StepContext::command_id`]) that a receiving service's inbox
//! uses to apply it once.
//!
//! A step's timeout is a durable timer: its deadline is persisted when the step first
//! starts, and a saga resumed after the deadline fails that step at once (then compensates)
//! instead of starting the clock again.
//!
//! # Steps that talk through messages
//!
//! A step whose service runs in another process sends its command as an event and waits for
//! the reply event: [`Replies::request`] in the action (sent with
//! [`StepContext::request_id`]), [`Replies::deliver`] in the route that consumes the replies.
//! The wait is bounded by a patience per attempt (no reply: a transient error, so the next
//! attempt sends again) and, as for every action, by the step's durable deadline.
//!
//! # Choreography instead
//!
//! Without an orchestrator, the same flow is services reacting to each other's events; see
//! `docs/sagas.md` for the order flow written both ways and when to pick which.

#[cfg(feature = "conformance")]
pub mod conformance;
mod definition;
mod reply;
mod runner;
mod store;

pub use definition::{Saga, Step, StepContext, StepError, StepFuture};
pub use reply::{REQUESTS_WAITING_MAX, Replies, Reply};
pub use runner::{SagaOutcome, SagaRunner, TickReport};
pub use store::{MemorySagaStore, SagaRecord, SagaStatus, SagaStore, SagaStoreError};

/// Most steps one saga may have.
pub const STEPS_MAX: usize = 64;
/// Most attempts one step (or compensation) may be given.
pub const ATTEMPTS_MAX: u32 = 1_000;
