//! The order service: the event-sourced `Order` aggregate, the order saga that orchestrates
//! inventory, payment and shipping with compensation, and the order-summary projection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keel::projection::Projector;
use keel::saga::{Saga, SagaRunner, SagaStatus, Step, StepContext};
use keel::sql::{SqliteProjection, SqliteSagaStore};
use keel::store::{Aggregate, AllFilter, EmbeddedStore, Repository, decode_event};
use serde::{Deserialize, Serialize};

use crate::error::DemoError;
use crate::inventory::Inventory;
use crate::payment::Payment;
use crate::shipping::Shipping;
use crate::timeline::Timeline;

/// What an order asks for; also the order saga's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    /// The order.
    pub order_id: String,
    /// The product.
    pub sku: String,
    /// How many.
    pub qty: i64,
    /// The price.
    pub amount_cents: i64,
    /// The customer's address.
    pub email: String,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Not placed.
    #[default]
    New,
    /// Placed; the saga is running.
    Placed,
    /// Reserved, charged, shipped.
    Confirmed,
    /// Refused; everything done for it was undone.
    Rejected,
}

/// The order aggregate: the fold of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Where it is.
    pub status: OrderStatus,
    /// What was asked, once placed.
    pub data: Option<OrderData>,
}

/// The order's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The customer placed it.
    Placed(OrderData),
    /// Every step succeeded.
    Confirmed,
    /// A step failed for good (the saga compensated).
    Rejected {
        /// Why.
        reason: String,
    },
}

/// What can be asked of an order.
#[derive(Debug, Clone)]
pub enum OrderCommand {
    /// Place it (idempotent).
    Place(OrderData),
    /// Confirm it (idempotent).
    Confirm,
    /// Reject it (idempotent).
    Reject(String),
}

/// A command that contradicts the order's state.
#[derive(Debug, thiserror::Error)]
#[error("order is {status:?}; cannot {command}")]
pub struct OrderRefused {
    status: OrderStatus,
    command: &'static str,
}

impl Aggregate for Order {
    type Event = OrderEvent;
    type Command = OrderCommand;
    type Error = OrderRefused;
    const CATEGORY: &'static str = "order";

    fn event_type(event: &OrderEvent) -> &'static str {
        match event {
            OrderEvent::Placed(_) => "order.placed",
            OrderEvent::Confirmed => "order.confirmed",
            OrderEvent::Rejected { .. } => "order.rejected",
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed(data) => {
                self.status = OrderStatus::Placed;
                self.data = Some(data.clone());
            }
            OrderEvent::Confirmed => self.status = OrderStatus::Confirmed,
            OrderEvent::Rejected { .. } => self.status = OrderStatus::Rejected,
        }
    }

    fn handle(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderRefused> {
        use OrderStatus::*;
        let refuse = |command| {
            Err(OrderRefused {
                status: self.status,
                command,
            })
        };
        match (command, self.status) {
            (OrderCommand::Place(data), New) => Ok(vec![OrderEvent::Placed(data.clone())]),
            (OrderCommand::Place(_), _) => Ok(vec![]),
            (OrderCommand::Confirm, Placed) => Ok(vec![OrderEvent::Confirmed]),
            (OrderCommand::Confirm, Confirmed) => Ok(vec![]),
            (OrderCommand::Confirm, _) => refuse("confirm"),
            (OrderCommand::Reject(reason), Placed) => Ok(vec![OrderEvent::Rejected {
                reason: reason.clone(),
            }]),
            (OrderCommand::Reject(_), Rejected) => Ok(vec![]),
            (OrderCommand::Reject(_), _) => refuse("reject"),
        }
    }
}

/// Order statuses as the order-summary projection counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderCounts {
    /// Orders placed.
    pub placed: u64,
    /// Confirmed.
    pub confirmed: u64,
    /// Rejected.
    pub rejected: u64,
}

/// The order service.
pub(crate) struct Orders {
    pub(crate) repository: Repository<Order, EmbeddedStore>,
    pub(crate) saga: SagaRunner<OrderData, SqliteSagaStore>,
    pub(crate) summary: Arc<Projector<EmbeddedStore, SqliteProjection>>,
    timeline: Timeline,
}

/// How long the charge step may keep retrying before the order is rejected.
pub(crate) fn charge_timeout(outage: Duration) -> Duration {
    outage + Duration::from_secs(60)
}

impl Orders {
    pub(crate) async fn open(
        dir: &Path,
        store: EmbeddedStore,
        services: (Inventory, Payment, Shipping),
        outage: Duration,
        timeline: Timeline,
    ) -> Result<Orders, DemoError> {
        let repository = Repository::<Order, _>::new(store.clone())
            .with_snapshot_every(10)
            .with_conflict_retries(5);
        let sagas = Arc::new(SqliteSagaStore::open(dir.join("orders.db"))?);
        let saga = SagaRunner::new(order_saga(services, outage), sagas);
        let model = summary_projection(&dir.join("orders.db"))?;
        let summary = Arc::new(
            Projector::new(store, model, AllFilter::Category(Order::CATEGORY.into())).await?,
        );
        Ok(Orders {
            repository,
            saga,
            summary,
            timeline,
        })
    }

