//! The Avro compatibility rules, driven by tables of (reader, writer) pairs through one `check`
//! helper, each cross-checked against the suites Confluent Schema Registry relies on:
//!
//! - `avro ok` rows are Apache Avro Java's `TestSchemaCompatibility.COMPATIBLE_READER_WRITER_TEST_CASES`
//!   (lang/java/avro/src/test/java/org/apache/avro/TestSchemaCompatibility.java, schemas from
//!   `TestSchemas.java`; Confluent's `AvroSchema.isBackwardCompatible` calls that same
//!   `SchemaCompatibility.checkReaderWriterCompatibility`). Its empty-union cases are left out
//!   (apache-avro refuses a union with no branch) and one enum-default case is added (Avro 1.9+).
//! - `avro no` rows are its incompatible pairs, one test class per kind
//!   (`TestSchemaCompatibilityTypeMismatch`, `...MissingEnumSymbols`, `...NameMismatch`,
//!   `...FixedSizeMismatch`, `...ReaderFieldMissingDefaultValue`, `...MissingUnionBranch`), with
//!   the kind and location those classes assert.
//! - `cf` rows are Confluent's `AvroCompatibilityTest` (core/src/test/java/io/confluent/kafka/
//!   schemaregistry/avro/AvroCompatibilityTest.java) with its seven levels and its messages.
//!
//! A (reader, writer) verdict is checked twice: register the writer, then the reader under
//! `BACKWARD` (the new schema reads the old data); register the reader, then the writer under
//! `FORWARD` (the old schema reads the new data). `NONE` always passes.

use keel_schema::{CompatibilityLevel, DifferenceKind, Schema, SchemaType, check_compatibility};

/// Compatible.
const C: bool = true;
/// Incompatible.
const I: bool = false;

