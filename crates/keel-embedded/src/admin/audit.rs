//! The dead-letter audit log on the embedded log, synchronously: `keel_runtime::admin::audit`
//! (every replay and purge as JSON records in [`AUDIT_TOPIC`]) read through [`LogAdmin`].

use keel_log::Log;
pub use keel_runtime::admin::audit::{
    AUDIT_ITEMS_PER_RECORD_MAX, AUDIT_TOPIC, AuditAction, AuditEntry, AuditError, AuditItem,
};

use super::{LogAdmin, at_once};
use keel_runtime::admin::audit as neutral;

/// Every audit entry, oldest first; entries of `dead_letter_topic` only when given.
pub fn history(log: &Log, dead_letter_topic: Option<&str>) -> Result<Vec<AuditEntry>, AuditError> {
    at_once(neutral::history(&LogAdmin::new(log, 0), dead_letter_topic))
}
