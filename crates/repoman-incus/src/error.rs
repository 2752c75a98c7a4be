//! The one error type of this crate.
//!
//! Every failure says which request or object it concerns and, where the daemon answered, carries
//! the HTTP status and Incus' own message. The variants are chosen for what a caller does next:
//! [`IncusError::Unavailable`] means "the environment is not there" and
//! [`IncusError::RequestTimeout`] "it is there but does not answer" (the CLI exits 4 for both),
//! [`IncusError::NotFound`] and [`IncusError::AlreadyExists`] are answers a caller often branches
//! on, [`IncusError::OperationTimeout`] means the work may still finish on the server.

use std::path::PathBuf;
use std::time::Duration;

use repoman_core::{DomainError, ErrorKind};

/// Shorthand used throughout the crate.
pub type Result<T, E = IncusError> = std::result::Result<T, E>;

/// What can go wrong talking to Incus.
#[derive(Debug, thiserror::Error)]
pub enum IncusError {
    /// The socket is missing, refuses connections or is not accessible: incusd is not running
    /// (or we may not talk to it). Maps to "environment unavailable".
    #[error("Incus is unavailable at {}: {cause}", socket.display())]
    Unavailable { socket: PathBuf, cause: String },

    /// The daemon answered 404 for this request.
    #[error("{request}: not found: {message}")]
    NotFound { request: String, message: String },

    /// The object already exists (HTTP 409, or Incus' "already exists"/"UNIQUE constraint" errors,
    /// which it sometimes reports with status 400/500 or as a failed operation).
    #[error("{request}: already exists (HTTP {status}): {message}")]
    AlreadyExists {
        request: String,
        status: u16,
        message: String,
    },

    /// The object changed since we read it (HTTP 412 on `If-Match`): someone else edited it
    /// concurrently. Nothing was written; read again and retry.
    #[error("{request}: changed concurrently, nothing written: {message}")]
    Conflict { request: String, message: String },

    /// The daemon refused the request (HTTP 403), typically on a restricted socket or project.
    #[error("{request}: forbidden: {message}")]
    Forbidden { request: String, message: String },

    /// Any other error envelope from the daemon.
    #[error("{request}: Incus answered HTTP {status}: {message}")]
    Api {
        request: String,
        status: u16,
        message: String,
    },

    /// A background operation finished with a failure.
    #[error("operation `{description}` failed: {message}")]
    OperationFailed {
        id: String,
        description: String,
        message: String,
    },

