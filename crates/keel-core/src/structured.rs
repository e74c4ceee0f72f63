//! The CloudEvents JSON event format (structured content mode): the whole event as one JSON
//! object, and its Kafka record form.
//!
//! Data of a JSON media type (or of none) is embedded as a JSON value under `data`; any other
//! data goes base64-encoded under `data_base64`, because `Event::data` is bytes and Keel cannot
//! know that bytes of an arbitrary media type are text. Not the JSON batch format.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::attribute::{
    self, Attributes, JSON_MEDIA_TYPE, RESERVED_NAMES, SPEC_VERSION, check_name,
    event_from_attributes, is_json_media_type,
};
use crate::binary::{BinaryEvent, CONTENT_TYPE_HEADER};
use crate::error::{EnvelopeError, one_line};
use crate::event::Event;
use crate::typed::SCHEMA_VERSION_ATTRIBUTE;

/// The media type of the JSON event format.
pub const STRUCTURED_MEDIA_TYPE: &str = "application/cloudevents+json";

/// The `content-type` header value of a structured-mode Kafka record, as the binding's
/// example writes it.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

impl Event {
    /// The event as a JSON-format object.
    ///
    /// Data that claims a JSON media type but does not parse as JSON is written as
    /// `data_base64` rather than dropped, so the bytes still arrive unchanged. JSON data is
    /// re-serialized on the way back: equal as JSON, not necessarily as bytes (object keys
    /// come back sorted, whitespace removed). Extensions are JSON strings, except
    /// `schemaversion`, an `Integer` attribute, which is a JSON number.
    pub fn to_structured_json(&self) -> Value {
        let mut object = Map::new();
        let mut put = |name: &str, value: Value| {
            object.insert(name.to_owned(), value);
        };
        put("specversion", SPEC_VERSION.into());
        put("id", self.id.as_str().into());
        put("source", self.source.as_str().into());
        put("type", self.ty.as_str().into());
        if let Some(time) = &self.time {
            put("time", attribute::format_time(time).into());
        }
        if let Some(content_type) = &self.datacontenttype {
            put("datacontenttype", content_type.as_str().into());
        }
        for (name, _, value) in self.optional_string_attributes() {
            put(name, value.as_str().into());
        }
        for (name, value) in &self.extensions {
            let integer = (name == SCHEMA_VERSION_ATTRIBUTE)
                .then(|| value.parse::<i32>().ok())
                .flatten()
                .filter(|n| n.to_string() == *value);
            match integer {
                Some(n) => put(name, n.into()),
                None => put(name, value.as_str().into()),
            }
        }
        if let Some(data) = &self.data {
            let is_json = self
                .datacontenttype
                .as_deref()
                .is_none_or(is_json_media_type);
            match is_json
                .then(|| serde_json::from_slice::<Value>(data).ok())
                .flatten()
            {
                Some(value) => put("data", value),
                None => put("data_base64", BASE64.encode(data).into()),
            }
        }
        Value::Object(object)
    }

    /// Reads a JSON-format event.
    ///
    /// `null` members count as absent, as the format requires; unknown members become
    /// extensions, from strings, integers (within the 32-bit range of the CloudEvents
    /// `Integer`) or booleans, kept as their canonical strings. `data` with no
    /// `datacontenttype` sets it to `application/json`, the implied type, so that mapping the
    /// event to binary mode keeps saying the value is JSON. Rejected, naming the attribute:
    /// a member name that breaks the naming rule, a value of the wrong JSON type, both `data`
    /// and `data_base64`, invalid base64, non-string `data` with a non-JSON media type, and
    /// anything [`Event::validate`] rejects.
    pub fn from_structured_json(bytes: &[u8]) -> Result<Event, EnvelopeError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotJson {
            reason: one_line(e),
        })?;
        let Value::Object(object) = value else {
            return Err(EnvelopeError::NotJson {
                reason: format!("found {}", json_kind(&value)),
            });
        };
        let mut attributes = Attributes::default();
        let mut data_member = None;
        let mut base64_member = None;
        for (name, value) in object {
            match name.as_str() {
                "data" => data_member = Some(value),
                "data_base64" => base64_member = Some(value).filter(|v| !v.is_null()),
                _ => {
                    check_name(&name)?;
                    if let Some(text) = canonical_string(&name, value)? {
                        attributes.insert(&name, text);
                    }
                }
            }
        }
        let data = match (data_member, base64_member) {
            (Some(_), Some(_)) => {
                return Err(EnvelopeError::invalid(
                    "data",
                    "'data' and 'data_base64' are mutually exclusive",
                ));
            }
            (None, Some(Value::String(text))) => Some(
                BASE64
                    .decode(&text)
                    .map_err(|error| EnvelopeError::invalid("data_base64", error.to_string()))?,
            ),
            (None, Some(other)) => {
                return Err(EnvelopeError::invalid(
                    "data_base64",
                    format!("must be a base64 string, found {}", json_kind(&other)),
                ));
            }
            (Some(value), None) => Some(data_bytes(&mut attributes, value)?),
            (None, None) => None,
        };
        event_from_attributes(attributes, data)
    }

    /// The structured-mode Kafka record: the JSON object as the value, the media type in
    /// `content-type`, and `partitionkey` as the key exactly as in binary mode.
    pub fn to_structured_record(&self) -> BinaryEvent {
        BinaryEvent {
            key: self
                .partitionkey
                .as_ref()
                .map(|key| key.as_bytes().to_vec()),
            headers: vec![(
                CONTENT_TYPE_HEADER.to_owned(),
                STRUCTURED_CONTENT_TYPE.as_bytes().to_vec(),
            )],
            value: Some(self.to_structured_json().to_string().into_bytes()),
        }
    }
}

/// The canonical string of an attribute member, `None` for `null` (absent).
fn canonical_string(name: &str, value: Value) -> Result<Option<String>, EnvelopeError> {
    let is_string_attribute = RESERVED_NAMES.contains(&name);
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Bool(flag) if !is_string_attribute => Ok(Some(flag.to_string())),
        Value::Number(number) if !is_string_attribute => {
            match number.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => Ok(Some(n.to_string())),
                None => Err(EnvelopeError::invalid(
                    name,
                    format!("{number} is not a CloudEvents Integer (a whole 32-bit number)"),
                )),
            }
        }
        other if is_string_attribute => Err(EnvelopeError::invalid(
            name,
            format!("must be a JSON string, found {}", json_kind(&other)),
        )),
        other => Err(EnvelopeError::invalid(
            name,
            format!(
                "must be a string, an integer or a boolean, found {}",
                json_kind(&other)
            ),
        )),
    }
}

/// The bytes of a `data` member: the JSON text of the value for a JSON media type (or none,
/// which then becomes `application/json`), the string's UTF-8 for any other media type.
fn data_bytes(attributes: &mut Attributes, value: Value) -> Result<Vec<u8>, EnvelopeError> {
    match attributes.get("datacontenttype") {
        None => {
            attributes.insert("datacontenttype", JSON_MEDIA_TYPE.to_owned());
            Ok(value.to_string().into_bytes())
        }
        Some(content_type) if is_json_media_type(content_type) => {
            Ok(value.to_string().into_bytes())
        }
        Some(_) => match value {
            Value::String(text) => Ok(text.into_bytes()),
            other => Err(EnvelopeError::invalid(
                "data",
                format!(
                    "must be a string when datacontenttype is not JSON, found {}",
                    json_kind(&other)
                ),
            )),
        },
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
