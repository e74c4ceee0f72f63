//! Times as an operator types and reads them: a flag's value as RFC 3339 or milliseconds
//! since the Unix epoch, and milliseconds printed as RFC 3339.
//!
//! Not here: reading the clock (each verb takes `Utc::now()` once and passes it down).

use anyhow::Context;
use chrono::{DateTime, Utc};

/// The value `text` of the flag `flag` (`--from-time`, ...) as ms since the epoch: RFC 3339
/// or a plain number of milliseconds.
pub(crate) fn parse_ms(flag: &str, text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let time: DateTime<Utc> = DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("{flag} '{text}' is neither RFC 3339 nor milliseconds"))?
        .into();
    Ok(time.timestamp_millis())
}

/// Milliseconds since the epoch as RFC 3339 with milliseconds, or the plain number when it
/// is out of range.
pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}
