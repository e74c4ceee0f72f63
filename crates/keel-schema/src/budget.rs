//! The budget of one compatibility check: how many schema pairs it may visit, how deep it may
//! nest and how long it may run. Every format's comparison spends from one [`Budget`], so a
//! crafted schema (an `anyOf`/`$ref` chain that unfolds into 2^N pairs, a deeply recursive
//! Avro record) ends in a [`ComparisonError`] instead of holding a thread.
//!
//! Not here: the comparisons themselves (`compare.rs`, `avro.rs`) or the limits' values
//! (`limits.rs`).

use std::time::{Duration, Instant};

use crate::limits::{COMPARISON_DEPTH_MAX, COMPARISON_STEPS_MAX, COMPARISON_TIME_MAX_MS};

/// Why a compatibility check was abandoned before it reached a verdict. The registry refuses
/// the schema with this message (Confluent's 42201, invalid schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComparisonError {
    /// The check visited more schema pairs than its budget allows.
    #[error(
        "the compatibility check visited more than {0} schema pairs; simplify the schema (fewer anyOf/oneOf alternatives or $ref chains)"
    )]
    TooManySteps(u64),
    /// The check nested deeper than its budget allows (through references, the document's
    /// own depth is checked when it is parsed).
    #[error("the compatibility check nested deeper than {0} levels through references")]
    TooDeep(usize),
    /// The check ran longer than its time budget.
    #[error("the compatibility check ran longer than {0} ms")]
    TooSlow(u64),
}

/// The limits of one compatibility check, configurable per registry (`keel serve
/// --registry-check-steps-max`, `--registry-check-time-ms`); the defaults are
/// [`COMPARISON_STEPS_MAX`] and [`COMPARISON_TIME_MAX_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Most schema pairs one check may visit.
    pub steps_max: u64,
    /// Longest one check may run, in milliseconds.
    pub time_max_ms: u64,
}

impl Default for CheckLimits {
    fn default() -> CheckLimits {
        CheckLimits {
            steps_max: COMPARISON_STEPS_MAX,
            time_max_ms: COMPARISON_TIME_MAX_MS,
        }
    }
}

impl CheckLimits {
    /// A fresh budget of these limits, its clock starting now.
    pub fn budget(&self) -> Budget {
        Budget::new(self.steps_max, Duration::from_millis(self.time_max_ms))
    }
}

/// What one check may still spend. The first limit crossed is kept and every later step
/// refuses, so a comparison unwinds at once.
#[derive(Debug)]
pub struct Budget {
    steps_left: u64,
    steps_max: u64,
    deadline: Instant,
    time_max: Duration,
    exhausted: Option<ComparisonError>,
}

impl Default for Budget {
    /// The registry's limits: [`COMPARISON_STEPS_MAX`] pairs within [`COMPARISON_TIME_MAX_MS`].
    fn default() -> Budget {
        CheckLimits::default().budget()
    }
}

impl Budget {
    /// A budget of `steps_max` visited pairs within `time_max` from now.
    pub fn new(steps_max: u64, time_max: Duration) -> Budget {
        Budget {
            steps_left: steps_max,
            steps_max,
            deadline: Instant::now() + time_max,
            time_max,
            exhausted: None,
        }
    }

    /// Spends one step at nesting `depth`; false once any limit is crossed.
    pub(crate) fn step(&mut self, depth: usize) -> bool {
        if self.exhausted.is_some() {
            return false;
        }
        if depth >= COMPARISON_DEPTH_MAX {
            self.exhausted = Some(ComparisonError::TooDeep(COMPARISON_DEPTH_MAX));
            return false;
        }
        if self.steps_left == 0 {
            self.exhausted = Some(ComparisonError::TooManySteps(self.steps_max));
            return false;
        }
        self.steps_left -= 1;
        // Reading the clock costs more than a step; every 1024th step is often enough to stop
        // within a few milliseconds of the deadline.
        if self.steps_left.is_multiple_of(1024) && Instant::now() > self.deadline {
            let millis = u64::try_from(self.time_max.as_millis()).unwrap_or(u64::MAX);
            self.exhausted = Some(ComparisonError::TooSlow(millis));
            return false;
        }
        true
    }

    /// True once a limit was crossed: what was found since is incomplete.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.exhausted.is_some()
    }

    /// `Ok(value)` when no limit was crossed while computing it.
    pub(crate) fn settle<T>(&self, value: T) -> Result<T, ComparisonError> {
        match &self.exhausted {
            Some(error) => Err(error.clone()),
            None => Ok(value),
        }
    }
}
