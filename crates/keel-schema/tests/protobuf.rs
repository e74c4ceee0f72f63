//! Protobuf schemas end to end: Keel's own compatibility cases, the message indexes and the
//! codec.
//!
//! The compatibility rules are Confluent Schema Registry's: what its documentation allows a
//! Protobuf schema to change, and which change types of its `protobuf/diff` package it counts
//! as compatible (confluentinc/schema-registry 794611bd; summed up in `src/protobuf.rs`). The
//! cases — their names, messages and schema texts — are Keel's own. Each is a writer's
//! `.proto` file, a reader's, and the differences that break under those rules as
//! `path: KIND` (none: compatible), checked twice: the writer's file registered first under
//! `BACKWARD`, and the reader's registered first under `FORWARD`, as both ask whether the
//! reader reads the writer's data. Scalar changes are checked for every pair of types.

use std::sync::Arc;

use keel_core::Event;
use keel_log::Log;
use keel_schema::wire::{read_message_indexes, unframe, write_message_indexes};
use keel_schema::{
    CompatibilityLevel, Reference, Registry, Schema, SchemaCodec, SchemaType, check_compatibility,
};
use serde_json::json;

mod support;
use support::{NOTHING, check_each};

/// Parses a `.proto` text; one without a `syntax` line is proto3.
fn proto(text: &str) -> Schema {
    let text = if text.starts_with("syntax") {
        text.to_string()
    } else {
        format!("syntax = \"proto3\";\n{text}")
    };
    Schema::parse(SchemaType::Protobuf, &text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// One change to a `.proto` file: what it is, the writer's text, the reader's, and what breaks.
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
/// `FORWARD`: both must find exactly `breaks`, each difference described in words. A mismatch
/// is added to `failed`.
fn check(failed: &mut Vec<String>, change: &str, writer: &str, reader: &str, breaks: &[&str]) {
    let (writer, reader) = (proto(writer), proto(reader));
    for (level, old, new) in [
        (CompatibilityLevel::Backward, &writer, &reader),
        (CompatibilityLevel::Forward, &reader, &writer),
    ] {
        let found = check_compatibility(level, new, &[(1, old)]).expect("within budget");
        failed.extend(support::mismatches(change, level, &found, breaks));
    }
}

#[test]
fn packages_and_message_names() {
    check_all(&[
        (
            "the package renamed",
            "package shipping.v1; message Parcel { string tracking_id = 1; }",
            "package shipping.v2; message Parcel { string tracking_id = 1; }",
            &["#: PACKAGE_CHANGED"],
        ),
        (
            "a package given to a file that had none",
            "message Parcel { string tracking_id = 1; }",
            "package shipping; message Parcel { string tracking_id = 1; }",
            &["#: PACKAGE_CHANGED"],
        ),
        (
            "a nested type named short, then qualified from the root with its package",
            "package shipping; message Parcel { Size size = 1; message Size { uint32 grams = 1; } }",
            "package shipping; message Parcel { .shipping.Parcel.Size size = 1; message Size { uint32 grams = 1; } }",
            NOTHING,
        ),
        (
            "a nested type named short, then qualified from the root of a file without package",
            "message Parcel { Size size = 1; message Size { uint32 grams = 1; } }",
            "message Parcel { .Parcel.Size size = 1; message Size { uint32 grams = 1; } }",
            NOTHING,
        ),
        (
            "a nested type named short, then by its enclosing message",
            "message Parcel { Size size = 1; message Size { uint32 grams = 1; } }",
            "message Parcel { Parcel.Size size = 1; message Size { uint32 grams = 1; } }",
            NOTHING,
        ),
        (
            "a message added after the first",
            "message Parcel { string tracking_id = 1; }",
            "message Parcel { string tracking_id = 1; } message Depot { string code = 1; }",
            NOTHING,
        ),
        (
            "a message added before the first, which moves its index",
            "message Parcel { string tracking_id = 1; }",
            "message Depot { string code = 1; } message Parcel { string tracking_id = 1; }",
            NOTHING,
        ),
        (
            "two messages swap places",
            "message Parcel { string tracking_id = 1; } message Depot { string code = 1; }",
            "message Depot { string code = 1; } message Parcel { string tracking_id = 1; }",
            NOTHING,
        ),
        (
            "a message removed",
            "message Parcel { string tracking_id = 1; } message Depot { string code = 1; }",
            "message Parcel { string tracking_id = 1; }",
            &["#/Depot: MESSAGE_REMOVED"],
        ),
        (
            "a message renamed",
            "message Shipment { string tracking_id = 1; }",
            "message Consignment { string tracking_id = 1; }",
            &["#/Shipment: MESSAGE_REMOVED"],
        ),
        (
            "a nested message added",
            "message Parcel { string tracking_id = 1; }",
            "message Parcel { string tracking_id = 1; message Label { string text = 1; } }",
            NOTHING,
        ),
        (
            "a nested message removed",
            "message Parcel { string tracking_id = 1; message Label { string text = 1; } }",
            "message Parcel { string tracking_id = 1; }",
            &["#/Parcel/Label: MESSAGE_REMOVED"],
        ),
        (
            "a field's message type replaced by another message of the same shape",
            "message Invoice { Money total = 1; } message Money { int64 cents = 1; } message Price { int64 cents = 1; }",
            "message Invoice { Price total = 1; } message Money { int64 cents = 1; } message Price { int64 cents = 1; }",
            &["#/Invoice/1: FIELD_NAMED_TYPE_CHANGED"],
        ),
        (
            "a field's type moved from a nested message to a top-level one of the same name",
            "message Parcel { Size size = 1; message Size { uint32 grams = 1; } } message Size { uint32 grams = 1; }",
            "message Parcel { .Size size = 1; message Size { uint32 grams = 1; } } message Size { uint32 grams = 1; }",
            &["#/Parcel/1: FIELD_NAMED_TYPE_CHANGED"],
        ),
        (
            "a field's message type kept while the package is renamed",
            "package billing.v1; message Invoice { Money total = 1; } message Money { int64 cents = 1; }",
            "package billing.v2; message Invoice { Money total = 1; } message Money { int64 cents = 1; }",
            &["#: PACKAGE_CHANGED"],
        ),
    ]);
}

#[test]
fn fields_added_removed_renamed_and_renumbered() {
    check_all(&[
        (
            "a field added",
            "message Reading { double celsius = 1; }",
            "message Reading { double celsius = 1; string sensor_id = 2; }",
            NOTHING,
        ),
        (
            "a field removed",
            "message Reading { double celsius = 1; string sensor_id = 2; }",
            "message Reading { double celsius = 1; }",
            NOTHING,
        ),
        (
            "a field removed, its number and name reserved",
            "message Reading { double celsius = 1; string unit = 2; }",
            "message Reading { double celsius = 1; reserved 2; reserved \"unit\"; }",
            NOTHING,
        ),
        (
            "a field given a new number: one field removed, another added",
            "message Reading { double celsius = 1; }",
            "message Reading { double celsius = 4; }",
            NOTHING,
        ),
        (
            "a field renamed, its number and type kept",
            "message Reading { double celsius = 1; }",
            "message Reading { double temperature_c = 1; }",
            NOTHING,
        ),
        (
            "two fields of different wire types swap numbers",
            "message Reading { double celsius = 1; string sensor_id = 2; }",
            "message Reading { string sensor_id = 1; double celsius = 2; }",
            &[
                "#/Reading/1: FIELD_SCALAR_KIND_CHANGED",
                "#/Reading/2: FIELD_SCALAR_KIND_CHANGED",
            ],
        ),
        (
            "a field added to a nested message",
            "message Route { message Leg { string from_depot = 1; } }",
            "message Route { message Leg { string from_depot = 1; string to_depot = 2; } }",
            NOTHING,
        ),
        (
            "a field added two levels down",
            "message Route { message Leg { message Stop { string depot = 1; } } }",
            "message Route { message Leg { message Stop { string depot = 1; uint32 minute = 2; } } }",
            NOTHING,
        ),
        (
            "a nested message's field changes wire type",
            "message Route { message Leg { uint32 minutes = 1; } }",
            "message Route { message Leg { string minutes = 1; } }",
            &["#/Route/Leg/1: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "a nested message a field uses changes wire type",
            "message Parcel { Size size = 1; message Size { uint32 grams = 1; } }",
            "message Parcel { Size size = 1; message Size { float grams = 1; } }",
            &[
                "#/Parcel/1/Size/1: FIELD_SCALAR_KIND_CHANGED",
                "#/Parcel/1: FIELD_NAMED_TYPE_CHANGED",
                "#/Parcel/Size/1: FIELD_SCALAR_KIND_CHANGED",
            ],
        ),
    ]);
}

#[test]
fn proto2_required_fields() {
    check_all(&[
        (
            "a required field added",
            "syntax = \"proto2\"; message Account { optional string email = 1; }",
            "syntax = \"proto2\"; message Account { optional string email = 1; required string owner = 2; }",
            &["#/Account/2: REQUIRED_FIELD_ADDED"],
        ),
        (
            "a required field removed",
            "syntax = \"proto2\"; message Account { required string owner = 1; optional string email = 2; }",
            "syntax = \"proto2\"; message Account { optional string email = 2; }",
            &["#/Account/1: REQUIRED_FIELD_REMOVED"],
        ),
        (
            "an optional field added and another removed",
            "syntax = \"proto2\"; message Account { optional string email = 1; optional string phone = 2; }",
            "syntax = \"proto2\"; message Account { optional string email = 1; optional string locale = 3; }",
            NOTHING,
        ),
        (
            "a required string made optional",
            "syntax = \"proto2\"; message Account { required string owner = 1; }",
            "syntax = \"proto2\"; message Account { optional string owner = 1; }",
            NOTHING,
        ),
        (
            "a required number made optional",
            "syntax = \"proto2\"; message Account { required int64 balance_cents = 1; }",
            "syntax = \"proto2\"; message Account { optional int64 balance_cents = 1; }",
            &["#/Account/1: FIELD_NUMERIC_LABEL_CHANGED"],
        ),
        (
            "a proto2 file rewritten as proto3 with the same fields",
            "syntax = \"proto2\"; message Account { optional string email = 1; optional int64 balance_cents = 2; }",
            "message Account { string email = 1; int64 balance_cents = 2; }",
            NOTHING,
        ),
    ]);
}

#[test]
fn field_kinds_scalar_message_and_map() {
    check_all(&[
        (
            "a number becomes a message",
            "message Order { int64 total = 1; }",
            "message Order { Money total = 1; } message Money { int64 cents = 1; }",
            &["#/Order/1: FIELD_KIND_CHANGED"],
        ),
        (
            "a message becomes a string",
            "message Order { Money total = 1; } message Money { int64 cents = 1; }",
            "message Order { string total = 1; } message Money { int64 cents = 1; }",
            &["#/Order/1: FIELD_KIND_CHANGED"],
        ),
        (
            "a string becomes a map",
            "message Order { string tags = 3; }",
            "message Order { map<string, string> tags = 3; }",
            &["#/Order/3: FIELD_KIND_CHANGED"],
        ),
        (
            "a repeated message becomes a map",
            "message Order { repeated Line lines = 2; } message Line { string sku = 1; uint32 quantity = 2; }",
            "message Order { map<string, uint32> lines = 2; } message Line { string sku = 1; uint32 quantity = 2; }",
            &["#/Order/2: FIELD_KIND_CHANGED"],
        ),
        (
            "an enum becomes a message of the same name",
            "message Order { Status status = 1; enum Status { OPEN = 0; PAID = 1; } }",
            "message Order { Status status = 1; message Status { bool paid = 1; } }",
            &["#/Order/1: FIELD_KIND_CHANGED"],
        ),
        (
            "a number becomes an enum",
            "message Order { uint32 status = 4; }",
            "message Order { Status status = 4; } enum Status { OPEN = 0; PAID = 1; }",
            NOTHING,
        ),
        (
            "an enum becomes a number",
            "message Order { Status status = 4; } enum Status { OPEN = 0; PAID = 1; }",
            "message Order { int64 status = 4; }",
            NOTHING,
        ),
        (
            "an enum replaced by another enum",
            "message Order { Status status = 4; } enum Status { OPEN = 0; } enum Stage { DRAFT = 0; }",
            "message Order { Stage status = 4; } enum Status { OPEN = 0; } enum Stage { DRAFT = 0; }",
            NOTHING,
        ),
        (
            "an enum becomes a string",
            "message Order { Status status = 4; } enum Status { OPEN = 0; PAID = 1; }",
            "message Order { string status = 4; } enum Status { OPEN = 0; PAID = 1; }",
            &["#/Order/4: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "an imported Timestamp becomes an int64",
            "import \"google/protobuf/timestamp.proto\"; message Order { google.protobuf.Timestamp placed_at = 5; }",
            "message Order { int64 placed_at = 5; }",
            &["#/Order/5: FIELD_KIND_CHANGED"],
        ),
        (
            "an imported Timestamp becomes an imported Duration",
            "import \"google/protobuf/timestamp.proto\"; message Order { google.protobuf.Timestamp placed_at = 5; }",
            "import \"google/protobuf/duration.proto\"; message Order { google.protobuf.Duration placed_at = 5; }",
            &["#/Order/5: FIELD_NAMED_TYPE_CHANGED"],
        ),
        (
            "an import added, the Timestamp qualified from the root",
            "import \"google/protobuf/timestamp.proto\"; message Order { google.protobuf.Timestamp placed_at = 5; }",
            "import \"google/protobuf/timestamp.proto\"; import \"google/protobuf/duration.proto\"; message Order { .google.protobuf.Timestamp placed_at = 5; google.protobuf.Duration lead_time = 6; }",
            NOTHING,
        ),
        (
            "a wrapper type becomes its plain scalar",
            "import \"google/protobuf/wrappers.proto\"; message Order { google.protobuf.StringValue note = 7; }",
            "message Order { string note = 7; }",
            &["#/Order/7: FIELD_KIND_CHANGED"],
        ),
    ]);
}

/// Confluent's groups of scalars with one wire encoding: a change within a group keeps old
/// bytes readable, a change across groups does not. Enums are varints.
const WIRE_GROUPS: &[&[&str]] = &[
    &["int32", "int64", "uint32", "uint64", "bool", "Level"],
    &["sint32", "sint64"],
    &["string", "bytes"],
    &["fixed32", "sfixed32"],
    &["fixed64", "sfixed64"],
    &["float"],
    &["double"],
];

#[test]
fn every_scalar_change_is_judged_by_its_wire_group() {
    let gauge =
        |scalar: &str| format!("message Gauge {{ {scalar} value = 1; }} enum Level {{ LOW = 0; }}");
    let failed = &mut Vec::new();
    let mut pairs = 0;
    for (from_group, from) in WIRE_GROUPS.iter().enumerate() {
        for (to_group, to) in WIRE_GROUPS.iter().enumerate() {
            let breaks: &[&str] = if from_group == to_group {
                NOTHING
            } else {
                &["#/Gauge/1: FIELD_SCALAR_KIND_CHANGED"]
            };
            for (from, to) in from.iter().flat_map(|f| to.iter().map(move |t| (f, t))) {
                check(
                    failed,
                    &format!("{from} to {to}"),
                    &gauge(from),
                    &gauge(to),
                    breaks,
                );
                pairs += 1;
            }
        }
    }
    assert_eq!(pairs, 16 * 16);
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn labels_optional_repeated_and_none() {
    check_all(&[
        (
            "an explicitly optional number becomes repeated",
            "message Job { optional int64 retries = 3; }",
            "message Job { repeated int64 retries = 3; }",
            &["#/Job/3: FIELD_NUMERIC_LABEL_CHANGED"],
        ),
        (
            "repeated floats become one optional float",
            "message Job { repeated float weights = 4; }",
            "message Job { optional float weights = 4; }",
            &["#/Job/4: FIELD_NUMERIC_LABEL_CHANGED"],
        ),
        (
            "an optional string becomes repeated",
            "message Job { optional string tag = 5; }",
            "message Job { repeated string tag = 5; }",
            NOTHING,
        ),
        (
            "repeated bytes become optional",
            "message Job { repeated bytes blob = 6; }",
            "message Job { optional bytes blob = 6; }",
            NOTHING,
        ),
        (
            "an optional message becomes repeated",
            "message Job { optional Step step = 7; } message Step { string name = 1; }",
            "message Job { repeated Step step = 7; } message Step { string name = 1; }",
            NOTHING,
        ),
        (
            "a proto3 number without a label becomes repeated",
            "message Job { int32 retries = 3; }",
            "message Job { repeated int32 retries = 3; }",
            NOTHING,
        ),
        (
            "a proto3 number without a label becomes optional",
            "message Job { int32 retries = 3; }",
            "message Job { optional int32 retries = 3; }",
            NOTHING,
        ),
        (
            "an optional proto2 enum becomes repeated",
            "syntax = \"proto2\"; message Job { optional Priority priority = 1; } enum Priority { LOW = 0; HIGH = 1; }",
            "syntax = \"proto2\"; message Job { repeated Priority priority = 1; } enum Priority { LOW = 0; HIGH = 1; }",
            &["#/Job/1: FIELD_NUMERIC_LABEL_CHANGED"],
        ),
        (
            "repeated fixed32 becomes repeated sfixed32",
            "message Job { repeated fixed32 shard_ids = 8; }",
            "message Job { repeated sfixed32 shard_ids = 8; }",
            NOTHING,
        ),
    ]);
}

#[test]
fn oneofs() {
    check_all(&[
        (
            "a plain field moves alone into a new oneof",
            "message Payment { int64 amount_cents = 1; string card_token = 2; }",
            "message Payment { int64 amount_cents = 1; oneof method { string card_token = 2; } }",
            NOTHING,
        ),
        (
            "a plain field moves into a new oneof beside a new member",
            "message Payment { int64 amount_cents = 1; string card_token = 2; }",
            "message Payment { int64 amount_cents = 1; oneof method { string card_token = 2; string iban = 3; } }",
            NOTHING,
        ),
        (
            "two plain fields gathered into a new oneof",
            "message Payment { string card_token = 2; string iban = 3; }",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            &["#/Payment/method: MULTIPLE_FIELDS_MOVED_TO_ONEOF"],
        ),
        (
            "a plain field joins an existing oneof",
            "message Payment { string voucher = 4; oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { oneof method { string card_token = 2; string iban = 3; string voucher = 4; } }",
            &["#/Payment/method: FIELD_MOVED_TO_EXISTING_ONEOF"],
        ),
        (
            "a plain field joins an existing oneof that is renamed at the same time",
            "message Payment { string voucher = 4; oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { oneof instrument { string card_token = 2; string iban = 3; string voucher = 4; } }",
            &["#/Payment/instrument: FIELD_MOVED_TO_EXISTING_ONEOF"],
        ),
        (
            "a member added to a oneof",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { oneof method { string card_token = 2; string iban = 3; string voucher = 4; } }",
            NOTHING,
        ),
        (
            "a member removed from a oneof",
            "message Payment { oneof method { string card_token = 2; string iban = 3; string voucher = 4; } }",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            &["#/Payment/method/4: ONEOF_FIELD_REMOVED"],
        ),
        (
            "a oneof renamed, its members kept",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { oneof instrument { string card_token = 2; string iban = 3; } }",
            NOTHING,
        ),
        (
            "a oneof renamed and a member dropped",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { oneof instrument { string card_token = 2; } }",
            &["#/Payment/method/3: ONEOF_FIELD_REMOVED"],
        ),
        (
            "a whole oneof removed with its members",
            "message Payment { int64 amount_cents = 1; oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { int64 amount_cents = 1; }",
            NOTHING,
        ),
        (
            "a oneof dissolved: its members become plain fields",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { string card_token = 2; string iban = 3; }",
            NOTHING,
        ),
        (
            "a member moved out to the top level, the oneof kept",
            "message Payment { oneof method { string card_token = 2; string iban = 3; } }",
            "message Payment { oneof method { string card_token = 2; } string iban = 3; }",
            NOTHING,
        ),
        (
            "a member moved out to the top level with another wire type",
            "message Payment { oneof method { string card_token = 2; int64 account_no = 3; } }",
            "message Payment { oneof method { string card_token = 2; } string account_no = 3; }",
            &["#/Payment/3: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "a oneof dissolved, a member changing wire type",
            "message Payment { oneof method { string card_token = 2; int64 account_no = 3; } }",
            "message Payment { string card_token = 2; sint64 account_no = 3; }",
            &["#/Payment/3: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "a member moves from one oneof to another, both kept",
            "message Delivery { oneof address { string street = 1; string po_box = 2; } oneof contact { string phone = 3; } }",
            "message Delivery { oneof address { string street = 1; } oneof contact { string phone = 3; string po_box = 2; } }",
            &["#/Delivery/contact: FIELD_MOVED_TO_EXISTING_ONEOF"],
        ),
        (
            "two oneofs merged into a new one",
            "message Delivery { oneof address { string street = 1; } oneof contact { string phone = 3; } }",
            "message Delivery { oneof reach { string street = 1; string phone = 3; } }",
            &["#/Delivery/reach: FIELD_MOVED_TO_EXISTING_ONEOF"],
        ),
        (
            "a oneof removed, its member moved into another oneof",
            "message Delivery { oneof address { string street = 1; } oneof contact { string phone = 3; } }",
            "message Delivery { oneof contact { string phone = 3; string street = 1; } }",
            &["#/Delivery/contact: FIELD_MOVED_TO_EXISTING_ONEOF"],
        ),
        (
            "a member split off into a oneof of its own",
            "message Delivery { oneof address { string street = 1; string po_box = 2; } }",
            "message Delivery { oneof address { string street = 1; } oneof box { string po_box = 2; } }",
            NOTHING,
        ),
        (
            "a member changes wire type inside a renamed oneof",
            "message Payment { oneof method { string card_token = 2; int64 account_no = 3; } }",
            "message Payment { oneof instrument { string card_token = 2; double account_no = 3; } }",
            &["#/Payment/instrument/3: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "a field changes wire type as it moves into a new oneof",
            "message Payment { int64 amount_cents = 1; string card_token = 2; }",
            "message Payment { string card_token = 2; oneof amount { sint64 amount_cents = 1; } }",
            &["#/Payment/amount/1: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "two plain proto3 fields made optional, which is no oneof",
            "message Payment { int64 amount_cents = 1; string currency = 2; }",
            "message Payment { optional int64 amount_cents = 1; optional string currency = 2; }",
            NOTHING,
        ),
        (
            "a oneof member's message changes incompatibly",
            "message Payment { oneof method { Card card = 2; } } message Card { string token = 1; }",
            "message Payment { oneof method { Card card = 2; } } message Card { int64 token = 1; }",
            &[
                "#/Payment/method/2/Card/1: FIELD_SCALAR_KIND_CHANGED",
                "#/Payment/method/2: FIELD_NAMED_TYPE_CHANGED",
                "#/Card/1: FIELD_SCALAR_KIND_CHANGED",
            ],
        ),
    ]);
}

#[test]
fn enums() {
    check_all(&[
        (
            "an enum value added",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; }",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; BLOCKER = 2; }",
            NOTHING,
        ),
        (
            "an enum value removed",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; BLOCKER = 2; }",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; }",
            NOTHING,
        ),
        (
            "an enum value renamed",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; }",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; SEVERE = 1; }",
            NOTHING,
        ),
        (
            "an enum value renumbered",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; }",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 5; }",
            NOTHING,
        ),
        (
            "an enum nobody uses removed",
            "message Ticket { string title = 1; } enum Severity { MINOR = 0; }",
            "message Ticket { string title = 1; }",
            NOTHING,
        ),
        (
            "an enum nested in a message added",
            "message Ticket { string title = 1; }",
            "message Ticket { string title = 1; enum Queue { TRIAGE = 0; } }",
            NOTHING,
        ),
        (
            "an enum renamed while a field uses it",
            "message Ticket { Severity severity = 1; } enum Severity { MINOR = 0; MAJOR = 1; }",
            "message Ticket { Impact severity = 1; } enum Impact { MINOR = 0; MAJOR = 1; }",
            NOTHING,
        ),
    ]);
}

#[test]
fn maps() {
    check_all(&[
        (
            "a map's values widened within their wire group",
            "message Warehouse { map<string, int32> stock = 1; }",
            "message Warehouse { map<string, int64> stock = 1; }",
            NOTHING,
        ),
        (
            "a map's keys change wire type",
            "message Warehouse { map<string, uint32> stock = 1; }",
            "message Warehouse { map<int64, uint32> stock = 1; }",
            &["#/Warehouse/1: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "a map's values change wire type",
            "message Warehouse { map<string, uint32> stock = 1; }",
            "message Warehouse { map<string, float> stock = 1; }",
            &["#/Warehouse/1: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "a map's values become messages",
            "message Warehouse { map<string, uint32> stock = 1; }",
            "message Warehouse { map<string, Bin> stock = 1; } message Bin { uint32 capacity = 1; }",
            &["#/Warehouse/1: FIELD_KIND_CHANGED"],
        ),
        (
            "a map's value type replaced by another message",
            "message Warehouse { map<string, Bin> bins = 2; } message Bin { uint32 capacity = 1; } message Shelf { uint32 capacity = 1; }",
            "message Warehouse { map<string, Shelf> bins = 2; } message Bin { uint32 capacity = 1; } message Shelf { uint32 capacity = 1; }",
            &["#/Warehouse/2: FIELD_NAMED_TYPE_CHANGED"],
        ),
        (
            "a map's value type named short, then by its enclosing message",
            "message Warehouse { map<string, Bin> bins = 2; message Bin { uint32 capacity = 1; } }",
            "message Warehouse { map<string, Warehouse.Bin> bins = 2; message Bin { uint32 capacity = 1; } }",
            NOTHING,
        ),
        (
            "a map removed, and with it its entry type",
            "message Warehouse { string code = 1; map<string, uint32> stock = 2; }",
            "message Warehouse { string code = 1; }",
            NOTHING,
        ),
        (
            "a map's value message changes incompatibly",
            "message Warehouse { map<string, Bin> bins = 2; } message Bin { uint32 capacity = 1; }",
            "message Warehouse { map<string, Bin> bins = 2; } message Bin { string capacity = 1; }",
            &[
                "#/Warehouse/2/Bin/1: FIELD_SCALAR_KIND_CHANGED",
                "#/Warehouse/2: FIELD_NAMED_TYPE_CHANGED",
                "#/Bin/1: FIELD_SCALAR_KIND_CHANGED",
            ],
        ),
    ]);
}

#[test]
fn recursive_messages() {
    check_all(&[
        (
            "a recursive message gains a field",
            "message Folder { string name = 1; repeated Folder children = 2; }",
            "message Folder { string name = 1; repeated Folder children = 2; uint64 size_bytes = 3; }",
            NOTHING,
        ),
        (
            "a recursive message's field changes wire type",
            "message Folder { string name = 1; repeated Folder children = 2; }",
            "message Folder { int32 name = 1; repeated Folder children = 2; }",
            &["#/Folder/1: FIELD_SCALAR_KIND_CHANGED"],
        ),
        (
            "one of two messages that refer to each other changes wire type",
            "message Org { repeated Team teams = 1; } message Team { string name = 1; Org parent = 2; }",
            "message Org { repeated Team teams = 1; } message Team { fixed64 name = 1; Org parent = 2; }",
            &[
                "#/Org/1/Team/1: FIELD_SCALAR_KIND_CHANGED",
                "#/Org/1: FIELD_NAMED_TYPE_CHANGED",
                "#/Team/1: FIELD_SCALAR_KIND_CHANGED",
            ],
        ),
    ]);
}

#[test]
fn message_indexes_are_written_as_confluent_writes_them() {
    for (indexes, bytes) in [
        (vec![0], vec![0u8]),
        (vec![1], vec![2, 2]),
        (vec![1, 0], vec![4, 2, 0]),
        (vec![0, 2, 64], vec![6, 0, 4, 128, 1]),
    ] {
        let mut written = Vec::new();
        write_message_indexes(&indexes, &mut written);
        assert_eq!(written, bytes, "{indexes:?}");
        let mut payload = written.clone();
        payload.push(42);
        assert_eq!(
            read_message_indexes(&payload).unwrap(),
            (indexes, &[42u8][..])
        );
    }
    assert!(read_message_indexes(&[0x80]).is_err(), "a truncated varint");
    assert!(
        read_message_indexes(&[200, 1]).is_err(),
        "100 indexes, past the limit"
    );
}

const ADDRESS: &str = "syntax = \"proto3\";\npackage shop;\nmessage Address { string zip = 1; }";
const ORDER: &str = "syntax = \"proto3\";\npackage shop;\nimport \"shop/address.proto\";\nmessage Order {\n  string id = 1;\n  int64 total_cents = 2;\n  shop.Address ship_to = 3;\n  repeated string items = 4;\n}";

#[test]
fn imports_resolve_through_references_and_the_codec_frames_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Arc::new(Registry::open(&log).unwrap());
    let protobuf = SchemaType::Protobuf;
    let address = registry.parse(protobuf, ADDRESS, &[]).unwrap();
    registry
        .register("shop/address.proto", protobuf, address)
        .unwrap();
    let unresolved = registry
        .parse(protobuf, ORDER, &[])
        .unwrap_err()
        .to_string();
    assert!(unresolved.contains("shop/address.proto"), "{unresolved}");
    let reference = Reference {
        name: "shop/address.proto".into(),
        subject: "shop/address.proto".into(),
        version: 1,
    };
    let order = registry.parse(protobuf, ORDER, &[reference]).unwrap();
    let registered = registry.register("orders-value", protobuf, order).unwrap();

    let codec = SchemaCodec::new(registry.clone(), "http://127.0.0.1:8081/");
    let value =
        json!({"id": "o-1", "totalCents": "4200", "shipTo": {"zip": "75001"}, "items": ["a", "b"]});
    let (id, bytes) = codec.serialize("orders-value", &value).unwrap();
    assert_eq!(id, registered.id);
    let framed = unframe(&bytes).unwrap();
    assert_eq!(framed.id, id);
    assert_eq!(
        framed.payload[0], 0,
        "message index [0] is the single byte 0"
    );
    assert_eq!(codec.deserialize(&bytes).unwrap(), (id, value.clone()));

    let event = codec
        .event(
            Event::new("/orders", "order.placed"),
            "orders-value",
            &value,
        )
        .unwrap();
    assert_eq!(
        event.datacontenttype.as_deref(),
        Some("application/protobuf")
    );
    assert_eq!(
        event.dataschema.as_deref(),
        Some(format!("http://127.0.0.1:8081/schemas/ids/{id}").as_str())
    );
    assert_eq!(codec.event_value(&event).unwrap(), value);

    let refused = codec
        .serialize("orders-value", &json!({"id": 7}))
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("value does not match its schema"),
        "{refused}"
    );
    assert!(
        codec.deserialize(&[1, 0, 0, 0, 1]).is_err(),
        "unknown magic byte"
    );
}
