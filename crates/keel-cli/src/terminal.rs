//! Whether the binary's output for people may carry ANSI colours: only on a terminal, and
//! never when `NO_COLOR` is set (<https://no-color.org>), so logs piped to a file or parsed by
//! a tool hold plain text.

use std::io::IsTerminal;

/// Whether text written to stderr may be coloured.
pub(crate) fn stderr_colours() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && std::io::stderr().is_terminal()
}
