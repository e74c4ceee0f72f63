//! The registry: subjects of immutable, numbered versions, global schema ids, compatibility
//! and mode configuration, all kept in the compacted topic `_keel_schemas` of a `keel-log`
//! [`Log`] and replayed into memory on open.
//!
//! Semantics follow Confluent Schema Registry:
//!
//! - A subject (by default one per event type, named by the CloudEvents `type`) holds versions
//!   1, 2, 3, ... that never change. Registering a schema already live in the subject returns
//!   its version instead of adding one.
//! - A schema id is global: the same canonical schema gets the same id in every subject.
//! - Before a new version is added, it is checked against the subject's live versions under
//!   the subject's compatibility level, else the global one, else `BACKWARD`.
//! - Deletes are soft first (the version stays readable by id and with `deleted=true`), then
//!   permanent (a tombstone). New versions keep counting after deleted ones.
//!
//! Every change is appended to the topic, durably (`fsync = always`), *before* memory changes,
//! under one lock: an acknowledged registration survives `kill -9`, and a failed append
//! changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use keel_log::{CleanupPolicy, FsyncPolicy, Log, NewRecord, Partition, TopicConfig};

use crate::compatibility::{CompatibilityLevel, Incompatibility, check_compatibility};
use crate::error::RegistryError;
use crate::limits::{
    REPLAY_CHUNK_BYTES, SUBJECT_BYTES_MAX, SUBJECTS_MAX, VERSIONS_PER_SUBJECT_MAX,
};
use crate::schema::{Schema, SchemaType};
use crate::store::{ConfigValue, ModeValue, RecordKey, SCHEMAS_TOPIC, SchemaValue, encode_value};
use crate::validation::PayloadValidator;

/// Whether a subject (or the registry) accepts new versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Reads and registrations (the default).
    #[default]
    ReadWrite,
    /// Reads only; registrations are refused.
    ReadOnly,
}

impl Mode {
    /// The name on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
        }
    }

    /// Parses a wire name; `None` for modes Keel does not support (`IMPORT`, typos).
    pub fn parse(text: &str) -> Option<Mode> {
        match text.to_ascii_uppercase().as_str() {
            "READWRITE" => Some(Mode::ReadWrite),
            "READONLY" => Some(Mode::ReadOnly),
            _ => None,
        }
    }
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The highest live version (`latest`, or `-1` on the wire).
    Latest,
    /// A version number.
    Number(u32),
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version number, from 1.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// The schema type.
    pub schema_type: SchemaType,
    /// The schema.
    pub schema: Schema,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A schema registry over a log. Cheap to share behind an `Arc`; every method is synchronous
/// and may wait for an `fdatasync`, so async callers run it on a blocking thread.
#[derive(Debug)]
pub struct Registry {
    partition: Arc<Partition>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    schemas: BTreeMap<u32, (SchemaType, Schema)>,
    ids: HashMap<String, u32>,
    subjects: BTreeMap<String, Vec<VersionEntry>>,
    levels: HashMap<Option<String>, CompatibilityLevel>,
    modes: HashMap<Option<String>, Mode>,
    validators: HashMap<u32, Arc<PayloadValidator>>,
    skipped_records: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VersionEntry {
    version: u32,
    id: u32,
    deleted: bool,
}

impl Registry {
    /// Opens the registry of `log`, creating its topic on first use and replaying it.
    pub fn open(log: &Log) -> Result<Registry, RegistryError> {
        let topic = match log.topic(SCHEMAS_TOPIC) {
            Some(topic) => topic,
            None => {
                let config = TopicConfig::new(1)
                    .with_fsync(FsyncPolicy::Always)
                    .with_cleanup(CleanupPolicy::Compact);
                log.create_topic(SCHEMAS_TOPIC, config)
                    .map_err(|e| RegistryError::Storage(e.to_string()))?
            }
        };
        let partition = topic.partitions()[0].clone();
        let mut state = State::default();
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            let records = partition
                .read_records(offset, REPLAY_CHUNK_BYTES)
                .map_err(|e| RegistryError::Storage(e.to_string()))?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for record in records {
                state.apply(record.key.as_deref(), record.value.as_deref());
            }
        }
        Ok(Registry {
            partition,
            state: Mutex::new(state),
        })
    }