/// The schemas of Avro's `TestSchemas.java`, by its names.
fn named(name: &str) -> Schema {
    let text = match name {
        "A_DINT_B_DENUM_1_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"enum","name":"Enum1","symbols":["X","Y"]}}]}"#
        }
        "A_DINT_B_DENUM_2_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"enum","name":"Enum2","symbols":["X","Y"]}}]}"#
        }
        "A_DINT_B_DFIXED_4_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"fixed","name":"Fixed","size":4}}]}"#
        }
        "A_DINT_B_DFIXED_8_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"fixed","name":"Fixed","size":8}}]}"#
        }
        "A_DINT_B_DINT_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":"int","default":0}]}"#
        }
        "A_DINT_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0}]}"#
        }
        "A_INT_B_DINT_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}"#
        }
        "A_INT_B_INT_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#
        }
        "A_INT_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"}]}"#
        }
        "A_LONG_RECORD1" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"long"}]}"#
        }
        "BOOLEAN" => r#""boolean""#,
        "BYTES" => r#""bytes""#,
        "BYTES_UNION" => r#"["bytes"]"#,
        "DOUBLE" => r#""double""#,
        "DOUBLE_UNION" => r#"["double"]"#,
        "EMPTY_RECORD1" => r#"{"type":"record","name":"Record1","fields":[]}"#,
        "EMPTY_RECORD2" => r#"{"type":"record","name":"Record2","fields":[]}"#,
        "ENUM1_AB" => r#"{"type":"enum","name":"Enum1","symbols":["A","B"]}"#,
        "ENUM1_ABC" => r#"{"type":"enum","name":"Enum1","symbols":["A","B","C"]}"#,
        "ENUM1_BC" => r#"{"type":"enum","name":"Enum1","symbols":["B","C"]}"#,
        "ENUM2_AB" => r#"{"type":"enum","name":"Enum2","symbols":["A","B"]}"#,
        "ENUM_ABC_DEFAULT_A" => {
            r#"{"type":"enum","name":"Enum1","symbols":["A","B"],"default":"A"}"#
        }
        "FIXED_4" => r#"{"type":"fixed","name":"Fixed","size":4}"#,
        "FIXED_4_OTHER" => r#"{"type":"fixed","name":"AnotherName","size":4}"#,
        "FIXED_8" => r#"{"type":"fixed","name":"Fixed","size":8}"#,
        "FLOAT" => r#""float""#,
        "FLOAT_UNION" => r#"["float"]"#,
        "INT" => r#""int""#,
        "INT_ARRAY" => r#"{"type":"array","items":"int"}"#,
        "INT_FLOAT_UNION" => r#"["int","float"]"#,
        "INT_LIST_RECORD" => {
            r#"{"type":"record","name":"List","fields":[{"name":"head","type":"int","default":0},{"name":"tail","type":["null","List"],"default":null}]}"#
        }
        "INT_LONG_FLOAT_DOUBLE_UNION" => r#"["int","long","float","double"]"#,
        "INT_LONG_UNION" => r#"["int","long"]"#,
        "INT_MAP" => r#"{"type":"map","values":"int"}"#,
        "INT_STRING_UNION" => r#"["int","string"]"#,
        "INT_UNION" => r#"["int"]"#,
        "LONG" => r#""long""#,
        "LONG_ARRAY" => r#"{"type":"array","items":"long"}"#,
        "LONG_LIST_RECORD" => {
            r#"{"type":"record","name":"List","fields":[{"name":"head","type":"long","default":0},{"name":"tail","type":["null","List"],"default":null}]}"#
        }
        "LONG_MAP" => r#"{"type":"map","values":"long"}"#,
        "LONG_UNION" => r#"["long"]"#,
        "NULL" => r#""null""#,
        "RECORD1_WITH_ENUM_AB" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":{"type":"enum","name":"Enum1","symbols":["A","B"]}}]}"#
        }
        "RECORD1_WITH_ENUM_ABC" => {
            r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":{"type":"enum","name":"Enum1","symbols":["A","B","C"]}}]}"#
        }
        "STRING" => r#""string""#,
        "STRING_ARRAY" => r#"{"type":"array","items":"string"}"#,
        "STRING_INT_UNION" => r#"["string","int"]"#,
        "STRING_UNION" => r#"["string"]"#,
        "UNION_INT_ARRAY_INT" => r#"["int",{"type":"array","items":"int"}]"#,
        "UNION_INT_BOOLEAN" => r#"["int","boolean"]"#,
        "UNION_INT_ENUM1_AB" => r#"["int",{"type":"enum","name":"Enum1","symbols":["A","B"]}]"#,
        "UNION_INT_FIXED_4" => r#"["int",{"type":"fixed","name":"Fixed","size":4}]"#,
        "UNION_INT_MAP_INT" => r#"["int",{"type":"map","values":"int"}]"#,
        "UNION_INT_NULL" => r#"["int","null"]"#,
        "UNION_INT_RECORD1" => r#"["int",{"type":"record","name":"Record1","fields":[]}]"#,
        "UNION_INT_RECORD2" => r#"["int",{"type":"record","name":"Record2","fields":[]}]"#,
        other => panic!("no schema named {other}"),
    };
    avro(text)
}

