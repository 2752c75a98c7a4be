//! Tool discovery: walk `PATH` and the tools directories, identify executables by rule, probe
//! their versions, and never execute a shim.
//!
//! Invariants:
//! - a probe runs the absolute path of the tool with stdin null, a cleared environment (a minimal
//!   `PATH`, `HOME`, `LC_ALL=C`), the working directory `/` (so no project toolchain file can
//!   trigger an install) and a timeout; a timeout or failure is reported and the scan goes on;
//! - probes run in parallel on a bounded pool (`parallelism`, 1 = sequential);
//! - shims and proxies (mise and asdf shim directories, files that are symlinks to or hard links of
//!   `mise`, `rtx`, `rustup`, `elan`, asdf shim scripts) are recognised without running them and
//!   listed with the real installs they stand for;
//! - results are cached by (path, device, inode, size, mtime, rule fingerprint): a warm scan only
//!   reads directories and stats files, it runs no process;
//! - executables in tools directories that match no rule are listed as unidentified; nothing is
//!   guessed. (Executables on `PATH` that match no rule are not listed: `/usr/bin` is not news.)

mod cache;
mod probe;

pub use cache::{CacheEntry, DirListing, FileKey, ProbeCache};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rules::{Category, Rules};

/// Default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default depth below a tools directory (`/opt/<tool>/<version>/bin/<exe>` is depth 4).
pub const DEFAULT_MAX_DEPTH: usize = 4;
/// Default number of concurrent probes. Probes mostly wait on process start-up, so more than
/// the core count pays off.
pub const DEFAULT_PARALLELISM: usize = 8;
/// `PATH` given to probes (wrapper scripts need `sh`, `dirname`, ...).
pub const PROBE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Directory names never descended into below a tools directory.
pub(crate) const SKIP_DIRS: &[&str] = &[
    "lib",
    "lib64",
    "lib32",
    "share",
    "include",
    "man",
    "doc",
    "docs",
    "src",
    "node_modules",
    "site-packages",
    "__pycache__",
    "etc",
    "var",
    "tmp",
    "test",
    "tests",
    "examples",
    "contrib",
    "shims",
    "plugins",
    "downloads",
    "cache",
];

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// `PATH` directories in order (scanned one level deep).
    pub path_dirs: Vec<PathBuf>,
    /// Tools directories (scanned to `max_depth`).
    pub tools_dirs: Vec<PathBuf>,
    /// Directories holding tool-manager installs (mise, asdf, elan, rustup); scanned like tools
    /// directories and used to resolve shims.
    pub manager_dirs: Vec<(String, PathBuf)>,
    pub max_depth: usize,
    pub timeout: Duration,
    pub parallelism: usize,
    /// Ignore cached probe results.
    pub refresh: bool,
    /// `HOME` given to probes.
    pub home: Option<PathBuf>,
}

impl ScanOptions {
    /// Options from the environment and the registry's `tools_dirs` (which replaces the default
    /// tools directories when set; manager install directories are always scanned).
    pub fn new(
        env: &repoman_core::Env,
        home: Option<&Path>,
        tools_dirs: Option<&[PathBuf]>,
    ) -> Self {
        let path_dirs: Vec<PathBuf> = env
            .get_os("PATH")
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        let tools_dirs = match tools_dirs {
            Some(d) => d.to_vec(),
            None => default_tools_dirs(home),
        };
        Self {
            path_dirs,
            tools_dirs,
            manager_dirs: manager_dirs(home),
            max_depth: DEFAULT_MAX_DEPTH,
            timeout: DEFAULT_TIMEOUT,
            parallelism: DEFAULT_PARALLELISM,
            refresh: false,
            home: home.map(Path::to_path_buf),
        }
    }
}

/// `~/developer/tools`, `~/.local/bin`, `/opt`, `~/.cargo/bin`.
pub fn default_tools_dirs(home: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(h) = home {
        v.push(h.join("developer/tools"));
        v.push(h.join(".local/bin"));
    }
    v.push(PathBuf::from("/opt"));
    if let Some(h) = home {
        v.push(h.join(".cargo/bin"));
    }
    v
}

