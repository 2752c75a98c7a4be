//! The registry (`repoman.toml`) and per-project overrides (`<repo>/.repoman.toml`).
//!
//! Reading goes through `toml` + serde into typed values; every parse error carries the file, line
//! and column. Writing goes through `toml_edit` on the document as the user left it, so comments,
//! ordering and formatting survive every edit repoman makes. Writes are atomic and happen under an
//! advisory lock held across the whole read-modify-write ([`RegistryFile::edit`]).
//!
//! `schema_version` is [`SCHEMA_VERSION`]. A file without it, or with `0`, is the prototype format
//! (`nfs_repos` instead of `backup_root`) and is read transparently and upgraded by
//! `repoman config migrate`; a newer version is refused.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item, Table, value};

use crate::fs::{FileLock, FsError, write_atomic};
use crate::names::{ProjectName, RepoDirName};

/// The registry format this binary writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors loading or saving TOML files.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path} has schema_version {found}, but this repoman understands up to {SCHEMA_VERSION}; upgrade repoman"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
    #[error("project `{0}` is already registered")]
    Duplicate(String),
    #[error("project `{0}` is not registered")]
    UnknownProject(String),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl RegistryError {
    fn parse(path: &Path, text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> Self {
        let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        // toml's messages repeat the location and a source excerpt; keep the first line only.
        let message = message.lines().next().unwrap_or(message).trim().to_owned();
        Self::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

impl RegistryError {
    fn invalid(
        path: &Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: &str,
        hint: &str,
    ) -> Self {
        let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Self::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: message.to_owned(),
            hint: hint.to_owned(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// `[defaults]`: estate-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Directory holding the working copies (`LOCAL_REPOS`).
    pub local_repos: Option<PathBuf>,
    /// Directory on the backup share (`NFS_REPOS`).
    pub backup_root: Option<PathBuf>,
    /// The Incus project holding repoman's sandboxes (default `repoman`).
    pub incus_project: Option<String>,
    /// Storage pool for the root disks of sandboxes.
    pub pool: Option<String>,
    /// Managed network to attach (none by default).
    pub network: Option<String>,
    /// Image for new sandboxes: local alias, fingerprint, or `remote:alias`.
    pub default_image: Option<String>,
    /// Profiles applied to every new sandbox (besides `default`).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Where the repo is mounted inside a sandbox; `{user}` and `{repo}` are replaced.
    pub mount_path: Option<String>,
    /// Largest number of deletions a sync may make without review.
    pub max_delete: Option<u64>,
    /// Largest share (percent of backup files) a sync may delete without review.
    pub max_delete_percent: Option<f64>,
    /// Exclude patterns for every project's backup.
    #[serde(default)]
    pub backup_exclude: Vec<String>,
    /// Expected filesystem type of the backup root (e.g. `nfs4`, `zfs`).
    pub backup_fstype: Option<String>,
    /// Where the backup share is mounted: the backup root or an ancestor (recorded by `setup`;
    /// a root found on another mount means the share is not mounted).
    pub backup_mount_point: Option<PathBuf>,
    /// The backup share's mount source, e.g. `server:/export` or `/dev/sdb1` (recorded by `setup`).
    pub backup_device: Option<String>,
    /// Seconds a filesystem probe of the backup root may take.
    pub probe_timeout_secs: Option<u64>,
    /// Directories scanned for tools besides `PATH`.
    pub tools_dirs: Option<Vec<PathBuf>>,
    /// `limits.processes` of every sandbox (a fork bomb stops there).
    pub limits_processes: Option<u64>,
    /// `limits.memory` of every sandbox (`4GiB`, `50%`).
    pub limits_memory: Option<String>,
    /// `limits.cpu` of every sandbox (a CPU count or a set like `0-3`).
    pub limits_cpu: Option<String>,
    /// Give sandboxes the Incus guest API (`/dev/incus`); off by default.
    pub guest_api: Option<bool>,
    /// Device types sandboxes may use that the restricted project blocks otherwise
    /// (`unix-char`, `unix-block`, `usb`, `pci`, `gpu`).
    #[serde(default)]
    pub allow_devices: Vec<String>,
    /// How often the daemon syncs every project (`6h`, `30m`, `1d`); unset: no scheduled syncs.
    pub sync_every: Option<String>,
    /// Random-looking but deterministic spread added to each project's period (default: a tenth
    /// of `sync_every`), so projects synced together do not all run at once again.
    pub sync_jitter: Option<String>,
}

/// Device types `[defaults] allow_devices` may list (the ones the pre-start hardening check
/// refuses otherwise).
pub const ALLOWABLE_DEVICE_TYPES: &[&str] = &[
    "unix-char",
    "unix-block",
    "unix-hotplug",
    "usb",
    "pci",
    "gpu",
];

impl Defaults {
    /// The first sandbox setting (`limits_*`, `allow_devices`) Incus would refuse or that makes
    /// no sense: `(key, what is wrong, how to fix it)`.
    fn check_sandbox_values(&self) -> Option<(&'static str, String, String)> {
        if let Some(n) = self.limits_processes
            && !(16..=4_194_304).contains(&n)
        {
            return Some((
                "limits_processes",
                format!("{n} is out of range: a sandbox needs at least 16 processes, and Linux allows at most 4194304"),
                "set limits_processes to a number of processes such as 2000 (the default), or remove the line".to_owned(),
            ));
        }
        if let Some(m) = &self.limits_memory
            && let Err(why) = check_memory_limit(m)
        {
            return Some((
                "limits_memory",
                format!("`{m}` {why}"),
                "use a size such as \"4GiB\" or \"512MiB\", or a share of the host's memory such as \"50%\" (the default)".to_owned(),
            ));
        }
        if let Some(c) = &self.limits_cpu
            && let Err(why) = check_cpu_limit(c)
        {
            return Some((
                "limits_cpu",
                format!("`{c}` {why}"),
                "use a number of CPUs such as \"2\", or a set of CPU ids such as \"0-3\" or \"0,2\"; remove the line for all CPUs (the default)".to_owned(),
            ));
        }
        for (key, v) in [
            ("sync_every", &self.sync_every),
            ("sync_jitter", &self.sync_jitter),
        ] {
            if let Some(v) = v
                && let Err(why) = parse_duration(v)
            {
                return Some((
                    key,
                    why,
                    "use a number and a unit: s, m, h, d or w (e.g. \"6h\"), or remove the line"
                        .to_owned(),
                ));
            }
        }
        if let Some(d) = self
            .allow_devices
            .iter()
            .find(|d| !ALLOWABLE_DEVICE_TYPES.contains(&d.as_str()))
        {
            return Some((
                "allow_devices",
                format!("`{d}` is not a device type repoman guards"),
                format!(
                    "list only these Incus device types: {}",
                    ALLOWABLE_DEVICE_TYPES.join(", ")
                ),
            ));
        }
        None
    }
}

/// Parse a duration like `90s`, `30m`, `6h`, `1d`, `1w` (a single number and unit; `0` refused).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration: use a number and a unit, e.g. 30m, 6h, 1d");
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("{s:?}: a period must be longer than zero"));
    }
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// `limits.memory` as Incus takes it: `N%` (1 to 100) or a size `N` with an optional unit (`B`,
/// `kB`...`EB`, `KiB`...`EiB`), at least 64 MiB (a bare `4` would be four bytes).
fn check_memory_limit(v: &str) -> Result<(), &'static str> {
    if let Some(p) = v.strip_suffix('%') {
        return match p.parse::<u64>() {
            Ok(1..=100) => Ok(()),
            _ => Err("is not a share of the host's memory between 1% and 100%"),
        };
    }
    let digits = v.chars().take_while(char::is_ascii_digit).count();
    let (n, unit) = v.split_at(digits);
    let Ok(n) = n.parse::<u128>() else {
        return Err("is not a size (a number with a unit such as GiB) or a percentage");
    };
    let mult: u128 = match unit {
        "" | "B" => 1,
        "kB" => 1000,
        "MB" => 1000u128.pow(2),
        "GB" => 1000u128.pow(3),
        "TB" => 1000u128.pow(4),
        "PB" => 1000u128.pow(5),
        "EB" => 1000u128.pow(6),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "PiB" => 1 << 50,
        "EiB" => 1 << 60,
        _ => return Err("has an unknown unit (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)"),
    };
    if n.saturating_mul(mult) < 64 << 20 {
        return Err("is below 64MiB, too little for a sandbox to run");
    }
    Ok(())
}

/// `limits.cpu` as Incus takes it: a CPU count (1 or more), or a set of CPU ids (`0-3`, `0,2`,
/// `0-1,4`).
fn check_cpu_limit(v: &str) -> Result<(), &'static str> {
    if let Ok(n) = v.parse::<u32>() {
        return if n >= 1 {
            Ok(())
        } else {
            Err("asks for no CPU at all")
        };
    }
    let id = |s: &str| !s.is_empty() && s.len() <= 5 && s.chars().all(|c| c.is_ascii_digit());
    let ok = !v.is_empty()
        && v.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => id(a) && id(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
            None => id(part),
        });
    if ok {
        Ok(())
    } else {
        Err("is neither a CPU count nor a set of CPU ids")
    }
}

