//! The rules of CloudEvents 1.0.2 for attribute names and values, shared by both content modes.
//!
//! Also the one place that turns the canonical attribute strings (what a binary-mode header
//! list or a structured JSON object reduces to, in [`Attributes`]) into an [`Event`], so the
//! two modes cannot drift apart in what they accept. This is not a general URI or media-type parser: it
//! checks the character sets and the shapes the specification names, nothing deeper.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

use crate::error::EnvelopeError;
use crate::event::Event;
use crate::trace::TraceParent;

/// The only `specversion` Keel reads and writes.
pub const SPEC_VERSION: &str = "1.0";

/// The length the specification recommends attribute names stay within ("SHOULD NOT exceed
/// 20 characters"). Longer names are accepted, because rejecting another producer's event over
/// a SHOULD would strand it; producers can check their own names against this.
pub const ATTRIBUTE_NAME_LEN_RECOMMENDED: usize = 20;

/// Names an extension may not take: the context attributes the [`Event`] struct holds in fields
/// of their own (an extension of the same name would be ambiguous on the wire), and `data`,
/// which the specification reserves.
pub(crate) const RESERVED_NAMES: [&str; 14] = [
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "partitionkey",
    "traceparent",
    "tracestate",
    "correlationid",
    "causationid",
    "data",
];

/// The media type that `datacontenttype` defaults to and that typed events use.
pub(crate) const JSON_MEDIA_TYPE: &str = "application/json";

