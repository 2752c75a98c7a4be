//! Drift between what projects declare and what is installed: per-tool status, ghosts, the
//! `tool.discovered` events, and `doctor` findings.
//!
//! - A declared tool is *satisfied* when an install of the same rule id matches one of its versions
//!   (tried in fallback order), *mismatch* when installs exist but none matches, *missing* when
//!   there is none, *unknown* when no rule identifies the name (nothing can be checked).
//! - An installed tool whose id no manifest of any registered project (nor a global manifest)
//!   declares is a *ghost*.
//! - Version matching: exact or prefix at a component boundary (`3.12` matches `3.12.4`, not
//!   `3.120`); a leading `v` is ignored; `latest`, `lts`, `stable`, `sub-N:` and names without
//!   digits match any install; `system` matches installs outside tool managers; `path:P` matches
//!   installs under `P`; `ref:` matches manager installs; `prefix:X`/`latest:X` are prefixes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::discover::{Install, Inventory, Origin, Outcome, ProbeCache};
use crate::manifest::{ManifestSet, Resolved, Scope};
use crate::rules::Rules;

/// Manifests of one project.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectTools {
    pub project: String,
    pub dir: PathBuf,
    pub manifests: ManifestSet,
}

/// Load the manifests of each `(project name, directory)`.
pub fn load_projects(projects: &[(String, PathBuf)], globals: &[PathBuf]) -> Vec<ProjectTools> {
    projects
        .iter()
        .map(|(name, dir)| ProjectTools {
            project: name.clone(),
            dir: dir.clone(),
            manifests: ManifestSet::load(dir, globals),
        })
        .collect()
}

/// The state of one declared tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ToolState {
    Satisfied {
        by: PathBuf,
        version: Option<String>,
        matched: String,
    },
    Mismatch {
        installed: Vec<InstalledVersion>,
    },
    Missing,
    Unknown,
}

impl ToolState {
    /// What satisfies a declaration, or what exists: the FOUND column of `tools status` and of
    /// the TUI's Toolchains view.
    pub fn found(&self) -> String {
        match self {
            ToolState::Satisfied { by, version, .. } => {
                format!("{} {}", version.as_deref().unwrap_or("?"), by.display())
            }
            ToolState::Mismatch { installed } => installed
                .iter()
                .map(|i| i.version.clone().unwrap_or_else(|| "?".into()))
                .collect::<Vec<_>>()
                .join(", "),
            ToolState::Missing => "-".into(),
            ToolState::Unknown => "(no discovery rule)".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledVersion {
    pub path: PathBuf,
    pub version: Option<String>,
}

/// One row of `tools status`.
#[derive(Debug, Clone, Serialize)]
pub struct ToolStatus {
    pub project: String,
    /// The name as written in the manifest.
    pub tool: String,
    /// The rule id it maps to.
    pub id: Option<String>,
    pub versions: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub scope: Scope,
    #[serde(flatten)]
    pub state: ToolState,
    /// Requested tokens that are not versions (`banana`): never matched, reported as a problem.
    pub not_versions: Vec<String>,
    /// Lower-precedence declarations this one overrides (precedence is in `docs/tools.md`).
    pub overrides: Vec<Overridden>,
}

/// A declaration that lost to a higher-precedence one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overridden {
    pub file: PathBuf,
    pub line: usize,
    pub versions: Vec<String>,
}

impl ToolStatus {
    pub fn state_name(&self) -> &'static str {
        match self.state {
            ToolState::Satisfied { .. } => "satisfied",
            ToolState::Mismatch { .. } => "mismatch",
            ToolState::Missing => "missing",
            ToolState::Unknown => "unknown",
        }
    }
}

fn strip_v(s: &str) -> &str {
    s.strip_prefix('v')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(s)
}

fn prefix_match(req: &str, version: &str) -> bool {
    let (req, version) = (strip_v(req), strip_v(version));
    version == req
        || version
            .strip_prefix(req)
            .is_some_and(|rest| rest.starts_with(['.', '-', '+', '~', '_']))
}

/// Words a manifest may use instead of a version number (asdf / mise / nvm / rustup spellings).
const VERSION_WORDS: [&str; 9] = [
    "latest", "lts", "stable", "*", "lts/*", "node", "system", "beta", "nightly",
];

/// Whether `req` is something a version manager could resolve: a version (it has a digit), a
/// known word, a prefixed form (`path:`, `ref:`, `prefix:`, `latest:`, `sub-`) or an nvm LTS
/// codename (`lts/iron`). Anything else (`banana`) is not a version and never matches.
pub fn is_version_request(req: &str) -> bool {
    VERSION_WORDS.contains(&req)
        || req.contains(|c: char| c.is_ascii_digit())
        || ["path:", "ref:", "prefix:", "latest:", "sub-"]
            .iter()
            .any(|p| req.starts_with(p))
        || req
            .strip_prefix("lts/")
            .is_some_and(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase()))
}