    /// Places an order and runs its saga to an end; the order ends confirmed or rejected.
    pub(crate) async fn place(&self, data: OrderData) -> Result<OrderStatus, DemoError> {
        let id = data.order_id.clone();
        self.repository
            .execute(&id, &OrderCommand::Place(data.clone()))
            .await
            .map_err(|e| DemoError::Service(e.to_string()))?;
        self.timeline.note(&id, "orders", "placed");
        let outcome = self.saga.start(&id, data).await?;
        self.finish(&id, outcome.status, outcome.error).await
    }

    /// Records the saga's end on the order.
    pub(crate) async fn finish(
        &self,
        id: &str,
        status: SagaStatus,
        error: Option<String>,
    ) -> Result<OrderStatus, DemoError> {
        let command = match status {
            SagaStatus::Completed => OrderCommand::Confirm,
            _ => OrderCommand::Reject(error.unwrap_or_default()),
        };
        let done = self
            .repository
            .execute(id, &command)
            .await
            .map_err(|e| DemoError::Service(e.to_string()))?;
        let what = match done.state.status {
            OrderStatus::Confirmed => "confirmed".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        self.timeline.note(id, "orders", what);
        Ok(done.state.status)
    }

    /// Statuses from the order-summary read model.
    pub(crate) async fn counts(&self) -> Result<OrderCounts, DemoError> {
        self.summary
            .model()
            .query(|c| {
                let count = |status: &str| {
                    c.query_row(
                        "SELECT COUNT(*) FROM order_summary WHERE status = ?1",
                        [status],
                        |r| r.get::<_, i64>(0),
                    )
                    .map(|n| n as u64)
                };
                let (placed_only, confirmed, rejected) =
                    (count("placed")?, count("confirmed")?, count("rejected")?);
                Ok(OrderCounts {
                    placed: placed_only + confirmed + rejected,
                    confirmed,
                    rejected,
                })
            })
            .await
            .map_err(DemoError::from)
    }
}

/// Reserve → charge → ship; compensations release and refund. The charge step retries
/// transient failures (an outage) until its durable deadline.
fn order_saga(
    (inventory, payment, shipping): (Inventory, Payment, Shipping),
    outage: Duration,
) -> Saga<OrderData> {
    let (reserve, release) = (inventory.clone(), inventory);
    let (charge, refund) = (payment.clone(), payment);
    Saga::new("order")
        .step(
            Step::new("reserve", move |ctx: StepContext<OrderData>| {
                let inventory = reserve.clone();
                async move {
                    inventory
                        .reserve(ctx.command_id, ctx.data.clone())
                        .await
                        .map(|()| ctx.data)
                }
            })
            .compensate_with(move |ctx: StepContext<OrderData>| {
                let inventory = release.clone();
                async move {
                    inventory
                        .release(ctx.command_id, ctx.data.order_id.clone())
                        .await
                        .map(|()| ctx.data)
                }
            })
            .with_retries(5, Duration::from_millis(50)),
        )
        .step(
            Step::new("charge", move |ctx: StepContext<OrderData>| {
                let payment = charge.clone();
                async move {
                    payment
                        .charge(ctx.command_id, ctx.data.clone())
                        .await
                        .map(|()| ctx.data)
                }
            })
            .compensate_with(move |ctx: StepContext<OrderData>| {
                let payment = refund.clone();
                async move {
                    payment
                        .refund(ctx.data.order_id.clone())
                        .await
                        .map(|()| ctx.data)
                }
            })
            .with_retries(keel::saga::ATTEMPTS_MAX, Duration::from_millis(100))
            .with_timeout(charge_timeout(outage)),
        )
        .step(
            Step::new("ship", move |ctx: StepContext<OrderData>| {
                let shipping = shipping.clone();
                async move {
                    shipping
                        .ship(ctx.command_id, ctx.data.clone())
                        .await
                        .map(|()| ctx.data)
                }
            })
            .with_retries(5, Duration::from_millis(50)),
        )
}

/// The order-summary read model: one row per order with its status and amount, in
/// `orders.db`, checkpointed in the same transaction.
fn summary_projection(path: &Path) -> Result<SqliteProjection, DemoError> {
    Ok(SqliteProjection::open(
        path,
        "order-summary",
        |c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS order_summary (
                    order_id TEXT PRIMARY KEY, status TEXT NOT NULL, amount_cents INTEGER NOT NULL,
                    updated_at_ms INTEGER NOT NULL)",
            )
        },
        |tx, recorded| {
            let order_id = recorded.stream.trim_start_matches("order-");
            match decode_event::<Order>(recorded)? {
                OrderEvent::Placed(data) => tx.execute(
                    "INSERT INTO order_summary (order_id, status, amount_cents, updated_at_ms) VALUES (?1, 'placed', ?2, ?3)
                     ON CONFLICT (order_id) DO NOTHING",
                    (order_id, data.amount_cents, recorded.recorded_at_ms),
                )?,
                OrderEvent::Confirmed => tx.execute(
                    "UPDATE order_summary SET status = 'confirmed', updated_at_ms = ?2 WHERE order_id = ?1",
                    (order_id, recorded.recorded_at_ms),
                )?,
                OrderEvent::Rejected { .. } => tx.execute(
                    "UPDATE order_summary SET status = 'rejected', updated_at_ms = ?2 WHERE order_id = ?1",
                    (order_id, recorded.recorded_at_ms),
                )?,
            };
            Ok(())
        },
        |tx| {
            tx.execute("DELETE FROM order_summary", [])?;
            Ok(())
        },
    )?)
}
