//! A member that died holding a partition, on the real server at `KEEL_TEST_NATS_URL`
//! (unset: the test says it did not run; set: an unreachable server fails it). The dead
//! member is played with raw client calls — its partition lease in the key-value bucket and
//! a consumer generation from which it pulled five messages it never acknowledged — so the
//! test shows what the next member does: it waits for the lease to age out, starts the next
//! generation at the acknowledgement floor (no wait for JetStream's redelivery) and handles
//! all ten events once, in order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy};
use futures_util::StreamExt;
use keel_core::{Event, GroupPolicy};
use keel_nats::{NatsConfig, NatsTransport};
use keel_runtime::{ConsumerPolicy, Handler, Route, Router};

const URL_VAR: &str = "KEEL_TEST_NATS_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_members_unacknowledged_messages_come_again_at_once_and_in_order() {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("nats takeover: not run, {URL_VAR} is unset");
        return;
    };
    let namespace = format!("t{}", uuid::Uuid::now_v7().simple());
    let namespace = &namespace[..32];
    let config = NatsConfig::new(url.clone())
        .with_namespace(namespace)
        .expect("namespace");
    let nats = NatsTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set but NATS is unreachable: {e}"));
    nats.ensure_topic("orders", 1).await.expect("topic");
    let publisher = nats.publisher();
    for seq in 0..10 {
        let event = Event::new("/test", "step")
            .with_partition_key("k")
            .with_data("text/plain", seq.to_string().into_bytes());
        publisher.publish("orders", event).await.expect("publish");
    }
    // The dead member: the partition's lease (aging out after the 3 s session), and
    // generation 1 of the group's consumer with five messages pulled, none acknowledged.
    let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"));
    let bucket = format!("{namespace}_leases_3000ms");
    jetstream
        .create_stream(StreamConfig {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: Duration::from_secs(3),
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            ..StreamConfig::default()
        })
        .await
        .expect("lease bucket");
    let leases = jetstream.get_key_value(&bucket).await.expect("bucket");
    // Taken after this instant, the lease ages out no earlier than 3 s after it.
    let dead_until = Instant::now() + Duration::from_secs(3);
    leases
        .create("orders.billing.p0", "dead".into())
        .await
        .expect("the dead member's lease");
    let stream = jetstream
        .get_stream(format!("{namespace}_orders"))
        .await
        .expect("stream");
    let consumer = stream
        .create_consumer(PullConfig {
            durable_name: Some("billing_p0_g1".to_string()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::All,
            ack_wait: Duration::from_secs(3600),
            filter_subject: format!("{namespace}.orders.0"),
            ..PullConfig::default()
        })
        .await
        .expect("generation 1");
    let mut pulled = consumer
        .fetch()
        .max_messages(5)
        .messages()
        .await
        .expect("pull");
    let mut unacknowledged = 0;
    while let Some(message) = pulled.next().await {
        message.expect("message");
        unacknowledged += 1;
    }
    assert_eq!(unacknowledged, 5);

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
    let handle = Router::new(&nats).route(route).start().expect("router");
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
    let names: Vec<String> = futures_util::TryStreamExt::try_collect(stream.consumer_names())
        .await
        .expect("consumers");
    assert_eq!(names, ["billing_p0_g2"], "generation 1 replaced");
}
