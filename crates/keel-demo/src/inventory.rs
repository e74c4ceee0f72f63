//! The inventory service: stock per SKU and one reservation per order. Reserve and release
//! are the order saga's commands (idempotent per order); a shipment, learnt from the
//! `shipping` topic through the inbox, turns a reservation into shipped stock.

use std::path::Path;

use keel::runtime::{EmbeddedBus, Handler, HandlerError};
use keel::saga::StepError;
use keel::sql::SqliteInbox;
use rusqlite::OptionalExtension;

use crate::database::{CommandError, ServiceDb, fact};
use crate::error::DemoError;
use crate::events::{INVENTORY_TOPIC, ShipmentCreated, StockReleased, StockReserved};
use crate::order::OrderData;
use crate::timeline::Timeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'released', 'shipped')));
";

/// Reservations by state, for the self-check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReservationCounts {
    /// Every reservation ever made.
    pub made: u64,
    /// Still held.
    pub held: u64,
    /// Given back by a compensation.
    pub released: u64,
    /// Left with a shipment.
    pub shipped: u64,
}

/// The inventory service.
#[derive(Clone)]
pub(crate) struct Inventory {
    db: ServiceDb,
    inbox: SqliteInbox,
    timeline: Timeline,
}

impl Inventory {
    pub(crate) async fn open(
        dir: &Path,
        bus: &EmbeddedBus,
        skus: &[&str],
        stock: i64,
        timeline: Timeline,
    ) -> Result<Inventory, DemoError> {
        let db = ServiceDb::open(dir, "inventory", SCHEMA, bus)?;
        let inbox = SqliteInbox::open(dir.join("inventory.db"))?;
        let inventory = Inventory {
            db,
            inbox,
            timeline,
        };
        let skus: Vec<String> = skus.iter().map(|s| s.to_string()).collect();
        inventory
            .db
            .query(move |connection| {
                for sku in &skus {
                    connection.execute(
                        "INSERT INTO stock (sku, available) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                        (sku, stock),
                    )?;
                }
                Ok(())
            })
            .await?;
        Ok(inventory)
    }

    /// The saga's reserve step: sets stock aside, or refuses for good when there is not
    /// enough. Idempotent per order: a re-run finds its reservation.
    pub(crate) async fn reserve(
        &self,
        command_id: String,
        order: OrderData,
    ) -> Result<(), StepError> {
        let id = order.order_id.clone();
        let reserved = self
            .db
            .command(move |tx| {
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT state FROM reservations WHERE order_id = ?1",
                        [&order.order_id],
                        |row| row.get(0),
                    )
                    .optional()?;
                if existing.is_some() {
                    return Ok((true, Vec::new()));
                }
                let available: i64 = tx.query_row(
                    "SELECT available FROM stock WHERE sku = ?1",
                    [&order.sku],
                    |row| row.get(0),
                )?;
                if available < order.qty {
                    return Ok((false, Vec::new()));
                }
                tx.execute(
                    "UPDATE stock SET available = available - ?2 WHERE sku = ?1",
                    (&order.sku, order.qty),
                )?;
                tx.execute(
                    "INSERT INTO reservations (order_id, sku, qty, state) VALUES (?1, ?2, ?3, 'reserved')",
                    (&order.order_id, &order.sku, order.qty),
                )?;
                let event = StockReserved {
                    order_id: order.order_id.clone(),
                    sku: order.sku.clone(),
                    qty: order.qty,
                };
                Ok((true, vec![(INVENTORY_TOPIC, fact("/inventory", &command_id, &order.order_id, &event))]))
            })
            .await
            .map_err(|e: CommandError| StepError::Transient(e.0))?;
        if reserved {
            self.timeline.note(&id, "inventory", "stock reserved");
            Ok(())
        } else {
            self.timeline.note(&id, "inventory", "out of stock");
            Err(StepError::Permanent("out of stock".into()))
        }
    }

    /// The reserve step's compensation: gives a held reservation back. Idempotent.
    pub(crate) async fn release(
        &self,
        command_id: String,
        order_id: String,
    ) -> Result<(), StepError> {
        let id = order_id.clone();
        let released = self
            .db
            .command(move |tx| {
                let held: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT sku, qty FROM reservations WHERE order_id = ?1 AND state = 'reserved'",
                        [&order_id],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                let Some((sku, qty)) = held else {
                    return Ok((false, Vec::new()));
                };
                tx.execute("UPDATE reservations SET state = 'released' WHERE order_id = ?1", [&order_id])?;
                tx.execute("UPDATE stock SET available = available + ?2 WHERE sku = ?1", (&sku, qty))?;
                let event = StockReleased { order_id: order_id.clone(), sku, qty };
                Ok((true, vec![(INVENTORY_TOPIC, fact("/inventory", &command_id, &order_id, &event))]))
            })
            .await
            .map_err(|e: CommandError| StepError::Transient(e.0))?;
        if released {
            self.timeline.note(&id, "inventory", "stock released");
        }
        Ok(())
    }

    /// The `shipping` topic handler: a shipment takes its reservation out of the held stock.
    /// Exactly once through the inbox (the update and the mark commit together).
    pub(crate) fn on_shipment(&self) -> Handler {
        self.inbox.handler("mark-shipped", |tx, shipment: ShipmentCreated| {
            tx.execute(
                "UPDATE reservations SET state = 'shipped' WHERE order_id = ?1 AND state = 'reserved'",
                [&shipment.order_id],
            )
            .map_err(HandlerError::transient)?;
            Ok(())
        })
    }

    /// Reservations by state.
    pub(crate) async fn counts(&self) -> Result<ReservationCounts, DemoError> {
        self.db
            .query(|connection| {
                let mut counts = ReservationCounts::default();
                let mut statement = connection
                    .prepare("SELECT state, COUNT(*) FROM reservations GROUP BY state")?;
                let rows = statement.query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    let (state, n) = row?;
                    let n = n as u64;
                    counts.made += n;
                    match state.as_str() {
                        "reserved" => counts.held += n,
                        "released" => counts.released += n,
                        _ => counts.shipped += n,
                    }
                }
                Ok(counts)
            })
            .await
    }
}
