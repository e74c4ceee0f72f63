//! The JSON Schema compatibility engine: Keel's own cases, each a change to a schema with the
//! differences that break it each way, all through one `check` helper; then the transitive
//! levels, the wording of a report and the bounds of a check.
//!
//! The rules are Confluent Schema Registry's for JSON Schema: which changes its JSON Schema
//! diff counts as compatible, as its documentation and its published pairs show (summed up in
//! `src/compare.rs`). The cases — their names, domains and schema texts — are Keel's own, and
//! reach every rule those pairs cover plus each branch of Keel's engine; where Confluent's
//! pairs say nothing (`propertyNames`, `contains`, draft-07 forms, a `false` writer), the
//! verdict is the one JSON Schema's meaning gives. Each case is an old schema, a new one, and
//! the differences as `path: KIND` that break `BACKWARD` (the new schema reads data written
//! with the old) and `FORWARD` (readers of the old schema read data written with the new);
//! none means compatible. Every level is checked: `FULL` finds both lists, `NONE` nothing,
//! and a transitive level with one earlier version its plain form.

use keel_schema::{CompatibilityLevel, Direction, check_compatibility, diff};
use serde_json::{Value, json};

mod support;
use support::{NOTHING, check_each};

/// One change: what it is, the old schema, the new one, what breaks `BACKWARD`, what breaks
/// `FORWARD`.
type Case = (
    &'static str,
    Value,
    Value,
    &'static [&'static str],
    &'static [&'static str],
);

/// Checks every case of a table, naming all those that fail in one panic.
fn check_all(cases: Vec<Case>) {
    check_each(&cases, |failed, (change, old, new, backward, forward)| {
        check(failed, change, old, new, backward, forward);
    });
}

/// `new` registered after `old` under every level must find exactly the differences of the
/// directions the level checks, each at a JSON path and described in words. A mismatch is
/// added to `failed`.
fn check(
    failed: &mut Vec<String>,
    change: &str,
    old: &Value,
    new: &Value,
    backward: &[&str],
    forward: &[&str],
) {
    for level in CompatibilityLevel::ALL {
        let expected: Vec<&str> = match level {
            CompatibilityLevel::None => Vec::new(),
            CompatibilityLevel::Backward | CompatibilityLevel::BackwardTransitive => {
                backward.to_vec()
            }
            CompatibilityLevel::Forward | CompatibilityLevel::ForwardTransitive => forward.to_vec(),
            CompatibilityLevel::Full | CompatibilityLevel::FullTransitive => {
                [backward, forward].concat()
            }
        };
        let found = check_compatibility(level, new, &[(1, old)]).expect("within budget");
        failed.extend(support::mismatches(change, level, &found, &expected));
    }
}

fn s() -> Value {
    json!("https://json-schema.org/draft/2020-12/schema")
}

