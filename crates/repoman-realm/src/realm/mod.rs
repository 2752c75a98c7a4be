//! A realm repository on disk: loading it, and the admin changes (init, join/leave, domains,
//! contracts, bindings). Every change is written atomically, committed to the realm's git
//! repository, and returned as [`RealmEvent`]s for the caller to record in the state log.
//!
//! Invariants: a domain or binding that would close a dependency cycle is refused before anything
//! is written; contract names are unique across the realm; a contract's owner is a realm repo.

mod bindings;
mod error;
mod history;

pub use error::RealmError;
pub use history::HistoricVersion;

use crate::cache::Cache;
use crate::compat::{self, Mode};
use crate::git::Git;
use crate::graph::{DependencyGraph, Edge, domain_edges};
use crate::model::{
    BindingFile, Compatibility, ContractFile, DomainFile, Evolution, Membership, RealmFile,
    RepoFile,
};
use crate::version::{self};
use crate::yaml::{self, LoadError};
use rayon::prelude::*;
use repoman_core::{Env, ObjectId};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An event for the state log (type, object, data), recorded by the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealmEvent {
    #[serde(rename = "type")]
    pub type_: String,
    pub object: String,
    pub data: Value,
}

impl RealmEvent {
    pub fn new(type_: &str, object: String, data: Value) -> Self {
        RealmEvent {
            type_: type_.to_string(),
            object,
            data,
        }
    }
}

fn check_name(name: &str) -> Result<(), RealmError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with(['-', '.'])
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(RealmError::Name {
            name: name.to_string(),
            message:
                "use 1-63 ASCII letters, digits, `-`, `_` or `.`, not starting with `-` or `.`"
                    .into(),
        })
    }
}

/// A domain with its files.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Domain {
    pub file: DomainFile,
    pub governance: Option<Value>,
    pub contracts: BTreeMap<String, ContractFile>,
    pub bindings: BTreeMap<String, BindingFile>,
}

