//! The consumer side of a contract: which schema versions of one event type a consumer
//! accepts, and the upcasters that turn each older version into the current shape, so the
//! handler sees one type only.
//!
//! A [`Contract`] decodes an event in this order: its `type` must be the handler's
//! ([`EventType::TYPE`]); its `schemaversion` (1 when absent) must be accepted; its data must
//! be JSON, and, when the contract has a registry, valid against the schema registered for
//! that version; then upcasters run version by version up to [`EventType::VERSION`], and the
//! result is deserialized. A refusal at any step is an [`EnvelopeError`] naming the attribute
//! (`type`, `schemaversion`, `data`), which the runtime's decode path sends to the dead-letter
//! topic with that reason — the event never reaches the handler.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use keel_core::{EnvelopeError, Event, EventType, SCHEMA_VERSION_ATTRIBUTE};
use keel_runtime::{Context, Handler, HandlerResult};
use serde_json::Value;

use crate::codec::data_value;
use crate::registry::{Registry, VersionSelector};

/// Turns the data of version `n` into the data of version `n + 1`.
type Upcaster = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// What a consumer reads of the event type `T`. Build it, then turn it into a
/// [`Handler`] with [`Contract::handler`].
///
/// ```
/// use keel_core::EventType;
/// use keel_schema::Contract;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct OrderPlaced { order_id: String, total_cents: u64 }
/// impl EventType for OrderPlaced {
///     const TYPE: &'static str = "order.placed";
///     const VERSION: u32 = 2; // version 1 had `total` in whole units
/// }
///
/// let contract = Contract::<OrderPlaced>::new().upcast(1, |mut data| {
///     let total = data["total"].as_u64().ok_or("total missing")?;
///     data["total_cents"] = (total * 100).into();
///     Ok(data)
/// });
/// assert_eq!(contract.accepted(), [1, 2]);
/// ```
pub struct Contract<T> {
    accepted: BTreeSet<u32>,
    upcasters: BTreeMap<u32, Upcaster>,
    registry: Option<Arc<Registry>>,
    _type: PhantomData<fn() -> T>,
}

/// A contract that cannot work: an accepted version with no upcaster path to the current one,
/// or a version newer than the type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contract for {ty:?} is incomplete: {reason}")]
pub struct ContractError {
    /// The event type.
    pub ty: &'static str,
    /// What is missing.
    pub reason: String,
}

impl<T> fmt::Debug for Contract<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("accepted", &self.accepted)
            .field("upcasters", &self.upcasters.keys().collect::<Vec<_>>())
            .field("validated", &self.registry.is_some())
            .finish()
    }
}

impl<T: EventType> Default for Contract<T> {
    fn default() -> Contract<T> {
        Contract::new()
    }
}

impl<T: EventType> Contract<T> {
    /// A contract accepting only the current version, `T::VERSION`.
    pub fn new() -> Contract<T> {
        Contract {
            accepted: BTreeSet::from([T::VERSION]),
            upcasters: BTreeMap::new(),
            registry: None,
            _type: PhantomData,
        }
    }

    /// Accepts `version` too (it needs upcasters up to `T::VERSION`).
    pub fn accept(mut self, version: u32) -> Contract<T> {
        self.accepted.insert(version);
        self
    }

    /// Turns version `from` into version `from + 1` and accepts `from`.
    pub fn upcast<F>(mut self, from: u32, upcaster: F) -> Contract<T>
    where
        F: Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.upcasters.insert(from, Arc::new(upcaster));
        self.accepted.insert(from);
        self
    }

    /// Validates every incoming payload against the schema registered for its version
    /// before upcasting; an unregistered version or an invalid payload is refused.
    pub fn validated_by(mut self, registry: Arc<Registry>) -> Contract<T> {
        self.registry = Some(registry);
        self
    }

    /// The accepted versions, ascending.
    pub fn accepted(&self) -> Vec<u32> {
        self.accepted.iter().copied().collect()
    }

    /// Checks that every accepted version reaches `T::VERSION` through upcasters.
    pub fn validate(&self) -> Result<(), ContractError> {
        let error = |reason: String| ContractError {
            ty: T::TYPE,
            reason,
        };
        for &version in &self.accepted {
            if version == 0 || version > T::VERSION {
                return Err(error(format!(
                    "version {version} is outside 1..={} of the Rust type",
                    T::VERSION
                )));
            }
            if let Some(gap) = (version..T::VERSION).find(|v| !self.upcasters.contains_key(v)) {
                return Err(error(format!(
                    "accepted version {version} has no upcaster from version {gap} to {}",
                    gap + 1
                )));
            }
        }
        Ok(())
    }

    /// Decodes `event` into the current shape, or says why it is refused.
    pub fn decode(&self, event: &Event) -> Result<T, EnvelopeError> {
        if event.ty != T::TYPE {
            return Err(EnvelopeError::WrongType {
                expected: T::TYPE,
                found: event.ty.clone(),
            });
        }
        let refuse_version = |reason: String| EnvelopeError::InvalidAttribute {
            attribute: SCHEMA_VERSION_ATTRIBUTE.to_string(),
            reason,
        };
        let version = match event.extensions.get(SCHEMA_VERSION_ATTRIBUTE) {
            None => 1,
            Some(text) => event
                .schema_version()
                .ok_or_else(|| refuse_version(format!("{text:?} is not a positive integer")))?,
        };
        if !self.accepted.contains(&version) {
            let accepted: Vec<String> = self.accepted.iter().map(u32::to_string).collect();
            return Err(refuse_version(format!(
                "version {version} of {:?} is not accepted by this consumer (accepts {})",
                T::TYPE,
                accepted.join(", ")
            )));
        }
        let data_error = |reason: String| EnvelopeError::Data {
            ty: T::TYPE.to_string(),
            reason,
        };
        let data = event.data.as_deref().ok_or(EnvelopeError::MissingData {
            ty: T::TYPE.to_string(),
        })?;
        let mut value: Value = match &self.registry {
            // Framed Avro or Protobuf data is decoded with the schema its id names.
            Some(registry) => {
                data_value(registry, data)
                    .map_err(|e| data_error(e.to_string()))?
                    .1
            }
            None => serde_json::from_slice(data).map_err(|e| data_error(e.to_string()))?,
        };
        if let Some(registry) = &self.registry {
            let registered = registry
                .version(T::TYPE, VersionSelector::Number(version), false)
                .map_err(|e| refuse_version(e.to_string()))?;
            let validator = registry
                .validator(registered.id)
                .map_err(|e| data_error(e.to_string()))?;
            validator
                .validate(&value)
                .map_err(|e| data_error(format!("version {version}: {e}")))?;
        }
        for from in version..T::VERSION {
            let upcaster = self.upcasters.get(&from).ok_or_else(|| {
                data_error(format!("no upcaster from version {from} to {}", from + 1))
            })?;
            value = upcaster(value).map_err(|reason| {
                data_error(format!(
                    "upcasting version {from} to {} failed: {reason}",
                    from + 1
                ))
            })?;
        }
        serde_json::from_value(value).map_err(|e| data_error(e.to_string()))
    }
}

impl<T: EventType + Send + 'static> Contract<T> {
    /// A runtime [`Handler`] that decodes through this contract: `f` sees only `T`, every
    /// refused event goes to the dead letters with the reason.
    pub fn handler<F, Fut>(self, name: impl Into<String>, f: F) -> Result<Handler, ContractError>
    where
        F: Fn(T, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.validate()?;
        Ok(Handler::decoded(
            name,
            move |event: &Event| self.decode(event),
            f,
        ))
    }
}
