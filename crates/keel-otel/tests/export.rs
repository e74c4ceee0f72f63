//! OTLP export end to end: a real OTLP/HTTP receiver (axum on a loopback port, decoding the
//! protobuf requests with `opentelemetry-proto`) gets the spans of publish → handle →
//! publish → handle, and they form one trace with the right parent links and the
//! OpenTelemetry messaging attributes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use keel_core::{Event, TraceParent};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_otel::{OtelConfig, TRACES_PATH};
use keel_runtime::{Context, Handler, HandlerError, Route, Router};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tracing_subscriber::layer::SubscriberExt;

/// Spans received, in arrival order.
type Received = Arc<Mutex<Vec<Span>>>;

/// Starts an OTLP/HTTP trace receiver on its own thread and runtime (the exporter's
/// blocking flush must not wait on the test's executor) and returns its base URL.
fn start_receiver(received: Received) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        TRACES_PATH,
        post(move |body: Bytes| {
            let received = received.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let spans = request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans);
                received.lock().unwrap().extend(spans);
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

#[tokio::test]
async fn publish_handle_publish_handle_is_one_exported_trace() {
    let received: Received = Arc::default();
    let url = start_receiver(received.clone());
    let config = OtelConfig::default()
        .with_endpoint(url)
        .with_service_name("keel-otel-test");
    let otel = keel_otel::init(&config).unwrap();
    let subscriber = tracing_subscriber::registry().with(otel.layer());
    let _default = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    let log = Arc::new(Log::open_with(dir.path(), options).unwrap());
    for topic in ["orders", "invoices"] {
        let config = TopicConfig::new(1).with_fsync(FsyncPolicy::Never);
        log.create_topic(topic, config).unwrap();
    }
    let bus = EmbeddedBus::new(log);
    let billing = Handler::raw("bill", |_order: Event, ctx: Context| async move {
        let invoice = Event::new("/billing", "shop.invoice_issued");
        ctx.publish("invoices", invoice)
            .await
            .map_err(HandlerError::transient)?;
        Ok(())
    });
    let mailed: Arc<Mutex<Vec<Event>>> = Arc::default();
    let mailer = {
        let mailed = mailed.clone();
        Handler::raw("mail", move |invoice: Event, _ctx: Context| {
            let mailed = mailed.clone();
            async move {
                mailed.lock().unwrap().push(invoice);
                Ok(())
            }
        })
    };
    let router = Router::new(&bus)
        .route(Route::new("orders", "billing", billing))
        .route(Route::new("invoices", "mailing", mailer))
        .start()
        .unwrap();

    // The order comes from an upstream service whose span is `upstream`.
    let upstream = TraceParent::new_root();
    let order = Event::new("/shop", "shop.order_placed").with_traceparent(upstream);
    bus.publisher()
        .publish("orders", order.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mailed.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the invoice was never mailed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    router.shutdown().await;
    tokio::task::spawn_blocking(move || otel.shutdown())
        .await
        .unwrap()
        .unwrap();

    let spans = received.lock().unwrap().clone();
    let span = |name: &str| -> Span {
        let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span among {:?}", names(&spans));
        found[0].clone()
    };
    let order_send = span("orders send");
    let order_process = span("orders process");
    let invoice_send = span("invoices send");
    let invoice_process = span("invoices process");

    // One trace, the upstream's, with each step the child of the one before.
    for s in [&order_send, &order_process, &invoice_send, &invoice_process] {
        assert_eq!(
            s.trace_id, upstream.trace_id,
            "{} in the upstream trace",
            s.name
        );
    }
    assert_eq!(order_send.parent_span_id, upstream.parent_id);
    assert_eq!(order_process.parent_span_id, order_send.span_id);
    assert_eq!(invoice_send.parent_span_id, order_process.span_id);
    assert_eq!(invoice_process.parent_span_id, invoice_send.span_id);
    assert_eq!(order_send.kind, SpanKind::Producer as i32);
    assert_eq!(invoice_send.kind, SpanKind::Producer as i32);
    assert_eq!(order_process.kind, SpanKind::Consumer as i32);
    assert_eq!(invoice_process.kind, SpanKind::Consumer as i32);

    // The invoice carries the trace context of its send span, and its causation.
    let invoice = mailed.lock().unwrap()[0].clone();
    let carried = invoice.traceparent.expect("the invoice has a traceparent");
    assert_eq!(carried.trace_id, upstream.trace_id);
    assert_eq!(
        carried.parent_id.as_slice(),
        invoice_send.span_id.as_slice()
    );
    assert_eq!(invoice.causationid.as_deref(), Some(order.id.as_str()));

    // Messaging attributes per the OpenTelemetry conventions.
    let expected = [
        (&order_send, "messaging.operation.type", "send"),
        (&order_send, "messaging.destination.name", "orders"),
        (&order_send, "messaging.message.id", order.id.as_str()),
        (&order_process, "messaging.system", "keel"),
        (&order_process, "messaging.operation.type", "process"),
        (&order_process, "messaging.destination.name", "orders"),
        (&order_process, "messaging.consumer.group.name", "billing"),
        (&order_process, "messaging.message.id", order.id.as_str()),
        (
            &order_process,
            "cloudevents.event_type",
            "shop.order_placed",
        ),
        (&invoice_send, "messaging.destination.name", "invoices"),
        (&invoice_process, "messaging.consumer.group.name", "mailing"),
        (
            &invoice_process,
            "messaging.message.id",
            invoice.id.as_str(),
        ),
    ];
    for (span, key, value) in expected {
        assert_eq!(
            attribute(span, key).as_deref(),
            Some(value),
            "{key} of {}",
            span.name
        );
    }
    assert_eq!(
        attribute(&order_process, "messaging.destination.partition.id").as_deref(),
        Some("0")
    );
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// An attribute's value as text (strings as they are, integers in decimal).
fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    match value.value.as_ref()?.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        other => Some(format!("{other:?}")),
    }
}
