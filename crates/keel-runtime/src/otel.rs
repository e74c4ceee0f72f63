//! The seam between Keel's trace context (the `traceparent` every event carries) and
//! OpenTelemetry spans, for the `otel` cargo feature.
//!
//! Keel always writes its spans through `tracing`; with an OpenTelemetry layer installed
//! (`keel-otel`, or any `tracing-opentelemetry` layer) they are exported. For the exported
//! spans to form one trace across events, two things happen here with the feature on:
//!
//! - a consumer's `process` span gets the producer's span context, read from the record's
//!   `ce_traceparent`, as its parent (so it has the event's trace id);
//! - a publish runs in a `send` span (producer kind) and the event's `traceparent` becomes
//!   that span's context, so the next consumer's span is its child. A publish inside a
//!   handler is a child of the handler's `process` span: publish → handle → publish →
//!   handle is one trace.
//!
//! Without the feature every function here does nothing (or keeps the event's own trace
//! context), costs nothing per event, and pulls in no OpenTelemetry crate. Without an
//! OpenTelemetry layer installed, the feature changes nothing either: the spans have no
//! OpenTelemetry context, so events keep the `traceparent` Keel gave them.
//!
//! Not here: exporting (`keel-otel`: OTLP over HTTP, the SDK, `init`).

use keel_core::Header;
use keel_core::{Event, TraceParent};
use tracing::Span;

pub(crate) use imp::{continue_trace, send_span, trace_root};

#[cfg(feature = "otel")]
mod imp {
    use keel_core::ATTRIBUTE_HEADER_PREFIX;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    /// Makes `span` (not entered yet) a child of the producer span named by the record's
    /// `ce_traceparent`, if it has a valid one.
    pub(crate) fn continue_trace(span: &Span, headers: &[Header]) {
        let Some(parent) = record_traceparent(headers) else {
            return;
        };
        // Refused only without an OpenTelemetry layer (nothing is exported then) or once the
        // span has started, which it has not: it is entered after this.
        let _ = span.set_parent(remote_parent(parent));
    }

    /// The trace context for an event that arrived without one: the current span's (the
    /// `process` span, a new root in OpenTelemetry), or a fresh root without a layer.
    pub(crate) fn trace_root() -> TraceParent {
        traceparent_of(&Span::current()).unwrap_or_else(TraceParent::new_root)
    }

    /// The `send` span of publishing `event` to `topic`, and the event's `traceparent` set
    /// to it. Its parent is the current span when that is part of an OpenTelemetry trace
    /// (a handler's `process` span), else the event's own `traceparent`, else none.
    pub(crate) fn send_span(topic: &str, event: &mut Event) -> Span {
        let span = tracing::info_span!(
            "send",
            otel.name = %format_args!("{topic} send"),
            otel.kind = "producer",
            messaging.system = "keel",
            messaging.operation.type = "send",
            messaging.destination.name = %topic,
            messaging.message.id = %event.id,
            cloudevents.event_type = %event.ty,
        );
        if traceparent_of(&Span::current()).is_none()
            && let Some(parent) = event.traceparent
        {
            let _ = span.set_parent(remote_parent(parent));
        }
        if let Some(own) = traceparent_of(&span) {
            event.traceparent = Some(own);
        }
        span
    }

    /// An OpenTelemetry context whose span is the remote one `traceparent` names.
    fn remote_parent(traceparent: TraceParent) -> opentelemetry::Context {
        let remote = SpanContext::new(
            TraceId::from_bytes(traceparent.trace_id),
            SpanId::from_bytes(traceparent.parent_id),
            TraceFlags::new(traceparent.flags),
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(remote)
    }

    /// The OpenTelemetry span context of `span` as a `traceparent`; `None` when the span is
    /// not recorded by an OpenTelemetry layer. Starts the OpenTelemetry span.
    fn traceparent_of(span: &Span) -> Option<TraceParent> {
        let context = span.context();
        let otel_span = context.span();
        let span_context = otel_span.span_context();
        span_context.is_valid().then(|| TraceParent {
            trace_id: span_context.trace_id().to_bytes(),
            parent_id: span_context.span_id().to_bytes(),
            flags: span_context.trace_flags().to_u8(),
        })
    }

    /// The record's `ce_traceparent`, if present and valid.
    fn record_traceparent(headers: &[Header]) -> Option<TraceParent> {
        let header = headers.iter().find(|h| {
            h.key
                .strip_prefix(ATTRIBUTE_HEADER_PREFIX)
                .is_some_and(|name| name == "traceparent")
        })?;
        std::str::from_utf8(header.value.as_deref()?)
            .ok()?
            .parse()
            .ok()
    }
}

#[cfg(not(feature = "otel"))]
mod imp {
    use super::*;

    /// Nothing to do: the span's `trace_id` field already names the event's trace.
    #[inline]
    pub(crate) fn continue_trace(_span: &Span, _headers: &[Header]) {}

    /// A fresh root trace.
    #[inline]
    pub(crate) fn trace_root() -> TraceParent {
        TraceParent::new_root()
    }

    /// No span: the event keeps its own `traceparent`.
    #[inline]
    pub(crate) fn send_span(_topic: &str, _event: &mut Event) -> Span {
        Span::none()
    }
}
