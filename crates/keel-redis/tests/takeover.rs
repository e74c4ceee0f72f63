//! A member that died holding a partition, on the real server at `KEEL_TEST_REDIS_URL`
//! (unset: the test says it did not run; set: an unreachable server fails it). The dead
//! member is played with raw commands — its partition lease (`SET NX PX`) and five entries
//! it read (`XREADGROUP`) and never acknowledged — so the test shows what the next member
//! does: it waits for the lease to age out, claims the dead member's pending entries
//! (`XAUTOCLAIM`) and handles all ten events once, in order, acknowledging them all.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::{Event, GroupPolicy};
use keel_redis::{RedisConfig, RedisTransport};
use keel_runtime::{ConsumerPolicy, Handler, Route, Router};

const URL_VAR: &str = "KEEL_TEST_REDIS_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_members_pending_entries_are_claimed_and_handled_in_order() {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("redis takeover: not run, {URL_VAR} is unset");
        return;
    };
    let namespace = support::fresh_namespace(&url).await;
    let config = RedisConfig::new(url.clone())
        .with_namespace(&namespace)
        .expect("namespace");
    let redis = RedisTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set but Redis is unreachable: {e}"));
    redis.ensure_topic("orders", 1).await.expect("topic");
    let publisher = redis.publisher();
    for seq in 0..10 {
        let event = Event::new("/test", "step")
            .with_partition_key("k")
            .with_data("text/plain", seq.to_string().into_bytes());
        publisher.publish("orders", event).await.expect("publish");
    }
    // The dead member: the partition's lease for 1.5 s, five entries read, none acknowledged.
    let stream = format!("{namespace}:stream:orders:0");
    let lease = format!("{namespace}:group:6:orders:billing:p0");
    let mut raw = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let (): () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("billing")
        .arg("0")
        .query_async(&mut raw)
        .await
        .expect("group");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("billing")
        .arg("dead")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut raw)
        .await
        .expect("the dead member's read");
    // Taken after this instant, the lease ages out no earlier than 1.5 s after it.
    let dead_until = Instant::now() + Duration::from_millis(1_500);
    let taken: Option<String> = redis::cmd("SET")
        .arg(&lease)
        .arg("dead")
        .arg("NX")
        .arg("PX")
        .arg(1_500)
        .query_async(&mut raw)
        .await
        .expect("the dead member's lease");
    assert!(taken.is_some());

    let seen: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let record = seen.clone();
    let handler = Handler::raw("record", move |event, _| {
        let seq = std::str::from_utf8(event.data.as_deref().expect("data"))
            .expect("utf-8")
            .parse()
            .expect("seq");
        record.lock().unwrap().push((seq, Instant::now()));
        async { Ok(()) }
    });
    let route = Route::new("orders", "billing", handler)
        .with_consumer(ConsumerPolicy {
            poll_interval: Duration::from_millis(20),
            commit_interval: Duration::from_millis(20),
            ..ConsumerPolicy::default()
        })
        .with_group_policy(GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        });
    let handle = Router::new(&redis).route(route).start().expect("router");
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 10 {
        assert!(
            Instant::now() < deadline,
            "timed out: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    let seqs: Vec<u32> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "each once, in order");
    assert!(
        seen[0].1 >= dead_until,
        "nothing handled while the dead member's lease held"
    );
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("billing")
        .query_async(&mut raw)
        .await
        .expect("pending");
    let redis::Value::Array(summary) = pending else {
        panic!("XPENDING's summary: {pending:?}");
    };
    assert_eq!(
        summary.first(),
        Some(&redis::Value::Int(0)),
        "all acknowledged"
    );
}
