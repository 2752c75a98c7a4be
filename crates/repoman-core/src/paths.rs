//! Where repoman keeps its files (DESIGN.md §4).
//!
//! | directory | default | override |
//! |---|---|---|
//! | config | `$XDG_CONFIG_HOME/repoman` (`~/.config/repoman`) | `REPOMAN_CONFIG` names the file |
//! | state | `$XDG_STATE_HOME/repoman` (`~/.local/state/repoman`) | `REPOMAN_STATE_DIR` |
//! | cache | `$XDG_CACHE_HOME/repoman` (`~/.cache/repoman`) | `REPOMAN_CACHE_DIR` |
//! | data | `$XDG_DATA_HOME/repoman` (`~/.local/share/repoman`) | `REPOMAN_DATA_DIR` |
//! | runtime | `$XDG_RUNTIME_DIR/repoman`, else `/tmp/repoman-$UID` | `REPOMAN_RUNTIME_DIR` |
//!
//! Resolving paths never creates directories: read-only commands must leave no trace on a fresh
//! machine. Writers call [`ensure_dir`] (or [`Paths::ensure_runtime_dir`]) right before writing.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::env::Env;

/// Errors resolving directories.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find the home directory: HOME is unset and no XDG_{0}_HOME is given")]
    NoHome(&'static str),
    #[error("{var} must be an absolute path, got {value:?}")]
    NotAbsolute { var: &'static str, value: PathBuf },
    #[error("cannot create directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("runtime directory {path} has mode {mode:o}; it must be 0700 and owned by you")]
    RuntimeMode { path: PathBuf, mode: u32 },
}

/// The resolved directories and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The registry file, `repoman.toml`.
    pub config_file: PathBuf,
    /// The directory holding the registry and user extensions (`tools.d/`).
    pub config_dir: PathBuf,
    /// Durable state: event log, manifests; plus the rebuildable index.
    pub state_dir: PathBuf,
    /// Rebuildable caches.
    pub cache_dir: PathBuf,
    /// Durable user data that is not state: installed SNIF modules and their grants (`snifs/`).
    pub data_dir: PathBuf,
    /// Disposable runtime files (mode 0700): locks, sockets.
    pub runtime_dir: PathBuf,
    /// The user's home directory, when known.
    pub home: Option<PathBuf>,
}

impl Paths {
    /// Resolve every directory from the environment snapshot. Creates nothing.
    pub fn resolve(env: &Env) -> Result<Self, PathsError> {
        let home = env.get_path("HOME");
        let xdg =
            |var: &'static str, short: &'static str, rel: &str| -> Result<PathBuf, PathsError> {
                match env.get_path(var) {
                    // The XDG spec says relative values are invalid and must be ignored.
                    Some(p) if p.is_absolute() => Ok(p),
                    _ => home
                        .as_ref()
                        .map(|h| h.join(rel))
                        .ok_or(PathsError::NoHome(short)),
                }
            };
        let absolute = |var: &'static str| -> Result<Option<PathBuf>, PathsError> {
            match env.get_path(var) {
                Some(p) if p.is_absolute() => Ok(Some(p)),
                Some(p) => Err(PathsError::NotAbsolute { var, value: p }),
                None => Ok(None),
            }
        };