/// A host directory `.repoman.toml` `[[mount]]`s may name (`[[mount_root]]`). Only the host
/// registry declares these: a sandbox can write its repo's `.repoman.toml`, never this file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountRoot {
    /// Host directory (`~` is the host user's home).
    pub path: PathBuf,
    /// Mounts under this root may be writable (read-only otherwise, whatever the repo asks).
    #[serde(default)]
    pub writable: bool,
}

/// A sandbox profile repoman ensures exists in its Incus project (`[[profile]]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub devices: BTreeMap<String, BTreeMap<String, String>>,
}

/// A registered project (`[[project]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectEntry {
    pub name: ProjectName,
    /// Directory name under `local_repos` and `backup_root`.
    pub repo: RepoDirName,
    /// Whether the project has a sandbox container.
    #[serde(default = "yes")]
    pub container: bool,
    pub image: Option<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// RFC 3339 time of registration.
    pub created_at: Option<String>,
    /// RFC 3339 time of the last successful backup sync.
    pub last_sync: Option<String>,
    /// This project's scheduled sync period (`6h`, `1d`), overriding `[defaults] sync_every`;
    /// `off`: no scheduled syncs of this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_every: Option<String>,
}

impl ProjectEntry {
    /// The period the daemon syncs this project at: its own `sync_every` (`off`: never), else
    /// `default`.
    pub fn sync_period(&self, default: Option<std::time::Duration>) -> Option<std::time::Duration> {
        match self.sync_every.as_deref() {
            Some("off") => None,
            Some(v) => parse_duration(v).ok(),
            None => default,
        }
    }
}

