//! The schema registry: a JSON Schema for every durable format repoman owns, embedded in the
//! binary, plus the schemas domain crates register for their event `data`.
//!
//! Ids: `repoman.toml/v1` (the registry), `repoman-project.toml/v1` (`.repoman.toml`),
//! `repoman.event/v1` (one log line), `repoman.manifest/v1` (backup manifests), and
//! `event.<type>/v1` for the `data` of event type `<type>`.
//!
//! **Registering an event schema (domain crates):** every crate that writes events exposes
//! `schemas() -> Vec<Schema>` (ids `event.<type>/v1`, `applies_to` the event type) and the list of
//! the event types it writes; a face (CLI, daemon) hands all of them to [`register_all`] once at
//! start-up, before opening state. Registration is process-wide and idempotent; registering an id
//! again replaces it. An event whose type has no schema is accepted as long as its `data` is a
//! JSON object, unless [`require_event_schemas`] is on (the whole test suite runs so, with
//! `REPOMAN_STRICT_SCHEMAS=1`: every type repoman writes must have a schema).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde_json::Value;

use crate::error::StateError;

/// What kind of file or value a schema governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaKind {
    Config,
    Event,
    EventData,
    Manifest,
    /// An extension interface's payload (SNIF input/output, `snif.*/vN`).
    Interface,
}

/// One registered schema.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    pub id: String,
    pub title: String,
    pub kind: SchemaKind,
    /// The file name (`repoman.toml`) or event type (`policy.decided`) it governs.
    pub applies_to: String,
    pub json: Value,
}

impl Schema {
    /// A schema for the `data` of one event type.
    pub fn event_data(event_type: &str, title: &str, json: Value) -> Self {
        Self {
            id: format!("event.{event_type}/v1"),
            title: title.to_owned(),
            kind: SchemaKind::EventData,
            applies_to: event_type.to_owned(),
            json,
        }
    }

    /// A short content hash, recorded in the schemas registry so a changed schema is visible.
    pub fn digest(&self) -> String {
        let mut buf = Vec::new();
        crate::event::write_canonical(&self.json, &mut buf);
        blake3::hash(&buf).to_hex()[..16].to_owned()
    }
}

