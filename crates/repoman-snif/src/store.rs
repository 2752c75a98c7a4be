//! Installed SNIFs on disk, under `$XDG_DATA_HOME/repoman/snifs/` (DESIGN.md §4):
//!
//! ```text
//! snifs/modules/<blake3>.wasm     the module bytes, content-addressed, immutable
//! snifs/installed/<name>.json     the install record: module hash, manifest, imports
//! snifs/grants/<name>.json        what the user granted, bound to one module hash
//! snifs/.lock                     serializes installs, grants and removals
//! ```
//!
//! Invariants:
//! - A module file's name is the BLAKE3 of its bytes; loading re-hashes it, so a file swapped on
//!   disk is refused, never run.
//! - A grant names the module hash it was given to: installing different bytes under the same
//!   name drops the old grants (a new module must be granted again).
//! - Install, grant and remove pass the policy gate and are events (`snif.installed`,
//!   `snif.granted`, `snif.removed`); a dry run writes nothing.
//! - Reading (`list`, `inspect`, `load`) never creates a directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use repoman_core::Paths;
use repoman_core::fs::{FileLock, write_atomic};
use repoman_core::registry::PolicyRule;
use repoman_state::{ActorKind, Effect, GateMode, NewEvent, Operation, State, Verdict, gate};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::SnifError;
use crate::host::{Grants, Host, Import, Snif};
use crate::interface::Interface;
use crate::manifest::{Capability, Manifest, valid_name};

/// The largest module install accepts.
pub const MAX_MODULE_BYTES: u64 = 32 << 20;

/// One installed SNIF's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    pub schema_version: u32,
    pub name: String,
    /// BLAKE3 hex of the module bytes.
    pub module: String,
    pub size: u64,
    pub manifest: Manifest,
    /// `module.name` of every import, as found at install.
    pub imports: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRecord {
    module: String,
    grants: Grants,
}

/// The SNIF store of one user.
#[derive(Debug, Clone)]
pub struct SnifStore {
    root: PathBuf,
}

/// What an install would do (and did, unless dry run).
#[derive(Debug, Clone, Serialize)]
pub struct InstallPlan {
    pub name: String,
    pub version: String,
    pub interface: Interface,
    pub module: String,
    pub size: u64,
    pub imports: Vec<Import>,
    /// The module hash this replaces, if the name was installed.
    pub previous: Option<String>,
    /// Whether grants of the previous module are dropped.
    pub drops_grants: bool,
    pub dry_run: bool,
}

/// What to grant (added to existing grants), or `revoke` to clear them all.
#[derive(Debug, Clone, Default)]
pub struct GrantRequest {
    pub dir: Option<PathBuf>,
    pub clock: bool,
    pub random: bool,
    pub env: Vec<(String, String)>,
    pub revoke: bool,
}

/// One import beside the manifest's claim and the user's grant.
#[derive(Debug, Clone, Serialize)]
pub struct ImportRow {
    #[serde(flatten)]
    pub import: Import,
    /// The manifest asks for the capability this import needs.
    pub claimed: bool,
    pub granted: bool,
}

/// Everything `snif inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub installed: Installed,
    pub module_path: PathBuf,
    /// The module file still hashes to its name.
    pub intact: bool,
    /// The module's real imports (re-read from the bytes), with claim and grant.
    pub imports: Vec<ImportRow>,
    /// Capabilities the manifest asks for.
    pub claims: Vec<Capability>,
    pub grants: Grants,
    pub engine: &'static str,
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnifError + '_ {
    move |source| SnifError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

impl SnifStore {
    pub fn new(paths: &Paths) -> Self {
        Self {
            root: paths.data_dir.join("snifs"),
        }
    }

