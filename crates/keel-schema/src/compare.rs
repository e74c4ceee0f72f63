//! The JSON Schema compatibility engine: can a *reader* schema read every document a
//! *writer* schema allows? It answers with the list of [`Difference`]s, empty when it can.
//!
//! Deciding JSON Schema inclusion exactly is undecidable in general (patterns are regular
//! languages, `if`/`then`/`else` and `not` compose freely), so this is a structural diff, with
//! the verdicts Confluent Schema Registry's rules give (its documentation and published pairs
//! are the reference; `tests/compatibility.rs` holds Keel's own cases of every rule). The
//! rules, reader against writer:
//!
//! - `true`/`{}` accepts everything; a writer of `false` writes nothing; a reader of `false`
//!   accepts nothing.
//! - `type`: every writer type must be a reader type; `integer` widens to `number`.
//! - `enum`/`const`: every writer value must stay; a reader enum where the writer had none
//!   narrows.
//! - bounds (`minLength`, `maximum`, `minItems`, ...): the reader's may only widen;
//!   `multipleOf` must divide the writer's; a changed `pattern` is a change.
//! - objects, per property name: in both → compare; only in the reader → compare with what the
//!   writer's content model allowed under that name (`patternProperties`, else
//!   `additionalProperties`, default `true`: so adding a constrained property to an *open*
//!   content model is incompatible, to a *closed* one compatible); only in the writer → compare
//!   with what the reader's content model accepts under that name. `additionalProperties` and
//!   `patternProperties` are compared as schemas. A newly required property is incompatible
//!   when the reader declares it in `properties` (as Confluent: a `required` entry for an
//!   undeclared name is not reported).
//! - arrays: `prefixItems` position by position, a missing position standing for the other
//!   side's `items`; then `items`; draft-07 array `items`/`additionalItems` read the same way.
//! - combiners: a writer `oneOf`/`anyOf` is compatible when each alternative is; a reader
//!   `allOf` when each part is; a reader `oneOf`/`anyOf` when some alternative is; a writer
//!   `allOf` when some part is, or else its parts merged.
//! - `not`: compared with writer and reader swapped. `if`/`then`/`else` must be unchanged.
//! - `$ref` to `#/$defs/...`, `#/definitions/...` or any local JSON pointer is followed;
//!   recursion through references is assumed compatible on the second visit.
//! - annotations (`title`, `description`, `$id`, `examples`, `default`, `format`, ...) are
//!   ignored.
//!
//! The walk is bounded: pairs holding a `$ref` are memoised (each distinct pair is compared
//! once), and every visited pair spends from a [`Budget`] of steps, depth and time, so no
//! schema makes a check run for ever.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::budget::{Budget, ComparisonError};
use crate::difference::{Difference, DifferenceKind, push};
use crate::limits::{DIFFERENCES_PER_PAIR_MAX, SCHEMA_DEPTH_MAX};
use crate::memo::Memo;

/// The differences that stop `reader` from reading everything `writer` allows; empty when the
/// reader can. Both are whole schema documents (their `$ref`s resolve inside themselves).
/// Spends from the registry's default [`Budget`].
pub fn reader_differences(
    writer: &Value,
    reader: &Value,
) -> Result<Vec<Difference>, ComparisonError> {
    reader_differences_within(writer, reader, &mut Budget::default())
}

/// [`reader_differences`] spending from a budget of the caller's.
pub fn reader_differences_within(
    writer: &Value,
    reader: &Value,
    budget: &mut Budget,
) -> Result<Vec<Difference>, ComparisonError> {
    let found = json_reader_differences(writer, reader, budget);
    budget.settle(found)
}

/// [`reader_differences`] spending from `budget`; what it returns is incomplete once the
/// budget is exhausted (the caller settles it).
pub(crate) fn json_reader_differences(
    writer: &Value,
    reader: &Value,
    budget: &mut Budget,
) -> Vec<Difference> {
    let mut comparer = Comparer {
        writer_root: writer,
        reader_root: reader,
        memo: Memo::default(),
        budget,
        depth: 0,
    };
    let mut out = Vec::new();
    comparer.compare(writer, reader, "#", &mut out);
    out
}