/// Install directories of mise, asdf, elan and rustup under `home`.
pub fn manager_dirs(home: Option<&Path>) -> Vec<(String, PathBuf)> {
    let Some(h) = home else { return Vec::new() };
    vec![
        ("mise".into(), h.join(".local/share/mise/installs")),
        ("asdf".into(), h.join(".asdf/installs")),
        ("elan".into(), h.join(".elan/toolchains")),
        ("rustup".into(), h.join(".rustup/toolchains")),
        ("pyenv".into(), h.join(".pyenv/versions")),
        ("rbenv".into(), h.join(".rbenv/versions")),
    ]
}

/// Where an executable was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// On `PATH`, at this position (0 = first).
    Path { rank: usize, dir: PathBuf },
    /// Below a configured tools directory.
    ToolsDir { root: PathBuf },
    /// Below a tool manager's install directory.
    Manager { manager: String, root: PathBuf },
}

/// Shim and proxy kinds that are never executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShimKind {
    Mise,
    Asdf,
    Rustup,
    Elan,
    Pyenv,
    Rbenv,
    /// Another version manager's `shims` directory (nodenv, goenv, jenv, ...).
    Other,
}

/// How a probe went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    /// Ran, but the output matched no version pattern.
    NoVersion {
        output: String,
    },
    /// Exited non-zero without a version.
    Failed {
        code: Option<i32>,
        output: String,
    },
    TimedOut {
        after_ms: u64,
    },
    Error {
        message: String,
    },
}

/// An identified tool installation.
#[derive(Debug, Clone, Serialize)]
pub struct Install {
    pub id: String,
    pub category: Category,
    pub path: PathBuf,
    /// Other paths reaching the same file (symlinks, merged `/usr`).
    pub also: Vec<PathBuf>,
    pub version: Option<String>,
    pub origin: Origin,
    pub outcome: Outcome,
    /// The result came from the cache (no process ran).
    pub cached: bool,
}

/// A shim or proxy, and the real installs of the same executable name.
#[derive(Debug, Clone, Serialize)]
pub struct Shim {
    pub path: PathBuf,
    pub kind: ShimKind,
    pub name: String,
    pub origin: Origin,
    pub resolves_to: Vec<PathBuf>,
}

/// An executable in a tools directory that no rule identifies.
#[derive(Debug, Clone, Serialize)]
pub struct Unidentified {
    pub path: PathBuf,
    pub root: PathBuf,
}

/// Something that went wrong during the scan without stopping it.
#[derive(Debug, Clone, Serialize)]
pub struct ScanProblem {
    pub path: PathBuf,
    pub message: String,
}

/// Counters for one scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanStats {
    pub candidates: usize,
    pub probed: usize,
    pub cached: usize,
    pub timed_out: usize,
    pub failed: usize,
    pub elapsed_ms: u64,
}

/// What a scan found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub installs: Vec<Install>,
    pub shims: Vec<Shim>,
    pub unidentified: Vec<Unidentified>,
    pub problems: Vec<ScanProblem>,
    /// Shim directories seen on `PATH`, with their rank.
    pub shim_dirs_on_path: Vec<(usize, PathBuf)>,
    pub stats: ScanStats,
}

/// Progress callbacks; the CLI draws a bar, tests count.
pub trait ScanReporter: Sync {
    fn probing(&self, _total: usize) {}
    fn probed(&self, _path: &Path) {}
}

/// A reporter that reports nothing.
#[derive(Debug, Default)]
pub struct NoReport;
impl ScanReporter for NoReport {}

/// What the walk found before probing.
#[derive(Debug, Clone)]
struct Candidate {
    path: PathBuf,
    key: FileKey,
    rule: usize,
    origin: Origin,
    /// A rule `files` entry (run through the rule's runner) rather than an executable.
    via_runner: bool,
}

