//! The classification every domain error shares, so every face (CLI, daemon, TUI) treats the same
//! failure the same way.
//!
//! Each domain crate keeps its own `thiserror` enum (messages name the object or path) and
//! implements [`DomainError`] for it: [`DomainError::kind`] says what sort of failure it is, and
//! [`DomainError::hint`] what the user can do about it. The CLI turns a kind into an exit code in
//! one function (DESIGN.md §5); the daemon sends [`ErrorKind::as_str`] in its JSON-RPC errors.

use std::fmt;

use crate::fs::FsError;
use crate::ids::IdError;
use crate::names::NameError;
use crate::paths::PathsError;
use crate::process::ProcessError;
use crate::registry::RegistryError;

/// What sort of failure an error is. The CLI's exit codes follow from it (DESIGN.md §5):
/// `Failed` 1, `Usage` 2, `Blocked` 3, `Unavailable` 4, `Interrupted` 130.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The operation was tried and failed, or a check found problems.
    Failed,
    /// Bad arguments or configuration: the user has to change what they asked for.
    Usage,
    /// Stopped by policy or a conflict: a human has to decide.
    Blocked,
    /// The environment is unavailable: Incus down, the backup share not mounted, a program missing.
    Unavailable,
    /// Cancelled (Ctrl-C, SIGTERM) before it finished.
    Interrupted,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Failed,
        ErrorKind::Usage,
        ErrorKind::Blocked,
        ErrorKind::Unavailable,
        ErrorKind::Interrupted,
    ];

    /// The stable name used in JSON output and protocol errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::Usage => "usage",
            ErrorKind::Blocked => "blocked",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a domain crate returns to a face: a message (its `Display`), a [`kind`](Self::kind)
/// and, when there is something the user can do, a [`hint`](Self::hint) (a full sentence or a
/// command, without a `hint:` prefix).
pub trait DomainError: std::error::Error {
    fn kind(&self) -> ErrorKind;

    fn hint(&self) -> Option<String> {
        None
    }
}

// The kinds of this crate's own errors. They sit together so the whole mapping reads as one
// table; every crate that wraps one of these delegates to it rather than deciding again.

impl DomainError for FsError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Failed
    }

    fn hint(&self) -> Option<String> {
        match self {
            FsError::LockTimeout { .. } => Some(
                "another repoman process holds the lock; retry when it has finished".to_owned(),
            ),
            FsError::Write { path, .. } | FsError::LockOpen { path, .. } => Some(format!(
                "check that {} is writable and its filesystem is not full or read-only",
                path.parent().unwrap_or(path).display()
            )),
        }
    }
}

impl DomainError for PathsError {
    fn kind(&self) -> ErrorKind {
        match self {
            PathsError::Create { .. } => ErrorKind::Failed,
            PathsError::NoHome(_)
            | PathsError::NotAbsolute { .. }
            | PathsError::RuntimeMode { .. } => ErrorKind::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PathsError::NoHome(_) => Some(
                "set HOME, or REPOMAN_CONFIG / REPOMAN_STATE_DIR / REPOMAN_CACHE_DIR".to_owned(),
            ),
            PathsError::NotAbsolute { var, .. } => {
                Some(format!("set {var} to an absolute path, or unset it"))
            }
            PathsError::RuntimeMode { .. } => {
                Some("chmod 0700 the directory, or set REPOMAN_RUNTIME_DIR".to_owned())
            }
            PathsError::Create { .. } => None,
        }
    }
}

impl DomainError for NameError {
    /// The message already says what is allowed.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl DomainError for IdError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl DomainError for ProcessError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProcessError::NotFound { .. } => ErrorKind::Unavailable,
            ProcessError::Cancelled { .. } => ErrorKind::Interrupted,
            ProcessError::Spawn { .. }
            | ProcessError::Timeout { .. }
            | ProcessError::Failed { .. }
            | ProcessError::Io { .. } => ErrorKind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ProcessError::NotFound { program } => Some(format!(
                "install {program}; `scripts/incus-lab` installs everything repoman needs"
            )),
            _ => None,
        }
    }
}

impl DomainError for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Read { .. } => ErrorKind::Failed,
            RegistryError::Fs(e) => e.kind(),
            RegistryError::Parse { .. }
            | RegistryError::Invalid { .. }
            | RegistryError::TooNew { .. }
            | RegistryError::Duplicate(_)
            | RegistryError::UnknownProject(_) => ErrorKind::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Parse { path, .. } => Some(format!("fix the file {}", path.display())),
            RegistryError::Invalid { hint, .. } => Some(hint.clone()),
            RegistryError::TooNew { .. } => Some("install a newer repoman".to_owned()),
            RegistryError::UnknownProject(_) => {
                Some("`repoman list` shows the registered projects".to_owned())
            }
            RegistryError::Duplicate(_) => {
                Some("choose another name, or `repoman remove` the old one".to_owned())
            }
            RegistryError::Fs(FsError::LockTimeout { .. }) => Some(
                "another repoman is editing the registry; retry when it has finished".to_owned(),
            ),
            RegistryError::Fs(e) => e.hint(),
            RegistryError::Read { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_have_the_documented_kinds() {
        use std::path::PathBuf;
        let io = || std::io::Error::other("x");
        let cases: Vec<(Box<dyn DomainError>, ErrorKind)> = vec![
            (Box::new(NameError::Empty), ErrorKind::Usage),
            (Box::new(IdError::NoKind("x".into())), ErrorKind::Usage),
            (Box::new(PathsError::NoHome("CONFIG")), ErrorKind::Usage),
            (
                Box::new(PathsError::Create {
                    path: PathBuf::from("/x"),
                    source: io(),
                }),
                ErrorKind::Failed,
            ),
            (
                Box::new(ProcessError::NotFound {
                    program: "rsync".into(),
                }),
                ErrorKind::Unavailable,
            ),
            (
                Box::new(ProcessError::Cancelled {
                    program: PathBuf::from("/usr/bin/rsync"),
                }),
                ErrorKind::Interrupted,
            ),
            (
                Box::new(RegistryError::UnknownProject("api".into())),
                ErrorKind::Usage,
            ),
            (
                Box::new(RegistryError::Read {
                    path: PathBuf::from("/x"),
                    source: io(),
                }),
                ErrorKind::Failed,
            ),
            (
                Box::new(RegistryError::Fs(FsError::LockTimeout {
                    what: "the registry".into(),
                    path: PathBuf::from("/x.lock"),
                    waited: std::time::Duration::from_secs(1),
                })),
                ErrorKind::Failed,
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
        }
        let busy = RegistryError::Fs(FsError::LockTimeout {
            what: "the registry".into(),
            path: PathBuf::from("/x.lock"),
            waited: std::time::Duration::from_secs(1),
        });
        assert!(busy.hint().unwrap().contains("editing the registry"));
    }

    #[test]
    fn kind_names_are_distinct_and_stable() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["failed", "usage", "blocked", "unavailable", "interrupted"]
        );
    }
}