#[test]
fn annotations_types_and_enums() {
    check_all(vec![
        (
            "only annotations reworded",
            json!({"$id": "https://keel.example/thermostat", "title": "Thermostat reading", "description": "degrees Celsius", "type": "number", "examples": [21.5]}),
            json!({"$id": "https://keel.example/thermostat/v2", "title": "Reading", "$comment": "renamed", "type": "number", "default": 20, "format": "float", "deprecated": true}),
            NOTHING,
            NOTHING,
        ),
        (
            "every constraint dropped for true",
            json!({"$schema": s(), "type": "string", "minLength": 1}),
            json!(true),
            NOTHING,
            &["#/minLength: RANGE_NARROWED", "#/type: TYPE_NARROWED"],
        ),
        (
            "a schema that accepts nothing becomes one that accepts strings",
            json!(false),
            json!({"type": "string"}),
            NOTHING,
            &["#: CONTENT_MODEL_CLOSED"],
        ),
        (
            "a flag that was a string becomes a boolean",
            json!({"type": "string"}),
            json!({"type": "boolean"}),
            &["#/type: TYPE_NARROWED"],
            &["#/type: TYPE_NARROWED"],
        ),
        (
            "a count widened from integer to number",
            json!({"type": "integer", "minimum": 0}),
            json!({"type": "number", "minimum": 0}),
            NOTHING,
            &["#/type: TYPE_NARROWED"],
        ),
        (
            "a price narrowed from number to integer",
            json!({"type": "number", "exclusiveMinimum": 0}),
            json!({"type": "integer", "exclusiveMinimum": 0}),
            &["#/type: TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "a type list gains null",
            json!({"type": ["string"]}),
            json!({"type": ["string", "null"]}),
            NOTHING,
            &["#/type: TYPE_NARROWED"],
        ),
        (
            "a type list loses array",
            json!({"type": ["array", "object"]}),
            json!({"type": "object"}),
            &["#/type: TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "a type given where any was allowed",
            json!({"minLength": 3}),
            json!({"type": "string", "minLength": 3}),
            &["#/type: TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "an enum without a type gives way to its type",
            json!({"enum": ["low", "high"]}),
            json!({"type": "string"}),
            NOTHING,
            &["#/enum: ENUM_ARRAY_NARROWED"],
        ),
        (
            "enum numbers compared by value, one added",
            json!({"enum": [1, 2]}),
            json!({"enum": [1.0, 2.0, 3]}),
            NOTHING,
            &["#/enum: ENUM_ARRAY_NARROWED"],
        ),
        (
            "a region constant widened to an enum",
            json!({"const": "eu-west"}),
            json!({"enum": ["eu-west", "us-east"]}),
            NOTHING,
            &["#/enum: ENUM_ARRAY_NARROWED"],
        ),
        (
            "a unit enum loses a value",
            json!({"type": "string", "enum": ["kg", "lb", "oz"]}),
            json!({"type": "string", "enum": ["kg", "lb"]}),
            &["#/enum: ENUM_ARRAY_NARROWED"],
            NOTHING,
        ),
        (
            "an enum where any string was allowed",
            json!({"type": "string"}),
            json!({"type": "string", "enum": ["kg"]}),
            &["#/enum: ENUM_ARRAY_NARROWED"],
            NOTHING,
        ),
        (
            "an enum inside allOf swapped for another",
            json!({"allOf": [{"type": "string"}, {"enum": ["metric"]}]}),
            json!({"allOf": [{"type": "string"}, {"enum": ["imperial"]}]}),
            &["#/allOf/1/enum: ENUM_ARRAY_NARROWED"],
            &["#/allOf/1/enum: ENUM_ARRAY_NARROWED"],
        ),
        (
            "an enum inside allOf widened, the parts reordered",
            json!({"allOf": [{"type": "string", "minLength": 1}, {"enum": ["metric"]}]}),
            json!({"allOf": [{"enum": ["metric", "imperial"]}, {"type": "string", "minLength": 1}]}),
            NOTHING,
            &["#/allOf/1/enum: ENUM_ARRAY_NARROWED"],
        ),
    ]);
}

#[test]
fn string_and_number_bounds() {
    check_all(vec![
        (
            "the shortest airport code lengthened",
            json!({"type": "string", "minLength": 2}),
            json!({"type": "string", "minLength": 3}),
            &["#/minLength: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "the shortest airport code shortened",
            json!({"type": "string", "minLength": 3}),
            json!({"type": "string", "minLength": 2}),
            NOTHING,
            &["#/minLength: RANGE_NARROWED"],
        ),
        (
            "the longest note lengthened",
            json!({"type": "string", "maxLength": 140}),
            json!({"type": "string", "maxLength": 280}),
            NOTHING,
            &["#/maxLength: RANGE_NARROWED"],
        ),
        (
            "the longest note shortened",
            json!({"type": "string", "maxLength": 280}),
            json!({"type": "string", "maxLength": 140}),
            &["#/maxLength: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "a length limit where there was none",
            json!({"type": "string"}),
            json!({"type": "string", "maxLength": 64}),
            &["#/maxLength: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "a currency pattern dropped",
            json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
            json!({"type": "string"}),
            NOTHING,
            &["#/pattern: PATTERN_CHANGED"],
        ),
        (
            "a currency pattern rewritten",
            json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
            json!({"type": "string", "pattern": "^[A-Z]{3,4}$"}),
            &["#/pattern: PATTERN_CHANGED"],
            &["#/pattern: PATTERN_CHANGED"],
        ),
        (
            "a currency pattern kept, its description changed",
            json!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"}),
            json!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"}),
            NOTHING,
            NOTHING,
        ),
        (
            "string bounds on a schema that writes only integers",
            json!({"type": "integer"}),
            json!({"type": "integer", "minLength": 5, "pattern": "^9"}),
            NOTHING,
            NOTHING,
        ),
        (
            "a humidity ceiling raised",
            json!({"type": "number", "maximum": 100}),
            json!({"type": "number", "maximum": 120}),
            NOTHING,
            &["#/maximum: RANGE_NARROWED"],
        ),
        (
            "a humidity ceiling lowered",
            json!({"type": "number", "maximum": 120}),
            json!({"type": "number", "maximum": 100}),
            &["#/maximum: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "a humidity ceiling dropped",
            json!({"type": "number", "maximum": 100}),
            json!({"type": "number"}),
            NOTHING,
            &["#/maximum: RANGE_NARROWED"],
        ),
        (
            "a temperature floor raised",
            json!({"type": "number", "minimum": -40}),
            json!({"type": "number", "minimum": -20}),
            &["#/minimum: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "a temperature floor lowered",
            json!({"type": "number", "minimum": -20}),
            json!({"type": "number", "minimum": -40}),
            NOTHING,
            &["#/minimum: RANGE_NARROWED"],
        ),
        (
            "a temperature floor dropped",
            json!({"type": "number", "minimum": -40}),
            json!({"type": "number"}),
            NOTHING,
            &["#/minimum: RANGE_NARROWED"],
        ),
        (
            "an inclusive ceiling made exclusive",
            json!({"type": "number", "maximum": 100}),
            json!({"type": "number", "exclusiveMaximum": 100}),
            &["#/maximum: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "of an inclusive and an exclusive floor the tighter counts",
            json!({"type": "number", "minimum": 0, "exclusiveMinimum": 5}),
            json!({"type": "number", "minimum": 5}),
            NOTHING,
            &["#/minimum: RANGE_NARROWED"],
        ),
        (
            "a minutes step reduced to a divisor",
            json!({"type": "integer", "multipleOf": 15}),
            json!({"type": "integer", "multipleOf": 5}),
            NOTHING,
            &["#/multipleOf: MULTIPLE_OF_CHANGED"],
        ),
        (
            "a minutes step changed to a non-divisor",
            json!({"type": "integer", "multipleOf": 15}),
            json!({"type": "integer", "multipleOf": 10}),
            &["#/multipleOf: MULTIPLE_OF_CHANGED"],
            &["#/multipleOf: MULTIPLE_OF_CHANGED"],
        ),
        (
            "a minutes step dropped",
            json!({"type": "integer", "multipleOf": 15}),
            json!({"type": "integer"}),
            NOTHING,
            &["#/multipleOf: MULTIPLE_OF_CHANGED"],
        ),
        (
            "a fractional step where there was none",
            json!({"type": "number"}),
            json!({"type": "number", "multipleOf": 0.25}),
            &["#/multipleOf: MULTIPLE_OF_CHANGED"],
            NOTHING,
        ),
    ]);
}

#[test]
fn not_and_combiners() {
    check_all(vec![
        (
            "a not excludes fewer statuses",
            json!({"not": {"enum": ["draft", "void"]}}),
            json!({"not": {"enum": ["void"]}}),
            NOTHING,
            &["#/not: NOT_TYPE_NARROWED"],
        ),
        (
            "a not excludes more statuses",
            json!({"not": {"enum": ["void"]}}),
            json!({"not": {"enum": ["draft", "void"]}}),
            &["#/not: NOT_TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "a not where there was none",
            json!({"type": "string"}),
            json!({"type": "string", "not": {"const": "n/a"}}),
            &["#/not: NOT_TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "a oneOf alternative swapped for another",
            json!({"oneOf": [{"type": "string", "format": "email"}, {"type": "null"}]}),
            json!({"oneOf": [{"type": "string", "format": "email"}, {"type": "integer"}]}),
            &["#/oneOf/1: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
            &["#/oneOf/1: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
        ),
        (
            "a oneOf alternative added last",
            json!({"oneOf": [{"type": "string"}, {"type": "null"}]}),
            json!({"oneOf": [{"type": "string"}, {"type": "null"}, {"type": "boolean"}]}),
            NOTHING,
            &["#/oneOf/2: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
        ),
        (
            "a oneOf alternative added first",
            json!({"oneOf": [{"type": "integer"}]}),
            json!({"oneOf": [{"type": "boolean"}, {"type": "integer"}]}),
            NOTHING,
            &["#/oneOf/0: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
        ),
        (
            "an anyOf alternative removed",
            json!({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]}),
            json!({"anyOf": [{"type": "integer"}]}),
            &["#/anyOf/1: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
            NOTHING,
        ),
        (
            "a field inside a oneOf alternative changed",
            json!({"oneOf": [{"type": "object", "properties": {"lat": {"type": "number"}}}, {"type": "string"}]}),
            json!({"oneOf": [{"type": "object", "properties": {"lat": {"type": "string"}}}, {"type": "string"}]}),
            &["#/oneOf/0: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
            &["#/oneOf/0: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
        ),
        (
            "a oneOf of one alternative written as an allOf of it",
            json!({"oneOf": [{"type": "integer", "minimum": 1}]}),
            json!({"allOf": [{"type": "integer", "minimum": 1}]}),
            NOTHING,
            NOTHING,
        ),
        (
            "a oneOf replaced by an allOf of one of its alternatives",
            json!({"oneOf": [{"type": "integer"}, {"type": "string"}]}),
            json!({"allOf": [{"type": "integer"}]}),
            &["#/oneOf/1/allOf/0/type: TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "a uuid string widened into a oneOf",
            json!({"type": "string", "format": "uuid"}),
            json!({"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]}),
            NOTHING,
            &["#/oneOf/1/type: TYPE_NARROWED"],
        ),
        (
            "null widened into an anyOf",
            json!({"type": "null"}),
            json!({"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 10}]}),
            NOTHING,
            &["#/anyOf/1/type: TYPE_NARROWED"],
        ),
        (
            "a bounded string widened into a oneOf",
            json!({"type": "string", "maxLength": 8}),
            json!({"oneOf": [{"type": "string"}, {"type": "boolean"}]}),
            NOTHING,
            &[
                "#/oneOf/0/maxLength: RANGE_NARROWED",
                "#/oneOf/1/type: TYPE_NARROWED",
            ],
        ),
        (
            "an allOf holding a combiner, no part enough alone",
            json!({"allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"minimum": 0}]}),
            json!({"type": "integer"}),
            &["#/allOf/0/anyOf/1/type: TYPE_NARROWED"],
            &["#/allOf/1/minimum: RANGE_NARROWED"],
        ),
        (
            "an allOf and an anyOf side by side narrow a string",
            json!({"type": "string"}),
            json!({"allOf": [{"type": "string"}], "anyOf": [{"maxLength": 5}, {"minLength": 10}]}),
            &["#/allOf/1: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
            NOTHING,
        ),
        (
            "a oneOf beside a type, of annotations only, dropped",
            json!({"type": "string", "oneOf": [{"format": "date"}, {"format": "date-time"}]}),
            json!({"type": "string"}),
            NOTHING,
            NOTHING,
        ),
        (
            "a oneOf beside a type narrows it",
            json!({"type": "string"}),
            json!({"type": "string", "oneOf": [{"maxLength": 10}, {"pattern": "^[0-9]+$"}]}),
            &["#/allOf/1: COMBINED_TYPE_SUBSCHEMAS_CHANGED"],
            NOTHING,
        ),
    ]);
}

/// A shipment line whose other properties `rest` describes, and a `sku` besides.
fn line(rest: Value) -> Value {
    let mut schema = json!({"type": "object", "properties": {"sku": {"type": "string"}}});
    for (key, value) in rest.as_object().expect("keywords") {
        if key == "properties" {
            let properties = schema["properties"].as_object_mut().expect("properties");
            for (name, property) in value.as_object().expect("properties") {
                properties.insert(name.clone(), property.clone());
            }
        } else {
            schema[key] = value.clone();
        }
    }
    schema
}

#[test]
fn object_properties_and_content_models() {
    let closed = json!({"additionalProperties": false});
    let pieces_as_integers = json!({"additionalProperties": {"type": "integer"}});
    check_all(vec![
        (
            "a property renamed in an open model",
            json!({"type": "object", "properties": {"sku": {"type": "string"}}}),
            json!({"type": "object", "properties": {"item_code": {"type": "string"}}}),
            &["#/properties/item_code: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"],
            &["#/properties/sku: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"],
        ),
        (
            "a property's type changed",
            line(json!({})),
            line(json!({"properties": {"sku": {"type": "integer"}}})),
            &["#/properties/sku/type: TYPE_NARROWED"],
            &["#/properties/sku/type: TYPE_NARROWED"],
        ),
        (
            "an optional property added to a closed model",
            line(closed.clone()),
            line(
                json!({"additionalProperties": false, "properties": {"weight_g": {"type": "integer"}}}),
            ),
            NOTHING,
            &[
                "#/properties/weight_g: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "a property added under a name patternProperties covered",
            line(
                json!({"additionalProperties": false, "patternProperties": {"^x-": {"type": "string"}, "^n-": {"type": "integer"}}}),
            ),
            line(
                json!({"additionalProperties": false, "patternProperties": {"^x-": {"type": "string"}, "^n-": {"type": "integer"}}, "properties": {"n-pieces": {"type": "number"}}}),
            ),
            NOTHING,
            &[
                "#/properties/n-pieces: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "a property added as additionalProperties allowed it",
            line(pieces_as_integers.clone()),
            line(
                json!({"additionalProperties": {"type": "integer"}, "properties": {"pieces": {"type": "integer"}}}),
            ),
            NOTHING,
            NOTHING,
        ),
        (
            "a property added unlike additionalProperties allowed it",
            line(pieces_as_integers.clone()),
            line(
                json!({"additionalProperties": {"type": "integer"}, "properties": {"pieces": {"type": "string"}}}),
            ),
            &["#/properties/pieces: PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
            &["#/properties/pieces: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
        ),
        (
            "a required property added as additionalProperties allowed it",
            line(pieces_as_integers.clone()),
            line(
                json!({"additionalProperties": {"type": "integer"}, "properties": {"pieces": {"type": "integer"}}, "required": ["pieces"]}),
            ),
            &["#/required: REQUIRED_PROPERTY_ADDED"],
            NOTHING,
        ),
        (
            "a property removed, a reader's pattern covers its name",
            line(
                json!({"additionalProperties": false, "properties": {"n-pieces": {"type": "integer"}}}),
            ),
            line(
                json!({"additionalProperties": false, "patternProperties": {"^n-": {"type": "number"}}}),
            ),
            NOTHING,
            &[
                "#/patternProperties/^n-: CONTENT_MODEL_CLOSED",
                "#/properties/n-pieces: PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "a property removed, additionalProperties reads it",
            line(
                json!({"additionalProperties": false, "properties": {"note": {"type": "string"}}}),
            ),
            line(json!({"additionalProperties": {"type": "string"}})),
            NOTHING,
            &["#/additionalProperties: CONTENT_MODEL_CLOSED"],
        ),
        (
            "a property removed, additionalProperties does not read it",
            line(
                json!({"additionalProperties": false, "properties": {"note": {"type": "integer"}}}),
            ),
            line(json!({"additionalProperties": {"type": "string"}})),
            &["#/properties/note: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
            &[
                "#/additionalProperties: CONTENT_MODEL_CLOSED",
                "#/properties/note: PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "a nullable property removed, a nullable additionalProperties reads it",
            line(
                json!({"additionalProperties": false, "properties": {"note": {"anyOf": [{"type": "null"}, {"type": "string"}]}}}),
            ),
            line(
                json!({"additionalProperties": {"anyOf": [{"type": "null"}, {"type": "string"}]}}),
            ),
            NOTHING,
            &["#/additionalProperties: CONTENT_MODEL_CLOSED"],
        ),
        (
            "a bounded property removed, a wider additionalProperties reads it",
            line(
                json!({"additionalProperties": false, "properties": {"note": {"type": "string", "maxLength": 200}}}),
            ),
            line(json!({"additionalProperties": {"type": ["string", "null"]}})),
            NOTHING,
            &[
                "#/additionalProperties: CONTENT_MODEL_CLOSED",
                "#/properties/note: PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "an optional constrained property added to an open model",
            line(json!({})),
            line(json!({"properties": {"pieces": {"type": "integer"}}})),
            &["#/properties/pieces: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"],
            NOTHING,
        ),
        (
            "a property that accepts anything added to an open model",
            line(json!({})),
            line(json!({"properties": {"meta": {"description": "free-form"}}})),
            NOTHING,
            NOTHING,
        ),
        (
            "a property that accepts anything removed from an open model",
            line(json!({"properties": {"meta": true}})),
            line(json!({})),
            NOTHING,
            NOTHING,
        ),
        (
            "a property declared false added to a closed model",
            line(closed.clone()),
            line(json!({"additionalProperties": false, "properties": {"legacy_id": false}})),
            NOTHING,
            NOTHING,
        ),
        (
            "a property declared false removed from a closed model",
            line(json!({"additionalProperties": false, "properties": {"legacy_id": false}})),
            line(closed.clone()),
            NOTHING,
            NOTHING,
        ),
        (
            "a closed model opened",
            line(closed.clone()),
            line(json!({})),
            NOTHING,
            &["#/additionalProperties: CONTENT_MODEL_CLOSED"],
        ),
        (
            "an open model closed",
            json!({"type": "object", "additionalProperties": true}),
            json!({"type": "object", "additionalProperties": false}),
            &["#/additionalProperties: CONTENT_MODEL_CLOSED"],
            NOTHING,
        ),
        (
            "additionalProperties narrowed from anything to numbers",
            json!({"type": "object"}),
            json!({"type": "object", "additionalProperties": {"type": "number"}}),
            &["#/additionalProperties/type: TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "additionalProperties changed from booleans to strings",
            json!({"type": "object", "additionalProperties": {"type": "boolean"}}),
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            &["#/additionalProperties/type: TYPE_NARROWED"],
            &["#/additionalProperties/type: TYPE_NARROWED"],
        ),
        (
            "a patternProperties entry narrowed",
            json!({"type": "object", "patternProperties": {"^tag_": {"type": "string"}}}),
            json!({"type": "object", "patternProperties": {"^tag_": {"type": "string", "maxLength": 32}}}),
            &["#/patternProperties/^tag_/maxLength: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "a patternProperties entry dropped from an open model",
            json!({"type": "object", "patternProperties": {"^tag_": {"type": "string"}}}),
            json!({"type": "object"}),
            NOTHING,
            &["#/patternProperties/^tag_/type: TYPE_NARROWED"],
        ),
        (
            "a property added under a name two patterns cover",
            json!({"type": "object", "patternProperties": {"^qty_": {"type": "integer"}, "_kg$": {"minimum": 0}}, "additionalProperties": false}),
            json!({"type": "object", "patternProperties": {"^qty_": {"type": "integer"}, "_kg$": {"minimum": 0}}, "additionalProperties": false, "properties": {"qty_kg": {"type": "number", "minimum": 0}}}),
            NOTHING,
            &["#/properties/qty_kg: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
        ),
        (
            "a property whose name holds a slash changes type",
            json!({"type": "object", "properties": {"size/cm": {"type": "integer"}}}),
            json!({"type": "object", "properties": {"size/cm": {"type": "string"}}}),
            &["#/properties/size~1cm/type: TYPE_NARROWED"],
            &["#/properties/size~1cm/type: TYPE_NARROWED"],
        ),
        (
            "a required property made optional",
            line(json!({"required": ["sku"]})),
            line(json!({})),
            NOTHING,
            &["#/required: REQUIRED_PROPERTY_ADDED"],
        ),
        (
            "an optional property made required",
            line(json!({})),
            line(json!({"required": ["sku"]})),
            &["#/required: REQUIRED_PROPERTY_ADDED"],
            NOTHING,
        ),
        (
            "required moved to a name no property declares",
            line(json!({"required": ["sku"]})),
            line(json!({"required": ["barcode"]})),
            NOTHING,
            &["#/required: REQUIRED_PROPERTY_ADDED"],
        ),
        (
            "maxProperties dropped",
            json!({"type": "object", "maxProperties": 20}),
            json!({"type": "object"}),
            NOTHING,
            &["#/maxProperties: RANGE_NARROWED"],
        ),
        (
            "maxProperties raised",
            json!({"type": "object", "maxProperties": 20}),
            json!({"type": "object", "maxProperties": 40}),
            NOTHING,
            &["#/maxProperties: RANGE_NARROWED"],
        ),
        (
            "maxProperties lowered",
            json!({"type": "object", "maxProperties": 40}),
            json!({"type": "object", "maxProperties": 20}),
            &["#/maxProperties: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "minProperties dropped",
            json!({"type": "object", "minProperties": 1}),
            json!({"type": "object"}),
            NOTHING,
            &["#/minProperties: RANGE_NARROWED"],
        ),
        (
            "minProperties raised",
            json!({"type": "object", "minProperties": 1}),
            json!({"type": "object", "minProperties": 3}),
            &["#/minProperties: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "minProperties lowered",
            json!({"type": "object", "minProperties": 3}),
            json!({"type": "object", "minProperties": 1}),
            NOTHING,
            &["#/minProperties: RANGE_NARROWED"],
        ),
        (
            "property names restricted to snake case",
            json!({"type": "object"}),
            json!({"type": "object", "propertyNames": {"pattern": "^[a-z_]+$"}}),
            &["#/propertyNames/pattern: PATTERN_CHANGED"],
            NOTHING,
        ),
        (
            "a property-name restriction lifted",
            json!({"type": "object", "propertyNames": {"maxLength": 32}}),
            json!({"type": "object"}),
            NOTHING,
            &["#/propertyNames/maxLength: RANGE_NARROWED"],
        ),
    ]);
}

#[test]
fn dependencies() {
    let card = json!({"card_number": {"type": "string"}, "expiry": {"type": "string"}});
    let campaign = |ty: &str| json!({"properties": {"campaign": {"type": ty}}});
    check_all(vec![
        (
            "a dependentRequired rule turned around",
            json!({"type": "object", "properties": card, "dependentRequired": {"card_number": ["expiry"]}}),
            json!({"type": "object", "properties": card, "dependentRequired": {"expiry": ["card_number"]}}),
            &["#/dependentRequired/expiry: DEPENDENCY_ADDED"],
            &["#/dependentRequired/card_number: DEPENDENCY_ADDED"],
        ),
        (
            "a dependentRequired rule dropped",
            json!({"type": "object", "properties": card, "dependentRequired": {"card_number": ["expiry"]}}),
            json!({"type": "object", "properties": card}),
            NOTHING,
            &["#/dependentRequired/card_number: DEPENDENCY_ADDED"],
        ),
        (
            "a draft-07 list dependency needs one more property",
            json!({"type": "object", "dependencies": {"iban": ["bic"]}}),
            json!({"type": "object", "dependencies": {"iban": ["bic", "account_holder"]}}),
            &["#/dependentRequired/iban: DEPENDENCY_ADDED"],
            NOTHING,
        ),
        (
            "one of two dependentSchemas dropped",
            json!({"dependentSchemas": {"coupon": {"required": ["campaign"]}, "gift_wrap": {"required": ["message"]}}}),
            json!({"dependentSchemas": {"coupon": {"required": ["campaign"]}}}),
            NOTHING,
            &["#/dependentSchemas/gift_wrap: DEPENDENCY_ADDED"],
        ),
        (
            "dependentSchemas emptied",
            json!({"dependentSchemas": {"coupon": {"required": ["campaign"]}}}),
            json!({"dependentSchemas": {}}),
            NOTHING,
            &["#/dependentSchemas/coupon: DEPENDENCY_ADDED"],
        ),
        (
            "a dependentSchemas entry changed",
            json!({"dependentSchemas": {"coupon": campaign("string")}}),
            json!({"dependentSchemas": {"coupon": campaign("integer")}}),
            &["#/dependentSchemas/coupon/properties/campaign/type: TYPE_NARROWED"],
            &["#/dependentSchemas/coupon/properties/campaign/type: TYPE_NARROWED"],
        ),
        (
            "a dependentSchemas entry moved to another property",
            json!({"dependentSchemas": {"coupon": campaign("string")}}),
            json!({"dependentSchemas": {"gift_wrap": campaign("string")}}),
            &["#/dependentSchemas/gift_wrap: DEPENDENCY_ADDED"],
            &["#/dependentSchemas/coupon: DEPENDENCY_ADDED"],
        ),
        (
            "a draft-07 schema dependency narrowed",
            json!({"dependencies": {"coupon": campaign("string")}}),
            json!({"dependencies": {"coupon": {"properties": {"campaign": {"type": "string", "maxLength": 12}}}}}),
            &["#/dependentSchemas/coupon/properties/campaign/maxLength: RANGE_NARROWED"],
            NOTHING,
        ),
    ]);
}

/// A GPS fix as an array: latitude and longitude first, then a `third` position if any, and
/// `items` for the rest.
fn fix(third: Option<Value>, items: Value) -> Value {
    let mut positions = vec![json!({"type": "number"}), json!({"type": "number"})];
    positions.extend(third);
    json!({"type": "array", "prefixItems": positions, "items": items})
}

#[test]
fn arrays_items_and_positions() {
    let number = json!({"type": "number"});
    let optional_number = json!({"type": ["number", "null"]});
    let label = json!({"type": "string"});
    check_all(vec![
        (
            "items given a schema",
            json!({"type": "array"}),
            json!({"type": "array", "items": {"type": "integer"}}),
            &["#/items/type: TYPE_NARROWED"],
            NOTHING,
        ),
        (
            "an items schema dropped",
            json!({"type": "array", "items": {"type": "integer"}}),
            json!({"type": "array"}),
            NOTHING,
            &["#/items/type: TYPE_NARROWED"],
        ),
        (
            "an items schema changed",
            json!({"type": "array", "items": {"type": "integer"}}),
            json!({"type": "array", "items": {"type": "boolean"}}),
            &["#/items/type: TYPE_NARROWED"],
            &["#/items/type: TYPE_NARROWED"],
        ),
        (
            "items closed",
            json!({"type": "array", "items": {"description": "any reading"}}),
            json!({"type": "array", "items": false}),
            &["#/items: CONTENT_MODEL_CLOSED"],
            NOTHING,
        ),
        (
            "the positions dropped",
            json!({"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]}),
            json!({"type": "array"}),
            NOTHING,
            &[
                "#/prefixItems/0: ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                "#/prefixItems/1: ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "an altitude position added, as items allowed",
            fix(None, number.clone()),
            fix(Some(number.clone()), number.clone()),
            NOTHING,
            NOTHING,
        ),
        (
            "a label position added, unlike items allowed",
            fix(None, number.clone()),
            fix(Some(label.clone()), number.clone()),
            &["#/prefixItems/2: ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
            &["#/prefixItems/2: ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
        ),
        (
            "an altitude position removed, items reads it",
            fix(Some(number.clone()), number.clone()),
            fix(None, number.clone()),
            NOTHING,
            NOTHING,
        ),
        (
            "an optional position removed, optional items read it",
            fix(Some(optional_number.clone()), optional_number.clone()),
            fix(None, optional_number.clone()),
            NOTHING,
            NOTHING,
        ),
        (
            "a label position removed, items does not read it",
            fix(Some(label.clone()), number.clone()),
            fix(None, number.clone()),
            &["#/prefixItems/2: ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
            &["#/prefixItems/2: ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
        ),
        (
            "a position's type changed",
            json!({"type": "array", "prefixItems": [{"type": "string"}]}),
            json!({"type": "array", "prefixItems": [{"type": "integer"}]}),
            &["#/prefixItems/0/type: TYPE_NARROWED"],
            &["#/prefixItems/0/type: TYPE_NARROWED"],
        ),
        (
            "maxItems lowered",
            json!({"type": "array", "maxItems": 50}),
            json!({"type": "array", "maxItems": 10}),
            &["#/maxItems: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "maxItems raised",
            json!({"type": "array", "maxItems": 10}),
            json!({"type": "array", "maxItems": 50}),
            NOTHING,
            &["#/maxItems: RANGE_NARROWED"],
        ),
        (
            "minItems dropped",
            json!({"type": "array", "minItems": 1}),
            json!({"type": "array"}),
            NOTHING,
            &["#/minItems: RANGE_NARROWED"],
        ),
        (
            "minItems raised",
            json!({"type": "array", "minItems": 1}),
            json!({"type": "array", "minItems": 4}),
            &["#/minItems: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "minItems lowered",
            json!({"type": "array", "minItems": 4}),
            json!({"type": "array", "minItems": 1}),
            NOTHING,
            &["#/minItems: RANGE_NARROWED"],
        ),
        (
            "uniqueItems dropped",
            json!({"type": "array", "uniqueItems": true}),
            json!({"type": "array", "uniqueItems": false}),
            NOTHING,
            &["#/uniqueItems: UNIQUE_ITEMS_ADDED"],
        ),
        (
            "a position that accepts anything added to an open array",
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": true}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, {}], "items": true}),
            NOTHING,
            NOTHING,
        ),
        (
            "a position that accepts anything removed from an open array",
            json!({"type": "array", "prefixItems": [{"type": "string"}, {}], "items": true}),
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": true}),
            NOTHING,
            NOTHING,
        ),
        (
            "a false position added to a closed array",
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": false}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, false], "items": false}),
            NOTHING,
            NOTHING,
        ),
        (
            "a false position removed from a closed array",
            json!({"type": "array", "prefixItems": [{"type": "string"}, false], "items": false}),
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": false}),
            NOTHING,
            NOTHING,
        ),
        (
            "a closed array opened with a position added",
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}),
            NOTHING,
            &[
                "#/items: CONTENT_MODEL_CLOSED",
                "#/prefixItems/2: ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "a closed array opened with a position removed",
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}], "items": false}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": true}),
            NOTHING,
            &[
                "#/items: CONTENT_MODEL_CLOSED",
                "#/prefixItems/2: ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            ],
        ),
        (
            "a position removed from an open array",
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}),
            json!({"type": "array", "prefixItems": [{"type": "string"}]}),
            NOTHING,
            &["#/prefixItems/1: ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
        ),
        (
            "a position added to a closed array",
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": false}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}),
            NOTHING,
            &["#/prefixItems/1: ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
        ),
        (
            "a closed array's last position becomes its items",
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}),
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}),
            NOTHING,
            &["#/items: CONTENT_MODEL_CLOSED"],
        ),
        (
            "an array's items become a position, the rest opened",
            json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": true}),
            NOTHING,
            &["#/items/type: TYPE_NARROWED"],
        ),
        (
            "contains where there was none",
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"type": "array", "items": {"type": "string"}, "contains": {"const": "primary"}}),
            &["#/contains: CONTAINS_NARROWED"],
            NOTHING,
        ),
        (
            "contains widened",
            json!({"type": "array", "contains": {"const": "primary"}}),
            json!({"type": "array", "contains": {"enum": ["primary", "backup"]}}),
            NOTHING,
            &["#/contains/enum: ENUM_ARRAY_NARROWED"],
        ),
        (
            "minContains raised, maxContains added",
            json!({"type": "array", "contains": {"const": "primary"}, "minContains": 1}),
            json!({"type": "array", "contains": {"const": "primary"}, "minContains": 2, "maxContains": 3}),
            &[
                "#/maxContains: RANGE_NARROWED",
                "#/minContains: RANGE_NARROWED",
            ],
            NOTHING,
        ),
        (
            "draft-07 positional items, additionalItems opened",
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": false}),
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": {"type": "string"}}),
            NOTHING,
            &["#/items: CONTENT_MODEL_CLOSED"],
        ),
        (
            "a draft-07 positional item narrowed",
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer", "minimum": 0}]}),
            &["#/prefixItems/1/minimum: RANGE_NARROWED"],
            NOTHING,
        ),
    ]);
}

#[test]
fn references_and_conditionals() {
    let sku_list = |ty: &str| json!({"type": "array", "items": {"$ref": "#/definitions/sku"}, "definitions": {"sku": {"type": ty}}});
    let code = |max: u32| json!({"$defs": {"code": {"type": "string"}}, "$ref": "#/$defs/code", "maxLength": max});
    let chain = |label: Value| json!({"type": "object", "properties": {"label": label, "next": {"$ref": "#"}}});
    let priced = |ty: &str| json!({"$defs": {"unit price": {"type": ty}}, "type": "object", "properties": {"price": {"$ref": "#/$defs/unit%20price"}}});
    let invoice = |ty: &str| json!({"$defs": {"money": {"type": ty}}, "type": "object", "properties": {"net": {"$ref": "#/$defs/money"}, "gross": {"$ref": "#/$defs/money"}}});
    let postal = |otherwise: &str| json!({"type": "object", "if": {"properties": {"country": {"const": "US"}}}, "then": {"required": ["zip"]}, "else": {"required": [otherwise]}});
    check_all(vec![
        (
            "a referenced definition changed",
            sku_list("string"),
            sku_list("integer"),
            &["#/items/type: TYPE_NARROWED"],
            &["#/items/type: TYPE_NARROWED"],
        ),
        (
            "a schema moved into a definition",
            json!({"type": "string", "maxLength": 12}),
            json!({"$ref": "#/$defs/sku", "$defs": {"sku": {"type": "string", "maxLength": 12}}}),
            NOTHING,
            NOTHING,
        ),
        (
            "a schema moved out of a definition",
            json!({"$ref": "#/$defs/sku", "$defs": {"sku": {"type": "string", "maxLength": 12}}}),
            json!({"type": "string", "maxLength": 12}),
            NOTHING,
            NOTHING,
        ),
        (
            "a limit beside a $ref lowered",
            code(8),
            code(6),
            &["#/allOf/1/maxLength: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "a list referring to its root narrowed at every level",
            chain(json!({"type": "string"})),
            chain(json!({"type": "string", "maxLength": 40})),
            &[
                "#/properties/label/maxLength: RANGE_NARROWED",
                "#/properties/next/properties/label/maxLength: RANGE_NARROWED",
            ],
            NOTHING,
        ),
        (
            "a percent-encoded reference's target widened",
            priced("integer"),
            priced("number"),
            NOTHING,
            &["#/properties/price/type: TYPE_NARROWED"],
        ),
        (
            "one definition referred to twice changed",
            invoice("integer"),
            invoice("string"),
            &[
                "#/properties/gross/type: TYPE_NARROWED",
                "#/properties/net/type: TYPE_NARROWED",
            ],
            &[
                "#/properties/gross/type: TYPE_NARROWED",
                "#/properties/net/type: TYPE_NARROWED",
            ],
        ),
        (
            "an else branch changed",
            postal("postcode"),
            postal("postal_code"),
            &["#/else: CONDITIONAL_CHANGED"],
            &["#/else: CONDITIONAL_CHANGED"],
        ),
        (
            "a conditional where there was none",
            json!({"type": "object"}),
            postal("postcode"),
            &[
                "#/else: CONDITIONAL_CHANGED",
                "#/if: CONDITIONAL_CHANGED",
                "#/then: CONDITIONAL_CHANGED",
            ],
            NOTHING,
        ),
        (
            "a conditional dropped",
            postal("postcode"),
            json!({"type": "object"}),
            NOTHING,
            &[
                "#/else: CONDITIONAL_CHANGED",
                "#/if: CONDITIONAL_CHANGED",
                "#/then: CONDITIONAL_CHANGED",
            ],
        ),
    ]);
}

/// An event contract as teams write them: a closed object with required fields.
fn order(properties: Value, required: &[&str]) -> Value {
    json!({
        "$schema": s(),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

#[test]
fn everyday_event_contract_evolutions() {
    let v1 = order(
        json!({"order_id": {"type": "string"}, "total": {"type": "integer"}}),
        &["order_id", "total"],
    );
    let with_total = |total: Value| {
        order(
            json!({"order_id": {"type": "string"}, "total": total}),
            &["order_id", "total"],
        )
    };
    let with_note = |required: &[&str]| {
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": "integer"}, "note": {"type": "string"}}),
            required,
        )
    };
    let money = |ty: &str| json!({"$defs": {"money": {"type": ty, "minimum": 0}}, "type": "object", "properties": {"total": {"$ref": "#/$defs/money"}}, "additionalProperties": false});
    let tree = |leaf: &str| json!({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"name": {"type": leaf}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}});
    let address = |zip: Value| {
        order(
            json!({"address": {"type": "object", "properties": {"zip": zip}}}),
            &[],
        )
    };
    let lines = |qty: &str| json!({"type": "array", "items": order(json!({"qty": {"type": qty}}), &["qty"])});
    const REMOVED: &str =
        "#/properties/note: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL";
    check_all(vec![
        (
            "an optional field added to a closed contract",
            v1.clone(),
            with_note(&["order_id", "total"]),
            NOTHING,
            &[REMOVED],
        ),
        (
            "a required field added to a closed contract",
            v1.clone(),
            with_note(&["order_id", "total", "note"]),
            &["#/required: REQUIRED_PROPERTY_ADDED"],
            &[REMOVED],
        ),
        (
            "a required field made optional, declared still",
            v1.clone(),
            order(
                json!({"order_id": {"type": "string"}, "total": {"type": "integer"}}),
                &["order_id"],
            ),
            NOTHING,
            &["#/required: REQUIRED_PROPERTY_ADDED"],
        ),
        (
            "a required field removed from a closed contract",
            v1.clone(),
            order(json!({"order_id": {"type": "string"}}), &["order_id"]),
            &["#/properties/total: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"],
            &["#/required: REQUIRED_PROPERTY_ADDED"],
        ),
        (
            "a field widened from integer to number",
            v1.clone(),
            with_total(json!({"type": "number"})),
            NOTHING,
            &["#/properties/total/type: TYPE_NARROWED"],
        ),
        (
            "a field changed from integer to string",
            v1.clone(),
            with_total(json!({"type": "string"})),
            &["#/properties/total/type: TYPE_NARROWED"],
            &["#/properties/total/type: TYPE_NARROWED"],
        ),
        (
            "a field made nullable",
            v1.clone(),
            with_total(json!({"type": ["integer", "null"]})),
            NOTHING,
            &["#/properties/total/type: TYPE_NARROWED"],
        ),
        (
            "a status enum widened",
            json!({"type": "string", "enum": ["placed", "paid"]}),
            json!({"type": "string", "enum": ["placed", "paid", "shipped"]}),
            NOTHING,
            &["#/enum: ENUM_ARRAY_NARROWED"],
        ),
        (
            "a $defs target widened",
            money("integer"),
            money("number"),
            NOTHING,
            &["#/properties/total/type: TYPE_NARROWED"],
        ),
        (
            "a $defs target changed",
            money("integer"),
            money("string"),
            &["#/properties/total/type: TYPE_NARROWED"],
            &["#/properties/total/type: TYPE_NARROWED"],
        ),
        (
            "a recursive $ref unchanged",
            tree("string"),
            tree("string"),
            NOTHING,
            NOTHING,
        ),
        (
            "a recursive $ref changed deep inside",
            tree("string"),
            tree("number"),
            &[
                "#/properties/children/items/properties/name/type: TYPE_NARROWED",
                "#/properties/name/type: TYPE_NARROWED",
            ],
            &[
                "#/properties/children/items/properties/name/type: TYPE_NARROWED",
                "#/properties/name/type: TYPE_NARROWED",
            ],
        ),
        (
            "a nested object's field narrowed",
            address(json!({"type": "string"})),
            address(json!({"type": "string", "maxLength": 5})),
            &["#/properties/address/properties/zip/maxLength: RANGE_NARROWED"],
            NOTHING,
        ),
        (
            "an array item's field widened",
            lines("integer"),
            lines("number"),
            NOTHING,
            &["#/items/properties/qty/type: TYPE_NARROWED"],
        ),
        (
            "a then branch changed",
            json!({"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}}),
            json!({"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["c"]}}),
            &["#/then: CONDITIONAL_CHANGED"],
            &["#/then: CONDITIONAL_CHANGED"],
        ),
        (
            "an array required to hold unique items",
            json!({"type": "array"}),
            json!({"type": "array", "uniqueItems": true}),
            &["#/uniqueItems: UNIQUE_ITEMS_ADDED"],
            NOTHING,
        ),
        (
            "allOf parts that together cover the reader",
            json!({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"required": ["a"]}]}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
            NOTHING,
            NOTHING,
        ),
        ("identical contracts", v1.clone(), v1, NOTHING, NOTHING),
    ]);
}

#[test]
fn transitive_levels_compare_with_every_earlier_version() {
    let v1 = json!({"type": "number"});
    let v2 = json!({"type": "integer"});
    let v3 = json!({"type": "integer"});
    let earlier = [(1, &v1), (2, &v2)];
    assert!(
        check_compatibility(CompatibilityLevel::Backward, &v3, &earlier)
            .unwrap()
            .is_empty()
    );
    let found = check_compatibility(CompatibilityLevel::BackwardTransitive, &v3, &earlier).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].version, 1);
    assert_eq!(found[0].direction, Direction::Backward);
    assert_eq!(
        found[0].to_string(),
        "the new schema cannot read data of version 1: #/type: TYPE_NARROWED: the writer allows 'number', the reader accepts only 'integer'"
    );
    // Forward: the earlier readers read the new data; only the integer reader of v2 cannot.
    let forward_earlier = [(1, &v2), (2, &v1)];
    assert!(
        check_compatibility(CompatibilityLevel::Forward, &v1, &forward_earlier)
            .unwrap()
            .is_empty()
    );
    let found =
        check_compatibility(CompatibilityLevel::ForwardTransitive, &v1, &forward_earlier).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].version, found[0].direction),
        (1, Direction::Forward)
    );
    let found = check_compatibility(CompatibilityLevel::FullTransitive, &v3, &earlier).unwrap();
    assert_eq!(found.len(), 1, "only v1 → v3 backward fails: {found:?}");
}

#[test]
fn differences_name_the_path_and_the_change() {
    let old = order(
        json!({"order_id": {"type": "string"}, "total": {"type": "number"}}),
        &["order_id"],
    );
    let new = order(
        json!({"order_id": {"type": "string"}, "total": {"type": "integer"}, "coupon": {"type": "string"}}),
        &["order_id", "coupon"],
    );
    let found = diff(&old, &new).unwrap();
    let backward: Vec<String> = found.backward.iter().map(ToString::to_string).collect();
    assert_eq!(
        backward,
        [
            "#/properties/total/type: TYPE_NARROWED: the writer allows 'number', the reader accepts only 'integer'",
            "#/required: REQUIRED_PROPERTY_ADDED: property 'coupon' is now required; the writer may omit it",
        ]
    );
    let forward: Vec<String> = found.forward.iter().map(ToString::to_string).collect();
    assert_eq!(forward.len(), 1, "{forward:?}");
    assert!(
        forward[0].starts_with("#/properties/coupon: PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL: property 'coupon' removed"),
        "{forward:?}"
    );
}

/// An `anyOf` of two `$ref`s to the next level, `levels` deep, ending in `leaf`: a few
/// kilobytes that an unmemoised walk unfolds into 2^levels pairs.
fn bomb(levels: usize, leaf: &str) -> Value {
    let mut defs = serde_json::Map::new();
    for level in 0..levels {
        let next = json!({"$ref": format!("#/$defs/l{}", level + 1)});
        defs.insert(format!("l{level}"), json!({"anyOf": [next.clone(), next]}));
    }
    defs.insert(format!("l{levels}"), json!({"type": leaf}));
    json!({"$defs": defs, "$ref": "#/$defs/l0"})
}

#[test]
fn a_reference_bomb_gets_its_verdict_from_the_memoised_walk() {
    let started = std::time::Instant::now();
    let found = check_compatibility(
        CompatibilityLevel::Full,
        &bomb(40, "integer"),
        &[(1, &bomb(40, "number"))],
    )
    .expect("memoised: well within the budget");
    // Integer readers cannot read numbers (backward); number readers read integers.
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|i| i.direction == Direction::Backward),
        "{found:?}"
    );
    let same = check_compatibility(
        CompatibilityLevel::Full,
        &bomb(40, "string"),
        &[(1, &bomb(40, "string"))],
    )
    .unwrap();
    assert!(same.is_empty(), "{same:?}");
    // Not a timing claim: 2^40 pairs would take hours, the memoised walk visits ~100.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_check_beyond_its_budget_is_an_error_not_a_verdict() {
    use keel_schema::{Budget, ComparisonError};
    // A reference chain deeper than the comparison may nest.
    let deep = |leaf: &str| {
        let mut defs = serde_json::Map::new();
        for level in 0..200 {
            defs.insert(format!("l{level}"), json!({"type": "object", "properties": {"x": {"$ref": format!("#/$defs/l{}", level + 1)}}}));
        }
        defs.insert("l200".into(), json!({"type": leaf}));
        json!({"$defs": defs, "$ref": "#/$defs/l0"})
    };
    let error = check_compatibility(
        CompatibilityLevel::Backward,
        &deep("integer"),
        &[(1, &deep("number"))],
    )
    .unwrap_err();
    assert!(matches!(error, ComparisonError::TooDeep(_)), "{error}");
    // A step budget smaller than the walk.
    let mut budget = Budget::new(10, std::time::Duration::from_secs(60));
    let error = keel_schema::reader_differences_within(
        &bomb(8, "number"),
        &bomb(8, "integer"),
        &mut budget,
    )
    .unwrap_err();
    assert_eq!(error, ComparisonError::TooManySteps(10));
    assert!(
        error.to_string().contains("more than 10 schema pairs"),
        "{error}"
    );
}

#[test]
fn a_report_keeps_the_first_differences_of_a_pair_up_to_its_limit() {
    use keel_schema::limits::DIFFERENCES_PER_PAIR_MAX;
    // A sensor record of 40 readings, each retyped from number to string: 40 differences
    // found at one pair of schemas, of which the report keeps the first.
    let readings = |ty: &str| {
        let properties: serde_json::Map<String, Value> = (0..40)
            .map(|index| (format!("r{index:02}"), json!({"type": ty})))
            .collect();
        json!({"type": "object", "properties": properties})
    };
    let found = diff(&readings("number"), &readings("string")).unwrap();
    assert_eq!(found.backward.len(), DIFFERENCES_PER_PAIR_MAX);
    assert_eq!(found.forward.len(), DIFFERENCES_PER_PAIR_MAX);
    assert_eq!(found.backward[0].path, "#/properties/r00/type");
    assert_eq!(
        found.backward[DIFFERENCES_PER_PAIR_MAX - 1].path,
        format!("#/properties/r{:02}/type", DIFFERENCES_PER_PAIR_MAX - 1)
    );
}
