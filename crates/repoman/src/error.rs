//! The one error type at the edge of the CLI, and the exit codes (DESIGN.md §5).
//!
//! Domain crates return their own `thiserror` enums; each command converts them into a
//! [`CliError`] (via `From` impls, which live next to the command that needs them when only one
//! command does) that knows its [`Exit`] code, the cause chain and an optional `hint:` line.
//! `main` is the only place that turns an [`Exit`] into a process exit status.

use std::fmt;

use repoman_core::fs::FsError;
use repoman_core::names::NameError;
use repoman_core::paths::PathsError;
use repoman_core::process::ProcessError;
use repoman_core::registry::RegistryError;

/// Process exit codes. Scripts rely on these; they are documented in `docs/cli.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything worked.
    Success,
    /// 1: the operation failed, or a check found problems.
    Failure,
    /// 2: usage or configuration error.
    Usage,
    /// 3: blocked by policy or a conflict; a human has to decide.
    Blocked,
    /// 4: the environment is unavailable (Incus down, destination not mounted).
    Unavailable,
    /// 130: interrupted (Ctrl-C).
    Interrupted,
    /// The exit status of a command repoman ran for the user (`repoman shell -- CMD`), passed
    /// through unchanged.
    Child(u8),
}

impl Exit {
    /// The exit of an interactive child (`shell`): its own status, passed through; a child
    /// killed by a signal exits 128 + the signal number, as shells report it.
    pub fn of_child(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(0), _) => Exit::Success,
            (Some(code), _) => Exit::Child(u8::try_from(code & 0xff).unwrap_or(1)),
            (None, Some(sig)) => Exit::Child(u8::try_from(128 + (sig & 0x7f)).unwrap_or(1)),
            (None, None) => Exit::Failure,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Blocked => 3,
            Exit::Unavailable => 4,
            Exit::Interrupted => 130,
            Exit::Child(code) => code,
        }
    }
}

/// A failed command: what went wrong, why (the cause chain), and what to do about it.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// An operation failure (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// Build from any error, walking its `source()` chain into `causes`.
    pub fn from_error(exit: Exit, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut e = Self::new(exit, err.to_string());
        let mut source = err.source();
        while let Some(s) = source {
            let text = s.to_string();
            // thiserror's `#[error(transparent)]` and "{source}" messages repeat the cause.
            if !e.message.contains(&text) && !e.causes.iter().any(|c| c.contains(&text)) {
                e.causes.push(text);
            }
            source = s.source();
        }
        e
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The interrupted error (exit 130).
    pub fn interrupted() -> Self {
        Self::new(Exit::Interrupted, "interrupted")
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for c in &self.causes {
            write!(f, "\n  caused by: {c}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

impl From<RegistryError> for CliError {
    fn from(e: RegistryError) -> Self {
        let hint = match &e {
            RegistryError::Parse { path, .. } => Some(format!("fix the file {}", path.display())),
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
            _ => None,
        };
        let exit = match &e {
            RegistryError::Fs(FsError::LockTimeout { .. }) => Exit::Failure,
            RegistryError::Read { .. } | RegistryError::Fs(_) => Exit::Failure,
            _ => Exit::Usage,
        };
        let err = CliError::from_error(exit, &e);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

impl From<NameError> for CliError {
    fn from(e: NameError) -> Self {
        CliError::from_error(Exit::Usage, &e)
    }
}

impl From<PathsError> for CliError {
    fn from(e: PathsError) -> Self {
        let hint = match &e {
            PathsError::NoHome(_) => {
                Some("set HOME, or REPOMAN_CONFIG / REPOMAN_STATE_DIR / REPOMAN_CACHE_DIR")
            }
            PathsError::RuntimeMode { .. } => {
                Some("chmod 0700 the directory, or set REPOMAN_RUNTIME_DIR")
            }
            _ => None,
        };
        let exit = if matches!(e, PathsError::Create { .. }) {
            Exit::Failure
        } else {
            Exit::Usage
        };
        let err = CliError::from_error(exit, &e);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

impl From<FsError> for CliError {
    fn from(e: FsError) -> Self {
        CliError::from_error(Exit::Failure, &e)
    }
}

impl From<ProcessError> for CliError {
    fn from(e: ProcessError) -> Self {
        match &e {
            ProcessError::Cancelled { .. } => CliError::interrupted(),
            ProcessError::NotFound { program } => CliError::from_error(Exit::Unavailable, &e)
                .with_hint(format!(
                    "install {program}; `scripts/incus-lab` installs everything repoman needs"
                )),
            _ => CliError::from_error(Exit::Failure, &e),
        }
    }
}

impl From<repoman_state::StateError> for CliError {
    fn from(e: repoman_state::StateError) -> Self {
        use repoman_state::StateError as S;
        let exit = if e.needs_human() {
            Exit::Blocked
        } else {
            match &e {
                S::InvalidEvent { .. }
                | S::SchemaViolation { .. }
                | S::UnknownSchema(_)
                | S::ConflictNotFound(_)
                | S::Paths(_) => Exit::Usage,
                _ => Exit::Failure,
            }
        };
        let err = CliError::from_error(exit, &e);
        match &e {
            S::CorruptLine { .. } => err.with_hint(
                "run `repoman doctor` (and `repoman doctor --repair` for what it can fix)",
            ),
            S::Lock(_) => {
                err.with_hint("another repoman process holds the lock; retry when it has finished")
            }
            _ => err,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::from_error(Exit::Failure, &e)
    }
}

impl From<repoman_sandbox::SandboxError> for CliError {
    fn from(e: repoman_sandbox::SandboxError) -> Self {
        use repoman_core::ErrorKind;
        let exit = match e.kind() {
            ErrorKind::Failed => Exit::Failure,
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Blocked => Exit::Blocked,
            ErrorKind::Unavailable => Exit::Unavailable,
            ErrorKind::Interrupted => return CliError::interrupted(),
        };
        let err = CliError::from_error(exit, &e);
        match e.hint() {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_design() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::Blocked,
            Exit::Unavailable,
            Exit::Interrupted,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
    }

    #[test]
    fn display_shows_chain_and_hint() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let mut e = CliError::failed("cannot read x").with_hint("create it");
        e.causes.push(io.to_string());
        assert_eq!(
            e.to_string(),
            "cannot read x\n  caused by: no such file\nhint: create it"
        );
    }
}
