//! Keel's topic and group names in an engine's narrower alphabet: every byte the engine does
//! not allow is written `_XX` (upper-case hex), `_` itself included, so the mapping is
//! injective and reads back — `orders.dlq` is `orders_2Edlq` on NATS and SQS. Each engine
//! says which bytes it keeps; pure string work.

/// `name` with every byte `kept` refuses (and every `_`) written as `_` and two upper-case
/// hex digits.
pub fn escape_name(name: &str, kept: impl Fn(u8) -> bool) -> String {
    let mut escaped = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte != b'_' && kept(byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("_{byte:02X}"));
        }
    }
    escaped
}

/// The name [`escape_name`] wrote with the same `kept`; `None` when `escaped` is not such a
/// name (a byte not kept, lower-case or short hex, not UTF-8).
pub fn unescape_name(escaped: &str, kept: impl Fn(u8) -> bool) -> Option<String> {
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'_' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            if hex.bytes().any(|b| b.is_ascii_lowercase()) {
                return None;
            }
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if kept(byte) {
            bytes.push(byte);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_the_kept_alphabet() {
        let alnum = |b: u8| b.is_ascii_alphanumeric();
        for (name, escaped) in [
            ("orders", "orders"),
            ("orders.dlq", "orders_2Edlq"),
            ("a_b", "a_5Fb"),
            ("a-b", "a_2Db"),
            ("ü", "_C3_BC"),
        ] {
            assert_eq!(escape_name(name, alnum), escaped);
            assert_eq!(unescape_name(escaped, alnum).as_deref(), Some(name));
        }
        let with_dash = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
        assert_eq!(escape_name("a-b", with_dash), "a-b");
        assert_eq!(unescape_name("a-b", alnum), None, "'-' not kept");
        assert_eq!(unescape_name("a_2e", alnum), None, "lower-case hex");
        assert_eq!(unescape_name("a_2", alnum), None, "short hex");
    }
}
