//! `keel-otel`: exports the spans Keel writes through `tracing` to an OpenTelemetry
//! collector over OTLP/HTTP (protobuf), behind the `otel` feature of `keel` and `keel-cli`.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! let otel = keel_otel::init(&keel_otel::OtelConfig::default()).expect("OTLP exporter");
//! tracing_subscriber::registry().with(otel.layer()).init();
//! // ... run publishers and routers ...
//! otel.shutdown(); // exports what is still buffered
//! ```
//!
//! Which spans: every handled event's `<topic> process` span (consumer kind) and every
//! publish's `<topic> send` span (producer kind), with the OpenTelemetry messaging
//! attributes (`messaging.system = "keel"`, `messaging.destination.name`,
//! `messaging.consumer.group.name`, `messaging.message.id`, ...), plus whatever spans the
//! application writes. A consumer span's parent is the producer's span named by the event's
//! `traceparent`, and a publish inside a handler is a child of the handler's span, so a
//! chain of events is one trace (`keel-runtime`'s `otel` feature does that part; this crate
//! turns it on).
//!
//! Configuration: [`OtelConfig`], whose unset fields fall back to the standard variables
//! the OpenTelemetry SDK reads — `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`. Spans are batched and sent from the SDK's own thread with a
//! blocking HTTP client without TLS (a collector on the host or in the pod; put a collector
//! in front for TLS), so exporting never blocks the async executor.
//!
//! Not here: the trace context itself (`keel-runtime`'s `otel.rs`), logs and metrics (Keel's
//! metrics are Prometheus, `keel_runtime::Metrics`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The path OTLP/HTTP serves traces on, appended to a base endpoint.
pub const TRACES_PATH: &str = "/v1/traces";

/// What [`init`] sets up; every `None` falls back to the standard `OTEL_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtelConfig {
    /// The collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://host:4318`);
    /// spans go to `<endpoint>/v1/traces`.
    pub endpoint: Option<String>,
    /// The `service.name` resource attribute, as `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
}

impl OtelConfig {
    /// Sets the collector's base URL.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> OtelConfig {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the service name.
    #[must_use]
    pub fn with_service_name(mut self, name: impl Into<String>) -> OtelConfig {
        self.service_name = Some(name.into());
        self
    }
}

/// Why [`init`] failed. Its `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The exporter could not be built (an endpoint that is not a URL, a bad header, ...).
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// A running OTLP span export. Dropping it (or [`Otel::shutdown`]) exports what is still
/// buffered and stops the export thread.
#[derive(Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
}

/// Sets up batched span export over OTLP/HTTP. Install [`Otel::layer`] in the `tracing`
/// subscriber for spans to reach it.
pub fn init(config: &OtelConfig) -> Result<Otel, InitError> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = &config.endpoint {
        // A programmatic endpoint is used verbatim by the exporter; take it as a base URL
        // like the environment variable, so both mean the same.
        let base = endpoint.trim_end_matches('/');
        exporter = exporter.with_endpoint(format!("{base}{TRACES_PATH}"));
    }
    let exporter = exporter.build()?;
    let mut resource = Resource::builder();
    if let Some(name) = &config.service_name {
        resource = resource.with_service_name(name.clone());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    Ok(Otel { provider })
}

impl Otel {
    /// The `tracing` layer that turns spans into OpenTelemetry spans of this export.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let tracer = self.provider.tracer("keel");
        tracing_opentelemetry::layer().with_tracer(tracer)
    }

    /// Exports every finished span now, waiting for the collector's answer. Blocks: call it
    /// off the async executor.
    pub fn flush(&self) -> Result<(), OTelSdkError> {
        self.provider.force_flush()
    }

    /// Exports what is buffered and stops. Blocks like [`Otel::flush`].
    pub fn shutdown(self) -> Result<(), OTelSdkError> {
        self.provider.shutdown()
    }
}
