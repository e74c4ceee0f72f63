//! The compatibility engine, driven by a table of schema pairs with the verdict expected under
//! each level, all through one `check` helper.
//!
//! Rows marked `cf NNN` are the 101 JSON Schema draft 2020-12 pairs of Confluent Schema
//! Registry's own test data (its `diff-schema-examples` cases, registered old → new under
//! `BACKWARD`): the `BACKWARD` column is Confluent's documented verdict. The `FORWARD` column
//! is the same pair read the other way; where Confluent lists the reversed pair too (006/007,
//! 008/009, 014/015, 017/018, 022/023, 024/025, 056/057, 059/060, 061/062, 072/073, ...) the
//! two agree. Rows marked `keel` are the everyday evolutions of event contracts.

use keel_schema::{CompatibilityLevel, Direction, check_compatibility, diff};
use serde_json::{Value, json};

/// Compatible.
const C: bool = true;
/// Incompatible.
const I: bool = false;

/// Registers `old`, then asks whether `new` may follow it under every level, and compares
/// the verdicts with `backward` and `forward` (FULL = both; NONE always compatible; the
/// transitive levels agree with their plain forms when there is one earlier version).
/// Every reported incompatibility must name a JSON path and say something in words.
fn check(name: &str, old: Value, new: Value, backward: bool, forward: bool) {
    let expected = |level: CompatibilityLevel| match level {
        CompatibilityLevel::None => true,
        CompatibilityLevel::Backward | CompatibilityLevel::BackwardTransitive => backward,
        CompatibilityLevel::Forward | CompatibilityLevel::ForwardTransitive => forward,
        CompatibilityLevel::Full | CompatibilityLevel::FullTransitive => backward && forward,
    };
    for level in CompatibilityLevel::ALL {
        let found = check_compatibility(level, &new, &[(1, &old)]).expect("within budget");
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            found.is_empty(),
            expected(level),
            "{name}: {level} expected {}, found {lines:#?}",
            if expected(level) {
                "compatible"
            } else {
                "incompatible"
            },
        );
        for incompatibility in &found {
            let difference = &incompatibility.difference;
            assert!(
                difference.path.starts_with('#'),
                "{name}: path {difference}"
            );
            assert!(difference.detail.len() > 10, "{name}: detail {difference}");
        }
    }
}

fn s() -> Value {
    json!("https://json-schema.org/draft/2020-12/schema")
}

