//! One demo run: opens the services this process runs with their databases under a data
//! directory, wires their routes, places the orders (the order service's process does),
//! waits until every consumer has caught up, and counts; or, in a process without the
//! order service, runs the services until told to stop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel::projection::Progress;
use keel::runtime::{GroupPolicy, Route, RouterHandle};

use crate::backbone::Backbone;
use crate::error::DemoError;
use crate::order::{OrderCounts, OrderData, OrderStatus, Orders};
use crate::services::{self, SKUS, Service, Settings};
use crate::summary::Summary;
use crate::tally::{Counts, Tally};
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

/// Runs the whole order system once in this process, on the embedded log in
/// `<data dir>/log`, and returns what each service counted. The self-check is
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
    let backbone = Backbone::embedded(&config.data_dir.join("log"))?;
    drive(config, &backbone, &Service::ALL, timeline, on_rebuild).await
}

/// Runs `services`, the order service among them, on `backbone`, places the orders and
/// returns the summary as [`run`] does. The other services may run in other processes
/// ([`serve`]) on the same backbone, with the same data directory.
pub async fn drive(
    config: &DemoConfig,
    backbone: &Backbone,
    services: &[Service],
    timeline: Timeline,
    on_rebuild: impl FnMut(Progress),
) -> Result<Summary, DemoError> {
    config.validate()?;
    if !services.contains(&Service::Orders) {
        return Err(DemoError::Setup(
            "the process that places the orders runs the order service".into(),
        ));
    }
    let opened = open(config, backbone, services, &timeline).await?;
    let orders = opened.orders.expect("the order service was opened");
    let tally = Tally::open(&config.data_dir).await?;
    let routes = opened.routes.into_iter().chain(tally.routes());
    let router = start(backbone, routes, &timeline)?;
    let projector = {
        let summary = orders.summary.clone();
        tokio::spawn(async move { summary.run().await })
    };

    let (confirmed_aggregates, poison_orders) = place(config, &orders).await?;
    let (counted_orders, counts) = settle(&orders, &tally).await?;
    router.shutdown().await;
    opened.relays.shutdown().await;
    projector.abort();
    orders.summary.rebuild(on_rebuild).await?;
    let rebuilt = orders.counts().await?;
    Ok(Summary {
        orders: counted_orders,
        confirmed_aggregates,
        charges: counts.charges,
        reservations: counts.reservations,
        shipments: counts.shipments,
        declines: counts.declines,
        emails: counts.emails,
        dead_letters: counts.dead_letters,
        poison_orders,
        requested: config.orders as u64,
        rebuilt,
    })
}

/// Runs `services` (not the order service: that one runs where orders are placed, see
/// [`drive`]) on `backbone` until `stop` completes, then stops their routes gracefully.
pub async fn serve(
    config: &DemoConfig,
    backbone: &Backbone,
    services: &[Service],
    timeline: Timeline,
    stop: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    if services.contains(&Service::Orders) || services.is_empty() {
        return Err(DemoError::Setup(
            "serve runs services other than the order service (which runs where orders are placed)"
                .into(),
        ));
    }
    let opened = open(config, backbone, services, &timeline).await?;
    let router = start(backbone, opened.routes, &timeline)?;
    stop.await;
    router.shutdown().await;
    opened.relays.shutdown().await;
    Ok(())
}

/// Opens `services` with their databases under the data directory.
async fn open(
    config: &DemoConfig,
    backbone: &Backbone,
    services: &[Service],
    timeline: &Timeline,
) -> Result<services::Opened, DemoError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| DemoError::Setup(e.to_string()))?;
    let settings = Settings {
        payment_outage: config.payment_outage,
        decline_rate: config.decline_rate,
    };
    services::open(services, &config.data_dir, backbone, &settings, timeline).await
}

/// How long a service process may be silent before its partitions go to another member
/// (or to itself, restarted): Kafka's shortest by default (a broker's
/// `group.min.session.timeout.ms`), so a service killed in the demo is replaced sooner than
/// after the usual ten seconds.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Starts `routes` on `backbone`; dead letters are reported on the timeline.
fn start(
    backbone: &Backbone,
    routes: impl IntoIterator<Item = Route>,
    timeline: &Timeline,
) -> Result<RouterHandle, DemoError> {
    let alerts = timeline.clone();
    let router = routes
        .into_iter()
        .fold(backbone.router(), |router, route| {
            router.route(route.with_group_policy(GroupPolicy {
                session_timeout: SESSION_TIMEOUT,
                heartbeat_interval: SESSION_TIMEOUT / 3,
                ..GroupPolicy::default()
            }))
        })
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
    Ok(router)
}

/// Places the orders, each on its own task, and waits for every saga to end. Returns the
/// orders whose aggregate ended confirmed and the orders given an invalid address.
async fn place(config: &DemoConfig, orders: &Arc<Orders>) -> Result<(u64, u64), DemoError> {
    let mut placing = Vec::new();
    let mut poison_orders = 0;
    for n in 1..=config.orders {
        let poisoned = config.poison_every > 0 && n % config.poison_every == 0;
        poison_orders += u64::from(poisoned);
        let data = OrderData {
            order_id: format!("{n:04}"),
            sku: SKUS[n % SKUS.len()].to_owned(),
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
    Ok((confirmed_aggregates, poison_orders))
}

/// Waits (bounded) until every reaction has caught up with the sagas, then counts. A
/// service whose database cannot be read yet (its process not started) counts as behind.
async fn settle(orders: &Orders, tally: &Tally) -> Result<(OrderCounts, Counts), DemoError> {
    orders.caught_up(SETTLE_TIMEOUT).await?;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let counted = (orders.counts().await?, tally.read().await);
        if let (order_counts, Ok(c)) = &counted {
            let settled = c.reservations.held == 0
                && c.emails + c.dead_letters == c.shipments + c.declines
                && c.declines + c.charges >= order_counts.confirmed;
            if settled {
                return Ok((*order_counts, *c));
            }
        }
        if Instant::now() >= deadline {
            return Ok((counted.0, counted.1?));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
