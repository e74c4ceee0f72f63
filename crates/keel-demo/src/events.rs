//! The facts the services publish, as typed CloudEvents: what each topic carries.
//!
//! Each payload carries enough that a consumer never calls back (the email address travels
//! with the shipment and the decline).

use keel::core::EventType;
use serde::{Deserialize, Serialize};

/// Topic of the inventory service's facts.
pub const INVENTORY_TOPIC: &str = "inventory";
/// Topic of the payment service's facts.
pub const PAYMENTS_TOPIC: &str = "payments";
/// Topic of the shipping service's facts.
pub const SHIPPING_TOPIC: &str = "shipping";

/// Stock was set aside for an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockReserved {
    /// The order.
    pub order_id: String,
    /// What.
    pub sku: String,
    /// How many.
    pub qty: i64,
}

impl EventType for StockReserved {
    const TYPE: &'static str = "inventory.stock.reserved";
    const VERSION: u32 = 1;
}

/// A reservation was given back (the order's saga compensated).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockReleased {
    /// The order.
    pub order_id: String,
    /// What.
    pub sku: String,
    /// How many.
    pub qty: i64,
}

impl EventType for StockReleased {
    const TYPE: &'static str = "inventory.stock.released";
    const VERSION: u32 = 1;
}

/// A card was charged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentCharged {
    /// The order.
    pub order_id: String,
    /// The amount.
    pub amount_cents: i64,
}

impl EventType for PaymentCharged {
    const TYPE: &'static str = "payment.charged";
    const VERSION: u32 = 1;
}

/// A card was declined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentDeclined {
    /// The order.
    pub order_id: String,
    /// The amount asked.
    pub amount_cents: i64,
    /// Whom to tell.
    pub email: String,
}

impl EventType for PaymentDeclined {
    const TYPE: &'static str = "payment.declined";
    const VERSION: u32 = 1;
}

/// A shipment was created for an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentCreated {
    /// The order.
    pub order_id: String,
    /// The shipment.
    pub shipment_id: String,
    /// Whom to tell.
    pub email: String,
}

impl EventType for ShipmentCreated {
    const TYPE: &'static str = "shipping.shipment.created";
    const VERSION: u32 = 1;
}