#[test]
fn confluent_draft_2020_12_pairs_scalars_and_combiners() {
    check(
        "cf 001 anything to empty",
        json!({"$schema": s(), "properties": {}}),
        json!({"$schema": s()}),
        C,
        C,
    );
    check(
        "cf 002 $id changed",
        json!({"$id": "something"}),
        json!({"$id": "something_else"}),
        C,
        C,
    );
    check(
        "cf 003 title changed",
        json!({"title": "something"}),
        json!({"title": "something_else"}),
        C,
        C,
    );
    check(
        "cf 004 description changed",
        json!({"description": "a"}),
        json!({"description": "b"}),
        C,
        C,
    );
    check(
        "cf 005 object to array",
        json!({"type": "object"}),
        json!({"type": "array"}),
        I,
        I,
    );
    check(
        "cf 006 minLength raised",
        json!({"type": "string", "minLength": 10}),
        json!({"type": "string", "minLength": 11}),
        I,
        C,
    );
    check(
        "cf 007 minLength lowered",
        json!({"type": "string", "minLength": 11}),
        json!({"type": "string", "minLength": 10}),
        C,
        I,
    );
    check(
        "cf 008 maxLength raised",
        json!({"type": "string", "maxLength": 10}),
        json!({"type": "string", "maxLength": 12}),
        C,
        I,
    );
    check(
        "cf 009 maxLength lowered",
        json!({"type": "string", "maxLength": 12}),
        json!({"type": "string", "maxLength": 10}),
        I,
        C,
    );
    check(
        "cf 010 pattern removed",
        json!({"type": "string", "pattern": "uuid"}),
        json!({"type": "string"}),
        C,
        I,
    );
    check(
        "cf 011 pattern changed",
        json!({"type": "string", "pattern": "date-time"}),
        json!({"type": "string", "pattern": "uuid"}),
        I,
        I,
    );
    check(
        "cf 012 pattern same",
        json!({"type": "string", "pattern": "date-time"}),
        json!({"type": "string", "pattern": "date-time"}),
        C,
        C,
    );
    check(
        "cf 013 maximum removed",
        json!({"type": "number", "maximum": 10}),
        json!({"type": "number"}),
        C,
        I,
    );
    check(
        "cf 014 maximum raised",
        json!({"type": "number", "maximum": 10}),
        json!({"type": "number", "maximum": 11}),
        C,
        I,
    );
    check(
        "cf 015 maximum lowered",
        json!({"type": "number", "maximum": 11}),
        json!({"type": "number", "maximum": 10}),
        I,
        C,
    );
    check(
        "cf 016 minimum removed",
        json!({"type": "number", "minimum": 10}),
        json!({"type": "number"}),
        C,
        I,
    );
    check(
        "cf 017 minimum raised",
        json!({"type": "number", "minimum": 10}),
        json!({"type": "number", "minimum": 11}),
        I,
        C,
    );
    check(
        "cf 018 minimum lowered",
        json!({"type": "number", "minimum": 11}),
        json!({"type": "number", "minimum": 10}),
        C,
        I,
    );
    check(
        "cf 019 multipleOf removed",
        json!({"type": "number", "multipleOf": 10}),
        json!({"type": "number"}),
        C,
        I,
    );
    check(
        "cf 020 multipleOf reduced to a divisor",
        json!({"type": "number", "multipleOf": 10}),
        json!({"type": "number", "multipleOf": 2}),
        C,
        I,
    );
    check(
        "cf 021 multipleOf changed",
        json!({"type": "number", "multipleOf": 10}),
        json!({"type": "number", "multipleOf": 11}),
        I,
        I,
    );
    check(
        "cf 022 number narrowed to integer",
        json!({"type": "number"}),
        json!({"type": "integer"}),
        I,
        C,
    );
    check(
        "cf 023 integer widened to number",
        json!({"type": "integer"}),
        json!({"type": "number"}),
        C,
        I,
    );
    check(
        "cf 024 not widened",
        json!({"not": {"type": "number"}}),
        json!({"not": {"type": "integer"}}),
        C,
        I,
    );
    check(
        "cf 025 not narrowed",
        json!({"not": {"type": "integer"}}),
        json!({"not": {"type": "number"}}),
        I,
        C,
    );
    check(
        "cf 026 enum in allOf changed",
        json!({"allOf": [{"type": "string"}, {"enum": ["red"]}]}),
        json!({"allOf": [{"type": "string"}, {"enum": ["blue"]}]}),
        I,
        I,
    );
    check(
        "cf 027 enum in allOf widened, parts reordered",
        json!({"allOf": [{"type": "string"}, {"enum": ["red"]}]}),
        json!({"allOf": [{"enum": ["red", "blue"]}, {"type": "string"}]}),
        C,
        I,
    );
    check(
        "cf 028 type array widened",
        json!({"type": ["object"]}),
        json!({"type": ["object", "array"]}),
        C,
        I,
    );
    check(
        "cf 029 oneOf alternative changed",
        json!({"oneOf": [{"type": "string"}]}),
        json!({"oneOf": [{"type": "number"}]}),
        I,
        I,
    );
    check(
        "cf 030 oneOf alternative added",
        json!({"oneOf": [{"type": "string"}]}),
        json!({"oneOf": [{"type": "number"}, {"type": "string"}]}),
        C,
        I,
    );
    check(
        "cf 031 property renamed in open model",
        json!({"properties": {"foo": {"type": "string"}}}),
        json!({"properties": {"bar": {"type": "string"}}}),
        I,
        I,
    );
    check(
        "cf 032 property type changed",
        json!({"properties": {"foo": {"type": "string"}}}),
        json!({"properties": {"foo": {"type": "number"}}}),
        I,
        I,
    );
    check(
        "cf 033 optional property added to closed model",
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": false}),
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}}, "additionalProperties": false}),
        C,
        I,
    );
    check(
        "cf 034 property added, covered by patternProperties",
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": false, "patternProperties": {"^S_": {"type": "string"}, "^I_": {"type": "integer"}}}),
        json!({"properties": {"foo": {"type": "string"}, "I_123": {"type": "number"}}, "additionalProperties": false, "patternProperties": {"^S_": {"type": "string"}, "^I_": {"type": "integer"}}}),
        C,
        I,
    );
    check(
        "cf 035 property added, covered by additionalProperties",
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        C,
        C,
    );
    check(
        "cf 036 property added, not covered by additionalProperties",
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}}, "additionalProperties": {"type": "string"}}),
        I,
        I,
    );
    check(
        "cf 037 required property added to partially open model",
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}}, "required": ["bar"], "additionalProperties": {"type": "string"}}),
        I,
        C,
    );
    check(
        "cf 038 property removed, covered by patternProperties",
        json!({"properties": {"foo": {"type": "string"}, "I_123": {"type": "integer"}}, "additionalProperties": false}),
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": false, "patternProperties": {"^S_": {"type": "string"}, "^I_": {"type": "number"}}}),
        C,
        I,
    );
    check(
        "cf 039 property removed, covered by additionalProperties",
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}}, "additionalProperties": false}),
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        C,
        I,
    );
    check(
        "cf 040 property removed, not covered",
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}}, "additionalProperties": false}),
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        I,
        I,
    );
    check(
        "cf 041 nullable property removed, covered",
        json!({"properties": {"foo": {"type": "string"}, "bar": {"oneOf": [{"type": "null"}, {"type": "string"}]}}, "additionalProperties": false}),
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"oneOf": [{"type": "null"}, {"type": "string"}]}}),
        C,
        I,
    );
    check(
        "cf 042 property removed, covered by a wider oneOf",
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}}, "additionalProperties": false}),
        json!({"properties": {"foo": {"type": "string"}}, "additionalProperties": {"oneOf": [{"type": "null"}, {"type": "string"}]}}),
        C,
        I,
    );
    check(
        "cf 043 property added to open model",
        json!({"properties": {"foo": {"type": "string"}}}),
        json!({"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}}}),
        I,
        C,
    );
    check(
        "cf 044 change inside a oneOf alternative",
        json!({"oneOf": [{"properties": {"foo": {"type": "string"}}}]}),
        json!({"oneOf": [{"properties": {"foo": {"type": "number"}}}]}),
        I,
        I,
    );
    check(
        "cf 045 singleton oneOf to allOf",
        json!({"oneOf": [{"type": "string"}]}),
        json!({"allOf": [{"type": "string"}]}),
        C,
        C,
    );
    check(
        "cf 046 oneOf to narrower allOf",
        json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"allOf": [{"type": "string"}]}),
        I,
        C,
    );
}