/// Keywords that constrain nothing: a schema with only these accepts every document.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$anchor",
    "$dynamicAnchor",
    "$comment",
    "$defs",
    "definitions",
    "$vocabulary",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
];

const COMBINERS: &[&str] = &["allOf", "anyOf", "oneOf"];

struct Comparer<'a> {
    writer_root: &'a Value,
    reader_root: &'a Value,
    /// Pairs holding a `$ref`. Only references make a finite document unfold into
    /// exponentially many pairs (an `anyOf` of two `$ref`s to the next level, 40 levels deep,
    /// is 2^40 pairs); remembering them makes the walk polynomial in the distinct pairs.
    memo: Memo<MemoKey>,
    budget: &'a mut Budget,
    depth: usize,
}

/// A pair of schema nodes by their text: both documents are fixed for one comparison, so the
/// same text means the same schema (references resolve against the same roots).
type MemoKey = (String, String);

/// A schema seen through its combiners.
enum Shape<'v> {
    /// No combiner: compared keyword by keyword.
    Leaf(Cow<'v, Value>),
    /// Every part must hold (`allOf`, or a combiner with sibling keywords).
    All(&'static str, Vec<Cow<'v, Value>>),
    /// At least one alternative must hold (`anyOf`, `oneOf`: for reading, one is enough).
    Any(&'static str, Vec<Cow<'v, Value>>),
}

