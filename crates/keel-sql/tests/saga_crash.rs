//! Sagas on SQLite survive `kill -9`: a child process (this test binary re-run as
//! `saga_child`) drives an order saga and is killed at a step boundary — inside each
//! action, inside a compensation, inside a step past its deadline — then a fresh child
//! resumes it. Checked: the saga ends completed or compensated, each action ran again only
//! when it was in flight at the kill, always with the same command id, and a durable
//! timeout fires after the restart without running the step again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_saga::{Saga, SagaRunner, SagaStatus, SagaStore, Step, StepContext, StepError};
use keel_sql::SqliteSagaStore;

const STEPS: [&str; 3] = ["reserve", "charge", "ship"];

/// The child: set up by the parent tests through environment variables; a no-op otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_child() {
    let Ok(dir) = std::env::var("KEEL_SAGA_CHILD_DIR") else {
        println!("saga_child runs only as the child process of the saga_crash tests");
        return;
    };
    let dir = PathBuf::from(dir);
    let hang_at = std::env::var("KEEL_SAGA_HANG_AT").unwrap_or_default();
    let decline = std::env::var("KEEL_SAGA_DECLINE").is_ok();
    let timeout_ms: u64 = std::env::var("KEEL_SAGA_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let store = Arc::new(SqliteSagaStore::open(dir.join("sagas.db")).unwrap());
    let mut saga = Saga::new("order");
    for name in STEPS {
        let (journal_do, journal_undo) = (dir.join("journal"), dir.join("journal"));
        let (hang_do, hang_undo) = (hang_at.clone(), hang_at.clone());
        saga = saga.step(
            Step::new(name, move |ctx: StepContext<u32>| {
                let (journal, hang) = (journal_do.clone(), hang_do.clone());
                async move {
                    record(&journal, &ctx.command_id);
                    if hang == ctx.command_id {
                        std::future::pending::<()>().await;
                    }
                    if decline && ctx.step == "charge" {
                        return Err(StepError::Permanent("card declined".into()));
                    }
                    Ok(ctx.data + 1)
                }
            })
            .compensate_with(move |ctx: StepContext<u32>| {
                let (journal, hang) = (journal_undo.clone(), hang_undo.clone());
                async move {
                    record(&journal, &ctx.command_id);
                    if hang == ctx.command_id {
                        std::future::pending::<()>().await;
                    }
                    Ok(ctx.data)
                }
            })
            .with_timeout(Duration::from_millis(timeout_ms)),
        );
    }
    let runner = SagaRunner::new(saga, store.clone());
    if store.load("order-1").await.unwrap().is_none() {
        runner.start("order-1", 0).await.unwrap();
    } else {
        runner.resume_unfinished().await.unwrap();
    }
}

/// Appends a line durably, so the parent sees exactly what ran before the kill.
fn record(journal: &Path, line: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .unwrap();
    writeln!(file, "{line}").unwrap();
    file.sync_all().unwrap();
}

fn journal(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn child(dir: &Path, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["saga_child", "--exact", "--nocapture"])
        .env("KEEL_SAGA_CHILD_DIR", dir);
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// Runs a child until the journal holds `line`, then SIGKILLs it.
fn kill_when_journaled(dir: &Path, env: &[(&str, &str)], line: &str) {
    let mut process = child(dir, env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal(dir).iter().any(|l| l == line) {
        assert!(
            Instant::now() < deadline,
            "child never reached {line}: {:?}",
            journal(dir)
        );
        assert!(
            process.try_wait().unwrap().is_none(),
            "child exited before {line}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    process.kill().unwrap(); // SIGKILL on Unix
    process.wait().unwrap();
}

fn finish(dir: &Path, env: &[(&str, &str)]) {
    let status = child(dir, env).wait().unwrap();
    assert!(status.success(), "resuming child failed: {status}");
}

async fn status(dir: &Path) -> (SagaStatus, Option<String>) {
    let store = SqliteSagaStore::open(dir.join("sagas.db")).unwrap();
    let record = store.load("order-1").await.unwrap().unwrap();
    (record.status, record.error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_each_step_the_saga_resumes_and_completes() {
    for (index, step) in STEPS.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let in_flight = format!("order-1/{step}/do");
        kill_when_journaled(dir.path(), &[("KEEL_SAGA_HANG_AT", &in_flight)], &in_flight);
        finish(dir.path(), &[]);
        assert_eq!(
            status(dir.path()).await.0,
            SagaStatus::Completed,
            "killed in {step}"
        );
        let mut expected: Vec<String> = STEPS.iter().map(|s| format!("order-1/{s}/do")).collect();
        // The action in flight at the kill runs again, with the same command id.
        expected.insert(index + 1, in_flight.clone());
        assert_eq!(journal(dir.path()), expected, "killed in {step}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_a_compensation_the_saga_finishes_compensating() {
    let dir = tempfile::tempdir().unwrap();
    let decline = ("KEEL_SAGA_DECLINE", "1");
    kill_when_journaled(
        dir.path(),
        &[decline, ("KEEL_SAGA_HANG_AT", "order-1/reserve/undo")],
        "order-1/reserve/undo",
    );
    finish(dir.path(), &[decline]);
    let (status, error) = status(dir.path()).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert!(error.unwrap().contains("card declined"));
    assert_eq!(
        journal(dir.path()),
        [
            "order-1/reserve/do",
            "order-1/charge/do",
            "order-1/reserve/undo",
            "order-1/reserve/undo"
        ],
        "charge is not retried after the restart; reserve is undone (again, same id)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_fires_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = ("KEEL_SAGA_TIMEOUT_MS", "1500");
    kill_when_journaled(
        dir.path(),
        &[timeout, ("KEEL_SAGA_HANG_AT", "order-1/charge/do")],
        "order-1/charge/do",
    );
    // Wait until the persisted deadline has passed while no process was running.
    let store = SqliteSagaStore::open(dir.path().join("sagas.db")).unwrap();
    let deadline_ms = store
        .load("order-1")
        .await
        .unwrap()
        .unwrap()
        .deadline_ms
        .expect("the charge step's deadline is persisted");
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        <= deadline_ms
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    finish(
        dir.path(),
        &[timeout, ("KEEL_SAGA_HANG_AT", "order-1/charge/do")],
    );
    let (status, error) = status(dir.path()).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert!(error.unwrap().contains("timed out"));
    assert_eq!(
        journal(dir.path()),
        [
            "order-1/reserve/do",
            "order-1/charge/do",
            "order-1/reserve/undo"
        ],
        "the timed-out step is not started again after the restart"
    );
}
