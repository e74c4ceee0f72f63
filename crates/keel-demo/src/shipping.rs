//! The shipping service: takes the order saga's ship commands from `shipping.commands`,
//! creates one shipment per order and announces it on `shipping`.

use std::path::Path;

use keel::runtime::{Handler, HandlerError, Publisher, Route};
use rusqlite::{Connection, OptionalExtension};

use crate::database::{Relays, ServiceDb, announce, fact};
use crate::error::DemoError;
use crate::events::{CreateShipment, SHIPPING_COMMANDS, SHIPPING_TOPIC, ShipmentCreated};
use crate::timeline::Timeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shipments (
    order_id TEXT PRIMARY KEY, shipment_id TEXT NOT NULL, ship_command TEXT NOT NULL);
";

/// The shipping service.
#[derive(Clone)]
pub(crate) struct Shipping {
    db: ServiceDb,
    timeline: Timeline,
}

impl Shipping {
    /// Opens `shipping.db` under `dir`.
    pub(crate) fn open(
        dir: &Path,
        publisher: &Publisher,
        relays: &Relays,
        timeline: Timeline,
    ) -> Result<Shipping, DemoError> {
        Ok(Shipping {
            db: ServiceDb::open(dir, "shipping", SCHEMA, publisher, relays)?,
            timeline,
        })
    }

    /// What the service consumes: its commands.
    pub(crate) fn routes(&self) -> Vec<Route> {
        vec![Route::new(SHIPPING_COMMANDS, "shipping", self.on_command())]
    }

    /// Creates an order's shipment once; asked again, announces the shipment it created.
    fn on_command(&self) -> Handler {
        let timeline = self.timeline.clone();
        self.db.inbox.handler("commands", move |tx, asked: CreateShipment| {
            let made: Option<(String, String)> = tx
                .query_row(
                    "SELECT shipment_id, ship_command FROM shipments WHERE order_id = ?1",
                    [&asked.order_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(HandlerError::transient)?;
            let (shipment_id, command_id) = match made {
                Some(made) => made,
                None => {
                    let shipment_id = format!("shp-{}", asked.order_id);
                    tx.execute(
                        "INSERT INTO shipments (order_id, shipment_id, ship_command) VALUES (?1, ?2, ?3)",
                        (&asked.order_id, &shipment_id, &asked.command_id),
                    )
                    .map_err(HandlerError::transient)?;
                    timeline.note(&asked.order_id, "shipping", "shipment created");
                    (shipment_id, asked.command_id)
                }
            };
            let created = ShipmentCreated {
                order_id: asked.order_id.clone(),
                shipment_id,
                email: asked.email,
            };
            let event = fact("/shipping", &command_id, &asked.order_id, &created);
            announce(tx, SHIPPING_TOPIC, event)
        })
    }
}

/// Shipments created, read from the shipping database.
pub(crate) fn shipments(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .query_row("SELECT COUNT(*) FROM shipments", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}