fn yes() -> bool {
    true
}

/// Effect of a policy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleEffect {
    Allow,
    Deny,
    ReviewRequired,
}

/// A user policy rule (`[[policy.rule]]`). Absent match fields match everything; `*` too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Operation, e.g. `sync`, `sandbox.remove`; a trailing `*` matches a prefix.
    pub operation: Option<String>,
    /// Actor kind: `human`, `agent`, `daemon`, `ci`.
    pub actor: Option<String>,
    pub project: Option<String>,
    pub profile: Option<String>,
    pub effect: RuleEffect,
    pub reason: String,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default, rename = "rule")]
    pub rules: Vec<PolicyRule>,
}

/// The typed registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub schema_version: u32,
    /// Identifies this estate (written on first save; on backup markers and Incus tags).
    pub estate_id: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "profile")]
    pub profiles: Vec<ProfileDef>,
    /// Host directories extra mounts may come from.
    #[serde(default, rename = "mount_root")]
    pub mount_roots: Vec<MountRoot>,
    #[serde(default, rename = "project")]
    pub projects: Vec<ProjectEntry>,
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// Check TOML syntax with the `toml` crate before handing text to `toml_edit`: toml_edit 0.23
/// panics ("all items have spans") on some malformed inputs that cargo-fuzz found, where `toml`
/// reports a syntax error with its span. Call it before every `toml_edit` parse of user text.
pub fn toml_syntax_check(text: &str) -> Result<(), toml::de::Error> {
    toml::from_str::<toml::Table>(text).map(|_| ())
}