        let (config_file, config_dir) = match absolute("REPOMAN_CONFIG")? {
            Some(file) => {
                let dir = file
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| file.clone());
                (file, dir)
            }
            None => {
                let dir = xdg("XDG_CONFIG_HOME", "CONFIG", ".config")?.join("repoman");
                (dir.join("repoman.toml"), dir)
            }
        };
        let state_dir = match absolute("REPOMAN_STATE_DIR")? {
            Some(p) => p,
            None => xdg("XDG_STATE_HOME", "STATE", ".local/state")?.join("repoman"),
        };
        let cache_dir = match absolute("REPOMAN_CACHE_DIR")? {
            Some(p) => p,
            None => xdg("XDG_CACHE_HOME", "CACHE", ".cache")?.join("repoman"),
        };
        let data_dir = match absolute("REPOMAN_DATA_DIR")? {
            Some(p) => p,
            None => xdg("XDG_DATA_HOME", "DATA", ".local/share")?.join("repoman"),
        };
        let runtime_dir = match absolute("REPOMAN_RUNTIME_DIR")? {
            Some(p) => p,
            None => match env.get_path("XDG_RUNTIME_DIR").filter(|p| p.is_absolute()) {
                Some(p) => p.join("repoman"),
                None => std::env::temp_dir()
                    .join(format!("repoman-{}", rustix::process::getuid().as_raw())),
            },
        };
        Ok(Self {
            config_file,
            config_dir,
            state_dir,
            cache_dir,
            data_dir,
            runtime_dir,
            home,
        })
    }

    /// Create the runtime directory with mode 0700 if missing, and refuse one that others can
    /// read or write (a shared `/tmp` makes this matter).
    pub fn ensure_runtime_dir(&self) -> Result<&Path, PathsError> {
        let path = &self.runtime_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| PathsError::Create {
                path: path.clone(),
                source,
            })?;
        let meta = std::fs::metadata(path).map_err(|source| PathsError::Create {
            path: path.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode != 0o700 {
            return Err(PathsError::RuntimeMode {
                path: path.clone(),
                mode,
            });
        }
        Ok(path)
    }
}

/// Create `path` and its parents if missing (mode 0755 for new directories).
pub fn ensure_dir(path: &Path) -> Result<(), PathsError> {
    std::fs::create_dir_all(path).map_err(|source| PathsError::Create {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_defaults_follow_home() {
        let env = Env::from_pairs([("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1")]);
        let p = Paths::resolve(&env).unwrap();
        assert_eq!(
            p.config_file,
            PathBuf::from("/home/u/.config/repoman/repoman.toml")
        );
        assert_eq!(p.state_dir, PathBuf::from("/home/u/.local/state/repoman"));
        assert_eq!(p.cache_dir, PathBuf::from("/home/u/.cache/repoman"));
        assert_eq!(p.data_dir, PathBuf::from("/home/u/.local/share/repoman"));
        assert_eq!(p.runtime_dir, PathBuf::from("/run/user/1/repoman"));
    }

    #[test]
    fn overrides_win_and_relative_xdg_is_ignored() {
        let env = Env::from_pairs([
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "relative/dir"),
            ("XDG_STATE_HOME", "/xs"),
            ("REPOMAN_CACHE_DIR", "/c"),
            ("REPOMAN_RUNTIME_DIR", "/r"),
            ("REPOMAN_DATA_DIR", "/d"),
        ]);
        let p = Paths::resolve(&env).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/home/u/.config/repoman"));
        assert_eq!(p.state_dir, PathBuf::from("/xs/repoman"));
        assert_eq!(p.cache_dir, PathBuf::from("/c"));
        assert_eq!(p.data_dir, PathBuf::from("/d"));
        assert_eq!(p.runtime_dir, PathBuf::from("/r"));
    }

    #[test]
    fn repoman_config_names_the_file() {
        let env = Env::from_pairs([("HOME", "/h"), ("REPOMAN_CONFIG", "/etc/rm/x.toml")]);
        let p = Paths::resolve(&env).unwrap();
        assert_eq!(p.config_file, PathBuf::from("/etc/rm/x.toml"));
        assert_eq!(p.config_dir, PathBuf::from("/etc/rm"));
    }

    #[test]
    fn relative_override_is_an_error_and_missing_home_is_explained() {
        let env = Env::from_pairs([("HOME", "/h"), ("REPOMAN_STATE_DIR", "state")]);
        let err = Paths::resolve(&env).unwrap_err().to_string();
        assert!(
            err.contains("REPOMAN_STATE_DIR must be an absolute path"),
            "{err}"
        );
        let err = Paths::resolve(&Env::default()).unwrap_err().to_string();
        assert!(err.contains("HOME is unset"), "{err}");
    }

    #[test]
    fn resolving_creates_nothing_and_runtime_dir_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("HOME", tmp.path().join("home"))]);
        let mut p = Paths::resolve(&env).unwrap();
        assert!(!tmp.path().join("home").exists());
        p.runtime_dir = tmp.path().join("rt");
        p.ensure_runtime_dir().unwrap();
        let mode = std::fs::metadata(&p.runtime_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&p.runtime_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            p.ensure_runtime_dir(),
            Err(PathsError::RuntimeMode { .. })
        ));
    }
}
