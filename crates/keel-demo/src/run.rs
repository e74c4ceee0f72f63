//! One demo run: opens the embedded log and the services' databases under a data
//! directory, wires the routes, places the orders, waits until every consumer has caught
//! up, and counts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use keel::log::{Log, TopicConfig};
use keel::projection::Progress;
use keel::runtime::admin::dead_letters::{
    DeadLetterFilter, LIST_LIMIT_MAX, dead_letter_topics, dead_letters,
};
use keel::runtime::{EmbeddedBus, Router};
use keel::store::{EmbeddedStore, EventStore};

use crate::error::DemoError;
use crate::events::{PaymentDeclined, TOPICS};
use crate::inventory::Inventory;
use crate::notify::{Analytics, Email};
use crate::order::{OrderData, OrderStatus, Orders};
use crate::payment::Payment;
use crate::shipping::Shipping;
use crate::summary::Summary;
use crate::timeline::Timeline;

/// Most orders one run may place.
pub const ORDERS_MAX: usize = 100_000;
/// How long the run waits for consumers to catch up after the last saga ended.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Where the log and the databases go (use a fresh directory per run).
    pub data_dir: PathBuf,
    /// Orders to place, 1..=[`ORDERS_MAX`].
    pub orders: usize,
    /// How long the payment provider is down from the first charge asked of it.
    pub payment_outage: Duration,
    /// Share of cards declined, 0.0..=1.0.
    pub decline_rate: f64,
    /// Delay between two orders being placed.
    pub place_interval: Duration,
    /// Every n-th order gets an invalid email address (a poison event); 0: none.
    pub poison_every: usize,
}

impl DemoConfig {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), DemoError> {
        if !(1..=ORDERS_MAX).contains(&self.orders) {
            return Err(DemoError::Setup(format!(
                "orders: {} is not in 1..={ORDERS_MAX}",
                self.orders
            )));
        }
        if !(0.0..=1.0).contains(&self.decline_rate) {
            return Err(DemoError::Setup(format!(
                "decline rate: {} is not in 0.0..=1.0",
                self.decline_rate
            )));
        }
        Ok(())
    }
}