impl Registry {
    /// Parse registry text. Version 0 (the prototype format) is upgraded in memory.
    pub fn parse(path: &Path, text: &str) -> Result<Self, RegistryError> {
        toml_syntax_check(text)
            .map_err(|e| RegistryError::parse(path, text, e.span(), e.message()))?;
        let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            RegistryError::parse(path, text, e.span(), e.message())
        })?;
        let found = doc
            .get("schema_version")
            .and_then(Item::as_integer)
            .unwrap_or(0);
        if found > i64::from(SCHEMA_VERSION) {
            return Err(RegistryError::TooNew {
                path: path.to_path_buf(),
                found: found as u32,
            });
        }
        let old = found < i64::from(SCHEMA_VERSION);
        // An older file is read through its renamed keys only: adding `schema_version` to the
        // text would shift every line, and errors must cite the user's file as it is.
        let renamed;
        let text_for_errors = if old && !rename_old_keys(&mut doc).is_empty() {
            renamed = doc.to_string();
            &renamed
        } else {
            text
        };
        let mut reg: Self = toml::from_str(text_for_errors).map_err(|e: toml::de::Error| {
            RegistryError::parse(path, text_for_errors, e.span(), e.message())
        })?;
        if old {
            reg.schema_version = SCHEMA_VERSION;
        }
        reg.check_values(path, text_for_errors)?;
        Ok(reg)
    }

    /// What the types alone cannot say: values out of range, and a project name registered
    /// twice (both would map to the same sandbox and backup, and `list` would show it twice).
    fn check_values(&self, path: &Path, text: &str) -> Result<(), RegistryError> {
        let doc = toml_edit::Document::parse(text).ok();
        let span_of = |f: &dyn Fn(&toml_edit::Table) -> Option<std::ops::Range<usize>>| {
            doc.as_ref().and_then(|d| f(d.as_table()))
        };
        if self.defaults.probe_timeout_secs == Some(0) {
            let span = span_of(&|t| t.get("defaults")?.get("probe_timeout_secs")?.span());
            return Err(RegistryError::invalid(
                path,
                text,
                span,
                "[defaults] probe_timeout_secs = 0: a probe of the backup root needs at least 1 second",
                "set probe_timeout_secs to 1 or more (the default is 5), or remove the line",
            ));
        }
        if let Some((key, message, hint)) = self.defaults.check_sandbox_values() {
            let span = span_of(&|t| t.get("defaults")?.get(key)?.span());
            return Err(RegistryError::invalid(
                path,
                text,
                span,
                &format!("[defaults] {key}: {message}"),
                &hint,
            ));
        }
        for (i, p) in self.projects.iter().enumerate() {
            if let Some(v) = p.sync_every.as_deref().filter(|v| *v != "off")
                && let Err(why) = parse_duration(v)
            {
                let span = span_of(&|t| {
                    t.get("project")?
                        .as_array_of_tables()?
                        .get(i)?
                        .get("sync_every")?
                        .span()
                });
                return Err(RegistryError::invalid(
                    path,
                    text,
                    span,
                    &format!("[[project]] {}: sync_every: {why}", p.name),
                    "use a number and a unit: s, m, h, d or w (e.g. \"6h\"), `off` for no scheduled syncs, or remove the line",
                ));
            }
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in self.projects.iter().enumerate() {
            if let Some(first) = seen.insert(p.name.as_str(), i) {
                let name_span = |idx: usize| {
                    span_of(&|t| {
                        t.get("project")?
                            .as_array_of_tables()?
                            .get(idx)?
                            .get("name")?
                            .span()
                    })
                };
                let first_line = name_span(first)
                    .map(|s| format!(" (first at line {})", line_col(text, s.start).0))
                    .unwrap_or_default();
                return Err(RegistryError::invalid(
                    path,
                    text,
                    name_span(i),
                    &format!("project `{}` is registered twice{first_line}", p.name),
                    "a project name is also its sandbox's name: remove one [[project]] entry or rename it",
                ));
            }
        }
        Ok(())
    }

    /// Find a project by name.
    pub fn project(&self, name: &str) -> Option<&ProjectEntry> {
        self.projects.iter().find(|p| p.name.as_str() == name)
    }

    /// The Incus project name (default `repoman`).
    pub fn incus_project(&self) -> &str {
        self.defaults.incus_project.as_deref().unwrap_or("repoman")
    }
}

/// Upgrade a version-0 document in place to [`SCHEMA_VERSION`]; returns a line per change.
pub fn migrate_doc(doc: &mut DocumentMut) -> Vec<String> {
    let mut changes = rename_old_keys(doc);
    let before = doc
        .get("schema_version")
        .and_then(Item::as_integer)
        .unwrap_or(0);
    if before != i64::from(SCHEMA_VERSION) {
        doc.insert("schema_version", value(i64::from(SCHEMA_VERSION)));
        changes.push(format!("schema_version {before} -> {SCHEMA_VERSION}"));
    }
    changes
}

/// The keys version 0 named differently (`[defaults] nfs_repos`, `image`), renamed in place.
fn rename_old_keys(doc: &mut DocumentMut) -> Vec<String> {
    let mut changes = Vec::new();
    if let Some(defaults) = doc.get_mut("defaults").and_then(Item::as_table_like_mut) {
        for (old, new) in [("nfs_repos", "backup_root"), ("image", "default_image")] {
            if let Some(item) = defaults.remove(old) {
                if defaults.get(new).is_none() {
                    defaults.insert(new, item);
                }
                changes.push(format!("[defaults] {old} renamed to {new}"));
            }
        }
    }
    changes
}

