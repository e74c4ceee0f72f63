//! The event store conformance suite: one set of checks every [`EventStore`] backend must
//! pass (embedded here; SQLite and PostgreSQL in `keel-sql`). Enabled by the `conformance`
//! feature so backends in other crates can run it from their tests.
//!
//! Each check gets a fresh, empty store from the caller's factory and panics with a message
//! naming the check and what differed. Capability differences between backends (there are
//! none in the checked behaviour) would be listed here.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::Event;

use crate::error::AppendError;
use crate::store::{AllFilter, EventStore};
use crate::stream::{Direction, ExpectedVersion, RecordedEvent, Snapshot};
use crate::subscription::Subscription;

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    append_and_read_stream(&make().await).await;
    expected_versions(&make().await).await;
    bad_input_stores_nothing(&make().await).await;
    read_all_and_categories(&make().await).await;
    snapshots(&make().await).await;
    wait_for_wakes_on_append(Arc::new(make().await)).await;
    concurrent_appenders_lose_nothing(Arc::new(make().await)).await;
    subscription_hand_over(Arc::new(make().await)).await;
}

/// A test event with `n` as its JSON data.
pub fn event(n: u64) -> Event {
    Event::new("/conformance", "conformance.happened")
        .with_data("application/json", n.to_string().into_bytes())
}

