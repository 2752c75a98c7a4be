//! `realm check`: the four modes CI runs.
//!
//! - **contract** (realm repo): schemas are valid JSON Schema, versions semver, evolution
//!   consistent, owners are realm repos, each version step matches the computed compatibility
//!   (breaking ⇒ major; below 1.0.0 the minor), removed property names are not reused, no cycles.
//! - **compatibility**: the schema diff between versions from the realm's git history, in the mode
//!   each contract's `compatibility` selects (optionally transitive).
//! - **exporter** (member repo): exported contracts exist and are owned by this repo; declared
//!   source files have not changed since the contract version was recorded.
//! - **importer** (member repo): each import's range accepts the contract's current version; a
//!   stale `resolved_version` is a warning.
//!
//! Validation hooks run in exporter/importer modes only when the machine trusts the realm at its
//! current commit, argv only, with a timeout: exit 0 valid, 1 invalid, 2 warning; `ci_only` hooks
//! only when `CI` is set. Findings are errors, warnings (failures under `--strict`) or info.

mod hooks;
mod members;

pub use hooks::{HookRun, HookStatus};

use crate::cache::{Cache, Counters};
use crate::compat::{self, Analysis, Change, Mode, Verdict};
use crate::git::Git;
use crate::model::ContractFile;
use crate::realm::{HistoricVersion, Realm, RealmError};
use crate::trust::TrustState;
use crate::version::{self, Bump};
use repoman_core::{Env, ObjectId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckMode {
    Contract,
    Compatibility,
    Exporter,
    Importer,
}

impl CheckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Contract => "contract",
            CheckMode::Compatibility => "compatibility",
            CheckMode::Exporter => "exporter",
            CheckMode::Importer => "importer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub level: Level,
    pub mode: CheckMode,
    /// `contract:REALM/DOMAIN/NAME`, `realm:NAME`, `binding:REALM/DOMAIN/REPO`.
    pub object: String,
    /// A stable rule id: `ownership`, `source-changed`, `stale-binding`, `version-bump`, ...
    pub rule: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The file the finding is about (realm-relative or repo-relative), for annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One compatibility comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContractDiff {
    pub contract: String,
    pub from: String,
    pub to: String,
    pub mode: Mode,
    pub verdict: Verdict,
    pub changes: Vec<compat::ReportedChange>,
}

/// Where the check runs.
#[derive(Debug, Clone)]
pub enum Context {
    /// In the realm repository itself (its CI).
    Realm,
    /// In a member repo.
    Member { repo: String, dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Empty: contract + compatibility in the realm repo, exporter + importer in a member repo.
    pub modes: Vec<CheckMode>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub strict: bool,
    /// `CI` is set: run `ci_only` hooks.
    pub ci: bool,
    pub trust: TrustState,
    pub hook_timeout: Duration,
    /// Unix seconds, for cache timestamps.
    pub now: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub realm: String,
    pub context: String,
    pub modes: Vec<CheckMode>,
    pub ok: bool,
    pub strict: bool,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
    pub compatibility: Vec<ContractDiff>,
    pub hooks: Vec<HookRun>,
    pub cache: Counters,
}

struct Checker<'r> {
    realm: &'r Realm,
    opts: &'r CheckOptions,
    env: &'r Env,
    cache: &'r mut Cache,
    head: String,
    dirty: bool,
    findings: Vec<Finding>,
    diffs: Vec<ContractDiff>,
    hooks: Vec<HookRun>,
    /// Every contract's history, read once on the first cache miss.
    histories: Option<BTreeMap<String, Vec<HistoricVersion>>>,
    /// Analyses computed or loaded in this run (contract and compatibility modes share pairs).
    analyses: BTreeMap<String, Analysis>,
}

/// Runs the check.
pub fn check(
    realm: &Realm,
    ctx: &Context,
    opts: &CheckOptions,
    env: &Env,
    cache: &mut Cache,
) -> Result<CheckReport, RealmError> {
    let git = Git::new(&realm.root, env);
    let head = git.head()?;
    let dirty = git.dirty()?;
    let modes: Vec<CheckMode> = if opts.modes.is_empty() {
        match ctx {
            Context::Realm => vec![CheckMode::Contract, CheckMode::Compatibility],
            Context::Member { .. } => vec![CheckMode::Exporter, CheckMode::Importer],
        }
    } else {
        let set: BTreeSet<CheckMode> = opts.modes.iter().copied().collect();
        set.into_iter().collect()
    };
    let mut c = Checker {
        realm,
        opts,
        env,
        cache,
        head,
        dirty,
        findings: Vec::new(),
        diffs: Vec::new(),
        hooks: Vec::new(),
        histories: None,
        analyses: BTreeMap::new(),
    };
    let scope = match ctx {
        Context::Realm => None,
        Context::Member { repo, .. } => Some(repo.as_str()),
    };
    // Contract and compatibility findings depend only on the realm's content and the options:
    // at a clean realm commit they are cached whole.
    let realm_modes: Vec<CheckMode> = modes
        .iter()
        .copied()
        .filter(|m| matches!(m, CheckMode::Contract | CheckMode::Compatibility))
        .collect();
    // The key covers the realm commit (the histories) and the loaded content (which includes any
    // file git ignores, so the commit alone cannot stand for it).
    let report_key = (!c.dirty && !realm_modes.is_empty() && c.cache.enabled())
        .then(|| realm.content_hash())
        .flatten()
        .map(|content| {
            let mut h = blake3::Hasher::new();
            h.update(b"report/v2\0");
            h.update(crate::compat::ENGINE_VERSION.as_bytes());
            h.update(b"\0");
            h.update(c.head.as_bytes());
            h.update(b"\0");
            h.update(content.as_bytes());
            h.update(format!("{realm_modes:?}|{:?}|{:?}|{scope:?}", opts.from, opts.to).as_bytes());
            format!("report/v2:{}", h.finalize().to_hex())
        });
    let mut restored = false;
    if let Some(key) = &report_key
        && let Some(json) = c.cache.compat(key)
        && let Ok((findings, diffs)) =
            serde_json::from_str::<(Vec<Finding>, Vec<ContractDiff>)>(&json)
    {
        c.findings = findings;
        c.diffs = diffs;
        restored = true;
    }
    for m in &modes {
        if restored && realm_modes.contains(m) {
            continue;
        }
        match (m, ctx) {
            (CheckMode::Contract, _) => c.contract_mode(scope)?,
            (CheckMode::Compatibility, _) => c.compatibility_mode(scope)?,
            (CheckMode::Exporter, Context::Member { repo, dir }) => c.exporter_mode(repo, dir)?,
            (CheckMode::Importer, Context::Member { repo, dir }) => c.importer_mode(repo, dir)?,
            (CheckMode::Exporter | CheckMode::Importer, Context::Realm) => {
                for repo in realm.repos.values() {
                    let Some(p) = &repo.path else { continue };
                    let dir = PathBuf::from(p);
                    if !dir.is_dir() {
                        continue;
                    }
                    if *m == CheckMode::Exporter {
                        c.exporter_mode(&repo.name, &dir)?;
                    } else {
                        c.importer_mode(&repo.name, &dir)?;
                    }
                }
            }
        }
    }
    if let Some(key) = &report_key
        && !restored
    {
        let findings: Vec<&Finding> = c
            .findings
            .iter()
            .filter(|f| realm_modes.contains(&f.mode))
            .collect();
        if let Ok(json) = serde_json::to_string(&(findings, &c.diffs)) {
            c.cache.store_compat(key, &json);
        }
    }
    c.cache.flush_counters();
    let errors = c
        .findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .count();
    let warnings = c
        .findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    let ok = errors == 0 && !(opts.strict && warnings > 0);
    Ok(CheckReport {
        realm: realm.name().to_string(),
        context: match ctx {
            Context::Realm => "realm".into(),
            Context::Member { repo, .. } => ObjectId::repo(repo.as_str()).to_string(),
        },
        modes,
        ok,
        strict: opts.strict,
        errors,
        warnings,
        findings: c.findings,
        compatibility: c.diffs,
        hooks: c.hooks,
        cache: c.cache.counters,
    })
}

/// Property pointers (`#/properties/a/properties/b`) of a schema, following nested objects.
fn property_pointers(schema: &Value, prefix: &str, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 32 {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let p = format!(
                "{prefix}/properties/{}",
                k.replace('~', "~0").replace('/', "~1")
            );
            out.insert(p.clone());
            property_pointers(v, &p, out, depth + 1);
        }
    }
    if let Some(items) = schema.get("items") {
        property_pointers(items, &format!("{prefix}/items"), out, depth + 1);
    }
}

