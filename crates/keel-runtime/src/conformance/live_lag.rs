//! The lag check of a running group: the transport's own metrics, scraped while the group's
//! handler is held on a backlog, report the age of the oldest unhandled event growing, and
//! 0 once the group caught up. Kept apart from `conformance.rs` (which it borrows helpers
//! from): the stopped-group gauge check there reads the gauges a transport measures through
//! its admin port, while this one also holds for gauges measured by the running members.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{
    Harness, WAIT, create_topic, event, key_seq, lag_gauge, name, publish, route, scrape, start,
    until,
};
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::router::Router;

/// Events published while the handler is held: the lag in events the gauge must show.
const BACKLOG: u32 = 5;

/// A running group handles one event and commits (a series with lag 0); then its handler
/// holds every further event: the partition's lag in seconds goes above 0 and keeps
/// growing while its lag in events is the backlog; once the handler goes on and the group
/// handled everything, both are 0.
pub async fn lag_in_seconds_grows_while_a_running_group_is_held<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 1).await;
    let (open, opened) = tokio::sync::watch::channel(false);
    let handled = Arc::new(AtomicU32::new(0));
    let handler = Handler::raw("held", {
        let handled = handled.clone();
        move |event, _| {
            let (_, seq) = key_seq(&event);
            let (handled, mut opened) = (handled.clone(), opened.clone());
            async move {
                if seq > 0 {
                    // The sender lives until the check ends.
                    let _ = opened.wait_for(|open| *open).await;
                }
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    });
    let transport = harness.transport();
    let metrics = transport.metrics().clone();
    let handle = start(Router::new(transport).route(route(harness, "orders", "billing", handler)));
    let lag = Lag {
        metrics,
        topic: name(harness, "orders"),
        group: name(harness, "billing"),
    };

    publish(harness, "orders", [event("k", 0)]).await;
    until("the first event handled", || {
        handled.load(Ordering::SeqCst) == 1
    })
    .await;
    lag.wait_for("a caught-up series", |events, seconds| {
        events == 0.0 && seconds == 0.0
    })
    .await;

    publish(harness, "orders", (1..=BACKLOG).map(|seq| event("k", seq))).await;
    let first = lag
        .wait_for("the backlog and its age", |events, seconds| {
            events == f64::from(BACKLOG) && seconds > 0.0
        })
        .await;
    lag.wait_for("the age to grow while the handler is held", |_, seconds| {
        seconds > first
    })
    .await;

    open.send_replace(true);
    until("the backlog handled", || {
        handled.load(Ordering::SeqCst) == 1 + BACKLOG
    })
    .await;
    lag.wait_for("lag 0 once caught up", |events, seconds| {
        events == 0.0 && seconds == 0.0
    })
    .await;
    handle.shutdown().await;
}

/// The lag gauges of the check's group in its one partition.
struct Lag {
    metrics: Metrics,
    topic: String,
    group: String,
}

impl Lag {
    /// Scrapes until `done(events, seconds)` holds for the partition's two lag series and
    /// returns the seconds; fails after [`WAIT`] with `what` and the last scrape.
    async fn wait_for(&self, what: &str, done: impl Fn(f64, f64) -> bool) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = scrape(&self.metrics).await;
            let series = |unit| lag_gauge(&text, unit, &self.topic, &self.group, 0);
            if let (Some(events), Some(seconds)) = (series("events"), series("seconds"))
                && done(events, seconds)
            {
                return seconds;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
