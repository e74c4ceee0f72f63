//! The saga state machine on the in-memory store: completion, compensation in reverse,
//! retries of transient errors, a step timeout, deterministic command ids, every
//! transition persisted, and an idempotent start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_saga::{
    MemorySagaStore, Saga, SagaRunner, SagaStatus, SagaStore, Step, StepContext, StepError,
};

type Journal = Arc<Mutex<Vec<String>>>;

/// A step that records `<command id>#<attempt>` and fails as `fail` says for its first
/// attempts.
fn step(name: &'static str, journal: &Journal, fail: Option<(u32, StepError)>) -> Step<u32> {
    let (act, undo) = (journal.clone(), journal.clone());
    Step::new(name, move |ctx: StepContext<u32>| {
        let journal = act.clone();
        let fail = fail.clone();
        async move {
            journal
                .lock()
                .unwrap()
                .push(format!("{}#{}", ctx.command_id, ctx.attempt));
            match fail {
                Some((attempts, error)) if ctx.attempt <= attempts => Err(error),
                _ => Ok(ctx.data + 1),
            }
        }
    })
    .compensate_with(move |ctx: StepContext<u32>| {
        let journal = undo.clone();
        async move {
            journal.lock().unwrap().push(ctx.command_id.clone());
            Ok(ctx.data)
        }
    })
    .with_retries(3, Duration::from_millis(1))
}

fn journal() -> Journal {
    Arc::new(Mutex::new(Vec::new()))
}

#[tokio::test]
async fn every_step_completes_in_order() {
    let j = journal();
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(step("charge", &j, None));
    let store = Arc::new(MemorySagaStore::default());
    let outcome = SagaRunner::new(saga, store.clone())
        .start("o1", 0)
        .await
        .unwrap();
    assert_eq!((outcome.status, outcome.data), (SagaStatus::Completed, 2));
    assert_eq!(*j.lock().unwrap(), ["o1/reserve/do#1", "o1/charge/do#1"]);
    let stored = store.load("o1").await.unwrap().unwrap();
    // create (0) + per step: start attempt, complete = 4 transitions.
    assert_eq!((stored.status, stored.version), (SagaStatus::Completed, 4));
}

#[tokio::test]
async fn a_permanent_failure_compensates_completed_steps_in_reverse() {
    let j = journal();
    let declined = StepError::Permanent("card declined".into());
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(step("ship-label", &j, None))
        .step(step("charge", &j, Some((u32::MAX, declined))))
        .step(step("ship", &j, None));
    let outcome = SagaRunner::new(saga, Arc::new(MemorySagaStore::default()))
        .start("o2", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Compensated);
    assert!(outcome.error.unwrap().contains("card declined"));
    assert_eq!(
        *j.lock().unwrap(),
        [
            "o2/reserve/do#1",
            "o2/ship-label/do#1",
            "o2/charge/do#1",
            "o2/ship-label/undo",
            "o2/reserve/undo"
        ],
        "no retry of a permanent error; the failed step itself is not undone"
    );
}

#[tokio::test]
async fn transient_errors_are_retried_with_the_same_command_id() {
    let j = journal();
    let outage = StepError::Transient("payment service down".into());
    let saga = Saga::new("order").step(step("charge", &j, Some((2, outage.clone()))));
    let outcome = SagaRunner::new(saga, Arc::new(MemorySagaStore::default()))
        .start("o3", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Completed);
    assert_eq!(
        *j.lock().unwrap(),
        ["o3/charge/do#1", "o3/charge/do#2", "o3/charge/do#3"]
    );

    let j = journal();
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(step("charge", &j, Some((5, outage))));
    let outcome = SagaRunner::new(saga, Arc::new(MemorySagaStore::default()))
        .start("o4", 0)
        .await
        .unwrap();
    assert_eq!(
        outcome.status,
        SagaStatus::Compensated,
        "attempts exhausted"
    );
    assert_eq!(j.lock().unwrap().last().unwrap(), "o4/reserve/undo");
}

#[tokio::test]
async fn a_step_past_its_deadline_compensates() {
    let j = journal();
    let hang = Step::new("charge", |_ctx: StepContext<u32>| async {
        std::future::pending::<()>().await;
        Ok(0)
    })
    .with_timeout(Duration::from_millis(50));
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(hang);
    let outcome = SagaRunner::new(saga, Arc::new(MemorySagaStore::default()))
        .start("o5", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Compensated);
    assert!(outcome.error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn a_failing_compensation_ends_in_failed_for_an_operator() {
    let j = journal();
    let stuck = Step::new(
        "reserve",
        |ctx: StepContext<u32>| async move { Ok(ctx.data) },
    )
    .compensate_with(|_ctx: StepContext<u32>| async {
        Err(StepError::Permanent("warehouse unreachable".into()))
    });
    let saga = Saga::new("order").step(stuck).step(step(
        "charge",
        &j,
        Some((u32::MAX, StepError::Permanent("declined".into()))),
    ));
    let outcome = SagaRunner::new(saga, Arc::new(MemorySagaStore::default()))
        .start("o6", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Failed);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("warehouse unreachable") && error.contains("declined"),
        "{error}"
    );
}

#[tokio::test]
async fn starting_an_existing_instance_does_not_run_it_again() {
    let j = journal();
    let make = || Saga::new("order").step(step("reserve", &j, None));
    let store = Arc::new(MemorySagaStore::default());
    SagaRunner::new(make(), store.clone())
        .start("o7", 0)
        .await
        .unwrap();
    let again = SagaRunner::new(make(), store).start("o7", 0).await.unwrap();
    assert_eq!((again.status, again.data), (SagaStatus::Completed, 1));
    assert_eq!(j.lock().unwrap().len(), 1, "the action ran once");
}
