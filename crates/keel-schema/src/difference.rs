//! One incompatibility between a writer's schema and a reader's schema: where it is (a JSON
//! path into the schema), what kind of change it is, and the change in words.
//!
//! Not here: finding differences (`compare.rs`) or deciding which pairs to compare for a
//! compatibility level (`compatibility.rs`).

use std::fmt;

/// What kind of change makes a reader unable to read everything a writer may write.
///
/// The names ([`DifferenceKind::as_str`]) follow Confluent Schema Registry's JSON Schema
/// difference types where one exists, so operators who know those messages recognise them.
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
