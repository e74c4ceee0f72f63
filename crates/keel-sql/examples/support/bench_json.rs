//! The benchmark examples' JSON results: one line per number, appended to the file
//! `KEEL_BENCH_JSON` names (what the `scripts/bench*` scripts keep in the history). Not an
//! example itself: included by the examples with `#[path]`.

/// Appends `{group, backend, label, ...fields}` to the file `KEEL_BENCH_JSON` names, if it
/// names one.
pub(crate) fn record(group: &str, backend: &str, label: &str, fields: serde_json::Value) {
    let Ok(path) = std::env::var("KEEL_BENCH_JSON") else {
        return;
    };
    let mut result = serde_json::json!({"group": group, "backend": backend, "label": label});
    result
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("KEEL_BENCH_JSON writable");
    std::io::Write::write_all(&mut file, format!("{result}\n").as_bytes()).unwrap();
}
