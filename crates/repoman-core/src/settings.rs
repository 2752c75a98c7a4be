//! Effective settings: built-in defaults < `repoman.toml` < environment < flags, resolved once per
//! command, each value remembering where it came from (for `repoman config show`).
//!
//! `LOCAL_REPOS` and `NFS_REPOS` (the seed script's variables) are *fallbacks*: they apply only
//! when `[defaults]` does not set `local_repos` / `backup_root`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::env::Env;
use crate::registry::Registry;

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Source {
    BuiltIn,
    Registry,
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in default"),
            Source::Registry => f.write_str("repoman.toml"),
            Source::Env(n) => write!(f, "environment ({n})"),
            Source::Flag(n) => write!(f, "flag (--{n})"),
        }
    }
}

/// A value and its origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}

/// Built-in defaults.
pub const DEFAULT_INCUS_PROJECT: &str = "repoman";
pub const DEFAULT_POOL: &str = "default";
pub const DEFAULT_MOUNT_PATH: &str = "/home/{user}/{repo}";
pub const DEFAULT_MAX_DELETE: u64 = 1000;
pub const DEFAULT_MAX_DELETE_PERCENT: f64 = 25.0;
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_PROFILE: &str = "default";

/// The effective settings.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub local_repos: Option<Sourced<PathBuf>>,
    pub backup_root: Option<Sourced<PathBuf>>,
    pub incus_project: Sourced<String>,
    pub pool: Sourced<String>,
    pub network: Option<Sourced<String>>,
    pub default_image: Option<Sourced<String>>,
    pub profiles: Sourced<Vec<String>>,
    pub mount_path: Sourced<String>,
    pub max_delete: Sourced<u64>,
    pub max_delete_percent: Sourced<f64>,
    pub backup_exclude: Sourced<Vec<String>>,
    pub backup_fstype: Option<Sourced<String>>,
    /// Where the backup share is mounted (recorded by `setup`).
    pub backup_mount_point: Option<Sourced<PathBuf>>,
    /// The backup share's mount source (recorded by `setup`).
    pub backup_device: Option<Sourced<String>>,
    #[serde(serialize_with = "secs")]
    pub probe_timeout: Sourced<Duration>,
    /// The profile recorded on events and matched by policy (`REPOMAN_PROFILE`).
    pub profile: Sourced<String>,
}

fn secs<S: serde::Serializer>(d: &Sourced<Duration>, s: S) -> Result<S::Ok, S::Error> {
    Sourced::new(d.value.as_secs_f64(), d.source.clone()).serialize(s)
}

/// A setting a command needs is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[defaults] {key} is not set")]
pub struct MissingSetting {
    pub key: &'static str,
    /// The environment variable that can set it instead.
    pub env: &'static str,
}

impl MissingSetting {
    pub fn hint(&self) -> String {
        format!("set it in repoman.toml (or {})", self.env)
    }
}

impl Settings {
    /// Where working copies live (`[defaults] local_repos`), or why it is missing.
    pub fn require_local_repos(&self) -> Result<PathBuf, MissingSetting> {
        self.local_repos
            .as_ref()
            .map(|s| s.value.clone())
            .ok_or(MissingSetting {
                key: "local_repos",
                env: "LOCAL_REPOS",
            })
    }

    /// The backup share (`[defaults] backup_root`), or why it is missing.
    pub fn require_backup_root(&self) -> Result<PathBuf, MissingSetting> {
        self.backup_root
            .as_ref()
            .map(|s| s.value.clone())
            .ok_or(MissingSetting {
                key: "backup_root",
                env: "NFS_REPOS",
            })
    }

