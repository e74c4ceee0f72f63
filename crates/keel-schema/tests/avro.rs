//! Avro schemas end to end: Keel's own compatibility cases, the levels over several versions,
//! the canonical form and the codec.
//!
//! The compatibility rules are Avro's schema resolution as Apache Avro Java's
//! `SchemaCompatibility` decides it — the checker Confluent Schema Registry's `AvroSchema`
//! calls — with its incompatibility types and locations, and Confluent's definitions of the
//! seven levels (summed up in `src/avro.rs` and `src/compatibility.rs`). The cases — their
//! names, records and schema texts — are Keel's own. Each is a writer's schema, a reader's,
//! and the differences that stop the reader from reading the writer's data as `path: KIND`
//! (none: compatible), checked twice: the writer's schema registered first under `BACKWARD`,
//! and the reader's registered first under `FORWARD`, as both ask whether the reader reads
//! the writer's data; `NONE` accepts both. Primitives are checked for every pair of types.

use keel_schema::{CompatibilityLevel, DifferenceKind, Schema, SchemaType, check_compatibility};

mod support;
use support::{NOTHING, check_each};

fn avro(text: &str) -> Schema {
    Schema::parse(SchemaType::Avro, text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// One change to an Avro schema: what it is, the writer's text, the reader's, and what breaks.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Checks every case of a table, naming all those that fail in one panic.
fn check_all(cases: &[Case]) {
    check_each(cases, |failed, (change, writer, reader, breaks)| {
        check(failed, change, writer, reader, breaks);
    });
}

/// `reader` registered after `writer` under `BACKWARD`, and `writer` after `reader` under
/// `FORWARD`: both must find exactly `breaks`, each difference described in words; `NONE`
/// finds nothing. A mismatch is added to `failed`.
fn check(failed: &mut Vec<String>, change: &str, writer: &str, reader: &str, breaks: &[&str]) {
    let (writer, reader) = (avro(writer), avro(reader));
    for (level, old, new, expected) in [
        (CompatibilityLevel::Backward, &writer, &reader, breaks),
        (CompatibilityLevel::Forward, &reader, &writer, breaks),
        (CompatibilityLevel::None, &writer, &reader, NOTHING),
    ] {
        let found = check_compatibility(level, new, &[(1, old)]).expect("within budget");
        failed.extend(support::mismatches(change, level, &found, expected));
    }
}

/// Avro's primitive types, and the readers each one's data resolves to besides itself: the
/// promotions of the Avro specification's schema resolution.
const PRIMITIVES: &[(&str, &[&str])] = &[
    ("null", &[]),
    ("boolean", &[]),
    ("int", &["long", "float", "double"]),
    ("long", &["float", "double"]),
    ("float", &["double"]),
    ("double", &[]),
    ("bytes", &["string"]),
    ("string", &["bytes"]),
];

#[test]
fn every_primitive_pair_is_judged_by_the_promotions() {
    let failed = &mut Vec::new();
    for (writer, promoted) in PRIMITIVES {
        for (reader, _) in PRIMITIVES {
            let breaks: &[&str] = if writer == reader || promoted.contains(reader) {
                NOTHING
            } else {
                &["#: TYPE_MISMATCH"]
            };
            let change = format!("{writer} read as {reader}");
            check(
                failed,
                &change,
                &format!("\"{writer}\""),
                &format!("\"{reader}\""),
                breaks,
            );
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn arrays_maps_and_types_of_other_shapes() {
    check_all(&[
        (
            "readings widened from int to double",
            r#"{"type":"array","items":"int"}"#,
            r#"{"type":"array","items":"double"}"#,
            NOTHING,
        ),
        (
            "readings narrowed from long to int",
            r#"{"type":"array","items":"long"}"#,
            r#"{"type":"array","items":"int"}"#,
            &["#/items: TYPE_MISMATCH"],
        ),
        (
            "prices by currency widened from float to double",
            r#"{"type":"map","values":"float"}"#,
            r#"{"type":"map","values":"double"}"#,
            NOTHING,
        ),
        (
            "prices by currency narrowed from double to float",
            r#"{"type":"map","values":"double"}"#,
            r#"{"type":"map","values":"float"}"#,
            &["#/values: TYPE_MISMATCH"],
        ),
        (
            "a list of tags read as a map",
            r#"{"type":"array","items":"string"}"#,
            r#"{"type":"map","values":"string"}"#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "a map of tags read as a list",
            r#"{"type":"map","values":"string"}"#,
            r#"{"type":"array","items":"string"}"#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "a list of lists, the inner items narrowed",
            r#"{"type":"array","items":{"type":"array","items":"double"}}"#,
            r#"{"type":"array","items":{"type":"array","items":"float"}}"#,
            &["#/items/items: TYPE_MISMATCH"],
        ),
        (
            "a string read as a record",
            r#""string""#,
            r#"{"type":"record","name":"Gate","fields":[]}"#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "a record read as a long",
            r#"{"type":"record","name":"Gate","fields":[]}"#,
            r#""long""#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "an enum read as a string",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            r#""string""#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "an int read as an enum",
            r#""int""#,
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "a string read as a fixed",
            r#""string""#,
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "a fixed read as bytes",
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            r#""bytes""#,
            &["#: TYPE_MISMATCH"],
        ),
    ]);
}

#[test]
fn enums() {
    check_all(&[
        (
            "a cabin class added",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","PREMIUM","BUSINESS"]}"#,
            NOTHING,
        ),
        (
            "a cabin class removed",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","PREMIUM","BUSINESS"]}"#,
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            &["#/symbols: MISSING_ENUM_SYMBOLS"],
        ),
        (
            "a cabin class replaced by another",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","FIRST"]}"#,
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            &["#/symbols: MISSING_ENUM_SYMBOLS"],
        ),
        (
            "the cabin classes reordered",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            r#"{"type":"enum","name":"Cabin","symbols":["BUSINESS","ECONOMY"]}"#,
            NOTHING,
        ),
        (
            "a cabin class removed, the reader's default takes its place",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","PREMIUM","BUSINESS"]}"#,
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"],"default":"ECONOMY"}"#,
            NOTHING,
        ),
        (
            "the enum renamed",
            r#"{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}"#,
            r#"{"type":"enum","name":"TravelClass","symbols":["ECONOMY","BUSINESS"]}"#,
            &["#/name: NAME_MISMATCH"],
        ),
        (
            "the enum renamed, an alias names the old one",
            r#"{"type":"enum","name":"Cabin","namespace":"air","symbols":["ECONOMY","BUSINESS"]}"#,
            r#"{"type":"enum","name":"TravelClass","namespace":"air","aliases":["air.Cabin"],"symbols":["ECONOMY","BUSINESS"]}"#,
            NOTHING,
        ),
        (
            "the enum moved to another namespace",
            r#"{"type":"enum","name":"Cabin","namespace":"air.v1","symbols":["ECONOMY","BUSINESS"]}"#,
            r#"{"type":"enum","name":"Cabin","namespace":"air.v2","symbols":["ECONOMY","BUSINESS"]}"#,
            NOTHING,
        ),
        (
            "a field's cabin class removed",
            r#"{"type":"record","name":"Seat","fields":[{"name":"cabin","type":{"type":"enum","name":"Cabin","symbols":["ECONOMY","PREMIUM","BUSINESS"]}}]}"#,
            r#"{"type":"record","name":"Seat","fields":[{"name":"cabin","type":{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}}]}"#,
            &["#/fields/0/type/symbols: MISSING_ENUM_SYMBOLS"],
        ),
        (
            "a cabin class removed from an enum used by two fields",
            r#"{"type":"record","name":"Upgrade","fields":[{"name":"from","type":{"type":"enum","name":"Cabin","symbols":["ECONOMY","PREMIUM","BUSINESS"]}},{"name":"to","type":"Cabin"}]}"#,
            r#"{"type":"record","name":"Upgrade","fields":[{"name":"from","type":{"type":"enum","name":"Cabin","symbols":["ECONOMY","BUSINESS"]}},{"name":"to","type":"Cabin"}]}"#,
            &[
                "#/fields/0/type/symbols: MISSING_ENUM_SYMBOLS",
                "#/fields/1/type/symbols: MISSING_ENUM_SYMBOLS",
            ],
        ),
    ]);
}

#[test]
fn fixed() {
    check_all(&[
        (
            "a digest unchanged but for its doc",
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            r#"{"type":"fixed","name":"Digest","size":16,"doc":"MD5 of the ticket"}"#,
            NOTHING,
        ),
        (
            "a digest grown from 16 to 32 bytes",
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            r#"{"type":"fixed","name":"Digest","size":32}"#,
            &["#/size: FIXED_SIZE_MISMATCH"],
        ),
        (
            "a digest shrunk from 32 to 16 bytes",
            r#"{"type":"fixed","name":"Digest","size":32}"#,
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            &["#/size: FIXED_SIZE_MISMATCH"],
        ),
        (
            "a digest renamed",
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            r#"{"type":"fixed","name":"Checksum","size":16}"#,
            &["#/name: NAME_MISMATCH"],
        ),
        (
            "a digest renamed, an alias names the old one",
            r#"{"type":"fixed","name":"Digest","size":16}"#,
            r#"{"type":"fixed","name":"Checksum","aliases":["Digest"],"size":16}"#,
            NOTHING,
        ),
        (
            "a record's digest grown",
            r#"{"type":"record","name":"Ticket","fields":[{"name":"number","type":"string"},{"name":"digest","type":{"type":"fixed","name":"Digest","size":16}}]}"#,
            r#"{"type":"record","name":"Ticket","fields":[{"name":"number","type":"string"},{"name":"digest","type":{"type":"fixed","name":"Digest","size":20}}]}"#,
            &["#/fields/1/type/size: FIXED_SIZE_MISMATCH"],
        ),
    ]);
}

#[test]
fn records_and_fields() {
    check_all(&[
        (
            "a field added with a default",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"gate","type":"string","default":"TBD"}]}"#,
            NOTHING,
        ),
        (
            "a field added without a default",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"gate","type":"string"}]}"#,
            &["#/fields/1: READER_FIELD_MISSING_DEFAULT_VALUE"],
        ),
        (
            "two fields added without defaults",
            r#"{"type":"record","name":"Flight","fields":[]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"gate","type":"string"}]}"#,
            &[
                "#/fields/0: READER_FIELD_MISSING_DEFAULT_VALUE",
                "#/fields/1: READER_FIELD_MISSING_DEFAULT_VALUE",
            ],
        ),
        (
            "an optional field added, null by default",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"remark","type":["null","string"],"default":null}]}"#,
            NOTHING,
        ),
        (
            "a field removed",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"gate","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            NOTHING,
        ),
        (
            "every field removed",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"gate","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[]}"#,
            NOTHING,
        ),
        (
            "the fields reordered",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"},{"name":"gate","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"gate","type":"string"},{"name":"number","type":"string"}]}"#,
            NOTHING,
        ),
        (
            "a field renamed, an alias names the old one",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"flight_code","aliases":["number"],"type":"string"}]}"#,
            NOTHING,
        ),
        (
            "a field renamed without an alias or a default",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"flight_code","type":"string"}]}"#,
            &["#/fields/0: READER_FIELD_MISSING_DEFAULT_VALUE"],
        ),
        (
            "a field's default dropped while the writer still writes it",
            r#"{"type":"record","name":"Flight","fields":[{"name":"gate","type":"string","default":"TBD"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"gate","type":"string"}]}"#,
            NOTHING,
        ),
        (
            "a field promoted from int to long",
            r#"{"type":"record","name":"Flight","fields":[{"name":"seats","type":"int"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"seats","type":"long"}]}"#,
            NOTHING,
        ),
        (
            "a field narrowed from long to int",
            r#"{"type":"record","name":"Flight","fields":[{"name":"seats","type":"long"}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"seats","type":"int"}]}"#,
            &["#/fields/0/type: TYPE_MISMATCH"],
        ),
        (
            "the record renamed",
            r#"{"type":"record","name":"Flight","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Journey","fields":[{"name":"number","type":"string"}]}"#,
            &["#/name: NAME_MISMATCH"],
        ),
        (
            "the record renamed, an alias names the old full name",
            r#"{"type":"record","name":"Flight","namespace":"air","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Journey","namespace":"air","aliases":["air.Flight"],"fields":[{"name":"number","type":"string"}]}"#,
            NOTHING,
        ),
        (
            "the record renamed, an alias names the old one within its namespace",
            r#"{"type":"record","name":"Flight","namespace":"air","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Journey","namespace":"air","aliases":["Flight"],"fields":[{"name":"number","type":"string"}]}"#,
            NOTHING,
        ),
        (
            "the record renamed, an alias names another namespace's record",
            r#"{"type":"record","name":"Flight","namespace":"air","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Journey","namespace":"air","aliases":["rail.Flight"],"fields":[{"name":"number","type":"string"}]}"#,
            &["#/name: NAME_MISMATCH"],
        ),
        (
            "the record moved to another namespace",
            r#"{"type":"record","name":"Flight","namespace":"air.v1","fields":[{"name":"number","type":"string"}]}"#,
            r#"{"type":"record","name":"Flight","namespace":"air.v2","fields":[{"name":"number","type":"string"}]}"#,
            NOTHING,
        ),
        (
            "a nested record's field changed from int to string",
            r#"{"type":"record","name":"Booking","fields":[{"name":"id","type":"string"},{"name":"seat","type":{"type":"record","name":"Seat","fields":[{"name":"row","type":"int"}]}}]}"#,
            r#"{"type":"record","name":"Booking","fields":[{"name":"id","type":"string"},{"name":"seat","type":{"type":"record","name":"Seat","fields":[{"name":"row","type":"string"}]}}]}"#,
            &["#/fields/1/type/fields/0/type: TYPE_MISMATCH"],
        ),
        (
            "a nested record's field added without a default",
            r#"{"type":"record","name":"Booking","fields":[{"name":"seat","type":{"type":"record","name":"Seat","fields":[{"name":"row","type":"int"}]}}]}"#,
            r#"{"type":"record","name":"Booking","fields":[{"name":"seat","type":{"type":"record","name":"Seat","fields":[{"name":"row","type":"int"},{"name":"letter","type":"string"}]}}]}"#,
            &["#/fields/0/type/fields/1: READER_FIELD_MISSING_DEFAULT_VALUE"],
        ),
    ]);
}

