//! Which host directories a repo's `.repoman.toml` `[[mount]]` may bind into its sandbox
//! (DESIGN.md §5a; docs/security.md "Mount sources").
//!
//! The repo file is written by the sandbox, so a `[[mount]]` source is hostile input. A source is
//! resolved on the host to its canonical path (every symlink followed, then judged where it
//! really points) and is allowed only when it is:
//! - inside the sandbox's own repo (a relative source whose `..` leaves the repo is refused
//!   before anything is resolved), mounted as the file asks (the repo is writable anyway); or
//! - under a `[[mount_root]]` of the host registry, read-only unless that root is `writable`.
//!
//! Whatever the registry says, a source is refused when it is, contains or lies under a
//! protected path: `/` (itself), `/etc`, `/proc`, `/sys`, `/dev`, `/boot`, `/run`,
//! `/var/lib/incus`, `/root`, the Incus sockets, repoman's config/state/cache/data/runtime dirs (its
//! sockets live there), the backup root, `local_repos` (other projects' repos), `~/.ssh`,
//! `~/.gnupg`, `~/.config/incus`.
//!
//! The decision ([`Policy::decide`]) is pure; [`Policy::resolve`] only adds the canonicalization.
//! [`recheck`] runs again right before Incus is called: a planned source must still be its own
//! canonical path (a symlink swapped in after planning is refused).

use std::path::{Component, Path, PathBuf};

use repoman_core::registry::MountRoot;
use serde::Serialize;

/// Host paths no extra mount may be, contain or lie under (`/` only itself).
pub const ALWAYS_DENIED: &[&str] = &[
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/run",
    "/var/lib/incus",
    "/var/snap/lxd",
    "/var/lib/lxd",
    "/var/run",
    // root's home (its ~/.ssh and the like) when repoman runs under sudo.
    "/root",
];

/// Paths under the host user's home that are never mounted.
pub const HOME_DENIED: &[&str] = &[".ssh", ".gnupg", ".config/incus"];

/// Why a mount source is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allowed {
    /// Inside the sandbox's own repo.
    InRepo,
    /// Under this `[[mount_root]]`.
    Root(PathBuf),
}

/// An allowed source, as it is handed to Incus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The canonical host path.
    pub source: PathBuf,
    pub readonly: bool,
    pub allowed: Allowed,
}

/// The policy for one sandbox.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The sandbox's repo (lexical and canonical forms).
    repo: Vec<PathBuf>,
    /// `[[mount_root]]`s: (path, writable), lexical and canonical forms.
    roots: Vec<(PathBuf, bool)>,
    /// Protected paths (lexical and canonical forms).
    denied: Vec<PathBuf>,
}

/// Lexically normalize an absolute path (`.` dropped, `..` pops); `None` when `..` would climb
/// above `/`.
pub fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// The canonical path of `p`; for a path that does not exist (yet), the canonical path of its
/// deepest existing ancestor joined with the rest.
pub fn canonical(p: &Path) -> PathBuf {
    let Some(p) = normalize(p) else {
        return p.to_path_buf();
    };
    let mut rest = Vec::new();
    let mut cur = p.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                cur = parent;
            }
            _ => return p,
        }
    }
}

pub(crate) fn both_forms(p: &Path) -> Vec<PathBuf> {
    let lexical = normalize(p).unwrap_or_else(|| p.to_path_buf());
    let canon = canonical(&lexical);
    if canon == lexical {
        vec![lexical]
    } else {
        vec![lexical, canon]
    }
}

pub(crate) fn expand_home(p: &Path, home: Option<&Path>) -> Option<PathBuf> {
    match p.strip_prefix("~") {
        Ok(rest) => home.map(|h| h.join(rest)),
        Err(_) => Some(p.to_path_buf()),
    }
}

