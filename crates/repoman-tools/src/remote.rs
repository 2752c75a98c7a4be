//! Discovery inside another machine (a project's sandbox container) through an exec channel.
//!
//! The channel is the [`RemoteExec`] trait (the CLI implements it with Incus exec), so this crate
//! does not depend on Incus. The same rules and shim policy as the host scan apply:
//! - listing uses `find -L DIR... -maxdepth D -type f -perm -100` (argv only, no shell);
//! - a probe runs `env -i PATH=... LC_ALL=C HOME=/root timeout -s KILL SECS /abs/path ARGS...`, so
//!   the tool gets a clean environment and is killed at the timeout (exit 124 or 137 is reported as
//!   a timeout); exec channels give no terminal, so stdin is not a terminal;
//! - files in mise/asdf shim directories are listed as shims and never run;
//! - probes run in parallel on a bounded pool; there is no cache (containers come and go).
//!
//! Differences from the host scan: files are deduplicated by path (no inode over exec), rule
//! `files` (jars) are not probed, and unreadable directories are not reported individually.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::discover::{
    Install, Inventory, Origin, Outcome, PROBE_PATH, ScanStats, Shim, Unidentified, shim_dir_kind,
};
use crate::rules::Rules;

/// The result of one command run through the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs an argv in the target and waits for it. Errors are channel failures (not exit codes).
pub trait RemoteExec: Sync {
    fn exec(&self, argv: &[String]) -> Result<RemoteOutput, String>;
}

/// Where to look in the target.
#[derive(Debug, Clone)]
pub struct RemoteScanOptions {
    pub path_dirs: Vec<PathBuf>,
    pub tools_dirs: Vec<PathBuf>,
    pub manager_dirs: Vec<(String, PathBuf)>,
    /// mise/asdf shim directories to list even when they are not on the target's `PATH`.
    pub shim_dirs: Vec<PathBuf>,
    pub max_depth: usize,
    pub timeout: Duration,
    pub parallelism: usize,
}