/// The registry file: the typed view plus the editable document it came from.
#[derive(Debug)]
pub struct RegistryFile {
    pub path: PathBuf,
    pub registry: Registry,
    doc: DocumentMut,
    original: String,
}

impl RegistryFile {
    /// Load `path`; a missing file is an empty registry (nothing is created).
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(RegistryError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::from_text(path, text)
    }

    /// The registry file from text already read from `path` (what [`RegistryFile::load`] does
    /// after reading; also the entry point of the fuzz target).
    pub fn from_text(path: &Path, text: String) -> Result<Self, RegistryError> {
        let registry = Registry::parse(path, &text)?;
        let doc = text.parse().unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            registry,
            doc,
            original: text,
        })
    }

    /// Whether the file exists on disk.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Lock the registry, load it, let `f` change it, and save it if anything changed. Returns
    /// `f`'s value and whether the file was written.
    pub fn edit<T>(
        path: &Path,
        lock_timeout: Option<Duration>,
        f: impl FnOnce(&mut RegistryFile) -> Result<T, RegistryError>,
    ) -> Result<(T, bool), RegistryError> {
        if let Some(dir) = path.parent() {
            crate::paths::ensure_dir(dir).map_err(|e| RegistryError::Read {
                path: dir.to_path_buf(),
                source: io::Error::other(e.to_string()),
            })?;
        }
        let lock_path = lock_path_for(path);
        let _lock = FileLock::acquire(&lock_path, "the registry", lock_timeout, || {})?;
        let mut file = Self::load(path)?;
        let out = f(&mut file)?;
        let written = file.save_locked()?;
        Ok((out, written))
    }

    /// The registry text as it would be saved.
    pub fn render(&self) -> String {
        self.doc.to_string()
    }

    /// Whether the document differs from the file on disk.
    pub fn is_dirty(&self) -> bool {
        self.render() != self.original
    }

    fn save_locked(&mut self) -> Result<bool, RegistryError> {
        if self.doc.get("schema_version").is_none() {
            // New file: put the version first, as a header.
            let mut fresh = DocumentMut::new();
            fresh.insert("schema_version", value(i64::from(SCHEMA_VERSION)));
            for (k, v) in self.doc.iter() {
                fresh.insert(k, v.clone());
            }
            self.doc = fresh;
        }
        if !self.is_dirty() {
            return Ok(false);
        }
        let text = self.render();
        // Re-validate what we are about to write: never save a registry we could not read back.
        self.registry = Registry::parse(&self.path, &text)?;
        write_atomic(&self.path, text.as_bytes(), None)?;
        self.original = text;
        Ok(true)
    }

    /// Migrate an older document to the current version (in memory; saved by `edit`).
    pub fn migrate(&mut self) -> Vec<String> {
        migrate_doc(&mut self.doc)
    }

    /// Set the estate id if none is recorded; returns the id.
    pub fn ensure_estate_id(&mut self, new_id: impl FnOnce() -> String) -> String {
        if let Some(id) = &self.registry.estate_id {
            return id.clone();
        }
        let id = new_id();
        self.doc.insert("estate_id", value(id.clone()));
        self.registry.estate_id = Some(id.clone());
        id
    }

    /// Set a string-valued `[defaults]` key, keeping its decor. Returns whether it changed.
    pub fn set_default(&mut self, key: &str, new: &str) -> bool {
        let defaults = self.defaults_table();
        if defaults.get(key).and_then(Item::as_str) == Some(new) {
            return false;
        }
        set_keep_decor(defaults, key, toml_edit::Value::from(new));
        true
    }

    /// Set a string-array `[defaults]` key. Returns whether it changed.
    pub fn set_default_list(&mut self, key: &str, items: &[String]) -> bool {
        let defaults = self.defaults_table();
        let current: Option<Vec<&str>> = defaults
            .get(key)
            .and_then(Item::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect());
        if current.as_deref() == Some(&items.iter().map(String::as_str).collect::<Vec<_>>()[..]) {
            return false;
        }
        let arr: toml_edit::Array = items.iter().map(String::as_str).collect();
        set_keep_decor(defaults, key, toml_edit::Value::Array(arr));
        true
    }

    fn defaults_table(&mut self) -> &mut Table {
        if !self.doc.contains_key("defaults") {
            self.doc.insert("defaults", Item::Table(Table::new()));
        }
        self.doc["defaults"]
            .as_table_mut()
            .expect("[defaults] is a table")
    }

    fn project_tables(&mut self) -> Option<&mut toml_edit::ArrayOfTables> {
        self.doc
            .get_mut("project")
            .and_then(Item::as_array_of_tables_mut)
    }

    /// Add a project. Refuses a duplicate name.
    pub fn add_project(&mut self, p: &ProjectEntry) -> Result<(), RegistryError> {
        if self.registry.project(p.name.as_str()).is_some() {
            return Err(RegistryError::Duplicate(p.name.to_string()));
        }
        let mut t = Table::new();
        t.insert("name", value(p.name.as_str()));
        t.insert("repo", value(p.repo.as_str()));
        if !p.container {
            t.insert("container", value(false));
        }
        if let Some(i) = &p.image {
            t.insert("image", value(i.as_str()));
        }
        if !p.profiles.is_empty() {
            let arr: toml_edit::Array = p.profiles.iter().map(String::as_str).collect();
            t.insert("profiles", value(arr));
        }
        for (k, v) in [
            ("created_at", &p.created_at),
            ("last_sync", &p.last_sync),
            ("sync_every", &p.sync_every),
        ] {
            if let Some(v) = v {
                t.insert(k, value(v.as_str()));
            }
        }
        if self.project_tables().is_none() {
            self.doc
                .insert("project", Item::ArrayOfTables(Default::default()));
        }
        self.project_tables().expect("just inserted").push(t);
        self.registry.projects.push(p.clone());
        Ok(())
    }

    /// Change one string field of a project (`None` removes it). Returns whether it changed.
    pub fn set_project_field(
        &mut self,
        name: &str,
        key: &str,
        new: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let tables = self
            .project_tables()
            .ok_or_else(|| RegistryError::UnknownProject(name.into()))?;
        let t = tables
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
            .ok_or_else(|| RegistryError::UnknownProject(name.into()))?;
        let changed = match new {
            Some(v) if t.get(key).and_then(Item::as_str) == Some(v) => false,
            Some(v) => {
                set_keep_decor(t, key, toml_edit::Value::from(v));
                true
            }
            None => t.remove(key).is_some(),
        };
        if changed {
            self.reparse()?;
        }
        Ok(changed)
    }

    /// Set the `container` flag of a project.
    pub fn set_project_container(&mut self, name: &str, on: bool) -> Result<bool, RegistryError> {
        let tables = self
            .project_tables()
            .ok_or_else(|| RegistryError::UnknownProject(name.into()))?;
        let t = tables
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
            .ok_or_else(|| RegistryError::UnknownProject(name.into()))?;
        let current = t.get("container").and_then(Item::as_bool).unwrap_or(true);
        if current == on {
            return Ok(false);
        }
        if on {
            t.remove("container");
        } else {
            t.insert("container", value(false));
        }
        self.reparse()?;
        Ok(true)
    }

    /// Remove a project. Returns whether it was registered.
    pub fn remove_project(&mut self, name: &str) -> Result<bool, RegistryError> {
        let Some(tables) = self.project_tables() else {
            return Ok(false);
        };
        let before = tables.len();
        tables.retain(|t| t.get("name").and_then(Item::as_str) != Some(name));
        let removed = tables.len() != before;
        if removed {
            self.reparse()?;
        }
        Ok(removed)
    }

    fn reparse(&mut self) -> Result<(), RegistryError> {
        self.registry = Registry::parse(&self.path, &self.doc.to_string())?;
        Ok(())
    }
}

