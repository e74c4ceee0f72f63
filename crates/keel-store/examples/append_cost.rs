//! The embedded event store's per-append CPU cost, for `valgrind --tool=callgrind`: one
//! writer appends `count` one-event appends with an exact expected version, round robin over
//! 8 streams, to a store whose topics have `fsync = never` (the kernel's fsync is not what
//! callgrind counts; the store's own work is). Run it twice with different counts and divide
//! the difference in instructions by the difference in appends, so opening the store and
//! the runtime drop out:
//!
//! ```sh
//! cargo build --release -p keel-store --example append_cost
//! for n in 10000 20000; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//!     target/release/examples/append_cost $n; done
//! ```
//!
//! Not a benchmark of speed: `event_store_bench` in keel-sql measures appends per second.

use keel_core::Event;
use keel_log::{FsyncPolicy, Log};
use keel_store::{EmbeddedStore, EmbeddedStoreOptions, EventStore, ExpectedVersion};

const STREAMS: u64 = 8;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = Log::open(dir.path()).expect("open the log");
    let options = EmbeddedStoreOptions {
        fsync: FsyncPolicy::Never,
        ..EmbeddedStoreOptions::default()
    };
    let store = EmbeddedStore::open_with(&log, &options).expect("open the store");
    for n in 0..count {
        let event = Event::new("/bench", "counter.added")
            .with_data("application/json", (n % 100).to_string().into_bytes());
        store
            .append(
                &format!("counter-{}", n % STREAMS),
                ExpectedVersion::Exact(n / STREAMS),
                vec![event],
            )
            .await
            .expect("append");
    }
    println!("{count} appends");
}
