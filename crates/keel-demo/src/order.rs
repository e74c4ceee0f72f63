//! The order service: the event-sourced `Order` aggregate, the order saga that orchestrates
//! inventory, payment and shipping with compensation, and the order-summary projection.
//!
//! The saga talks to the other services only through topics: each step sends its command
//! to the service's command topic and waits for the fact that answers it (the fact is
//! caused by the command, so its `causationid` names the request), within a patience per
//! attempt and the step's durable deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keel::core::{Event, EventType};
use keel::log::Log;
use keel::projection::Projector;
use keel::runtime::{Handler, Publisher, Route};
use keel::saga::{
    Replies, Reply, Saga, SagaRunner, SagaStatus, Step, StepContext, StepError, StepFuture,
};
use keel::sql::{SqliteProjection, SqliteSagaStore};
use keel::store::{Aggregate, AllFilter, EmbeddedStore, EventStore, Repository, decode_event};
use serde::{Deserialize, Serialize};

use crate::error::DemoError;
use crate::events::{
    ChargeCard, CreateShipment, INVENTORY_COMMANDS, INVENTORY_TOPIC, PAYMENTS_COMMANDS,
    PAYMENTS_TOPIC, PaymentCharged, PaymentDeclined, PaymentRefunded, PaymentUnavailable,
    RefundCharge, ReleaseStock, ReserveStock, SHIPPING_COMMANDS, SHIPPING_TOPIC, ShipmentCreated,
    StockRefused, StockReleased, StockReserved,
};
use crate::timeline::Timeline;

/// How long a step waits for the answer to one command before sending it again (the
/// receiver then announces its outcome again). Generous: a second send is harmless but
/// makes a duplicate fact, and the step's deadline bounds the whole wait anyway.
const PATIENCE: Duration = Duration::from_secs(10);

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
    store: EmbeddedStore,
    pub(crate) repository: Repository<Order, EmbeddedStore>,
    pub(crate) saga: SagaRunner<OrderData, SqliteSagaStore>,
    pub(crate) summary: Arc<Projector<EmbeddedStore, SqliteProjection>>,
    replies: Replies,
    timeline: Timeline,
}

/// How long the charge step may keep retrying before the order is rejected.
pub(crate) fn charge_timeout(outage: Duration) -> Duration {
    outage + Duration::from_secs(60)
}

impl Orders {
    /// Opens the order service under `dir`: its event store (the embedded log in
    /// `orders-events`, private to the service) and `orders.db` (saga state and the
    /// order-summary read model).
    pub(crate) async fn open(
        dir: &Path,
        publisher: Publisher,
        outage: Duration,
        timeline: Timeline,
    ) -> Result<Orders, DemoError> {
        let log = Arc::new(Log::open(dir.join("orders-events"))?);
        let store = EmbeddedStore::open(&log)?;
        let repository = Repository::<Order, _>::new(store.clone())
            .with_snapshot_every(10)
            .with_conflict_retries(5);
        let sagas = Arc::new(SqliteSagaStore::open(dir.join("orders.db"))?);
        let replies = Replies::new();
        let commands = Commands {
            publisher,
            replies: replies.clone(),
        };
        let saga = SagaRunner::new(order_saga(&commands, outage), sagas);
        let model = summary_projection(&dir.join("orders.db"))?;
        let summary = Arc::new(
            Projector::new(
                store.clone(),
                model,
                AllFilter::Category(Order::CATEGORY.into()),
            )
            .await?,
        );
        Ok(Orders {
            store,
            repository,
            saga,
            summary,
            replies,
            timeline,
        })
    }