#[test]
fn unions() {
    check_all(&[
        (
            "a string made optional",
            r#""string""#,
            r#"["null","string"]"#,
            NOTHING,
        ),
        (
            "an optional string made required",
            r#"["null","string"]"#,
            r#""string""#,
            &["#/0: TYPE_MISMATCH"],
        ),
        (
            "an optional field made required",
            r#"{"type":"record","name":"Flight","fields":[{"name":"gate","type":["null","string"],"default":null}]}"#,
            r#"{"type":"record","name":"Flight","fields":[{"name":"gate","type":"string"}]}"#,
            &["#/fields/0/type/0: TYPE_MISMATCH"],
        ),
        (
            "a branch added to a union",
            r#"["null","string"]"#,
            r#"["null","string","int"]"#,
            NOTHING,
        ),
        (
            "a branch removed from a union",
            r#"["null","string","int"]"#,
            r#"["null","string"]"#,
            &["#/2: MISSING_UNION_BRANCH"],
        ),
        (
            "a union's branches reordered",
            r#"["null","string","int"]"#,
            r#"["int","null","string"]"#,
            NOTHING,
        ),
        (
            "a union's int branch promoted to long",
            r#"["null","int"]"#,
            r#"["null","long"]"#,
            NOTHING,
        ),
        (
            "a union read by the one type its branches promote to",
            r#"["int","long","float"]"#,
            r#""double""#,
            NOTHING,
        ),
        (
            "a union read by a type one branch does not promote to",
            r#"["int","double"]"#,
            r#""float""#,
            &["#/1: TYPE_MISMATCH"],
        ),
        (
            "a union of one branch read as its type",
            r#"["long"]"#,
            r#""long""#,
            NOTHING,
        ),
        (
            "a type read as a union of one branch it promotes to",
            r#""int""#,
            r#"["double"]"#,
            NOTHING,
        ),
        (
            "a value read by a union without its type",
            r#""boolean""#,
            r#"["null","string"]"#,
            &["#: MISSING_UNION_BRANCH"],
        ),
        (
            "a record branch renamed",
            r#"["null",{"type":"record","name":"Gate","fields":[]}]"#,
            r#"["null",{"type":"record","name":"Stand","fields":[]}]"#,
            &["#/1: MISSING_UNION_BRANCH"],
        ),
        (
            "an enum branch dropped",
            r#"["string",{"type":"enum","name":"Cabin","symbols":["ECONOMY"]}]"#,
            r#"["string"]"#,
            &["#/1: MISSING_UNION_BRANCH"],
        ),
        (
            "a fixed branch dropped",
            r#"["null",{"type":"fixed","name":"Digest","size":16}]"#,
            r#"["null","string"]"#,
            &["#/1: MISSING_UNION_BRANCH"],
        ),
        (
            "an array branch dropped",
            r#"["null",{"type":"array","items":"string"}]"#,
            r#"["null"]"#,
            &["#/1: MISSING_UNION_BRANCH"],
        ),
        (
            "a map branch dropped",
            r#"["boolean",{"type":"map","values":"long"}]"#,
            r#"["boolean"]"#,
            &["#/1: MISSING_UNION_BRANCH"],
        ),
        (
            "the null branch dropped",
            r#"["double","null"]"#,
            r#"["double"]"#,
            &["#/1: MISSING_UNION_BRANCH"],
        ),
    ]);
}

