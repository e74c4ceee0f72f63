//! Publishing under contract: [`SchemaPublisher`] validates each event's payload against the
//! schema registered for its type and version, and refuses an invalid one before anything is
//! written.
//!
//! The subject of an event is its CloudEvents `type` (one subject per event type, the
//! registry's default naming); the version is its `schemaversion` extension, 1 when absent
//! (the convention of `keel_core::EventType`).
//!
//! Not here: the consumer side (`contract.rs`).

use std::sync::Arc;

use keel_core::{Event, Published, SCHEMA_VERSION_ATTRIBUTE};
use keel_runtime::{PublishError, Publisher};

use crate::codec::data_value;
use crate::error::RegistryError;
use crate::registry::{Registry, VersionSelector};
use crate::validation::PayloadError;

/// A [`Publisher`] that publishes only events whose payload matches their registered schema.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct SchemaPublisher {
    publisher: Publisher,
    registry: Arc<Registry>,
}

/// Why an event was not published. Nothing was written in any case but `Publish`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaPublishError {
    /// No schema is registered for the event's type.
    #[error("refused event of type {ty:?}: no schema is registered for this type")]
    UnknownType {
        /// The CloudEvents `type`.
        ty: String,
    },
    /// The type is registered, but not in this version.
    #[error("refused event of type {ty:?}: schema version {version} is not registered")]
    UnknownVersion {
        /// The CloudEvents `type`.
        ty: String,
        /// The event's `schemaversion`.
        version: u32,
    },
    /// The `schemaversion` attribute is not a positive integer.
    #[error("refused event of type {ty:?}: 'schemaversion' {text:?} is not a positive integer")]
    InvalidVersion {
        /// The CloudEvents `type`.
        ty: String,
        /// The attribute as given.
        text: String,
    },
    /// The event has no data, or its data is neither JSON nor framed data of a registered
    /// schema (or framed with another schema than its version's).
    #[error("refused event of type {ty:?}: its data cannot be read: {reason}")]
    NotJson {
        /// The CloudEvents `type`.
        ty: String,
        /// What is wrong.
        reason: String,
    },
    /// The payload breaks the registered schema.
    #[error("refused event of type {ty:?} version {version}: {error}")]
    Invalid {
        /// The CloudEvents `type`.
        ty: String,
        /// The schema version it claims.
        version: u32,
        /// The failing path and rule.
        error: PayloadError,
    },
    /// The registry failed (storage).
    #[error(transparent)]
    Registry(RegistryError),
    /// The payload was valid; the publish itself failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl SchemaPublisher {
    /// Wraps `publisher`, validating against `registry`.
    pub fn new(publisher: Publisher, registry: Arc<Registry>) -> SchemaPublisher {
        SchemaPublisher {
            publisher,
            registry,
        }
    }

    /// Validates `event` against its registered schema, then publishes it to `topic`.
    ///
    /// Cancel safety: as [`Publisher::publish`] once validation passed (a dropped publish may
    /// or may not be stored); validation itself is synchronous.
    pub async fn publish(
        &self,
        topic: &str,
        event: Event,
    ) -> Result<Published, SchemaPublishError> {
        self.check(&event)?;
        Ok(self.publisher.publish(topic, event).await?)
    }

    /// Validates `event` against its registered schema without publishing; returns the
    /// schema's global id.
    pub fn check(&self, event: &Event) -> Result<u32, SchemaPublishError> {
        check_event(&self.registry, event)
    }
}

/// Validates `event` against the schema `registry` holds for its type and version, as
/// [`SchemaPublisher`] does before publishing; returns the schema's global id. For writers
/// that append without a [`Publisher`] (`keel produce` on a data directory).
pub fn check_event(registry: &Registry, event: &Event) -> Result<u32, SchemaPublishError> {
    let ty = &event.ty;
    let version = match event.extensions.get(SCHEMA_VERSION_ATTRIBUTE) {
        None => 1,
        Some(text) => event
            .schema_version()
            .ok_or_else(|| SchemaPublishError::InvalidVersion {
                ty: ty.clone(),
                text: text.clone(),
            })?,
    };
    let registered = registry
        .version(ty, VersionSelector::Number(version), false)
        .map_err(|error| match error {
            RegistryError::SubjectNotFound(_) => SchemaPublishError::UnknownType { ty: ty.clone() },
            RegistryError::VersionNotFound { .. } => SchemaPublishError::UnknownVersion {
                ty: ty.clone(),
                version,
            },
            other => SchemaPublishError::Registry(other),
        })?;
    let (framed_id, payload) = event
        .data
        .as_deref()
        .ok_or_else(|| "the event carries no data".to_string())
        .and_then(|data| data_value(registry, data).map_err(|e| e.to_string()))
        .map_err(|reason| SchemaPublishError::NotJson {
            ty: ty.clone(),
            reason,
        })?;
    // Framed data names its schema: it must be the one registered for this version.
    if let Some(id) = framed_id.filter(|id| *id != registered.id) {
        return Err(SchemaPublishError::NotJson {
            ty: ty.clone(),
            reason: format!(
                "the data is framed with schema id {id}, version {version} of {ty:?} is id {}",
                registered.id
            ),
        });
    }
    let validator = registry
        .validator(registered.id)
        .map_err(SchemaPublishError::Registry)?;
    validator
        .validate(&payload)
        .map_err(|error| SchemaPublishError::Invalid {
            ty: ty.clone(),
            version,
            error,
        })?;
    Ok(registered.id)
}
