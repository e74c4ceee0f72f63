//! Sagas survive `kill -9`, on every saga store: a child process (this test binary re-run
//! as `saga_child`) drives an order saga and is killed at a step boundary — inside each
//! action, inside a compensation, inside a step past its deadline — then a fresh child
//! resumes it. Checked: the saga ends completed or compensated, each action ran again only
//! when it was in flight at the kill, always with the same command id, and a durable
//! timeout fires after the restart without running the step again.
//!
//! Every scenario runs on SQLite, and on PostgreSQL (a fresh schema per run) when
//! `KEEL_TEST_POSTGRES_URL` is set (an unreachable server fails the test).

#[cfg(feature = "postgres")]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_saga::{
    Saga, SagaRecord, SagaRunner, SagaStatus, SagaStore, Step, StepContext, StepError,
};
use keel_sql::SqliteSagaStore;

const STEPS: [&str; 3] = ["reserve", "charge", "ship"];

/// The child: set up by the parent tests through environment variables; a no-op otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_child() {
    let Ok(dir) = std::env::var("KEEL_SAGA_CHILD_DIR") else {
        println!("saga_child runs only as the child process of the saga_crash tests");
        return;
    };
    let run = Run {
        dir: PathBuf::from(dir),
        backend: Backend::from_env(),
    };
    match &run.backend {
        Backend::Sqlite => drive(&run.dir, Arc::new(run.sqlite())).await,
        #[cfg(feature = "postgres")]
        Backend::Postgres(url) => {
            let db = keel_sql::PgDatabase::connect(url).await.unwrap();
            drive(&run.dir, Arc::new(db.saga_store())).await
        }
    }
}