fn data(event: &RecordedEvent) -> u64 {
    let data = event.event.data.as_deref().expect("data");
    std::str::from_utf8(data).unwrap().parse().unwrap()
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

/// Appends and reads one stream forward and backward, from versions, with limits.
pub async fn append_and_read_stream<S: EventStore>(store: &S) {
    let sent: Vec<Event> = (1..=3).map(event).collect();
    let appended = store
        .append("order-1", ExpectedVersion::NoStream, sent.clone())
        .await
        .expect("append to a new stream");
    assert_eq!(appended.version, 3, "version after 3 events");
    assert_eq!(appended.last_position - appended.first_position, 2);
    assert_eq!(store.stream_version("order-1").await.unwrap(), 3);
    assert_eq!(store.stream_version("order-404").await.unwrap(), 0);

    let all = store
        .read_stream("order-1", 1, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(versions(&all), [1, 2, 3], "forward from 1");
    for (recorded, sent) in all.iter().zip(&sent) {
        assert_eq!(recorded.event.id, sent.id, "event id kept");
        assert_eq!(recorded.event.data, sent.data, "data kept");
        assert_eq!(recorded.stream, "order-1");
    }
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (appended.first_position..=appended.last_position).collect::<Vec<_>>()
    );

    let read = |from, direction, max| store.read_stream("order-1", from, direction, max);
    assert_eq!(
        versions(&read(2, Direction::Forward, 1).await.unwrap()),
        [2]
    );
    assert_eq!(
        versions(&read(4, Direction::Forward, 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        versions(&read(u64::MAX, Direction::Backward, 10).await.unwrap()),
        [3, 2, 1]
    );
    assert_eq!(
        versions(&read(2, Direction::Backward, 10).await.unwrap()),
        [2, 1]
    );
    assert_eq!(
        versions(&read(3, Direction::Backward, 1).await.unwrap()),
        [3]
    );
    let absent = store
        .read_stream("order-404", 1, Direction::Forward, 10)
        .await
        .unwrap();
    assert!(absent.is_empty(), "an absent stream reads as empty");
}

/// NoStream, Exact and Any; a conflict names stream, expected and actual, and stores nothing.
pub async fn expected_versions<S: EventStore>(store: &S) {
    store
        .append("cart-1", ExpectedVersion::Exact(0), vec![event(1)])
        .await
        .expect("Exact(0) on a new stream");
    let conflict = |result: Result<_, AppendError>| match result {
        Err(AppendError::Conflict(conflict)) => conflict,
        other => panic!("expected a conflict, got {other:?}"),
    };
    let refused = conflict(
        store
            .append("cart-1", ExpectedVersion::NoStream, vec![event(2)])
            .await,
    );
    assert_eq!(
        (refused.expected, refused.actual),
        (ExpectedVersion::NoStream, 1)
    );
    let refused = conflict(
        store
            .append("cart-1", ExpectedVersion::Exact(5), vec![event(2)])
            .await,
    );
    let message = refused.to_string();
    for part in ["cart-1", "expected version 5", "at version 1"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    assert_eq!(
        store.stream_version("cart-1").await.unwrap(),
        1,
        "refused appends store nothing"
    );
    store
        .append(
            "cart-1",
            ExpectedVersion::Exact(1),
            vec![event(2), event(3)],
        )
        .await
        .expect("Exact(current)");
    let appended = store
        .append("cart-1", ExpectedVersion::Any, vec![event(4)])
        .await
        .expect("Any");
    assert_eq!(appended.version, 4);
    let events = store
        .read_stream("cart-1", 1, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(events.iter().map(data).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

/// Invalid stream ids, empty appends and invalid events are refused with nothing stored.
pub async fn bad_input_stores_nothing<S: EventStore>(store: &S) {
    let check = |result: Result<_, AppendError>, what: &str, expected: &str| {
        let error = result.expect_err(what);
        assert!(error.to_string().contains(expected), "{what}: {error}");
        assert!(!error.to_string().contains('\n'), "{what}: one line");
    };
    check(
        store.append("", ExpectedVersion::Any, vec![event(1)]).await,
        "empty stream id",
        "invalid stream id",
    );
    check(
        store.append("a-1", ExpectedVersion::Any, vec![]).await,
        "no events",
        "holds 0 events",
    );
    let invalid = Event::new("", "x");
    check(
        store
            .append("a-1", ExpectedVersion::Any, vec![event(1), invalid])
            .await,
        "invalid event",
        "invalid event 1",
    );
    assert_eq!(store.stream_version("a-1").await.unwrap(), 0);
    assert_eq!(store.head().await.unwrap(), 0, "nothing stored");
}

/// Global order across streams, paging by position, and category reads.
pub async fn read_all_and_categories<S: EventStore>(store: &S) {
    let plan = [
        ("order-1", 1),
        ("payment-1", 2),
        ("order-2", 3),
        ("order-1", 4),
        ("orderline-1", 5),
    ];
    let mut last = 0;
    for (stream, n) in plan {
        last = store
            .append(stream, ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap()
            .last_position;
    }
    // Reading one's own writes goes through `wait_for` (the port's contract): a backend's
    // readers may wait for other transactions in flight on the server.
    store.wait_for(last, Duration::from_secs(10)).await.unwrap();
    let all = store.read_all(0, 100, &AllFilter::All).await.unwrap();
    assert_eq!(all.iter().map(data).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase"
    );
    assert_eq!(
        store.head().await.unwrap(),
        all[4].position + 1,
        "head is one past the last"
    );

    let page = store
        .read_all(all[1].position + 1, 2, &AllFilter::All)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(data).collect::<Vec<_>>(),
        [3, 4],
        "paging by position"
    );

    let orders = AllFilter::Category("order".into());
    let category = store.read_all(0, 100, &orders).await.unwrap();
    assert_eq!(
        category.iter().map(data).collect::<Vec<_>>(),
        [1, 3, 4],
        "category 'order' is the prefix before '-', not a string prefix"
    );
    let after = store
        .read_all(category[1].position + 1, 100, &orders)
        .await
        .unwrap();
    assert_eq!(after.iter().map(data).collect::<Vec<_>>(), [4]);
    let none = store
        .read_all(all[4].position + 1, 100, &AllFilter::All)
        .await
        .unwrap();
    assert!(none.is_empty(), "reading at the head");
}

/// The latest snapshot wins; an older one never replaces a newer one.
pub async fn snapshots<S: EventStore>(store: &S) {
    assert_eq!(store.load_snapshot("order-1").await.unwrap(), None);
    let snapshot = |version: u64| Snapshot {
        stream: "order-1".into(),
        version,
        state_version: 2,
        state: format!("state at {version}").into_bytes(),
    };
    store.save_snapshot(snapshot(5)).await.unwrap();
    assert_eq!(
        store.load_snapshot("order-1").await.unwrap(),
        Some(snapshot(5))
    );
    store.save_snapshot(snapshot(3)).await.unwrap();
    assert_eq!(
        store.load_snapshot("order-1").await.unwrap(),
        Some(snapshot(5)),
        "older ignored"
    );
    store.save_snapshot(snapshot(8)).await.unwrap();
    assert_eq!(
        store.load_snapshot("order-1").await.unwrap(),
        Some(snapshot(8))
    );
    assert_eq!(store.load_snapshot("order-2").await.unwrap(), None);
}

/// `wait_for` returns as soon as an append passes the position, long before its timeout.
pub async fn wait_for_wakes_on_append<S: EventStore>(store: Arc<S>) {
    let head = store.head().await.unwrap();
    assert_eq!(
        store
            .wait_for(head, Duration::from_millis(10))
            .await
            .unwrap(),
        head,
        "times out at the head"
    );
    let started = Instant::now();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for(head, Duration::from_secs(30)).await })
    };
    store
        .append("w-1", ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    let seen = waiter.await.unwrap().unwrap();
    assert!(seen > head, "woken past {head}: {seen}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the append, not the timeout"
    );
}

/// Many writers on one stream with expected versions: no lost update, conflicts reported,
/// versions dense, each event once.
pub async fn concurrent_appenders_lose_nothing<S: EventStore>(store: Arc<S>) {
    const WRITERS: u64 = 6;
    const EACH: u64 = 15;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for n in 0..EACH {
                loop {
                    let version = store.stream_version("counter-1").await.unwrap();
                    match store
                        .append(
                            "counter-1",
                            ExpectedVersion::Exact(version),
                            vec![event(writer * 1000 + n)],
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(AppendError::Conflict(c)) => {
                            assert_eq!(c.stream, "counter-1");
                            assert_ne!(c.actual, version, "a conflict reports the actual version");
                            conflicts += 1;
                        }
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = store
        .read_stream("counter-1", 1, Direction::Forward, 10_000)
        .await
        .unwrap();
    assert_eq!(
        versions(&events),
        (1..=WRITERS * EACH).collect::<Vec<_>>(),
        "dense versions"
    );
    let distinct: HashSet<u64> = events.iter().map(data).collect();
    assert_eq!(
        distinct.len() as u64,
        WRITERS * EACH,
        "every event exactly once"
    );
}

/// A subscription started while appends continue delivers every event once, in order,
/// across the hand-over from catch-up to live.
pub async fn subscription_hand_over<S: EventStore>(store: Arc<S>) {
    const BEFORE: u64 = 150;
    const DURING: u64 = 150;
    for n in 0..BEFORE {
        let stream = format!("sub-{}", n % 3);
        store
            .append(&stream, ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
    }
    let appender = {
        let store = store.clone();
        tokio::spawn(async move {
            for n in BEFORE..BEFORE + DURING {
                let stream = format!("sub-{}", n % 3);
                let batch = vec![event(n)];
                store
                    .append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .unwrap();
                if n % 25 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut subscription = Subscription::new(&*store, 0, AllFilter::All);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.len() as u64) < BEFORE + DURING {
        assert!(
            Instant::now() < deadline,
            "subscription stalled at {}",
            seen.len()
        );
        let event = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .expect("next event within 30 s")
            .unwrap();
        seen.push(event);
    }
    appender.await.unwrap();
    assert_eq!(
        seen.iter().map(data).collect::<Vec<_>>(),
        (0..BEFORE + DURING).collect::<Vec<_>>(),
        "every event once, in append order"
    );
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let extra = store
        .read_all(subscription.position(), 10, &AllFilter::All)
        .await
        .unwrap();
    assert!(extra.is_empty(), "nothing after the last delivered event");

    let mut filtered = Subscription::new(&*store, 0, AllFilter::Category("sub".into()));
    for n in 0..BEFORE + DURING {
        assert_eq!(
            data(&filtered.next().await.unwrap()),
            n,
            "category subscription"
        );
    }
}