impl Default for RemoteScanOptions {
    /// A Debian-like container where tools are installed as root.
    fn default() -> Self {
        let p = |s: &str| PathBuf::from(s);
        Self {
            path_dirs: [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .into_iter()
            .map(p)
            .collect(),
            tools_dirs: vec![
                p("/opt"),
                p("/root/developer/tools"),
                p("/root/.local/bin"),
                p("/root/.cargo/bin"),
            ],
            manager_dirs: vec![
                ("mise".into(), p("/root/.local/share/mise/installs")),
                ("asdf".into(), p("/root/.asdf/installs")),
                ("elan".into(), p("/root/.elan/toolchains")),
                ("rustup".into(), p("/root/.rustup/toolchains")),
            ],
            shim_dirs: vec![p("/root/.local/share/mise/shims"), p("/root/.asdf/shims")],
            max_depth: crate::discover::DEFAULT_MAX_DEPTH,
            timeout: crate::discover::DEFAULT_TIMEOUT,
            parallelism: 4,
        }
    }
}

fn find(exec: &dyn RemoteExec, dirs: &[PathBuf], depth: usize) -> Result<Vec<PathBuf>, String> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let mut argv = vec!["find".to_owned(), "-L".to_owned()];
    argv.extend(dirs.iter().map(|d| d.display().to_string()));
    argv.extend(
        [
            "-maxdepth",
            &depth.to_string(),
            "-type",
            "f",
            "-perm",
            "-100",
        ]
        .map(str::to_owned),
    );
    let out = exec.exec(&argv)?;
    // `find` exits 1 when a start directory is missing; its other output is still good.
    if out.code > 1 {
        return Err(format!(
            "find failed ({}): {}",
            out.code,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

fn skipped(path: &Path, root: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let comps: Vec<_> = rel.components().collect();
    comps.len() > 1
        && comps[..comps.len() - 1].iter().any(|c| {
            let s = c.as_os_str().to_string_lossy();
            // The same directories as a local scan skips, except `shims`: a sandbox's shim
            // directories are listed (never run) so shims can be reported as such.
            s.starts_with('.') || (s != "shims" && crate::discover::SKIP_DIRS.contains(&s.as_ref()))
        })
}

/// Scan the target through `exec`. A failing channel is an error; failing tools are outcomes.
pub fn scan_remote(
    exec: &dyn RemoteExec,
    opts: &RemoteScanOptions,
    rules: &Rules,
) -> Result<Inventory, String> {
    let start = Instant::now();
    let mut inv = Inventory::default();
    let mut seen = std::collections::HashSet::new();
    // (path, rule index, origin)
    let mut todo: Vec<(PathBuf, usize, Origin)> = Vec::new();
    let rule_index = |id: &str| rules.all().iter().position(|r| r.id == id);

    for path in find(exec, &opts.path_dirs, 1)? {
        let Some(dir) = path.parent().map(Path::to_path_buf) else {
            continue;
        };
        let Some(rank) = opts.path_dirs.iter().position(|d| *d == dir) else {
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let origin = Origin::Path {
            rank,
            dir: dir.clone(),
        };
        if let Some(kind) = shim_dir_kind(&dir) {
            inv.shims.push(Shim {
                path,
                kind,
                name,
                origin,
                resolves_to: Vec::new(),
            });
        } else if let Some(i) = rules.for_exe(&name).and_then(|r| rule_index(&r.id)) {
            todo.push((path, i, origin));
        }
    }
    let extra_shim_dirs: Vec<PathBuf> = opts
        .shim_dirs
        .iter()
        .filter(|d| !opts.path_dirs.contains(d))
        .cloned()
        .collect();
    for path in find(exec, &extra_shim_dirs, 1)? {
        let Some(dir) = path.parent().map(Path::to_path_buf) else {
            continue;
        };
        let Some(kind) = shim_dir_kind(&dir) else {
            continue;
        };
        if seen.insert(path.clone()) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            inv.shims.push(Shim {
                path,
                kind,
                name,
                origin: Origin::ToolsDir { root: dir },
                resolves_to: Vec::new(),
            });
        }
    }
    let roots: Vec<(PathBuf, Origin)> = opts
        .tools_dirs
        .iter()
        .map(|r| (r.clone(), Origin::ToolsDir { root: r.clone() }))
        .chain(opts.manager_dirs.iter().map(|(m, r)| {
            (
                r.clone(),
                Origin::Manager {
                    manager: m.clone(),
                    root: r.clone(),
                },
            )
        }))
        .collect();
    let dirs: Vec<PathBuf> = roots.iter().map(|(r, _)| r.clone()).collect();
    for path in find(exec, &dirs, opts.max_depth + 1)? {
        let Some((root, origin)) = roots.iter().find(|(r, _)| path.starts_with(r)) else {
            continue;
        };
        if skipped(&path, root) || !seen.insert(path.clone()) {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(kind) = path.parent().and_then(shim_dir_kind) {
            inv.shims.push(Shim {
                path,
                kind,
                name,
                origin: origin.clone(),
                resolves_to: Vec::new(),
            });
        } else if let Some(i) = rules.for_exe(&name).and_then(|r| rule_index(&r.id)) {
            todo.push((path, i, origin.clone()));
        } else {
            inv.unidentified.push(Unidentified {
                path,
                root: root.clone(),
            });
        }
    }

    let secs = opts.timeout.as_secs_f64().max(0.1);
    let probe = |(path, rule, origin): &(PathBuf, usize, Origin)| {
        let r = &rules.all()[*rule];
        let mut argv: Vec<String> = [
            "env".to_owned(),
            "-i".to_owned(),
            format!("PATH={PROBE_PATH}"),
            "LC_ALL=C".to_owned(),
            "HOME=/root".to_owned(),
            "timeout".to_owned(),
            "-s".to_owned(),
            "KILL".to_owned(),
            format!("{secs}"),
            path.display().to_string(),
        ]
        .into();
        argv.extend(r.version_args.iter().cloned());
        let (version, outcome) = match exec.exec(&argv) {
            Err(e) => (None, Outcome::Error { message: e }),
            Ok(o) if o.code == 124 || o.code == 137 => (
                None,
                Outcome::TimedOut {
                    after_ms: opts.timeout.as_millis() as u64,
                },
            ),
            Ok(o) => {
                let (so, se) = (
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr),
                );
                let excerpt = || {
                    format!("{}{}", so.trim(), se.trim())
                        .chars()
                        .take(200)
                        .collect::<String>()
                };
                match (r.extract_version(&so, &se), o.code == 0) {
                    (Some(v), _) => (Some(v), Outcome::Ok),
                    (None, true) => (None, Outcome::NoVersion { output: excerpt() }),
                    (None, false) => (
                        None,
                        Outcome::Failed {
                            code: Some(o.code),
                            output: excerpt(),
                        },
                    ),
                }
            }
        };
        Install {
            id: r.id.clone(),
            category: r.category,
            path: path.clone(),
            also: Vec::new(),
            version,
            origin: origin.clone(),
            outcome,
            cached: false,
        }
    };
    let installs: Vec<Install> = match rayon::ThreadPoolBuilder::new()
        .num_threads(opts.parallelism.max(1))
        .build()
    {
        Ok(pool) => pool.install(|| todo.par_iter().map(probe).collect()),
        Err(_) => todo.iter().map(probe).collect(),
    };
    let mut stats = ScanStats {
        candidates: todo.len(),
        probed: todo.len(),
        ..Default::default()
    };
    for i in &installs {
        match i.outcome {
            Outcome::Ok => {}
            Outcome::TimedOut { .. } => stats.timed_out += 1,
            _ => stats.failed += 1,
        }
    }
    for s in &mut inv.shims {
        s.resolves_to = installs
            .iter()
            .filter(|i| matches!(i.origin, Origin::Manager { .. }))
            .filter(|i| {
                i.path.file_name().map(|n| n.to_string_lossy()) == Some(s.name.as_str().into())
            })
            .map(|i| i.path.clone())
            .collect();
    }
    inv.shim_dirs_on_path = opts
        .path_dirs
        .iter()
        .enumerate()
        .filter(|(_, d)| shim_dir_kind(d).is_some())
        .map(|(r, d)| (r, d.clone()))
        .collect();
    inv.installs = installs;
    stats.elapsed_ms = start.elapsed().as_millis() as u64;
    inv.stats = stats;
    Ok(inv)
}
