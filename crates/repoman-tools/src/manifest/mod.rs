//! Tool manifests: which files declare tool versions, how they are read, and how they merge.
//!
//! Kinds: `.tool-versions` ([`tool_versions`]), mise TOML files ([`mise`]), and idiomatic
//! version files (`.nvmrc`, `.node-version`, `.python-version`, `.ruby-version`, `.go-version`,
//! `rust-toolchain.toml`, `rust-toolchain`), which are read-only.
//!
//! ## Precedence (documented in `docs/tools.md`)
//! For a directory `D`, files are collected from `D` and each parent up to the filesystem root,
//! then the global files (`~/.tool-versions`, `$XDG_CONFIG_HOME/mise/config.toml`). A tool's
//! versions come from the first file in this order that declares it (the whole fallback list of
//! that file; lists are not merged across files):
//! 1. nearer directories before farther ones;
//! 2. within one directory: `mise.local.toml`, `.mise.local.toml`, `.config/mise/config.local.toml`
//!    (local files), then `mise.toml`, `.mise.toml`, `.config/mise.toml`, `.config/mise/config.toml`,
//!    `mise/config.toml`, then `.tool-versions`, then idiomatic files;
//! 3. project files before global files.
//!
//! Within one `.tool-versions` the first line for a tool wins (asdf); the others are reported as
//! shadowed.

pub mod idiomatic;
pub mod mise;
pub mod tool_versions;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ToolsError;
pub use mise::MiseFile;
pub use tool_versions::ToolVersions;

/// What kind of file a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    ToolVersions,
    Mise,
    /// Read-only single-tool version files.
    Idiomatic,
}

/// Project files or user-global files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    Project,
    Global,
}

/// mise files in one directory, highest precedence first; the `bool` marks local files.
pub const MISE_FILES: &[(&str, bool)] = &[
    ("mise.local.toml", true),
    (".mise.local.toml", true),
    (".config/mise/config.local.toml", true),
    ("mise.toml", false),
    (".mise.toml", false),
    (".config/mise.toml", false),
    (".config/mise/config.toml", false),
    ("mise/config.toml", false),
];

/// The kind of a file from its name, if repoman understands it.
pub fn kind_of(path: &Path) -> Option<ManifestKind> {
    let name = path.file_name()?.to_str()?;
    if name == ".tool-versions" || name.ends_with(".tool-versions") {
        return Some(ManifestKind::ToolVersions);
    }
    if idiomatic::tool_for(name).is_some() {
        return Some(ManifestKind::Idiomatic);
    }
    if name.ends_with(".toml") {
        return Some(ManifestKind::Mise);
    }
    None
}

/// One declaration: a tool and its versions (fallbacks in order) at a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Declaration {
    /// The tool name as written (never renamed: `nodejs` stays `nodejs`).
    pub tool: String,
    pub versions: Vec<String>,
    pub line: usize,
}

/// A manifest file that was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub path: PathBuf,
    pub kind: ManifestKind,
    pub scope: Scope,
    /// mise local files (not meant to be committed).
    pub local: bool,
    pub declarations: Vec<Declaration>,
}

/// Read and parse a manifest file. `Ok(None)` when it does not exist.
pub fn read_manifest(path: &Path, scope: Scope) -> Result<Option<Manifest>, ToolsError> {
    let Some(kind) = kind_of(path) else {
        return Err(ToolsError::NotEditable(path.to_path_buf()));
    };
    let text = match read_manifest_bytes(path) {
        Ok(Some(b)) => String::from_utf8(b).map_err(|_| ToolsError::Parse {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: "the file is not valid UTF-8".into(),
        })?,
        Ok(None) => return Ok(None),
        Err(_) if path.symlink_metadata().is_ok_and(|m| m.is_dir()) => return Ok(None),
        Err(e) => return Err(ToolsError::read(path, e)),
    };
    let declarations = match kind {
        ManifestKind::ToolVersions => ToolVersions::parse(path, &text)?
            .entries()
            .into_iter()
            .map(|e| Declaration {
                tool: e.tool,
                versions: e.versions,
                line: e.line,
            })
            .collect(),
        ManifestKind::Mise => MiseFile::parse(path, &text)?
            .entries()
            .into_iter()
            .map(|e| Declaration {
                tool: e.tool,
                versions: e.versions,
                line: e.line,
            })
            .collect(),
        ManifestKind::Idiomatic => idiomatic::parse(path, &text)?.into_iter().collect(),
    };
    let local = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".local.toml"));
    Ok(Some(Manifest {
        path: path.to_path_buf(),
        kind,
        scope,
        local,
        declarations,
    }))
}