impl Comparer<'_> {
    fn compare(&mut self, writer: &Value, reader: &Value, path: &str, out: &mut Vec<Difference>) {
        if !self.budget.step(self.depth) {
            return;
        }
        let key = (ref_of(writer).is_some() || ref_of(reader).is_some())
            .then(|| (writer.to_string(), reader.to_string()));
        if let Some(key) = &key
            && !self.memo.enter(key, path, out)
        {
            return;
        }
        let writer = resolve(self.writer_root, writer);
        let reader = resolve(self.reader_root, reader);
        let start = out.len();
        self.depth += 1;
        self.compare_resolved(&writer, &reader, path, out);
        self.depth -= 1;
        match key {
            Some(key) => {
                let complete = !self.budget.is_exhausted();
                self.memo.leave(key, path, out, start, complete);
            }
            // Every alternative of a writer's `anyOf` adds its own differences, so without a
            // cap the report of a reference bomb doubles per level even when its walk does not.
            None => out.truncate(start + DIFFERENCES_PER_PAIR_MAX),
        }
    }

    fn compare_resolved(
        &mut self,
        writer: &Value,
        reader: &Value,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        if accepts_everything(reader) || writer == &Value::Bool(false) {
            return;
        }
        if reader == &Value::Bool(false) {
            push(
                out,
                path,
                DifferenceKind::ContentModelClosed,
                "the reader accepts nothing here (false), the writer allows values".into(),
            );
            return;
        }
        match (shape(writer), shape(reader)) {
            (Shape::Any(keyword, alternatives), _) => {
                for (index, alternative) in alternatives.iter().enumerate() {
                    let at = format!("{path}/{keyword}/{index}");
                    self.compare(alternative, reader, &at, out);
                }
            }
            (_, Shape::All(keyword, parts)) => {
                for (index, part) in parts.iter().enumerate() {
                    let at = format!("{path}/{keyword}/{index}");
                    self.compare(writer, part, &at, out);
                }
            }
            (_, Shape::Any(keyword, alternatives)) => {
                let mut best: Option<Vec<Difference>> = None;
                for (index, alternative) in alternatives.iter().enumerate() {
                    let mut found = Vec::new();
                    let at = format!("{path}/{keyword}/{index}");
                    self.compare(writer, alternative, &at, &mut found);
                    if found.is_empty() {
                        return;
                    }
                    if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                        best = Some(found);
                    }
                }
                let closest = best
                    .and_then(|found| found.into_iter().next())
                    .map(|d| format!("; closest: {d}"))
                    .unwrap_or_default();
                push(
                    out,
                    path,
                    DifferenceKind::CombinedTypeNarrowed,
                    format!(
                        "none of the reader's {} {keyword} alternatives accepts what the writer allows{closest}",
                        alternatives.len()
                    ),
                );
            }
            (Shape::All(keyword, parts), Shape::Leaf(_)) => {
                let mut best: Option<Vec<Difference>> = None;
                for (index, part) in parts.iter().enumerate() {
                    let mut found = Vec::new();
                    self.compare(
                        part,
                        reader,
                        &format!("{path}/{keyword}/{index}"),
                        &mut found,
                    );
                    if found.is_empty() {
                        return;
                    }
                    if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                        best = Some(found);
                    }
                }
                // No single part is enough; the parts together may be (one holds the type,
                // another the required list). Merge plain parts and compare the whole.
                match merge_parts(&parts) {
                    Some(merged) => self.compare(&merged, reader, path, out),
                    None => out.extend(best.unwrap_or_default()),
                }
            }
            (Shape::Leaf(writer), Shape::Leaf(reader)) => {
                let empty = Map::new();
                let writer_map = writer.as_object().unwrap_or(&empty);
                let reader_map = reader.as_object().unwrap_or(&empty);
                self.compare_leaf(writer_map, reader_map, path, out);
            }
        }
    }

    fn compare_leaf(
        &mut self,
        writer: &Map<String, Value>,
        reader: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        self.compare_not(writer, reader, path, out);
        let writer_types = types_of(writer);
        compare_types(writer_types.as_ref(), reader, path, out);
        compare_enum(writer, reader, path, out);
        let writes = |name: &str| {
            writer_types.as_ref().is_none_or(|types| {
                types.contains(name) || (name == "number" && types.contains("integer"))
            })
        };
        if writes("string") {
            compare_lower(writer, reader, "minLength", path, out);
            compare_upper(writer, reader, "maxLength", path, out);
            compare_pattern(writer, reader, path, out);
        }
        if writes("number") {
            compare_number_bounds(writer, reader, path, out);
            compare_multiple_of(writer, reader, path, out);
        }
        if writes("object") {
            self.compare_object(writer, reader, path, out);
        }
        if writes("array") {
            self.compare_array(writer, reader, path, out);
        }
        compare_conditional(writer, reader, path, out);
    }

    fn compare_not(
        &mut self,
        writer: &Map<String, Value>,
        reader: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let Some(reader_not) = reader.get("not") else {
            return;
        };
        let at = format!("{path}/not");
        match writer.get("not") {
            Some(writer_not) => {
                // The reader excludes what its `not` matches: it accepts all the writer allows
                // when everything the reader excludes, the writer excluded too.
                let mut found = Vec::new();
                self.compare(reader_not, writer_not, &at, &mut found);
                if let Some(first) = found.first() {
                    push(
                        out,
                        &at,
                        DifferenceKind::NotNarrowed,
                        format!("the reader's 'not' excludes values the writer allows ({first})"),
                    );
                }
            }
            None => push(
                out,
                &at,
                DifferenceKind::NotNarrowed,
                "the reader adds a 'not' the writer did not have".into(),
            ),
        }
    }

    fn compare_object(
        &mut self,
        writer: &Map<String, Value>,
        reader: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let empty = Map::new();
        let writer_properties = object_at(writer, "properties").unwrap_or(&empty);
        let reader_properties = object_at(reader, "properties").unwrap_or(&empty);
        let names: BTreeSet<&String> = writer_properties
            .keys()
            .chain(reader_properties.keys())
            .collect();
        for name in names {
            let at = format!("{path}/properties/{}", escape_pointer(name));
            match (writer_properties.get(name), reader_properties.get(name)) {
                (Some(w), Some(r)) => self.compare(w, r, &at, out),
                (None, Some(r)) => {
                    let allowed = content_schema_for(writer, name);
                    let mut found = Vec::new();
                    self.compare(&allowed, r, &at, &mut found);
                    if let Some(first) = found.first() {
                        let (kind, detail) = if accepts_everything(&allowed) {
                            (
                                DifferenceKind::PropertyAddedToOpenContentModel,
                                format!(
                                    "property '{name}' added; the writer's open content model may already carry it with any value ({first}); close the content model (\"additionalProperties\": false, from the subject's first version on) to add properties compatibly"
                                ),
                            )
                        } else {
                            (
                                DifferenceKind::PropertyAddedNotCoveredByPartiallyOpenContentModel,
                                format!(
                                    "property '{name}' added, but the reader's schema for it does not accept what the writer's content model allowed under that name ({first})"
                                ),
                            )
                        };
                        push(out, &at, kind, detail);
                    }
                }
                (Some(w), None) => {
                    let accepted = content_schema_for(reader, name);
                    let mut found = Vec::new();
                    self.compare(w, &accepted, &at, &mut found);
                    if let Some(first) = found.first() {
                        push(
                            out,
                            &at,
                            DifferenceKind::PropertyRemovedNotCoveredByPartiallyOpenContentModel,
                            format!(
                                "property '{name}' removed, and the reader's additionalProperties/patternProperties do not accept the values the writer declared for it ({first})"
                            ),
                        );
                    }
                }
                (None, None) => {}
            }
        }
        let writer_required = strings_at(writer, "required");
        for name in strings_at(reader, "required") {
            if reader_properties.contains_key(name) && !writer_required.contains(&name) {
                push(
                    out,
                    &format!("{path}/required"),
                    DifferenceKind::RequiredPropertyAdded,
                    format!("property '{name}' is now required; the writer may omit it"),
                );
            }
        }
        let writer_patterns = object_at(writer, "patternProperties").unwrap_or(&empty);
        let reader_patterns = object_at(reader, "patternProperties").unwrap_or(&empty);
        let writer_additional = writer
            .get("additionalProperties")
            .unwrap_or(&Value::Bool(true));
        let reader_additional = reader
            .get("additionalProperties")
            .unwrap_or(&Value::Bool(true));
        for (pattern, r) in reader_patterns {
            let at = format!("{path}/patternProperties/{}", escape_pointer(pattern));
            let w = writer_patterns.get(pattern).unwrap_or(writer_additional);
            self.compare(w, r, &at, out);
        }
        for (pattern, w) in writer_patterns {
            if !reader_patterns.contains_key(pattern) {
                let at = format!("{path}/patternProperties/{}", escape_pointer(pattern));
                self.compare(w, reader_additional, &at, out);
            }
        }
        let at = format!("{path}/additionalProperties");
        self.compare(writer_additional, reader_additional, &at, out);
        compare_lower(writer, reader, "minProperties", path, out);
        compare_upper(writer, reader, "maxProperties", path, out);
        if let Some(reader_names) = reader.get("propertyNames") {
            let writer_names = writer.get("propertyNames").unwrap_or(&Value::Bool(true));
            self.compare(
                writer_names,
                reader_names,
                &format!("{path}/propertyNames"),
                out,
            );
        }
        self.compare_dependencies(writer, reader, path, out);
    }

    fn compare_dependencies(
        &mut self,
        writer: &Map<String, Value>,
        reader: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let writer_required = dependent_required(writer);
        for (name, needs) in dependent_required(reader) {
            let had = writer_required
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, needs)| needs.clone())
                .unwrap_or_default();
            for need in needs.iter().filter(|need| !had.contains(need)) {
                push(
                    out,
                    &format!("{path}/dependentRequired/{}", escape_pointer(name)),
                    DifferenceKind::DependencyAdded,
                    format!("when '{name}' is present, '{need}' is now required too"),
                );
            }
        }
        let writer_schemas = dependent_schemas(writer);
        for (name, r) in dependent_schemas(reader) {
            let at = format!("{path}/dependentSchemas/{}", escape_pointer(name));
            match writer_schemas.iter().find(|(n, _)| *n == name) {
                Some((_, w)) => self.compare(w, r, &at, out),
                None => push(
                    out,
                    &at,
                    DifferenceKind::DependencyAdded,
                    format!("a schema dependency on '{name}' was added"),
                ),
            }
        }
    }

    fn compare_array(
        &mut self,
        writer: &Map<String, Value>,
        reader: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let (writer_prefix, writer_items) = array_model(writer);
        let (reader_prefix, reader_items) = array_model(reader);
        let positions = writer_prefix.len().max(reader_prefix.len());
        for index in 0..positions {
            let at = format!("{path}/prefixItems/{index}");
            match (writer_prefix.get(index), reader_prefix.get(index)) {
                (Some(w), Some(r)) => self.compare(w, r, &at, out),
                (None, Some(r)) => {
                    let mut found = Vec::new();
                    self.compare(writer_items, r, &at, &mut found);
                    if let Some(first) = found.first() {
                        push(
                            out,
                            &at,
                            DifferenceKind::ItemAddedNotCoveredByPartiallyOpenContentModel,
                            format!(
                                "array position {index} added, but it does not accept what the writer's items allowed there ({first})"
                            ),
                        );
                    }
                }
                (Some(w), None) => {
                    let mut found = Vec::new();
                    self.compare(w, reader_items, &at, &mut found);
                    if let Some(first) = found.first() {
                        push(
                            out,
                            &at,
                            DifferenceKind::ItemRemovedNotCoveredByPartiallyOpenContentModel,
                            format!(
                                "array position {index} removed, and the reader's items do not accept what the writer declared there ({first})"
                            ),
                        );
                    }
                }
                (None, None) => {}
            }
        }
        self.compare(writer_items, reader_items, &format!("{path}/items"), out);
        compare_lower(writer, reader, "minItems", path, out);
        compare_upper(writer, reader, "maxItems", path, out);
        if reader.get("uniqueItems") == Some(&Value::Bool(true))
            && writer.get("uniqueItems") != Some(&Value::Bool(true))
        {
            push(
                out,
                &format!("{path}/uniqueItems"),
                DifferenceKind::UniqueItemsAdded,
                "the reader requires unique items; the writer allows repeats".into(),
            );
        }
        if let Some(reader_contains) = reader.get("contains") {
            let at = format!("{path}/contains");
            match writer.get("contains") {
                Some(writer_contains) => {
                    self.compare(writer_contains, reader_contains, &at, out);
                    compare_lower(writer, reader, "minContains", path, out);
                    compare_upper(writer, reader, "maxContains", path, out);
                }
                None => push(
                    out,
                    &at,
                    DifferenceKind::ContainsNarrowed,
                    "the reader adds a 'contains' requirement".into(),
                ),
            }
        }
    }
}

