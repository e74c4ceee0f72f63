//! The operator API and console over a real listener: dead letters made by a real router,
//! inspected, replayed as a canary, purged, and audited over HTTP; the router's group
//! deleted once it stopped (refused while it runs), with its offsets in the audit log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keel_core::Event;
use keel_log::TopicConfig;
use keel_runtime::{Handler, HandlerError, RetryPolicy, Route, Router};
use keel_server::{Server, ServerConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// How long a condition may take to become true before the test fails.
const WAIT_MAX: Duration = Duration::from_secs(20);

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    without_body(ureq::get(format!("http://{addr}{path}")))
}

fn delete(addr: SocketAddr, path: &str) -> (u16, Value) {
    without_body(ureq::delete(format!("http://{addr}{path}")))
}

/// Sends `request` and answers its status and JSON body, whatever the status.
fn without_body(request: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> (u16, Value) {
    let response = request
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.into_body().read_json().expect("a JSON body"),
    )
}

fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let response = ureq::post(format!("http://{addr}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.into_body().read_json().expect("a JSON body"),
    )
}

/// Polls `GET path` on a blocking thread until `done` holds for the body.
async fn wait_for(addr: SocketAddr, path: &'static str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let (_, body) = tokio::task::spawn_blocking(move || get(addr, path))
            .await
            .unwrap();
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never satisfied the condition: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_purged_and_audited_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    let server = Server::open(config).unwrap();
    let bus = server.bus().clone();
    bus.log()
        .create_topic("orders", TopicConfig::new(2))
        .unwrap();
    // A handler that always refuses: every event becomes a dead letter at once.
    let handler = Handler::raw("charge", |_event: Event, _ctx| async {
        Err::<(), _>(HandlerError::permanent("card processor says no"))
    });
    let route = Route::new("orders", "billing", handler).with_retry(RetryPolicy {
        attempts_max: 1,
        ..RetryPolicy::default()
    });
    let router = Router::new(bus.as_ref()).route(route).start().unwrap();
    for key in ["order-1", "order-2"] {
        let event = Event::new("/test", "order.placed").with_partition_key(key);
        bus.publisher().publish("orders", event).await.unwrap();
    }

    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, bound) = oneshot::channel();
    let serving = tokio::spawn(server.run(
        async {
            let _ = stopped.await;
        },
        move |addrs| ready.send(addrs.http).unwrap(),
    ));
    let addr = bound.await.unwrap();

    let summaries = wait_for(addr, "/api/dead-letters", |body| body[0]["pending"] == 2).await;
    assert_eq!(summaries[0]["dead_letter_topic"], "orders.dlq");
    assert_eq!(summaries[0]["causes"][0]["group"], "billing");
    assert_eq!(summaries[0]["causes"][0]["kind"], "permanent");

    let (status, letters) = get(addr, "/api/dead-letters/orders?key=order-2");
    assert_eq!(status, 200);
    assert_eq!(letters.as_array().unwrap().len(), 1, "{letters}");
    assert_eq!(letters[0]["headers"]["handler"], "charge");
    assert!(
        letters[0]["headers"]["error"]
            .as_str()
            .unwrap()
            .contains("card processor says no")
    );

    let groups = wait_for(addr, "/api/groups", |body| body[0]["lag_events"] == 0).await;
    assert_eq!(groups[0]["group"], "billing");
    let (status, lag) = get(addr, "/api/groups/billing");
    assert_eq!(status, 200);
    assert_eq!(
        lag.as_array().unwrap().len(),
        2,
        "one row per partition: {lag}"
    );

    // A canary: one event goes back, fails again (the handler is still broken) and is
    // reported as dead-lettered again.
    let (status, report) = post(
        addr,
        "/api/dead-letters/orders/replay",
        json!({ "canary": true }),
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["replayed"].as_array().unwrap().len(), 1);
    let id = report["id"].as_str().unwrap().to_owned();
    let canary_path: &'static str = format!("/api/dead-letters/canary/{id}").leak();
    let outcome = wait_for(addr, canary_path, |body| body["outcome"] != "pending").await;
    assert_eq!(outcome["outcome"], "dead_lettered", "{outcome}");

    // Three letters now: the replayed one, the one never replayed and the canary's new one.
    // A purge without confirmation writes nothing; with it, all three are gone.
    let (_, dry) = post(addr, "/api/dead-letters/orders/purge", json!({}));
    assert_eq!(dry["confirmed"], false, "{dry}");
    assert_eq!(dry["purged"].as_array().unwrap().len(), 3, "{dry}");
    let (status, purged) = post(
        addr,
        "/api/dead-letters/orders/purge",
        json!({ "confirm": true }),
    );
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged["confirmed"], true);
    let (_, summaries) = get(addr, "/api/dead-letters");
    assert_eq!(summaries[0]["pending"], 0, "{summaries}");
    assert_eq!(summaries[0]["purged"], 3, "{summaries}");

    let (_, audit) = get(addr, "/api/audit?topic=orders.dlq");
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["canary", "purge"], "{audit}");
    assert!(
        audit[0]["command"]
            .as_str()
            .unwrap()
            .contains("from 127.0.0.1"),
        "{audit}"
    );

    // Errors are a status and one line naming the problem.
    let (status, error) = get(addr, "/api/groups/nobody");
    assert_eq!(status, 404);
    assert!(
        error["error"].as_str().unwrap().contains("nobody"),
        "{error}"
    );
    let (status, error) = post(addr, "/api/dead-letters/payments/replay", json!({}));
    assert_eq!(status, 404);
    assert!(
        error["error"].as_str().unwrap().contains("payments"),
        "{error}"
    );

    let page = ureq::get(format!("http://{addr}/"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(page.contains("<title>Overview · Keel</title>"), "{page}");
    assert!(
        page.contains("/dead-letters/orders.dlq"),
        "the console links the dead letters"
    );

    // Deleting the group: 409 while its router runs, then gone once it stopped.
    let (status, error) = delete(addr, "/api/groups/billing");
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("running members"),
        "{error}"
    );
    router.shutdown().await;
    let (_, lag) = get(addr, "/api/groups/billing");
    let (status, deleted) = delete(addr, "/api/groups/billing?command=ops%20cleanup");
    assert_eq!(status, 200, "{deleted}");
    let offsets = deleted["offsets"].as_array().unwrap();
    assert_eq!(
        offsets.len(),
        2,
        "one committed offset per partition: {deleted}"
    );
    for (offset, partition) in offsets.iter().zip(lag.as_array().unwrap()) {
        assert_eq!(offset["topic"], "orders");
        assert_eq!(offset["partition"], partition["partition"]);
        assert_eq!(
            offset["offset"], partition["committed_offset"],
            "{deleted} {lag}"
        );
    }
    // The audit log keeps who deleted it and the offsets it had.
    let (_, audit) = get(addr, "/api/audit");
    let entry = audit.as_array().unwrap().last().unwrap().clone();
    assert_eq!(entry["action"], "delete_group", "{audit}");
    assert_eq!(entry["id"], deleted["id"]);
    assert_eq!(entry["group"], "billing");
    assert_eq!(entry["items"].as_array().unwrap().len(), 2, "{entry}");
    assert_eq!(entry["items"][0]["topic"], "orders", "{entry}");
    assert!(
        entry["command"]
            .as_str()
            .unwrap()
            .starts_with("ops cleanup (via DELETE /api/groups/billing from 127.0.0.1"),
        "{entry}"
    );
    let (_, audit) = get(addr, "/api/audit?topic=orders.dlq");
    assert_eq!(
        audit.as_array().unwrap().len(),
        2,
        "a deletion is not a dead letter's: {audit}"
    );
    let (status, _) = get(addr, "/api/groups/billing");
    assert_eq!(status, 404, "no longer a group");
    let (status, _) = delete(addr, "/api/groups/billing");
    assert_eq!(status, 404, "nothing left to delete");

    stop.send(()).unwrap();
    serving.await.unwrap().expect("clean shutdown");
}
