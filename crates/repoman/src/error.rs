//! The one error type at the edge of the CLI, and the exit codes (DESIGN.md §5).
//!
//! Domain crates return their own `thiserror` enums, each implementing
//! [`repoman_core::DomainError`]: a kind and a hint. [`exit_for`] is the ONE mapping from a kind
//! to an [`Exit`]; every `From<DomainErr> for CliError` goes through [`CliError::domain`], so the
//! same failure exits the same way in every command. A policy block ([`Blocked`]) renders the
//! same for sandboxes, backups, realms and tools ([`CliError::blocked`]).
//! `main` is the only place that turns an [`Exit`] into a process exit status.

use std::fmt;

use repoman_core::fs::FsError;
use repoman_core::ids::IdError;
use repoman_core::names::NameError;
use repoman_core::paths::PathsError;
use repoman_core::process::ProcessError;
use repoman_core::registry::RegistryError;
use repoman_core::{DomainError, ErrorKind};
use repoman_incus::IncusError;
use repoman_state::{Blocked, GateError, StateError};

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

impl Exit {
    /// The worse of two outcomes, for commands that act on several objects: interrupted, then
    /// unavailable, blocked, usage, failed, success.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Success => 0,
            Exit::Failure | Exit::Child(_) => 1,
            Exit::Usage => 2,
            Exit::Blocked => 3,
            Exit::Unavailable => 4,
            Exit::Interrupted => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// The one mapping from an error kind to the exit code (DESIGN.md §5; the table in
/// `docs/cli.md`).
pub fn exit_for(kind: ErrorKind) -> Exit {
    match kind {
        ErrorKind::Failed => Exit::Failure,
        ErrorKind::Usage => Exit::Usage,
        ErrorKind::Blocked => Exit::Blocked,
        ErrorKind::Unavailable => Exit::Unavailable,
        ErrorKind::Interrupted => Exit::Interrupted,
    }
}

/// A failed command: what went wrong, why (the cause chain), and what to do about it.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    /// Lines that belong to the message (the reasons of a block), shown indented under it.
    pub details: Vec<String>,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            details: Vec::new(),
            causes: Vec::new(),
            hint: None,
        }
    }

    /// Build from a domain error: its [`DomainError::kind`] decides the exit code (through
    /// [`exit_for`]), its [`DomainError::hint`] the `hint:` line.
    pub fn domain<E: DomainError + 'static>(err: &E) -> Self {
        Self::of_kind(err.kind(), err, err.hint())
    }

    /// Build from an error of a known kind (for errors that are not a [`DomainError`]).
    pub fn of_kind(
        kind: ErrorKind,
        err: &(dyn std::error::Error + 'static),
        hint: Option<String>,
    ) -> Self {
        let e = Self::from_error(exit_for(kind), err);
        match hint {
            Some(h) => e.with_hint(h),
            None => e,
        }
    }

    /// A policy block, rendered the same for every domain: what was stopped, one line per
    /// blocking reason with its rule, and the command that would unblock it.
    ///
    /// ```text
    /// error: tools.pin on file:api/.tool-versions is blocked by policy (denied)
    ///   denied (user:1): pins need a human
    /// hint: to unblock: ...
    /// ```
    pub fn blocked(b: &Blocked) -> Self {
        let mut e = Self::new(
            exit_for(b.kind()),
            format!(
                "{} on {} is blocked by policy ({})",
                b.operation,
                b.object,
                b.verb()
            ),
        );
        e.details = crate::decision::reason_lines(&b.reasons);
        e.hint = b.hint();
        e
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
    fn from_error(exit: Exit, err: &(dyn std::error::Error + 'static)) -> Self {
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

    /// Replace the message, keeping what it said as the first cause.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        let old = std::mem::replace(&mut self.message, message.into());
        self.causes.insert(0, old);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The interrupted error (exit 130).
    pub fn interrupted() -> Self {
        Self::new(Exit::Interrupted, "interrupted")
    }

    /// The quiet error of a write to stdout whose reader left (`repoman verify | head -1`).
    pub fn is_closed_pipe(&self) -> bool {
        self.exit == Exit::Success && self.message.is_empty()
    }
}

/// The exit of a command whose `verdict` was computed before its output was `printed`: a reader
/// that left early (a closed pipe) changes nothing about a failing check's exit code.
pub fn keep_verdict(printed: Result<(), CliError>, verdict: Exit) -> Result<Exit, CliError> {
    match printed {
        Err(e) if e.is_closed_pipe() => Ok(verdict),
        Err(e) => Err(e),
        Ok(()) => Ok(verdict),
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for d in &self.details {
            write!(f, "\n  {d}")?;
        }
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

/// `From` for every domain error: all go through [`CliError::domain`].
macro_rules! from_domain_error {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::domain(&e)
            }
        })*
    };
}

from_domain_error!(
    RegistryError,
    NameError,
    PathsError,
    FsError,
    ProcessError,
    IdError,
    StateError,
    IncusError,
    repoman_backup::BackupError,
);

impl From<Blocked> for CliError {
    fn from(b: Blocked) -> Self {
        CliError::blocked(&b)
    }
}

impl From<GateError> for CliError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Blocked(b) => CliError::blocked(&b),
            GateError::State(e) => CliError::domain(&e),
        }
    }
}

/// A bare I/O error carries no kind: the operation failed.
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::of_kind(ErrorKind::Failed, &e, None)
    }
}

/// Sandbox errors are domain errors; a policy block renders as every domain's does.
impl From<repoman_sandbox::SandboxError> for CliError {
    fn from(e: repoman_sandbox::SandboxError) -> Self {
        match &e {
            repoman_sandbox::SandboxError::Blocked(b) => CliError::blocked(b),
            _ if e.kind() == ErrorKind::Interrupted => CliError::interrupted(),
            _ => CliError::domain(&e),
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
    fn every_kind_has_its_documented_exit() {
        let codes: Vec<(ErrorKind, u8)> = ErrorKind::ALL
            .iter()
            .map(|k| (*k, exit_for(*k).code()))
            .collect();
        assert_eq!(
            codes,
            [
                (ErrorKind::Failed, 1),
                (ErrorKind::Usage, 2),
                (ErrorKind::Blocked, 3),
                (ErrorKind::Unavailable, 4),
                (ErrorKind::Interrupted, 130)
            ]
        );
    }

    #[test]
    fn worst_prefers_the_outcome_that_needs_more_attention() {
        assert_eq!(Exit::Success.worst(Exit::Failure), Exit::Failure);
        assert_eq!(Exit::Blocked.worst(Exit::Failure), Exit::Blocked);
        assert_eq!(Exit::Unavailable.worst(Exit::Blocked), Exit::Unavailable);
        assert_eq!(
            Exit::Interrupted.worst(Exit::Unavailable),
            Exit::Interrupted
        );
        assert_eq!(Exit::Child(7).worst(Exit::Success), Exit::Child(7));
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