/// Replace a value, keeping the comment before the key and the one after the old value.
fn set_keep_decor(table: &mut Table, key: &str, mut new: toml_edit::Value) {
    // Assigning through `get_mut` keeps the key (and the comment above it, which is the key's
    // decor); copying the old value's decor keeps the spacing and the comment after the value.
    match table.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *new.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(new);
        }
        None => {
            table.insert(key, Item::Value(new));
        }
    }
}

/// The lock file guarding a registry at `path`.
pub fn lock_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

/// A bind mount declared by a project (`[[mount]]` in `.repoman.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountDef {
    /// Host path; relative paths are relative to the repo, `~` is the host user's home.
    pub source: String,
    /// Path inside the sandbox.
    pub path: String,
    #[serde(default)]
    pub readonly: bool,
}

/// `[backup]` in `.repoman.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupOverrides {
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `<repo>/.repoman.toml`: per-project overrides, committed with the repo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectOverrides {
    pub image: Option<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default, rename = "mount")]
    pub mounts: Vec<MountDef>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub backup: BackupOverrides,
}

/// The per-project overrides file name.
pub const OVERRIDES_FILE: &str = ".repoman.toml";

/// The largest `.repoman.toml` repoman reads.
pub const OVERRIDES_MAX_BYTES: u64 = 64 * 1024;