#[test]
fn recursive_records_and_logical_types() {
    check_all(&[
        (
            "a linked list of stops unchanged",
            r#"{"type":"record","name":"Stop","fields":[{"name":"minutes","type":"int"},{"name":"next","type":["null","Stop"],"default":null}]}"#,
            r#"{"type":"record","name":"Stop","fields":[{"name":"minutes","type":"int"},{"name":"next","type":["null","Stop"],"default":null}]}"#,
            NOTHING,
        ),
        (
            "a linked list's value promoted from int to long",
            r#"{"type":"record","name":"Stop","fields":[{"name":"minutes","type":"int"},{"name":"next","type":["null","Stop"],"default":null}]}"#,
            r#"{"type":"record","name":"Stop","fields":[{"name":"minutes","type":"long"},{"name":"next","type":["null","Stop"],"default":null}]}"#,
            NOTHING,
        ),
        (
            "a linked list's value narrowed from long to int",
            r#"{"type":"record","name":"Stop","fields":[{"name":"minutes","type":"long"},{"name":"next","type":["null","Stop"],"default":null}]}"#,
            r#"{"type":"record","name":"Stop","fields":[{"name":"minutes","type":"int"},{"name":"next","type":["null","Stop"],"default":null}]}"#,
            &["#/fields/0/type: TYPE_MISMATCH"],
        ),
        (
            "a date read as the int it is",
            r#"{"type":"int","logicalType":"date"}"#,
            r#""int""#,
            NOTHING,
        ),
        (
            "an int read as a date",
            r#""int""#,
            r#"{"type":"int","logicalType":"date"}"#,
            NOTHING,
        ),
        (
            "a date read as a long, by promotion",
            r#"{"type":"int","logicalType":"date"}"#,
            r#""long""#,
            NOTHING,
        ),
        (
            "a time in milliseconds read as a timestamp in microseconds",
            r#"{"type":"int","logicalType":"time-millis"}"#,
            r#"{"type":"long","logicalType":"timestamp-micros"}"#,
            NOTHING,
        ),
        (
            "a timestamp in milliseconds read as an int",
            r#"{"type":"long","logicalType":"timestamp-millis"}"#,
            r#""int""#,
            &["#: TYPE_MISMATCH"],
        ),
        (
            "a decimal in bytes read as a string",
            r#"{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}"#,
            r#""string""#,
            NOTHING,
        ),
        (
            "a uuid read as a string",
            r#"{"type":"string","logicalType":"uuid"}"#,
            r#""string""#,
            NOTHING,
        ),
        (
            "a decimal in a fixed read as that fixed",
            r#"{"type":"fixed","name":"Fare","size":8,"logicalType":"decimal","precision":18,"scale":2}"#,
            r#"{"type":"fixed","name":"Fare","size":8}"#,
            NOTHING,
        ),
        (
            "a duration read as a fixed of another size",
            r#"{"type":"fixed","name":"Layover","size":12,"logicalType":"duration"}"#,
            r#"{"type":"fixed","name":"Layover","size":16}"#,
            &["#/size: FIXED_SIZE_MISMATCH"],
        ),
    ]);
}