#[test]
fn confluent_draft_2020_12_pairs_objects_and_arrays() {
    let foo_bar = json!({"foo": {"type": "number"}, "bar": {"type": "string"}});
    check(
        "cf 047 dependentRequired changed",
        json!({"properties": foo_bar, "dependentRequired": {"foo": ["bar"]}}),
        json!({"properties": foo_bar, "dependentRequired": {"bar": ["foo"]}}),
        I,
        I,
    );
    check(
        "cf 048 dependentSchemas entry removed",
        json!({"dependentSchemas": {"foo": {"type": "string"}, "bar": {"type": "string"}}}),
        json!({"dependentSchemas": {"foo": {"type": "string"}}}),
        C,
        I,
    );
    check(
        "cf 049 dependentSchemas emptied",
        json!({"dependentSchemas": {"foo": {"type": "string"}}}),
        json!({"dependentSchemas": {}}),
        C,
        I,
    );
    check(
        "cf 050 dependentSchemas entry changed",
        json!({"dependentSchemas": {"foo": {"type": "string"}}}),
        json!({"dependentSchemas": {"foo": {"type": "number"}}}),
        I,
        I,
    );
    check(
        "cf 051 dependentSchemas entry replaced",
        json!({"dependentSchemas": {"foo": {"type": "string"}}}),
        json!({"dependentSchemas": {"bar": {"type": "string"}}}),
        I,
        I,
    );
    check(
        "cf 052 required removed",
        json!({"properties": {"foo": {"type": "string"}}, "required": ["foo"]}),
        json!({"properties": {"foo": {"type": "string"}}}),
        C,
        I,
    );
    check(
        "cf 053 required added",
        json!({"properties": {"foo": {"type": "string"}}}),
        json!({"properties": {"foo": {"type": "string"}}, "required": ["foo"]}),
        I,
        C,
    );
    check(
        "cf 054 required moved to an undeclared name",
        json!({"properties": {"foo": {"type": "string"}}, "required": ["foo"]}),
        json!({"properties": {"foo": {"type": "string"}}, "required": ["bar"]}),
        C,
        I,
    );
    check(
        "cf 055 maxProperties removed",
        json!({"properties": {}, "maxProperties": 1}),
        json!({"properties": {}}),
        C,
        I,
    );
    check(
        "cf 056 maxProperties raised",
        json!({"maxProperties": 1}),
        json!({"maxProperties": 2}),
        C,
        I,
    );
    check(
        "cf 057 maxProperties lowered",
        json!({"maxProperties": 2}),
        json!({"maxProperties": 1}),
        I,
        C,
    );
    check(
        "cf 058 minProperties removed",
        json!({"properties": {}, "minProperties": 2}),
        json!({"properties": {}}),
        C,
        I,
    );
    check(
        "cf 059 minProperties raised",
        json!({"minProperties": 1}),
        json!({"minProperties": 2}),
        I,
        C,
    );
    check(
        "cf 060 minProperties lowered",
        json!({"minProperties": 2}),
        json!({"minProperties": 1}),
        C,
        I,
    );
    check(
        "cf 061 items schema added",
        json!({"type": "array"}),
        json!({"type": "array", "items": {"type": "string"}}),
        I,
        C,
    );
    check(
        "cf 062 items schema removed",
        json!({"type": "array", "items": {"type": "string"}}),
        json!({"type": "array"}),
        C,
        I,
    );
    check(
        "cf 063 prefixItems removed",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]}),
        json!({"type": "array"}),
        C,
        I,
    );
    check(
        "cf 064 position added, covered by items",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": {"type": "string"}}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "string"}], "items": {"type": "string"}}),
        C,
        C,
    );
    check(
        "cf 065 position added, not covered",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": {"type": "string"}}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "number"}], "items": {"type": "string"}}),
        I,
        I,
    );
    check(
        "cf 066 position removed, covered by items",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "string"}], "items": {"type": "string"}}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": {"type": "string"}}),
        C,
        C,
    );
    let nullable = json!({"oneOf": [{"type": "null"}, {"type": "string"}]});
    check(
        "cf 067 nullable position removed, covered",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, nullable], "items": nullable}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": nullable}),
        C,
        C,
    );
    check(
        "cf 068 position removed, not covered",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "number"}], "items": {"type": "string"}}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": {"type": "string"}}),
        I,
        I,
    );
    check(
        "cf 069 position type changed",
        json!({"type": "array", "prefixItems": [{"type": "string"}]}),
        json!({"type": "array", "prefixItems": [{"type": "number"}]}),
        I,
        I,
    );
    check(
        "cf 070 maxItems lowered",
        json!({"type": "array", "maxItems": 2}),
        json!({"type": "array", "maxItems": 1}),
        I,
        C,
    );
    check(
        "cf 071 minItems removed",
        json!({"type": "array", "minItems": 1}),
        json!({"type": "array"}),
        C,
        I,
    );
    check(
        "cf 072 minItems raised",
        json!({"type": "array", "minItems": 1}),
        json!({"type": "array", "minItems": 2}),
        I,
        C,
    );
    check(
        "cf 073 minItems lowered",
        json!({"type": "array", "minItems": 2}),
        json!({"type": "array", "minItems": 1}),
        C,
        I,
    );
    check(
        "cf 074 uniqueItems removed",
        json!({"type": "array", "uniqueItems": true}),
        json!({"type": "array"}),
        C,
        I,
    );
    check(
        "cf 075 referenced definition changed",
        json!({"type": "array", "items": {"$ref": "#/definitions/someRef"}, "definitions": {"someRef": {"type": "string"}}}),
        json!({"type": "array", "items": {"$ref": "#/definitions/someRef"}, "definitions": {"someRef": {"type": "number"}}}),
        I,
        I,
    );
    check(
        "cf 076 moved into a reference",
        json!({"type": "string"}),
        json!({"$ref": "#/definitions/someRef", "definitions": {"someRef": {"type": "string"}}}),
        C,
        C,
    );
    check(
        "cf 077 moved out of a reference",
        json!({"$ref": "#/definitions/someRef", "definitions": {"someRef": {"type": "string"}}}),
        json!({"type": "string"}),
        C,
        C,
    );
    check(
        "cf 078 closed model opened",
        json!({"properties": {}, "additionalProperties": false}),
        json!({"properties": {}}),
        C,
        I,
    );
    check(
        "cf 079 open model closed",
        json!({"additionalProperties": true}),
        json!({"additionalProperties": false}),
        I,
        C,
    );
    check(
        "cf 080 additionalProperties narrowed",
        json!({"additionalProperties": true}),
        json!({"additionalProperties": {"type": "number"}}),
        I,
        C,
    );
    check(
        "cf 081 empty schema added to open model",
        json!({"additionalProperties": true}),
        json!({"additionalProperties": true, "properties": {"foo": true}}),
        C,
        C,
    );
    check(
        "cf 082 empty schema removed from open model",
        json!({"additionalProperties": true, "properties": {"foo": true}}),
        json!({"additionalProperties": true}),
        C,
        C,
    );
    check(
        "cf 083 false added to closed model",
        json!({"additionalProperties": false}),
        json!({"additionalProperties": false, "properties": {"foo": false}}),
        C,
        C,
    );
    check(
        "cf 084 false removed from closed model",
        json!({"additionalProperties": false, "properties": {"foo": false}}),
        json!({"additionalProperties": false}),
        C,
        C,
    );
    check(
        "cf 085 additionalProperties changed",
        json!({"additionalProperties": {"type": "string"}}),
        json!({"additionalProperties": {"type": "number"}}),
        I,
        I,
    );
    check(
        "cf 086 items closed",
        json!({"items": true}),
        json!({"items": false}),
        I,
        C,
    );
    check(
        "cf 087 items changed",
        json!({"items": {"type": "string"}}),
        json!({"items": {"type": "number"}}),
        I,
        I,
    );
    check(
        "cf 088 empty position added to open array",
        json!({"type": "array", "items": true, "prefixItems": [{"type": "number"}]}),
        json!({"type": "array", "items": true, "prefixItems": [{"type": "number"}, true]}),
        C,
        C,
    );
    check(
        "cf 089 empty position removed from open array",
        json!({"type": "array", "items": true, "prefixItems": [{"type": "number"}, true]}),
        json!({"type": "array", "items": true, "prefixItems": [{"type": "number"}]}),
        C,
        C,
    );
    check(
        "cf 090 false position added to closed array",
        json!({"type": "array", "items": false, "prefixItems": [{"type": "number"}]}),
        json!({"type": "array", "items": false, "prefixItems": [{"type": "number"}, false]}),
        C,
        C,
    );
    check(
        "cf 091 false position removed from closed array",
        json!({"type": "array", "items": false, "prefixItems": [{"type": "number"}, false]}),
        json!({"type": "array", "items": false, "prefixItems": [{"type": "number"}]}),
        C,
        C,
    );
    check(
        "cf 092 closed array opened with a position",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "items": true}),
        C,
        I,
    );
    check(
        "cf 093 closed array opened without a position",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "items": false}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": true}),
        C,
        I,
    );
    check(
        "cf 094 position removed from open array",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": true}),
        json!({"type": "array", "prefixItems": [{"type": "string"}], "items": true}),
        C,
        I,
    );
    check(
        "cf 095 position added to closed array",
        json!({"type": "array", "prefixItems": [{"type": "string"}], "items": false}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false}),
        C,
        I,
    );
    check(
        "cf 096 closed position becomes items",
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false}),
        json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}}),
        C,
        I,
    );
    check(
        "cf 097 items becomes a position, array opened",
        json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}}),
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": true}),
        C,
        I,
    );
    check(
        "cf 098 type to oneOf",
        json!({"type": "string"}),
        json!({"oneOf": [{"type": "number"}, {"type": "string"}]}),
        C,
        I,
    );
    check(
        "cf 099 null to optional oneOf",
        json!({"type": "null"}),
        json!({"oneOf": [{"type": "number"}, {"type": "null"}]}),
        C,
        I,
    );
    check(
        "cf 100 oneOf alternative added first",
        json!({"oneOf": [{"type": "number"}]}),
        json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
        C,
        I,
    );
    check(
        "cf 101 bounded string to oneOf",
        json!({"type": "string", "maxLength": 3}),
        json!({"oneOf": [{"type": "number"}, {"type": "string"}]}),
        C,
        I,
    );
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
    check(
        "keel optional field added to closed contract",
        v1.clone(),
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": "integer"}, "note": {"type": "string"}}),
            &["order_id", "total"],
        ),
        C,
        I,
    );
    check(
        "keel required field added to closed contract",
        v1.clone(),
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": "integer"}, "note": {"type": "string"}}),
            &["order_id", "total", "note"],
        ),
        I,
        I,
    );
    check(
        "keel required field removed, declared still",
        v1.clone(),
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": "integer"}}),
            &["order_id"],
        ),
        C,
        I,
    );
    check(
        "keel field removed from closed contract",
        v1.clone(),
        order(json!({"order_id": {"type": "string"}}), &["order_id"]),
        I,
        I,
    );
    check(
        "keel field type widened integer to number",
        v1.clone(),
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": "number"}}),
            &["order_id", "total"],
        ),
        C,
        I,
    );
    check(
        "keel field type changed integer to string",
        v1.clone(),
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": "string"}}),
            &["order_id", "total"],
        ),
        I,
        I,
    );
    check(
        "keel field made nullable",
        v1.clone(),
        order(
            json!({"order_id": {"type": "string"}, "total": {"type": ["integer", "null"]}}),
            &["order_id", "total"],
        ),
        C,
        I,
    );
    check(
        "keel optional field added to open contract",
        json!({"type": "object", "properties": {"id": {"type": "string"}}}),
        json!({"type": "object", "properties": {"id": {"type": "string"}, "note": {"type": "string"}}}),
        I,
        C,
    );
    check(
        "keel status enum widened",
        json!({"type": "string", "enum": ["placed", "paid"]}),
        json!({"type": "string", "enum": ["placed", "paid", "shipped"]}),
        C,
        I,
    );
    check(
        "keel status enum narrowed",
        json!({"type": "string", "enum": ["placed", "paid", "shipped"]}),
        json!({"type": "string", "enum": ["placed", "paid"]}),
        I,
        C,
    );
    check(
        "keel enum added where any string was allowed",
        json!({"type": "string"}),
        json!({"type": "string", "enum": ["a"]}),
        I,
        C,
    );
    check(
        "keel const widened to enum",
        json!({"const": "v1"}),
        json!({"enum": ["v1", "v2"]}),
        C,
        I,
    );
    let money = |ty: &str| json!({"$defs": {"money": {"type": ty, "minimum": 0}}, "type": "object", "properties": {"total": {"$ref": "#/$defs/money"}}, "additionalProperties": false});
    check(
        "keel $defs target widened",
        money("integer"),
        money("number"),
        C,
        I,
    );
    check(
        "keel $defs target changed",
        money("integer"),
        money("string"),
        I,
        I,
    );
    let tree = |leaf: &str| json!({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"name": {"type": leaf}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}});
    check(
        "keel recursive $ref unchanged",
        tree("string"),
        tree("string"),
        C,
        C,
    );
    check(
        "keel recursive $ref changed deep inside",
        tree("string"),
        tree("number"),
        I,
        I,
    );
    check(
        "keel nested object field narrowed",
        order(
            json!({"address": {"type": "object", "properties": {"zip": {"type": "string"}}}}),
            &[],
        ),
        order(
            json!({"address": {"type": "object", "properties": {"zip": {"type": "string", "maxLength": 5}}}}),
            &[],
        ),
        I,
        C,
    );
    check(
        "keel array item field widened",
        json!({"type": "array", "items": order(json!({"qty": {"type": "integer"}}), &["qty"])}),
        json!({"type": "array", "items": order(json!({"qty": {"type": "number"}}), &["qty"])}),
        C,
        I,
    );
    check(
        "keel anyOf alternative removed",
        json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"anyOf": [{"type": "string"}]}),
        I,
        C,
    );
    check(
        "keel conditional changed",
        json!({"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}}),
        json!({"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["c"]}}),
        I,
        I,
    );
    check(
        "keel exclusiveMinimum tightened",
        json!({"type": "number", "minimum": 0}),
        json!({"type": "number", "exclusiveMinimum": 0}),
        I,
        C,
    );
    check(
        "keel uniqueItems added",
        json!({"type": "array"}),
        json!({"type": "array", "uniqueItems": true}),
        I,
        C,
    );
    check(
        "keel allOf parts merged cover the reader",
        json!({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"required": ["a"]}]}),
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
        C,
        C,
    );
    check("keel identical schemas", v1.clone(), v1, C, C);
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