/// Checks the naming rule: ASCII `a`-`z` and `0`-`9` only, and non-empty.
pub(crate) fn check_name(name: &str) -> Result<(), EnvelopeError> {
    if name.is_empty() {
        return Err(EnvelopeError::invalid(name, "attribute name is empty"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(EnvelopeError::invalid(
            name,
            "attribute names consist of ASCII lowercase letters and digits only",
        ));
    }
    Ok(())
}

/// Checks an extension's name: the naming rule, and not a name Keel reserves.
pub(crate) fn check_extension_name(name: &str) -> Result<(), EnvelopeError> {
    check_name(name)?;
    if RESERVED_NAMES.contains(&name) {
        return Err(EnvelopeError::invalid(
            name,
            "an extension may not reuse the name of a context attribute or 'data'",
        ));
    }
    Ok(())
}

/// Checks a value of the CloudEvents `String` type: no control characters (U+0000-U+001F,
/// U+007F-U+009F) and no Unicode noncharacters. Surrogates cannot occur in a Rust `str`.
pub(crate) fn check_string(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    // Noncharacters are never ASCII, and ASCII's control characters are its only ones: most
    // values are ASCII and get the byte scan.
    let disallowed = if value.is_ascii() {
        // Without an early exit the scan vectorizes; the character is looked for only when
        // there is one.
        let has_control = value
            .bytes()
            .fold(false, |found, b| found | b.is_ascii_control());
        has_control
            .then(|| value.bytes().find(u8::is_ascii_control).map(char::from))
            .flatten()
    } else {
        value
            .chars()
            .find(|&c| c.is_control() || is_noncharacter(c))
    };
    if let Some(c) = disallowed {
        return Err(EnvelopeError::invalid(
            attribute,
            format!("contains the disallowed character U+{:04X}", u32::from(c)),
        ));
    }
    Ok(())
}

/// Checks a `String` value the specification says MUST be non-empty.
pub(crate) fn check_non_empty(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    if value.is_empty() {
        return Err(EnvelopeError::invalid(
            attribute,
            "must be a non-empty string",
        ));
    }
    check_string(attribute, value)
}

/// Checks a non-empty `URI-reference` (RFC 3986 section 4.1): only URI characters, well-formed
/// percent escapes, and, when a colon comes before the first `/`, `?` or `#`, a valid scheme
/// before it (a relative reference's first segment may not contain a colon).
pub(crate) fn check_uri_reference(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    check_non_empty(attribute, value)?;
    check_uri_characters(attribute, value)?;
    let head_end = value.find(['/', '?', '#']).unwrap_or(value.len());
    if let Some(colon) = value[..head_end].find(':') {
        check_scheme(attribute, &value[..colon])?;
    }
    Ok(())
}

/// Checks a non-empty `URI`: a URI reference that starts with a scheme. A fragment is
/// accepted, although section 4.3 of RFC 3986 excludes it from "absolute URI", because schema
/// URIs such as `https://example.com/s.json#/defs/order` are common and harmless.
pub(crate) fn check_uri(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    check_uri_reference(attribute, value)?;
    let head_end = value.find(['/', '?', '#']).unwrap_or(value.len());
    if !value[..head_end].contains(':') {
        return Err(EnvelopeError::invalid(
            attribute,
            "must be an absolute URI (with a scheme such as 'https:')",
        ));
    }
    Ok(())
}

/// Checks an RFC 2045/2046 media type: `type/subtype` made of tokens, then `;`-separated
/// `name=value` parameters whose value is a token or a quoted string.
pub(crate) fn check_media_type(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    if is_bare_media_type(value) {
        return Ok(());
    }
    parse_media_type(attribute, value)
}

/// Whether `value` is a bare `type/subtype` of tokens, as most media types are: one pass,
/// and [`parse_media_type`] accepts every such value (a token has no control character,
/// space, `;` or `/`).
fn is_bare_media_type(value: &str) -> bool {
    value
        .split_once('/')
        .is_some_and(|(ty, subtype)| is_token(ty) && is_token(subtype))
}

/// [`check_media_type`]'s full parse, parameters and all.
fn parse_media_type(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    check_non_empty(attribute, value)?;
    let fail = |reason: &str| Err(EnvelopeError::invalid(attribute, reason));
    let (essence, mut rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let Some((ty, subtype)) = essence.trim().split_once('/') else {
        return fail("a media type has the form 'type/subtype'");
    };
    if !is_token(ty) || !is_token(subtype) {
        return fail("a media type has the form 'type/subtype' with no spaces or separators");
    }
    while let Some(after_semicolon) = rest.strip_prefix(';') {
        let parameter = after_semicolon.trim_start_matches([' ', '\t']);
        let Some((name, after_name)) = parameter.split_once('=') else {
            return fail("a media type parameter has the form 'name=value'");
        };
        if !is_token(name) {
            return fail("a media type parameter name is a token");
        }
        let value_len = if let Some(quoted) = after_name.strip_prefix('"') {
            match quoted_string_len(quoted) {
                Some(len) => len + 1,
                None => return fail("a quoted media type parameter value is not closed"),
            }
        } else {
            after_name.find(';').unwrap_or(after_name.len())
        };
        let (parameter_value, after_value) = after_name.split_at(value_len);
        let parameter_value = parameter_value.trim_end_matches([' ', '\t']);
        if !parameter_value.starts_with('"') && !is_token(parameter_value) {
            return fail("a media type parameter value is a token or a quoted string");
        }
        rest = after_value.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(';') {
            return fail("media type parameters are separated by ';'");
        }
    }
    Ok(())
}

/// Whether a media type declares JSON content: a subtype of `json` or ending in `+json`,
/// parameters ignored, case-insensitively (JSON event format, section 3.1.1).
pub(crate) fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let Some((_, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    subtype == "json" || subtype.ends_with("+json")
}

/// The canonical string of a `Timestamp`: RFC 3339 in UTC, with as many fractional digits as
/// needed (0, 3, 6 or 9) so that parsing it back gives the same instant to the nanosecond.
pub(crate) fn format_time(time: &DateTime<Utc>) -> String {
    time_text(time).as_str().to_owned()
}

/// The longest canonical time of the years 0 to 9999: `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ`.
pub(crate) const TIME_LEN_MAX: usize = 30;

/// A canonical time ([`format_time`]) without an allocation for the common case.
pub(crate) enum TimeText {
    /// Written digit by digit: the years 0 to 9999, outside a leap second.
    Digits {
        text: [u8; TIME_LEN_MAX],
        len: usize,
    },
    /// Written by chrono: the rest.
    Formatted(String),
}

impl TimeText {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            TimeText::Digits { text, len } => {
                std::str::from_utf8(&text[..*len]).expect("digits and separators are ASCII")
            }
            TimeText::Formatted(text) => text,
        }
    }
}

/// The canonical text of `time`. Every published event carries one, and chrono's formatter
/// cost about 1,800 instructions and an allocation each; chrono still writes the times this
/// does not (a year past 9999, a leap second), and a property test compares the two.
pub(crate) fn time_text(time: &DateTime<Utc>) -> TimeText {
    let nanos = time.nanosecond();
    let Ok(year) = u32::try_from(time.year()) else {
        return TimeText::Formatted(time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return TimeText::Formatted(time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    let mut text = [0; TIME_LEN_MAX];
    let mut len = 0;
    let mut put = |mut value: u32, digits: usize, separator: Option<u8>| {
        for slot in text[len..len + digits].iter_mut().rev() {
            // A remainder of 10 is below 10, so the cast cannot truncate.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        len += digits;
        if let Some(separator) = separator {
            text[len] = separator;
            len += 1;
        }
    };
    put(year, 4, Some(b'-'));
    put(time.month(), 2, Some(b'-'));
    put(time.day(), 2, Some(b'T'));
    put(time.hour(), 2, Some(b':'));
    put(time.minute(), 2, Some(b':'));
    let (fraction, digits) = match nanos {
        0 => (0, 0),
        _ if nanos.is_multiple_of(1_000_000) => (nanos / 1_000_000, 3),
        _ if nanos.is_multiple_of(1_000) => (nanos / 1_000, 6),
        _ => (nanos, 9),
    };
    put(time.second(), 2, (digits > 0).then_some(b'.'));
    put(fraction, digits, Some(b'Z'));
    TimeText::Digits { text, len }
}

/// Parses a `Timestamp` from RFC 3339; any offset is accepted and converted to UTC.
pub(crate) fn parse_time(value: &str) -> Result<DateTime<Utc>, EnvelopeError> {
    if let Some(time) = parse_canonical_time(value) {
        return Ok(time);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|e| {
            EnvelopeError::invalid(
                "time",
                format!("{value:?} is not an RFC 3339 timestamp: {e}"),
            )
        })
}

/// The times Keel writes ([`time_text`]): `YYYY-MM-DDThh:mm:ss[.f…]Z` with up to nine
/// fractional digits, read digit by digit. `None` for anything else — an offset, a leap
/// second, a lowercase `t` or `z`, a date that does not exist — which chrono then parses or
/// refuses. Every received event carries a time, and chrono's parser cost about 600
/// instructions an event; a property test holds both to the same answers.
fn parse_canonical_time(value: &str) -> Option<DateTime<Utc>> {
    let bytes = value.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if bytes.len() < 20
        || bytes.last() != Some(&b'Z')
        || separators
            .iter()
            .any(|&(at, separator)| bytes[at] != separator)
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |number, &digit| {
            digit
                .is_ascii_digit()
                .then(|| number * 10 + u32::from(digit - b'0'))
        })
    };
    let nanos = match &bytes[19..bytes.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            // At most 9 digits, so the exponent is at most 8.
            number(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let second = number(&bytes[17..19])?;
    if second > 59 {
        return None;
    }
    let year = i32::try_from(number(&bytes[0..4])?).ok()?;
    let date =
        chrono::NaiveDate::from_ymd_opt(year, number(&bytes[5..7])?, number(&bytes[8..10])?)?;
    let time = date.and_hms_nano_opt(
        number(&bytes[11..13])?,
        number(&bytes[14..16])?,
        second,
        nanos,
    )?;
    Some(time.and_utc())
}

/// The context attributes [`RESERVED_NAMES`] gives fields of their own (all but `data`),
/// in that order: their slots in [`Attributes`].
const CONTEXT_ATTRIBUTES: usize = RESERVED_NAMES.len() - 1;

/// A context attribute's slot in [`Attributes`], in the order of [`RESERVED_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Id,
    Source,
    Type,
    SpecVersion,
    Time,
    Subject,
    DataContentType,
    DataSchema,
    PartitionKey,
    TraceParent,
    TraceState,
    CorrelationId,
    CausationId,
}

impl Slot {
    /// The slot of context attribute `name`; `None` for an extension (or `data`). A `match`,
    /// which compiles to a length switch and one comparison, because every attribute of every
    /// decoded event is looked up here: a search of [`RESERVED_NAMES`] cost about 70
    /// instructions a name.
    pub(crate) fn of(name: &str) -> Option<Slot> {
        Some(match name {
            "id" => Slot::Id,
            "source" => Slot::Source,
            "type" => Slot::Type,
            "specversion" => Slot::SpecVersion,
            "time" => Slot::Time,
            "subject" => Slot::Subject,
            "datacontenttype" => Slot::DataContentType,
            "dataschema" => Slot::DataSchema,
            "partitionkey" => Slot::PartitionKey,
            "traceparent" => Slot::TraceParent,
            "tracestate" => Slot::TraceState,
            "correlationid" => Slot::CorrelationId,
            "causationid" => Slot::CausationId,
            _ => return None,
        })
    }
}

/// The canonical strings of an event's attributes, as both content modes read them: one slot
/// per context attribute and a map of the extensions. Not a `BTreeMap` of every name: a
/// received event is decoded on every delivery, and the map's owned names and ordered
/// inserts and removals were about half of decoding one (callgrind, `BENCHMARKS.md`). A
/// context attribute may borrow its text from the record (binary mode): the ones the event
/// does not keep as text (`specversion`, `time`, `traceparent`) are then never copied.
#[derive(Debug, Default)]
pub(crate) struct Attributes<'a> {
    context: [Option<Cow<'a, str>>; CONTEXT_ATTRIBUTES],
    extensions: BTreeMap<String, String>,
}

impl<'a> Attributes<'a> {
    /// Sets attribute `name` to `value`; returns whether it had a value already (a name
    /// appearing twice is the caller's to reject).
    pub(crate) fn insert(&mut self, name: &str, value: impl Into<Cow<'a, str>>) -> bool {
        match Slot::of(name) {
            Some(slot) => self.insert_context(slot, value),
            None => self.insert_extension(name, value),
        }
    }

    /// [`Attributes::insert`] of a context attribute whose slot the caller knows.
    pub(crate) fn insert_context(&mut self, slot: Slot, value: impl Into<Cow<'a, str>>) -> bool {
        self.context[slot as usize].replace(value.into()).is_some()
    }

    /// [`Attributes::insert`] of an extension (a name [`Slot::of`] does not know).
    pub(crate) fn insert_extension(&mut self, name: &str, value: impl Into<Cow<'a, str>>) -> bool {
        self.extensions
            .insert(name.to_owned(), value.into().into_owned())
            .is_some()
    }

    /// The value of attribute `name`, if set.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        match Slot::of(name) {
            Some(slot) => self.context[slot as usize].as_deref(),
            None => self.extensions.get(name).map(String::as_str),
        }
    }

    /// Takes the value of a context attribute out.
    fn take(&mut self, slot: Slot) -> Option<Cow<'a, str>> {
        self.context[slot as usize].take()
    }

    /// Takes the value of a context attribute out as the event's own string.
    fn take_owned(&mut self, slot: Slot) -> Option<String> {
        self.take(slot).map(Cow::into_owned)
    }
}

/// Builds an event from the canonical strings of its attributes and its data, then validates
/// it. Both content modes reduce their input to [`Attributes`] first.
///
/// `specversion` is checked first, because the meaning of every other attribute depends on it.
pub(crate) fn event_from_attributes(
    mut attributes: Attributes,
    data: Option<Vec<u8>>,
) -> Result<Event, EnvelopeError> {
    match attributes.take(Slot::SpecVersion) {
        None => {
            return Err(EnvelopeError::MissingAttribute {
                attribute: "specversion",
            });
        }
        Some(found) if found != SPEC_VERSION => {
            return Err(EnvelopeError::UnsupportedSpecVersion {
                found: found.into_owned(),
            });
        }
        Some(_) => {}
    }
    let mut required = |slot: Slot, attribute: &'static str| {
        attributes
            .take_owned(slot)
            .ok_or(EnvelopeError::MissingAttribute { attribute })
    };
    let id = required(Slot::Id, "id")?;
    let source = required(Slot::Source, "source")?;
    let ty = required(Slot::Type, "type")?;
    let time = attributes
        .take(Slot::Time)
        .map(|value| parse_time(&value))
        .transpose()?;
    let traceparent = attributes
        .take(Slot::TraceParent)
        .map(|value| {
            value
                .parse::<TraceParent>()
                .map_err(|e| EnvelopeError::invalid("traceparent", e.reason()))
        })
        .transpose()?;
    let event = Event {
        id,
        source,
        ty,
        time,
        subject: attributes.take_owned(Slot::Subject),
        datacontenttype: attributes.take_owned(Slot::DataContentType),
        dataschema: attributes.take_owned(Slot::DataSchema),
        partitionkey: attributes.take_owned(Slot::PartitionKey),
        traceparent,
        tracestate: attributes.take_owned(Slot::TraceState),
        correlationid: attributes.take_owned(Slot::CorrelationId),
        causationid: attributes.take_owned(Slot::CausationId),
        extensions: attributes.extensions,
        data,
    };
    event.validate()?;
    Ok(event)
}

fn check_uri_characters(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape_ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !escape_ok {
                return Err(EnvelopeError::invalid(
                    attribute,
                    "'%' must start a two-digit hex escape",
                ));
            }
            i += 3;
            continue;
        }
        if !is_uri_character(b) {
            let c = value[i..].chars().next().unwrap_or_default();
            return Err(EnvelopeError::invalid(
                attribute,
                format!("{c:?} is not allowed in a URI (percent-encode it)"),
            ));
        }
        i += 1;
    }
    Ok(())
}

