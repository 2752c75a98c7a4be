//! The sandbox domain's error type and its kind (what exit code a face maps it to).
//!
//! Every message names the project, file or Incus object involved and, where there is an obvious
//! next step, the hint says what to run.

use std::path::PathBuf;

use repoman_core::names::NameError;
use repoman_core::process::ProcessError;
use repoman_core::registry::RegistryError;
use repoman_incus::IncusError;
use repoman_state::StateError;

use repoman_core::ErrorKind;

/// What can go wrong planning or applying a sandbox change.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Incus(#[from] IncusError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A setting the command needs is not configured.
    #[error("{what} is not configured")]
    NotConfigured { what: String, hint: String },
    /// A value given on the command line or in a file is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// `.repoman.toml` parsed but says something impossible (file and key named).
    #[error("{path}: {message}")]
    Overrides { path: PathBuf, message: String },
    /// A project that must be registered is not.
    #[error("project `{0}` is not registered")]
    UnknownProject(String),
    /// The project is registered without a sandbox (`--no-container`).
    #[error("project `{0}` has no sandbox (it was registered with --no-container)")]
    NoContainer(String),
    /// The sandbox should exist but Incus does not have it.
    #[error("the sandbox `{name}` is missing from the Incus project `{project}`")]
    Missing { name: String, project: String },
    /// Something exists already that the command would create.
    #[error("{0}")]
    Exists(String),
    /// The Incus project repoman uses does not exist (setup has not run).
    #[error("the Incus project `{0}` does not exist")]
    NoIncusProject(String),
    /// The connection may not do what repoman needs (the restricted per-user socket).
    #[error("{0}")]
    Restricted(String),
    /// A host directory failed validation.
    #[error("{path}: {message}")]
    Directory { path: PathBuf, message: String },
    /// A step of `new` failed and the steps before it were undone.
    #[error("creating the sandbox `{name}` failed at step `{step}`: {cause}; {undone}")]
    RolledBack {
        name: String,
        step: String,
        cause: String,
        undone: String,
    },
    /// A policy rule or guard blocked the plan.
    #[error("{operation} on {object} is blocked by policy: {reasons}")]
    Blocked {
        operation: String,
        object: String,
        reasons: String,
        unblock: Option<String>,
    },
    /// Ctrl-C arrived between two steps (what was done has been undone).
    #[error("interrupted")]
    Interrupted,
    /// A test-only failure injected with `REPOMAN_TEST_FAIL_AFTER`.
    #[error("injected failure after step `{0}` (REPOMAN_TEST_FAIL_AFTER, tests only)")]
    Injected(String),
}

impl SandboxError {
    /// The kind of failure this is (DESIGN.md §5 maps kinds to exit codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            SandboxError::Incus(e) if e.is_unavailable() => ErrorKind::Unavailable,
            SandboxError::Incus(IncusError::Forbidden { .. }) | SandboxError::Restricted(_) => {
                ErrorKind::Unavailable
            }
            SandboxError::Incus(IncusError::MissingExtension { .. }) => ErrorKind::Unavailable,
            SandboxError::Incus(_) => ErrorKind::Failed,
            SandboxError::State(e) if e.needs_human() => ErrorKind::Blocked,
            SandboxError::State(_) => ErrorKind::Failed,
            SandboxError::Registry(RegistryError::Read { .. } | RegistryError::Fs(_)) => {
                ErrorKind::Failed
            }
            SandboxError::Registry(_) => ErrorKind::Usage,
            SandboxError::Name(_)
            | SandboxError::NotConfigured { .. }
            | SandboxError::Invalid(_)
            | SandboxError::Overrides { .. }
            | SandboxError::UnknownProject(_)
            | SandboxError::NoContainer(_)
            | SandboxError::Exists(_) => ErrorKind::Usage,
            SandboxError::Process(ProcessError::Cancelled { .. }) | SandboxError::Interrupted => {
                ErrorKind::Interrupted
            }
            SandboxError::Process(ProcessError::NotFound { .. }) => ErrorKind::Unavailable,
            SandboxError::Process(_) => ErrorKind::Failed,
            SandboxError::Missing { .. } => ErrorKind::Failed,
            SandboxError::NoIncusProject(_) => ErrorKind::Usage,
            SandboxError::Directory { .. } => ErrorKind::Usage,
            SandboxError::RolledBack { .. } | SandboxError::Injected(_) => ErrorKind::Failed,
            SandboxError::Blocked { .. } => ErrorKind::Blocked,
        }
    }

    /// What the user should do next, when obvious.
    pub fn hint(&self) -> Option<String> {
        match self {
            SandboxError::Incus(e) => e.hint(),
            SandboxError::NotConfigured { hint, .. } => Some(hint.clone()),
            SandboxError::UnknownProject(_) => {
                Some("`repoman list` shows the registered projects".to_owned())
            }
            SandboxError::NoContainer(name) => Some(format!(
                "`repoman new {name}` adds a sandbox to the registered project"
            )),
            SandboxError::Missing { name, .. } => Some(format!(
                "`repoman status {name} --repair` recreates it (or forgets the project)"
            )),
            SandboxError::NoIncusProject(_) => {
                Some("run `repoman setup` first; it creates the Incus project".to_owned())
            }
            SandboxError::Blocked { unblock, .. } => unblock
                .clone()
                .or_else(|| Some("change the matching [[policy.rule]] in repoman.toml".to_owned())),
            SandboxError::Overrides { path, .. } => Some(format!("fix {}", path.display())),
            SandboxError::Registry(e) => repoman_core::DomainError::hint(e),
            _ => None,
        }
    }
}
