//! Which services one process runs: all six (`keel demo`), or one of them against a shared
//! transport (`keel demo --brokers … --service …`), each with its own database under the
//! data directory.
//!
//! Not here: what a service does (its own module), placing orders and the self-check
//! (`run.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keel::runtime::Route;

use crate::backbone::Backbone;
use crate::database::Relays;
use crate::error::DemoError;
use crate::inventory::Inventory;
use crate::notify::{Analytics, Email};
use crate::order::Orders;
use crate::payment::Payment;
use crate::shipping::Shipping;
use crate::timeline::Timeline;

/// One service of the order system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The order aggregate, the order saga and the order-summary projection; the process
    /// running it places the orders and checks the result.
    Orders,
    /// Stock and reservations.
    Inventory,
    /// Charges, declines and the simulated outage.
    Payment,
    /// Shipments.
    Shipping,
    /// Emails about shipments and declines.
    Email,
    /// Counters per event type.
    Analytics,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 6] = [
        Service::Orders,
        Service::Inventory,
        Service::Payment,
        Service::Shipping,
        Service::Email,
        Service::Analytics,
    ];

    /// The service's name (its database is `<name>.db`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Orders => "orders",
            Service::Inventory => "inventory",
            Service::Payment => "payment",
            Service::Shipping => "shipping",
            Service::Email => "email",
            Service::Analytics => "analytics",
        }
    }

    /// The service called `name`.
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What a service's settings are, whichever process runs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// How long the payment provider is down from the first charge.
    pub(crate) payment_outage: Duration,
    /// Share of cards declined.
    pub(crate) decline_rate: f64,
}

/// SKUs the inventory stocks and orders ask for.
pub(crate) const SKUS: [&str; 3] = ["keyboard", "mouse", "screen"];

/// The services one process runs, opened: their routes, and the order service if it is
/// one of them.
pub(crate) struct Opened {
    pub(crate) routes: Vec<Route>,
    pub(crate) orders: Option<Arc<Orders>>,
    /// Stopped after the routes, when the process stops.
    pub(crate) relays: Relays,
}

/// Opens `services` with their databases under `dir`, publishing on `backbone`.
pub(crate) async fn open(
    services: &[Service],
    dir: &Path,
    backbone: &Backbone,
    settings: &Settings,
    timeline: &Timeline,
) -> Result<Opened, DemoError> {
    let publisher = backbone.publisher();
    let mut opened = Opened {
        routes: Vec::new(),
        orders: None,
        relays: Relays::default(),
    };
    let relays = &opened.relays.clone();
    for service in services {
        let timeline = timeline.clone();
        let routes = match service {
            Service::Orders => {
                let orders = Arc::new(
                    Orders::open(dir, publisher.clone(), settings.payment_outage, timeline).await?,
                );
                let routes = orders.routes();
                opened.orders = Some(orders);
                routes
            }
            Service::Inventory => Inventory::open(dir, &publisher, relays, &SKUS, timeline)
                .await?
                .routes(),
            Service::Payment => Payment::open(
                dir,
                &publisher,
                relays,
                settings.payment_outage,
                settings.decline_rate,
                timeline,
            )?
            .routes(),
            Service::Shipping => Shipping::open(dir, &publisher, relays, timeline)?.routes(),
            Service::Email => Email::open(dir, timeline).await?.routes(),
            Service::Analytics => Analytics::open(dir).await?.routes(),
        };
        opened.routes.extend(routes);
    }
    Ok(opened)
}