fn check_scheme(attribute: &str, scheme: &str) -> Result<(), EnvelopeError> {
    let mut bytes = scheme.bytes();
    let starts_with_letter = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    if !starts_with_letter
        || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err(EnvelopeError::invalid(
            attribute,
            format!("{scheme:?} before ':' is not a URI scheme"),
        ));
    }
    Ok(())
}

/// RFC 3986 `unreserved`, `gen-delims` and `sub-delims`; `%` is handled by the caller.
fn is_uri_character(b: u8) -> bool {
    URI_BYTES[usize::from(b)]
}

/// Which bytes may appear in a URI unescaped: RFC 3986's unreserved and reserved characters.
/// A table, as [`TOKEN_BYTES`], because every published and decoded event's `source` is
/// checked byte by byte.
const URI_BYTES: [bool; 256] = with_bytes(
    with_bytes(
        [false; 256],
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        true,
    ),
    b"-._~:/?#[]@!$&'()*+,;=",
    true,
);

/// An RFC 2045 token: printable ASCII except space and `tspecials`.
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| TOKEN_BYTES[usize::from(b)])
}

/// Which bytes may appear in an RFC 2045 token: visible ASCII but the `tspecials`. A table
/// because every decoded event's `datacontenttype` is checked: searching the separator list
/// per byte cost about a sixth of decoding an event.
const TOKEN_BYTES: [bool; 256] = with_bytes(byte_range(b'!', b'~'), b"()<>@,;:\\\"/[]?=", false);