/// Runs the order system once and returns what each service counted. The self-check is
/// [`Summary::violations`].
///
/// After the count, the order-summary projection is rebuilt from the event store (reporting
/// to `on_rebuild`) and counted again: a rebuild must give the same model.
pub async fn run(
    config: &DemoConfig,
    timeline: Timeline,
    on_rebuild: impl FnMut(Progress),
) -> Result<Summary, DemoError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| DemoError::Setup(e.to_string()))?;
    let dir = config.data_dir.as_path();
    let log = Arc::new(Log::open(dir.join("log"))?);
    for topic in TOPICS {
        if log.topic(topic).is_none() {
            log.create_topic(topic, TopicConfig::new(3))?;
        }
    }
    let bus = EmbeddedBus::new(log.clone());
    let store = EmbeddedStore::open(&log)?;

    let publisher = bus.publisher();
    let skus = ["keyboard", "mouse", "screen"];
    let stock = config.orders as i64 * 3;
    let inventory = Inventory::open(dir, &publisher, &skus, stock, timeline.clone()).await?;
    let payment = Payment::open(
        dir,
        &publisher,
        config.payment_outage,
        config.decline_rate,
        timeline.clone(),
    )?;
    let shipping = Shipping::open(dir, &publisher, timeline.clone())?;
    let email = Email::open(dir, timeline.clone()).await?;
    let analytics = Analytics::open(dir).await?;
    let orders = Arc::new(
        Orders::open(
            dir,
            store.clone(),
            publisher,
            config.payment_outage,
            timeline.clone(),
        )
        .await?,
    );

    let alerts = timeline.clone();
    let routes = [
        inventory.routes(),
        payment.routes(),
        shipping.routes(),
        email.routes(),
        analytics.routes(),
        orders.routes(),
    ];
    let router = routes
        .into_iter()
        .flatten()
        .fold(Router::new(&bus), Router::route)
        .on_dead_letter(move |dead| {
            let subject = dead.event_id.as_deref().unwrap_or("?");
            alerts.note(
                "-",
                "alert",
                format!(
                    "dead letter in {} (event {subject})",
                    dead.dead_letter_topic
                ),
            );
        })
        .start()?;

    let projector = {
        let summary = orders.summary.clone();
        tokio::spawn(async move { summary.run().await })
    };

    let mut placing = Vec::new();
    let mut poison_orders = 0;
    for n in 1..=config.orders {
        let poisoned = config.poison_every > 0 && n % config.poison_every == 0;
        poison_orders += u64::from(poisoned);
        let data = OrderData {
            order_id: format!("{n:04}"),
            sku: skus[n % skus.len()].to_owned(),
            qty: 1 + (n % 2) as i64,
            amount_cents: 1_000 + (n as i64 * 37) % 9_000,
            email: if poisoned {
                format!("customer-{n}-at-example.com")
            } else {
                format!("customer-{n}@example.com")
            },
        };
        let orders = orders.clone();
        placing.push(tokio::spawn(async move { orders.place(data).await }));
        tokio::time::sleep(config.place_interval).await;
    }
    let mut confirmed_aggregates = 0;
    for task in placing {
        let status = task
            .await
            .map_err(|e| DemoError::Service(e.to_string()))??;
        confirmed_aggregates += u64::from(status == OrderStatus::Confirmed);
    }

    let summary = settle(
        &orders, &store, &inventory, &payment, &shipping, &email, &analytics, &log,
    )
    .await?;
    router.shutdown().await;
    projector.abort();
    orders.summary.rebuild(on_rebuild).await?;
    let rebuilt = orders.counts().await?;
    Ok(Summary {
        rebuilt,
        confirmed_aggregates,
        poison_orders,
        requested: config.orders as u64,
        ..summary
    })
}

/// Waits (bounded) until every reaction has caught up with the sagas, then counts.
#[allow(clippy::too_many_arguments)]
async fn settle(
    orders: &Orders,
    store: &EmbeddedStore,
    inventory: &Inventory,
    payment: &Payment,
    shipping: &Shipping,
    email: &Email,
    analytics: &Analytics,
    log: &Log,
) -> Result<Summary, DemoError> {
    let head = store
        .head()
        .await
        .map_err(|e| DemoError::Service(e.to_string()))?;
    orders
        .summary
        .wait_for(head.saturating_sub(1), SETTLE_TIMEOUT)
        .await
        .map_err(|e| DemoError::Service(e.to_string()))?;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let summary = Summary {
            orders: orders.counts().await?,
            charges: payment.charges().await?,
            reservations: inventory.counts().await?,
            shipments: shipping.shipments().await?,
            declines: analytics.count::<PaymentDeclined>().await?,
            emails: email.sent().await?,
            dead_letters: dead_letters_stored(log)?,
            ..Summary::default()
        };
        let settled = summary.reservations.held == 0
            && summary.emails + summary.dead_letters == summary.shipments + summary.declines
            && summary.declines + summary.charges >= summary.orders.confirmed;
        if settled || Instant::now() >= deadline {
            return Ok(summary);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events dead-lettered by the routes, counted once each however often they were stored (a
/// fact announced again and refused again is one dead letter).
fn dead_letters_stored(log: &Log) -> Result<u64, DemoError> {
    let mut events = HashSet::new();
    for topic in dead_letter_topics(log) {
        let stored = dead_letters(
            log,
            topic.name(),
            &DeadLetterFilter::default(),
            LIST_LIMIT_MAX,
        )
        .map_err(|e| DemoError::Service(e.to_string()))?;
        events.extend(stored.into_iter().map(|dead| dead.event_id));
    }
    Ok(events.len() as u64)
}