    /// A store rooted at `root` (tests, benchmarks).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn module_path(&self, hash: &str) -> PathBuf {
        self.root.join("modules").join(format!("{hash}.wasm"))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("installed").join(format!("{name}.json"))
    }

    fn grant_path(&self, name: &str) -> PathBuf {
        self.root.join("grants").join(format!("{name}.json"))
    }

    fn lock(&self) -> Result<FileLock, SnifError> {
        repoman_core::paths::ensure_dir(&self.root)?;
        Ok(FileLock::acquire(
            &self.root.join(".lock"),
            "the SNIF store",
            Some(Duration::from_secs(30)),
            || {},
        )?)
    }

    /// Every installed SNIF, sorted by name.
    pub fn list(&self) -> Result<Vec<Installed>, SnifError> {
        let dir = self.root.join("installed");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_err(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_err(&dir))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if valid_name(name) {
                out.push(self.get(name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The record of `name`.
    pub fn get(&self, name: &str) -> Result<Installed, SnifError> {
        if !valid_name(name) {
            return Err(SnifError::NotInstalled(name.to_owned()));
        }
        let path = self.record_path(name);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnifError::NotInstalled(name.to_owned()));
            }
            Err(e) => return Err(read_err(&path)(e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| SnifError::manifest(&path, format!("unreadable install record: {e}")))
    }

    /// The grants of `name` for module `hash` (empty if none, or if they were for other bytes).
    pub fn grants(&self, name: &str, hash: &str) -> Result<Grants, SnifError> {
        let path = self.grant_path(name);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Grants::default()),
            Err(e) => return Err(read_err(&path)(e)),
        };
        let rec: GrantRecord = serde_json::from_slice(&text)
            .map_err(|e| SnifError::manifest(&path, format!("unreadable grant record: {e}")))?;
        Ok(if rec.module == hash {
            rec.grants
        } else {
            Grants::default()
        })
    }

    fn module_bytes(&self, installed: &Installed) -> Result<Vec<u8>, SnifError> {
        let path = self.module_path(&installed.module);
        let bytes = std::fs::read(&path).map_err(read_err(&path))?;
        if hash_hex(&bytes) != installed.module {
            return Err(SnifError::InvalidModule {
                name: installed.name.clone(),
                message: format!(
                    "{} no longer hashes to its name (changed on disk); reinstall the SNIF",
                    path.display()
                ),
            });
        }
        Ok(bytes)
    }

    /// Everything needed to call `name`: bytes (hash-checked), grants, limits.
    pub fn load(&self, name: &str) -> Result<Snif, SnifError> {
        let installed = self.get(name)?;
        let wasm = self.module_bytes(&installed)?;
        let grants = self.grants(name, &installed.module)?;
        Ok(Snif {
            name: installed.name.clone(),
            interface: installed.manifest.interface,
            module_hash: installed.module.clone(),
            wasm: Arc::from(wasm),
            grants,
            limits: installed.manifest.limits(),
        })
    }

    /// Every installed SNIF implementing `interface`, loaded, sorted by name.
    pub fn load_all(&self, interface: Interface) -> Result<Vec<Snif>, SnifError> {
        self.list()?
            .into_iter()
            .filter(|i| i.manifest.interface == interface)
            .map(|i| self.load(&i.name))
            .collect()
    }

    /// The module's real imports beside the manifest's claims and the grants.
    pub fn inspect(&self, host: &Host, name: &str) -> Result<Inspection, SnifError> {
        let installed = self.get(name)?;
        let module_path = self.module_path(&installed.module);
        let bytes = std::fs::read(&module_path).map_err(read_err(&module_path))?;
        let intact = hash_hex(&bytes) == installed.module;
        let grants = self.grants(name, &installed.module)?;
        let caps = &installed.manifest.capabilities;
        let imports = host
            .analyze(name, &bytes)?
            .imports
            .into_iter()
            .map(|import| ImportRow {
                claimed: import.capability.is_some_and(|c| caps.asks(c)),
                granted: import.capability.is_some_and(|c| grants.allows(c)),
                import,
            })
            .collect();
        let claims = [
            Capability::Filesystem,
            Capability::Clock,
            Capability::Random,
            Capability::Env,
        ]
        .into_iter()
        .filter(|c| caps.asks(*c))
        .collect();
        Ok(Inspection {
            installed,
            module_path,
            intact,
            imports,
            claims,
            grants,
            engine: crate::host::ENGINE,
        })
    }
}

/// A SNIF to install: its manifest and module bytes, read from a directory (`snif.toml` inside)
/// or a manifest file.
#[derive(Debug, Clone)]
pub struct Source {
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    pub wasm: Vec<u8>,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source, SnifError> {
        let manifest_path = if path.is_dir() {
            path.join("snif.toml")
        } else {
            path.to_path_buf()
        };
        if manifest_path.extension().and_then(|e| e.to_str()) != Some("toml") {
            return Err(SnifError::manifest(
                &manifest_path,
                "install takes a directory holding snif.toml, or the snif.toml itself",
            ));
        }
        let text = std::fs::read_to_string(&manifest_path).map_err(read_err(&manifest_path))?;
        let manifest = Manifest::parse(&text, &manifest_path)?;
        let module = manifest.module.clone().ok_or_else(|| {
            SnifError::manifest(&manifest_path, "`module` (the .wasm file) is missing")
        })?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let module_path = dir.join(&module);
        let meta = std::fs::metadata(&module_path).map_err(read_err(&module_path))?;
        if !meta.is_file() || meta.len() > MAX_MODULE_BYTES {
            return Err(SnifError::manifest(
                &manifest_path,
                format!(
                    "{} must be a regular file of at most {MAX_MODULE_BYTES} bytes",
                    module_path.display()
                ),
            ));
        }
        let wasm = std::fs::read(&module_path).map_err(read_err(&module_path))?;
        Ok(Source {
            manifest,
            manifest_path,
            wasm,
        })
    }
}

