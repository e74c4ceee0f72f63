//! Stamps `keel --version` with the commit the binary was built from, so an operator's bug
//! report and a benchmark run of a binary built elsewhere (`KEEL_BIN`) name the code they ran.
//! Outside a git checkout (a source tarball) the version is the crate's alone.

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at (a commit).
    let mut watched = vec!["HEAD".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            // A missing file would make cargo rerun this script on every build.
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let long = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=KEEL_LONG_VERSION={long}");
}

/// One line of git's output, or nothing when git or the repository is absent.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let line = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !line.is_empty()).then_some(line)
}
