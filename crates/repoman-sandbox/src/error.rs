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

use repoman_core::{DomainError, ErrorKind};
use repoman_state::{Blocked, GateError};

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
    /// `new` for a project that is registered already (with a sandbox, or `--no-container` again).
    #[error("project `{name}` is already registered {}", if *.with_sandbox { "with a sandbox" } else { "without a sandbox" })]
    AlreadyRegistered { name: String, with_sandbox: bool },
    /// `new --profile` for a project that is registered already.
    #[error("project `{0}` is already registered; --profile only applies to new projects")]
    ProfilesOfExisting(String),
    /// An unregistered container already has the name `new` would give the sandbox.
    #[error(
        "a container named `{name}` already exists in the Incus project `{project}` but is not registered (an orphan)"
    )]
    OrphanExists { name: String, project: String },
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
    /// A policy rule or guard blocked the plan (the one gate's verdict, rendered the same way
    /// by every domain).
    #[error(transparent)]
    Blocked(Box<Blocked>),
    /// The pre-start hardening check ([`crate::hardening`]) found what would weaken the
    /// sandbox; nothing was started.
    #[error("refusing to start `{name}`: {}{}", crate::hardening::summarize(findings), note.as_deref().map(|n| format!("; {n}")).unwrap_or_default())]
    Hardening {
        name: String,
        project: String,
        findings: Vec<crate::hardening::Finding>,
        /// What was done about it (e.g. the container `new` had created was deleted).
        note: Option<String>,
    },
    /// Ctrl-C arrived between two steps (what was done has been undone).
    #[error("interrupted")]
    Interrupted,
    /// A test-only failure injected with `REPOMAN_TEST_FAIL_AFTER`.
    #[error("injected failure after step `{0}` (REPOMAN_TEST_FAIL_AFTER, tests only)")]
    Injected(String),
    /// A change to the host system (`/etc/subuid`, the Incus daemon) that repoman cannot make
    /// here (not root, or the daemon was not found); `commands` are what to run instead.
    #[error("{message}")]
    HostChange {
        message: String,
        commands: Vec<String>,
    },
}

impl SandboxError {
    /// The kind of failure this is (DESIGN.md §5 maps kinds to exit codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            // Wrapped domain errors keep their own kind: the same failure maps to the same exit
            // code whichever command meets it.
            SandboxError::Incus(e) => DomainError::kind(e),
            SandboxError::State(e) => DomainError::kind(e),
            SandboxError::Registry(e) => DomainError::kind(e),
            SandboxError::Name(e) => DomainError::kind(e),
            SandboxError::Process(e) => DomainError::kind(e),
            SandboxError::Restricted(_) | SandboxError::HostChange { .. } => ErrorKind::Unavailable,
            SandboxError::NotConfigured { .. }
            | SandboxError::Invalid(_)
            | SandboxError::Overrides { .. }
            | SandboxError::UnknownProject(_)
            | SandboxError::NoContainer(_)
            | SandboxError::AlreadyRegistered { .. }
            | SandboxError::ProfilesOfExisting(_)
            | SandboxError::OrphanExists { .. } => ErrorKind::Usage,
            SandboxError::Interrupted => ErrorKind::Interrupted,
            SandboxError::Missing { .. } => ErrorKind::Failed,
            SandboxError::NoIncusProject(_) => ErrorKind::Usage,
            SandboxError::Directory { .. } => ErrorKind::Usage,
            SandboxError::RolledBack { .. } | SandboxError::Injected(_) => ErrorKind::Failed,
            SandboxError::Blocked(_) | SandboxError::Hardening { .. } => ErrorKind::Blocked,
        }
    }

    /// What the user should do next, when obvious.
    pub fn hint(&self) -> Option<String> {
        match self {
            SandboxError::Incus(e) => DomainError::hint(e),
            SandboxError::State(e) => DomainError::hint(e),
            SandboxError::Process(e) => DomainError::hint(e),
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
            SandboxError::Blocked(b) => DomainError::hint(&**b),
            SandboxError::AlreadyRegistered { name, .. } => {
                Some(format!("`repoman status {name}` shows it"))
            }
            SandboxError::ProfilesOfExisting(_) => Some(
                "add the profiles to `profiles` in its [[project]] entry or in the repo's .repoman.toml"
                    .to_owned(),
            ),
            SandboxError::OrphanExists { name, .. } => Some(format!(
                "`repoman status {name} --repair --orphan adopt` registers it"
            )),
            SandboxError::Overrides { path, .. } => Some(format!("fix {}", path.display())),
            SandboxError::Registry(e) => DomainError::hint(e),
            SandboxError::HostChange { commands, .. } => Some(format!(
                "run these, then `repoman setup` again:\n    {}",
                commands.join("\n    ")
            )),
            SandboxError::Hardening {
                name,
                project,
                findings,
                ..
            } => Some(crate::hardening::hints(findings, name, project)),
            _ => None,
        }
    }
}

impl DomainError for SandboxError {
    fn kind(&self) -> ErrorKind {
        SandboxError::kind(self)
    }

    fn hint(&self) -> Option<String> {
        SandboxError::hint(self)
    }
}

impl From<GateError> for SandboxError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Blocked(b) => SandboxError::Blocked(Box::new(b)),
            GateError::State(s) => SandboxError::State(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_hints_of_the_documented_failures() {
        let cases = [
            (
                SandboxError::UnknownProject("a".into()),
                ErrorKind::Usage,
                true,
            ),
            (
                SandboxError::Missing {
                    name: "a".into(),
                    project: "repoman".into(),
                },
                ErrorKind::Failed,
                true,
            ),
            (
                SandboxError::Restricted("x".into()),
                ErrorKind::Unavailable,
                false,
            ),
            (SandboxError::Interrupted, ErrorKind::Interrupted, false),
            (
                SandboxError::AlreadyRegistered {
                    name: "a".into(),
                    with_sandbox: true,
                },
                ErrorKind::Usage,
                true,
            ),
            (
                SandboxError::OrphanExists {
                    name: "a".into(),
                    project: "repoman".into(),
                },
                ErrorKind::Usage,
                true,
            ),
            (
                SandboxError::NoIncusProject("repoman".into()),
                ErrorKind::Usage,
                true,
            ),
        ];
        for (e, kind, has_hint) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.hint().is_some(), has_hint, "{e}");
        }
        let e = SandboxError::AlreadyRegistered {
            name: "a".into(),
            with_sandbox: false,
        };
        assert_eq!(
            e.to_string(),
            "project `a` is already registered without a sandbox"
        );
    }
}