impl Checker<'_> {
    fn find(
        &mut self,
        level: Level,
        mode: CheckMode,
        object: String,
        rule: &str,
        message: String,
    ) -> &mut Finding {
        self.findings.push(Finding {
            level,
            mode,
            object,
            rule: rule.into(),
            message,
            pointer: None,
            file: None,
        });
        let n = self.findings.len() - 1;
        &mut self.findings[n]
    }

    fn contracts_in_scope(&self, scope: Option<&str>) -> Vec<(String, ContractFile)> {
        let mut out = Vec::new();
        for (d, dom) in &self.realm.domains {
            for c in dom.contracts.values() {
                let relevant = match scope {
                    None => true,
                    Some(repo) => {
                        c.owner == repo
                            || dom.bindings.get(repo).is_some_and(|b| {
                                b.exports.iter().any(|e| e.contract == c.name)
                                    || b.imports.iter().any(|i| i.contract == c.name)
                            })
                    }
                };
                if relevant {
                    out.push((d.clone(), c.clone()));
                }
            }
        }
        out
    }

    fn history(&mut self, domain: &str, name: &str) -> Result<Vec<HistoricVersion>, RealmError> {
        // The realm commit keys the cache; uncommitted changes add the file's own hash.
        let mut key = self.head.clone();
        if self.dirty {
            let p = self.realm.root.join(Realm::contract_rel_path(domain, name));
            if let Ok(bytes) = std::fs::read(&p) {
                key.push('+');
                key.push_str(&blake3::hash(&bytes).to_hex()[..16]);
            }
        }
        if let Some(json) = self.cache.contract_history(domain, name, &key)
            && let Ok(h) = serde_json::from_str(&json)
        {
            return Ok(h);
        }
        if self.histories.is_none() {
            self.histories = Some(self.realm.all_contract_histories(self.env)?);
        }
        let rel = Realm::contract_rel_path(domain, name);
        let h = match self.histories.as_ref().and_then(|all| all.get(&rel)) {
            Some(h) => h.clone(),
            None => self.realm.contract_history(domain, name, self.env)?,
        };
        if let Ok(json) = serde_json::to_string(&h) {
            self.cache.store_contract_history(domain, name, &key, &json);
        }
        Ok(h)
    }

    fn analysis(&mut self, old: &Value, new: &Value) -> Result<Analysis, RealmError> {
        let key = compat_key(crate::compat::ENGINE_VERSION, old, new);
        if let Some(a) = self.analyses.get(&key) {
            return Ok(a.clone());
        }
        if let Some(json) = self.cache.compat(&key)
            && let Ok(changes) = serde_json::from_str::<Vec<CachedChange>>(&json)
        {
            let a = Analysis {
                changes: changes.into_iter().map(Change::from).collect(),
            };
            self.analyses.insert(key, a.clone());
            return Ok(a);
        }
        let a = compat::analyze(old, new)?;
        let cached: Vec<CachedChange> = a.changes.iter().map(CachedChange::from).collect();
        if let Ok(json) = serde_json::to_string(&cached) {
            self.cache.store_compat(&key, &json);
        }
        self.analyses.insert(key, a.clone());
        Ok(a)
    }

    /// Meta-schema validation (draft-07 or 2020-12), cached by the schema's hash.
    fn meta_error(&mut self, schema: &Value) -> Option<String> {
        let key = format!(
            "meta/v1:{}",
            blake3::hash(serde_json::to_string(schema).unwrap_or_default().as_bytes()).to_hex()
        );
        if let Some(v) = self.cache.compat(&key) {
            return if v.is_empty() { None } else { Some(v) };
        }
        let err = jsonschema::meta::validate(schema)
            .err()
            .map(|e| e.to_string());
        self.cache.store_compat(&key, err.as_deref().unwrap_or(""));
        err
    }

    fn contract_mode(&mut self, scope: Option<&str>) -> Result<(), RealmError> {
        let m = CheckMode::Contract;
        for (domain, c) in self.contracts_in_scope(scope) {
            let obj = self.realm.contract_object(&domain, &c.name);
            let file = Some(Realm::contract_rel_path(&domain, &c.name));
            if let Some(e) = self.meta_error(&c.schema) {
                self.find(
                    Level::Error,
                    m,
                    obj.clone(),
                    "schema-invalid",
                    format!("the schema is not valid JSON Schema: {e}"),
                )
                .file = file.clone();
            }
            let current = match version::parse_version(&c.version) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.find(
                        Level::Error,
                        m,
                        obj.clone(),
                        "version-invalid",
                        e.to_string(),
                    )
                    .file = file.clone();
                    None
                }
            };
            if !self.realm.repos.contains_key(&c.owner) {
                self.find(
                    Level::Error,
                    m,
                    obj.clone(),
                    "owner-unknown",
                    format!(
                        "owner `{}` is not a repo of realm `{}`",
                        c.owner,
                        self.realm.name()
                    ),
                )
                .file = file.clone();
            }
            // Evolution: parseable, strictly increasing, ending at the current version.
            let mut prev: Option<semver::Version> = None;
            for e in &c.evolution {
                match version::parse_version(&e.version) {
                    Ok(v) => {
                        if prev.as_ref().is_some_and(|p| v <= *p) {
                            self.find(
                                Level::Error,
                                m,
                                obj.clone(),
                                "evolution-order",
                                format!(
                                    "evolution entry {} does not come after {}",
                                    v,
                                    prev.as_ref().map(ToString::to_string).unwrap_or_default()
                                ),
                            )
                            .file = file.clone();
                        }
                        prev = Some(v);
                    }
                    Err(err) => {
                        self.find(
                            Level::Error,
                            m,
                            obj.clone(),
                            "evolution-version",
                            err.to_string(),
                        )
                        .file = file.clone();
                    }
                }
            }
            if let (Some(last), Some(cur)) = (&prev, &current) {
                if last != cur {
                    self.find(Level::Error, m, obj.clone(), "evolution-current", format!("the evolution history ends at {last} but the contract is at {cur}; add an entry for {cur}")).file = file.clone();
                }
            } else if c.evolution.is_empty() {
                self.find(
                    Level::Warning,
                    m,
                    obj.clone(),
                    "evolution-missing",
                    "the contract has no evolution history".into(),
                )
                .file = file.clone();
            }
            // History from git: bump rules and tombstones.
            let history = self.history(&domain, &c.name)?;
            let mode = contract_mode(&c);
            for pair in history.windows(2) {
                let (old, new) = (&pair[0], &pair[1]);
                let (Ok(ov), Ok(nv)) = (
                    version::parse_version(&old.version),
                    version::parse_version(&new.version),
                ) else {
                    continue;
                };
                let breaking = self
                    .analysis(&old.schema, &new.schema)?
                    .report(mode)
                    .is_breaking();
                if let Err(e) = version::check_bump(&ov, &nv, breaking) {
                    self.find(Level::Error, m, obj.clone(), "version-bump", e.to_string())
                        .file = file.clone();
                }
                if let Some(ev) = c.evolution.iter().find(|e| e.version == new.version)
                    && ev.compatible == Some(true)
                    && breaking
                {
                    self.find(Level::Error, m, obj.clone(), "evolution-compatible", format!("evolution says {} is compatible, but the schema change from {} is breaking ({})", new.version, old.version, mode.as_str())).file = file.clone();
                }
            }
            let mut removed: BTreeMap<String, String> = BTreeMap::new();
            for pair in history.windows(2) {
                let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
                property_pointers(&pair[0].schema, "#", &mut a, 0);
                property_pointers(&pair[1].schema, "#", &mut b, 0);
                for p in a.difference(&b) {
                    removed
                        .entry(p.clone())
                        .or_insert_with(|| pair[1].version.clone());
                }
                for p in b.difference(&a) {
                    if let Some(when) = removed.get(p) {
                        let f = self.find(Level::Error, m, obj.clone(), "tombstone", format!("property {p} was removed in {when} and is reused in {}; choose a new name", pair[1].version));
                        f.pointer = Some(p.clone());
                        f.file = file.clone();
                    }
                }
            }
        }
        if scope.is_none() {
            for cycle in self.realm.graph().cycles() {
                let obj = ObjectId::realm(self.realm.name()).to_string();
                self.find(
                    Level::Error,
                    m,
                    obj,
                    "cycle",
                    format!("dependency cycle: {}", cycle.render()),
                );
            }
            let known: BTreeSet<String> = self
                .realm
                .domains
                .values()
                .flat_map(|d| d.contracts.keys().cloned())
                .collect();
            let realm_name = self.realm.name().to_string();
            let mut dangling = Vec::new();
            for (d, dom) in &self.realm.domains {
                for b in dom.bindings.values() {
                    for name in b
                        .exports
                        .iter()
                        .map(|e| &e.contract)
                        .chain(b.imports.iter().map(|i| &i.contract))
                    {
                        if !known.contains(name) {
                            dangling.push((
                                ObjectId::binding(&realm_name, d, &b.repo).to_string(),
                                format!("binding of `{}` names unknown contract `{name}`", b.repo),
                                Realm::binding_rel_path(d, &b.repo),
                            ));
                        }
                    }
                }
            }
            for (obj, msg, file) in dangling {
                self.find(Level::Error, m, obj, "contract-unknown", msg)
                    .file = Some(file);
            }
        }
        Ok(())
    }

    fn compatibility_mode(&mut self, scope: Option<&str>) -> Result<(), RealmError> {
        let m = CheckMode::Compatibility;
        for (domain, c) in self.contracts_in_scope(scope) {
            let obj = self.realm.contract_object(&domain, &c.name);
            let file = Some(Realm::contract_rel_path(&domain, &c.name));
            let history = self.history(&domain, &c.name)?;
            let mode = contract_mode(&c);
            let pick = |v: &str| history.iter().position(|h| h.version == v);
            let pairs: Vec<(usize, usize)> = match (&self.opts.from, &self.opts.to) {
                (Some(f), Some(t)) => match (pick(f), pick(t)) {
                    (Some(a), Some(b)) => vec![(a, b)],
                    _ => {
                        if scope.is_none() || self.opts.from.is_some() {
                            let known: Vec<&str> =
                                history.iter().map(|h| h.version.as_str()).collect();
                            self.find(
                                Level::Error,
                                m,
                                obj.clone(),
                                "version-unknown",
                                format!(
                                    "versions {f} and {t} are not both in the history ({})",
                                    known.join(", ")
                                ),
                            )
                            .file = file.clone();
                        }
                        continue;
                    }
                },
                (Some(_), None) | (None, Some(_)) => {
                    self.find(
                        Level::Error,
                        m,
                        obj.clone(),
                        "usage",
                        "--from and --to go together".into(),
                    );
                    continue;
                }
                (None, None) => {
                    let n = history.len();
                    if n < 2 {
                        continue;
                    }
                    if c.compatibility.transitive {
                        (0..n - 1).map(|i| (i, n - 1)).collect()
                    } else {
                        vec![(n - 2, n - 1)]
                    }
                }
            };
            for (a, b) in pairs {
                let (old, new) = (history[a].clone(), history[b].clone());
                let report = self.analysis(&old.schema, &new.schema)?.report(mode);
                let major = match (
                    version::parse_version(&old.version),
                    version::parse_version(&new.version),
                ) {
                    (Ok(ov), Ok(nv)) => version::bump(&ov, &nv) == Some(Bump::Major),
                    _ => false,
                };
                for ch in &report.changes {
                    let (level, note) = match ch.verdict {
                        Verdict::Breaking if major => {
                            (Level::Info, " (allowed: major version step)")
                        }
                        Verdict::Breaking => (Level::Error, ""),
                        Verdict::Warning => (Level::Warning, ""),
                        Verdict::Compatible => continue,
                    };
                    let f = self.find(
                        level,
                        m,
                        obj.clone(),
                        &ch.kind,
                        format!("{} → {}: {}{note}", old.version, new.version, ch.message),
                    );
                    f.pointer = Some(ch.pointer.clone());
                    f.file = file.clone();
                }
                self.diffs.push(ContractDiff {
                    contract: c.name.clone(),
                    from: old.version,
                    to: new.version,
                    mode,
                    verdict: report.verdict,
                    changes: report.changes,
                });
            }
        }
        Ok(())
    }
}