/// The child's saga: starts `order-1`, or resumes it when the store holds it.
async fn drive<S: SagaStore>(dir: &Path, store: Arc<S>) {
    let hang_at = std::env::var("KEEL_SAGA_HANG_AT").unwrap_or_default();
    let decline = std::env::var("KEEL_SAGA_DECLINE").is_ok();
    let timeout_ms: u64 = std::env::var("KEEL_SAGA_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
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

/// Which store a run keeps its saga in.
#[derive(Debug, Clone)]
enum Backend {
    /// `sagas.db` in the run's directory.
    Sqlite,
    /// A PostgreSQL database URL (with the run's own schema in its `search_path`).
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Backend {
    /// The child's backend, as the parent passed it.
    fn from_env() -> Backend {
        #[cfg(feature = "postgres")]
        if let Ok(url) = std::env::var("KEEL_SAGA_CHILD_POSTGRES_URL") {
            return Backend::Postgres(url);
        }
        Backend::Sqlite
    }
}

/// One scenario's run: its directory (the journal, and the SQLite file) and its store.
struct Run {
    dir: PathBuf,
    backend: Backend,
}

impl Run {
    fn sqlite(&self) -> SqliteSagaStore {
        SqliteSagaStore::open(self.dir.join("sagas.db")).unwrap()
    }

    /// The stored `order-1`.
    async fn load(&self) -> SagaRecord {
        let record = match &self.backend {
            Backend::Sqlite => self.sqlite().load("order-1").await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                let db = keel_sql::PgDatabase::connect(url).await.unwrap();
                db.saga_store().load("order-1").await
            }
        };
        record.unwrap().expect("order-1 is stored")
    }

    fn journal(&self) -> Vec<String> {
        journal(&self.dir)
    }
}

/// A fresh run per backend: SQLite, and PostgreSQL when `KEEL_TEST_POSTGRES_URL` is set.
/// The directories live as long as `dirs`.
async fn runs(name: &str, dirs: &mut Vec<tempfile::TempDir>) -> Vec<Run> {
    // Only the PostgreSQL feature adds a backend.
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut backends = vec![Backend::Sqlite];
    #[cfg(feature = "postgres")]
    if let Some((url, _)) = support::fresh_schema(name).await {
        backends.push(Backend::Postgres(url));
    }
    #[cfg(not(feature = "postgres"))]
    let _ = name;
    backends
        .into_iter()
        .map(|backend| {
            let dir = tempfile::tempdir().unwrap();
            let run = Run {
                dir: dir.path().to_path_buf(),
                backend,
            };
            dirs.push(dir);
            run
        })
        .collect()
}

/// Appends a line durably, so the parent sees exactly what ran before the kill.
fn record(journal: &Path, line: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .unwrap();
    // One write: `writeln!` writes the line and its newline separately, and a child killed
    // between the two left a line without its end, which the resumed child's line then joined.
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
    file.sync_all().unwrap();
}

fn journal(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn child(run: &Run, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["saga_child", "--exact", "--nocapture"])
        .env("KEEL_SAGA_CHILD_DIR", &run.dir);
    #[cfg(feature = "postgres")]
    if let Backend::Postgres(url) = &run.backend {
        command.env("KEEL_SAGA_CHILD_POSTGRES_URL", url);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// Runs a child until the journal holds `line`, then SIGKILLs it.
fn kill_when_journaled(run: &Run, env: &[(&str, &str)], line: &str) {
    let mut process = child(run, env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run.journal().iter().any(|l| l == line) {
        assert!(
            Instant::now() < deadline,
            "child never reached {line}: {:?}",
            run.journal()
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

fn finish(run: &Run, env: &[(&str, &str)]) {
    let status = child(run, env).wait().unwrap();
    assert!(status.success(), "resuming child failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_each_step_the_saga_resumes_and_completes() {
    for (index, step) in STEPS.iter().enumerate() {
        let mut dirs = Vec::new();
        for run in runs(&format!("saga_crash_step_{index}"), &mut dirs).await {
            let in_flight = format!("order-1/{step}/do");
            kill_when_journaled(&run, &[("KEEL_SAGA_HANG_AT", &in_flight)], &in_flight);
            finish(&run, &[]);
            let at = format!("killed in {step} on {:?}", run.backend);
            assert_eq!(run.load().await.status, SagaStatus::Completed, "{at}");
            let mut expected: Vec<String> =
                STEPS.iter().map(|s| format!("order-1/{s}/do")).collect();
            // The action in flight at the kill runs again, with the same command id.
            expected.insert(index + 1, in_flight.clone());
            assert_eq!(run.journal(), expected, "{at}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_a_compensation_the_saga_finishes_compensating() {
    let mut dirs = Vec::new();
    for run in runs("saga_crash_undo", &mut dirs).await {
        let decline = ("KEEL_SAGA_DECLINE", "1");
        kill_when_journaled(
            &run,
            &[decline, ("KEEL_SAGA_HANG_AT", "order-1/reserve/undo")],
            "order-1/reserve/undo",
        );
        finish(&run, &[decline]);
        let record = run.load().await;
        assert_eq!(record.status, SagaStatus::Compensated, "{:?}", run.backend);
        assert!(record.error.unwrap().contains("card declined"));
        assert_eq!(
            run.journal(),
            [
                "order-1/reserve/do",
                "order-1/charge/do",
                "order-1/reserve/undo",
                "order-1/reserve/undo"
            ],
            "charge is not retried after the restart; reserve is undone (again, same id) on {:?}",
            run.backend
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_fires_after_a_restart() {
    let mut dirs = Vec::new();
    for run in runs("saga_crash_timeout", &mut dirs).await {
        let timeout = ("KEEL_SAGA_TIMEOUT_MS", "1500");
        kill_when_journaled(
            &run,
            &[timeout, ("KEEL_SAGA_HANG_AT", "order-1/charge/do")],
            "order-1/charge/do",
        );
        // Wait until the persisted deadline has passed while no process was running.
        let deadline_ms = run
            .load()
            .await
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
        finish(&run, &[timeout, ("KEEL_SAGA_HANG_AT", "order-1/charge/do")]);
        let record = run.load().await;
        assert_eq!(record.status, SagaStatus::Compensated, "{:?}", run.backend);
        assert!(record.error.unwrap().contains("timed out"));
        assert_eq!(
            run.journal(),
            [
                "order-1/reserve/do",
                "order-1/charge/do",
                "order-1/reserve/undo"
            ],
            "the timed-out step is not started again after the restart on {:?}",
            run.backend
        );
    }
}