/// Whether `install` satisfies the requested version `req`.
pub fn version_matches(req: &str, install: &Install) -> bool {
    let managed = matches!(install.origin, Origin::Manager { .. });
    let v = install.version.as_deref();
    match req {
        "latest" | "lts" | "stable" | "*" | "lts/*" | "node" => true,
        "system" => !managed,
        r if r.starts_with("path:") => {
            let p = Path::new(&r[5..]);
            install.path.starts_with(p) || install.also.iter().any(|a| a.starts_with(p))
        }
        r if r.starts_with("ref:") => managed,
        r if r.starts_with("sub-") => true,
        r if r.starts_with("prefix:") || r.starts_with("latest:") => {
            let (_, x) = r.split_once(':').unwrap_or(("", ""));
            v.is_some_and(|v| prefix_match(x, v))
        }
        "beta" | "nightly" => v.is_some_and(|v| v.contains(req)),
        r if r.starts_with("lts/") => is_version_request(r),
        r => match r.find(|c: char| c.is_ascii_digit()) {
            // Not a version (`banana`): reported by `status` as `not_versions`, never a match.
            None => false,
            Some(i) => {
                let numeric = if r.starts_with('v') || i == 0 {
                    r
                } else {
                    &r[i..]
                };
                v.is_some_and(|v| prefix_match(numeric, v))
            }
        },
    }
}