fn contract_mode(c: &ContractFile) -> Mode {
    Mode::from_flags(c.compatibility.backwards, c.compatibility.forwards).unwrap_or(Mode::Backward)
}

#[derive(Serialize, serde::Deserialize)]
struct CachedChange {
    pointer: String,
    kind: String,
    message: String,
    narrows: bool,
    widens: bool,
    nw: bool,
    ww: bool,
}

impl From<&Change> for CachedChange {
    fn from(c: &Change) -> Self {
        CachedChange {
            pointer: c.pointer.clone(),
            kind: c.kind.clone(),
            message: c.message.clone(),
            narrows: c.narrows,
            widens: c.widens,
            nw: c.narrows_warning,
            ww: c.widens_warning,
        }
    }
}

impl From<CachedChange> for Change {
    fn from(c: CachedChange) -> Self {
        Change {
            pointer: c.pointer,
            kind: c.kind,
            message: c.message,
            narrows: c.narrows,
            widens: c.widens,
            narrows_warning: c.nw,
            widens_warning: c.ww,
        }
    }
}
/// The cache key of one compatibility analysis: the engine's version and both schemas, so a
/// binary whose rules differ never reuses another's verdict.
fn compat_key(engine: &str, old: &Value, new: &Value) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"compat/v1\0");
    h.update(engine.as_bytes());
    h.update(b"\0");
    h.update(serde_json::to_string(old).unwrap_or_default().as_bytes());
    h.update(b"\0");
    h.update(serde_json::to_string(new).unwrap_or_default().as_bytes());
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn a_cached_verdict_is_keyed_by_the_engine_version() {
        let (a, b) = (
            serde_json::json!({"type": "string"}),
            serde_json::json!({"type": "integer"}),
        );
        let now = compat_key(crate::compat::ENGINE_VERSION, &a, &b);
        assert_eq!(now, compat_key(crate::compat::ENGINE_VERSION, &a, &b));
        assert_ne!(now, compat_key("compat-rules/2+0.1.0", &a, &b));
        assert_ne!(now, compat_key(crate::compat::ENGINE_VERSION, &b, &a));
    }
}