/// A loaded realm repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Realm {
    /// When set, admin changes are validated (names, cycles, ranges, schemas) but nothing is
    /// written or committed (`--dry-run`).
    pub dry_run: bool,
    pub root: PathBuf,
    pub meta: RealmFile,
    pub repos: BTreeMap<String, RepoFile>,
    pub domains: BTreeMap<String, Domain>,
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, RealmError> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file() {
                    out.push(p);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(RealmError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    out.sort();
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn write_yaml<T: Serialize>(path: &Path, value: &T) -> Result<(), RealmError> {
    let text = serde_saphyr::to_string(value).map_err(|e| RealmError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| RealmError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    repoman_core::fs::write_atomic(path, text.as_bytes(), None).map_err(|e| RealmError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Validates a schema against its draft's meta-schema (draft-07 and 2020-12 are both accepted).
pub fn validate_schema(contract: &str, schema: &Value) -> Result<(), RealmError> {
    jsonschema::meta::validate(schema).map_err(|e| RealmError::BadSchema {
        contract: contract.to_string(),
        message: e.to_string(),
    })?;
    // Unresolvable local references would make every later comparison fail.
    compat::analyze(schema, schema)?;
    Ok(())
}

/// BLAKE3 of a file, hex.
/// The largest binding source file repoman hashes.
pub const SOURCE_FILE_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Read a binding's source file `rel` inside `dir` (a repo the sandbox can write): no symlink is
/// followed, `..` and absolute paths are refused, a FIFO or device is refused without blocking.
pub fn read_source_file(dir: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    repoman_core::fs::read_in_dir(dir, Path::new(rel), SOURCE_FILE_MAX_BYTES)?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    })
}

/// BLAKE3 of a binding source file (see [`read_source_file`]).
pub fn digest_in(dir: &Path, rel: &str) -> Result<String, RealmError> {
    let bytes = read_source_file(dir, rel).map_err(|source| RealmError::Io {
        path: dir.join(rel),
        source,
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

pub fn digest_file(path: &Path) -> Result<String, RealmError> {
    let bytes = std::fs::read(path).map_err(|source| RealmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Every file [`Realm::load`] reads, found by one walk of the realm's directories. The load and
/// the load cache's fingerprint both come from this list, so the fingerprint covers exactly what
/// the load reads.
#[derive(Debug)]
struct Sources {
    meta: PathBuf,
    repos: Vec<PathBuf>,
    /// The directories under `domains/` that hold a `domain.yaml`, sorted.
    domains: Vec<DomainSources>,
}

#[derive(Debug)]
struct DomainSources {
    domain: PathBuf,
    governance: Option<PathBuf>,
    contracts: Vec<PathBuf>,
    bindings: Vec<PathBuf>,
}

impl Sources {
    fn scan(root: &Path) -> Result<Sources, RealmError> {
        let meta = root.join("realm.yaml");
        if !meta.is_file() {
            return Err(RealmError::NotARealm {
                path: root.to_path_buf(),
            });
        }
        let repos = yaml_files(&root.join("repos"))?;
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root.join("domains")) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => Vec::new(),
        };
        dirs.sort();
        let mut domains = Vec::with_capacity(dirs.len());
        for d in dirs {
            let file = |name: &str| Some(d.join(name)).filter(|p| p.is_file());
            // A directory without `domain.yaml` is not a domain: nothing in it is read.
            let Some(domain) = file("domain.yaml") else {
                continue;
            };
            domains.push(DomainSources {
                governance: file("governance.yaml"),
                contracts: yaml_files(&d.join("contracts"))?,
                bindings: yaml_files(&d.join("bindings"))?,
                domain,
            });
        }
        Ok(Sources {
            meta,
            repos,
            domains,
        })
    }

    /// Every path in the list, each once.
    fn paths(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.meta.as_path())
            .chain(self.repos.iter().map(PathBuf::as_path))
            .chain(self.domains.iter().flat_map(|d| {
                std::iter::once(&d.domain)
                    .chain(d.governance.iter())
                    .chain(d.contracts.iter())
                    .chain(d.bindings.iter())
                    .map(PathBuf::as_path)
            }))
    }
}

/// The content of a loaded realm, as the load cache stores it.
#[derive(Debug, serde::Deserialize)]
struct Snapshot {
    meta: RealmFile,
    repos: BTreeMap<String, RepoFile>,
    domains: BTreeMap<String, Domain>,
}

/// [`Snapshot`] borrowed from a loaded realm (serialises the same).
#[derive(Debug, Serialize)]
struct SnapshotRef<'a> {
    meta: &'a RealmFile,
    repos: &'a BTreeMap<String, RepoFile>,
    domains: &'a BTreeMap<String, Domain>,
}

impl Realm {
    pub fn load(root: &Path) -> Result<Realm, RealmError> {
        Realm::from_sources(root, &Sources::scan(root)?)
    }

    /// [`Realm::load`], reusing the copy in the check cache while no file the load reads has
    /// changed: the cache compares a [`crate::cache::Fingerprint`] of every one of them (device,
    /// inode, mode, size, mtime and ctime, so `touch -r` cannot hide an edit) and ignores an
    /// entry stored in the same timestamp tick as a file's last change.
    pub fn load_cached(root: &Path, cache: &mut Cache) -> Result<Realm, RealmError> {
        if !cache.enabled() {
            return Realm::load(root);
        }
        let started = crate::cache::now_ns();
        let sources = Sources::scan(root)?;
        let fingerprint = crate::cache::Fingerprint::of(sources.paths());
        let key = root.display().to_string();
        if let Some(fp) = &fingerprint
            && let Some(json) = cache.realm_load(&key, fp)
            && let Ok(snap) = serde_json::from_str::<Snapshot>(&json)
        {
            return Ok(Realm::from_snapshot(root, snap));
        }
        let realm = Realm::from_sources(root, &sources)?;
        if let Some(fp) = &fingerprint
            && let Ok(json) = serde_json::to_string(&realm.snapshot())
        {
            cache.store_realm_load(&key, fp, started, &json);
        }
        Ok(realm)
    }

    fn snapshot(&self) -> SnapshotRef<'_> {
        SnapshotRef {
            meta: &self.meta,
            repos: &self.repos,
            domains: &self.domains,
        }
    }

    /// A BLAKE3 of everything loaded (not the root or `dry_run`): it keys the cached check
    /// report, because a file git ignores is part of the realm as loaded, so the realm commit
    /// alone cannot stand for the content. `None` if it cannot be serialised (then nothing is
    /// cached by it).
    pub fn content_hash(&self) -> Option<String> {
        let mut h = blake3::Hasher::new();
        serde_json::to_writer(&mut h, &self.snapshot()).ok()?;
        Some(h.finalize().to_hex().to_string())
    }

    fn from_snapshot(root: &Path, s: Snapshot) -> Realm {
        Realm {
            dry_run: false,
            root: root.to_path_buf(),
            meta: s.meta,
            repos: s.repos,
            domains: s.domains,
        }
    }

    fn from_sources(root: &Path, src: &Sources) -> Result<Realm, RealmError> {
        let meta: RealmFile = yaml::load(&src.meta)?;
        let mut repos = BTreeMap::new();
        for p in &src.repos {
            let r: RepoFile = yaml::load(p)?;
            if r.name != stem(p) {
                let message = format!("names repo `{}`; the file name says `{}`", r.name, stem(p));
                return Err(RealmError::Invalid {
                    path: p.clone(),
                    message,
                });
            }
            repos.insert(r.name.clone(), r);
        }
        let mut domains = BTreeMap::new();
        let mut contract_names: BTreeMap<String, String> = BTreeMap::new();
        // Contract files carry the schemas and dominate loading: parse them all in parallel.
        let all: Vec<&PathBuf> = src.domains.iter().flat_map(|d| &d.contracts).collect();
        let mut parsed: std::collections::HashMap<&PathBuf, Result<ContractFile, LoadError>> =
            all.into_par_iter().map(|p| (p, yaml::load(p))).collect();
        for d in &src.domains {
            let file: DomainFile = yaml::load(&d.domain)?;
            let governance = match &d.governance {
                Some(g) => Some(yaml::load_value(g)?),
                None => None,
            };
            let mut contracts = BTreeMap::new();
            for p in &d.contracts {
                let c = parsed.remove(p).unwrap_or_else(|| yaml::load(p))?;
                if c.name != stem(p) {
                    let message = format!(
                        "names contract `{}`; the file name says `{}`",
                        c.name,
                        stem(p)
                    );
                    return Err(RealmError::Invalid {
                        path: p.clone(),
                        message,
                    });
                }
                if let Some(other) = contract_names.insert(c.name.clone(), file.name.clone()) {
                    return Err(RealmError::Invalid {
                        path: p.clone(),
                        message: format!(
                            "contract `{}` is also defined in domain `{other}`; contract names are unique in a realm",
                            c.name
                        ),
                    });
                }
                contracts.insert(c.name.clone(), c);
            }
            let mut bindings = BTreeMap::new();
            for p in &d.bindings {
                let b: BindingFile = yaml::load(p)?;
                bindings.insert(b.repo.clone(), b);
            }
            domains.insert(
                file.name.clone(),
                Domain {
                    file,
                    governance,
                    contracts,
                    bindings,
                },
            );
        }
        Ok(Realm {
            dry_run: false,
            root: root.to_path_buf(),
            meta,
            repos,
            domains,
        })
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn contract_rel_path(domain: &str, name: &str) -> String {
        format!("domains/{domain}/contracts/{name}.yaml")
    }

    pub fn binding_rel_path(domain: &str, repo: &str) -> String {
        format!("domains/{domain}/bindings/{repo}.yaml")
    }

    /// The domain and the contract called `name`.
    pub fn contract(&self, name: &str) -> Option<(&str, &ContractFile)> {
        self.domains
            .iter()
            .find_map(|(d, dom)| dom.contracts.get(name).map(|c| (d.as_str(), c)))
    }

    pub fn contract_object(&self, domain: &str, name: &str) -> String {
        ObjectId::contract(&self.meta.name, domain, name).to_string()
    }

    fn unknown(&self, what: &'static str, name: &str) -> RealmError {
        RealmError::Unknown {
            what,
            name: name.to_string(),
            realm: self.meta.name.clone(),
        }
    }

    /// Provider → consumer edges of the domains, exporter → importer edges of the bindings.
    pub fn graph(&self) -> DependencyGraph {
        let mut g = DependencyGraph::default();
        for d in self.domains.values() {
            g.edges.extend(domain_edges(&d.file.name, &d.file.repos()));
        }
        for name in self.domains.values().flat_map(|d| d.contracts.keys()) {
            for exporter in self.exporters(name) {
                for importer in self.importers(name) {
                    g.edges.push(Edge {
                        from: exporter.clone(),
                        to: importer,
                        label: name.clone(),
                    });
                }
            }
        }
        g
    }

    /// Repos exporting `contract` (its owner when no binding exports it).
    pub fn exporters(&self, contract: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .domains
            .values()
            .flat_map(|d| d.bindings.values())
            .filter(|b| b.exports.iter().any(|e| e.contract == contract))
            .map(|b| b.repo.clone())
            .collect();
        if out.is_empty()
            && let Some((_, c)) = self.contract(contract)
        {
            out.push(c.owner.clone());
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn importers(&self, contract: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .domains
            .values()
            .flat_map(|d| d.bindings.values())
            .filter(|b| b.imports.iter().any(|i| i.contract == contract))
            .map(|b| b.repo.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn git(&self, env: &Env) -> Git {
        Git::new(&self.root, env)
    }

    fn commit(&self, env: &Env, message: &str) -> Result<Option<String>, RealmError> {
        Ok(self.git(env).commit_all(message)?)
    }

    fn object(&self) -> String {
        ObjectId::realm(&self.meta.name).to_string()
    }

    /// `realm admin init NAME --path DIR`: a new realm repository (a git repository).
    pub fn init(dir: &Path, name: &str, env: &Env) -> Result<(Realm, Vec<RealmEvent>), RealmError> {
        check_name(name)?;
        if dir.join("realm.yaml").exists() {
            return Err(RealmError::AlreadyARealm {
                path: dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| RealmError::Write {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let meta = RealmFile {
            name: name.to_string(),
            version: "1.0.0".into(),
            governance: json!({"admission": "open", "breaking_changes": {"require_approval": true}}),
            trust: json!({"mode": "collaborative", "require_signed_commits": false}),
        };
        write_yaml(&dir.join("realm.yaml"), &meta)?;
        repoman_core::fs::write_atomic(&dir.join(".gitignore"), b".repoman/\n", None).map_err(
            |e| RealmError::Write {
                path: dir.join(".gitignore"),
                message: e.to_string(),
            },
        )?;
        let git = Git::new(dir, env);
        git.init()?;
        let realm = Realm::load(dir)?;
        let commit = realm.commit(env, &format!("realm: init {name}"))?;
        let ev = RealmEvent::new(
            "realm.created",
            realm.object(),
            json!({"path": dir, "commit": commit}),
        );
        Ok((realm, vec![ev]))
    }

    /// `realm admin join`: registers `repo_dir` as `repo` and writes its membership file.
    pub fn join(
        &mut self,
        repo_dir: &Path,
        repo: &str,
        env: &Env,
    ) -> Result<Vec<RealmEvent>, RealmError> {
        check_name(repo)?;
        if self.repos.contains_key(repo) {
            return Err(RealmError::Exists {
                what: "repo",
                name: repo.into(),
                realm: self.meta.name.clone(),
            });
        }
        let dir = repo_dir.canonicalize().map_err(|source| RealmError::Io {
            path: repo_dir.to_path_buf(),
            source,
        })?;
        let file = RepoFile {
            name: repo.into(),
            path: Some(dir.display().to_string()),
            url: None,
            maintainers: Vec::new(),
        };
        if self.dry_run {
            return Ok(Vec::new());
        }
        write_yaml(&self.root.join("repos").join(format!("{repo}.yaml")), &file)?;
        let membership = Membership {
            realm: self.meta.name.clone(),
            path: self
                .root
                .canonicalize()
                .unwrap_or(self.root.clone())
                .display()
                .to_string(),
            repo: repo.into(),
        };
        write_yaml(&dir.join(".repoman/realm.yaml"), &membership)?;
        let ignore = dir.join(".repoman/.gitignore");
        if !ignore.exists() {
            repoman_core::fs::write_atomic(&ignore, b"cache.db\ncache.db-*\n", None).map_err(
                |e| RealmError::Write {
                    path: ignore.clone(),
                    message: e.to_string(),
                },
            )?;
        }
        self.repos.insert(repo.into(), file);
        let commit = self.commit(env, &format!("realm: {repo} joins"))?;
        Ok(vec![RealmEvent::new(
            "realm.joined",
            self.object(),
            json!({"repo": repo, "path": dir, "commit": commit}),
        )])
    }

    /// `realm admin leave`: refused while the repo takes part in a domain or owns a contract.
    pub fn leave(
        &mut self,
        repo_dir: &Path,
        repo: &str,
        env: &Env,
    ) -> Result<Vec<RealmEvent>, RealmError> {
        if !self.repos.contains_key(repo) {
            return Err(self.unknown("repo", repo));
        }
        let mut users = Vec::new();
        for d in self.domains.values() {
            if d.file.repos().iter().any(|r| r == repo) {
                users.push(format!("domain `{}`", d.file.name));
            }
            for c in d.contracts.values().filter(|c| c.owner == repo) {
                users.push(format!("contract `{}` (owner)", c.name));
            }
        }
        if !users.is_empty() {
            return Err(RealmError::InUse {
                repo: repo.into(),
                users: users.join(", "),
            });
        }
        if self.dry_run {
            return Ok(Vec::new());
        }
        let p = self.root.join("repos").join(format!("{repo}.yaml"));
        std::fs::remove_file(&p).map_err(|source| RealmError::Io { path: p, source })?;
        let m = repo_dir.join(".repoman/realm.yaml");
        if m.exists() {
            std::fs::remove_file(&m).map_err(|source| RealmError::Io { path: m, source })?;
        }
        self.repos.remove(repo);
        let commit = self.commit(env, &format!("realm: {repo} leaves"))?;
        Ok(vec![RealmEvent::new(
            "realm.left",
            self.object(),
            json!({"repo": repo, "commit": commit}),
        )])
    }

    fn require_repo(&self, repo: &str) -> Result<(), RealmError> {
        if self.repos.contains_key(repo) {
            Ok(())
        } else {
            Err(self.unknown("repo", repo))
        }
    }

    /// `realm admin domain create NAME --repos a,b`: `a` provides, `b` consumes.
    pub fn create_domain(
        &mut self,
        name: &str,
        repos: &[String],
        env: &Env,
        dry_run: bool,
    ) -> Result<Vec<RealmEvent>, RealmError> {
        check_name(name)?;
        if self.domains.contains_key(name) {
            return Err(RealmError::Exists {
                what: "domain",
                name: name.into(),
                realm: self.meta.name.clone(),
            });
        }
        if repos.is_empty() {
            return Err(RealmError::Invalid {
                path: self.root.clone(),
                message: "a domain needs at least one repo (`--repos provider,consumer...`)".into(),
            });
        }
        for r in repos {
            self.require_repo(r)?;
        }
        self.graph()
            .check_addition(&format!("domain `{name}`"), &domain_edges(name, repos))?;
        let file = DomainFile {
            name: name.into(),
            provider: repos[0].clone(),
            consumers: repos[1..].to_vec(),
            description: None,
        };
        if dry_run {
            return Ok(Vec::new());
        }
        write_yaml(
            &self.root.join("domains").join(name).join("domain.yaml"),
            &file,
        )?;
        self.domains.insert(
            name.into(),
            Domain {
                file,
                governance: None,
                contracts: BTreeMap::new(),
                bindings: BTreeMap::new(),
            },
        );
        let commit = self.commit(
            env,
            &format!("realm: domain {name} ({})", repos.join(" → ")),
        )?;
        Ok(vec![RealmEvent::new(
            "realm.domain.created",
            ObjectId::domain(&self.meta.name, name).to_string(),
            json!({"repos": repos, "commit": commit}),
        )])
    }

    /// `realm admin contract add`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_contract(
        &mut self,
        domain: &str,
        name: &str,
        owner: &str,
        version: &str,
        schema: Value,
        compatibility: Compatibility,
        env: &Env,
    ) -> Result<Vec<RealmEvent>, RealmError> {
        check_name(name)?;
        if !self.domains.contains_key(domain) {
            return Err(self.unknown("domain", domain));
        }
        if let Some((d, _)) = self.contract(name) {
            return Err(RealmError::Exists {
                what: "contract",
                name: format!("{name} (in domain {d})"),
                realm: self.meta.name.clone(),
            });
        }
        self.require_repo(owner)?;
        version::parse_version(version)?;
        validate_schema(name, &schema)?;
        let c = ContractFile {
            name: name.into(),
            version: version.into(),
            owner: owner.into(),
            compatibility,
            schema,
            validation: Default::default(),
            evolution: vec![Evolution {
                version: version.into(),
                changes: vec!["Initial version".into()],
                compatible: None,
            }],
        };
        if self.dry_run {
            return Ok(Vec::new());
        }
        write_yaml(&self.root.join(Self::contract_rel_path(domain, name)), &c)?;
        if let Some(d) = self.domains.get_mut(domain) {
            d.contracts.insert(name.into(), c);
        }
        let commit = self.commit(env, &format!("realm: contract {name} {version}"))?;
        Ok(vec![RealmEvent::new(
            "contract.added",
            self.contract_object(domain, name),
            json!({"version": version, "owner": owner, "commit": commit}),
        )])
    }

    /// `realm admin contract bump NAME --schema FILE [--version V]`: the version must match the
    /// computed compatibility (breaking ⇒ major; below 1.0.0 the minor). Re-records the owner's
    /// source digests when `owner_dir` is the owner's working copy.
    #[allow(clippy::too_many_arguments)]
    pub fn bump_contract(
        &mut self,
        name: &str,
        schema: Value,
        new_version: Option<&str>,
        changes: Vec<String>,
        owner_dir: Option<&Path>,
        env: &Env,
        dry_run: bool,
    ) -> Result<(BumpOutcome, Vec<RealmEvent>), RealmError> {
        let (domain, current) = self
            .contract(name)
            .map(|(d, c)| (d.to_string(), c.clone()))
            .ok_or_else(|| self.unknown("contract", name))?;
        validate_schema(name, &schema)?;
        if schema == current.schema {
            return Err(RealmError::NothingChanged {
                contract: name.into(),
                version: current.version.clone(),
            });
        }
        let old_v = version::parse_version(&current.version)?;
        let mode = Mode::from_flags(
            current.compatibility.backwards,
            current.compatibility.forwards,
        )
        .unwrap_or(Mode::Backward);
        let report = compat::diff(&current.schema, &schema, mode)?;
        let breaking = report.is_breaking();
        let new_v = match new_version {
            Some(v) => version::parse_version(v)?,
            None => version::next(&old_v, breaking),
        };
        version::check_bump(&old_v, &new_v, breaking)?;
        let outcome = BumpOutcome {
            contract: name.into(),
            from: old_v.to_string(),
            to: new_v.to_string(),
            report,
        };
        if dry_run {
            return Ok((outcome, Vec::new()));
        }
        let mut c = current.clone();
        c.schema = schema;
        c.version = new_v.to_string();
        let summary = if changes.is_empty() {
            outcome
                .report
                .changes
                .iter()
                .map(|ch| format!("{} {}", ch.kind, ch.pointer))
                .collect()
        } else {
            changes
        };
        c.evolution.push(Evolution {
            version: new_v.to_string(),
            changes: summary,
            compatible: Some(!breaking),
        });
        write_yaml(&self.root.join(Self::contract_rel_path(&domain, name)), &c)?;
        if let Some(d) = self.domains.get_mut(&domain) {
            d.contracts.insert(name.into(), c.clone());
        }
        if let Some(dir) = owner_dir {
            self.rerecord_exports(&c.owner, name, &c.version, dir)?;
        }
        let commit = self.commit(
            env,
            &format!("realm: contract {name} {} → {}", outcome.from, outcome.to),
        )?;
        let ev = RealmEvent::new(
            "contract.bumped",
            self.contract_object(&domain, name),
            json!({"from": outcome.from, "to": outcome.to, "breaking": breaking, "mode": mode, "commit": commit}),
        );
        Ok((outcome, vec![ev]))
    }

    fn rerecord_exports(
        &mut self,
        repo: &str,
        contract: &str,
        version: &str,
        dir: &Path,
    ) -> Result<(), RealmError> {
        let domains: Vec<String> = self.domains.keys().cloned().collect();
        for d in domains {
            let Some(b) = self
                .domains
                .get(&d)
                .and_then(|dom| dom.bindings.get(repo))
                .cloned()
            else {
                continue;
            };
            let mut b = b;
            let mut changed = false;
            for e in b.exports.iter_mut().filter(|e| e.contract == contract) {
                e.recorded_version = Some(version.into());
                e.source_digests = digests(dir, &e.source_files)?;
                changed = true;
            }
            if changed {
                write_yaml(&self.root.join(Self::binding_rel_path(&d, repo)), &b)?;
                if let Some(dom) = self.domains.get_mut(&d) {
                    dom.bindings.insert(repo.into(), b);
                }
            }
        }
        Ok(())
    }
}

/// What `contract bump` did.
#[derive(Debug, Clone, Serialize)]
pub struct BumpOutcome {
    pub contract: String,
    pub from: String,
    pub to: String,
    pub report: compat::DiffReport,
}

/// BLAKE3 digests of `files` relative to `dir`.
pub fn digests(dir: &Path, files: &[String]) -> Result<BTreeMap<String, String>, RealmError> {
    files
        .iter()
        .map(|f| Ok((f.clone(), digest_in(dir, f)?)))
        .collect()
}

/// Finds the membership of the repo containing `dir` (walking up to the git root or `/`).
pub fn find_membership(dir: &Path) -> Result<(PathBuf, Membership), RealmError> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        let p = d.join(".repoman/realm.yaml");
        if p.is_file() {
            let m: Membership = yaml::load(&p)?;
            return Ok((d.to_path_buf(), m));
        }
        cur = d.parent();
    }
    Err(RealmError::NotAMember {
        dir: dir.to_path_buf(),
    })
}

/// The realm root a membership points to.
pub fn membership_root(repo_dir: &Path, m: &Membership) -> PathBuf {
    let p = PathBuf::from(&m.path);
    if p.is_absolute() { p } else { repo_dir.join(p) }
}