/// `table` with each of `bytes` set to `value`.
const fn with_bytes(mut table: [bool; 256], bytes: &[u8], value: bool) -> [bool; 256] {
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = value;
        i += 1;
    }
    table
}

/// The table of the bytes `first..=last`.
const fn byte_range(first: u8, last: u8) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = first as usize;
    while byte <= last as usize {
        table[byte] = true;
        byte += 1;
    }
    table
}

/// The length of a quoted string's body plus its closing quote, or `None` if it never closes.
fn quoted_string_len(after_open_quote: &str) -> Option<usize> {
    let bytes = after_open_quote.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Unicode noncharacters: U+FDD0..=U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let code = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The one-pass check never accepts what the full parse refuses.
        #[test]
        fn a_bare_media_type_passes_the_full_parse(value in "[a-z+.;/= \"\t\x00-\x08-]{0,24}") {
            if is_bare_media_type(&value) {
                prop_assert!(parse_media_type("datacontenttype", &value).is_ok(), "{value:?}");
            }
        }
    }

    proptest! {
        /// The digit-by-digit reading of a canonical time agrees with chrono's, on times
        /// Keel writes and on strings of the same shape that are not times.
        #[test]
        fn a_canonical_time_reads_as_chrono_reads_it(
            secs in 0i64..253_402_300_800,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
            fields in (0u32..10_000, 0u32..14, 0u32..33, 0u32..26, 0u32..61, 0u32..62),
            fraction in proptest::option::of("[0-9]{0,10}"),
            zone in prop_oneof![Just("Z"), Just("z"), Just("+00:00")],
        ) {
            let time = DateTime::from_timestamp(secs, nanos).unwrap();
            let text = time_text(&time);
            prop_assert_eq!(parse_canonical_time(text.as_str()), Some(time));
            // Fields near and past their ranges, so some dates and times do not exist.
            let (year, month, day, hour, minute, second) = fields;
            let fraction = fraction.map(|digits| format!(".{digits}")).unwrap_or_default();
            let shaped = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            let chrono = DateTime::parse_from_rfc3339(&shaped).map(|t| t.with_timezone(&Utc));
            if let Some(fast) = parse_canonical_time(&shaped) {
                prop_assert_eq!(Ok(fast), chrono, "{}", shaped);
            }
        }
    }

    #[test]
    fn times_the_canonical_reading_leaves_to_chrono() {
        for text in [
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
        ] {
            assert_eq!(parse_canonical_time(text), None, "{text}");
        }
        assert_eq!(
            parse_time("2024-01-01T01:00:00+01:00").unwrap(),
            parse_time("2024-01-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn each_context_attribute_has_the_slot_of_its_reserved_name() {
        for (index, name) in RESERVED_NAMES[..CONTEXT_ATTRIBUTES].iter().enumerate() {
            assert_eq!(
                Slot::of(name).map(|slot| slot as usize),
                Some(index),
                "{name}"
            );
        }
        assert_eq!(Slot::of("data"), None);
        assert_eq!(Slot::of("Id"), None);
    }

    #[test]
    fn common_media_types_are_bare() {
        for value in [
            "application/json",
            "application/cloudevents+json",
            "text/plain",
        ] {
            assert!(is_bare_media_type(value), "{value}");
        }
        for value in [
            "text/plain; charset=utf-8",
            "application/",
            "/json",
            "a/b/c",
            "text/ plain",
        ] {
            assert!(!is_bare_media_type(value), "{value}");
        }
    }
}