/// The `$ref` of a schema object, if any.
fn ref_of(schema: &Value) -> Option<&str> {
    schema.get("$ref").and_then(Value::as_str)
}

/// Follows `$ref` chains to local JSON pointers. A `$ref` with sibling keywords is the
/// conjunction of its target and the siblings (2020-12 semantics). An unresolvable reference
/// stays as it is and accepts everything; schemas are checked for that when parsed.
fn resolve<'v>(root: &'v Value, schema: &'v Value) -> Cow<'v, Value> {
    let mut current = Cow::Borrowed(schema);
    for _ in 0..SCHEMA_DEPTH_MAX {
        let Some(reference) = ref_of(&current) else {
            return current;
        };
        let Some(target) = local_target(root, reference) else {
            return current;
        };
        let mut siblings = current.as_object().cloned().unwrap_or_default();
        siblings.remove("$ref");
        let constrains = siblings
            .keys()
            .any(|key| !ANNOTATIONS.contains(&key.as_str()));
        current = if constrains {
            Cow::Owned(serde_json::json!({ "allOf": [target, Value::Object(siblings)] }))
        } else {
            Cow::Borrowed(target)
        };
    }
    current
}

/// The schema a local reference (`#`, `#/$defs/x`, any `#/json/pointer`) points at.
pub(crate) fn local_target<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(&percent_decode(pointer))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// True for `true`, `{}` and objects holding only annotations.
fn accepts_everything(schema: &Value) -> bool {
    match schema {
        Value::Bool(accepts) => *accepts,
        Value::Object(map) => map.keys().all(|key| ANNOTATIONS.contains(&key.as_str())),
        _ => false,
    }
}