/// A flight schedule's versions as a team evolves it: `v2` adds a gate with a default, `v3`
/// the same gate without one, `v4` renames the number with an alias, `v5` makes the number
/// optional, `v6` lets it be an int too, `v7` adds a gate and a terminal, both with defaults.
fn flight(version: u8) -> Schema {
    let fields = match version {
        1 => r#"{"name":"number","type":"string"}"#,
        2 => r#"{"name":"number","type":"string"},{"name":"gate","type":"string","default":"TBD"}"#,
        3 => r#"{"name":"number","type":"string"},{"name":"gate","type":"string"}"#,
        4 => r#"{"name":"flight_code","aliases":["number"],"type":"string"}"#,
        5 => r#"{"name":"number","type":["null","string"]}"#,
        6 => r#"{"name":"number","type":["null","string","int"]}"#,
        7 => {
            r#"{"name":"number","type":"string"},{"name":"gate","type":"string","default":"TBD"},{"name":"terminal","type":"string","default":"1"}"#
        }
        _ => unreachable!("no flight schema {version}"),
    };
    avro(&format!(
        r#"{{"type":"record","name":"Flight","namespace":"air","fields":[{fields}]}}"#
    ))
}

/// `flight(new)` registered after `flight(earlier)` (oldest first) under `level`.
fn registers(level: CompatibilityLevel, new: u8, earlier: &[u8]) -> bool {
    let earlier: Vec<Schema> = earlier.iter().map(|v| flight(*v)).collect();
    let numbered: Vec<(u32, &Schema)> = (1..).zip(earlier.iter()).collect();
    check_compatibility(level, &flight(new), &numbered)
        .expect("within budget")
        .is_empty()
}