impl Policy {
    /// The policy of the sandbox whose repo is `repo`. `protected`: more paths never mounted
    /// (repoman's own dirs, the backup root, `local_repos`, sockets), besides [`ALWAYS_DENIED`]
    /// and the [`HOME_DENIED`] paths under `home`.
    pub fn new<'a>(
        repo: &Path,
        home: Option<&Path>,
        roots: &[MountRoot],
        protected: impl IntoIterator<Item = &'a Path>,
    ) -> Self {
        let mut denied: Vec<PathBuf> = Vec::new();
        let mut deny = |p: &Path| {
            for f in both_forms(p) {
                if !denied.contains(&f) {
                    denied.push(f);
                }
            }
        };
        for d in ALWAYS_DENIED {
            deny(Path::new(d));
        }
        if let Some(h) = home {
            for d in HOME_DENIED {
                deny(&h.join(d));
            }
        }
        for p in protected {
            deny(p);
        }
        let mut out_roots = Vec::new();
        for r in roots {
            if let Some(p) = expand_home(&r.path, home).filter(|p| p.is_absolute()) {
                for f in both_forms(&p) {
                    out_roots.push((f, r.writable));
                }
            }
        }
        Self {
            repo: both_forms(repo),
            roots: out_roots,
            denied,
        }
    }

    /// Resolve and judge a `[[mount]]`: `requested` is the text of its `source`, `joined` the
    /// host path it names (relative sources joined to the repo, `~` expanded), `readonly` what
    /// the file asks. The error is the reason, for the user.
    pub fn resolve(
        &self,
        requested: &str,
        joined: &Path,
        readonly: bool,
    ) -> Result<Resolved, String> {
        let relative = !(Path::new(requested).is_absolute()
            || requested == "~"
            || requested.starts_with("~/"));
        let lexical = normalize(joined);
        if relative
            && !lexical
                .as_ref()
                .is_some_and(|l| self.repo.iter().any(|r| l.starts_with(r)))
        {
            return Err(format!(
                "[[mount]] source `{requested}` leaves the repo with `..`; a relative source must stay inside the repo"
            ));
        }
        let lexical = lexical
            .ok_or_else(|| format!("[[mount]] source `{requested}` climbs above `/` with `..`"))?;
        self.decide(requested, &lexical, &canonical(&lexical), readonly)
    }

    /// The pure decision, given the source's lexical and canonical host paths.
    pub fn decide(
        &self,
        requested: &str,
        lexical: &Path,
        canonical: &Path,
        readonly: bool,
    ) -> Result<Resolved, String> {
        let shown = if lexical == canonical {
            format!("`{requested}` ({})", canonical.display())
        } else {
            format!(
                "`{requested}` ({} -> {})",
                lexical.display(),
                canonical.display()
            )
        };
        if canonical == Path::new("/") {
            return Err(format!(
                "[[mount]] source {shown} is the host's root directory: never mounted"
            ));
        }
        let in_repo = self.repo.iter().any(|r| canonical.starts_with(r));
        if in_repo {
            return Ok(Resolved {
                source: canonical.to_path_buf(),
                readonly,
                allowed: Allowed::InRepo,
            });
        }
        for d in &self.denied {
            if canonical.starts_with(d) || (d.starts_with(canonical) && d != Path::new("/")) {
                let how = if canonical.starts_with(d) {
                    "is under"
                } else {
                    "contains"
                };
                return Err(format!(
                    "[[mount]] source {shown} {how} the protected path {}: never mounted into a sandbox",
                    d.display()
                ));
            }
        }
        let root = self
            .roots
            .iter()
            .filter(|(r, _)| canonical.starts_with(r))
            .max_by_key(|(r, _)| r.components().count());
        match root {
            Some((r, writable)) => Ok(Resolved {
                source: canonical.to_path_buf(),
                readonly: readonly || !writable,
                allowed: Allowed::Root(r.clone()),
            }),
            None => Err(format!(
                "[[mount]] source {shown} is outside the repo and outside every [[mount_root]] of the host registry; add `[[mount_root]] path = \"...\"` to repoman.toml (only the host file can allow it)"
            )),
        }
    }
}

/// The policy of the sandbox being built: the registry's `[[mount_root]]`s, and as protected
/// paths `local_repos` (every project's repo), the backup root and its mount point, plus
/// `inputs.protected` (repoman's own dirs).
pub fn for_sandbox(inputs: &crate::desired::Inputs<'_>, repo: &Path) -> Policy {
    let s = inputs.settings;
    let mut protected: Vec<PathBuf> = inputs.protected.to_vec();
    protected.extend(s.local_repos.iter().map(|l| l.value.clone()));
    protected.extend(s.backup_root.iter().map(|b| b.value.clone()));
    protected.extend(s.backup_mount_point.iter().map(|b| b.value.clone()));
    Policy::new(
        repo,
        inputs.user_home,
        &inputs.registry.mount_roots,
        protected.iter().map(PathBuf::as_path),
    )
}

