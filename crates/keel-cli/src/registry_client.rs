//! A client of a running schema registry's REST API (Confluent's shape: `keel serve`'s, or
//! Confluent's own), for `keel schema` and `keel catalog` in server mode. Only the calls
//! those verbs make; the error of a refused request is the registry's message and code.
//!
//! Not here: deciding when to use a server (`schema.rs`) or any compatibility logic, which
//! the registry runs (`keel_schema` parses what it fetches, for `diff`).

use anyhow::{Context, bail};
use keel_schema::{Reference, Schema, SchemaType};
use serde::Deserialize;
use serde_json::{Value, json};

/// The media type of Confluent's API.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Deepest chain of references followed when a schema is fetched to be parsed here.
const REFERENCE_DEPTH_MAX: usize = 32;

/// A registry at a base URL.
#[derive(Debug, Clone)]
pub(crate) struct RegistryClient {
    base: String,
}

/// One version of a subject, as the API answers it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Version {
    pub(crate) version: u32,
    pub(crate) id: u32,
    pub(crate) schema: String,
    #[serde(default)]
    pub(crate) schema_type: Option<String>,
    #[serde(default)]
    pub(crate) references: Vec<Reference>,
}

impl Version {
    /// The schema type, Avro when the answer leaves it out (as Confluent does).
    pub(crate) fn schema_type(&self) -> anyhow::Result<SchemaType> {
        Ok(self.schema_type.as_deref().unwrap_or("AVRO").parse()?)
    }
}

impl RegistryClient {
    pub(crate) fn new(base: &str) -> RegistryClient {
        RegistryClient {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The registry's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`, or `method` (`POST`, `PUT`) with `body`; the answer's JSON.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = match body {
            Some(body) => match method {
                "PUT" => ureq::put(&url),
                _ => ureq::post(&url),
            }
            .header("content-type", MEDIA_TYPE)
            .config()
            .http_status_as_error(false)
            .build()
            .send(serde_json::to_vec(body)?.as_slice()),
            None => ureq::get(&url)
                .config()
                .http_status_as_error(false)
                .build()
                .call(),
        }
        .with_context(|| format!("cannot reach the schema registry at {}", self.base))?;
        let status = response.status().as_u16();
        let answer: Value = response
            .into_body()
            .read_json()
            .with_context(|| format!("{method} {url}: the answer is not JSON"))?;
        if status >= 300 {
            bail!(
                "{method} {url}: {} (error {}, HTTP {status})",
                answer["message"].as_str().unwrap_or("refused"),
                answer["error_code"]
            );
        }
        Ok(answer)
    }

    fn schema_body(schema_type: SchemaType, text: &str, references: &[Reference]) -> Value {
        json!({"schemaType": schema_type.as_str(), "schema": text, "references": references})
    }

    /// Registers a schema text: its version and id, and whether it was there already.
    pub(crate) fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> anyhow::Result<(u32, u32, bool)> {
        let subject_path = encode(subject);
        let before = self.versions(subject).unwrap_or_default();
        let body = Self::schema_body(schema_type, text, references);
        let answer = self.call(
            "POST",
            &format!("/subjects/{subject_path}/versions"),
            Some(&body),
        )?;
        let id = number(&answer["id"])?;
        // Confluent answers with the id alone; the lookup names the version.
        let found = self.call("POST", &format!("/subjects/{subject_path}"), Some(&body))?;
        let version = number(&found["version"])?;
        Ok((version, id, before.contains(&version)))
    }

    /// The registry's verdict on a schema text against a subject: the reasons it breaks it
    /// (empty when compatible).
    pub(crate) fn check(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> anyhow::Result<Vec<String>> {
        let body = Self::schema_body(schema_type, text, references);
        let path = format!(
            "/compatibility/subjects/{}/versions?verbose=true",
            encode(subject)
        );
        let answer = self.call("POST", &path, Some(&body))?;
        if answer["is_compatible"].as_bool() == Some(true) {
            return Ok(Vec::new());
        }
        let messages: Vec<String> = answer["messages"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|m| m.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(if messages.is_empty() {
            vec!["incompatible".to_string()]
        } else {
            messages
        })
    }

    /// Subject names.
    pub(crate) fn subjects(&self) -> anyhow::Result<Vec<String>> {
        Ok(serde_json::from_value(self.call(
            "GET",
            "/subjects",
            None,
        )?)?)
    }

    /// Version numbers of a subject.
    pub(crate) fn versions(&self, subject: &str) -> anyhow::Result<Vec<u32>> {
        let path = format!("/subjects/{}/versions", encode(subject));
        Ok(serde_json::from_value(self.call("GET", &path, None)?)?)
    }

    /// One version (`latest` or a number).
    pub(crate) fn version(&self, subject: &str, version: &str) -> anyhow::Result<Version> {
        let path = format!("/subjects/{}/versions/{}", encode(subject), encode(version));
        Ok(serde_json::from_value(self.call("GET", &path, None)?)?)
    }

    /// The compatibility level that applies to a subject.
    pub(crate) fn level(&self, subject: &str) -> anyhow::Result<String> {
        let path = format!("/config/{}?defaultToGlobal=true", encode(subject));
        let answer = self.call("GET", &path, None)?;
        Ok(answer["compatibilityLevel"]
            .as_str()
            .unwrap_or("BACKWARD")
            .to_string())
    }

    /// The compatibility level set for `subject` (`None`: the global one), else the level
    /// that applies to it, and whether it is the subject's own.
    pub(crate) fn configured_level(&self, subject: Option<&str>) -> anyhow::Result<(String, bool)> {
        let Some(subject) = subject else {
            let answer = self.call("GET", "/config", None)?;
            let level = answer["compatibilityLevel"].as_str().unwrap_or("BACKWARD");
            return Ok((level.to_string(), true));
        };
        let own = self.call("GET", &format!("/config/{}", encode(subject)), None);
        match own {
            Ok(answer) => Ok((
                answer["compatibilityLevel"]
                    .as_str()
                    .unwrap_or("BACKWARD")
                    .to_string(),
                true,
            )),
            Err(_) => Ok((self.level(subject)?, false)),
        }
    }

    /// Sets the compatibility level of `subject` (`None`: the global one).
    pub(crate) fn set_level(&self, subject: Option<&str>, level: &str) -> anyhow::Result<()> {
        let path = match subject {
            Some(subject) => format!("/config/{}", encode(subject)),
            None => "/config".into(),
        };
        self.call("PUT", &path, Some(&json!({ "compatibility": level })))?;
        Ok(())
    }

    /// A schema text parsed here, its references fetched from the registry.
    pub(crate) fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> anyhow::Result<Schema> {
        self.parse_at_depth(schema_type, text, references, 0)
    }

    fn parse_at_depth(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
        depth: usize,
    ) -> anyhow::Result<Schema> {
        if depth > REFERENCE_DEPTH_MAX {
            bail!("references nest deeper than {REFERENCE_DEPTH_MAX} levels");
        }
        let mut resolved = Vec::with_capacity(references.len());
        for reference in references {
            let found = self.version(&reference.subject, &reference.version.to_string())?;
            let schema = self.parse_at_depth(
                found.schema_type()?,
                &found.schema,
                &found.references,
                depth + 1,
            )?;
            resolved.push((reference.clone(), schema));
        }
        Ok(Schema::parse_with_references(schema_type, text, &resolved)?)
    }
}

fn number(value: &Value) -> anyhow::Result<u32> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .with_context(|| format!("expected a number, the registry answered {value}"))
}

/// A path segment with the characters a URL path cannot carry escaped.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