#[test]
fn each_level_compares_the_versions_confluent_names() {
    use CompatibilityLevel::*;
    // (level, new version, earlier versions, registers, why)
    let cases: &[(CompatibilityLevel, u8, &[u8], bool, &str)] = &[
        (Backward, 2, &[1], true, "a field added with a default"),
        (Backward, 3, &[1], false, "a field added without a default"),
        (Backward, 4, &[1], true, "a field renamed with an alias"),
        (Backward, 5, &[1], true, "a field made a union"),
        (Backward, 1, &[5], false, "null dropped from a union"),
        (Backward, 6, &[5], true, "a branch added to a union"),
        (Backward, 5, &[6], false, "a branch dropped from a union"),
        (
            Backward,
            3,
            &[1, 2],
            true,
            "only the latest version is read",
        ),
        (
            BackwardTransitive,
            7,
            &[1, 2],
            true,
            "fields added with defaults",
        ),
        (BackwardTransitive, 3, &[2], true, "a default dropped"),
        (
            BackwardTransitive,
            3,
            &[1, 2],
            false,
            "the first version lacks the gate",
        ),
        (Forward, 2, &[1], true, "old readers ignore an added field"),
        (Forward, 3, &[1], true, "old readers ignore an added field"),
        (
            Forward,
            1,
            &[2],
            true,
            "old readers default a removed field",
        ),
        (
            Forward,
            1,
            &[3],
            false,
            "old readers need the removed field",
        ),
        (Forward, 1, &[3, 2], true, "only the latest version reads"),
        (
            ForwardTransitive,
            1,
            &[7, 2],
            true,
            "removed fields had defaults",
        ),
        (
            ForwardTransitive,
            1,
            &[2, 3],
            false,
            "the first reader needs the gate",
        ),
        (Full, 2, &[1], true, "a field added with a default"),
        (Full, 3, &[1], false, "the new version needs the gate"),
        (Full, 3, &[1, 2], true, "only the latest version counts"),
        (
            FullTransitive,
            7,
            &[1, 2],
            true,
            "fields added with defaults",
        ),
        (
            FullTransitive,
            3,
            &[1, 2],
            false,
            "the first version lacks the gate",
        ),
        (
            FullTransitive,
            1,
            &[2, 3],
            false,
            "the second reader needs the gate",
        ),
        (None, 3, &[1], true, "nothing is checked"),
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter(|(level, new, earlier, expected, _)| registers(*level, *new, earlier) != *expected)
        .map(|(level, new, earlier, expected, why)| {
            format!("{level}: v{new} after {earlier:?} should register: {expected} ({why})")
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn a_json_schema_never_reads_avro_data() {
    let json = Schema::parse(SchemaType::Json, r#"{"type":"string"}"#).unwrap();
    let found = check_compatibility(
        CompatibilityLevel::Backward,
        &json,
        &[(1, &avro(r#""string""#))],
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
    let v1 = flight(1);
    let v2 = flight(2);
    let bytes = keel_schema::encode_avro(&v1, &json!({"number": "BA117"})).unwrap();
    // A record of one string: its length as a zigzag varint, then the bytes.
    assert_eq!(bytes, [10, b'B', b'A', b'1', b'1', b'7']);
    assert_eq!(
        keel_schema::decode_avro(&v1, None, &bytes).unwrap(),
        json!({"number": "BA117"})
    );
    // Read with version 2: the missing field takes its default.
    assert_eq!(
        keel_schema::decode_avro(&v1, Some(&v2), &bytes).unwrap(),
        json!({"number": "BA117", "gate": "TBD"})
    );
    let refused = keel_schema::encode_avro(&v1, &json!({"number": 42})).unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("value does not match its schema"),
        "{refused}"
    );
    let short = keel_schema::decode_avro(&v1, None, &[10, b'B']);
    assert!(short.is_err(), "{short:?}");
}
