//! Tests of `traceparent` parsing and printing against the examples and rules of W3C Trace
//! Context (version 00, and the forward-compatibility rule for later versions).
//!
//! Not here: how the attribute travels in an event (`envelope.rs`).

use keel_core::TraceParent;

/// `text` must parse as `expected` (trace id, parent id, flags) and print as `printed`, or,
/// with `expected` `None`, be rejected.
fn check(text: &str, expected: Option<(&str, &str, u8)>, printed: Option<&str>) {
    let parsed = text.parse::<TraceParent>();
    match (expected, parsed) {
        (None, Err(error)) => {
            let message = error.to_string();
            assert!(
                message.starts_with("invalid traceparent: "),
                "{text:?}: {message}"
            );
        }
        (None, Ok(parsed)) => panic!("{text:?}: accepted as {parsed:?}"),
        (Some(_), Err(error)) => panic!("{text:?}: rejected: {error}"),
        (Some((trace_id, parent_id, flags)), Ok(parsed)) => {
            assert_eq!(hex(&parsed.trace_id), trace_id, "{text:?}");
            assert_eq!(hex(&parsed.parent_id), parent_id, "{text:?}");
            assert_eq!(parsed.flags, flags, "{text:?}");
            assert_eq!(parsed.to_string(), printed.unwrap_or(text), "{text:?}");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[test]
fn w3c_examples_parse_and_print() {
    check(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some((TRACE, PARENT, 0x01)),
        None,
    );
    check(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        Some((TRACE, PARENT, 0x00)),
        None,
    );
    check(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Some(("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0x01)),
        None,
    );
    // Unknown flags are kept, so they propagate.
    check(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
        Some((TRACE, PARENT, 0x09)),
        None,
    );
}

#[test]
fn later_versions_are_read_by_their_first_fields_and_printed_as_00() {
    let as_00 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for text in [
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        "fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
    ] {
        check(text, Some((TRACE, PARENT, 0x01)), Some(as_00));
    }
}

#[test]
fn invalid_values_are_rejected() {
    let cases = [
        // Version ff is forbidden; version 00 is exactly 55 characters.
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        // A later version still needs a dash after the flags.
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
        // All-zero ids.
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // Uppercase hex, anywhere.
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // Wrong lengths.
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "",
        // Not hex, wrong separators, stray whitespace, non-ASCII.
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
    ];
    for text in cases {
        check(text, None, None);
    }
}

#[test]
fn roots_and_children() {
    let root = TraceParent::new_root();
    assert!(root.is_valid() && root.sampled());
    assert_ne!(TraceParent::new_root().trace_id, root.trace_id);
    let child = root.child();
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.flags, root.flags);
    assert_ne!(child.parent_id, root.parent_id);
    assert_eq!(root.to_string().parse::<TraceParent>(), Ok(root));
    let unsampled = TraceParent {
        flags: 0x02,
        ..root
    };
    assert!(!unsampled.sampled());
}

proptest::proptest! {
    /// Printing writes the digits itself; the text is what `{:02x}` per byte gave (the
    /// printer before it), for any ids and flags, valid or not.
    #[test]
    fn printing_matches_formatted_hex(
        trace_id in proptest::prelude::any::<[u8; 16]>(),
        parent_id in proptest::prelude::any::<[u8; 8]>(),
        flags in proptest::prelude::any::<u8>(),
    ) {
        let traceparent = TraceParent { trace_id, parent_id, flags };
        let formatted = format!("00-{}-{}-{flags:02x}", hex(&trace_id), hex(&parent_id));
        proptest::prop_assert_eq!(traceparent.to_string(), formatted);
    }
}
