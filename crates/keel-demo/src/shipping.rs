//! The shipping service: one shipment per order, announced on the `shipping` topic through
//! its outbox.

use std::path::Path;

use keel::runtime::EmbeddedBus;
use keel::saga::StepError;

use crate::database::{CommandError, ServiceDb, fact};
use crate::error::DemoError;
use crate::events::{SHIPPING_TOPIC, ShipmentCreated};
use crate::order::OrderData;
use crate::timeline::Timeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shipments (order_id TEXT PRIMARY KEY, shipment_id TEXT NOT NULL);
";

/// The shipping service.
#[derive(Clone)]
pub(crate) struct Shipping {
    db: ServiceDb,
    timeline: Timeline,
}

impl Shipping {
    pub(crate) fn open(
        dir: &Path,
        bus: &EmbeddedBus,
        timeline: Timeline,
    ) -> Result<Shipping, DemoError> {
        Ok(Shipping {
            db: ServiceDb::open(dir, "shipping", SCHEMA, bus)?,
            timeline,
        })
    }

    /// The saga's ship step. Idempotent per order.
    pub(crate) async fn ship(&self, command_id: String, order: OrderData) -> Result<(), StepError> {
        let id = order.order_id.clone();
        self.db
            .command(move |tx| {
                let shipment_id = format!("shp-{}", order.order_id);
                let created = tx.execute(
                    "INSERT INTO shipments (order_id, shipment_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    (&order.order_id, &shipment_id),
                )?;
                if created == 0 {
                    return Ok(((), Vec::new()));
                }
                let event = ShipmentCreated { order_id: order.order_id.clone(), shipment_id, email: order.email.clone() };
                Ok(((), vec![(SHIPPING_TOPIC, fact("/shipping", &command_id, &order.order_id, &event))]))
            })
            .await
            .map_err(|e: CommandError| StepError::Transient(e.0))?;
        self.timeline.note(&id, "shipping", "shipment created");
        Ok(())
    }

    /// Shipments created.
    pub(crate) async fn shipments(&self) -> Result<u64, DemoError> {
        self.db
            .query(|c| c.query_row("SELECT COUNT(*) FROM shipments", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n as u64)
    }
}