    /// What the service consumes: the facts that answer the saga's commands.
    pub(crate) fn routes(&self) -> Vec<Route> {
        [INVENTORY_TOPIC, PAYMENTS_TOPIC, SHIPPING_TOPIC]
            .into_iter()
            .map(|topic| Route::new(topic, "orders", on_reply(self.replies.clone())))
            .collect()
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

    /// Waits (up to `timeout`) until the order-summary projection has every order event
    /// stored so far.
    pub(crate) async fn caught_up(&self, timeout: Duration) -> Result<(), DemoError> {
        let head = self
            .store
            .head()
            .await
            .map_err(|e| DemoError::Service(e.to_string()))?;
        self.summary
            .wait_for(head.saturating_sub(1), timeout)
            .await
            .map_err(|e| DemoError::Service(e.to_string()))
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
/// "provider unavailable" answers (an outage) until its durable deadline.
fn order_saga(commands: &Commands, outage: Duration) -> Saga<OrderData> {
    Saga::new("order")
        .step(
            Step::new(
                "reserve",
                commands.step(INVENTORY_COMMANDS, |ctx| ReserveStock {
                    command_id: ctx.command_id.clone(),
                    order_id: ctx.data.order_id.clone(),
                    sku: ctx.data.sku.clone(),
                    qty: ctx.data.qty,
                }),
            )
            .compensate_with(commands.step(INVENTORY_COMMANDS, |ctx| ReleaseStock {
                command_id: ctx.command_id.clone(),
                order_id: ctx.data.order_id.clone(),
            }))
            .with_retries(5, Duration::from_millis(50))
            .with_timeout(STEP_TIMEOUT),
        )
        .step(
            Step::new(
                "charge",
                commands.step(PAYMENTS_COMMANDS, |ctx| ChargeCard {
                    command_id: ctx.command_id.clone(),
                    order_id: ctx.data.order_id.clone(),
                    amount_cents: ctx.data.amount_cents,
                    email: ctx.data.email.clone(),
                }),
            )
            .compensate_with(commands.step(PAYMENTS_COMMANDS, |ctx| RefundCharge {
                command_id: ctx.command_id.clone(),
                order_id: ctx.data.order_id.clone(),
            }))
            .with_retries(keel::saga::ATTEMPTS_MAX, Duration::from_millis(100))
            .with_timeout(charge_timeout(outage)),
        )
        .step(
            Step::new(
                "ship",
                commands.step(SHIPPING_COMMANDS, |ctx| CreateShipment {
                    command_id: ctx.command_id.clone(),
                    order_id: ctx.data.order_id.clone(),
                    email: ctx.data.email.clone(),
                }),
            )
            .with_retries(5, Duration::from_millis(50))
            .with_timeout(STEP_TIMEOUT),
        )
}

/// The deadline of the reserve and ship steps: room for every attempt's patience.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How the saga's steps send commands and meet their answers.
#[derive(Clone)]
struct Commands {
    publisher: Publisher,
    replies: Replies,
}

impl Commands {
    /// A step action (or compensation) that sends the command `build` makes to `topic`,
    /// with this attempt's request id as its event id and the order as its key, and waits
    /// for the answer.
    fn step<C>(
        &self,
        topic: &'static str,
        build: fn(&StepContext<OrderData>) -> C,
    ) -> impl Fn(StepContext<OrderData>) -> StepFuture<OrderData> + Send + Sync + 'static
    where
        C: EventType + Send + 'static,
    {
        let commands = self.clone();
        move |ctx| {
            let commands = commands.clone();
            Box::pin(async move {
                let request_id = ctx.request_id();
                let event = Event::from_typed("/orders", &build(&ctx))
                    .map_err(|e| StepError::Permanent(e.to_string()))?
                    .with_id(&request_id)
                    .with_partition_key(&ctx.data.order_id);
                let send = async {
                    match commands.publisher.publish(topic, event).await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(StepError::Transient(format!("send to {topic}: {e}"))),
                    }
                };
                commands
                    .replies
                    .request(&request_id, PATIENCE, send)
                    .await
                    .map(|()| ctx.data)
            })
        }
    }
}

/// The handler of the facts that answer commands: each goes to the step waiting for the
/// request that caused it (facts nobody waits for are dropped: see `keel::saga::Replies`).
fn on_reply(replies: Replies) -> Handler {
    Handler::raw("saga-replies", move |event: Event, _| {
        if let (Some(request_id), Some(reply)) = (&event.causationid, answer(&event.ty)) {
            replies.deliver(request_id, reply);
        }
        std::future::ready(Ok(()))
    })
}

/// What a fact says about the command that caused it; `None` for facts that answer none.
fn answer(event_type: &str) -> Option<Reply> {
    let failed = |error: StepError| Some(Err(error));
    match event_type {
        StockReserved::TYPE
        | StockReleased::TYPE
        | PaymentCharged::TYPE
        | PaymentRefunded::TYPE
        | ShipmentCreated::TYPE => Some(Ok(())),
        StockRefused::TYPE => failed(StepError::Permanent("out of stock".into())),
        PaymentDeclined::TYPE => failed(StepError::Permanent("card declined".into())),
        PaymentUnavailable::TYPE => {
            failed(StepError::Transient("payment provider unavailable".into()))
        }
        _ => None,
    }
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
