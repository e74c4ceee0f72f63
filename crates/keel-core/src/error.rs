//! The one error type of the envelope: why an event could not be read, built or decoded.
//!
//! Every variant names the CloudEvents attribute at fault, because the reader of the message is
//! usually an operator looking at a dead-lettered record from a producer they do not own. This
//! file holds no validation logic; the checks live next to the attributes they check.

/// Why an event is not a valid CloudEvents 1.0 envelope, or why its data does not decode.
///
/// The `Display` form is one line that names the attribute (`invalid CloudEvents attribute
/// 'time': ...`), so a log line or a dead-letter reason is enough to find the broken producer.
/// Values copied from the input are quoted with Rust escapes, so a hostile header value cannot
/// forge extra log lines. [`EnvelopeError::attribute`] gives the name to code that routes on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A REQUIRED attribute (`id`, `source`, `type`, `specversion`) is absent.
    #[error("missing required CloudEvents attribute '{attribute}'")]
    MissingAttribute {
        /// The attribute's CloudEvents name.
        attribute: &'static str,
    },
    /// An attribute is present but breaks a rule of the specification (empty, not UTF-8, not
    /// RFC 3339, not a URI, a badly formed name, ...).
    #[error("invalid CloudEvents attribute '{attribute}': {reason}")]
    InvalidAttribute {
        /// The attribute's CloudEvents name as it appeared in the input, or the name of the JSON
        /// member (`data`, `data_base64`) for the data itself.
        attribute: String,
        /// What is wrong with it, in one line.
        reason: String,
    },
    /// `specversion` is not `1.0`: the meaning of every other attribute depends on it, so an
    /// event of another version is not read at all.
    #[error("unsupported CloudEvents attribute 'specversion': found {found:?}, Keel reads \"1.0\"")]
    UnsupportedSpecVersion {
        /// The version the event declared.
        found: String,
    },
    /// A typed decode was asked of an event whose `type` names a different event type.
    #[error("CloudEvents attribute 'type' is {found:?}, expected {expected:?}")]
    WrongType {
        /// The type name the Rust type declares ([`EventType::TYPE`](crate::EventType::TYPE)).
        expected: &'static str,
        /// The type name the event carries.
        found: String,
    },
    /// The event was written with a schema version newer than the Rust type knows: decoding it
    /// with the older struct could silently drop fields the producer relies on.
    #[error(
        "CloudEvents attribute 'schemaversion' is {found}, newer than version {supported} of {ty:?} that this build reads"
    )]
    NewerSchemaVersion {
        /// The event type name.
        ty: &'static str,
        /// The schema version the event carries.
        found: u32,
        /// The newest schema version the Rust type reads ([`EventType::VERSION`](crate::EventType::VERSION)).
        supported: u32,
    },
    /// A typed decode found no `data` at all.
    #[error("CloudEvents event of type {ty:?} carries no 'data'")]
    MissingData {
        /// The event type name.
        ty: String,
    },
    /// The `data` of a typed event does not match the Rust type (or a payload could not be
    /// encoded as JSON).
    #[error("CloudEvents 'data' of type {ty:?} does not match its schema: {reason}")]
    Data {
        /// The event type name.
        ty: String,
        /// The serde error, in one line.
        reason: String,
    },
    /// A structured-mode payload is not a JSON object at all.
    #[error("structured CloudEvent is not a JSON object: {reason}")]
    NotJson {
        /// The parser's error, in one line.
        reason: String,
    },
}

impl EnvelopeError {
    /// The attribute (or `data`) at fault, so code that routes errors, such as a dead-letter
    /// handler adding a reason header, need not parse the message. `None` only when the input
    /// was not a JSON object at all.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            EnvelopeError::MissingAttribute { attribute } => Some(attribute),
            EnvelopeError::InvalidAttribute { attribute, .. } => Some(attribute),
            EnvelopeError::UnsupportedSpecVersion { .. } => Some("specversion"),
            EnvelopeError::WrongType { .. } => Some("type"),
            EnvelopeError::NewerSchemaVersion { .. } => {
                Some(crate::typed::SCHEMA_VERSION_ATTRIBUTE)
            }
            EnvelopeError::MissingData { .. } | EnvelopeError::Data { .. } => Some("data"),
            EnvelopeError::NotJson { .. } => None,
        }
    }

    /// Shorthand for the most common variant.
    pub(crate) fn invalid(attribute: &str, reason: impl std::fmt::Display) -> EnvelopeError {
        EnvelopeError::InvalidAttribute {
            attribute: one_line(attribute),
            reason: one_line(reason),
        }
    }
}

/// Renders `text` on one line: control characters (newlines above all) become escapes, so an
/// error built from foreign input or a third-party message keeps the one-line promise.
pub(crate) fn one_line(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