/// Candidate manifest paths in one directory, highest precedence first.
pub fn candidates_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = MISE_FILES.iter().map(|(f, _)| dir.join(f)).collect();
    v.push(dir.join(".tool-versions"));
    v.extend(idiomatic::FILES.iter().map(|(f, _)| dir.join(f)));
    v
}

/// The global manifest paths, highest precedence first.
pub fn global_candidates(home: Option<&Path>, xdg_config: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let config = xdg_config
        .map(Path::to_path_buf)
        .or_else(|| home.map(|h| h.join(".config")));
    if let Some(c) = config {
        v.push(c.join("mise/config.local.toml"));
        v.push(c.join("mise/config.toml"));
    }
    if let Some(h) = home {
        v.push(h.join(".tool-versions"));
    }
    v
}

/// A problem with one file that does not stop the others from being read.
#[derive(Debug, Clone, Serialize)]
pub struct FileProblem {
    pub path: PathBuf,
    pub message: String,
}

/// All manifests that apply to `dir`, in precedence order, and files that failed to parse.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ManifestSet {
    pub manifests: Vec<Manifest>,
    pub problems: Vec<FileProblem>,
}

/// The effective declaration of one tool after merging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub tool: String,
    pub versions: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub scope: Scope,
    /// Lower-precedence declarations of the same tool that this one overrides.
    pub shadowed: Vec<(PathBuf, usize, Vec<String>)>,
}

impl ManifestSet {
    /// Collect manifests for `dir` (walking up to the root), then the global files.
    pub fn load(dir: &Path, globals: &[PathBuf]) -> Self {
        let mut set = Self::default();
        let mut seen = std::collections::HashSet::new();
        let mut push = |set: &mut Self, path: PathBuf, scope: Scope| {
            if !seen.insert(path.clone()) {
                return;
            }
            match read_manifest(&path, scope) {
                Ok(Some(m)) => set.manifests.push(m),
                Ok(None) => {}
                Err(e) => set.problems.push(FileProblem {
                    path,
                    message: e.to_string(),
                }),
            }
        };
        let mut d = Some(dir);
        while let Some(cur) = d {
            for p in candidates_in(cur) {
                // A global file met on the way up (e.g. `~/.tool-versions`) keeps global rank.
                if !globals.contains(&p) {
                    push(&mut set, p, Scope::Project);
                }
            }
            d = cur.parent();
        }
        for g in globals {
            push(&mut set, g.clone(), Scope::Global);
        }
        set
    }

    /// Read exactly `files` (e.g. the global manifests), in precedence order.
    pub fn load_files(files: &[PathBuf], scope: Scope) -> Self {
        let mut set = Self::default();
        for path in files {
            match read_manifest(path, scope) {
                Ok(Some(m)) => set.manifests.push(m),
                Ok(None) => {}
                Err(e) => set.problems.push(FileProblem {
                    path: path.clone(),
                    message: e.to_string(),
                }),
            }
        }
        set
    }

    /// Merge into one effective declaration per tool name (see the module docs for the order).
    pub fn resolve(&self) -> Vec<Resolved> {
        self.resolve_by(str::to_owned)
    }

