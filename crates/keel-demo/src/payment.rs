//! The payment service: takes the order saga's charge and refund commands from
//! `payments.commands` and announces each outcome on `payments`. It charges a card once per
//! order, declines some cards, and during a simulated provider outage answers "unavailable"
//! (a transient failure) so the saga waits and asks again instead of giving up.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keel::core::{Event, EventType};
use keel::runtime::{Handler, HandlerError, Publisher, Route};
use keel::sql::SqliteTx;
use rusqlite::{Connection, OptionalExtension};

use crate::database::{Relays, ServiceDb, announce, command, fact};
use crate::error::DemoError;
use crate::events::{
    ChargeCard, PAYMENTS_COMMANDS, PAYMENTS_TOPIC, PaymentCharged, PaymentDeclined,
    PaymentRefunded, PaymentUnavailable, RefundCharge,
};
use crate::timeline::Timeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY, amount_cents INTEGER NOT NULL, email TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('charged', 'declined', 'refunded')),
    charge_command TEXT NOT NULL, refund_command TEXT);
";

/// The payment service.
#[derive(Clone)]
pub(crate) struct Payment {
    db: ServiceDb,
    outage: Duration,
    /// When the outage ends: set by the first charge asked for, so the outage is as long
    /// as asked however long the services took to start.
    outage_until: Arc<OnceLock<Instant>>,
    decline_per_mille: u64,
    timeline: Timeline,
}

impl Payment {
    /// Opens `payment.db` under `dir`; the provider is down for `outage` from the first
    /// charge.
    pub(crate) fn open(
        dir: &Path,
        publisher: &Publisher,
        relays: &Relays,
        outage: Duration,
        decline_rate: f64,
        timeline: Timeline,
    ) -> Result<Payment, DemoError> {
        Ok(Payment {
            db: ServiceDb::open(dir, "payment", SCHEMA, publisher, relays)?,
            outage,
            outage_until: Arc::default(),
            decline_per_mille: (decline_rate * 1000.0).round() as u64,
            timeline,
        })
    }

    /// What the service consumes: its commands.
    pub(crate) fn routes(&self) -> Vec<Route> {
        vec![Route::new(PAYMENTS_COMMANDS, "payment", self.on_command())]
    }

    fn on_command(&self) -> Handler {
        let payment = self.clone();
        self.db
            .inbox
            .handler_raw("commands", move |tx, event: Event| {
                match event.ty.as_str() {
                    ChargeCard::TYPE => payment.charge(tx, &event, command(&event)?),
                    RefundCharge::TYPE => payment.refund(tx, command(&event)?),
                    other => Err(HandlerError::permanent(format!(
                        "payment takes no command '{other}'"
                    ))),
                }
            })
    }

