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
//! changes nothing. Compatibility checks and validator compilation, the only work whose cost a
//! client chooses, run outside that lock on a snapshot, so no request waits for another's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use keel_log::{CleanupPolicy, FsyncPolicy, Log, NewRecord, Partition, TopicConfig};

use crate::budget::CheckLimits;
use crate::compatibility::{CompatibilityLevel, Incompatibility, check_compatibility_within};
use crate::error::RegistryError;
use crate::limits::{
    REGISTER_ATTEMPTS_MAX, REPLAY_CHUNK_BYTES, SUBJECT_BYTES_MAX, SUBJECTS_MAX,
    VERSIONS_PER_SUBJECT_MAX,
};
use crate::schema::{Reference, Schema, SchemaError, SchemaType};
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
    check_limits: CheckLimits,
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
            check_limits: CheckLimits::default(),
        })
    }

    /// The registry with every compatibility check bounded by `limits` instead of the
    /// defaults.
    #[must_use]
    pub fn with_check_limits(mut self, limits: CheckLimits) -> Registry {
        self.check_limits = limits;
        self
    }

    /// Records of the schemas topic that replay could not read (written by something else);
    /// they are skipped, never fatal.
    pub fn skipped_records(&self) -> u64 {
        self.lock().skipped_records
    }

    /// Registers `schema` under `subject`: the existing version when the schema is already
    /// live there, else a new version once it passes the compatibility check.
    ///
    /// The check runs outside the registry's lock, on a snapshot of what it depends on (the
    /// level and the compared versions); the new version is appended only if that snapshot
    /// still holds, else the check runs again, at most [`REGISTER_ATTEMPTS_MAX`] times. A slow
    /// check therefore delays no other request.
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: Schema,
    ) -> Result<SubjectVersion, RegistryError> {
        validate_subject(subject)?;
        for _ in 0..REGISTER_ATTEMPTS_MAX {
            let checked = {
                let state = self.lock();
                if let Some(found) = state.registrable(subject, &schema)? {
                    return Ok(found);
                }
                state.snapshot(subject, None)
            };
            let incompatibilities = checked.check(subject, &schema, self.check_limits)?;
            let mut state = self.lock();
            if let Some(found) = state.registrable(subject, &schema)? {
                return Ok(found);
            }
            if state.snapshot(subject, None).depends != checked.depends {
                continue;
            }
            if !incompatibilities.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_string(),
                    level: checked.depends.level,
                    incompatibilities,
                });
            }
            return self.add_version(&mut state, subject, schema_type, schema);
        }
        Err(RegistryError::Conflict(subject.to_string()))
    }

    /// Appends `schema` as the next version of `subject`, under the lock.
    fn add_version(
        &self,
        state: &mut State,
        subject: &str,
        schema_type: SchemaType,
        schema: Schema,
    ) -> Result<SubjectVersion, RegistryError> {
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
        let id = match state.ids.get(&schema.identity()) {
            Some(id) => *id,
            None => state.schemas.keys().next_back().map_or(1, |max| max + 1),
        };
        let value = SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: schema_type.as_str().to_string(),
            schema: schema.canonical().to_string(),
            references: schema.references().to_vec(),
            deleted: false,
        };
        self.write(
            state,
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

    /// Parses a schema text whose `references` name versions registered here.
    pub fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<Schema, RegistryError> {
        let resolved = self.lock().resolve(references)?;
        Ok(Schema::parse_with_references(schema_type, text, &resolved)?)
    }

    /// Ids of the live schemas that reference version `selector` of `subject` (Confluent's
    /// `GET /subjects/{subject}/versions/{version}/referencedby`).
    pub fn referenced_by(
        &self,
        subject: &str,
        selector: VersionSelector,
    ) -> Result<Vec<u32>, RegistryError> {
        let state = self.lock();
        let found = state.version(subject, selector, false)?;
        Ok(state.referenced_by(subject, found.version))
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
    /// when `version` is `None`. An unknown subject accepts anything. The comparison runs
    /// outside the registry's lock.
    pub fn check(
        &self,
        subject: &str,
        version: Option<VersionSelector>,
        schema: &Schema,
    ) -> Result<Vec<Incompatibility>, RegistryError> {
        let checked = {
            let state = self.lock();
            let only = match version {
                None => None,
                Some(selector) => Some(state.version(subject, selector, false)?.version),
            };
            state.snapshot(subject, only)
        };
        checked.check(subject, schema, self.check_limits)
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
        let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
        state.unreferenced(subject, &numbers)?;
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
        state.unreferenced(subject, &[entry.version])?;
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

    /// The compiled validator of a schema id, cached. Compiled outside the lock; two callers
    /// racing on the first use compile twice and keep one.
    pub fn validator(&self, id: u32) -> Result<Arc<PayloadValidator>, RegistryError> {
        let schema = {
            let state = self.lock();
            if let Some(validator) = state.validators.get(&id) {
                return Ok(validator.clone());
            }
            let (_, schema) = state
                .schemas
                .get(&id)
                .ok_or_else(|| RegistryError::SchemaNotFound(format!("no schema with id {id}")))?;
            schema.clone()
        };
        let validator = Arc::new(PayloadValidator::new(&schema));
        Ok(self
            .lock()
            .validators
            .entry(id)
            .or_insert(validator)
            .clone())
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
                let references = self.resolve(&v.references).ok()?;
                let schema =
                    Schema::parse_with_references(schema_type, &v.schema, &references).ok()?;
                Some((v, schema_type, schema))
            });
        let Some((value, schema_type, schema)) = parsed else {
            self.skipped_records += 1;
            return;
        };
        self.ids.insert(schema.identity(), value.id);
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
        let id = *self.ids.get(&schema.identity())?;
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

    /// The schemas `references` name, each by subject and version (a soft-deleted version
    /// still resolves: its schema stays readable).
    fn resolve(&self, references: &[Reference]) -> Result<Vec<(Reference, Schema)>, RegistryError> {
        references
            .iter()
            .map(|reference| {
                let found = self
                    .subjects
                    .get(&reference.subject)
                    .and_then(|versions| versions.iter().find(|v| v.version == reference.version))
                    .and_then(|entry| self.schemas.get(&entry.id))
                    .ok_or_else(|| {
                        RegistryError::InvalidSchema(SchemaError(format!(
                            "reference {:?} names version {} of subject {:?}, which is not registered",
                            reference.name, reference.version, reference.subject
                        )))
                    })?;
                Ok((reference.clone(), found.1.clone()))
            })
            .collect()
    }

    /// Ids of the live schemas whose references name `subject` version `version`.
    fn referenced_by(&self, subject: &str, version: u32) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .subjects
            .values()
            .flatten()
            .filter(|entry| !entry.deleted)
            .filter(|entry| {
                self.schemas.get(&entry.id).is_some_and(|(_, schema)| {
                    schema
                        .references()
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
                })
            })
            .map(|entry| entry.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// `Err` when a live schema references one of `versions` of `subject`: Confluent refuses
    /// to delete a referenced version.
    fn unreferenced(&self, subject: &str, versions: &[u32]) -> Result<(), RegistryError> {
        for version in versions {
            let ids = self.referenced_by(subject, *version);
            if !ids.is_empty() {
                return Err(RegistryError::ReferenceExists {
                    subject: subject.to_string(),
                    version: *version,
                    ids,
                });
            }
        }
        Ok(())
    }

    /// `Ok(Some)` when `schema` is already live in `subject`, `Ok(None)` when it may be
    /// checked for registration, `Err` when the subject is read-only.
    fn registrable(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> Result<Option<SubjectVersion>, RegistryError> {
        if self.mode(subject) == Mode::ReadOnly {
            return Err(RegistryError::ReadOnly(subject.to_string()));
        }
        Ok(self.live_with(subject, schema))
    }

    /// What a compatibility check of `subject` needs, copied out of the lock: its level and
    /// its live versions (or only version `only`).
    fn snapshot(&self, subject: &str, only: Option<u32>) -> Checked {
        let earlier: Vec<(u32, u32, Schema)> = self
            .subjects
            .get(subject)
            .map(|versions| {
                versions
                    .iter()
                    .filter(|v| !v.deleted && only.is_none_or(|only| v.version == only))
                    .filter_map(|v| Some((v.version, v.id, self.schemas.get(&v.id)?.1.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Checked {
            depends: Depends {
                level: self.level(subject),
                compared: earlier
                    .iter()
                    .map(|(version, id, _)| (*version, *id))
                    .collect(),
            },
            earlier: earlier
                .into_iter()
                .map(|(version, _, schema)| (version, schema))
                .collect(),
        }
    }

    fn deleted_record(&self, subject: &str, entry: &VersionEntry) -> (RecordKey, Option<Vec<u8>>) {
        let (schema_type, schema) = &self.schemas[&entry.id];
        let value = SchemaValue {
            subject: subject.to_string(),
            version: entry.version,
            id: entry.id,
            schema_type: schema_type.as_str().to_string(),
            schema: schema.canonical().to_string(),
            references: schema.references().to_vec(),
            deleted: true,
        };
        (
            RecordKey::schema(subject, entry.version),
            Some(encode_value(&value)),
        )
    }
}

/// What a compatibility check depends on: when it is unchanged after the check, the verdict
/// still holds.
#[derive(Debug, PartialEq, Eq)]
struct Depends {
    level: CompatibilityLevel,
    /// `(version, id)` of each compared version.
    compared: Vec<(u32, u32)>,
}

/// A compatibility check's inputs, taken under the lock and used outside it.
struct Checked {
    depends: Depends,
    earlier: Vec<(u32, Schema)>,
}

impl Checked {
    /// What stops `schema` from joining `subject`; `Err` when the check ran out of budget.
    fn check(
        &self,
        subject: &str,
        schema: &Schema,
        limits: CheckLimits,
    ) -> Result<Vec<Incompatibility>, RegistryError> {
        let earlier: Vec<(u32, &Schema)> = self
            .earlier
            .iter()
            .map(|(version, schema)| (*version, schema))
            .collect();
        check_compatibility_within(self.depends.level, schema, &earlier, limits.budget()).map_err(
            |error| RegistryError::TooComplex {
                subject: subject.to_string(),
                error,
            },
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
