//! Compatibility levels and the check a registry runs before it accepts a new version:
//! which earlier versions to compare with, in which direction, per Confluent's definitions.
//!
//! - `BACKWARD`: the new schema (reader) reads data written with the latest version.
//! - `FORWARD`: the latest version (reader) reads data written with the new schema.
//! - `FULL`: both. `*_TRANSITIVE`: against every live version, not only the latest.
//! - `NONE`: no check.
//!
//! Not here: the reader/writer diff itself (`compare.rs`).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::budget::{Budget, ComparisonError};
use crate::compare::json_reader_differences;
use crate::difference::Difference;
use crate::difference::DifferenceKind;
use crate::schema::{Form, Schema};
use crate::{avro, protobuf};

/// A subject's (or the registry's default) compatibility rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityLevel {
    /// Any change is accepted.
    None,
    /// New readers read the latest version's data (Confluent's default, and Keel's).
    #[default]
    Backward,
    /// New readers read every earlier version's data.
    BackwardTransitive,
    /// The latest version's readers read the new version's data.
    Forward,
    /// Every earlier version's readers read the new version's data.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every earlier version.
    FullTransitive,
}

/// Which way data flows in one failed comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The new schema reads data of an earlier version.
    Backward,
    /// An earlier version reads data of the new schema.
    Forward,
}

/// One reason a new schema is refused: the earlier version it clashes with, the direction,
/// and the difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The earlier version compared with.
    pub version: u32,
    /// Which side was the reader.
    pub direction: Direction,
    /// What is wrong, with its path.
    pub difference: Difference,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.direction {
            Direction::Backward => "the new schema cannot read data of version",
            Direction::Forward => "readers of version",
        };
        match self.direction {
            Direction::Backward => write!(f, "{how} {}: {}", self.version, self.difference),
            Direction::Forward => write!(
                f,
                "{how} {} cannot read data of the new schema: {}",
                self.version, self.difference
            ),
        }
    }
}

/// A compatibility level name that is none of Confluent's seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown compatibility level {0:?}: expected NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE"
)]
pub struct UnknownLevel(pub String);

impl CompatibilityLevel {
    /// Every level, in Confluent's order.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// The name on the wire (`BACKWARD_TRANSITIVE`).
    pub fn as_str(&self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(&self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn directions(&self) -> &'static [Direction] {
        match self {
            CompatibilityLevel::None => &[],
            CompatibilityLevel::Backward | CompatibilityLevel::BackwardTransitive => {
                &[Direction::Backward]
            }
            CompatibilityLevel::Forward | CompatibilityLevel::ForwardTransitive => {
                &[Direction::Forward]
            }
            CompatibilityLevel::Full | CompatibilityLevel::FullTransitive => {
                &[Direction::Backward, Direction::Forward]
            }
        }
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = UnknownLevel;

    fn from_str(text: &str) -> Result<CompatibilityLevel, UnknownLevel> {
        CompatibilityLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownLevel(text.to_string()))
    }
}

/// Something a compatibility check compares: a JSON Schema document, or a [`Schema`] of any
/// type (two versions of different types never read each other).
pub trait Comparable {
    /// The differences that stop `reader` from reading what `writer` allows, spending from
    /// `budget` (incomplete once it is exhausted; the caller settles it).
    fn reader_differences(writer: &Self, reader: &Self, budget: &mut Budget) -> Vec<Difference>;
}

impl Comparable for Value {
    fn reader_differences(writer: &Value, reader: &Value, budget: &mut Budget) -> Vec<Difference> {
        json_reader_differences(writer, reader, budget)
    }
}

impl Comparable for Schema {
    fn reader_differences(
        writer: &Schema,
        reader: &Schema,
        budget: &mut Budget,
    ) -> Vec<Difference> {
        match (writer.form(), reader.form()) {
            (Form::Json { bundled: w, .. }, Form::Json { bundled: r, .. }) => {
                json_reader_differences(w, r, budget)
            }
            (Form::Avro { schema: w, .. }, Form::Avro { schema: r, .. }) => {
                avro::reader_differences(w, r, budget)
            }
            (Form::Protobuf { pool: w, .. }, Form::Protobuf { pool: r, .. }) => {
                protobuf::reader_differences(w, r, budget)
            }
            _ => vec![Difference {
                path: "#".into(),
                kind: DifferenceKind::SchemaTypeChanged,
                detail: format!(
                    "the writer's schema is {}, the reader's {}",
                    writer.schema_type(),
                    reader.schema_type()
                ),
            }],
        }
    }
}

/// Checks `new` against the earlier live versions of a subject (`(version, schema)`, oldest
/// first) under `level`. `Ok` and empty when the new schema may be registered; `Err` when the
/// check spent the registry's whole [`Budget`] before reaching a verdict.
pub fn check_compatibility<S: Comparable>(
    level: CompatibilityLevel,
    new: &S,
    earlier: &[(u32, &S)],
) -> Result<Vec<Incompatibility>, ComparisonError> {
    check_compatibility_within(level, new, earlier, Budget::default())
}

/// [`check_compatibility`] spending from `budget`.
pub fn check_compatibility_within<S: Comparable>(
    level: CompatibilityLevel,
    new: &S,
    earlier: &[(u32, &S)],
    mut budget: Budget,
) -> Result<Vec<Incompatibility>, ComparisonError> {
    let compared = if level.transitive() {
        earlier
    } else {
        &earlier[earlier.len().saturating_sub(1)..]
    };
    let mut found = Vec::new();
    for (version, old) in compared.iter().rev() {
        for direction in level.directions() {
            let differences = match direction {
                Direction::Backward => S::reader_differences(old, new, &mut budget),
                Direction::Forward => S::reader_differences(new, old, &mut budget),
            };
            found.extend(differences.into_iter().map(|difference| Incompatibility {
                version: *version,
                direction: *direction,
                difference,
            }));
        }
    }
    budget.settle(found)
}

/// Both directions between two schemas, for `keel schema diff`: what stops the new one from
/// reading old data, and what stops old readers from reading new data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Reasons the new schema cannot read the old one's data (breaks `BACKWARD`).
    pub backward: Vec<Difference>,
    /// Reasons the old schema cannot read the new one's data (breaks `FORWARD`).
    pub forward: Vec<Difference>,
}

/// Compares an old and a new schema in both directions, within one [`Budget`].
pub fn diff<S: Comparable>(old: &S, new: &S) -> Result<SchemaDiff, ComparisonError> {
    let mut budget = Budget::default();
    let found = SchemaDiff {
        backward: S::reader_differences(old, new, &mut budget),
        forward: S::reader_differences(new, old, &mut budget),
    };
    budget.settle(found)
}