    /// Charges or declines once per order; asked again, announces the answer it gave. While
    /// the provider is down nothing is stored, and the answer says so.
    fn charge(
        &self,
        tx: &SqliteTx<'_>,
        request: &Event,
        asked: ChargeCard,
    ) -> Result<(), HandlerError> {
        let stored: Option<(String, String)> = tx
            .query_row(
                "SELECT status, charge_command FROM payments WHERE order_id = ?1",
                [&asked.order_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(HandlerError::transient)?;
        let (declined, command_id) = match stored {
            Some((status, command_id)) => (status == "declined", command_id),
            None if self.provider_down() => {
                self.timeline.note(
                    &asked.order_id,
                    "payment",
                    "provider unavailable, will retry",
                );
                let unavailable = PaymentUnavailable {
                    order_id: asked.order_id.clone(),
                };
                // One answer per request (not per command): each retry is answered anew.
                let event = fact("/payment", &request.id, &asked.order_id, &unavailable);
                return announce(tx, PAYMENTS_TOPIC, event);
            }
            None => {
                let declined = declines(&asked.order_id, self.decline_per_mille);
                let status = if declined { "declined" } else { "charged" };
                tx.execute(
                    "INSERT INTO payments (order_id, amount_cents, email, status, charge_command) VALUES (?1, ?2, ?3, ?4, ?5)",
                    (&asked.order_id, asked.amount_cents, &asked.email, status, &asked.command_id),
                )
                .map_err(HandlerError::transient)?;
                let what = if declined {
                    "card declined"
                } else {
                    "card charged"
                };
                self.timeline.note(&asked.order_id, "payment", what);
                (declined, asked.command_id.clone())
            }
        };
        let event = if declined {
            let declined = PaymentDeclined {
                order_id: asked.order_id.clone(),
                amount_cents: asked.amount_cents,
                email: asked.email,
            };
            fact("/payment", &command_id, &asked.order_id, &declined)
        } else {
            let charged = PaymentCharged {
                order_id: asked.order_id.clone(),
                amount_cents: asked.amount_cents,
            };
            fact("/payment", &command_id, &asked.order_id, &charged)
        };
        announce(tx, PAYMENTS_TOPIC, event)
    }

    /// Whether the simulated provider is down now.
    fn provider_down(&self) -> bool {
        let now = Instant::now();
        now < *self.outage_until.get_or_init(|| now + self.outage)
    }

    /// Refunds a charge once; asked again, announces the refund it made. Only a charge can be
    /// refunded: anything else is poison (the saga refunds only what it charged).
    fn refund(&self, tx: &SqliteTx<'_>, asked: RefundCharge) -> Result<(), HandlerError> {
        let stored: Option<(String, i64, Option<String>)> = tx
            .query_row(
                "SELECT status, amount_cents, refund_command FROM payments WHERE order_id = ?1",
                [&asked.order_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(HandlerError::transient)?;
        let (amount_cents, command_id) = match stored {
            Some((status, amount_cents, None)) if status == "charged" => {
                tx.execute(
                    "UPDATE payments SET status = 'refunded', refund_command = ?2 WHERE order_id = ?1",
                    (&asked.order_id, &asked.command_id),
                )
                .map_err(HandlerError::transient)?;
                self.timeline
                    .note(&asked.order_id, "payment", "charge refunded");
                (amount_cents, asked.command_id)
            }
            Some((_, amount_cents, Some(refunded_by))) => (amount_cents, refunded_by),
            _ => {
                return Err(HandlerError::permanent(format!(
                    "order {} has no charge to refund",
                    asked.order_id
                )));
            }
        };
        let refunded = PaymentRefunded {
            order_id: asked.order_id.clone(),
            amount_cents,
        };
        let event = fact("/payment", &command_id, &asked.order_id, &refunded);
        announce(tx, PAYMENTS_TOPIC, event)
    }
}

/// Orders charged and not refunded, read from the payment database.
pub(crate) fn charges(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .query_row(
            "SELECT COUNT(*) FROM payments WHERE status = 'charged'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
}

/// Whether the card of `order_id` is declined: a fixed function of the id (FNV-1a), so a
/// run is reproducible and a retried charge gets the same answer.
fn declines(order_id: &str, per_mille: u64) -> bool {
    let hash = order_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    hash % 1000 < per_mille
}

#[cfg(test)]
mod tests {
    use keel::runtime::{Router, RouterHandle};
    use tokio::sync::mpsc;

    use super::*;
    use crate::backbone::Backbone;

    fn charge(request_id: &str) -> Event {
        let asked = ChargeCard {
            command_id: "0001/charge/do".into(),
            order_id: "0001".into(),
            amount_cents: 1_234,
            email: "a@example.com".into(),
        };
        fact("/orders", request_id, "0001", &asked)
    }

    /// The payment service on an embedded log, its running routes, and the facts it
    /// announces as they come.
    async fn service(
        dir: &Path,
        outage: Duration,
    ) -> (Backbone, RouterHandle, mpsc::UnboundedReceiver<Event>) {
        let backbone = Backbone::embedded(&dir.join("log")).unwrap();
        let payment = Payment::open(
            dir,
            &backbone.publisher(),
            &Relays::default(),
            outage,
            0.0,
            Timeline::silent(),
        )
        .unwrap();
        let (facts, received) = mpsc::unbounded_channel();
        let collect = Handler::raw("collect", move |event: Event, _| {
            facts.send(event).unwrap();
            std::future::ready(Ok(()))
        });
        let router = payment
            .routes()
            .into_iter()
            .fold(backbone.router(), Router::route)
            .route(Route::new(PAYMENTS_TOPIC, "test", collect))
            .start()
            .unwrap();
        (backbone, router, received)
    }

    /// Sends the charge command of order 0001 twice (two requests of one command) to a
    /// payment service down for `outage`; returns each answer's type, id and cause, and
    /// the charges stored.
    async fn charge_twice(outage: Duration) -> (Vec<(String, String, String)>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let (backbone, _router, mut facts) = service(dir.path(), outage).await;
        let mut answers = Vec::new();
        for request in ["0001/charge/do#1", "0001/charge/do#2"] {
            backbone
                .publisher()
                .publish(PAYMENTS_COMMANDS, charge(request))
                .await
                .unwrap();
            let answer = facts.recv().await.unwrap();
            answers.push((answer.ty, answer.id, answer.causationid.unwrap()));
        }
        let database = Connection::open(dir.path().join("payment.db")).unwrap();
        (answers, charges(&database).unwrap())
    }

    fn answer(ty: &str, id: &str, request: &str) -> (String, String, String) {
        (ty.to_owned(), id.to_owned(), request.to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_charge_is_answered_with_the_same_fact_and_charged_once() {
        let (answers, charges) = charge_twice(Duration::ZERO).await;
        let charged = |request| answer(PaymentCharged::TYPE, "0001/charge/do", request);
        assert_eq!(
            answers,
            [charged("0001/charge/do#1"), charged("0001/charge/do#2")]
        );
        assert_eq!(charges, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn during_an_outage_each_request_is_answered_unavailable_and_nothing_is_stored() {
        let (answers, charges) = charge_twice(Duration::from_secs(3600)).await;
        let unavailable = |request| answer(PaymentUnavailable::TYPE, request, request);
        assert_eq!(
            answers,
            [
                unavailable("0001/charge/do#1"),
                unavailable("0001/charge/do#2")
            ]
        );
        assert_eq!(charges, 0);
    }
}