impl ProjectOverrides {
    /// Load `<repo>/.repoman.toml`; a missing file means no overrides.
    ///
    /// The sandbox can write this file: it is read with [`crate::fs::read_in_dir`] (a symlink,
    /// FIFO or device is refused, never followed or waited on). Whether its content may be
    /// applied is decided by the caller (trust, DESIGN.md §5a).
    pub fn load(repo: &Path) -> Result<Self, RegistryError> {
        match Self::read_raw(repo)? {
            None => Ok(Self::default()),
            Some(text) => Self::parse(&repo.join(OVERRIDES_FILE), &text),
        }
    }

    /// The text of `<repo>/.repoman.toml`, or `None` when there is none.
    pub fn read_raw(repo: &Path) -> Result<Option<String>, RegistryError> {
        let path = repo.join(OVERRIDES_FILE);
        let bytes = crate::fs::read_in_dir(repo, Path::new(OVERRIDES_FILE), OVERRIDES_MAX_BYTES)
            .map_err(|source| RegistryError::Read {
                path: path.clone(),
                source,
            })?;
        bytes
            .map(|b| {
                String::from_utf8(b).map_err(|_| RegistryError::Read {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
                })
            })
            .transpose()
    }

    /// Parse `.repoman.toml` text (`path` is only used in messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, RegistryError> {
        toml::from_str(text)
            .map_err(|e: toml::de::Error| RegistryError::parse(path, text, e.span(), e.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# my estate
schema_version = 1

[defaults]
# where the work lives
local_repos = "/srv/repos" # fast disk
backup_root = "/mnt/nfs/repos"

[[project]]
name = "alpha"   # first
repo = "alpha"
"#;

    #[test]
    fn sandbox_limits_and_allowed_devices_are_validated_with_their_line() {
        let path = Path::new("/h/repoman.toml");
        for ok in [
            "limits_processes = 2000",
            "limits_memory = \"50%\"",
            "limits_memory = \"4GiB\"",
            "limits_memory = \"512MB\"",
            "limits_memory = \"1073741824\"",
            "limits_cpu = \"2\"",
            "limits_cpu = \"0-3\"",
            "limits_cpu = \"0,2-3\"",
            "allow_devices = [\"gpu\", \"unix-char\"]",
            "guest_api = true",
        ] {
            Registry::parse(path, &format!("[defaults]\n{ok}\n"))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, key) in [
            ("limits_processes = 0", "limits_processes"),
            ("limits_processes = 5000000", "limits_processes"),
            ("limits_memory = \"0%\"", "limits_memory"),
            ("limits_memory = \"150%\"", "limits_memory"),
            ("limits_memory = \"4\"", "limits_memory"),
            ("limits_memory = \"4G\"", "limits_memory"),
            ("limits_memory = \"lots\"", "limits_memory"),
            ("limits_cpu = \"0\"", "limits_cpu"),
            ("limits_cpu = \"3-1\"", "limits_cpu"),
            ("limits_cpu = \"all\"", "limits_cpu"),
            ("allow_devices = [\"disk\"]", "allow_devices"),
        ] {
            let err = Registry::parse(path, &format!("# x\n[defaults]\n{bad}\n")).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("/h/repoman.toml:3:")
                    && text.contains(&format!("[defaults] {key}")),
                "{bad}: {text}"
            );
            assert_eq!(
                crate::DomainError::kind(&err),
                crate::ErrorKind::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repoman.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let (_, written) = RegistryFile::edit(&path, None, |f| {
            assert!(f.set_default("local_repos", "/fast/repos"));
            f.add_project(&ProjectEntry {
                name: ProjectName::parse("beta").unwrap(),
                repo: RepoDirName::parse("beta-repo").unwrap(),
                container: false,
                image: None,
                profiles: vec![],
                created_at: None,
                last_sync: None,
                sync_every: None,
            })?;
            f.set_project_field("alpha", "last_sync", Some("2026-01-01T00:00:00.000Z"))?;
            Ok(())
        })
        .unwrap();
        assert!(written);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# my estate\nschema_version = 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# where the work lives\nlocal_repos = \"/fast/repos\" # fast disk\n"),
            "{text}"
        );
        assert!(text.contains("name = \"alpha\"   # first\n"), "{text}");
        let reg = RegistryFile::load(&path).unwrap().registry;
        assert_eq!(reg.projects.len(), 2);
        assert!(!reg.project("beta").unwrap().container);
        assert_eq!(
            reg.project("alpha").unwrap().last_sync.as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn unchanged_registry_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repoman.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let (_, written) = RegistryFile::edit(&path, None, |f| {
            assert!(!f.set_default("backup_root", "/mnt/nfs/repos"));
            Ok(())
        })
        .unwrap();
        assert!(!written);
    }

    #[test]
    fn malformed_toml_names_line_and_column() {
        let e = Registry::parse(
            Path::new("/x/repoman.toml"),
            "schema_version = 1\n[defaults\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/x/repoman.toml:2:"), "{e}");
        let e = Registry::parse(
            Path::new("r.toml"),
            "schema_version = 1\n[[project]]\nname = \"Bad\"\nrepo = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("r.toml:3:8") && e.contains("lowercase"),
            "{e}"
        );
    }

    /// Found by the `registry_toml` fuzz target: an older file's errors cited the line in the
    /// migrated text (one more line, for the added `schema_version`), past the end of the file.
    #[test]
    fn older_file_errors_cite_the_users_line() {
        let e = Registry::parse(Path::new("r.toml"), "[de]#???\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.toml:1:2: unknown field `de`"), "{e}");
        let e = Registry::parse(Path::new("r.toml"), "# old\n\n[defaults]\nnfs_repos = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.toml:4:"), "{e}");
    }