/// The built-in guard: extensions and their capabilities are a human's decision.
fn human_only(state: &State, what: &str) -> Vec<Verdict> {
    let kind = state.identity().actor_kind;
    if kind == ActorKind::Human {
        return Vec::new();
    }
    vec![Verdict {
        rule: "snif.human-only".into(),
        effect: Effect::Deny,
        reason: format!("{what} is for a human, not a {} actor", kind.as_str()),
        unblock: None,
    }]
}

fn operation(op: &str, name: &str) -> Operation {
    Operation {
        name: op.to_owned(),
        object: format!("snif:{name}"),
        project: None,
    }
}

/// Check `source` against the host and plan its install: the module must validate, export the
/// ABI, import only what the host provides and only what its manifest asks for.
pub fn plan_install(
    host: &Host,
    store: &SnifStore,
    source: &Source,
) -> Result<InstallPlan, SnifError> {
    let m = &source.manifest;
    let compiled = host.analyze(&m.name, &source.wasm)?;
    if let Some(bad) = compiled.imports.iter().find(|i| i.capability.is_none()) {
        return Err(SnifError::UnsupportedImport {
            name: m.name.clone(),
            import: bad.name.clone(),
            why: bad.unsupported.clone().unwrap_or_default(),
        });
    }
    let exceed: Vec<String> = compiled
        .imports
        .iter()
        .filter_map(|i| {
            let cap = i.capability?;
            (!m.capabilities.asks(cap)).then(|| format!("{} (`{}`)", i.name, cap.as_str()))
        })
        .collect();
    if !exceed.is_empty() {
        return Err(SnifError::ImportsExceedManifest {
            name: m.name.clone(),
            imports: exceed,
        });
    }
    let module = hash_hex(&source.wasm);
    let previous = match store.get(&m.name) {
        Ok(i) => Some(i.module),
        Err(SnifError::NotInstalled(_)) => None,
        Err(e) => return Err(e),
    };
    let drops_grants =
        previous.as_ref().is_some_and(|p| *p != module) && store.grant_path(&m.name).exists();
    Ok(InstallPlan {
        name: m.name.clone(),
        version: m.version.clone(),
        interface: m.interface,
        module,
        size: source.wasm.len() as u64,
        imports: compiled.imports,
        previous,
        drops_grants,
        dry_run: false,
    })
}

/// Install (or replace) the SNIF at `path`. `mode` is the gate mode: `DryRun` writes nothing.
pub fn install(
    host: &Host,
    store: &SnifStore,
    state: &State,
    rules: &[PolicyRule],
    path: &Path,
    mode: GateMode,
) -> Result<InstallPlan, SnifError> {
    let source = Source::read(path)?;
    let name = source.manifest.name.clone();
    let mut plan = plan_install(host, store, &source)?;
    gate(
        state,
        &operation("snif.install", &name),
        human_only(state, "installing a SNIF"),
        rules,
        mode,
    )
    .map_err(gate_error)?;
    if mode == GateMode::DryRun {
        plan.dry_run = true;
        return Ok(plan);
    }
    let _lock = store.lock()?;
    let modules = store.root.join("modules");
    repoman_core::paths::ensure_dir(&modules)?;
    repoman_core::paths::ensure_dir(&store.root.join("installed"))?;
    let module_path = store.module_path(&plan.module);
    if !module_path.exists() {
        write_atomic(&module_path, &source.wasm, Some(0o444))?;
    }
    let record = Installed {
        schema_version: 1,
        name: name.clone(),
        module: plan.module.clone(),
        size: plan.size,
        manifest: Manifest {
            module: None,
            ..source.manifest.clone()
        },
        imports: plan.imports.iter().map(|i| i.name.clone()).collect(),
    };
    let record_path = store.record_path(&name);
    let old_record = std::fs::read(&record_path).ok();
    write_json(&record_path, &record)?;
    let event = NewEvent::new(
        "snif.installed",
        format!("snif:{name}"),
        json!({
            "name": name,
            "version": plan.version,
            "interface": plan.interface.as_str(),
            "module": plan.module,
            "capabilities": serde_json::to_value(&source.manifest.capabilities)
                .unwrap_or_default(),
            "imports": record.imports,
            "previous": plan.previous,
        }),
    );
    if let Err(e) = state.append(event) {
        // Roll back to the previous record: an install that is not on record did not happen.
        match old_record {
            Some(bytes) => write_atomic(&record_path, &bytes, None)?,
            None => std::fs::remove_file(&record_path).map_err(read_err(&record_path))?,
        }
        return Err(e.into());
    }
    if plan.drops_grants {
        let _ = std::fs::remove_file(store.grant_path(&name));
    }
    Ok(plan)
}

