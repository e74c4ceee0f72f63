//! Tidy checks: the code rules from `STYLE.md` that a machine can enforce.
//!
//! - every Rust source file opens with a `//!` comment saying what it is;
//! - the dependency rule: `keel-log` and `keel-core` never depend on an async runtime, a
//!   network client or SQL, and only `keel-cli` may use `anyhow` in its own code;
//! - the import rule of the ports: only the crates that are the embedded engine or compose
//!   it may import the storage engine (`keel-log`); the router core (`keel-runtime`), the
//!   ports (`keel-core`) and every foreign-engine transport (`keel-kafka-client`, and any new
//!   crate) never do.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            !fs::read_to_string(path)
                .unwrap_or_default()
                .trim_start()
                .starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc: {missing:#?}"
    );
}

/// The dependency rule of `ARCHITECTURE.md`: the log and the vocabulary know no runtime,
/// network or SQL; the consumer runtime knows no SQL and no sockets (SQL lives in `keel-sql`).
/// `keel-log` may name `anyhow` only because `kafka-protocol`'s decompression hook returns
/// `anyhow::Result`; it never uses it for its own errors.
#[test]
fn lower_layers_stay_free_of_runtime_network_and_sql() {
    let sql = ["sqlx", "rusqlite", "tokio-postgres", "deadpool-postgres"];
    let network = [
        "rdkafka",
        "axum",
        "hyper",
        "reqwest",
        "async-nats",
        "redis",
        "lapin",
    ];
    let runtime = ["tokio", "async-std"];
    let cases: &[(&str, Vec<&str>)] = &[
        (
            "keel-core",
            [&sql[..], &network, &runtime, &["anyhow"]].concat(),
        ),
        ("keel-log", [&sql[..], &network, &runtime].concat()),
        ("keel-runtime", [&sql[..], &network, &["anyhow"]].concat()),
        // The embedded transport opens no socket and holds no SQL either.
        ("keel-embedded", [&sql[..], &network, &["anyhow"]].concat()),
        // Event sourcing is over the ports: its SQL backends are keel-sql's.
        ("keel-store", [&sql[..], &network, &["anyhow"]].concat()),
        (
            "keel-projection",
            [&sql[..], &network, &["anyhow"]].concat(),
        ),
        // The registry's logic speaks no HTTP; keel-server serves it.
        ("keel-schema", [&sql[..], &network, &["anyhow"]].concat()),
        // SQL lives in keel-sql alone; the binary and the facade reach it only through it.
        // The Kafka transport is a client of the ports; SQL stays in keel-sql.
        ("keel-kafka-client", [&sql[..], &["anyhow"]].concat()),
        (
            "keel-nats",
            [&sql[..], &["anyhow", "rdkafka", "redis", "lapin"]].concat(),
        ),
        ("keel-cli", sql.to_vec()),
        ("keel", sql.to_vec()),
    ];
    for (krate, forbidden_names) in cases {
        let path = workspace_root()
            .join("crates")
            .join(krate)
            .join("Cargo.toml");
        let manifest = fs::read_to_string(path).expect("manifest");
        let dependencies = manifest
            .split("[dev-dependencies]")
            .next()
            .unwrap_or_default();
        let names: Vec<&str> = dependencies
            .lines()
            .map(|line| line.split(['=', '.']).next().unwrap_or_default().trim())
            .collect();
        for forbidden in forbidden_names {
            assert!(
                !names.contains(forbidden),
                "{krate} must not depend on {forbidden}"
            );
        }
    }
}

/// The crates that may name `keel-log` in their dependencies and import it: the engine
/// itself, the embedded transport and what is built on the embedded log (its event store,
/// topic projections, the registry's storage, the Kafka-protocol broker over it, the server
/// and the binary composing them, the facade). Everything else — the router core, the
/// ports, every foreign-engine transport and any crate added later — is written against
/// `keel-core`'s ports and must not: a new transport that reached for the log would not be
/// "a crate implementing traits, nothing more".
const MAY_IMPORT_THE_LOG: &[&str] = &[
    "keel-log",
    "keel-embedded",
    "keel-store",
    "keel-projection",
    "keel-schema",
    "keel-kafka",
    "keel-server",
    "keel-cli",
    "keel",
];

#[test]
fn only_the_embedded_engine_imports_the_storage_engine() {
    let crates = workspace_root().join("crates");
    let mut offenders = Vec::new();
    for entry in fs::read_dir(&crates).expect("crates/").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let manifest = entry.path().join("Cargo.toml");
        if MAY_IMPORT_THE_LOG.contains(&name.as_str()) || !manifest.exists() {
            continue;
        }
        let manifest = fs::read_to_string(manifest).expect("manifest");
        let dependencies = manifest
            .split("[dev-dependencies]")
            .next()
            .unwrap_or_default();
        if dependencies
            .lines()
            .any(|line| line.trim_start().starts_with("keel-log"))
        {
            offenders.push(format!("{name}/Cargo.toml depends on keel-log"));
        }
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let imports = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .any(|line| line.contains("keel_log::") || line.contains("keel_log;"));
            if imports {
                offenders.push(format!("{} imports keel_log", file.display()));
            }
        }
    }
    offenders.sort();
    assert!(
        offenders.is_empty(),
        "the router core, the ports and foreign-engine transports must reach a broker through \
         keel-core's ports, never the storage engine: {offenders:#?}"
    );
}