    #[test]
    fn newer_schema_is_refused_and_older_is_migrated() {
        let e = Registry::parse(Path::new("r.toml"), "schema_version = 99\n").unwrap_err();
        assert!(matches!(e, RegistryError::TooNew { found: 99, .. }));
        let old = "[defaults]\nnfs_repos = \"/mnt/b\" # backup\n";
        let reg = Registry::parse(Path::new("r.toml"), old).unwrap();
        assert_eq!(
            reg.defaults.backup_root.as_deref(),
            Some(Path::new("/mnt/b"))
        );
        let mut doc: DocumentMut = old.parse().unwrap();
        let changes = migrate_doc(&mut doc);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            doc.to_string()
                .contains("backup_root = \"/mnt/b\" # backup"),
            "{doc}"
        );
    }

    #[test]
    fn overrides_parse_and_report_positions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(OVERRIDES_FILE),
            "image = \"debian\"\n[[mount]]\nsource = \"data\"\npath = \"/data\"\nreadonly = true\n[env]\nFOO = \"bar\"\n",
        )
        .unwrap();
        let o = ProjectOverrides::load(dir.path()).unwrap();
        assert_eq!(o.mounts[0].path, "/data");
        assert_eq!(o.env["FOO"], "bar");
        std::fs::write(
            dir.path().join(OVERRIDES_FILE),
            "image = \"x\"\n[env]\nFOO = \n",
        )
        .unwrap();
        let e = ProjectOverrides::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(".repoman.toml:3:"), "{e}");
        assert!(
            ProjectOverrides::load(&dir.path().join("missing")).unwrap()
                == ProjectOverrides::default()
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncéd", 6), (2, 3));
    }

    /// Inputs cargo-fuzz found (fuzz/, `registry_toml` and `mise_toml`) on which toml_edit 0.23
    /// panicked ("all items have spans"): they are syntax errors, never a crash.
    pub(crate) const FUZZ_TOML_CRASHES: &[&[u8]] =
        &[b"==*#+\r.==.{", b"==={%={A\r[]...\x04\x00\x00.\t\x00"];

    #[test]
    fn fuzz_found_toml_inputs_are_errors_not_panics() {
        for input in FUZZ_TOML_CRASHES {
            let text = std::str::from_utf8(input).unwrap();
            let err = Registry::parse(Path::new("repoman.toml"), text).unwrap_err();
            assert!(err.to_string().contains("repoman.toml:1:"), "{err}");
            assert!(ProjectOverrides::parse(Path::new(".repoman.toml"), text).is_err());
            assert!(RegistryFile::from_text(Path::new("repoman.toml"), text.to_owned()).is_err());
        }
    }
}