    /// Resolve from the registry and the environment (flags are applied by the caller).
    pub fn resolve(reg: &Registry, env: &Env) -> Self {
        let d = &reg.defaults;
        let reg_or = |v: Option<&String>, builtin: &str| match v {
            Some(v) => Sourced::new(v.clone(), Source::Registry),
            None => Sourced::new(builtin.to_owned(), Source::BuiltIn),
        };
        let path_with_fallback = |v: &Option<PathBuf>, var: &'static str| match v {
            Some(p) => Some(Sourced::new(p.clone(), Source::Registry)),
            None => env.get_path(var).map(|p| Sourced::new(p, Source::Env(var))),
        };
        Self {
            local_repos: path_with_fallback(&d.local_repos, "LOCAL_REPOS"),
            backup_root: path_with_fallback(&d.backup_root, "NFS_REPOS"),
            incus_project: reg_or(d.incus_project.as_ref(), DEFAULT_INCUS_PROJECT),
            pool: reg_or(d.pool.as_ref(), DEFAULT_POOL),
            network: d.network.clone().map(|n| Sourced::new(n, Source::Registry)),
            default_image: d
                .default_image
                .clone()
                .map(|i| Sourced::new(i, Source::Registry)),
            profiles: Sourced::new(
                d.profiles.clone(),
                if d.profiles.is_empty() {
                    Source::BuiltIn
                } else {
                    Source::Registry
                },
            ),
            mount_path: reg_or(d.mount_path.as_ref(), DEFAULT_MOUNT_PATH),
            max_delete: match d.max_delete {
                Some(v) => Sourced::new(v, Source::Registry),
                None => Sourced::new(DEFAULT_MAX_DELETE, Source::BuiltIn),
            },
            max_delete_percent: match d.max_delete_percent {
                Some(v) => Sourced::new(v, Source::Registry),
                None => Sourced::new(DEFAULT_MAX_DELETE_PERCENT, Source::BuiltIn),
            },
            backup_exclude: Sourced::new(
                d.backup_exclude.clone(),
                if d.backup_exclude.is_empty() {
                    Source::BuiltIn
                } else {
                    Source::Registry
                },
            ),
            backup_fstype: d
                .backup_fstype
                .clone()
                .map(|f| Sourced::new(f, Source::Registry)),
            backup_mount_point: d
                .backup_mount_point
                .clone()
                .map(|f| Sourced::new(f, Source::Registry)),
            backup_device: d
                .backup_device
                .clone()
                .map(|f| Sourced::new(f, Source::Registry)),
            probe_timeout: match d.probe_timeout_secs {
                Some(s) => Sourced::new(Duration::from_secs(s), Source::Registry),
                None => Sourced::new(DEFAULT_PROBE_TIMEOUT, Source::BuiltIn),
            },
            profile: match env.get("REPOMAN_PROFILE") {
                Some(p) => Sourced::new(p.to_owned(), Source::Env("REPOMAN_PROFILE")),
                None => Sourced::new(DEFAULT_PROFILE.to_owned(), Source::BuiltIn),
            },
        }
    }

    /// The mount path inside a sandbox for `user` and `repo`.
    pub fn mount_path_for(&self, user: &str, repo: &str) -> String {
        self.mount_path
            .value
            .replace("{user}", user)
            .replace("{repo}", repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn seed_variables_are_fallbacks_only() {
        let env = Env::from_pairs([("LOCAL_REPOS", "/env/local"), ("NFS_REPOS", "/env/nfs")]);
        let reg =
            Registry::parse(Path::new("r"), "[defaults]\nlocal_repos = \"/reg/local\"\n").unwrap();
        let s = Settings::resolve(&reg, &env);
        assert_eq!(
            s.local_repos.as_ref().unwrap().value,
            PathBuf::from("/reg/local")
        );
        assert_eq!(s.local_repos.as_ref().unwrap().source, Source::Registry);
        let b = s.backup_root.clone().unwrap();
        assert_eq!(
            (b.value, b.source),
            (PathBuf::from("/env/nfs"), Source::Env("NFS_REPOS"))
        );
        assert_eq!(s.incus_project.source, Source::BuiltIn);
        assert_eq!(s.mount_path_for("dev", "app"), "/home/dev/app");
    }
}