fn is_exec(m: &std::fs::Metadata) -> bool {
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

fn skip_file(name: &str) -> bool {
    name.contains(".so")
        || [
            ".dll", ".dylib", ".a", ".o", ".la", ".h", ".txt", ".md", ".json",
        ]
        .iter()
        .any(|e| name.ends_with(e))
}

/// The shim kind of a directory recognised by its path: every directory named `shims` is one
/// (mise, asdf, pyenv, rbenv, nodenv, goenv, jenv and pyenv plugins all use that name, and running
/// a file in it goes through the version manager).
pub fn shim_dir_kind(dir: &Path) -> Option<ShimKind> {
    if dir.file_name()? != "shims" {
        return None;
    }
    let kind = dir
        .ancestors()
        .skip(1)
        .find_map(|a| match a.file_name()?.to_str()? {
            "mise" | "rtx" => Some(ShimKind::Mise),
            ".asdf" | "asdf" => Some(ShimKind::Asdf),
            ".pyenv" | "pyenv" => Some(ShimKind::Pyenv),
            ".rbenv" | "rbenv" => Some(ShimKind::Rbenv),
            _ => None,
        });
    Some(kind.unwrap_or(ShimKind::Other))
}

/// The shim kind of one file, recognised without running it.
fn shim_file_kind(path: &Path, meta: &std::fs::Metadata, is_symlink: bool) -> Option<ShimKind> {
    let by_name = |n: &str| match n {
        "mise" | "rtx" => Some(ShimKind::Mise),
        "rustup" | "rustup-init" => Some(ShimKind::Rustup),
        "elan" | "elan-init" => Some(ShimKind::Elan),
        _ => None,
    };
    let own = path.file_name()?.to_str()?;
    if by_name(own).is_some() {
        return None;
    }
    // mise shims outside a `shims` directory are symlinks to the mise binary.
    if is_symlink
        && let Ok(target) = std::fs::read_link(path)
        && let Some(k) = target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(by_name)
    {
        return Some(k);
    }
    // rustup and elan install their proxies as hard links of themselves.
    if meta.nlink() > 1 {
        let dir = path.parent()?;
        for proxy in ["rustup", "elan"] {
            if let Ok(m) = std::fs::metadata(dir.join(proxy))
                && m.ino() == meta.ino()
                && m.dev() == meta.dev()
            {
                return by_name(proxy);
            }
        }
    }
    None
}

struct Walker<'a> {
    rules: &'a Rules,
    max_depth: usize,
    dirs: BTreeMap<PathBuf, DirListing>,
    dirs_changed: bool,
    /// Directories whose entries this scan used.
    listed: HashSet<PathBuf>,
    refresh: bool,
    visited_dirs: HashSet<(u64, u64)>,
    by_file: HashMap<(u64, u64), usize>,
    candidates: Vec<Candidate>,
    also: HashMap<usize, Vec<PathBuf>>,
    shims: Vec<Shim>,
    unidentified: Vec<Unidentified>,
    problems: Vec<ScanProblem>,
}

