//! `keel-core`: Keel's vocabulary — the CloudEvents 1.0 envelope every Keel event travels in.
//!
//! - [`Event`]: the context attributes of CloudEvents 1.0.2 (`id` a UUIDv7 by default,
//!   `source`, `type`, `specversion`, `time`, `subject`, `datacontenttype`, `dataschema`),
//!   the extensions Keel relies on (`partitionkey`, `traceparent`, `tracestate`,
//!   `correlationid`, `causationid`), any other extension, and the data as bytes.
//! - Two wire forms, both from the CloudEvents Kafka protocol binding: binary mode
//!   ([`Event::to_binary`], [`Event::from_binary`]: `ce_*` headers, `content-type`, the data
//!   as the record value, `partitionkey` as the key) and structured mode in the JSON event
//!   format ([`Event::to_structured_json`], [`Event::from_structured_json`]).
//!   [`Event::from_record`] reads a record in either mode, as a consumer must.
//! - Typed events: a serde struct implementing [`EventType`] declares its `type` and schema
//!   version; [`Event::from_typed`] and [`Event::decode`] convert, refusing wrong types and
//!   newer versions.
//! - [`TraceParent`]: W3C Trace Context, so a consumer's work joins the producer's trace.
//! - The ports ([`port`]): the record shape every transport speaks ([`NewRecord`],
//!   [`Record`], [`Header`]), the [`Clock`], and the traits a transport crate implements —
//!   [`PublishTransport`], [`ConsumeTransport`] / [`Membership`] / [`PartitionLease`],
//!   [`AdminTransport`] — with typed errors that say whether a retry can help; and
//!   [`PublishPort`], what the outbox relay forwards events through.
//!
//! Every decoder validates what it returns: a malformed envelope (a missing required
//! attribute, a `specversion` other than `1.0`, an unparsable `time`, ...) is an
//! [`EnvelopeError`] whose message names the attribute.
//!
//! This crate does no I/O and has no async runtime: it works on values and bytes, and the
//! ports return boxed futures the caller's runtime drives. The only outside input it reads is the system clock and
//! random generator, in [`Event::new`] and [`TraceParent::new_root`]; every value they fill in
//! can also be set explicitly.
//!
//! # Example
//!
//! A typed event, mapped to a binary-mode Kafka record and back:
//!
//! ```
//! use keel_core::{Event, EventType};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct OrderPlaced {
//!     order_id: String,
//!     total_cents: u64,
//! }
//!
//! impl EventType for OrderPlaced {
//!     const TYPE: &'static str = "com.example.order.placed";
//!     const VERSION: u32 = 1;
//! }
//!
//! let placed = OrderPlaced { order_id: "o-7".into(), total_cents: 4197 };
//! let event = Event::from_typed("/orders", &placed)?.with_partition_key("o-7");
//!
//! let record = event.to_binary();
//! assert_eq!(record.key.as_deref(), Some(&b"o-7"[..]));
//! assert_eq!(record.header("ce_type"), Some(&b"com.example.order.placed"[..]));
//! assert_eq!(record.header("content-type"), Some(&b"application/json"[..]));
//!
//! let headers = record.headers.iter().map(|(name, value)| (name.as_str(), Some(value.as_slice())));
//! let received = Event::from_binary(record.key.as_deref(), headers, record.value.as_deref())?;
//! assert_eq!(received, event);
//! assert_eq!(received.decode::<OrderPlaced>()?, placed);
//! # Ok::<(), keel_core::EnvelopeError>(())
//! ```

mod attribute;
mod binary;
mod error;
mod event;
pub mod port;
mod structured;
mod trace;
mod typed;

pub use attribute::{ATTRIBUTE_NAME_LEN_RECOMMENDED, SPEC_VERSION};
pub use binary::{ATTRIBUTE_HEADER_PREFIX, BinaryEvent, CONTENT_TYPE_HEADER};
pub use error::EnvelopeError;
pub use event::Event;
pub use port::BoxFuture;
pub use port::admin::{AdminTransport, GroupOffset, PartitionOffsets, TopicInfo, TopicSetting};
pub use port::clock::{Clock, ManualClock, SystemClock};
pub use port::consume::{
    ConsumeTransport, LeaseStart, LeaseTransaction, Membership, MembershipEvent, PartitionLease,
    Revocation,
};
pub use port::error::{CommitError, FetchError, SendError, TransportError};
pub use port::forward::{PortError, PortErrorKind, PublishPort, publish_each};
pub use port::group::{GroupPolicy, PolicyError, StartFrom};
pub use port::name_escape::{escape_name, unescape_name};
pub use port::partitioner::{choose_partition, murmur2, partition_for_key, topic_for_send};
pub use port::publish::{PublishTransport, Published, send_each};
pub use port::record::{Header, HeaderName, NewRecord, Record, header_text};
pub use structured::{STRUCTURED_CONTENT_TYPE, STRUCTURED_MEDIA_TYPE};
pub use trace::{ParseTraceParentError, TraceParent};
pub use typed::{EventType, SCHEMA_VERSION_ATTRIBUTE};
