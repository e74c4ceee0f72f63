//! The handling span, seen by a real `tracing` subscriber: its OpenTelemetry messaging
//! fields, and that a log line written inside a handler is inside it (so it names the event).
//!
//! A small capturing layer stands in for a log formatter or an OpenTelemetry exporter; both
//! see spans and events through the same `Layer` calls. Not here: metrics (`metrics.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::{Event, TraceParent};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_runtime::{Context, Handler, HandlerError, Route, Router};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, span};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Field values as text, by field name.
type Fields = BTreeMap<String, String>;

/// A log line and the spans it was written in, innermost first.
#[derive(Debug, Clone)]
struct Line {
    fields: Fields,
    spans: Vec<(String, Fields)>,
}

/// Records every span's fields and every event with its span scope.
#[derive(Debug, Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<Line>>>,
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let span = ctx.span(id).expect("a new span is registered");
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let span = ctx.span(id).expect("a recorded span is registered");
        let mut extensions = span.extensions_mut();
        let fields = extensions.get_mut::<Fields>().expect("fields of the span");
        values.record(&mut Visitor(fields));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .map(|span| {
                        let fields = span.extensions().get::<Fields>().cloned();
                        (span.name().to_string(), fields.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.lines.lock().unwrap().push(Line { fields, spans });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_log_line_inside_a_handler_is_inside_the_handling_span_with_its_fields() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _default = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    let log = Arc::new(Log::open_with(dir.path(), options).unwrap());
    let config = TopicConfig::new(2).with_fsync(FsyncPolicy::Never);
    log.create_topic("orders", config).unwrap();
    let bus = EmbeddedBus::new(log);
    let handler = Handler::raw("audit", |event: Event, _ctx: Context| async move {
        tracing::info!(subject = event.subject.as_deref(), "auditing the order");
        Ok::<(), HandlerError>(())
    });
    let router = Router::new(&bus)
        .route(Route::new("orders", "audit", handler))
        .start()
        .unwrap();
    let trace = TraceParent::new_root();
    let event = Event::new("/shop", "shop.order_placed")
        .with_subject("order-7")
        .with_partition_key("customer-3")
        .with_correlation_id("checkout-42")
        .with_traceparent(trace);
    let published = bus
        .publisher()
        .publish("orders", event.clone())
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        let found = capture
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.fields.get("message").map(String::as_str) == Some("auditing the order"))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "the handler's line never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    router.shutdown().await;

    assert_eq!(line.fields["subject"], "order-7");
    let (name, span) = line
        .spans
        .iter()
        .find(|(name, _)| name == "process")
        .expect("the line is inside the handling span");
    assert_eq!(name, "process");
    let expected = [
        ("otel.name", "orders process".to_string()),
        ("otel.kind", "consumer".to_string()),
        ("messaging.system", "keel".to_string()),
        ("messaging.operation.type", "process".to_string()),
        ("messaging.destination.name", "orders".to_string()),
        (
            "messaging.destination.partition.id",
            published.partition.to_string(),
        ),
        ("messaging.consumer.group.name", "audit".to_string()),
        ("messaging.kafka.offset", published.offset.to_string()),
        ("messaging.message.id", event.id.clone()),
        ("cloudevents.event_type", "shop.order_placed".to_string()),
        ("keel.correlation_id", "checkout-42".to_string()),
        ("keel.handler", "audit".to_string()),
        ("trace_id", hex(&trace.trace_id)),
    ];
    for (field, value) in expected {
        assert_eq!(
            span.get(field).map(String::as_str),
            Some(value.as_str()),
            "span field {field} in {span:?}"
        );
    }
}