impl Walker<'_> {
    fn walk(
        &mut self,
        dir: &Path,
        depth: usize,
        origin: &Origin,
        known: Option<std::fs::Metadata>,
    ) {
        let dmeta = match known {
            Some(m) => m,
            None => match std::fs::metadata(dir) {
                Ok(m) => m,
                Err(_) => {
                    // A missing directory is not a problem (defaults name dirs that may not
                    // exist)...
                    if dir.symlink_metadata().is_ok() {
                        self.problems.push(ScanProblem {
                            path: dir.to_path_buf(),
                            message: "cannot read (dangling symlink or no permission)".into(),
                        });
                    }
                    return;
                }
            },
        };
        if !self.visited_dirs.insert((dmeta.dev(), dmeta.ino())) {
            return;
        }
        let mtime_ns = i128::from(dmeta.mtime()) * 1_000_000_000 + i128::from(dmeta.mtime_nsec());
        let cached = self
            .dirs
            .get(dir)
            .filter(|l| {
                !self.refresh
                    && l.dev == dmeta.dev()
                    && l.ino == dmeta.ino()
                    && l.mtime_ns == mtime_ns
            })
            .map(|l| l.entries.clone());
        let entries = match cached {
            Some(e) => e,
            None => {
                let rd = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) => {
                        // ...but an unreadable one is.
                        self.problems.push(ScanProblem {
                            path: dir.to_path_buf(),
                            message: e.to_string(),
                        });
                        return;
                    }
                };
                let mut entries: Vec<(String, char)> = rd
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let kind = match e.file_type() {
                            Ok(t) if t.is_dir() => 'd',
                            Ok(t) if t.is_symlink() => 'l',
                            _ => 'f',
                        };
                        Some((name, kind))
                    })
                    .collect();
                entries.sort();
                // Like git's racy-clean check: mtimes are coarse (a few ms), so a directory
                // changed just now could change again without its mtime moving. Only listings
                // older than 2 s are cached.
                let now_ns = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i128)
                    .unwrap_or(0);
                if now_ns - mtime_ns > 2_000_000_000 {
                    self.dirs.insert(
                        dir.to_path_buf(),
                        DirListing {
                            dev: dmeta.dev(),
                            ino: dmeta.ino(),
                            mtime_ns,
                            entries: entries.clone(),
                        },
                    );
                    self.dirs_changed = true;
                }
                entries
            }
        };
        self.listed.insert(dir.to_path_buf());
        let shim_dir = shim_dir_kind(dir);
        for (name, kind) in entries {
            let name = name.as_str();
            let path = dir.join(name);
            let descend =
                depth < self.max_depth && !name.starts_with('.') && !SKIP_DIRS.contains(&name);
            if kind == 'd' {
                // A real directory: no need to stat it unless we go in.
                if descend {
                    self.walk(&path, depth + 1, origin, None);
                }
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if descend {
                    self.walk(&path, depth + 1, origin, Some(meta));
                }
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            if !is_exec(&meta) {
                if let Some(rule) = self.rules.for_file(name) {
                    let idx = self
                        .rules
                        .all()
                        .iter()
                        .position(|r| r.id == rule.id)
                        .unwrap_or(0);
                    self.add(path, &meta, idx, origin, true);
                }
                continue;
            }
            if skip_file(name) {
                continue;
            }
            let rule = self.rules.for_exe(name);
            // On PATH only names a rule knows matter (reading every small script in /usr/bin to
            // look for shims would cost the warm scan); in tools directories every file counts.
            let on_path = matches!(origin, Origin::Path { .. });
            let shim = shim_dir.or_else(|| {
                if on_path && rule.is_none() {
                    None
                } else {
                    shim_file_kind(&path, &meta, kind == 'l')
                }
            });
            if let Some(kind) = shim {
                self.shims.push(Shim {
                    path,
                    kind,
                    name: name.to_owned(),
                    origin: origin.clone(),
                    resolves_to: Vec::new(),
                });
                continue;
            }
            match rule {
                Some(rule) => {
                    let idx = self
                        .rules
                        .all()
                        .iter()
                        .position(|r| r.id == rule.id)
                        .unwrap_or(0);
                    self.add(path, &meta, idx, origin, false);
                }
                None => {
                    if let Origin::ToolsDir { root } | Origin::Manager { root, .. } = origin {
                        self.unidentified.push(Unidentified {
                            path,
                            root: root.clone(),
                        });
                    }
                }
            }
        }
    }

    fn add(
        &mut self,
        path: PathBuf,
        meta: &std::fs::Metadata,
        rule: usize,
        origin: &Origin,
        via_runner: bool,
    ) {
        let id = (meta.dev(), meta.ino());
        if let Some(&i) = self.by_file.get(&id) {
            self.also.entry(i).or_default().push(path);
            return;
        }
        self.by_file.insert(id, self.candidates.len());
        self.candidates.push(Candidate {
            path,
            key: FileKey::of(meta),
            rule,
            origin: origin.clone(),
            via_runner,
        });
    }
}

