//! The demo's self-check: the numbers every run must agree on, whatever the outage and the
//! decline rate, and the list of what disagreed.

use crate::inventory::ReservationCounts;
use crate::order::OrderCounts;

/// What the run did, counted by each service in its own database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Orders by status, from the order-summary projection.
    pub orders: OrderCounts,
    /// Orders whose aggregate (event store) ended confirmed.
    pub confirmed_aggregates: u64,
    /// Cards charged and not refunded.
    pub charges: u64,
    /// Inventory reservations by state.
    pub reservations: ReservationCounts,
    /// Shipments created.
    pub shipments: u64,
    /// Declines counted by analytics.
    pub declines: u64,
    /// Emails sent.
    pub emails: u64,
    /// Events in dead-letter topics (invalid addresses).
    pub dead_letters: u64,
    /// Addresses the run made invalid on purpose.
    pub poison_orders: u64,
    /// Orders placed by the run.
    pub requested: u64,
    /// Orders by status after rebuilding the projection from zero.
    pub rebuilt: OrderCounts,
}

impl Summary {
    /// Every invariant the run broke, one line each; empty when the run is consistent.
    pub fn violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                violations.push(what);
            }
        };
        let o = self.orders;
        let r = self.reservations;
        check(
            o.placed == self.requested,
            format!(
                "orders placed {} != orders requested {}",
                o.placed, self.requested
            ),
        );
        check(
            o.placed == o.confirmed + o.rejected,
            format!(
                "placed {} != confirmed {} + rejected {}",
                o.placed, o.confirmed, o.rejected
            ),
        );
        check(
            self.charges == o.confirmed,
            format!(
                "charges {} != confirmed orders {}",
                self.charges, o.confirmed
            ),
        );
        check(
            self.confirmed_aggregates == o.confirmed,
            format!(
                "confirmed aggregates {} != projection {}",
                self.confirmed_aggregates, o.confirmed
            ),
        );
        check(
            r.made == r.released + r.shipped,
            format!(
                "reserved {} != released {} + shipped {} (held: {})",
                r.made, r.released, r.shipped, r.held
            ),
        );
        check(
            self.shipments == o.confirmed,
            format!(
                "shipments {} != confirmed orders {}",
                self.shipments, o.confirmed
            ),
        );
        check(
            self.emails + self.dead_letters == self.shipments + self.declines,
            format!(
                "emails {} + dead letters {} != shipments {} + declines {}",
                self.emails, self.dead_letters, self.shipments, self.declines
            ),
        );
        check(
            self.dead_letters <= self.poison_orders,
            format!(
                "dead letters {} > poison orders {}",
                self.dead_letters, self.poison_orders
            ),
        );
        check(
            self.rebuilt == o,
            format!(
                "rebuilt projection {:?} != live projection {o:?}",
                self.rebuilt
            ),
        );
        violations
    }
}
