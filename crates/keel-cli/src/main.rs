//! The `keel` binary. Its verbs arrive with the foundation issue; see README.md.

fn main() {}
