//! The saga store conformance suite: the state machine's behaviour and the [`SagaStore`]
//! contract, checked on any store (memory here; SQLite and PostgreSQL in `keel-sql`).
//! Enabled by the `conformance` feature so stores in other crates run the same bodies from
//! their tests instead of copies.
//!
//! Each check gets a fresh, empty store from the caller's factory and panics with a message
//! naming what differed. There are no capability differences between the stores.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::definition::{Saga, Step, StepContext, StepError};
use crate::runner::SagaRunner;
use crate::store::{SagaRecord, SagaStatus, SagaStore, SagaStoreError};

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: SagaStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    every_step_completes_in_order(Arc::new(make().await)).await;
    a_permanent_failure_compensates_completed_steps_in_reverse(Arc::new(make().await)).await;
    transient_errors_are_retried_with_the_same_command_id(Arc::new(make().await)).await;
    a_step_past_its_deadline_compensates(Arc::new(make().await)).await;
    a_failing_compensation_ends_in_failed_for_an_operator(Arc::new(make().await)).await;
    starting_an_existing_instance_does_not_run_it_again(Arc::new(make().await)).await;
    records_round_trip_and_updates_compare_and_set(&make().await).await;
    unfinished_lists_one_sagas_running_instances_in_id_order(&make().await).await;
}

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

fn entries(journal: &Journal) -> Vec<String> {
    journal.lock().unwrap().clone()
}

/// Steps run in order, and every transition is stored.
pub async fn every_step_completes_in_order<S: SagaStore>(store: Arc<S>) {
    let j = journal();
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(step("charge", &j, None));
    let outcome = SagaRunner::new(saga, store.clone())
        .start("o1", 0)
        .await
        .unwrap();
    assert_eq!((outcome.status, outcome.data), (SagaStatus::Completed, 2));
    assert_eq!(entries(&j), ["o1/reserve/do#1", "o1/charge/do#1"]);
    let stored = store.load("o1").await.unwrap().unwrap();
    // create (0) + per step: start attempt, complete = 4 transitions.
    assert_eq!((stored.status, stored.version), (SagaStatus::Completed, 4));
}

/// A permanent error undoes the completed steps, newest first, and not the failed one.
pub async fn a_permanent_failure_compensates_completed_steps_in_reverse<S: SagaStore>(
    store: Arc<S>,
) {
    let j = journal();
    let declined = StepError::Permanent("card declined".into());
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(step("ship-label", &j, None))
        .step(step("charge", &j, Some((u32::MAX, declined))))
        .step(step("ship", &j, None));
    let outcome = SagaRunner::new(saga, store.clone())
        .start("o2", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Compensated);
    assert!(outcome.error.unwrap().contains("card declined"));
    assert_eq!(
        entries(&j),
        [
            "o2/reserve/do#1",
            "o2/ship-label/do#1",
            "o2/charge/do#1",
            "o2/ship-label/undo",
            "o2/reserve/undo"
        ],
        "no retry of a permanent error; the failed step itself is not undone"
    );
    let stored = store.load("o2").await.unwrap().unwrap();
    assert_eq!(stored.status, SagaStatus::Compensated, "the end is stored");
}

/// Transient errors are retried with the same command id until the attempts run out.
pub async fn transient_errors_are_retried_with_the_same_command_id<S: SagaStore>(store: Arc<S>) {
    let j = journal();
    let outage = StepError::Transient("payment service down".into());
    let saga = Saga::new("order").step(step("charge", &j, Some((2, outage.clone()))));
    let outcome = SagaRunner::new(saga, store.clone())
        .start("o3", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Completed);
    assert_eq!(
        entries(&j),
        ["o3/charge/do#1", "o3/charge/do#2", "o3/charge/do#3"]
    );

    let j = journal();
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(step("charge", &j, Some((5, outage))));
    let outcome = SagaRunner::new(saga, store).start("o4", 0).await.unwrap();
    assert_eq!(
        outcome.status,
        SagaStatus::Compensated,
        "attempts exhausted"
    );
    assert_eq!(entries(&j).last().unwrap(), "o4/reserve/undo");
}

/// A step that outlives its timeout fails, and the completed steps are compensated.
pub async fn a_step_past_its_deadline_compensates<S: SagaStore>(store: Arc<S>) {
    let j = journal();
    let hang = Step::new("charge", |_ctx: StepContext<u32>| async {
        std::future::pending::<()>().await;
        Ok(0)
    })
    .with_timeout(Duration::from_millis(50));
    let saga = Saga::new("order")
        .step(step("reserve", &j, None))
        .step(hang);
    let outcome = SagaRunner::new(saga, store).start("o5", 0).await.unwrap();
    assert_eq!(outcome.status, SagaStatus::Compensated);
    assert!(outcome.error.unwrap().contains("timed out"));
}