struct Entry {
    schema: Schema,
    validator: OnceLock<Result<Arc<jsonschema::Validator>, String>>,
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<Entry>>> {
    static REG: OnceLock<Mutex<BTreeMap<String, Arc<Entry>>>> = OnceLock::new();
    REG.get_or_init(|| {
        let map = builtin()
            .into_iter()
            .map(|s| {
                (
                    s.id.clone(),
                    Arc::new(Entry {
                        schema: s,
                        validator: OnceLock::new(),
                    }),
                )
            })
            .collect();
        Mutex::new(map)
    })
}

/// Register (or replace) a schema.
pub fn register(schema: Schema) {
    if let Ok(mut reg) = registry().lock() {
        reg.insert(
            schema.id.clone(),
            Arc::new(Entry {
                schema,
                validator: OnceLock::new(),
            }),
        );
    }
}

/// Register every schema of every domain at once (what a face calls at start-up).
pub fn register_all(schemas: impl IntoIterator<Item = Schema>) {
    for s in schemas {
        register(s);
    }
}

/// The event types this crate itself writes (policy, conflicts, repairs, object state, trust);
/// `<op>.plan.blocked` is one family under `plan.blocked`.
pub const EVENT_TYPES: [&str; 7] = [
    "policy.decided",
    "*.plan.blocked",
    "conflict.detected",
    "conflict.resolved",
    "repair.applied",
    "object.state",
    "config.trusted",
];

static REQUIRE_EVENT_SCHEMAS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// From now on (process-wide), refuse to write an event whose type has no registered schema.
/// Off by default (extensions and older writers may append types this version does not know);
/// the test suite turns it on (`REPOMAN_STRICT_SCHEMAS=1`) so every type repoman writes is
/// proven to have a schema.
pub fn require_event_schemas(on: bool) {
    REQUIRE_EVENT_SCHEMAS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`require_event_schemas`] is on.
pub fn event_schemas_required() -> bool {
    REQUIRE_EVENT_SCHEMAS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Every schema, sorted by id.
pub fn list() -> Vec<Schema> {
    registry()
        .lock()
        .map(|r| r.values().map(|e| e.schema.clone()).collect())
        .unwrap_or_default()
}

/// The schema with `id`.
pub fn get(id: &str) -> Option<Schema> {
    entry(id).map(|e| e.schema.clone())
}

fn entry(id: &str) -> Option<Arc<Entry>> {
    registry().lock().ok().and_then(|r| r.get(id).cloned())
}

/// The id of the schema governing the data of `event_type`, if one is registered.
pub fn for_event_type(event_type: &str) -> Option<String> {
    let id = format!("event.{event_type}/v1");
    if entry(&id).is_some() {
        return Some(id);
    }
    // `<op>.plan.blocked` share one schema whatever the operation.
    if event_type.ends_with(".plan.blocked") && entry("event.plan.blocked/v1").is_some() {
        return Some("event.plan.blocked/v1".to_owned());
    }
    None
}

/// Validate `value` against schema `id`; `what` names the value in the error.
pub fn validate(id: &str, value: &Value, what: &str) -> Result<(), StateError> {
    let e = entry(id).ok_or_else(|| StateError::UnknownSchema(id.to_owned()))?;
    let validator = e
        .validator
        .get_or_init(|| {
            jsonschema::validator_for(&e.schema.json)
                .map(Arc::new)
                .map_err(|err| err.to_string())
        })
        .clone()
        .map_err(|err| StateError::SchemaViolation {
            what: format!("schema {id} itself"),
            schema: id.to_owned(),
            errors: err,
        })?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|err| {
            let path = err.instance_path().to_string();
            if path.is_empty() {
                err.to_string()
            } else {
                format!("at {path}: {err}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StateError::SchemaViolation {
            what: what.to_owned(),
            schema: id.to_owned(),
            errors: errors.join("; "),
        })
    }
}

/// Validate TOML text (already known to parse) against schema `id`.
pub fn validate_toml(id: &str, text: &str, what: &str) -> Result<(), StateError> {
    let v: toml::Value = toml::from_str(text).map_err(|e| StateError::SchemaViolation {
        what: what.to_owned(),
        schema: id.to_owned(),
        errors: e.to_string(),
    })?;
    let json = serde_json::to_value(v).unwrap_or(Value::Null);
    validate(id, &json, what)
}

/// Validate a registry file (`repoman.toml`) on load: a missing file is valid (an empty registry).
/// Call after `RegistryFile::load` succeeded, so syntax errors keep their file:line:column.
pub fn validate_registry_file(path: &std::path::Path) -> Result<(), StateError> {
    validate_file("repoman.toml/v1", path)
}

/// Validate a project's `.repoman.toml` on load (a missing file is valid).
pub fn validate_overrides_file(path: &std::path::Path) -> Result<(), StateError> {
    validate_file("repoman-project.toml/v1", path)
}

fn validate_file(id: &str, path: &std::path::Path) -> Result<(), StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => validate_toml(id, &text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse(text: &str) -> Value {
    // The embedded schemas are tested to parse; a bad one would show up as an always-false schema.
    serde_json::from_str(text).unwrap_or(Value::Bool(false))
}

fn builtin() -> Vec<Schema> {
    let s = |id: &str, title: &str, kind, applies_to: &str, text: &str| Schema {
        id: id.to_owned(),
        title: title.to_owned(),
        kind,
        applies_to: applies_to.to_owned(),
        json: parse(text),
    };
    vec![
        s(
            "repoman.toml/v1",
            "The registry (repoman.toml)",
            SchemaKind::Config,
            "repoman.toml",
            include_str!("../schemas/repoman.toml.json"),
        ),
        s(
            "repoman-project.toml/v1",
            "Per-project overrides (.repoman.toml)",
            SchemaKind::Config,
            ".repoman.toml",
            include_str!("../schemas/repoman-project.toml.json"),
        ),
        s(
            "repoman.event/v1",
            "One line of the event log",
            SchemaKind::Event,
            "events/*.jsonl",
            include_str!("../schemas/event.json"),
        ),
        s(
            "repoman.manifest/v1",
            "A backup content manifest",
            SchemaKind::Manifest,
            "manifests/*.json",
            include_str!("../schemas/manifest.json"),
        ),
        s(
            "repoman.repair-report/v1",
            "A repair report",
            SchemaKind::Manifest,
            "repairs/*.json",
            include_str!("../schemas/repair-report.json"),
        ),
        s(
            "event.policy.decided/v1",
            "Data of policy.decided",
            SchemaKind::EventData,
            "policy.decided",
            include_str!("../schemas/data/policy.decided.json"),
        ),
        s(
            "event.plan.blocked/v1",
            "Data of <operation>.plan.blocked",
            SchemaKind::EventData,
            "*.plan.blocked",
            include_str!("../schemas/data/plan.blocked.json"),
        ),
        s(
            "event.conflict.detected/v1",
            "Data of conflict.detected",
            SchemaKind::EventData,
            "conflict.detected",
            include_str!("../schemas/data/conflict.detected.json"),
        ),
        s(
            "event.conflict.resolved/v1",
            "Data of conflict.resolved",
            SchemaKind::EventData,
            "conflict.resolved",
            include_str!("../schemas/data/conflict.resolved.json"),
        ),
        s(
            "event.config.trusted/v1",
            "Data of config.trusted (a human trusted a version of a repo's .repoman.toml)",
            SchemaKind::EventData,
            "config.trusted",
            include_str!("../schemas/data/config.trusted.json"),
        ),
        s(
            "event.repair.applied/v1",
            "Data of repair.applied",
            SchemaKind::EventData,
            "repair.applied",
            include_str!("../schemas/data/repair.applied.json"),
        ),
        s(
            "event.object.state/v1",
            "Data of object.state (quarantine, delete, restore an object)",
            SchemaKind::EventData,
            "object.state",
            include_str!("../schemas/data/object.state.json"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_schema_compiles() {
        for s in builtin() {
            assert!(s.json.is_object(), "{} does not parse", s.id);
            jsonschema::validator_for(&s.json).unwrap_or_else(|e| panic!("{}: {e}", s.id));
        }
    }

    #[test]
    fn registry_toml_is_validated_with_a_path() {
        validate_toml(
            "repoman.toml/v1",
            "schema_version = 1\n[[project]]\nname = \"a\"\nrepo = \"a\"\n",
            "t",
        )
        .unwrap();
        let err = validate_toml(
            "repoman.toml/v1",
            "[[project]]\nname = 3\nrepo = \"a\"\n",
            "repoman.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/project/0/name"), "{err}");
    }

    #[test]
    fn files_are_validated_on_load_and_missing_ones_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".repoman.toml");
        validate_overrides_file(&p).unwrap();
        std::fs::write(&p, "[[mount]]\nsource = \"~/data\"\npath = \"relative\"\n").unwrap();
        let err = validate_overrides_file(&p).unwrap_err().to_string();
        assert!(
            err.contains("/mount/0/path") && err.contains(".repoman.toml"),
            "{err}"
        );
        std::fs::write(&p, "image = \"debian/12\"\n").unwrap();
        validate_overrides_file(&p).unwrap();
    }

    #[test]
    fn registered_event_schema_is_used() {
        register(Schema::event_data(
            "test.thing",
            "t",
            json!({"type": "object", "required": ["n"]}),
        ));
        assert_eq!(
            for_event_type("test.thing").as_deref(),
            Some("event.test.thing/v1")
        );
        assert!(validate("event.test.thing/v1", &json!({"n": 1}), "d").is_ok());
        assert!(validate("event.test.thing/v1", &json!({}), "d").is_err());
        assert_eq!(
            for_event_type("sync.plan.blocked").as_deref(),
            Some("event.plan.blocked/v1")
        );
        assert_eq!(for_event_type("nobody.knows"), None);
    }
}
