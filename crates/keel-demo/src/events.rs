//! What the topics carry, as typed CloudEvents: the facts the services publish, and the
//! commands the order saga sends them.
//!
//! Each payload carries enough that a consumer never calls back (the email address travels
//! with the shipment and the decline). Every command carries its saga command id: the
//! receiving service keys its outcome by it and gives the fact announcing that outcome the
//! command id as its event id, so a command sent again is answered by the same fact.

use keel::core::EventType;
use serde::{Deserialize, Serialize};

/// Topic of the inventory service's facts.
pub const INVENTORY_TOPIC: &str = "inventory";
/// Topic of the payment service's facts.
pub const PAYMENTS_TOPIC: &str = "payments";
/// Topic of the shipping service's facts.
pub const SHIPPING_TOPIC: &str = "shipping";
/// Topic of the commands the inventory service takes.
pub const INVENTORY_COMMANDS: &str = "inventory.commands";
/// Topic of the commands the payment service takes.
pub const PAYMENTS_COMMANDS: &str = "payments.commands";
/// Topic of the commands the shipping service takes.
pub const SHIPPING_COMMANDS: &str = "shipping.commands";
/// Every topic of the order system.
pub const TOPICS: [&str; 6] = [
    INVENTORY_TOPIC,
    PAYMENTS_TOPIC,
    SHIPPING_TOPIC,
    INVENTORY_COMMANDS,
    PAYMENTS_COMMANDS,
    SHIPPING_COMMANDS,
];

/// Set stock aside for an order (the saga's reserve step).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReserveStock {
    /// The saga command id.
    pub command_id: String,
    /// The order.
    pub order_id: String,
    /// What.
    pub sku: String,
    /// How many.
    pub qty: i64,
}

impl EventType for ReserveStock {
    const TYPE: &'static str = "inventory.reserve-stock";
    const VERSION: u32 = 1;
}

/// Give an order's reservation back (the reserve step's compensation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseStock {
    /// The saga command id.
    pub command_id: String,
    /// The order.
    pub order_id: String,
}

impl EventType for ReleaseStock {
    const TYPE: &'static str = "inventory.release-stock";
    const VERSION: u32 = 1;
}

/// Charge an order's card (the saga's charge step).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargeCard {
    /// The saga command id.
    pub command_id: String,
    /// The order.
    pub order_id: String,
    /// The amount.
    pub amount_cents: i64,
    /// Whom to tell about a decline.
    pub email: String,
}

impl EventType for ChargeCard {
    const TYPE: &'static str = "payment.charge-card";
    const VERSION: u32 = 1;
}

/// Refund an order's charge (the charge step's compensation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundCharge {
    /// The saga command id.
    pub command_id: String,
    /// The order.
    pub order_id: String,
}

impl EventType for RefundCharge {
    const TYPE: &'static str = "payment.refund-charge";
    const VERSION: u32 = 1;
}

/// Ship an order (the saga's ship step).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateShipment {
    /// The saga command id.
    pub command_id: String,
    /// The order.
    pub order_id: String,
    /// Whom to tell.
    pub email: String,
}

impl EventType for CreateShipment {
    const TYPE: &'static str = "shipping.create-shipment";
    const VERSION: u32 = 1;
}

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

/// Stock for an order was refused: not enough left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockRefused {
    /// The order.
    pub order_id: String,
    /// What.
    pub sku: String,
    /// How many were asked.
    pub qty: i64,
}

impl EventType for StockRefused {
    const TYPE: &'static str = "inventory.stock.refused";
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

/// A charge could not be tried: the payment provider was unavailable. Transient: the saga
/// asks again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentUnavailable {
    /// The order.
    pub order_id: String,
}

impl EventType for PaymentUnavailable {
    const TYPE: &'static str = "payment.unavailable";
    const VERSION: u32 = 1;
}

/// A charge was refunded (the saga compensated after a later step failed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
    /// The amount.
    pub amount_cents: i64,
}

impl EventType for PaymentRefunded {
    const TYPE: &'static str = "payment.refunded";
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
