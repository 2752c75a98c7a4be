//! The realm repository's files, as typed values.
//!
//! Layout (a git repository):
//! ```text
//! realm.yaml                                  name, version, governance, trust
//! repos/<repo>.yaml                           registered repos
//! domains/<domain>/domain.yaml                provider + consumers (a coordination context)
//! domains/<domain>/governance.yaml            optional domain-level governance
//! domains/<domain>/contracts/<name>.yaml      schema, version, owner, compatibility, validation, evolution
//! domains/<domain>/bindings/<repo>.yaml       what <repo> exports and imports in this domain
//! ```
//! and in each member repo `.repoman/realm.yaml` (membership, committed) and `.repoman/cache.db`
//! (the check cache, ignored by git). Field names follow the seed. Unknown fields are refused so a
//! typo does not silently disable a rule.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmFile {
    pub name: String,
    #[serde(default = "one")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub governance: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub trust: Value,
}

fn one() -> String {
    "1.0.0".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoFile {
    pub name: String,
    /// Where the working copy lives on the machine that registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainFile {
    pub name: String,
    /// The first repo of `--repos`: it provides; the others consume.
    pub provider: String,
    #[serde(default)]
    pub consumers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl DomainFile {
    pub fn repos(&self) -> Vec<String> {
        let mut r = vec![self.provider.clone()];
        r.extend(self.consumers.iter().cloned());
        r
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compatibility {
    /// New versions read data written under old ones (BACKWARD).
    #[serde(default = "yes")]
    pub backwards: bool,
    /// Old versions read data written under new ones (FORWARD).
    #[serde(default)]
    pub forwards: bool,
    /// Check against every earlier version, not just the previous one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transitive: bool,
}

fn yes() -> bool {
    true
}

impl Default for Compatibility {
    fn default() -> Self {
        Compatibility {
            backwards: true,
            forwards: false,
            transitive: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ci_only: Vec<String>,
}

impl Validation {
    pub fn is_empty(&self) -> bool {
        self.exporter.is_none() && self.importer.is_none() && self.ci_only.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evolution {
    pub version: String,
    #[serde(default)]
    pub changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatible: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractFile {
    pub name: String,
    pub version: String,
    pub owner: String,
    #[serde(default)]
    pub compatibility: Compatibility,
    pub schema: Value,
    #[serde(default, skip_serializing_if = "Validation::is_empty")]
    pub validation: Validation,
    #[serde(default)]
    pub evolution: Vec<Evolution>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Provider,
    Consumer,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub contract: String,
    #[serde(default)]
    pub source_files: Vec<String>,
    /// The contract version the digests below were recorded for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_version: Option<String>,
    /// BLAKE3 of each source file when `recorded_version` was recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_digests: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    pub contract: String,
    /// A version range, npm style (`>=1.0.0 <2.0.0`) or comma style (`>=1.0.0, <2.0.0`).
    pub version: String,
    /// The file in the importing repo that implements the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingFile {
    pub repo: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
}

impl BindingFile {
    pub fn new(repo: &str) -> Self {
        BindingFile {
            repo: repo.to_string(),
            role: Role::Consumer,
            exports: Vec::new(),
            imports: Vec::new(),
        }
    }

    /// The role implied by what the binding declares.
    pub fn refresh_role(&mut self) {
        self.role = match (self.exports.is_empty(), self.imports.is_empty()) {
            (false, false) => Role::Both,
            (false, true) => Role::Provider,
            _ => Role::Consumer,
        };
    }
}

/// `<repo>/.repoman/realm.yaml`: which realm this repo belongs to, and as which repo name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub realm: String,
    /// The realm repository (absolute path, or relative to this repo).
    pub path: String,
    pub repo: String,
}
