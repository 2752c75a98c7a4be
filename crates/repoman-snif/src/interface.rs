//! The three SNIF interfaces and their JSON payloads (version 1). Each payload has a JSON Schema
//! registered with `repoman_state::schemas` (`snif.<interface>.input/v1`, `.output/v1`); the
//! host validates every input before the call and every output after it, so a domain crate
//! receives typed values or a [`SnifError::MalformedOutput`] naming the SNIF.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SnifError;

/// What a SNIF implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interface {
    /// A contract (schema + version) and a binding's source files → pass/fail with messages.
    ContractValidator,
    /// A plan (operation, object, actor, profile, details) → allow / deny / review_required.
    PolicyRule,
    /// An executable's name, path and probe output → tool id, category, version.
    ToolDetector,
}

impl Interface {
    pub const ALL: [Interface; 3] = [
        Interface::ContractValidator,
        Interface::PolicyRule,
        Interface::ToolDetector,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interface::ContractValidator => "contract-validator",
            Interface::PolicyRule => "policy-rule",
            Interface::ToolDetector => "tool-detector",
        }
    }

    /// The interface version this host implements.
    pub fn version(self) -> u32 {
        1
    }

    /// Schema id of the input payload.
    pub fn input_schema(self) -> String {
        format!("snif.{}.input/v{}", self.as_str(), self.version())
    }

    /// Schema id of the output payload.
    pub fn output_schema(self) -> String {
        format!("snif.{}.output/v{}", self.as_str(), self.version())
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- contract-validator/v1 ----

/// The contract a binding is validated against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractRef {
    pub realm: String,
    pub domain: String,
    pub name: String,
    pub version: String,
    /// The contract's JSON Schema.
    pub schema: Value,
}

/// One source file of the binding, as bytes the host read (not a path the SNIF could open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Relative to the repository root.
    pub path: String,
    /// The file's text; `None` (JSON null) when the bytes are not UTF-8.
    pub content: Option<String>,
    pub size: u64,
}

/// Input of `contract-validator/v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidatorInput {
    pub contract: ContractRef,
    /// The repository of the binding.
    pub repo: String,
    /// `exporter` or `importer`.
    pub role: String,
    pub files: Vec<SourceFile>,
}

/// How serious a validator message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Info,
}

/// One finding of a validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub level: Level,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Output of `contract-validator/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorOutput {
    pub valid: bool,
    #[serde(default)]
    pub messages: Vec<Message>,
}

// ---- policy-rule/v1 ----

/// Input of `policy-rule/v1`: the plan the gate is deciding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInput {
    /// `sync`, `sandbox.create`, ...
    pub operation: String,
    /// The object acted on, e.g. `backup:alpha`.
    pub object: String,
    pub project: Option<String>,
    /// `human:USER@HOST`, `agent:PROJECT`, `daemon:HOST`, `ci:NAME`.
    pub actor: String,
    /// `human`, `agent`, `daemon` or `ci`.
    pub actor_kind: String,
    pub profile: String,
    /// Operation-specific facts (JSON object).
    #[serde(default)]
    pub details: BTreeMap<String, Value>,
}

/// A policy rule's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyEffect {
    Allow,
    Deny,
    ReviewRequired,
}

/// Output of `policy-rule/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOutput {
    pub effect: PolicyEffect,
    pub reason: String,
}

// ---- tool-detector/v1 ----

/// What the host ran to probe the executable, and what it printed (bounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub args: Vec<String>,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
}

/// Input of `tool-detector/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorInput {
    /// The executable's file name.
    pub name: String,
    /// Its absolute path.
    pub path: String,
    pub probe: Option<Probe>,
}

/// Output of `tool-detector/v1`: `matched: false`, or the tool it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorOutput {
    pub matched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Check `value` against `interface`'s input schema (for `repoman snif run` and domain callers).
pub fn validate_input(name: &str, interface: Interface, value: &Value) -> Result<(), SnifError> {
    repoman_state::schemas::validate(&interface.input_schema(), value, "the input").map_err(|e| {
        SnifError::InvalidInput {
            name: name.to_owned(),
            message: e.to_string(),
        }
    })
}

/// Parse `bytes` as JSON and check them against `interface`'s output schema.
pub fn parse_output(name: &str, interface: Interface, bytes: &[u8]) -> Result<Value, SnifError> {
    let malformed = |message: String| SnifError::MalformedOutput {
        name: name.to_owned(),
        message,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
        malformed(format!("not JSON ({e}); it starts with {head:?}"))
    })?;
    repoman_state::schemas::validate(&interface.output_schema(), &value, "the output")
        .map_err(|e| malformed(e.to_string()))?;
    Ok(value)
}
