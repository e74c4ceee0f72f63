//! SQLite projections fed from an event store: model and checkpoint commit together (a
//! failing event leaves both at the batch start), rebuild gives the identical model, a
//! restarted projector resumes at its checkpoint, and `wait_for` gives read-your-writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::Event;
use keel_projection::{ProjectionError, ProjectionStore, Projector};
use keel_sql::{SqliteEventStore, SqliteProjection};
use keel_store::{AllFilter, EventStore, ExpectedVersion};

/// Order totals: one row per order stream, the sum of the amounts in its events, and the
/// number of events — a model where a lost or doubled event shows.
fn totals(path: &std::path::Path, fail_at: Arc<AtomicU64>) -> SqliteProjection {
    SqliteProjection::open(
        path,
        "order-totals",
        |connection| {
            connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS order_totals (
                    stream TEXT PRIMARY KEY, total INTEGER NOT NULL, events INTEGER NOT NULL)",
            )
        },
        move |tx, event| {
            if event.position == fail_at.load(Ordering::SeqCst) {
                return Err(format!("refusing position {}", event.position).into());
            }
            let amount: i64 = serde_json::from_slice(event.event.data.as_deref().unwrap())?;
            tx.execute(
                "INSERT INTO order_totals (stream, total, events) VALUES (?1, ?2, 1)
                 ON CONFLICT (stream) DO UPDATE SET total = total + ?2, events = events + 1",
                (&event.stream, amount),
            )?;
            Ok(())
        },
        |tx| {
            tx.execute("DELETE FROM order_totals", [])?;
            Ok(())
        },
    )
    .unwrap()
}

async fn dump(model: &SqliteProjection) -> Vec<(String, i64, i64)> {
    model
        .query(|connection| {
            connection
                .prepare("SELECT stream, total, events FROM order_totals ORDER BY stream")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .await
        .unwrap()
}

async fn applied_events(model: &SqliteProjection) -> i64 {
    dump(model).await.iter().map(|row| row.2).sum()
}

fn amount(n: u64) -> Event {
    Event::new("/orders", "order.amount").with_data("application/json", n.to_string().into_bytes())
}

async fn fill(store: &SqliteEventStore, events: u64) {
    for n in 0..events {
        store
            .append(
                &format!("order-{}", n % 7),
                ExpectedVersion::Any,
                vec![amount(n)],
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_keeps_model_and_checkpoint_together_and_rebuild_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db")).unwrap();
    fill(&store, 300).await;
    let fail_at = Arc::new(AtomicU64::new(250));
    let model = totals(&dir.path().join("model.db"), fail_at.clone());
    let projector = Projector::new(store.clone(), model.clone(), AllFilter::All)
        .await
        .unwrap()
        .with_batch_events(100);

    let error = projector.catch_up(|_| {}).await.unwrap_err();
    assert!(
        matches!(&error, ProjectionError::Apply { position: 250, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("position 250"), "{error}");
    // Batches [0,100) and [100,200) committed; [200,300) failed at 250 and left nothing,
    // neither model rows nor checkpoint.
    assert_eq!(model.checkpoint().await.unwrap(), 200);
    assert_eq!(
        applied_events(&model).await,
        200,
        "model holds exactly the checkpointed events"
    );

    fail_at.store(u64::MAX, Ordering::SeqCst);
    // A new projector resumes from the checkpoint, as after a restart.
    let projector = Projector::new(store.clone(), model.clone(), AllFilter::All)
        .await
        .unwrap()
        .with_batch_events(100);
    assert_eq!(projector.position(), 200);
    assert_eq!(projector.catch_up(|_| {}).await.unwrap(), 100);
    let first = dump(&model).await;
    assert_eq!(first.iter().map(|r| r.2).sum::<i64>(), 300);
    assert_eq!(
        first.iter().map(|r| r.1).sum::<i64>(),
        (0..300).sum::<i64>()
    );

    let mut reports = Vec::new();
    let applied = projector.rebuild(|p| reports.push(p)).await.unwrap();
    assert_eq!(applied, 300);
    assert_eq!(
        dump(&model).await,
        first,
        "rebuild gives the identical model"
    );
    assert_eq!(reports.last().unwrap().position, 300);
    assert!(
        reports.windows(2).all(|w| w[0].applied < w[1].applied),
        "progress grows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_reads_your_own_write_while_running_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db")).unwrap();
    let model = totals(
        &dir.path().join("events.db"),
        Arc::new(AtomicU64::new(u64::MAX)),
    );
    let projector = Arc::new(
        Projector::new(
            store.clone(),
            model.clone(),
            AllFilter::Category("order".into()),
        )
        .await
        .unwrap(),
    );
    let running = tokio::spawn({
        let projector = projector.clone();
        async move { projector.run().await }
    });
    for n in 1..=20u64 {
        // Events of another category must not hold the projection back.
        store
            .append("payment-1", ExpectedVersion::Any, vec![amount(1000)])
            .await
            .unwrap();
        let appended = store
            .append("order-1", ExpectedVersion::Any, vec![amount(n)])
            .await
            .unwrap();
        projector
            .wait_for(appended.last_position, Duration::from_secs(20))
            .await
            .unwrap();
        let rows = dump(&model).await;
        assert_eq!(
            rows,
            vec![("order-1".to_owned(), (1..=n as i64).sum(), n as i64)]
        );
    }
    let head = store.head().await.unwrap();
    let error = projector
        .wait_for(head + 5, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("order-totals"), "{error}");
    running.abort();
}