/// Grant (or with `revoke`, clear) capabilities of `name`. Returns the grants now in force.
pub fn grant(
    store: &SnifStore,
    state: &State,
    rules: &[PolicyRule],
    name: &str,
    req: &GrantRequest,
    mode: GateMode,
) -> Result<Grants, SnifError> {
    let installed = store.get(name)?;
    let caps = &installed.manifest.capabilities;
    let mut grants = store.grants(name, &installed.module)?;
    if req.revoke {
        grants = Grants::default();
    }
    let ask = |cap: Capability| -> Result<(), SnifError> {
        if caps.asks(cap) {
            Ok(())
        } else {
            Err(SnifError::NotRequested {
                name: name.to_owned(),
                capability: cap.as_str().to_owned(),
            })
        }
    };
    if let Some(dir) = &req.dir {
        ask(Capability::Filesystem)?;
        let canonical = std::fs::canonicalize(dir).map_err(|e| SnifError::BadGrant {
            name: name.to_owned(),
            message: format!("{}: {e}", dir.display()),
        })?;
        if !canonical.is_dir() {
            return Err(SnifError::BadGrant {
                name: name.to_owned(),
                message: format!("{} is not a directory", dir.display()),
            });
        }
        grants.filesystem = Some(canonical);
    }
    if req.clock {
        ask(Capability::Clock)?;
        grants.clock = true;
    }
    if req.random {
        ask(Capability::Random)?;
        grants.random = true;
    }
    for (k, v) in &req.env {
        if !caps.env.contains(k) {
            return Err(SnifError::NotRequested {
                name: name.to_owned(),
                capability: format!("env {k}"),
            });
        }
        grants.env.retain(|(gk, _)| gk != k);
        grants.env.push((k.clone(), v.clone()));
    }
    grants.env.sort();
    gate(
        state,
        &operation("snif.grant", name),
        human_only(state, "granting a SNIF capabilities"),
        rules,
        mode,
    )
    .map_err(gate_error)?;
    if mode == GateMode::DryRun {
        return Ok(grants);
    }
    let _lock = store.lock()?;
    repoman_core::paths::ensure_dir(&store.root.join("grants"))?;
    let path = store.grant_path(name);
    let old = std::fs::read(&path).ok();
    write_json(
        &path,
        &GrantRecord {
            module: installed.module.clone(),
            grants: grants.clone(),
        },
    )?;
    let event = NewEvent::new(
        "snif.granted",
        format!("snif:{name}"),
        json!({
            "name": name,
            "module": installed.module,
            "grants": {
                "filesystem": grants.filesystem.as_ref().map(|p| p.display().to_string()),
                "clock": grants.clock,
                "random": grants.random,
                // Names only: values may be secrets and the log is shared evidence.
                "env": grants.env.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            },
        }),
    );
    if let Err(e) = state.append(event) {
        match old {
            Some(bytes) => write_atomic(&path, &bytes, None)?,
            None => std::fs::remove_file(&path).map_err(read_err(&path))?,
        }
        return Err(e.into());
    }
    Ok(grants)
}

/// Remove `name`, its grants, and its module file when no other SNIF uses the same bytes.
pub fn remove(
    store: &SnifStore,
    state: &State,
    rules: &[PolicyRule],
    name: &str,
    mode: GateMode,
) -> Result<Installed, SnifError> {
    let installed = store.get(name)?;
    gate(
        state,
        &operation("snif.remove", name),
        Vec::new(),
        rules,
        mode,
    )
    .map_err(gate_error)?;
    if mode == GateMode::DryRun {
        return Ok(installed);
    }
    let _lock = store.lock()?;
    state.append(NewEvent::new(
        "snif.removed",
        format!("snif:{name}"),
        json!({"name": name, "module": installed.module}),
    ))?;
    let record = store.record_path(name);
    std::fs::remove_file(&record).map_err(read_err(&record))?;
    let _ = std::fs::remove_file(store.grant_path(name));
    if !store.list()?.iter().any(|i| i.module == installed.module) {
        let _ = std::fs::remove_file(store.module_path(&installed.module));
    }
    Ok(installed)
}

fn gate_error(e: repoman_state::GateError) -> SnifError {
    match e {
        repoman_state::GateError::Blocked(b) => SnifError::Blocked(b),
        repoman_state::GateError::State(s) => SnifError::State(s),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SnifError> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    Ok(write_atomic(path, &bytes, Some(0o644))?)
}