/// repoman's own directories on the host (config, state, cache, data, runtime: the registry,
/// the event log, the daemon's sockets), never mounted into a sandbox.
pub fn host_protected(paths: &repoman_core::Paths) -> Vec<PathBuf> {
    vec![
        paths.config_dir.clone(),
        paths.state_dir.clone(),
        paths.cache_dir.clone(),
        paths.data_dir.clone(),
        paths.runtime_dir.clone(),
    ]
}

/// [`recheck`] of a desired state's extra mounts (the repo itself comes from the host registry).
pub fn recheck_desired(d: &crate::desired::Desired) -> Result<(), crate::error::SandboxError> {
    recheck(d.mount_sources.get(1..).unwrap_or_default())
        .map_err(crate::error::SandboxError::Invalid)
}

/// Right before Incus is called: every planned extra-mount source must still be its own
/// canonical path (no symlink swapped in since planning, nothing replaced by a link).
pub fn recheck(sources: &[PathBuf]) -> Result<(), String> {
    for s in sources {
        let now = canonical(s);
        if &now != s {
            return Err(format!(
                "mount source {} now resolves to {}: it changed since it was checked; run the command again",
                s.display(),
                now.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _dir: tempfile::TempDir,
        base: PathBuf,
        repo: PathBuf,
        home: PathBuf,
        policy: Policy,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let repos = base.join("repos");
        let repo = repos.join("app");
        let other = repos.join("other");
        let home = base.join("home");
        for d in [
            &repo,
            &other,
            &home.join(".ssh"),
            &home.join(".npm"),
            &base.join("data/rw"),
            &base.join("backup"),
            &base.join("state"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let roots = vec![
            MountRoot {
                path: "~/.npm".into(),
                writable: false,
            },
            MountRoot {
                path: base.join("data"),
                writable: false,
            },
            MountRoot {
                path: base.join("data/rw"),
                writable: true,
            },
            // A root that would expose protected paths still does not.
            MountRoot {
                path: home.clone(),
                writable: true,
            },
        ];
        let protected = [repos.clone(), base.join("backup"), base.join("state")];
        let policy = Policy::new(
            &repo,
            Some(&home),
            &roots,
            protected.iter().map(PathBuf::as_path),
        );
        Fixture {
            _dir: dir,
            base,
            repo,
            home,
            policy,
        }
    }

    fn res(f: &Fixture, src: &str, ro: bool) -> Result<Resolved, String> {
        let joined = if let Some(rest) = src.strip_prefix("~/") {
            f.home.join(rest)
        } else {
            f.repo.join(src)
        };
        f.policy.resolve(src, &joined, ro)
    }

    #[test]
    fn in_repo_sources_keep_what_the_file_asks() {
        let f = fixture();
        std::fs::create_dir(f.repo.join("data")).unwrap();
        let r = res(&f, "data", false).unwrap();
        assert_eq!(r.source, f.repo.join("data"));
        assert_eq!((r.readonly, r.allowed), (false, Allowed::InRepo));
        assert!(res(&f, "./data/../data", true).unwrap().readonly);
    }

    #[test]
    fn relative_sources_leaving_the_repo_are_refused() {
        let f = fixture();
        for s in [
            "../other",
            "../../../../etc",
            "data/../../other",
            "../app/../other",
        ] {
            let e = res(&f, s, false).unwrap_err();
            assert!(e.contains("leaves the repo"), "{s}: {e}");
        }
        let e = f
            .policy
            .resolve("/../..", Path::new("/../.."), false)
            .unwrap_err();
        assert!(e.contains("climbs above"), "{e}");
    }

    #[test]
    fn a_symlink_in_the_repo_is_judged_where_it_points() {
        let f = fixture();
        symlink("/etc", f.repo.join("etc-link")).unwrap();
        let e = res(&f, "etc-link", false).unwrap_err();
        assert!(e.contains("/etc") && e.contains("protected"), "{e}");
        symlink(f.base.join("repos/other"), f.repo.join("peer")).unwrap();
        let e = res(&f, "peer", false).unwrap_err();
        assert!(e.contains("protected"), "{e}");
        symlink(f.home.join(".ssh"), f.repo.join("keys")).unwrap();
        assert!(res(&f, "keys", false).unwrap_err().contains(".ssh"));
        // A link to an allowed root is allowed, read-only as the root says.
        symlink(f.base.join("data"), f.repo.join("d")).unwrap();
        let r = res(&f, "d", false).unwrap();
        assert_eq!(r.source, f.base.join("data"));
        assert!(r.readonly);
    }

    #[test]
    fn protected_paths_are_refused_whatever_the_roots_say() {
        let f = fixture();
        let p = |s: &str| f.policy.resolve(s, Path::new(s), false);
        for s in [
            "/",
            "/etc",
            "/etc/passwd",
            "/proc",
            "/sys/kernel",
            "/dev",
            "/boot",
            "/run",
            "/run/incus/unix.socket",
            "/var/lib/incus",
            "/var/lib/incus/unix.socket",
            "/var",
            "/root/.ssh",
        ] {
            assert!(p(s).is_err(), "{s} was allowed");
        }
        let home = f.home.display().to_string();
        for s in [
            format!("{home}/.ssh"),
            format!("{home}/.ssh/id_ed25519"),
            // The home contains ~/.ssh, so it is refused even though it is a writable root.
            home.clone(),
            f.base.join("backup").display().to_string(),
            f.base.join("state/events").display().to_string(),
            f.base.join("repos").display().to_string(),
            f.base.join("repos/other").display().to_string(),
            // An ancestor of protected paths.
            f.base.display().to_string(),
        ] {
            let e = p(&s).unwrap_err();
            assert!(e.contains("protected"), "{s}: {e}");
        }
        let e = res(&f, "~/.ssh", false).unwrap_err();
        assert!(e.contains("is under the protected path"), "{e}");
    }

    #[test]
    fn roots_allow_and_decide_writability() {
        let f = fixture();
        let r = res(&f, "~/.npm", false).unwrap();
        assert_eq!(r.source, f.home.join(".npm"));
        assert!(
            r.readonly,
            "a root not marked writable gives a read-only mount"
        );
        let p = |s: PathBuf, ro| f.policy.resolve(&s.display().to_string(), &s, ro);
        assert!(p(f.base.join("data"), false).unwrap().readonly);
        let rw = p(f.base.join("data/rw/sub"), false).unwrap();
        assert!(!rw.readonly, "the deepest root decides");
        assert!(p(f.base.join("data/rw"), true).unwrap().readonly);
        let e = p(PathBuf::from("/opt/somewhere"), false).unwrap_err();
        assert!(e.contains("[[mount_root]]"), "{e}");
        // A root with a symlink out of it: judged where the link points.
        symlink("/etc", f.base.join("data/etc")).unwrap();
        let e = p(f.base.join("data/etc"), true).unwrap_err();
        assert!(e.contains("protected"), "{e}");
        symlink("/opt", f.base.join("data/opt")).unwrap();
        let e = p(f.base.join("data/opt"), true).unwrap_err();
        assert!(e.contains("outside every [[mount_root]]"), "{e}");
    }

    #[test]
    fn no_policy_allows_only_the_repo() {
        let dir = tempfile::tempdir().unwrap();
        let repo = std::fs::canonicalize(dir.path()).unwrap();
        let p = Policy::new(&repo, None, &[], []);
        assert!(p.resolve("x", &repo.join("x"), false).is_ok());
        assert!(p.resolve("/tmp", Path::new("/tmp"), false).is_err());
    }

    #[test]
    fn recheck_sees_a_swapped_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let d = base.join("d");
        std::fs::create_dir(&d).unwrap();
        recheck(std::slice::from_ref(&d)).unwrap();
        std::fs::remove_dir(&d).unwrap();
        symlink("/etc", &d).unwrap();
        let e = recheck(&[d]).unwrap_err();
        assert!(e.contains("/etc") && e.contains("changed"), "{e}");
    }

    #[test]
    fn normalize_and_canonical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), Some("/a/c".into()));
        assert_eq!(normalize(Path::new("/a/../..")), None);
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(canonical(&base.join("missing/x")), base.join("missing/x"));
    }
}
