//! W3C Trace Context `traceparent` (version 00): parse, print, start a trace, make a child.
//!
//! Events carry the trace they were produced in, so a consumer's work shows up under the
//! producer's request in any tracing backend. This is only the header's value type; it does not
//! record spans, sample, or interpret `tracestate` (which travels as an opaque string).

use std::fmt;
use std::str::FromStr;

/// A `traceparent` value: which trace an event belongs to and which operation emitted it.
///
/// Parsing follows W3C Trace Context: lowercase hex only, the all-zero ids and version `ff`
/// rejected; a version newer than `00` is read by its first four fields, as the recommendation
/// asks, and printed back as version `00`, the version this code speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The id of the whole trace, shared by every operation in it. Never all zeros.
    pub trace_id: [u8; 16],
    /// The id of the operation (span) that emitted the event. Never all zeros.
    pub parent_id: [u8; 8],
    /// The trace flags; bit 0 ([`TraceParent::FLAG_SAMPLED`]) says the caller may have
    /// recorded its span. Other bits are kept as received, so they propagate unchanged.
    pub flags: u8,
}

/// Why a string is not a `traceparent`. Its `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent: {reason}")]
pub struct ParseTraceParentError {
    reason: &'static str,
}

impl ParseTraceParentError {
    /// What is wrong with the value, for an error that names the attribute itself.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl TraceParent {
    /// Bit 0 of the flags: the caller may have recorded its span.
    pub const FLAG_SAMPLED: u8 = 0x01;

    /// Starts a new trace with fresh random ids, sampled.
    ///
    /// Sampled, because Keel records no spans itself and leaves the decision to the tracer
    /// downstream; a cleared bit would tell every consumer not to bother recording.
    pub fn new_root() -> TraceParent {
        TraceParent {
            trace_id: random_trace_id(),
            parent_id: random_parent_id(),
            flags: TraceParent::FLAG_SAMPLED,
        }
    }

    /// The trace context of an operation caused by this one: the same trace and flags, a new
    /// random parent id.
    #[must_use]
    pub fn child(&self) -> TraceParent {
        TraceParent {
            parent_id: random_parent_id(),
            ..*self
        }
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & TraceParent::FLAG_SAMPLED != 0
    }

    /// Whether both ids are non-zero, as W3C Trace Context requires. The fields are public,
    /// so a hand-built value can break this; [`Event::validate`](crate::Event::validate)
    /// checks it.
    pub fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.parent_id != [0; 8]
    }
}

/// The length of a version-00 `traceparent`: `vv-<32 hex>-<16 hex>-ff`.
pub(crate) const TRACEPARENT_LEN: usize = 55;

impl FromStr for TraceParent {
    type Err = ParseTraceParentError;

    fn from_str(text: &str) -> Result<TraceParent, ParseTraceParentError> {
        let fail = |reason| Err(ParseTraceParentError { reason });
        let bytes = text.as_bytes();
        if bytes.len() < TRACEPARENT_LEN {
            return fail("shorter than the 55 characters of version 00");
        }
        let Some(version) = lower_hex::<1>(&bytes[0..2]) else {
            return fail("the version is not two lowercase hex digits");
        };
        match version[0] {
            0xff => return fail("version ff is invalid"),
            0x00 if bytes.len() != TRACEPARENT_LEN => {
                return fail("version 00 is exactly 55 characters");
            }
            // A later version may append fields, but only after a dash.
            _ if bytes.len() > TRACEPARENT_LEN && bytes[TRACEPARENT_LEN] != b'-' => {
                return fail("the flags are not followed by '-' or the end");
            }
            _ => {}
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return fail("fields are separated by '-'");
        }
        let Some(trace_id) = lower_hex::<16>(&bytes[3..35]) else {
            return fail("the trace id is not 32 lowercase hex digits");
        };
        let Some(parent_id) = lower_hex::<8>(&bytes[36..52]) else {
            return fail("the parent id is not 16 lowercase hex digits");
        };
        let Some([flags]) = lower_hex::<1>(&bytes[53..55]) else {
            return fail("the flags are not two lowercase hex digits");
        };
        let parsed = TraceParent {
            trace_id,
            parent_id,
            flags,
        };
        if parsed.trace_id == [0; 16] {
            return fail("the trace id is all zeros");
        }
        if parsed.parent_id == [0; 8] {
            return fail("the parent id is all zeros");
        }
        Ok(parsed)
    }
}

impl TraceParent {
    /// The version-00 text, written digit by digit into a fixed array: every published event
    /// carries one, and a `{:02x}` per byte cost about 15,000 instructions an event.
    pub(crate) fn encode(&self) -> [u8; TRACEPARENT_LEN] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; TRACEPARENT_LEN];
        text[..2].copy_from_slice(b"00");
        let fields: [(&[u8], usize); 3] = [
            (&self.trace_id, 3),
            (&self.parent_id, 36),
            (std::slice::from_ref(&self.flags), 53),
        ];
        for (bytes, start) in fields {
            for (index, byte) in bytes.iter().enumerate() {
                text[start + 2 * index] = DIGITS[usize::from(byte >> 4)];
                text[start + 2 * index + 1] = DIGITS[usize::from(byte & 0x0f)];
            }
        }
        text
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.encode();
        f.write_str(std::str::from_utf8(&text).expect("hex digits and dashes are ASCII"))
    }
}

/// Decodes exactly `2 * N` lowercase hex digits; uppercase is invalid in `traceparent`.
fn lower_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |digit: u8| match LOWER_HEX_VALUES[usize::from(digit)] {
        NOT_HEX => None,
        value => Some(value),
    };
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// [`LOWER_HEX_VALUES`]' mark of a byte that is not a lowercase hex digit.
const NOT_HEX: u8 = 0xff;

/// The value of each lowercase hex digit, [`NOT_HEX`] for every other byte: a table because
/// every received event's `traceparent` is 52 digits.
const LOWER_HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut value = 0;
    while value < 16 {
        table[b"0123456789abcdef"[value] as usize] = value as u8;
        value += 1;
    }
    table
};

/// 16 bytes with 122 random bits from the operating system's generator (a version-4 UUID).
/// The six fixed bits sit in bytes 6 and 8, so the rightmost seven bytes, the ones W3C Trace
/// Context Level 2 asks to be random, are fully random. A zero id cannot come out of it.
fn random_trace_id() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

/// 8 fully random bytes, taken from the random bytes of a version-4 UUID (0..6 and 10..12;
/// bytes 6 and 8 hold its version and variant bits). Zero is drawn again, so in practice never.
fn random_parent_id() -> [u8; 8] {
    loop {
        let random = uuid::Uuid::new_v4().into_bytes();
        let mut id = [0; 8];
        id[..6].copy_from_slice(&random[..6]);
        id[6..].copy_from_slice(&random[10..12]);
        if id != [0; 8] {
            return id;
        }
    }
}
