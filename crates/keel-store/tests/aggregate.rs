//! Aggregates through the repository on the embedded store: decide and append, conflicts
//! with and without retries, snapshots equivalent to full replay (property test), state as
//! of a version, and concurrent deciders that never lose an event (property test).

use std::sync::Arc;

use keel_log::Log;
use keel_store::{
    Aggregate, AsOf, EmbeddedStore, EventStore, ExpectedVersion, Repository, RepositoryError,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// A bank account: the smallest aggregate with a business rule (no overdraft).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    balance: i64,
    movements: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Moved {
    Deposited(i64),
    Withdrawn(i64),
}

enum Command {
    Deposit(i64),
    Withdraw(i64),
}

#[derive(Debug, thiserror::Error)]
#[error("insufficient funds: balance {balance}, asked {asked}")]
struct Insufficient {
    balance: i64,
    asked: i64,
}

impl Aggregate for Account {
    type Event = Moved;
    type Command = Command;
    type Error = Insufficient;
    const CATEGORY: &'static str = "account";

    fn event_type(event: &Moved) -> &'static str {
        match event {
            Moved::Deposited(_) => "account.deposited",
            Moved::Withdrawn(_) => "account.withdrawn",
        }
    }

    fn apply(&mut self, event: &Moved) {
        let amount = match event {
            Moved::Deposited(amount) => *amount,
            Moved::Withdrawn(amount) => -amount,
        };
        self.balance += amount;
        self.movements.push(amount);
    }

    fn handle(&self, command: &Command) -> Result<Vec<Moved>, Insufficient> {
        match *command {
            Command::Deposit(amount) => Ok(vec![Moved::Deposited(amount)]),
            Command::Withdraw(amount) if amount > self.balance => Err(Insufficient {
                balance: self.balance,
                asked: amount,
            }),
            Command::Withdraw(amount) => Ok(vec![Moved::Withdrawn(amount)]),
        }
    }
}

fn open(dir: &std::path::Path) -> (Log, EmbeddedStore) {
    let log = Log::open_with(dir, keel_log::LogOptions::default()).unwrap();
    let store = EmbeddedStore::open_with(
        &log,
        &keel_store::EmbeddedStoreOptions {
            fsync: keel_log::FsyncPolicy::Never,
            ..Default::default()
        },
    )
    .unwrap();
    (log, store)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_append_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store) = open(dir.path());
    let accounts = Repository::<Account, _>::new(store.clone());
    let done = accounts.execute("1", &Command::Deposit(100)).await.unwrap();
    assert_eq!(
        (done.state.balance, done.appended.unwrap().version),
        (100, 1)
    );
    let refused = accounts
        .execute("1", &Command::Withdraw(500))
        .await
        .unwrap_err();
    assert!(matches!(refused, RepositoryError::Rejected(_)), "{refused}");
    assert_eq!(
        store.stream_version("account-1").await.unwrap(),
        1,
        "refusal appends nothing"
    );
    accounts.execute("1", &Command::Withdraw(30)).await.unwrap();
    let loaded = accounts.load("1").await.unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (70, 2));
    let stored = store
        .read_stream("account-1", 1, keel_store::Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(stored[1].event.ty, "account.withdrawn");
    assert_eq!(stored[1].event.subject.as_deref(), Some("account-1"));
}

/// A store where another writer deposits 5 into every stream right before each of the
/// first `interferences` appends: the repository's loaded version is then always stale.
struct Interfering {
    store: EmbeddedStore,
    interferences: std::sync::atomic::AtomicU32,
}

