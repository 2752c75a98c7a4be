//! `snif.toml`: what a SNIF is (name, version, interface) and what it asks for (capabilities,
//! limits). Schema `repoman-snif.toml/v1`.
//!
//! A manifest is a claim, not a permission: install checks the module's real imports against
//! it, and a capability the manifest asks for is still off until the user grants it.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SnifError;
use crate::interface::Interface;

/// The one ABI this host speaks (docs/snif.md, "ABI").
pub const ABI_VERSION: u32 = 1;

/// A parsed, checked manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    /// Lowercase letters, digits and `-`, 1-63 characters, starting with a letter.
    pub name: String,
    /// Semantic version of the SNIF itself.
    pub version: String,
    /// `contract-validator`, `policy-rule` or `tool-detector`.
    pub interface: Interface,
    /// The interface's version (the payload schemas `snif.<interface>.input/vN`).
    pub interface_version: u32,
    /// The memory calling convention; only [`ABI_VERSION`] exists.
    pub abi: u32,
    /// The module file, relative to the manifest (installing from a directory or a manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: LimitsRequest,
}

/// What a SNIF may be granted. Everything is off unless asked for here and granted by the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// One directory, pre-opened read-only.
    pub filesystem: bool,
    /// Wall and monotonic clocks.
    pub clock: bool,
    /// Random bytes from the kernel.
    pub random: bool,
    /// Names of environment variables it wants; the user grants values.
    pub env: Vec<String>,
    /// Never provided by this host: a manifest asking for it is refused.
    pub network: bool,
}

impl Capabilities {
    /// Whether `cap` is asked for.
    pub fn asks(&self, cap: Capability) -> bool {
        match cap {
            Capability::Stdio => true,
            Capability::Filesystem => self.filesystem,
            Capability::Clock => self.clock,
            Capability::Random => self.random,
            Capability::Env => !self.env.is_empty(),
        }
    }
}

/// A group of host functions a SNIF can import. `Stdio` (captured, bounded stdout/stderr, exit,
/// empty arguments) is always available; the rest need the manifest and a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Stdio,
    Filesystem,
    Clock,
    Random,
    Env,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Stdio => "stdio",
            Capability::Filesystem => "filesystem",
            Capability::Clock => "clock",
            Capability::Random => "random",
            Capability::Env => "env",
        }
    }
}

/// Limits a manifest may ask for (each capped by [`Limits::MAX`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsRequest {
    pub fuel: Option<u64>,
    pub memory_mib: Option<u32>,
    pub output_kib: Option<u32>,
    pub deadline_ms: Option<u64>,
}

/// The budget of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Fuel units (about one per executed instruction).
    pub fuel: u64,
    /// Bytes of linear memory (each memory).
    pub memory: usize,
    /// Bytes of output.
    pub output: usize,
    /// Bytes of input the host accepts.
    pub input: usize,
    /// Bytes of captured stdout + stderr.
    pub log: usize,
    /// Wall-clock time for instantiation plus the call.
    pub deadline: Duration,
}

impl Limits {
    /// What a call gets unless the manifest asks otherwise.
    pub const DEFAULT: Limits = Limits {
        fuel: 1_000_000_000,
        memory: 64 << 20,
        output: 1 << 20,
        input: 16 << 20,
        log: 64 << 10,
        deadline: Duration::from_secs(5),
    };

    /// The most a manifest can ask for.
    pub const MAX: Limits = Limits {
        fuel: 50_000_000_000,
        memory: 1 << 30,
        output: 16 << 20,
        input: 16 << 20,
        log: 64 << 10,
        deadline: Duration::from_secs(60),
    };

    /// The defaults, adjusted by what the manifest asks for, capped by [`Limits::MAX`].
    pub fn for_manifest(req: &LimitsRequest) -> Limits {
        let d = Limits::DEFAULT;
        let m = Limits::MAX;
        Limits {
            fuel: req.fuel.unwrap_or(d.fuel).min(m.fuel),
            memory: req
                .memory_mib
                .map_or(d.memory, |v| (v as usize) << 20)
                .min(m.memory),
            output: req
                .output_kib
                .map_or(d.output, |v| (v as usize) << 10)
                .min(m.output),
            input: d.input,
            log: d.log,
            deadline: req
                .deadline_ms
                .map_or(d.deadline, Duration::from_millis)
                .min(m.deadline),
        }
    }
}

