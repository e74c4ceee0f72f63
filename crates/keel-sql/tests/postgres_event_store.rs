//! The PostgreSQL event store against the event store conformance suite
//! (`KEEL_TEST_POSTGRES_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`), plus what
//! only it has: several processes' committers on one schema. Each test gets a schema of its
//! own. Without the variable the test says it did not run and passes;
//! with it, an unreachable server fails it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_sql::{PgDatabase, PgEventStore};
use keel_store::conformance::{self, event};
use keel_store::{AllFilter, AppendError, EventStore, ExpectedVersion};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    if std::env::var_os("KEEL_TEST_POSTGRES_URL").is_none() {
        eprintln!("postgres event store conformance: not run, KEEL_TEST_POSTGRES_URL is unset");
        return;
    }
    let count = AtomicUsize::new(0);
    conformance::run_all(|| {
        let test = format!("es_{}", count.fetch_add(1, Ordering::Relaxed));
        async move {
            let (url, _) = support::fresh_schema(&test).await.expect("url set");
            let db = PgDatabase::connect(&url).await.expect("connect");
            PgEventStore::open(&db).await.expect("open the event store")
        }
    })
    .await;
}

/// Two stores on one schema stand for two processes: their committers race for positions
/// and stream locks while writers on shared streams conflict and retry, and a reader following
/// `read_all` meanwhile sees every position exactly once, in order (a position committed
/// after a higher one would be skipped and show as a gap).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_schema_commit_positions_in_order() {
    let Some((url, _)) = support::fresh_schema("es_two_stores").await else {
        return;
    };
    let open = || async {
        let db = PgDatabase::connect(&url).await.expect("connect");
        PgEventStore::open(&db).await.expect("open")
    };
    let stores = [open().await, open().await];
    const WRITERS: u64 = 8;
    const PER_WRITER: u64 = 40;
    let total = WRITERS * PER_WRITER;
    let reader = tokio::spawn({
        let store = stores[0].clone();
        async move {
            let mut seen = Vec::new();
            while (seen.len() as u64) < total {
                let from = seen.len() as u64;
                let page = store.read_all(from, 1000, &AllFilter::All).await.unwrap();
                seen.extend(page.iter().map(|e| e.position));
                if page.is_empty() {
                    store
                        .wait_for(from, Duration::from_millis(50))
                        .await
                        .unwrap();
                }
            }
            seen
        }
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = stores[(w % 2) as usize].clone();
            tokio::spawn(async move {
                // Two writers per stream, each appending at the version it read.
                let stream = format!("order-{}", w % 4);
                let mut conflicts = 0;
                for n in 0..PER_WRITER {
                    loop {
                        let version = store.stream_version(&stream).await.unwrap();
                        match store
                            .append(&stream, ExpectedVersion::Exact(version), vec![event(n)])
                            .await
                        {
                            Ok(_) => break,
                            Err(AppendError::Conflict(_)) => conflicts += 1,
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for writer in writers {
        conflicts += writer.await.unwrap();
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen, (0..total).collect::<Vec<_>>(), "dense and in order");
    for s in 0..4 {
        let stream = format!("order-{s}");
        assert_eq!(
            stores[1].stream_version(&stream).await.unwrap(),
            2 * PER_WRITER,
            "no lost update on {stream} ({conflicts} conflicts retried)"
        );
    }
}

/// One batch is one call of `keel_append_events`: each append is checked against the stream
/// as the appends before it in the batch left it, a conflicting append is refused alone with
/// the version it found, and the others take the next positions in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_checks_each_append_against_the_ones_before_it() {
    let Some((url, _)) = support::fresh_schema("es_batch").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.expect("connect");
    let store = PgEventStore::open(&db).await.unwrap();
    // (stream, expected: -1 any, else exact) — as the committer encodes a batch.
    let batch = [
        ("order-1", 0i64),
        ("order-2", 0),
        ("order-1", 1),
        ("order-2", 0),
        ("order-3", -1),
    ];
    let streams: Vec<&str> = batch.iter().map(|(stream, _)| *stream).collect();
    let categories = vec!["order"; batch.len()];
    let expected: Vec<i64> = batch.iter().map(|(_, expected)| *expected).collect();
    let counts = vec![1i32; batch.len()];
    let events: Vec<_> = (0..batch.len() as u64).map(event).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let envelopes: Vec<String> = events
        .iter()
        .map(|e| e.to_structured_json().to_string())
        .collect();
    let rows = db
        .pool()
        .get()
        .await
        .unwrap()
        .query(
            "SELECT actual, first_position FROM keel_append_events($1, $2, $3, $4, $5, $6, 0)",
            &[&streams, &categories, &expected, &counts, &ids, &envelopes],
        )
        .await
        .unwrap();
    let outcomes: Vec<(i64, Option<i64>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        outcomes,
        [
            (0, Some(0)),
            (0, Some(1)),
            (1, Some(2)),
            (1, None),
            (0, Some(3))
        ]
    );
    assert_eq!(store.stream_version("order-1").await.unwrap(), 2);
    assert_eq!(store.stream_version("order-2").await.unwrap(), 1);
    let next = store
        .append("order-3", ExpectedVersion::Exact(1), vec![event(9)])
        .await
        .unwrap();
    assert_eq!(
        (next.version, next.first_position),
        (2, 4),
        "positions continue after the batch, none taken by the refused append"
    );
}

/// Two appends committing out of position order (module docs, "The global order"): one
/// held open in its own transaction takes position 0, the store's next append takes 1 and
/// commits first. A reader between the two must not see 1 — it would move past 0 and never
/// read it — and once 0 commits both come out in order. The store's append must not wait
/// for the one held open (no global lock through the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_flight_holds_readers_back_not_appenders() {
    let Some((url, _)) = support::fresh_schema("es_in_flight").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.expect("connect");
    let store = PgEventStore::open(&db).await.unwrap();
    let mut held = db.pool().get().await.unwrap();
    let tx = held.transaction().await.unwrap();
    let first = event(1);
    let row = tx
        .query_one(
            "SELECT first_position FROM keel_append_events(ARRAY['order-1'], ARRAY['order'],
                ARRAY[-1::BIGINT], ARRAY[1], ARRAY[$1], ARRAY[$2], 0)",
            &[&first.id, &first.to_structured_json().to_string()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(0));

    let second = tokio::time::timeout(
        Duration::from_secs(10),
        store.append("order-2", ExpectedVersion::NoStream, vec![event(2)]),
    )
    .await
    .expect("an append does not wait for another stream's append in flight")
    .unwrap();
    assert_eq!(second.first_position, 1);
    let orders = AllFilter::Category("order".into());
    for filter in [&AllFilter::All, &orders] {
        let early = store.read_all(0, 10, filter).await.unwrap();
        assert!(
            early.is_empty(),
            "position 1 is held back while 0 is in flight: {:?}",
            early.iter().map(|e| e.position).collect::<Vec<_>>()
        );
    }
    assert_eq!(store.head().await.unwrap(), 0, "the head waits for 0 too");

    tx.commit().await.unwrap();
    store.wait_for(1, Duration::from_secs(10)).await.unwrap();
    let all = store.read_all(0, 10, &AllFilter::All).await.unwrap();
    let read: Vec<(u64, &str)> = all
        .iter()
        .map(|e| (e.position, e.stream.as_str()))
        .collect();
    assert_eq!(read, [(0, "order-1"), (1, "order-2")], "both, in order");
}

/// A transaction in flight that appends nothing — a report, another service's write, in any
/// database of the server — holds no reader back: the watermark waits for appends in flight
/// only (module docs, "The global order"). Readers used to stop at the server's oldest
/// transaction with an id until it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_transaction_that_appends_nothing_holds_no_reader_back() {
    let Some((url, _)) = support::fresh_schema("es_long_tx").await else {
        return;
    };
    let db = PgDatabase::connect(&url).await.expect("connect");
    let store = PgEventStore::open(&db).await.unwrap();
    let mut held = db.pool().get().await.unwrap();
    let tx = held.transaction().await.unwrap();
    tx.query_one("SELECT pg_current_xact_id()", &[])
        .await
        .expect("a transaction id, and no append");

    store
        .append("order-1", ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    let head = store.wait_for(0, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        head, 1,
        "the append is read while the other transaction is open"
    );
    let orders = AllFilter::Category("order".into());
    for filter in [&AllFilter::All, &orders] {
        let read = store.read_all(0, 10, filter).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.position).collect::<Vec<_>>(),
            [0],
            "read past the open transaction"
        );
    }
    tx.rollback().await.unwrap();
}

/// Stores written by older schemas are migrated on open: appends continue after the stored
/// events and those stay readable. Each case takes a fresh store back to an old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_stores_continue_their_positions() {
    const V6_UNDONE: &str = "DROP SEQUENCE keel_event_position_seq;
        ALTER TABLE keel_events DROP COLUMN xid;
        DELETE FROM keel_event_store_migrations WHERE version = 6;";
    let cases = [
        // Version 1: appends under an advisory lock, no positions row.
        (
            "es_v1",
            "DROP TABLE keel_event_positions;
             DELETE FROM keel_event_store_migrations WHERE version >= 2;",
        ),
        // Version 5: positions from the positions row, left at the next position.
        (
            "es_v5",
            "UPDATE keel_event_positions SET next_position = 2;",
        ),
    ];
    for (schema, downgrade) in cases {
        let Some((url, _)) = support::fresh_schema(schema).await else {
            return;
        };
        let db = PgDatabase::connect(&url).await.expect("connect");
        let store = PgEventStore::open(&db).await.unwrap();
        store
            .append(
                "order-1",
                ExpectedVersion::NoStream,
                vec![event(1), event(2)],
            )
            .await
            .unwrap();
        drop(store);
        db.pool()
            .get()
            .await
            .unwrap()
            .batch_execute(&format!("{V6_UNDONE}{downgrade}"))
            .await
            .unwrap();
        let store = PgEventStore::open(&db).await.unwrap();
        let appended = store
            .append("order-2", ExpectedVersion::NoStream, vec![event(3)])
            .await
            .unwrap();
        assert_eq!(
            appended.first_position, 2,
            "{schema}: after the stored events"
        );
        store.wait_for(2, Duration::from_secs(10)).await.unwrap();
        let positions: Vec<u64> = store
            .read_all(0, 10, &AllFilter::All)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(positions, [0, 1, 2], "{schema}");
    }
}