impl EventStore for Interfering {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<keel_core::Event>,
    ) -> Result<keel_store::Appended, keel_store::AppendError> {
        use std::sync::atomic::Ordering;
        if self.interferences.load(Ordering::SeqCst) > 0 {
            self.interferences.fetch_sub(1, Ordering::SeqCst);
            let other = keel_core::Event::new("/other", "account.deposited")
                .with_data("application/json", br#"{"Deposited":5}"#.to_vec());
            self.store
                .append(stream, ExpectedVersion::Any, vec![other])
                .await?;
        }
        self.store.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        s: &str,
        f: u64,
        d: keel_store::Direction,
        m: usize,
    ) -> Result<Vec<keel_store::RecordedEvent>, keel_store::ReadError> {
        self.store.read_stream(s, f, d, m).await
    }
    async fn read_all(
        &self,
        f: u64,
        m: usize,
        a: &keel_store::AllFilter,
    ) -> Result<Vec<keel_store::RecordedEvent>, keel_store::ReadError> {
        self.store.read_all(f, m, a).await
    }
    async fn stream_version(&self, s: &str) -> Result<u64, keel_store::ReadError> {
        self.store.stream_version(s).await
    }
    async fn head(&self) -> Result<u64, keel_store::ReadError> {
        self.store.head().await
    }
    async fn wait_for(&self, p: u64, t: std::time::Duration) -> Result<u64, keel_store::ReadError> {
        self.store.wait_for(p, t).await
    }
    async fn save_snapshot(&self, s: keel_store::Snapshot) -> Result<(), keel_store::AppendError> {
        self.store.save_snapshot(s).await
    }
    async fn load_snapshot(
        &self,
        s: &str,
    ) -> Result<Option<keel_store::Snapshot>, keel_store::ReadError> {
        self.store.load_snapshot(s).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_returned_unless_retries_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store) = open(dir.path());
    let interfering = |n: u32| Interfering {
        store: store.clone(),
        interferences: n.into(),
    };
    let strict = Repository::<Account, _>::new(interfering(1));
    let error = strict
        .execute("1", &Command::Deposit(10))
        .await
        .unwrap_err();
    match &error {
        RepositoryError::Conflict { conflict, attempts } => {
            assert_eq!((conflict.actual, attempts), (1, &1), "{error}");
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert!(error.to_string().contains("account-1"), "{error}");

    let patient = Repository::<Account, _>::new(interfering(2)).with_conflict_retries(2);
    let done = patient.execute("1", &Command::Deposit(10)).await.unwrap();
    assert_eq!(done.attempts, 3, "decided again after each conflict");
    assert_eq!(
        done.state.balance,
        5 + 5 + 5 + 10,
        "decided on the newest state"
    );

    let impatient = Repository::<Account, _>::new(interfering(3)).with_conflict_retries(2);
    let error = impatient
        .execute("1", &Command::Deposit(10))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RepositoryError::Conflict { attempts: 3, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_as_of_a_version_and_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store) = open(dir.path());
    let accounts = Repository::<Account, _>::new(store.clone()).with_snapshot_every(2);
    for amount in [1, 2, 4, 8, 16] {
        accounts
            .execute("1", &Command::Deposit(amount))
            .await
            .unwrap();
    }
    let at = |version| accounts.load_as_of("1", AsOf::Version(version));
    assert_eq!(at(0).await.unwrap().state.balance, 0);
    assert_eq!(
        at(3).await.unwrap().state.balance,
        7,
        "snapshot at 4 is past 3: replayed"
    );
    assert_eq!(at(5).await.unwrap().state.balance, 31);
    let events = store
        .read_stream("account-1", 1, keel_store::Direction::Forward, 10)
        .await
        .unwrap();
    let at_time = accounts
        .load_as_of("1", AsOf::Time(events[2].recorded_at_ms))
        .await
        .unwrap();
    let expected: i64 = events
        .iter()
        .filter(|e| e.recorded_at_ms <= events[2].recorded_at_ms)
        .map(|e| keel_store::decode_event::<Account>(e).unwrap())
        .map(|m| match m {
            Moved::Deposited(a) => a,
            Moved::Withdrawn(a) => -a,
        })
        .sum();
    assert_eq!(at_time.state.balance, expected);
    assert!(at_time.version >= 3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// State from snapshot + tail equals state from a full replay, whatever the commands
    /// and the snapshot interval.
    #[test]
    fn snapshot_plus_tail_equals_full_replay(
        amounts in proptest::collection::vec(-50i64..100, 1..60),
        every in 1u64..9,
    ) {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let (_log, store) = open(dir.path());
            let with = Repository::<Account, _>::new(store.clone()).with_snapshot_every(every);
            for amount in &amounts {
                let command = if *amount >= 0 { Command::Deposit(*amount) } else { Command::Withdraw(-amount) };
                let _ = with.execute("p", &command).await;
            }
            let from_snapshot = with.load("p").await.unwrap();
            let replayed = Repository::<Account, _>::new(store.clone()).load_as_of("p", AsOf::Version(u64::MAX)).await.unwrap();
            let plain = Repository::<Account, _>::new(store).load("p").await.unwrap();
            prop_assert_eq!(&from_snapshot.state, &plain.state);
            prop_assert_eq!(&replayed.state, &plain.state);
            prop_assert_eq!(from_snapshot.version, plain.version);
            if plain.version >= every {
                prop_assert!(from_snapshot.snapshot_version.is_some(), "a snapshot was used");
            }
            Ok(())
        })?;
    }

    /// Deciders racing on one aggregate with conflict retries never lose an event: every
    /// accepted deposit is in the stream once and the balance is their sum.
    #[test]
    fn concurrent_deciders_never_lose_an_event(
        deciders in 2usize..6,
        each in 1usize..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let (_log, store) = open(dir.path());
            let accounts = Arc::new(
                Repository::<Account, _>::new(store).with_conflict_retries(100),
            );
            let tasks: Vec<_> = (0..deciders)
                .map(|d| {
                    let accounts = accounts.clone();
                    tokio::spawn(async move {
                        let mut retried = 0;
                        for n in 0..each {
                            let done = accounts
                                .execute("shared", &Command::Deposit((d * 100 + n + 1) as i64))
                                .await
                                .unwrap();
                            retried += done.attempts - 1;
                        }
                        retried
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let loaded = accounts.load("shared").await.unwrap();
            let expected: i64 = (0..deciders)
                .flat_map(|d| (0..each).map(move |n| (d * 100 + n + 1) as i64))
                .sum();
            prop_assert_eq!(loaded.version, (deciders * each) as u64);
            prop_assert_eq!(loaded.state.balance, expected);
            let mut seen = loaded.state.movements.clone();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen.len(), deciders * each, "each deposit once");
            Ok(())
        })?;
    }
}
