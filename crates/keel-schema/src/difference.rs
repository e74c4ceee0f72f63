//! One incompatibility between a writer's schema and a reader's schema: where it is (a JSON
//! path into the schema), what kind of change it is, and the change in words.
//!
//! Not here: finding differences (`compare.rs`) or deciding which pairs to compare for a
//! compatibility level (`compatibility.rs`).

use std::fmt;

/// What kind of change makes a reader unable to read everything a writer may write.
///
/// The names ([`DifferenceKind::as_str`]) follow Confluent Schema Registry's JSON Schema
/// difference types, Avro Java's `SchemaIncompatibilityType`s and Confluent's Protobuf
/// `Difference.Type`s where one exists, so
/// operators who know those messages recognise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DifferenceKind {
    /// The reader accepts fewer JSON types than the writer may produce (`number` → `integer`,
    /// `object` → `array`, a type added where there was none).
    TypeNarrowed,
    /// The reader's `enum`/`const` lacks a value the writer may produce, or was added.
    EnumNarrowed,
    /// A bound got tighter: `minLength`, `maxLength`, `minimum`, `maximum`, `minItems`,
    /// `maxItems`, `minProperties`, `maxProperties` (and their exclusive forms).
    RangeNarrowed,
    /// The reader's `pattern` differs from the writer's (regular languages are not compared).
    PatternChanged,
    /// The reader's `multipleOf` does not divide the writer's.
    MultipleOfChanged,
    /// The reader requires `uniqueItems` and the writer did not.
    UniqueItemsAdded,
    /// The reader requires a declared property the writer did not require.
    RequiredPropertyAdded,
    /// The reader declares a property the writer's open content model may already carry with
    /// any value.
    PropertyAddedToOpenContentModel,
    /// The reader declares a property whose schema does not accept what the writer's
    /// `additionalProperties` or `patternProperties` allowed under that name.
    PropertyAddedNotCoveredByPartiallyOpenContentModel,
    /// The reader no longer declares a property, and its `additionalProperties` or
    /// `patternProperties` do not accept the values the writer declared for it.
    PropertyRemovedNotCoveredByPartiallyOpenContentModel,
    /// An array position (`prefixItems`) was added whose schema does not accept what the
    /// writer's `items` allowed there.
    ItemAddedNotCoveredByPartiallyOpenContentModel,
    /// An array position was removed and the reader's `items` does not accept what the writer
    /// declared there.
    ItemRemovedNotCoveredByPartiallyOpenContentModel,
    /// The reader's schema here is `false` (accepts nothing) where the writer allows values:
    /// a content model closed (`additionalProperties: false`, `items: false`).
    ContentModelClosed,
    /// No alternative of the reader's `oneOf`/`anyOf` accepts the writer's schema.
    CombinedTypeNarrowed,
    /// The reader's `not` excludes values the writer allows.
    NotNarrowed,
    /// The reader added a `dependentRequired`/`dependentSchemas` rule the writer did not have.
    DependencyAdded,
    /// The reader changed `if`/`then`/`else`, which are not compared structurally.
    ConditionalChanged,
    /// The reader changed `contains`/`minContains`/`maxContains` in a narrowing way.
    ContainsNarrowed,
    /// The two versions are of different schema types (`JSON` and `AVRO`).
    SchemaTypeChanged,
    /// Avro: a named type's name changed and no reader alias names the writer's.
    NameMismatch,
    /// Avro: a fixed type's size changed.
    FixedSizeMismatch,
    /// Avro: the reader's enum lacks writer symbols and has no default.
    MissingEnumSymbols,
    /// Avro: a reader field the writer does not have, without a default.
    ReaderFieldMissingDefaultValue,
    /// Avro: the reader's type cannot read the writer's (no promotion applies).
    TypeMismatch,
    /// Avro: no branch of the reader's union reads the writer's type.
    MissingUnionBranch,
    /// Protobuf: the file's package changed.
    PackageChanged,
    /// Protobuf: a numeric field's explicit label changed (`optional` ↔ `repeated`).
    FieldNumericLabelChanged,
    /// Protobuf: a message of the writer is gone.
    MessageRemoved,
    /// Protobuf: a `required` field was added.
    RequiredFieldAdded,
    /// Protobuf: a `required` field was removed.
    RequiredFieldRemoved,
    /// Protobuf: a field changed between scalar, message and map.
    FieldKindChanged,
    /// Protobuf: a scalar changed to one of another wire group.
    FieldScalarKindChanged,
    /// Protobuf: a message-typed field names another message, or its message changed
    /// incompatibly.
    FieldNamedTypeChanged,
    /// Protobuf: a field left a oneof that is still there.
    OneofFieldRemoved,
    /// Protobuf: more than one existing field moved into one oneof.
    MultipleFieldsMovedToOneof,
    /// Protobuf: an existing field moved into a oneof that already had fields.
    FieldMovedToExistingOneof,
}