fn shape(schema: &Value) -> Shape<'_> {
    let Some(map) = schema.as_object() else {
        return Shape::Leaf(Cow::Borrowed(schema));
    };
    if !COMBINERS.iter().any(|c| map.contains_key(*c)) {
        return Shape::Leaf(Cow::Borrowed(schema));
    }
    let rest: Map<String, Value> = map
        .iter()
        .filter(|(key, _)| !COMBINERS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let items = |keyword: &str| -> Vec<Cow<'_, Value>> {
        map.get(keyword)
            .and_then(Value::as_array)
            .map(|list| list.iter().map(Cow::Borrowed).collect())
            .unwrap_or_default()
    };
    let rest_constrains = rest.keys().any(|key| !ANNOTATIONS.contains(&key.as_str()));
    let present: Vec<&'static str> = COMBINERS
        .iter()
        .copied()
        .filter(|c| map.contains_key(*c))
        .collect();
    if !rest_constrains && present.len() == 1 {
        let keyword = present[0];
        return if keyword == "allOf" {
            Shape::All(keyword, items(keyword))
        } else {
            Shape::Any(keyword, items(keyword))
        };
    }
    let mut parts: Vec<Cow<'_, Value>> = Vec::new();
    if rest_constrains {
        parts.push(Cow::Owned(Value::Object(rest)));
    }
    parts.extend(items("allOf"));
    for keyword in ["anyOf", "oneOf"] {
        if let Some(list) = map.get(keyword) {
            let mut only = Map::new();
            only.insert(keyword.to_string(), list.clone());
            parts.push(Cow::Owned(Value::Object(only)));
        }
    }
    Shape::All("allOf", parts)
}

