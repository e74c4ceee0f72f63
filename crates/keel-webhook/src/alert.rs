//! The JSON body of one alert: what the dead letter's report says, flat, with a fixed
//! `alert` name so a receiver can route on it.
//!
//! Not here: sending it (`sender.rs`).

use keel_runtime::DeadLetter;
use serde_json::{Value, json};

/// The body posted for `dead_letter`:
///
/// ```json
/// {"alert": "keel.dead_letter", "first_in_group": true, "event_id": "…",
///  "topic": "orders", "partition": 0, "offset": 42, "group": "billing",
///  "handler": "charge", "attempts": 5, "first_failure_ms": …, "last_failure_ms": …,
///  "error": "card processor says no", "kind": "permanent",
///  "dead_letter_topic": "orders.dlq", "dead_letter_offset": 7}
/// ```
pub fn alert_json(dead_letter: &DeadLetter) -> Value {
    let h = &dead_letter.headers;
    json!({
        "alert": "keel.dead_letter",
        "first_in_group": dead_letter.first_in_group,
        "event_id": dead_letter.event_id,
        "topic": h.topic,
        "partition": h.partition,
        "offset": h.offset,
        "group": h.group,
        "handler": h.handler,
        "attempts": h.attempts,
        "first_failure_ms": h.first_failure_ms,
        "last_failure_ms": h.last_failure_ms,
        "error": h.error,
        "kind": h.kind.as_str(),
        "dead_letter_topic": dead_letter.dead_letter_topic,
        "dead_letter_offset": dead_letter.dead_letter_offset,
    })
}
