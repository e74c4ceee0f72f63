//! The saga state machine and store contract (`keel_saga::conformance`) on the in-memory
//! store. The same bodies run on SQLite and PostgreSQL in keel-sql's `tests/saga.rs`.

use keel_saga::MemorySagaStore;
use keel_saga::conformance;

#[tokio::test]
async fn conformance_suite() {
    conformance::run_all(|| async { MemorySagaStore::default() }).await;
}
