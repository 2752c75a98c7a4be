//! The classification every domain error shares, so every face (CLI, daemon, TUI) treats the same
//! failure the same way.
//!
//! Each domain crate keeps its own `thiserror` enum (messages name the object or path) and
//! implements [`DomainError`] for it: [`DomainError::kind`] says what sort of failure it is, and
//! [`DomainError::hint`] what the user can do about it. The CLI turns a kind into an exit code in
//! one function (DESIGN.md §5); the daemon sends [`ErrorKind::as_str`] in its JSON-RPC errors.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_distinct_and_stable() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["failed", "usage", "blocked", "unavailable", "interrupted"]
        );
    }
}