fn avro(text: &str) -> Schema {
    Schema::parse(SchemaType::Avro, text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Checks that `reader` reads `writer`'s data (`compatible`) in both registration orders,
/// and, when it does not, that the first difference is of `kind` at `path`.
fn check(reader: &str, writer: &str, compatible: bool, kind: Option<(&str, &str)>) {
    let (r, w) = (named(reader), named(writer));
    for (level, old, new) in [
        (CompatibilityLevel::Backward, &w, &r),
        (CompatibilityLevel::BackwardTransitive, &w, &r),
        (CompatibilityLevel::Forward, &r, &w),
        (CompatibilityLevel::ForwardTransitive, &r, &w),
        (CompatibilityLevel::None, &w, &r),
    ] {
        let found = check_compatibility(level, new, &[(1, old)]).expect("within budget");
        let expected = compatible || level == CompatibilityLevel::None;
        assert_eq!(
            found.is_empty(),
            expected,
            "reader {reader}, writer {writer}: {level} expected {}, found {found:#?}",
            if expected {
                "compatible"
            } else {
                "incompatible"
            }
        );
        if let (Some((kind, path)), Some(first)) = (kind, found.first()) {
            assert_eq!(
                first.difference.kind.as_str(),
                kind,
                "{reader}/{writer}: {first}"
            );
            assert_eq!(first.difference.path, path, "{reader}/{writer}: {first}");
        }
    }
}

#[test]
fn avro_compatible_reader_writer_pairs() {
    check("BOOLEAN", "BOOLEAN", C, None); // avro ok
    check("INT", "INT", C, None); // avro ok
    check("LONG", "INT", C, None); // avro ok
    check("LONG", "LONG", C, None); // avro ok
    check("FLOAT", "INT", C, None); // avro ok
    check("FLOAT", "LONG", C, None); // avro ok
    check("DOUBLE", "LONG", C, None); // avro ok
    check("DOUBLE", "INT", C, None); // avro ok
    check("DOUBLE", "FLOAT", C, None); // avro ok
    check("STRING", "STRING", C, None); // avro ok
    check("BYTES", "BYTES", C, None); // avro ok
    check("INT_ARRAY", "INT_ARRAY", C, None); // avro ok
    check("LONG_ARRAY", "INT_ARRAY", C, None); // avro ok
    check("INT_MAP", "INT_MAP", C, None); // avro ok
    check("LONG_MAP", "INT_MAP", C, None); // avro ok
    check("ENUM1_AB", "ENUM1_AB", C, None); // avro ok
    check("ENUM1_ABC", "ENUM1_AB", C, None); // avro ok
    check("STRING", "BYTES", C, None); // avro ok
    check("BYTES", "STRING", C, None); // avro ok
    check("INT_UNION", "INT_UNION", C, None); // avro ok
    check("INT_STRING_UNION", "STRING_INT_UNION", C, None); // avro ok
    check("LONG_UNION", "INT_UNION", C, None); // avro ok
    check("DOUBLE_UNION", "INT_UNION", C, None); // avro ok
    check("DOUBLE_UNION", "LONG_UNION", C, None); // avro ok
    check("DOUBLE_UNION", "FLOAT_UNION", C, None); // avro ok
    check("DOUBLE_UNION", "INT_FLOAT_UNION", C, None); // avro ok
    check("STRING_UNION", "BYTES_UNION", C, None); // avro ok
    check("BYTES_UNION", "STRING_UNION", C, None); // avro ok
    check("FLOAT", "INT_FLOAT_UNION", C, None); // avro ok
    check("LONG", "INT_LONG_UNION", C, None); // avro ok
    check("DOUBLE", "INT_FLOAT_UNION", C, None); // avro ok
    check("DOUBLE", "INT_LONG_FLOAT_DOUBLE_UNION", C, None); // avro ok
    check("FLOAT", "FLOAT_UNION", C, None); // avro ok
    check("INT_UNION", "INT", C, None); // avro ok
    check("INT", "INT_UNION", C, None); // avro ok
    check("FIXED_4", "FIXED_4", C, None); // avro ok
    check("EMPTY_RECORD1", "EMPTY_RECORD1", C, None); // avro ok
    check("EMPTY_RECORD1", "A_INT_RECORD1", C, None); // avro ok
    check("A_INT_RECORD1", "A_INT_RECORD1", C, None); // avro ok
    check("A_DINT_RECORD1", "A_INT_RECORD1", C, None); // avro ok
    check("A_DINT_RECORD1", "A_DINT_RECORD1", C, None); // avro ok
    check("A_INT_RECORD1", "A_DINT_RECORD1", C, None); // avro ok
    check("A_LONG_RECORD1", "A_INT_RECORD1", C, None); // avro ok
    check("A_INT_RECORD1", "A_INT_B_INT_RECORD1", C, None); // avro ok
    check("A_DINT_RECORD1", "A_INT_B_INT_RECORD1", C, None); // avro ok
    check("A_INT_B_DINT_RECORD1", "A_INT_RECORD1", C, None); // avro ok
    check("A_DINT_B_DINT_RECORD1", "EMPTY_RECORD1", C, None); // avro ok
    check("A_DINT_B_DINT_RECORD1", "A_INT_RECORD1", C, None); // avro ok
    check("A_INT_B_INT_RECORD1", "A_DINT_B_DINT_RECORD1", C, None); // avro ok
    check("INT_LIST_RECORD", "INT_LIST_RECORD", C, None); // avro ok
    check("LONG_LIST_RECORD", "LONG_LIST_RECORD", C, None); // avro ok
    check("LONG_LIST_RECORD", "INT_LIST_RECORD", C, None); // avro ok
    check("NULL", "NULL", C, None); // avro ok
    check("ENUM_ABC_DEFAULT_A", "ENUM1_ABC", C, None); // avro ok
}

#[test]
fn avro_incompatible_reader_writer_pairs() {
    check("NULL", "INT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("NULL", "LONG", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("BOOLEAN", "INT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("INT", "NULL", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("INT", "BOOLEAN", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("INT", "LONG", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("INT", "FLOAT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("INT", "DOUBLE", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("LONG", "FLOAT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("LONG", "DOUBLE", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("FLOAT", "DOUBLE", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("DOUBLE", "STRING", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("FIXED_4", "STRING", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("STRING", "BOOLEAN", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("STRING", "INT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("BYTES", "NULL", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("BYTES", "INT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("A_INT_RECORD1", "INT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check(
        "INT_ARRAY",
        "LONG_ARRAY",
        I,
        Some(("TYPE_MISMATCH", "#/items")),
    ); // avro no
    check("INT_MAP", "INT_ARRAY", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("INT_ARRAY", "INT_MAP", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check(
        "INT_MAP",
        "LONG_MAP",
        I,
        Some(("TYPE_MISMATCH", "#/values")),
    ); // avro no
    check("INT", "ENUM2_AB", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check("ENUM2_AB", "INT", I, Some(("TYPE_MISMATCH", "#"))); // avro no
    check(
        "FLOAT",
        "INT_LONG_FLOAT_DOUBLE_UNION",
        I,
        Some(("TYPE_MISMATCH", "#/3")),
    ); // avro no
    check("LONG", "INT_FLOAT_UNION", I, Some(("TYPE_MISMATCH", "#/1"))); // avro no
    check("INT", "INT_FLOAT_UNION", I, Some(("TYPE_MISMATCH", "#/1"))); // avro no
    check(
        "INT_LIST_RECORD",
        "LONG_LIST_RECORD",
        I,
        Some(("TYPE_MISMATCH", "#/fields/0/type")),
    ); // avro no
    check(
        "ENUM1_AB",
        "ENUM1_ABC",
        I,
        Some(("MISSING_ENUM_SYMBOLS", "#/symbols")),
    ); // avro no
    check(
        "ENUM1_BC",
        "ENUM1_ABC",
        I,
        Some(("MISSING_ENUM_SYMBOLS", "#/symbols")),
    ); // avro no
    check(
        "RECORD1_WITH_ENUM_AB",
        "RECORD1_WITH_ENUM_ABC",
        I,
        Some(("MISSING_ENUM_SYMBOLS", "#/fields/0/type/symbols")),
    ); // avro no
    check("ENUM1_AB", "ENUM2_AB", I, Some(("NAME_MISMATCH", "#/name"))); // avro no
    check(
        "EMPTY_RECORD2",
        "EMPTY_RECORD1",
        I,
        Some(("NAME_MISMATCH", "#/name")),
    ); // avro no
    check(
        "FIXED_4",
        "FIXED_4_OTHER",
        I,
        Some(("NAME_MISMATCH", "#/name")),
    ); // avro no
    check(
        "A_DINT_B_DENUM_1_RECORD1",
        "A_DINT_B_DENUM_2_RECORD1",
        I,
        Some(("NAME_MISMATCH", "#/fields/1/type/name")),
    ); // avro no
    check(
        "FIXED_4",
        "FIXED_8",
        I,
        Some(("FIXED_SIZE_MISMATCH", "#/size")),
    ); // avro no
    check(
        "FIXED_8",
        "FIXED_4",
        I,
        Some(("FIXED_SIZE_MISMATCH", "#/size")),
    ); // avro no
    check(
        "A_DINT_B_DFIXED_8_RECORD1",
        "A_DINT_B_DFIXED_4_RECORD1",
        I,
        Some(("FIXED_SIZE_MISMATCH", "#/fields/1/type/size")),
    ); // avro no
    check(
        "A_INT_RECORD1",
        "EMPTY_RECORD1",
        I,
        Some(("READER_FIELD_MISSING_DEFAULT_VALUE", "#/fields/0")),
    ); // avro no
    check(
        "A_INT_B_DINT_RECORD1",
        "EMPTY_RECORD1",
        I,
        Some(("READER_FIELD_MISSING_DEFAULT_VALUE", "#/fields/0")),
    ); // avro no
    check(
        "INT_UNION",
        "INT_STRING_UNION",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "STRING_UNION",
        "INT_STRING_UNION",
        I,
        Some(("MISSING_UNION_BRANCH", "#/0")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_RECORD1",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_RECORD2",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "UNION_INT_RECORD1",
        "UNION_INT_RECORD2",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_ENUM1_AB",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_FIXED_4",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_BOOLEAN",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "LONG_UNION",
        "UNION_INT_BOOLEAN",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_ARRAY_INT",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_MAP_INT",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
    check(
        "INT_UNION",
        "UNION_INT_NULL",
        I,
        Some(("MISSING_UNION_BRANCH", "#/1")),
    ); // avro no
}

/// Confluent's `AvroCompatibilityTest` schemas 1–8.
fn cf(n: u8) -> Schema {
    avro(match n {
        1 => r#"{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"}]}"#,
        2 => {
            r#"{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"},{"type":"string","name":"f2","default":"foo"}]}"#
        }
        3 => {
            r#"{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"},{"type":"string","name":"f2"}]}"#
        }
        4 => {
            r#"{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1_new","aliases":["f1"]}]}"#
        }
        6 => {
            r#"{"type":"record","name":"myrecord","fields":[{"type":["null","string"],"name":"f1","doc":"doc of f1"}]}"#
        }
        7 => {
            r#"{"type":"record","name":"myrecord","fields":[{"type":["null","string","int"],"name":"f1","doc":"doc of f1"}]}"#
        }
        8 => {
            r#"{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"},{"type":"string","name":"f2","default":"foo"},{"type":"string","name":"f3","default":"bar"}]}"#
        }
        _ => unreachable!("no schema {n} in AvroCompatibilityTest"),
    })
}

/// Confluent's `checker.isCompatible(new, earlier)` under `level`.
fn cf_check(level: CompatibilityLevel, new: u8, earlier: &[u8], compatible: bool, why: &str) {
    let earlier: Vec<Schema> = earlier.iter().map(|n| cf(*n)).collect();
    let numbered: Vec<(u32, &Schema)> = (1..).zip(earlier.iter()).collect();
    let found = check_compatibility(level, &cf(new), &numbered).unwrap();
    assert_eq!(found.is_empty(), compatible, "cf {level} {why}: {found:#?}");
}

#[test]
fn confluent_avro_compatibility_test() {
    use CompatibilityLevel::*;
    // testBasicBackwardsCompatibility
    cf_check(Backward, 2, &[1], C, "adding a field with default");
    cf_check(Backward, 3, &[1], I, "adding a field w/o default");
    cf_check(Backward, 4, &[1], C, "changing field name with alias");
    cf_check(Backward, 6, &[1], C, "evolving a field type to a union");
    cf_check(Backward, 1, &[6], I, "removing a type from a union");
    cf_check(Backward, 7, &[6], C, "adding a new type in union");
    cf_check(Backward, 6, &[7], I, "removing a type from a union");
    cf_check(Backward, 3, &[1, 2], C, "only the latest (2) is checked");
    // testBasicBackwardsTransitiveCompatibility
    cf_check(
        BackwardTransitive,
        8,
        &[1, 2],
        C,
        "iteratively adding fields with defaults",
    );
    cf_check(
        BackwardTransitive,
        2,
        &[1],
        C,
        "adding a field with default",
    );
    cf_check(
        BackwardTransitive,
        3,
        &[2],
        C,
        "removing a default, not transitively",
    );
    cf_check(
        BackwardTransitive,
        3,
        &[2, 1],
        I,
        "removing a default, transitively",
    );
    // testBasicForwardsCompatibility
    cf_check(Forward, 2, &[1], C, "adding a field");
    cf_check(Forward, 3, &[1], C, "adding a field");
    cf_check(Forward, 3, &[2], C, "adding a field");
    cf_check(Forward, 2, &[3], C, "adding a field");
    cf_check(Forward, 1, &[3, 2], C, "only the latest (2) is checked");
    // testBasicForwardsTransitiveCompatibility
    cf_check(
        ForwardTransitive,
        1,
        &[8, 2],
        C,
        "iteratively removing fields with defaults",
    );
    cf_check(ForwardTransitive, 2, &[3], C, "adding default to a field");
    cf_check(
        ForwardTransitive,
        1,
        &[2],
        C,
        "removing a field with a default",
    );
    cf_check(
        ForwardTransitive,
        1,
        &[2, 3],
        I,
        "removing a default, transitively",
    );
    // testBasicFullCompatibility
    cf_check(Full, 2, &[1], C, "adding a field with default");
    cf_check(Full, 3, &[1, 2], C, "only the latest (2) is checked");
    cf_check(Full, 1, &[3, 2], C, "only the latest (2) is checked");
    // testBasicFullTransitiveCompatibility
    cf_check(
        FullTransitive,
        8,
        &[1, 2],
        C,
        "iteratively adding fields with defaults",
    );
    cf_check(
        FullTransitive,
        1,
        &[8, 2],
        C,
        "iteratively removing fields with defaults",
    );
    cf_check(FullTransitive, 2, &[3], C, "adding default to a field");
    cf_check(
        FullTransitive,
        1,
        &[2],
        C,
        "removing a field with a default",
    );
    cf_check(FullTransitive, 2, &[1], C, "adding a field with default");
    cf_check(
        FullTransitive,
        3,
        &[2],
        C,
        "removing a default from a field",
    );
    cf_check(
        FullTransitive,
        3,
        &[2, 1],
        I,
        "transitively adding a field without a default",
    );
    cf_check(
        FullTransitive,
        1,
        &[2, 3],
        I,
        "transitively removing a field without a default",
    );
}

#[test]
fn a_json_schema_never_reads_avro_data() {
    let json = Schema::parse(SchemaType::Json, r#"{"type":"string"}"#).unwrap();
    let found = check_compatibility(
        CompatibilityLevel::Backward,
        &json,
        &[(1, &named("STRING"))],
    )
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].difference.kind, DifferenceKind::SchemaTypeChanged);
}

#[test]
fn canonical_form_and_fingerprint_follow_the_avro_specification() {
    // Two spellings of one schema: one canonical form, one fingerprint, one canonical text.
    let a = avro(
        r#"{"type":"record","name":"Order","namespace":"shop","doc":"an order","fields":[{"name":"id","type":"string"}]}"#,
    );
    let b = avro(
        r#"{"namespace":"shop","fields":[{"type":{"type":"string"},"name":"id"}],"type":"record","name":"Order","doc":"an order"}"#,
    );
    assert_eq!(
        a.avro_canonical_form().unwrap(),
        r#"{"name":"shop.Order","type":"record","fields":[{"name":"id","type":"string"}]}"#
    );
    assert_eq!(a.avro_canonical_form(), b.avro_canonical_form());
    assert_eq!(a.avro_fingerprint(), b.avro_fingerprint());
    // The Avro specification's Rabin fingerprint of the schema "int".
    assert_eq!(
        avro(r#""int""#).avro_fingerprint().unwrap(),
        u64::from_le_bytes([0x8f, 0x5c, 0x39, 0x3f, 0x1a, 0xd5, 0x75, 0x72])
    );
}

#[test]
fn the_codec_round_trips_and_resolves_old_data_with_the_new_schema() {
    use serde_json::json;
    let v1 = cf(1);
    let v2 = cf(2);
    let bytes = keel_schema::encode_avro(&v1, &json!({"f1": "hello"})).unwrap();
    // A record of one string: its length as a zigzag varint, then the bytes.
    assert_eq!(bytes, [10, b'h', b'e', b'l', b'l', b'o']);
    assert_eq!(
        keel_schema::decode_avro(&v1, None, &bytes).unwrap(),
        json!({"f1": "hello"})
    );
    // Read with version 2: the missing field takes its default.
    assert_eq!(
        keel_schema::decode_avro(&v1, Some(&v2), &bytes).unwrap(),
        json!({"f1": "hello", "f2": "foo"})
    );
    let refused = keel_schema::encode_avro(&v1, &json!({"f1": 42})).unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("value does not match its schema"),
        "{refused}"
    );
    let short = keel_schema::decode_avro(&v1, None, &[10, b'h']);
    assert!(short.is_err(), "{short:?}");
}
