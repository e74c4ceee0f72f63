//! Typed events: a serde struct that declares its CloudEvents `type` and schema version, and
//! the conversions between it and an [`Event`] with JSON data.
//!
//! The schema version travels in the extension attribute `schemaversion` (header
//! `ce_schemaversion`), so a consumer can refuse an event written by a newer producer before
//! deserializing it. This is not a schema registry and does no upcasting; it only makes the
//! version visible and refuses what the Rust type cannot promise to read.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::attribute::{JSON_MEDIA_TYPE, is_json_media_type};
use crate::error::{EnvelopeError, one_line};
use crate::event::Event;

/// The extension attribute that carries a typed event's schema version.
pub const SCHEMA_VERSION_ATTRIBUTE: &str = "schemaversion";

/// A payload struct that is the `data` of one event type.
///
/// Schemas evolve by adding fields only: a consumer built against version `n` reads every
/// version up to `n` (missing fields need `#[serde(default)]`) and refuses newer ones, which
/// may carry facts it would silently drop.
///
/// ```
/// use keel_core::EventType;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct OrderShipped {
///     order_id: String,
///     #[serde(default)]
///     carrier: Option<String>, // added in version 2
/// }
///
/// impl EventType for OrderShipped {
///     const TYPE: &'static str = "com.example.order.shipped";
///     const VERSION: u32 = 2;
/// }
/// ```
pub trait EventType: Serialize + DeserializeOwned {
    /// The CloudEvents `type` of events carrying this payload, such as
    /// `com.example.order.placed`. Non-empty; a reverse-DNS prefix is recommended.
    const TYPE: &'static str;
    /// The newest schema version this struct describes, from 1. Raise it whenever a field is
    /// added; a value of 0 fails to compile where the type is used with [`Event::from_typed`].
    const VERSION: u32;
}

impl Event {
    /// A new event (fresh id, current time) whose data is `payload` as JSON, with `type`
    /// `T::TYPE`, `datacontenttype` `application/json` and `schemaversion` `T::VERSION`.
    ///
    /// Fails if the payload cannot be serialized as JSON (a map with non-string keys, a
    /// failing `Serialize` impl) or if the event is invalid, such as an empty `source`.
    pub fn from_typed<T: EventType>(
        source: impl Into<String>,
        payload: &T,
    ) -> Result<Event, EnvelopeError> {
        const { assert!(T::VERSION >= 1, "EventType::VERSION starts at 1") };
        let data = serde_json::to_vec(payload).map_err(|e| EnvelopeError::Data {
            ty: T::TYPE.to_owned(),
            reason: one_line(e),
        })?;
        let event = Event::new(source, T::TYPE)
            .with_data(JSON_MEDIA_TYPE, data)
            .with_extension(SCHEMA_VERSION_ATTRIBUTE, T::VERSION.to_string());
        event.validate()?;
        Ok(event)
    }

    /// The schema version in `schemaversion`, if present and a positive decimal integer.
    pub fn schema_version(&self) -> Option<u32> {
        parse_version(self.extensions.get(SCHEMA_VERSION_ATTRIBUTE)?)
    }

    /// Deserializes the data as `T` after checking that the event is one: the `type` must be
    /// `T::TYPE`, the schema version no newer than `T::VERSION` (an event without
    /// `schemaversion` counts as version 1, the version every producer starts from), the
    /// media type JSON (or absent), and data present.
    pub fn decode<T: EventType>(&self) -> Result<T, EnvelopeError> {
        if self.ty != T::TYPE {
            return Err(EnvelopeError::WrongType {
                expected: T::TYPE,
                found: self.ty.clone(),
            });
        }
        let version = match self.extensions.get(SCHEMA_VERSION_ATTRIBUTE) {
            None => 1,
            Some(text) => parse_version(text).ok_or_else(|| {
                EnvelopeError::invalid(
                    SCHEMA_VERSION_ATTRIBUTE,
                    format!("{text:?} is not a positive integer"),
                )
            })?,
        };
        if version > T::VERSION {
            return Err(EnvelopeError::NewerSchemaVersion {
                ty: T::TYPE,
                found: version,
                supported: T::VERSION,
            });
        }
        if let Some(content_type) = &self.datacontenttype
            && !is_json_media_type(content_type)
        {
            return Err(EnvelopeError::invalid(
                "datacontenttype",
                format!("typed events are JSON, found {content_type:?}"),
            ));
        }
        let Some(data) = &self.data else {
            return Err(EnvelopeError::MissingData {
                ty: self.ty.clone(),
            });
        };
        serde_json::from_slice(data).map_err(|e| EnvelopeError::Data {
            ty: self.ty.clone(),
            reason: one_line(e),
        })
    }
}

/// A positive decimal integer with no sign, spaces or leading zeros: the canonical string of a
/// CloudEvents `Integer`, restricted to versions.
fn parse_version(text: &str) -> Option<u32> {
    let canonical =
        !text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    text.parse()
        .ok()
        .filter(|&version| canonical && version >= 1)
}
