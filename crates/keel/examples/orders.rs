//! The README's library example: an order service publishes `order.placed`, a billing
//! handler in its own consumer group reacts and publishes `payment.requested`, whose
//! correlation and causation ids point back at the order. Runs on the embedded log in a
//! temporary directory: `cargo run -p keel --example orders`.

use std::sync::Arc;
use std::time::Duration;

use keel::core::{Event, EventType};
use keel::embedded::EmbeddedBus;
use keel::log::{Log, TopicConfig};
use keel::runtime::{Context, Handler, HandlerError, Route, Router};
use serde::{Deserialize, Serialize};

/// A fact: the order exists. It carries what consumers need, so nobody calls back.
#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    total_cents: u64,
}

impl EventType for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    const VERSION: u32 = 1;
}

/// Billing's reaction, published from inside the handler.
#[derive(Debug, Serialize, Deserialize)]
struct PaymentRequested {
    order_id: String,
    amount_cents: u64,
}

impl EventType for PaymentRequested {
    const TYPE: &'static str = "payment.requested";
    const VERSION: u32 = 1;
}

async fn bill(order: OrderPlaced, ctx: Context) -> Result<(), HandlerError> {
    let request = PaymentRequested {
        order_id: order.order_id.clone(),
        amount_cents: order.total_cents,
    };
    // Partition by entity id: every event of one order stays in order.
    let event = Event::from_typed("/billing", &request)
        .map_err(HandlerError::permanent)?
        .with_partition_key(order.order_id);
    ctx.publish("payments", event).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log = Arc::new(Log::open(dir.path())?);
    log.create_topic("orders", TopicConfig::new(3))?;
    log.create_topic("payments", TopicConfig::new(3))?;
    let bus = EmbeddedBus::new(log.clone());

    let router = Router::new(&bus)
        .route(Route::new(
            "orders",
            "billing",
            Handler::typed("bill", bill),
        ))
        .start()?;

    let placed = OrderPlaced {
        order_id: "order-1".into(),
        total_cents: 4200,
    };
    let event = Event::from_typed("/orders", &placed)?.with_partition_key("order-1");
    let order_id = event.id.clone();
    bus.publisher().publish("orders", event).await?;

    // Wait (bounded) for billing's follow-up to land, then shut down gracefully.
    let payments = log.topic("payments").expect("created above");
    let partition = payments
        .partition(payments.partition_for(Some(b"order-1")))
        .expect("exists");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while partition.high_watermark() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    router.shutdown().await;

    let record = partition.read_records(0, 1 << 20)?.remove(0);
    let headers = record
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_deref()));
    let payment = Event::from_binary(record.key.as_deref(), headers, record.value.as_deref())?;
    println!("{} caused by {}", payment.ty, order_id);
    assert_eq!(payment.causationid.as_deref(), Some(order_id.as_str()));
    assert_eq!(payment.correlationid.as_deref(), Some(order_id.as_str()));
    Ok(())
}
