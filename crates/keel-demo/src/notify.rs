//! The email and analytics services: pure reactions to the other services' facts
//! (choreography), each exactly once through its inbox. An email to an invalid address is a
//! poison event: a permanent error, so it goes to the dead-letter topic after no retries
//! instead of blocking the orders behind it.

use std::path::Path;

use keel::core::{Event, EventType};
use keel::runtime::{Handler, HandlerError, Route};
use keel::sql::SqliteInbox;
use rusqlite::Connection;

use crate::error::DemoError;
use crate::events::{
    INVENTORY_TOPIC, PAYMENTS_TOPIC, PaymentDeclined, SHIPPING_TOPIC, ShipmentCreated,
};
use crate::timeline::Timeline;

/// The email service's database (emails "sent": rows) and inbox.
#[derive(Clone)]
pub(crate) struct Email {
    inbox: SqliteInbox,
    timeline: Timeline,
}

impl Email {
    pub(crate) async fn open(dir: &Path, timeline: Timeline) -> Result<Email, DemoError> {
        let inbox = SqliteInbox::open(dir.join("email.db"))?;
        inbox
            .with_connection(|c| {
                c.execute_batch("CREATE TABLE IF NOT EXISTS emails (order_id TEXT NOT NULL, kind TEXT NOT NULL, address TEXT NOT NULL)")
            })
            .await
            .map_err(|e| DemoError::Setup(e.to_string()))??;
        Ok(Email { inbox, timeline })
    }

    /// What the service consumes: shipments and payments.
    pub(crate) fn routes(&self) -> Vec<Route> {
        vec![
            Route::new(SHIPPING_TOPIC, "email", self.on_shipment()),
            Route::new(PAYMENTS_TOPIC, "email", self.on_decline()),
        ]
    }

    /// "Your order shipped".
    fn on_shipment(&self) -> Handler {
        let timeline = self.timeline.clone();
        self.inbox
            .handler("shipped-email", move |tx, shipment: ShipmentCreated| {
                send(
                    tx,
                    &timeline,
                    &shipment.order_id,
                    "shipped",
                    &shipment.email,
                )
            })
    }

    /// "Your payment was declined". The `payments` topic also carries charges, which this
    /// handler has nothing to say about: they are acknowledged, not dead-lettered.
    fn on_decline(&self) -> Handler {
        let timeline = self.timeline.clone();
        self.inbox
            .handler_raw("declined-email", move |tx, event: Event| {
                if event.ty != PaymentDeclined::TYPE {
                    return Ok(());
                }
                let declined: PaymentDeclined = event.decode().map_err(HandlerError::permanent)?;
                send(
                    tx,
                    &timeline,
                    &declined.order_id,
                    "declined",
                    &declined.email,
                )
            })
    }
}

/// Emails sent, read from the email database.
pub(crate) fn sent(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .query_row("SELECT COUNT(*) FROM emails", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

fn send(
    tx: &mut keel::sql::SqliteTx<'_>,
    timeline: &Timeline,
    order_id: &str,
    kind: &str,
    address: &str,
) -> Result<(), HandlerError> {
    if !address.contains('@') {
        timeline.note(
            order_id,
            "email",
            format!("invalid address '{address}': dead-lettered"),
        );
        return Err(HandlerError::permanent(format!(
            "invalid email address '{address}'"
        )));
    }
    tx.execute(
        "INSERT INTO emails (order_id, kind, address) VALUES (?1, ?2, ?3)",
        (order_id, kind, address),
    )
    .map_err(HandlerError::transient)?;
    timeline.note(order_id, "email", format!("{kind} email sent"));
    Ok(())
}

/// The analytics service: a counter per event type, exactly once per event.
#[derive(Clone)]
pub(crate) struct Analytics {
    inbox: SqliteInbox,
}

impl Analytics {
    pub(crate) async fn open(dir: &Path) -> Result<Analytics, DemoError> {
        let inbox = SqliteInbox::open(dir.join("analytics.db"))?;
        inbox
            .with_connection(|c| {
                c.execute_batch("CREATE TABLE IF NOT EXISTS counters (kind TEXT PRIMARY KEY, n INTEGER NOT NULL)")
            })
            .await
            .map_err(|e| DemoError::Setup(e.to_string()))??;
        Ok(Analytics { inbox })
    }

    /// What the service consumes: every fact topic.
    pub(crate) fn routes(&self) -> Vec<Route> {
        [INVENTORY_TOPIC, PAYMENTS_TOPIC, SHIPPING_TOPIC]
            .into_iter()
            .map(|topic| Route::new(topic, "analytics", self.counter()))
            .collect()
    }

    /// Counts every event of a topic by type.
    fn counter(&self) -> Handler {
        self.inbox.handler_raw("count", |tx, event: Event| {
            tx.execute(
                "INSERT INTO counters (kind, n) VALUES (?1, 1) ON CONFLICT (kind) DO UPDATE SET n = n + 1",
                [&event.ty],
            )
            .map_err(HandlerError::transient)?;
            Ok(())
        })
    }
}

/// How many events of type `T` analytics counted, read from its database.
pub(crate) fn counted<T: EventType>(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .query_row(
            "SELECT COALESCE(SUM(n), 0) FROM counters WHERE kind = ?1",
            [T::TYPE],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
}