/// A compensation that fails for good leaves the instance failed, with both reasons.
pub async fn a_failing_compensation_ends_in_failed_for_an_operator<S: SagaStore>(store: Arc<S>) {
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
    let outcome = SagaRunner::new(saga, store.clone())
        .start("o6", 0)
        .await
        .unwrap();
    assert_eq!(outcome.status, SagaStatus::Failed);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("warehouse unreachable") && error.contains("declined"),
        "{error}"
    );
    let stored = store.load("o6").await.unwrap().unwrap();
    assert_eq!(
        stored.error.as_deref(),
        Some(error.as_str()),
        "reason stored"
    );
}

/// A second start of an id drives the stored instance instead of running it again.
pub async fn starting_an_existing_instance_does_not_run_it_again<S: SagaStore>(store: Arc<S>) {
    let j = journal();
    let make = || Saga::new("order").step(step("reserve", &j, None));
    SagaRunner::new(make(), store.clone())
        .start("o7", 0)
        .await
        .unwrap();
    let again = SagaRunner::new(make(), store).start("o7", 0).await.unwrap();
    assert_eq!((again.status, again.data), (SagaStatus::Completed, 1));
    assert_eq!(entries(&j).len(), 1, "the action ran once");
}

fn record(id: &str, saga: &str, status: SagaStatus) -> SagaRecord {
    SagaRecord {
        id: id.to_owned(),
        saga: saga.to_owned(),
        status,
        step: 0,
        attempt: 0,
        deadline_ms: None,
        data: "0".to_owned(),
        error: None,
        version: 0,
    }
}

/// Every field comes back as stored; `create` never overwrites; `update` applies only on
/// top of the version it names.
pub async fn records_round_trip_and_updates_compare_and_set<S: SagaStore>(store: &S) {
    assert_eq!(store.load("r1").await.unwrap(), None, "absent");
    let created = record("r1", "order", SagaStatus::Running);
    assert!(store.create(&created).await.unwrap(), "created");
    assert_eq!(store.load("r1").await.unwrap().as_ref(), Some(&created));
    let other = SagaRecord {
        data: "{\"other\":true}".to_owned(),
        ..created.clone()
    };
    assert!(!store.create(&other).await.unwrap(), "an existing id");
    assert_eq!(store.load("r1").await.unwrap().as_ref(), Some(&created));

    let next = SagaRecord {
        status: SagaStatus::Compensating,
        step: 3,
        attempt: 2,
        deadline_ms: Some(1_800_000_000_123),
        data: "{\"order\":\"o-1\",\"amount_cents\":4200}".to_owned(),
        error: Some("step 'charge' failed: card declined".to_owned()),
        version: 1,
        ..created.clone()
    };
    store.update(&next).await.unwrap();
    assert_eq!(store.load("r1").await.unwrap().as_ref(), Some(&next));

    // A second runner that read version 0 loses, and changes nothing.
    let stale = SagaRecord {
        status: SagaStatus::Completed,
        version: 1,
        ..created.clone()
    };
    let refused = store.update(&stale).await.unwrap_err();
    assert!(
        matches!(&refused, SagaStoreError::Conflict { id, expected: 0 } if id == "r1"),
        "{refused}"
    );
    let skipped = SagaRecord {
        version: 5,
        ..next.clone()
    };
    assert!(
        matches!(
            store.update(&skipped).await,
            Err(SagaStoreError::Conflict { .. })
        ),
        "a version must follow the stored one"
    );
    let unknown = SagaRecord {
        version: 1,
        ..record("r404", "order", SagaStatus::Running)
    };
    assert!(
        matches!(
            store.update(&unknown).await,
            Err(SagaStoreError::Conflict { .. })
        ),
        "an unknown id"
    );
    assert_eq!(store.load("r1").await.unwrap().as_ref(), Some(&next));
}

/// `unfinished` lists running and compensating instances of one saga, by id, up to the
/// limit.
pub async fn unfinished_lists_one_sagas_running_instances_in_id_order<S: SagaStore>(store: &S) {
    let stored = [
        ("u3", "order", SagaStatus::Running),
        ("u1", "order", SagaStatus::Compensating),
        ("u2", "order", SagaStatus::Completed),
        ("u4", "order", SagaStatus::Compensated),
        ("u5", "order", SagaStatus::Failed),
        ("u6", "refund", SagaStatus::Running),
        ("u0", "order", SagaStatus::Running),
    ];
    for (id, saga, status) in stored {
        assert!(store.create(&record(id, saga, status)).await.unwrap());
    }
    let ids =
        |records: Vec<SagaRecord>| -> Vec<String> { records.into_iter().map(|r| r.id).collect() };
    assert_eq!(
        ids(store.unfinished("order", 100).await.unwrap()),
        ["u0", "u1", "u3"]
    );
    assert_eq!(
        ids(store.unfinished("order", 2).await.unwrap()),
        ["u0", "u1"]
    );
    assert_eq!(ids(store.unfinished("refund", 100).await.unwrap()), ["u6"]);
    assert!(store.unfinished("none", 100).await.unwrap().is_empty());
}