    /// Records of the schemas topic that replay could not read (written by something else);
    /// they are skipped, never fatal.
    pub fn skipped_records(&self) -> u64 {
        self.lock().skipped_records
    }

    /// Registers `schema` under `subject`: the existing version when the schema is already
    /// live there, else a new version once it passes the compatibility check.
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: Schema,
    ) -> Result<SubjectVersion, RegistryError> {
        validate_subject(subject)?;
        let mut state = self.lock();
        if state.mode(subject) == Mode::ReadOnly {
            return Err(RegistryError::ReadOnly(subject.to_string()));
        }
        if let Some(found) = state.live_with(subject, &schema) {
            return Ok(found);
        }
        let incompatibilities = state.incompatibilities(subject, &schema, None);
        if !incompatibilities.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_string(),
                level: state.level(subject),
                incompatibilities,
            });
        }
        let versions = state.subjects.get(subject);
        if versions.is_none() && state.subjects.len() >= SUBJECTS_MAX {
            return Err(RegistryError::LimitReached(format!(
                "{SUBJECTS_MAX} subjects"
            )));
        }
        if versions.is_some_and(|v| v.len() >= VERSIONS_PER_SUBJECT_MAX) {
            return Err(RegistryError::LimitReached(format!(
                "{VERSIONS_PER_SUBJECT_MAX} versions in subject {subject:?}"
            )));
        }
        let version = versions
            .and_then(|v| v.last())
            .map_or(1, |last| last.version + 1);
        let id = match state.ids.get(schema.canonical()) {
            Some(id) => *id,
            None => state.schemas.keys().next_back().map_or(1, |max| max + 1),
        };
        let value = SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: schema_type.as_str().to_string(),
            schema: schema.canonical().to_string(),
            deleted: false,
        };
        self.write(
            &mut state,
            RecordKey::schema(subject, version),
            Some(encode_value(&value)),
        )?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            id,
            schema_type,
            schema,
            deleted: false,
        })
    }

    /// The live version of `subject` holding `schema` (Confluent's "check if registered").
    pub fn lookup(&self, subject: &str, schema: &Schema) -> Result<SubjectVersion, RegistryError> {
        let state = self.lock();
        if !state.has_live(subject) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        state.live_with(subject, schema).ok_or_else(|| {
            RegistryError::SchemaNotFound(format!("not registered under subject {subject:?}"))
        })
    }

    /// Checks `schema` against `subject` without registering it: against the version
    /// selected under the subject's level, or against every live version the level asks for
    /// when `version` is `None`. An unknown subject accepts anything.
    pub fn check(
        &self,
        subject: &str,
        version: Option<VersionSelector>,
        schema: &Schema,
    ) -> Result<Vec<Incompatibility>, RegistryError> {
        let state = self.lock();
        let only = match version {
            None => None,
            Some(selector) => Some(state.version(subject, selector, false)?.version),
        };
        Ok(state.incompatibilities(subject, schema, only))
    }

    /// Subject names, sorted; soft-deleted ones too when `deleted`.
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        let state = self.lock();
        state
            .subjects
            .iter()
            .filter(|(_, versions)| versions.iter().any(|v| deleted || !v.deleted))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Version numbers of a subject, ascending.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let state = self.lock();
        let versions: Vec<u32> = state
            .subjects
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|v| deleted || !v.deleted)
                    .map(|v| v.version)
                    .collect()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(versions)
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        self.lock().version(subject, selector, deleted)
    }

    /// The schema with a global id (soft-deleted versions keep their schema readable).
    pub fn schema_by_id(&self, id: u32) -> Result<(SchemaType, Schema), RegistryError> {
        self.lock()
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("no schema with id {id}")))
    }

    /// Every (subject, version) using a schema id.
    pub fn usages_of(&self, id: u32, deleted: bool) -> Vec<(String, u32)> {
        let state = self.lock();
        state
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |v| v.id == id && (deleted || !v.deleted))
                    .map(move |v| (subject.clone(), v.version))
            })
            .collect()
    }

    /// Deletes a subject: soft (versions marked deleted) or, after that, permanently.
    /// Returns the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let mut state = self.lock();
        let Some(versions) = state.subjects.get(subject).cloned() else {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        };
        let live: Vec<VersionEntry> = versions.iter().filter(|v| !v.deleted).copied().collect();
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
            }
            let records = versions
                .iter()
                .map(|v| (RecordKey::schema(subject, v.version), None))
                .chain([
                    (RecordKey::config(Some(subject)), None),
                    (RecordKey::mode(Some(subject)), None),
                ])
                .collect();
            self.write_all(&mut state, records)?;
            return Ok(versions.iter().map(|v| v.version).collect());
        }
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        let records = live
            .iter()
            .map(|v| state.deleted_record(subject, v))
            .collect();
        self.write_all(&mut state, records)?;
        Ok(live.iter().map(|v| v.version).collect())
    }

    /// Deletes one version: soft, or permanently after a soft delete.
    pub fn delete_version(
        &self,
        subject: &str,
        selector: VersionSelector,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let mut state = self.lock();
        // A numbered version is found even when soft-deleted, to say so; `latest` is the
        // newest live version for a soft delete.
        let include_deleted = permanent || matches!(selector, VersionSelector::Number(_));
        let found = state.version(subject, selector, include_deleted)?;
        let entry = VersionEntry {
            version: found.version,
            id: found.id,
            deleted: found.deleted,
        };
        let record = match (permanent, entry.deleted) {
            (true, true) => (RecordKey::schema(subject, entry.version), None),
            (true, false) => {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_string(),
                    version: entry.version,
                });
            }
            (false, true) => {
                return Err(RegistryError::VersionSoftDeleted {
                    subject: subject.to_string(),
                    version: entry.version,
                });
            }
            (false, false) => state.deleted_record(subject, &entry),
        };
        self.write_all(&mut state, vec![record])?;
        Ok(entry.version)
    }

    /// The compatibility level set for a subject (`Some`) or globally (`None`), if any.
    pub fn level(&self, subject: Option<&str>) -> Option<CompatibilityLevel> {
        self.lock()
            .levels
            .get(&subject.map(str::to_string))
            .copied()
    }

    /// The level that applies to `subject`: its own, else the global one, else `BACKWARD`.
    pub fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        self.lock().level(subject)
    }

    /// Sets (`Some`) or clears (`None`) the level of a subject or, with `subject: None`, the
    /// global level.
    pub fn set_level(
        &self,
        subject: Option<&str>,
        level: Option<CompatibilityLevel>,
    ) -> Result<(), RegistryError> {
        if let Some(subject) = subject {
            validate_subject(subject)?;
        }
        let mut state = self.lock();
        let value = level.map(|level| {
            encode_value(&ConfigValue {
                compatibility_level: level.as_str().to_string(),
            })
        });
        self.write(&mut state, RecordKey::config(subject), value)
    }

    /// The mode set for a subject or globally, if any.
    pub fn mode(&self, subject: Option<&str>) -> Option<Mode> {
        self.lock().modes.get(&subject.map(str::to_string)).copied()
    }

    /// Sets or clears the mode of a subject or, with `subject: None`, the global mode.
    pub fn set_mode(&self, subject: Option<&str>, mode: Option<Mode>) -> Result<(), RegistryError> {
        if let Some(subject) = subject {
            validate_subject(subject)?;
        }
        let mut state = self.lock();
        let value = mode.map(|mode| {
            encode_value(&ModeValue {
                mode: mode.as_str().to_string(),
            })
        });
        self.write(&mut state, RecordKey::mode(subject), value)
    }

    /// The compiled validator of a schema id, cached.
    pub fn validator(&self, id: u32) -> Result<Arc<PayloadValidator>, RegistryError> {
        let mut state = self.lock();
        if let Some(validator) = state.validators.get(&id) {
            return Ok(validator.clone());
        }
        let (_, schema) = state
            .schemas
            .get(&id)
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("no schema with id {id}")))?;
        let validator = Arc::new(PayloadValidator::new(schema));
        state.validators.insert(id, validator.clone());
        Ok(validator)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(
        &self,
        state: &mut State,
        key: RecordKey,
        value: Option<Vec<u8>>,
    ) -> Result<(), RegistryError> {
        self.write_all(state, vec![(key, value)])
    }

    /// Appends the records as one batch (atomic), durably, then applies them to memory.
    fn write_all(
        &self,
        state: &mut State,
        records: Vec<(RecordKey, Option<Vec<u8>>)>,
    ) -> Result<(), RegistryError> {
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = records
            .into_iter()
            .map(|(key, value)| (key.encode(), value))
            .collect();
        let batch: Vec<NewRecord> = encoded
            .iter()
            .map(|(key, value)| NewRecord {
                key: Some(key.clone().into()),
                value: value.clone().map(Into::into),
                ..NewRecord::default()
            })
            .collect();
        self.partition
            .append(&batch)
            .map_err(|e| RegistryError::Storage(e.to_string()))?;
        for (key, value) in &encoded {
            state.apply(Some(key), value.as_deref());
        }
        Ok(())
    }
}