/// Status of each effective declaration of one project.
pub fn status(project: &ProjectTools, inv: &Inventory, rules: &Rules) -> Vec<ToolStatus> {
    let key = |name: &str| match rules.for_manifest_name(name) {
        Some(r) => format!("rule:{}", r.id),
        None => format!("name:{name}"),
    };
    project
        .manifests
        .resolve_by(key)
        .into_iter()
        .map(|r: Resolved| {
            let rule = rules.for_manifest_name(&r.tool);
            let state = match rule {
                None => ToolState::Unknown,
                Some(rule) => {
                    let installs: Vec<&Install> =
                        inv.installs.iter().filter(|i| i.id == rule.id).collect();
                    let found = r.versions.iter().find_map(|req| {
                        installs
                            .iter()
                            .find(|i| version_matches(req, i))
                            .map(|i| (req, *i))
                    });
                    match (found, installs.is_empty()) {
                        (Some((req, i)), _) => ToolState::Satisfied {
                            by: i.path.clone(),
                            version: i.version.clone(),
                            matched: req.clone(),
                        },
                        (None, true) => ToolState::Missing,
                        (None, false) => ToolState::Mismatch {
                            installed: installs
                                .iter()
                                .map(|i| InstalledVersion {
                                    path: i.path.clone(),
                                    version: i.version.clone(),
                                })
                                .collect(),
                        },
                    }
                }
            };
            ToolStatus {
                project: project.project.clone(),
                tool: r.tool,
                id: rule.map(|r| r.id.clone()),
                not_versions: r
                    .versions
                    .iter()
                    .filter(|v| !is_version_request(v))
                    .cloned()
                    .collect(),
                versions: r.versions,
                file: r.file,
                line: r.line,
                scope: r.scope,
                state,
                overrides: r
                    .shadowed
                    .into_iter()
                    .map(|(file, line, versions)| Overridden {
                        file,
                        line,
                        versions,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Rule ids declared by any of the projects (their manifests include the global files).
pub fn declared_ids(
    projects: &[ProjectTools],
    globals: &ManifestSet,
    rules: &Rules,
) -> BTreeSet<String> {
    projects
        .iter()
        .flat_map(|p| p.manifests.manifests.iter())
        .chain(globals.manifests.iter())
        .flat_map(|m| m.declarations.iter())
        .filter_map(|d| rules.for_manifest_name(&d.tool).map(|r| r.id.clone()))
        .collect()
}

/// An event for the state log (`repoman_state::NewEvent` once wired by the CLI).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolEvent {
    pub type_: String,
    pub object: String,
    pub data: serde_json::Value,
}

/// `tool.discovered` events for installs that are new or whose version or ghost flag changed
/// since they were last reported; updates `cache.reported` (the caller saves the cache only after
/// the events were recorded).
pub fn discovered_events(
    inv: &Inventory,
    declared: &BTreeSet<String>,
    cache: &mut ProbeCache,
) -> Vec<ToolEvent> {
    let mut out = Vec::new();
    for i in &inv.installs {
        if i.outcome != Outcome::Ok {
            continue;
        }
        let ghost = !declared.contains(&i.id);
        let now = (i.version.clone(), ghost);
        if cache.reported.get(&i.path) == Some(&now) {
            continue;
        }
        cache.reported.insert(i.path.clone(), now);
        cache.mark_dirty();
        out.push(ToolEvent {
            type_: "tool.discovered".into(),
            object: repoman_core::ObjectId::tool(i.id.as_str()).to_string(),
            data: serde_json::json!({
                "path": i.path,
                "version": i.version,
                "category": i.category.as_str(),
                "ghost": ghost,
                "origin": i.origin,
            }),
        });
    }
    out
}

/// How serious a doctor finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
}

/// One `tools doctor` finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
    pub paths: Vec<PathBuf>,
}

fn exe_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// PATH shadowing, duplicate installs, shim directories ahead of real installs, unreadable
/// directories, and probes that timed out or failed.
pub fn doctor(inv: &Inventory) -> Vec<Finding> {
    let mut out = Vec::new();
    // Executables by name on PATH, in PATH order.
    let mut on_path: BTreeMap<String, Vec<(usize, &Install, PathBuf)>> = BTreeMap::new();
    for i in &inv.installs {
        for p in std::iter::once(&i.path).chain(&i.also) {
            if let Origin::Path { rank, .. } = &i.origin
                && p.parent().is_some()
            {
                on_path
                    .entry(exe_name(p))
                    .or_default()
                    .push((*rank, i, p.clone()));
            }
        }
    }
    for (name, mut v) in on_path {
        v.sort_by_key(|(r, _, _)| *r);
        v.dedup_by_key(|(_, i, _)| i.path.clone());
        if v.len() > 1 {
            let (_, first, fp) = &v[0];
            for (_, other, op) in &v[1..] {
                let differs = first.version != other.version;
                out.push(Finding {
                    kind: "path-shadowing",
                    severity: if differs {
                        Severity::Warning
                    } else {
                        Severity::Info
                    },
                    message: format!(
                        "`{name}` at {} ({}) shadows {} ({})",
                        fp.display(),
                        first.version.as_deref().unwrap_or("unknown version"),
                        op.display(),
                        other.version.as_deref().unwrap_or("unknown version"),
                    ),
                    paths: vec![fp.clone(), op.clone()],
                });
            }
        }
    }
    let mut by_version: BTreeMap<(String, String), Vec<&Install>> = BTreeMap::new();
    for i in &inv.installs {
        if let Some(v) = &i.version {
            by_version
                .entry((i.id.clone(), v.clone()))
                .or_default()
                .push(i);
        }
    }
    for ((id, v), is) in by_version {
        if is.len() > 1 {
            out.push(Finding {
                kind: "duplicate-install",
                severity: Severity::Info,
                message: format!("{id} {v} is installed {} times", is.len()),
                paths: is.iter().map(|i| i.path.clone()).collect(),
            });
        }
    }
    for (rank, dir) in &inv.shim_dirs_on_path {
        let names: BTreeSet<&str> = inv
            .shims
            .iter()
            .filter(|s| s.path.parent() == Some(dir.as_path()))
            .map(|s| s.name.as_str())
            .collect();
        let behind: Vec<PathBuf> = inv
            .installs
            .iter()
            .filter(|i| matches!(&i.origin, Origin::Path { rank: r, .. } if r > rank))
            .filter(|i| names.contains(exe_name(&i.path).as_str()))
            .map(|i| i.path.clone())
            .collect();
        if !behind.is_empty() {
            out.push(Finding {
                kind: "shim-ahead",
                severity: Severity::Warning,
                message: format!(
                    "shim directory {} comes before {} real install(s) on PATH; running those names goes through the shims",
                    dir.display(),
                    behind.len()
                ),
                paths: std::iter::once(dir.clone()).chain(behind).collect(),
            });
        }
    }
    for p in &inv.problems {
        out.push(Finding {
            kind: "unreadable-dir",
            severity: Severity::Warning,
            message: format!("cannot read {}: {}", p.path.display(), p.message),
            paths: vec![p.path.clone()],
        });
    }
    for i in &inv.installs {
        let msg = match &i.outcome {
            Outcome::Ok => continue,
            Outcome::TimedOut { after_ms } => format!("probe timed out after {after_ms} ms"),
            Outcome::Failed { code, output } => {
                format!(
                    "probe exited with {}: {output}",
                    code.map(|c| c.to_string()).unwrap_or("a signal".into())
                )
            }
            Outcome::NoVersion { output } => format!("no version in probe output: {output}"),
            Outcome::Error { message } => message.clone(),
        };
        out.push(Finding {
            kind: "probe-failed",
            severity: Severity::Warning,
            message: format!("{} ({}): {msg}", i.path.display(), i.id),
            paths: vec![i.path.clone()],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Category;

    fn inst(v: &str, managed: bool) -> Install {
        Install {
            id: "node".into(),
            category: Category::Runtime,
            path: PathBuf::from("/opt/node/bin/node"),
            also: vec![],
            version: Some(v.into()),
            origin: if managed {
                Origin::Manager {
                    manager: "mise".into(),
                    root: "/m".into(),
                }
            } else {
                Origin::Path {
                    rank: 0,
                    dir: "/usr/bin".into(),
                }
            },
            outcome: Outcome::Ok,
            cached: false,
        }
    }

    #[test]
    fn version_matching_rules() {
        let i = inst("20.11.1", false);
        for (req, ok) in [
            ("20", true),
            ("20.11", true),
            ("20.11.1", true),
            ("v20.11.1", true),
            ("2", false),
            ("20.1", false),
            ("18", false),
            ("latest", true),
            ("lts", true),
            ("system", true),
            ("ref:abc", false),
            ("path:/opt/node", true),
            ("path:/usr", false),
            ("prefix:20.11", true),
            ("temurin-20", true),
            ("temurin-21", false),
            ("banana", false),
            ("lts/iron", true),
            ("nightly", false),
        ] {
            assert_eq!(version_matches(req, &i), ok, "{req}");
        }
        assert!(!version_matches("system", &inst("20", true)));
        assert!(version_matches("ref:abc", &inst("20", true)));
        assert!(version_matches("nightly", &inst("1.80.0-nightly", false)));
        for word in ["banana", "lts/", "lts/Iron", "Latest"] {
            assert!(!is_version_request(word), "{word}");
        }
        for req in [
            "20",
            "latest",
            "system",
            "lts/iron",
            "path:/x",
            "ref:main",
            "temurin-21",
        ] {
            assert!(is_version_request(req), "{req}");
        }
    }
}