/// Scan, probe (or reuse the cache) and build the inventory. The cache is updated in memory;
/// the caller saves it.
pub fn scan(
    opts: &ScanOptions,
    rules: &Rules,
    cache: &mut ProbeCache,
    reporter: &dyn ScanReporter,
) -> Inventory {
    let start = Instant::now();
    let mut w = Walker {
        rules,
        max_depth: opts.max_depth,
        dirs: std::mem::take(&mut cache.dirs),
        dirs_changed: false,
        listed: HashSet::new(),
        refresh: opts.refresh,
        visited_dirs: HashSet::new(),
        by_file: HashMap::new(),
        candidates: Vec::new(),
        also: HashMap::new(),
        shims: Vec::new(),
        unidentified: Vec::new(),
        problems: Vec::new(),
    };
    let mut shim_dirs_on_path = Vec::new();
    for (rank, dir) in opts.path_dirs.iter().enumerate() {
        if shim_dir_kind(dir).is_some() {
            shim_dirs_on_path.push((rank, dir.clone()));
        }
        let origin = Origin::Path {
            rank,
            dir: dir.clone(),
        };
        let saved = w.max_depth;
        w.max_depth = 0;
        w.walk(dir, 0, &origin, None);
        w.max_depth = saved;
    }
    for root in &opts.tools_dirs {
        w.walk(root, 0, &Origin::ToolsDir { root: root.clone() }, None);
    }
    for (manager, root) in &opts.manager_dirs {
        w.walk(
            root,
            0,
            &Origin::Manager {
                manager: manager.clone(),
                root: root.clone(),
            },
            None,
        );
    }
    // Keep the listings of the directories this scan saw, and only those.
    let before = w.dirs.len();
    let listed = std::mem::take(&mut w.listed);
    w.dirs.retain(|d, _| listed.contains(d));
    cache.dirty |= w.dirs_changed || w.dirs.len() != before;
    cache.dirs = std::mem::take(&mut w.dirs);

    // Decide which candidates need a process.
    let mut results: Vec<Option<(Option<String>, Outcome, bool)>> = vec![None; w.candidates.len()];
    let mut todo = Vec::new();
    for (i, c) in w.candidates.iter().enumerate() {
        let rule = &rules.all()[c.rule];
        let hit = (!opts.refresh)
            .then(|| cache.entries.get(&c.path))
            .flatten()
            .filter(|e| e.key == c.key && e.rule == rule.fingerprint());
        match hit {
            Some(e) => results[i] = Some((e.version.clone(), e.outcome.clone(), true)),
            None => todo.push(i),
        }
    }
    reporter.probing(todo.len());
    let run = |i: &usize| {
        let c = &w.candidates[*i];
        let r = probe::probe(c, &rules.all()[c.rule], opts);
        reporter.probed(&c.path);
        (*i, r)
    };
    let probed: Vec<(usize, (Option<String>, Outcome))> =
        if opts.parallelism <= 1 || todo.len() <= 1 {
            todo.iter().map(run).collect()
        } else {
            match rayon::ThreadPoolBuilder::new()
                .num_threads(opts.parallelism)
                .build()
            {
                Ok(pool) => pool.install(|| todo.par_iter().map(run).collect()),
                Err(_) => todo.iter().map(run).collect(),
            }
        };
    let mut stats = ScanStats {
        candidates: w.candidates.len(),
        probed: probed.len(),
        ..Default::default()
    };
    for (i, (version, outcome)) in probed {
        let c = &w.candidates[i];
        cache.entries.insert(
            c.path.clone(),
            CacheEntry {
                key: c.key,
                rule: rules.all()[c.rule].fingerprint(),
                version: version.clone(),
                outcome: outcome.clone(),
            },
        );
        cache.dirty = true;
        results[i] = Some((version, outcome, false));
    }

    // Drop probe results of files that are gone (keeps the cache the size of the estate).
    let live: HashSet<&Path> = w.candidates.iter().map(|c| c.path.as_path()).collect();
    let before = cache.entries.len();
    cache.entries.retain(|p, _| live.contains(p.as_path()));
    cache.dirty |= cache.entries.len() != before;

    let mut installs = Vec::new();
    for (i, c) in w.candidates.iter().enumerate() {
        let Some((version, outcome, cached)) = results[i].take() else {
            continue;
        };
        stats.cached += usize::from(cached);
        match &outcome {
            Outcome::TimedOut { .. } => stats.timed_out += 1,
            Outcome::Failed { .. } | Outcome::Error { .. } | Outcome::NoVersion { .. } => {
                stats.failed += 1
            }
            Outcome::Ok => {}
        }
        let rule = &rules.all()[c.rule];
        installs.push(Install {
            id: rule.id.clone(),
            category: rule.category,
            path: c.path.clone(),
            also: w.also.remove(&i).unwrap_or_default(),
            version,
            origin: c.origin.clone(),
            outcome,
            cached,
        });
    }

    // Resolve each shim to the real installs of the same executable name under manager dirs.
    let mut shims = w.shims;
    for s in &mut shims {
        s.resolves_to = installs
            .iter()
            .filter(|i| matches!(i.origin, Origin::Manager { .. }))
            .filter(|i| i.path.file_name().and_then(|n| n.to_str()) == Some(s.name.as_str()))
            .map(|i| i.path.clone())
            .collect();
    }
    stats.elapsed_ms = start.elapsed().as_millis() as u64;
    Inventory {
        installs,
        shims,
        unidentified: w.unidentified,
        problems: w.problems,
        shim_dirs_on_path,
        stats,
    }
}
