//! The payment service: charges a card once per order (idempotent by order), declines some
//! cards, and during a simulated provider outage fails transiently so the order saga waits
//! and retries instead of giving up.

use std::path::Path;
use std::time::Instant;

use keel::runtime::EmbeddedBus;
use keel::saga::StepError;
use rusqlite::OptionalExtension;

use crate::database::{CommandError, ServiceDb, fact};
use crate::error::DemoError;
use crate::events::{PAYMENTS_TOPIC, PaymentCharged, PaymentDeclined};
use crate::order::OrderData;
use crate::timeline::Timeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY, amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('charged', 'declined', 'refunded')));
";

/// The payment service.
#[derive(Clone)]
pub(crate) struct Payment {
    db: ServiceDb,
    outage_until: Instant,
    decline_per_mille: u64,
    timeline: Timeline,
}

impl Payment {
    pub(crate) fn open(
        dir: &Path,
        bus: &EmbeddedBus,
        outage_until: Instant,
        decline_rate: f64,
        timeline: Timeline,
    ) -> Result<Payment, DemoError> {
        Ok(Payment {
            db: ServiceDb::open(dir, "payment", SCHEMA, bus)?,
            outage_until,
            decline_per_mille: (decline_rate * 1000.0).round() as u64,
            timeline,
        })
    }

    /// The saga's charge step. Idempotent per order: a re-run returns the stored answer and
    /// never charges twice.
    pub(crate) async fn charge(
        &self,
        command_id: String,
        order: OrderData,
    ) -> Result<(), StepError> {
        if Instant::now() < self.outage_until {
            self.timeline.note(
                &order.order_id,
                "payment",
                "provider unavailable, will retry",
            );
            return Err(StepError::Transient("payment provider unavailable".into()));
        }
        let declines = declines(&order.order_id, self.decline_per_mille);
        let id = order.order_id.clone();
        let status = self
            .db
            .command(move |tx| {
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT status FROM payments WHERE order_id = ?1",
                        [&order.order_id],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(status) = stored {
                    return Ok((status, Vec::new()));
                }
                let (status, event) = if declines {
                    let declined = PaymentDeclined {
                        order_id: order.order_id.clone(),
                        amount_cents: order.amount_cents,
                        email: order.email.clone(),
                    };
                    (
                        "declined",
                        fact("/payment", &command_id, &order.order_id, &declined),
                    )
                } else {
                    let charged = PaymentCharged {
                        order_id: order.order_id.clone(),
                        amount_cents: order.amount_cents,
                    };
                    (
                        "charged",
                        fact("/payment", &command_id, &order.order_id, &charged),
                    )
                };
                tx.execute(
                    "INSERT INTO payments (order_id, amount_cents, status) VALUES (?1, ?2, ?3)",
                    (&order.order_id, order.amount_cents, status),
                )?;
                Ok((status.to_owned(), vec![(PAYMENTS_TOPIC, event)]))
            })
            .await
            .map_err(|e: CommandError| StepError::Transient(e.0))?;
        match status.as_str() {
            "declined" => {
                self.timeline.note(&id, "payment", "card declined");
                Err(StepError::Permanent("card declined".into()))
            }
            _ => {
                self.timeline.note(&id, "payment", "card charged");
                Ok(())
            }
        }
    }

    /// The charge step's compensation (runs only if a later step fails for good).
    pub(crate) async fn refund(&self, order_id: String) -> Result<(), StepError> {
        self.db
            .command(move |tx| {
                tx.execute(
                    "UPDATE payments SET status = 'refunded' WHERE order_id = ?1 AND status = 'charged'",
                    [&order_id],
                )?;
                Ok(((), Vec::new()))
            })
            .await
            .map_err(|e: CommandError| StepError::Transient(e.0))
    }

    /// Orders charged and not refunded.
    pub(crate) async fn charges(&self) -> Result<u64, DemoError> {
        self.db
            .query(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM payments WHERE status = 'charged'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .await
            .map(|n| n as u64)
    }
}

/// Whether the card of `order_id` is declined: a fixed function of the id (FNV-1a), so a
/// run is reproducible and a retried charge gets the same answer.
fn declines(order_id: &str, per_mille: u64) -> bool {
    let hash = order_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    hash % 1000 < per_mille
}