/// Shallow merge of `allOf` parts that hold no combiners: properties and required lists are
/// united, the first part wins on any other keyword. `None` when a part is itself combined.
fn merge_parts(parts: &[Cow<'_, Value>]) -> Option<Value> {
    let mut merged = Map::new();
    for part in parts {
        let map = part.as_object()?;
        if COMBINERS.iter().any(|c| map.contains_key(*c)) || map.contains_key("$ref") {
            return None;
        }
        for (key, value) in map {
            match (key.as_str(), merged.get_mut(key), value) {
                ("properties", Some(Value::Object(into)), Value::Object(from)) => {
                    for (name, schema) in from {
                        into.entry(name.clone()).or_insert_with(|| schema.clone());
                    }
                }
                ("required", Some(Value::Array(into)), Value::Array(from)) => {
                    for name in from {
                        if !into.contains(name) {
                            into.push(name.clone());
                        }
                    }
                }
                (_, None, _) => {
                    merged.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
    }
    Some(Value::Object(merged))
}

/// The JSON types a schema allows, `None` for any. Without `type`, an `enum` or `const`
/// implies the types of its values.
fn types_of(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match schema.get("type") {
        Some(Value::String(name)) => return Some(BTreeSet::from([name.clone()])),
        Some(Value::Array(names)) => {
            return Some(
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            );
        }
        _ => {}
    }
    enum_values(schema).map(|values| values.iter().map(|v| json_type(v).to_string()).collect())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn compare_types(
    writer_types: Option<&BTreeSet<String>>,
    reader: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let Some(reader_types) = reader.get("type").and_then(|_| types_of(reader)) else {
        return;
    };
    let at = format!("{path}/type");
    let listed = |types: &BTreeSet<String>| {
        types
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(writer_types) = writer_types else {
        push(
            out,
            &at,
            DifferenceKind::TypeNarrowed,
            format!(
                "the writer allows any type, the reader accepts only {}",
                listed(&reader_types)
            ),
        );
        return;
    };
    let accepted =
        |t: &str| reader_types.contains(t) || (t == "integer" && reader_types.contains("number"));
    let lost: BTreeSet<String> = writer_types
        .iter()
        .filter(|t| !accepted(t))
        .cloned()
        .collect();
    if !lost.is_empty() {
        push(
            out,
            &at,
            DifferenceKind::TypeNarrowed,
            format!(
                "the writer allows {}, the reader accepts only {}",
                listed(&lost),
                listed(&reader_types)
            ),
        );
    }
}

fn enum_values(schema: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(value) = schema.get("const") {
        return Some(vec![value.clone()]);
    }
    schema.get("enum").and_then(Value::as_array).cloned()
}

fn compare_enum(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let Some(reader_values) = enum_values(reader) else {
        return;
    };
    let at = format!("{path}/enum");
    match enum_values(writer) {
        None => push(
            out,
            &at,
            DifferenceKind::EnumNarrowed,
            "the reader restricts the values to an enum; the writer allowed any".into(),
        ),
        Some(writer_values) => {
            let lost: Vec<String> = writer_values
                .iter()
                .filter(|value| !reader_values.iter().any(|r| json_equal(r, value)))
                .map(Value::to_string)
                .collect();
            if !lost.is_empty() {
                push(
                    out,
                    &at,
                    DifferenceKind::EnumNarrowed,
                    format!(
                        "the reader no longer accepts {} that the writer allows",
                        lost.join(", ")
                    ),
                );
            }
        }
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn number_at(schema: &Map<String, Value>, keyword: &str) -> Option<f64> {
    schema.get(keyword).and_then(Value::as_f64)
}

/// A lower bound the reader may lower but never raise (`minLength`, `minItems`, ...).
fn compare_lower(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    keyword: &str,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let Some(reader_min) = number_at(reader, keyword) else {
        return;
    };
    let writer_min = number_at(writer, keyword).unwrap_or(0.0);
    if reader_min > writer_min {
        push(
            out,
            &format!("{path}/{keyword}"),
            DifferenceKind::RangeNarrowed,
            format!("{keyword} raised from {writer_min} to {reader_min}"),
        );
    }
}

/// An upper bound the reader may raise or drop but never lower or add.
fn compare_upper(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    keyword: &str,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let Some(reader_max) = number_at(reader, keyword) else {
        return;
    };
    let detail = match number_at(writer, keyword) {
        Some(writer_max) if reader_max >= writer_max => return,
        Some(writer_max) => format!("{keyword} lowered from {writer_max} to {reader_max}"),
        None => format!("{keyword} {reader_max} added; the writer had no limit"),
    };
    push(
        out,
        &format!("{path}/{keyword}"),
        DifferenceKind::RangeNarrowed,
        detail,
    );
}

fn compare_pattern(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let Some(reader_pattern) = reader.get("pattern") else {
        return;
    };
    if writer.get("pattern") != Some(reader_pattern) {
        let before = writer
            .get("pattern")
            .map_or_else(|| "none".to_string(), Value::to_string);
        push(
            out,
            &format!("{path}/pattern"),
            DifferenceKind::PatternChanged,
            format!("pattern changed from {before} to {reader_pattern}"),
        );
    }
}

/// A numeric bound with its exclusivity: `(value, exclusive)`.
type Bound = (f64, bool);

fn bound(
    schema: &Map<String, Value>,
    inclusive: &str,
    exclusive: &str,
    lower: bool,
) -> Option<Bound> {
    let a = number_at(schema, inclusive).map(|v| (v, false));
    let b = number_at(schema, exclusive).map(|v| (v, true));
    match (a, b) {
        (Some(a), Some(b)) => {
            let tighter = if lower { a.0 > b.0 } else { a.0 < b.0 };
            Some(if tighter || a.0 == b.0 && !a.1 && !b.1 {
                a
            } else {
                b
            })
        }
        (a, b) => a.or(b),
    }
}

fn compare_number_bounds(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let describe = |b: Option<Bound>| match b {
        None => "none".to_string(),
        Some((v, true)) => format!("{v} (exclusive)"),
        Some((v, false)) => v.to_string(),
    };
    if let Some(reader_min) = bound(reader, "minimum", "exclusiveMinimum", true) {
        let writer_min = bound(writer, "minimum", "exclusiveMinimum", true);
        let narrower = writer_min
            .is_none_or(|w| reader_min.0 > w.0 || (reader_min.0 == w.0 && reader_min.1 && !w.1));
        if narrower {
            push(
                out,
                &format!("{path}/minimum"),
                DifferenceKind::RangeNarrowed,
                format!(
                    "minimum raised from {} to {}",
                    describe(writer_min),
                    describe(Some(reader_min))
                ),
            );
        }
    }
    if let Some(reader_max) = bound(reader, "maximum", "exclusiveMaximum", false) {
        let writer_max = bound(writer, "maximum", "exclusiveMaximum", false);
        let narrower = writer_max
            .is_none_or(|w| reader_max.0 < w.0 || (reader_max.0 == w.0 && reader_max.1 && !w.1));
        if narrower {
            push(
                out,
                &format!("{path}/maximum"),
                DifferenceKind::RangeNarrowed,
                format!(
                    "maximum lowered from {} to {}",
                    describe(writer_max),
                    describe(Some(reader_max))
                ),
            );
        }
    }
}

fn compare_multiple_of(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let Some(reader_step) = number_at(reader, "multipleOf") else {
        return;
    };
    let writer_step = number_at(writer, "multipleOf");
    let divides = writer_step.is_some_and(|w| {
        let ratio = w / reader_step;
        (ratio - ratio.round()).abs() < 1e-9
    });
    if !divides {
        let before = writer_step.map_or_else(|| "none".to_string(), |w| w.to_string());
        push(
            out,
            &format!("{path}/multipleOf"),
            DifferenceKind::MultipleOfChanged,
            format!("multipleOf changed from {before} to {reader_step}, which does not divide it"),
        );
    }
}

fn compare_conditional(
    writer: &Map<String, Value>,
    reader: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    for keyword in ["if", "then", "else"] {
        if reader.contains_key(keyword) && writer.get(keyword) != reader.get(keyword) {
            push(
                out,
                &format!("{path}/{keyword}"),
                DifferenceKind::ConditionalChanged,
                format!("'{keyword}' changed; conditionals must stay identical to be compatible"),
            );
        }
    }
}

fn object_at<'m>(schema: &'m Map<String, Value>, keyword: &str) -> Option<&'m Map<String, Value>> {
    schema.get(keyword).and_then(Value::as_object)
}

fn strings_at<'m>(schema: &'m Map<String, Value>, keyword: &str) -> Vec<&'m str> {
    schema
        .get(keyword)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What an object schema accepts under a property name it does not declare: the matching
/// `patternProperties` (all of them), else `additionalProperties` (default `true`).
fn content_schema_for(schema: &Map<String, Value>, name: &str) -> Value {
    let matching: Vec<Value> = object_at(schema, "patternProperties")
        .map(|patterns| {
            patterns
                .iter()
                .filter(|(pattern, _)| regex::Regex::new(pattern).is_ok_and(|re| re.is_match(name)))
                .map(|(_, schema)| schema.clone())
                .collect()
        })
        .unwrap_or_default();
    match matching.len() {
        0 => schema
            .get("additionalProperties")
            .cloned()
            .unwrap_or(Value::Bool(true)),
        1 => matching.into_iter().next().unwrap_or(Value::Bool(true)),
        _ => serde_json::json!({ "allOf": matching }),
    }
}

/// `dependentRequired` (2019-09+) and the array form of draft-07 `dependencies`.
fn dependent_required(schema: &Map<String, Value>) -> Vec<(&str, Vec<&str>)> {
    ["dependentRequired", "dependencies"]
        .iter()
        .filter_map(|keyword| object_at(schema, keyword))
        .flat_map(|map| map.iter())
        .filter_map(|(name, needs)| {
            let list = needs.as_array()?;
            Some((
                name.as_str(),
                list.iter().filter_map(Value::as_str).collect(),
            ))
        })
        .collect()
}

/// `dependentSchemas` (2019-09+) and the schema form of draft-07 `dependencies`.
fn dependent_schemas(schema: &Map<String, Value>) -> Vec<(&str, &Value)> {
    ["dependentSchemas", "dependencies"]
        .iter()
        .filter_map(|keyword| object_at(schema, keyword))
        .flat_map(|map| map.iter())
        .filter(|(_, value)| !value.is_array())
        .map(|(name, value)| (name.as_str(), value))
        .collect()
}

/// An array schema as positions plus the schema of every later item: 2020-12 `prefixItems`
/// and `items`, or draft-07 array-form `items` and `additionalItems`.
fn array_model(schema: &Map<String, Value>) -> (Vec<&Value>, &Value) {
    const ANY: &Value = &Value::Bool(true);
    if let Some(Value::Array(positions)) = schema.get("items") {
        let rest = schema.get("additionalItems").unwrap_or(ANY);
        return (positions.iter().collect(), rest);
    }
    let positions = schema
        .get("prefixItems")
        .and_then(Value::as_array)
        .map(|list| list.iter().collect())
        .unwrap_or_default();
    (positions, schema.get("items").unwrap_or(ANY))
}