    /// Merge with `key` deciding which names are the same tool (e.g. `nodejs` in `.tool-versions`
    /// and `node` from `.nvmrc` both mean the rule `node`). The winner keeps its own spelling.
    pub fn resolve_by(&self, key: impl Fn(&str) -> String) -> Vec<Resolved> {
        let mut out: Vec<(String, Resolved)> = Vec::new();
        for m in &self.manifests {
            for d in &m.declarations {
                let k = key(&d.tool);
                match out.iter_mut().find(|(rk, _)| *rk == k).map(|(_, r)| r) {
                    Some(r) => r
                        .shadowed
                        .push((m.path.clone(), d.line, d.versions.clone())),
                    None => out.push((
                        k,
                        Resolved {
                            tool: d.tool.clone(),
                            versions: d.versions.clone(),
                            file: m.path.clone(),
                            line: d.line,
                            scope: m.scope,
                            shadowed: Vec::new(),
                        },
                    )),
                }
            }
        }
        out.into_iter().map(|(_, r)| r).collect()
    }
}

/// A planned change to one file: the bytes before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
    /// The file does not exist yet.
    pub create: bool,
}

impl Edit {
    pub fn changed(&self) -> bool {
        self.before != self.after
    }

    /// A unified diff (`--- PATH`, `+++ PATH`), empty when nothing changes. Line endings are
    /// kept as they are in the file (a CRLF file gives CRLF diff lines).
    pub fn diff(&self) -> String {
        if !self.changed() {
            return String::new();
        }
        // `diff -u` style headers: the path as given (absolute paths do not take `a/`, `b/`).
        let name = self.path.display().to_string();
        let old = if self.create {
            "/dev/null".to_owned()
        } else {
            name.clone()
        };
        similar::TextDiff::from_lines(&self.before, &self.after)
            .unified_diff()
            .context_radius(3)
            .header(&old, &name)
            .to_string()
    }

    /// Write the new bytes atomically. A file that did not change is not touched; a file changed
    /// on disk since it was read is refused. Returns whether it wrote.
    pub fn apply(&self) -> Result<bool, ToolsError> {
        if !self.changed() {
            return Ok(false);
        }
        let now = read_manifest_bytes(&self.path).map_err(|e| ToolsError::read(&self.path, e))?;
        let expected = (!self.create).then_some(self.before.as_bytes());
        if now.as_deref() != expected {
            return Err(ToolsError::Changed {
                path: self.path.clone(),
            });
        }
        if let Some(dir) = self.path.parent() {
            repoman_core::paths::ensure_dir(dir)
                .map_err(|e| ToolsError::read(dir, std::io::Error::other(e.to_string())))?;
        }
        repoman_core::fs::write_atomic(&self.path, self.after.as_bytes(), None)?;
        Ok(true)
    }
}

/// The largest toolchain manifest read.
pub const MANIFEST_MAX_BYTES: u64 = 1024 * 1024;

/// A manifest's bytes. Project manifests live in a repo the sandbox can write: a symlink is
/// refused (never followed to a file outside), a FIFO or device is refused without blocking.
fn read_manifest_bytes(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    repoman_core::fs::read_no_follow(path, MANIFEST_MAX_BYTES)
}

fn load_text(path: &Path) -> Result<(String, bool), ToolsError> {
    match read_manifest_bytes(path) {
        Ok(None) => Ok((String::new(), true)),
        Ok(Some(b)) => String::from_utf8(b)
            .map(|s| (s, false))
            .map_err(|_| ToolsError::Parse {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: "the file is not valid UTF-8".into(),
            }),
        Err(e) => Err(ToolsError::read(path, e)),
    }
}

/// Plan pinning `tool` to `versions` in `path` (which may not exist yet).
pub fn plan_pin(path: &Path, tool: &str, versions: &[String]) -> Result<Edit, ToolsError> {
    let (before, create) = load_text(path)?;
    let after = match kind_of(path) {
        Some(ManifestKind::ToolVersions) => {
            let mut f = ToolVersions::parse(path, &before)?;
            f.pin(tool, versions)?;
            f.render()
        }
        Some(ManifestKind::Mise) => {
            let mut f = MiseFile::parse(path, &before)?;
            f.pin(tool, versions)?;
            f.render()
        }
        _ => return Err(ToolsError::NotEditable(path.to_path_buf())),
    };
    Ok(Edit {
        path: path.to_path_buf(),
        before,
        after,
        create,
    })
}