impl DifferenceKind {
    /// The stable upper-case name, as Confluent spells its difference types.
    pub fn as_str(&self) -> &'static str {
        match self {
            DifferenceKind::TypeNarrowed => "TYPE_NARROWED",
            DifferenceKind::EnumNarrowed => "ENUM_ARRAY_NARROWED",
            DifferenceKind::RangeNarrowed => "RANGE_NARROWED",
            DifferenceKind::PatternChanged => "PATTERN_CHANGED",
            DifferenceKind::MultipleOfChanged => "MULTIPLE_OF_CHANGED",
            DifferenceKind::UniqueItemsAdded => "UNIQUE_ITEMS_ADDED",
            DifferenceKind::RequiredPropertyAdded => "REQUIRED_PROPERTY_ADDED",
            DifferenceKind::PropertyAddedToOpenContentModel => {
                "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
            }
            DifferenceKind::PropertyAddedNotCoveredByPartiallyOpenContentModel => {
                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            }
            DifferenceKind::PropertyRemovedNotCoveredByPartiallyOpenContentModel => {
                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            }
            DifferenceKind::ItemAddedNotCoveredByPartiallyOpenContentModel => {
                "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            }
            DifferenceKind::ItemRemovedNotCoveredByPartiallyOpenContentModel => {
                "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            }
            DifferenceKind::ContentModelClosed => "CONTENT_MODEL_CLOSED",
            DifferenceKind::CombinedTypeNarrowed => "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
            DifferenceKind::NotNarrowed => "NOT_TYPE_NARROWED",
            DifferenceKind::DependencyAdded => "DEPENDENCY_ADDED",
            DifferenceKind::ConditionalChanged => "CONDITIONAL_CHANGED",
            DifferenceKind::ContainsNarrowed => "CONTAINS_NARROWED",
            DifferenceKind::SchemaTypeChanged => "SCHEMA_TYPE_CHANGED",
            DifferenceKind::NameMismatch => "NAME_MISMATCH",
            DifferenceKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            DifferenceKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            DifferenceKind::ReaderFieldMissingDefaultValue => "READER_FIELD_MISSING_DEFAULT_VALUE",
            DifferenceKind::TypeMismatch => "TYPE_MISMATCH",
            DifferenceKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
            DifferenceKind::PackageChanged => "PACKAGE_CHANGED",
            DifferenceKind::FieldNumericLabelChanged => "FIELD_NUMERIC_LABEL_CHANGED",
            DifferenceKind::MessageRemoved => "MESSAGE_REMOVED",
            DifferenceKind::RequiredFieldAdded => "REQUIRED_FIELD_ADDED",
            DifferenceKind::RequiredFieldRemoved => "REQUIRED_FIELD_REMOVED",
            DifferenceKind::FieldKindChanged => "FIELD_KIND_CHANGED",
            DifferenceKind::FieldScalarKindChanged => "FIELD_SCALAR_KIND_CHANGED",
            DifferenceKind::FieldNamedTypeChanged => "FIELD_NAMED_TYPE_CHANGED",
            DifferenceKind::OneofFieldRemoved => "ONEOF_FIELD_REMOVED",
            DifferenceKind::MultipleFieldsMovedToOneof => "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            DifferenceKind::FieldMovedToExistingOneof => "FIELD_MOVED_TO_EXISTING_ONEOF",
        }
    }
}

impl fmt::Display for DifferenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a reader cannot read all data a writer may produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where in the schema, as a JSON path from the root (`#/properties/total`). Positions in
    /// `oneOf`/`anyOf`/`allOf` are those of the schema that holds the combiner.
    pub path: String,
    /// The kind of change.
    pub kind: DifferenceKind,
    /// The change in words, naming the writer's and the reader's side.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.kind, self.detail)
    }
}

impl Difference {
    /// The same difference with its path made relative to `base` (a prefix of it), for a
    /// comparison remembered at one place and reused at another.
    pub(crate) fn relative_to(&self, base: &str) -> Difference {
        Difference {
            path: self
                .path
                .strip_prefix(base)
                .unwrap_or(&self.path)
                .to_string(),
            ..self.clone()
        }
    }

    /// A difference remembered by [`Difference::relative_to`], placed under `base`.
    pub(crate) fn under(&self, base: &str) -> Difference {
        Difference {
            path: format!("{base}{}", self.path),
            ..self.clone()
        }
    }
}

/// Adds a difference at `path` to `out`.
pub(crate) fn push(out: &mut Vec<Difference>, path: &str, kind: DifferenceKind, detail: String) {
    out.push(Difference {
        path: path.to_string(),
        kind,
        detail,
    });
}
