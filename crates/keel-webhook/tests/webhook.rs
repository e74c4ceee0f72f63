//! The webhook against a real HTTP listener on 127.0.0.1: a router dead-letters events of
//! two groups, and the listener receives one JSON `POST` per group — the group's first dead
//! letter — with the report's fields. Also: a URL the crate cannot serve is refused with a
//! one-line error, and an endpoint that fails is retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use keel_core::Event;
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, TopicConfig};
use keel_runtime::{Handler, HandlerError, RetryPolicy, Route, Router};
use keel_webhook::{DeadLetterWebhook, WebhookConfig};
use serde_json::Value;

/// One received request: its request line and its JSON body.
struct Received {
    request_line: String,
    content_type: String,
    body: Value,
}

/// Serves HTTP/1.1 on a free port: answers each request with the next status of `statuses`
/// (then 200), and sends every request it got to the returned channel.
fn listener(statuses: Vec<u16>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let (mut length, mut content_type) = (0, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => content_type = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = statuses.next().unwrap_or(200);
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            let received = Received {
                request_line: request_line.trim_end().to_string(),
                content_type,
                body: serde_json::from_slice(&body).unwrap(),
            };
            if tx.send(received).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_dead_letter_of_each_group_is_posted_once() {
    let (url, received) = listener(vec![503]);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("orders", TopicConfig::new(1).with_fsync(FsyncPolicy::Never))
        .unwrap();
    let bus = EmbeddedBus::new(log.clone());
    let refuse = |name: &str| {
        Handler::raw(name, |_event: Event, _ctx| async {
            Err::<(), _>(HandlerError::permanent("card processor says no"))
        })
    };
    let once = RetryPolicy {
        attempts_max: 1,
        ..RetryPolicy::default()
    };
    let webhook = DeadLetterWebhook::start(WebhookConfig::new(&url).unwrap()).unwrap();
    let router = Router::new(&bus)
        .on_dead_letter(webhook.hook())
        .route(Route::new("orders", "billing", refuse("charge")).with_retry(once.clone()))
        .route(Route::new("orders", "audit", refuse("record")).with_retry(once))
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for key in ["order-1", "order-2", "order-3"] {
        let event = Event::new("/test", "order.placed").with_partition_key(key);
        ids.push(event.id.clone());
        bus.publisher().publish("orders", event).await.unwrap();
    }
    let dlq = log.clone();
    tokio::time::timeout(Duration::from_secs(30), async move {
        while dlq
            .topic("orders.dlq")
            .map_or(0, |t| t.partitions()[0].high_watermark())
            < 6
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("six dead letters");

    // The first POST got a 503 and was retried: three requests carry two alerts.
    let mut alerts = Vec::new();
    for _ in 0..3 {
        let got = received
            .recv_timeout(Duration::from_secs(30))
            .expect("a POST");
        assert_eq!(got.request_line, "POST /alerts HTTP/1.1");
        assert!(
            got.content_type.starts_with("application/json"),
            "{}",
            got.content_type
        );
        alerts.push(got.body);
    }
    assert_eq!(alerts[0], alerts[1], "the retry posts the same alert");
    let mut by_group: Vec<&Value> = alerts[1..].iter().collect();
    by_group.sort_by_key(|a| a["group"].as_str().unwrap().to_string());
    for (alert, (group, handler)) in by_group
        .iter()
        .zip([("audit", "record"), ("billing", "charge")])
    {
        assert_eq!(alert["alert"], "keel.dead_letter");
        assert_eq!(alert["first_in_group"], true);
        assert_eq!(alert["group"], group);
        assert_eq!(alert["handler"], handler);
        assert_eq!(alert["topic"], "orders");
        assert_eq!(alert["partition"], 0);
        assert_eq!(alert["kind"], "permanent");
        assert_eq!(alert["attempts"], 1);
        assert_eq!(alert["error"], "card processor says no");
        assert_eq!(alert["dead_letter_topic"], "orders.dlq");
        let offset = alert["offset"].as_u64().unwrap() as usize;
        assert_eq!(
            alert["event_id"],
            ids[offset].as_str(),
            "the id of the event at its offset"
        );
    }
    router.shutdown().await;
    drop(webhook);
    assert!(
        received.recv_timeout(Duration::from_millis(500)).is_err(),
        "later dead letters of a group post nothing"
    );
}

#[test]
fn urls_it_cannot_serve_are_refused_naming_the_problem() {
    for (url, problem) in [
        ("https://alerts.example/x", "https is not built in"),
        ("alerts.example/x", "expected http://"),
        ("http://", "expected http://"),
    ] {
        let error = WebhookConfig::new(url).unwrap_err().to_string();
        assert!(error.contains(url) && error.contains(problem), "{error}");
        assert!(!error.contains('\n'));
    }
}