/// Plan removing `tool` from `path`. A missing file is an unchanged edit.
pub fn plan_unpin(path: &Path, tool: &str) -> Result<Edit, ToolsError> {
    let (before, create) = load_text(path)?;
    if create {
        return Ok(Edit {
            path: path.to_path_buf(),
            after: before.clone(),
            before,
            create: false,
        });
    }
    let after = match kind_of(path) {
        Some(ManifestKind::ToolVersions) => {
            let mut f = ToolVersions::parse(path, &before)?;
            f.unpin(tool);
            f.render()
        }
        Some(ManifestKind::Mise) => {
            let mut f = MiseFile::parse(path, &before)?;
            f.unpin(tool)?;
            f.render()
        }
        _ => return Err(ToolsError::NotEditable(path.to_path_buf())),
    };
    Ok(Edit {
        path: path.to_path_buf(),
        before,
        after,
        create: false,
    })
}

/// Which file `pin` edits in `dir` when no `--file` is given: the highest-precedence committed
/// file of `dir` that declares `tool`, else the highest-precedence existing committed file, else a
/// new `.tool-versions`. Local files are edited only when they are the one declaring the tool.
pub fn pin_target(dir: &Path, tool: &str) -> Result<PathBuf, ToolsError> {
    let editable: Vec<PathBuf> = MISE_FILES
        .iter()
        .map(|(f, _)| dir.join(f))
        .chain(std::iter::once(dir.join(".tool-versions")))
        .filter(|p| p.is_file())
        .collect();
    for p in &editable {
        if let Some(m) = read_manifest(p, Scope::Project)?
            && m.declarations.iter().any(|d| d.tool == tool)
        {
            return Ok(p.clone());
        }
    }
    let committed = editable.iter().find(|p| {
        !p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".local.toml"))
    });
    Ok(committed
        .cloned()
        .unwrap_or_else(|| dir.join(".tool-versions")))
}

/// The editable files of `dir` that declare `tool` (what `unpin` changes without `--file`).
pub fn unpin_targets(dir: &Path, tool: &str) -> Result<Vec<PathBuf>, ToolsError> {
    let mut out = Vec::new();
    for p in MISE_FILES
        .iter()
        .map(|(f, _)| dir.join(f))
        .chain(std::iter::once(dir.join(".tool-versions")))
    {
        if let Some(m) = read_manifest(&p, Scope::Project)?
            && m.declarations.iter().any(|d| d.tool == tool)
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// The global file `pin --global` edits: `~/.tool-versions` if it exists, else the mise global
/// config if it exists, else a new `~/.tool-versions`.
pub fn global_target(home: &Path, xdg_config: Option<&Path>) -> PathBuf {
    let tv = home.join(".tool-versions");
    if tv.is_file() {
        return tv;
    }
    let mise = xdg_config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join(".config"))
        .join("mise/config.toml");
    if mise.is_file() { mise } else { tv }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn project_manifests_that_are_links_or_fifos_are_refused_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, "node 20\n").unwrap();
        let repo = d.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let tv = repo.join(".tool-versions");
        std::os::unix::fs::symlink(&secret, &tv).unwrap();
        let e = read_manifest(&tv, Scope::Project).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(plan_pin(&tv, "node", &["22".into()]).is_err());
        std::fs::remove_file(&tv).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&tv)
            .status()
            .unwrap();
        assert!(made.success());
        // Returning at all is the proof: opening a FIFO for reading without O_NONBLOCK would
        // wait for a writer forever.
        let e = read_manifest(&tv, Scope::Project).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&tv).unwrap();
        std::fs::write(&tv, "node 20\n").unwrap();
        let m = read_manifest(&tv, Scope::Project).unwrap().unwrap();
        assert_eq!(m.declarations[0].tool, "node");
    }
}