impl State {
    /// Applies one record of the topic to memory, on replay and after each append.
    fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key.and_then(|k| serde_json::from_slice::<RecordKey>(k).ok()) else {
            self.skipped_records += 1;
            return;
        };
        match key {
            RecordKey::Schema {
                subject, version, ..
            } => self.apply_schema(subject, version, value),
            RecordKey::Config { subject, .. } => {
                let level = value
                    .and_then(|v| serde_json::from_slice::<ConfigValue>(v).ok())
                    .and_then(|c| c.compatibility_level.parse().ok());
                match level {
                    Some(level) => self.levels.insert(subject, level),
                    None => self.levels.remove(&subject),
                };
            }
            RecordKey::Mode { subject, .. } => {
                let mode = value
                    .and_then(|v| serde_json::from_slice::<ModeValue>(v).ok())
                    .and_then(|m| Mode::parse(&m.mode));
                match mode {
                    Some(mode) => self.modes.insert(subject, mode),
                    None => self.modes.remove(&subject),
                };
            }
        }
    }

    fn apply_schema(&mut self, subject: String, version: u32, value: Option<&[u8]>) {
        let Some(value) = value else {
            if let Some(versions) = self.subjects.get_mut(&subject) {
                versions.retain(|v| v.version != version);
                if versions.is_empty() {
                    self.subjects.remove(&subject);
                }
            }
            return;
        };
        let parsed = serde_json::from_slice::<SchemaValue>(value)
            .ok()
            .and_then(|v| {
                let schema_type: SchemaType = v.schema_type.parse().ok()?;
                let schema = Schema::parse(schema_type, &v.schema).ok()?;
                Some((v, schema_type, schema))
            });
        let Some((value, schema_type, schema)) = parsed else {
            self.skipped_records += 1;
            return;
        };
        self.ids.insert(schema.canonical().to_string(), value.id);
        self.schemas.insert(value.id, (schema_type, schema));
        let versions = self.subjects.entry(subject).or_default();
        let entry = VersionEntry {
            version,
            id: value.id,
            deleted: value.deleted,
        };
        match versions.binary_search_by_key(&version, |v| v.version) {
            Ok(index) => versions[index] = entry,
            Err(index) => versions.insert(index, entry),
        }
    }

    fn level(&self, subject: &str) -> CompatibilityLevel {
        self.levels
            .get(&Some(subject.to_string()))
            .or_else(|| self.levels.get(&None))
            .copied()
            .unwrap_or_default()
    }

    fn mode(&self, subject: &str) -> Mode {
        self.modes
            .get(&Some(subject.to_string()))
            .or_else(|| self.modes.get(&None))
            .copied()
            .unwrap_or_default()
    }

    fn has_live(&self, subject: &str) -> bool {
        self.subjects
            .get(subject)
            .is_some_and(|versions| versions.iter().any(|v| !v.deleted))
    }

    fn live_with(&self, subject: &str, schema: &Schema) -> Option<SubjectVersion> {
        let id = *self.ids.get(schema.canonical())?;
        let entry = self
            .subjects
            .get(subject)?
            .iter()
            .find(|v| v.id == id && !v.deleted)?;
        self.subject_version(subject, entry)
    }

    fn subject_version(&self, subject: &str, entry: &VersionEntry) -> Option<SubjectVersion> {
        let (schema_type, schema) = self.schemas.get(&entry.id)?.clone();
        Some(SubjectVersion {
            subject: subject.to_string(),
            version: entry.version,
            id: entry.id,
            schema_type,
            schema,
            deleted: entry.deleted,
        })
    }

    fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let versions = self
            .subjects
            .get(subject)
            .filter(|versions| versions.iter().any(|v| deleted || !v.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let entry = match selector {
            VersionSelector::Latest => versions.iter().rev().find(|v| deleted || !v.deleted),
            VersionSelector::Number(number) => versions
                .iter()
                .find(|v| v.version == number && (deleted || !v.deleted)),
        };
        let not_found = || RegistryError::VersionNotFound {
            subject: subject.to_string(),
            version: match selector {
                VersionSelector::Latest => 0,
                VersionSelector::Number(n) => n,
            },
        };
        let entry = entry.ok_or_else(not_found)?;
        self.subject_version(subject, entry).ok_or_else(not_found)
    }

    /// What stops `schema` from joining `subject` under its level: compared with the live
    /// versions (or only version `only`).
    fn incompatibilities(
        &self,
        subject: &str,
        schema: &Schema,
        only: Option<u32>,
    ) -> Vec<Incompatibility> {
        let live: Vec<(u32, &serde_json::Value)> = self
            .subjects
            .get(subject)
            .map(|versions| {
                versions
                    .iter()
                    .filter(|v| !v.deleted && only.is_none_or(|only| v.version == only))
                    .filter_map(|v| Some((v.version, self.schemas.get(&v.id)?.1.document())))
                    .collect()
            })
            .unwrap_or_default();
        check_compatibility(self.level(subject), schema.document(), &live)
    }

    fn deleted_record(&self, subject: &str, entry: &VersionEntry) -> (RecordKey, Option<Vec<u8>>) {
        let (schema_type, schema) = &self.schemas[&entry.id];
        let value = SchemaValue {
            subject: subject.to_string(),
            version: entry.version,
            id: entry.id,
            schema_type: schema_type.as_str().to_string(),
            schema: schema.canonical().to_string(),
            deleted: true,
        };
        (
            RecordKey::schema(subject, entry.version),
            Some(encode_value(&value)),
        )
    }
}

/// Subject names: non-empty, at most [`SUBJECT_BYTES_MAX`] bytes, no control characters.
fn validate_subject(subject: &str) -> Result<(), RegistryError> {
    let invalid = |reason| {
        Err(RegistryError::InvalidSubject {
            subject: subject.to_string(),
            reason,
        })
    };
    if subject.is_empty() {
        return invalid("empty");
    }
    if subject.len() > SUBJECT_BYTES_MAX {
        return invalid("longer than 255 bytes");
    }
    if subject.chars().any(char::is_control) {
        return invalid("control characters are not allowed");
    }
    Ok(())
}