    /// A background operation was still running when our deadline passed. It may still complete on
    /// the server (see `incus operation list`).
    #[error(
        "operation `{description}` ({id}) still running after {}s; it may still finish on the server",
        waited.as_secs_f64()
    )]
    OperationTimeout {
        id: String,
        description: String,
        waited: Duration,
    },

    /// The caller's cancel token was set while we waited for an operation.
    #[error(
        "operation `{description}` ({id}) interrupted{}",
        if *cancelled_on_server { "; cancelled on the server" } else { "; it may still finish on the server" }
    )]
    Cancelled {
        id: String,
        description: String,
        cancelled_on_server: bool,
    },

    /// A streamed exec outlived its deadline and was killed (SIGKILL).
    #[error("`{command}` was still running after {}s and was killed", waited.as_secs_f64())]
    ExecKilled { command: String, waited: Duration },

    /// A single HTTP request got no complete answer in time.
    #[error("{request}: no answer from Incus within {}s", timeout.as_secs_f64())]
    RequestTimeout { request: String, timeout: Duration },

    /// The server lacks an API extension that the requested call needs.
    #[error(
        "Incus {server_version} lacks the API extension `{extension}` needed to {needed_for}; upgrade to Incus 6.0 LTS or later"
    )]
    MissingExtension {
        extension: String,
        needed_for: String,
        server_version: String,
    },

    /// The answer did not have the shape the Incus API documents.
    #[error("{request}: unexpected answer from Incus: {message}")]
    Protocol { request: String, message: String },

    /// Transport failure after the connection was made (broken pipe, reset, ...).
    #[error("{request}: talking to Incus failed: {cause}")]
    Transport { request: String, cause: String },

    /// The caller asked for something this client will not send (bad path, unknown remote, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl IncusError {
    /// The HTTP status the daemon answered with, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            IncusError::NotFound { .. } => Some(404),
            IncusError::Forbidden { .. } => Some(403),
            IncusError::Conflict { .. } => Some(412),
            IncusError::AlreadyExists { status, .. } | IncusError::Api { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Incus' own message, when the daemon answered with one.
    pub fn incus_message(&self) -> Option<&str> {
        match self {
            IncusError::NotFound { message, .. }
            | IncusError::AlreadyExists { message, .. }
            | IncusError::Conflict { message, .. }
            | IncusError::Forbidden { message, .. }
            | IncusError::Api { message, .. }
            | IncusError::OperationFailed { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, IncusError::NotFound { .. })
    }

    /// Whether the object already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, IncusError::AlreadyExists { .. })
    }

    /// Whether the caller cancelled (the CLI maps this to exit code 130).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, IncusError::Cancelled { .. })
    }

    /// Whether the environment is missing or not answering (the CLI maps this to exit code 4).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            IncusError::Unavailable { .. } | IncusError::RequestTimeout { .. }
        )
    }

    /// A one-line suggestion for the user, when there is an obvious next step (also
    /// [`DomainError::hint`]).
    pub fn hint(&self) -> Option<String> {
        match self {
            IncusError::Unavailable { socket, cause } if cause.contains("Permission denied") => {
                Some(format!(
                    "{} is not accessible to you: add your user to the `incus-admin` group (full \
                     access) or `incus` (the restricted per-user socket) and log in again",
                    socket.display()
                ))
            }
            IncusError::Unavailable { socket, .. } => Some(format!(
                "is incusd running? try `scripts/incus-lab` (test lab) or `systemctl start incus`; \
                 set INCUS_SOCKET if the socket is not {}",
                socket.display()
            )),
            IncusError::Forbidden { .. } => Some(
                "if this is the per-user socket (unix.socket.user), only the project user-<uid> \
                 is allowed; add yourself to the `incus-admin` group for full access"
                    .to_owned(),
            ),
            IncusError::RequestTimeout { .. } => Some(
                "Incus accepted the connection but did not answer: is incusd hung? check \
                 `systemctl status incus` (or `incus info`) and restart it if needed"
                    .to_owned(),
            ),
            IncusError::OperationTimeout { .. } => {
                Some("check `incus operation list`; retry with a longer timeout".to_owned())
            }
            IncusError::MissingExtension { .. } => {
                Some("install Incus 6.0 LTS (see scripts/incus-lab)".to_owned())
            }
            _ => None,
        }
    }

    /// Build the typed error for an error envelope (or a bare HTTP error status).
    pub(crate) fn from_status(request: String, status: u16, message: String) -> Self {
        let duplicate = is_duplicate_message(&message);
        match status {
            404 => IncusError::NotFound { request, message },
            412 => IncusError::Conflict { request, message },
            409 => IncusError::AlreadyExists {
                request,
                status,
                message,
            },
            _ if duplicate => IncusError::AlreadyExists {
                request,
                status,
                message,
            },
            403 => IncusError::Forbidden { request, message },
            _ => IncusError::Api {
                request,
                status,
                message,
            },
        }
    }
}

impl DomainError for IncusError {
    fn kind(&self) -> ErrorKind {
        match self {
            // No daemon, a socket we may not use, a project the socket may not reach, a server
            // too old: the environment is not what repoman needs.
            // A daemon that accepts connections but does not answer (hung, or stuck on its
            // database) is as unavailable as one that is down.
            IncusError::Unavailable { .. }
            | IncusError::Forbidden { .. }
            | IncusError::MissingExtension { .. }
            | IncusError::RequestTimeout { .. } => ErrorKind::Unavailable,
            IncusError::Cancelled { .. } => ErrorKind::Interrupted,
            IncusError::Invalid(_) => ErrorKind::Usage,
            IncusError::NotFound { .. }
            | IncusError::AlreadyExists { .. }
            | IncusError::Conflict { .. }
            | IncusError::Api { .. }
            | IncusError::OperationFailed { .. }
            | IncusError::OperationTimeout { .. }
            | IncusError::ExecKilled { .. }
            | IncusError::Protocol { .. }
            | IncusError::Transport { .. } => ErrorKind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        IncusError::hint(self)
    }
}

/// Incus reports some duplicates as plain errors (status 400/500, or a failed operation):
/// "A project named .. already exists", or the database's "UNIQUE constraint failed" when two
/// creates race or the name is taken. The wording is stable across releases.
pub(crate) fn is_duplicate_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("already exists") || lower.contains("unique constraint failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_hints_depend_on_the_cause() {
        let refused = IncusError::Unavailable {
            socket: PathBuf::from("/var/lib/incus/unix.socket"),
            cause: "Connection refused (os error 111)".into(),
        };
        assert!(refused.hint().unwrap().contains("systemctl start incus"));
        let denied = IncusError::Unavailable {
            socket: PathBuf::from("/var/lib/incus/unix.socket"),
            cause: "Permission denied (os error 13)".into(),
        };
        let hint = denied.hint().unwrap();
        assert!(
            hint.contains("incus-admin") && hint.contains("/var/lib/incus/unix.socket"),
            "{hint}"
        );
        assert!(denied.is_unavailable());
        assert_eq!(DomainError::kind(&denied), ErrorKind::Unavailable);
        assert_eq!(DomainError::hint(&denied), Some(hint));
        assert_eq!(denied.status(), None);
    }
}
