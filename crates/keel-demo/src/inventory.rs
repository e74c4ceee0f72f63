//! The inventory service: stock per SKU and one reservation per order. It takes the order
//! saga's reserve and release commands from `inventory.commands` and announces each outcome
//! on `inventory`; a shipment, learnt from the `shipping` topic, turns a reservation into
//! shipped stock. Both routes go through the inbox, so each event's effects apply once.

use std::path::Path;

use keel::core::{Event, EventType};
use keel::runtime::{Handler, HandlerError, Publisher, Route};
use keel::sql::SqliteTx;
use rusqlite::{Connection, OptionalExtension};

use crate::database::{Relays, ServiceDb, announce, command, fact};
use crate::error::DemoError;
use crate::events::{
    INVENTORY_COMMANDS, INVENTORY_TOPIC, ReleaseStock, ReserveStock, SHIPPING_TOPIC,
    ShipmentCreated, StockRefused, StockReleased, StockReserved,
};
use crate::timeline::Timeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'released', 'shipped')),
    reserve_command TEXT NOT NULL, release_command TEXT);
";

/// Stock of each SKU when the inventory opens its database first: enough for the largest
/// run, so a demo order is never refused for stock (the refusal path is still there).
const STOCK_PER_SKU: i64 = crate::ORDERS_MAX as i64 * 2;

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
    timeline: Timeline,
}

impl Inventory {
    /// Opens `inventory.db` under `dir` and stocks each of `skus` (once).
    pub(crate) async fn open(
        dir: &Path,
        publisher: &Publisher,
        relays: &Relays,
        skus: &[&str],
        timeline: Timeline,
    ) -> Result<Inventory, DemoError> {
        let db = ServiceDb::open(dir, "inventory", SCHEMA, publisher, relays)?;
        let skus: Vec<String> = skus.iter().map(|s| s.to_string()).collect();
        db.query(move |connection| {
            for sku in &skus {
                connection.execute(
                    "INSERT INTO stock (sku, available) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    (sku, STOCK_PER_SKU),
                )?;
            }
            Ok(())
        })
        .await?;
        Ok(Inventory { db, timeline })
    }

    /// What the service consumes: its commands, and shipments.
    pub(crate) fn routes(&self) -> Vec<Route> {
        vec![
            Route::new(INVENTORY_COMMANDS, "inventory", self.on_command()),
            Route::new(SHIPPING_TOPIC, "inventory", self.on_shipment()),
        ]
    }

    fn on_command(&self) -> Handler {
        let timeline = self.timeline.clone();
        self.db
            .inbox
            .handler_raw("commands", move |tx, event: Event| {
                match event.ty.as_str() {
                    ReserveStock::TYPE => reserve(tx, &timeline, command(&event)?),
                    ReleaseStock::TYPE => release(tx, &timeline, command(&event)?),
                    other => Err(HandlerError::permanent(format!(
                        "inventory takes no command '{other}'"
                    ))),
                }
            })
    }

    /// A shipment takes its reservation out of the held stock.
    fn on_shipment(&self) -> Handler {
        self.db
            .inbox
            .handler("mark-shipped", |tx, shipment: ShipmentCreated| {
                tx.execute(
                    "UPDATE reservations SET state = 'shipped' WHERE order_id = ?1 AND state = 'reserved'",
                    [&shipment.order_id],
                )
                .map_err(HandlerError::transient)?;
                Ok(())
            })
    }
}

/// Reservations by state, read from the inventory database.
pub(crate) fn reservations(connection: &Connection) -> rusqlite::Result<ReservationCounts> {
    let mut counts = ReservationCounts::default();
    let mut statement =
        connection.prepare("SELECT state, COUNT(*) FROM reservations GROUP BY state")?;
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
}

/// Sets stock aside, or refuses when there is not enough. An order's reservation is made
/// once: asked again, the service announces the reservation it made.
fn reserve(
    tx: &SqliteTx<'_>,
    timeline: &Timeline,
    asked: ReserveStock,
) -> Result<(), HandlerError> {
    let made: Option<String> = tx
        .query_row(
            "SELECT reserve_command FROM reservations WHERE order_id = ?1",
            [&asked.order_id],
            |row| row.get(0),
        )
        .optional()
        .map_err(HandlerError::transient)?;
    let reserved = StockReserved {
        order_id: asked.order_id.clone(),
        sku: asked.sku.clone(),
        qty: asked.qty,
    };
    if let Some(command_id) = made {
        let event = fact("/inventory", &command_id, &asked.order_id, &reserved);
        return announce(tx, INVENTORY_TOPIC, event);
    }
    let available: i64 = tx
        .query_row(
            "SELECT available FROM stock WHERE sku = ?1",
            [&asked.sku],
            |row| row.get(0),
        )
        .optional()
        .map_err(HandlerError::transient)?
        .unwrap_or(0);
    if available < asked.qty {
        timeline.note(&asked.order_id, "inventory", "out of stock");
        let refused = StockRefused {
            order_id: asked.order_id.clone(),
            sku: asked.sku,
            qty: asked.qty,
        };
        let event = fact("/inventory", &asked.command_id, &asked.order_id, &refused);
        return announce(tx, INVENTORY_TOPIC, event);
    }
    tx.execute(
        "UPDATE stock SET available = available - ?2 WHERE sku = ?1",
        (&asked.sku, asked.qty),
    )
    .map_err(HandlerError::transient)?;
    tx.execute(
        "INSERT INTO reservations (order_id, sku, qty, state, reserve_command) VALUES (?1, ?2, ?3, 'reserved', ?4)",
        (&asked.order_id, &asked.sku, asked.qty, &asked.command_id),
    )
    .map_err(HandlerError::transient)?;
    timeline.note(&asked.order_id, "inventory", "stock reserved");
    let event = fact("/inventory", &asked.command_id, &asked.order_id, &reserved);
    announce(tx, INVENTORY_TOPIC, event)
}

/// Gives a held reservation back; asked again, announces the release it made. An order with
/// no reservation to release is poison: the saga only releases what it reserved.
fn release(
    tx: &SqliteTx<'_>,
    timeline: &Timeline,
    asked: ReleaseStock,
) -> Result<(), HandlerError> {
    let held: Option<(String, i64, String, Option<String>)> = tx
        .query_row(
            "SELECT sku, qty, state, release_command FROM reservations WHERE order_id = ?1",
            [&asked.order_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .map_err(HandlerError::transient)?;
    let (sku, qty, command_id) = match held {
        Some((sku, qty, state, None)) if state == "reserved" => {
            tx.execute(
                "UPDATE reservations SET state = 'released', release_command = ?2 WHERE order_id = ?1",
                (&asked.order_id, &asked.command_id),
            )
            .map_err(HandlerError::transient)?;
            tx.execute(
                "UPDATE stock SET available = available + ?2 WHERE sku = ?1",
                (&sku, qty),
            )
            .map_err(HandlerError::transient)?;
            timeline.note(&asked.order_id, "inventory", "stock released");
            (sku, qty, asked.command_id)
        }
        Some((sku, qty, _, Some(released_by))) => (sku, qty, released_by),
        _ => {
            return Err(HandlerError::permanent(format!(
                "order {} holds no reservation to release",
                asked.order_id
            )));
        }
    };
    let released = StockReleased {
        order_id: asked.order_id.clone(),
        sku,
        qty,
    };
    let event = fact("/inventory", &command_id, &asked.order_id, &released);
    announce(tx, INVENTORY_TOPIC, event)
}