/// Whether `name` is a valid SNIF name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=63).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Manifest {
    /// Parse and check manifest text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, SnifError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| SnifError::manifest(path, e.to_string()))?;
        // Our checks first: their messages say what is allowed; the schema is the backstop.
        m.check(path)?;
        repoman_state::schemas::validate_toml(
            crate::schemas::MANIFEST_SCHEMA_ID,
            text,
            &path.display().to_string(),
        )
        .map_err(|e| SnifError::manifest(path, e.to_string()))?;
        Ok(m)
    }

    /// The checks a schema cannot express, with messages that say what is allowed.
    pub fn check(&self, path: &Path) -> Result<(), SnifError> {
        let bad = |msg: String| Err(SnifError::manifest(path, msg));
        if self.schema_version != 1 {
            return bad(format!(
                "schema_version {} is not supported (this repoman reads 1)",
                self.schema_version
            ));
        }
        if !valid_name(&self.name) {
            return bad(format!(
                "name {:?} is invalid: use 1-63 lowercase letters, digits and `-`, starting with \
                 a letter and not ending with `-`",
                self.name
            ));
        }
        if semver_like(&self.version).is_none() {
            return bad(format!(
                "version {:?} is not a semantic version (MAJOR.MINOR.PATCH)",
                self.version
            ));
        }
        if self.abi != ABI_VERSION {
            return bad(format!(
                "abi {} is not supported (this host speaks abi {ABI_VERSION})",
                self.abi
            ));
        }
        if self.interface_version != self.interface.version() {
            return bad(format!(
                "{} version {} is not supported (this host implements version {})",
                self.interface.as_str(),
                self.interface_version,
                self.interface.version()
            ));
        }
        if self.capabilities.network {
            return bad(
                "capabilities.network: this host gives SNIFs no network access; a SNIF that \
                 needs it cannot be installed"
                    .to_owned(),
            );
        }
        if let Some(v) = self.capabilities.env.iter().find(|v| !valid_env_name(v)) {
            return bad(format!(
                "capabilities.env: {v:?} is not an environment variable name"
            ));
        }
        if let Some(module) = &self.module {
            let p = Path::new(module);
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return bad(format!(
                    "module {module:?} must be a relative path inside the manifest's directory"
                ));
            }
        }
        Ok(())
    }

    /// The limits of a call to this SNIF.
    pub fn limits(&self) -> Limits {
        Limits::for_manifest(&self.limits)
    }
}

fn semver_like(v: &str) -> Option<()> {
    let core = v.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    (parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
    .then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        crate::schemas::register();
        Manifest::parse(text, Path::new("snif.toml")).map_err(|e| e.to_string())
    }

    const OK: &str = r#"
schema_version = 1
name = "agent-no-sync"
version = "1.0.0"
interface = "policy-rule"
interface_version = 1
abi = 1
module = "rule.wasm"
"#;

    #[test]
    fn a_minimal_manifest_asks_for_nothing() {
        let m = parse(OK).unwrap();
        assert_eq!(m.interface, Interface::PolicyRule);
        assert_eq!(m.capabilities, Capabilities::default());
        assert_eq!(m.limits(), Limits::DEFAULT);
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let cases = [
            (
                OK.replace("agent-no-sync", "Agent"),
                "name \"Agent\" is invalid",
            ),
            (OK.replace("1.0.0", "one"), "not a semantic version"),
            (OK.replace("abi = 1", "abi = 2"), "abi 2 is not supported"),
            (
                OK.replace("rule.wasm", "../rule.wasm"),
                "must be a relative path",
            ),
            (
                format!("{OK}[capabilities]\nnetwork = true\n"),
                "no network access",
            ),
            (
                format!("{OK}[capabilities]\nshell = true\n"),
                "unknown field",
            ),
            (
                OK.replace("policy-rule", "keylogger"),
                "unknown variant `keylogger`",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }

    #[test]
    fn limits_are_capped() {
        let m = parse(&format!(
            "{OK}[limits]\nfuel = 1\nmemory_mib = 100000\ndeadline_ms = 999999999\n"
        ))
        .unwrap();
        let l = m.limits();
        assert_eq!(l.fuel, 1);
        assert_eq!(l.memory, Limits::MAX.memory);
        assert_eq!(l.deadline, Limits::MAX.deadline);
    }
}
