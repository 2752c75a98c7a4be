//! The SNIF host's errors. Every message that concerns one SNIF names it (`snif NAME: ...`), so
//! a failure inside a policy gate or a realm check still says which extension misbehaved.

use std::path::PathBuf;
use std::time::Duration;

use repoman_core::fs::FsError;
use repoman_core::paths::PathsError;
use repoman_core::{DomainError, ErrorKind};
use repoman_state::StateError;

/// What went wrong installing, granting, inspecting or calling a SNIF.
#[derive(Debug, thiserror::Error)]
pub enum SnifError {
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snif {name}: the module is not valid WebAssembly for this host: {message}")]
    InvalidModule { name: String, message: String },
    #[error(
        "snif {name}: the module imports {} that its manifest does not ask for",
        .imports.join(", ")
    )]
    ImportsExceedManifest { name: String, imports: Vec<String> },
    #[error("snif {name}: the module imports {import}, which this host does not provide ({why})")]
    UnsupportedImport {
        name: String,
        import: String,
        why: String,
    },
    #[error("snif {name}: the module does not export {export} (SNIF ABI {abi})")]
    MissingExport {
        name: String,
        export: String,
        abi: u32,
    },
    #[error(
        "snif {name}: the module imports {import}, which needs the `{capability}` capability, \
         and it is not granted"
    )]
    NotGranted {
        name: String,
        import: String,
        capability: String,
    },
    #[error("snif {name} does not ask for the `{capability}` capability in its manifest")]
    NotRequested { name: String, capability: String },
    #[error("no SNIF named {0} is installed")]
    NotInstalled(String),
    #[error("snif {name} implements {actual}, not {expected}")]
    WrongInterface {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("snif {name}: invalid input: {message}")]
    InvalidInput { name: String, message: String },
    #[error("snif {name}: trapped: {message}")]
    Trap { name: String, message: String },
    #[error("snif {name}: exited with status {status} instead of returning a result")]
    Exited { name: String, status: i32 },
    #[error("snif {name}: used its whole fuel budget of {fuel} units and was stopped")]
    FuelExhausted { name: String, fuel: u64 },
    #[error("snif {name}: did not finish within its deadline of {deadline:?} and was stopped")]
    DeadlineExceeded { name: String, deadline: Duration },
    #[error("snif {name}: exceeded its memory limit of {limit} bytes")]
    MemoryLimit { name: String, limit: usize },
    #[error("snif {name}: returned {len} bytes of output, over the limit of {limit} bytes")]
    OutputTooLarge {
        name: String,
        len: u64,
        limit: usize,
    },
    #[error("snif {name}: malformed output: {message}")]
    MalformedOutput { name: String, message: String },
    #[error("grant for snif {name}: {message}")]
    BadGrant { name: String, message: String },
    #[error("the SNIF engine could not start: {0}")]
    Engine(String),
    #[error("{0}")]
    Blocked(#[from] repoman_state::Blocked),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Paths(#[from] PathsError),
}

impl SnifError {
    pub(crate) fn manifest(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SnifError::Manifest {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl DomainError for SnifError {
    fn kind(&self) -> ErrorKind {
        use SnifError as E;
        match self {
            E::Manifest { .. }
            | E::InvalidModule { .. }
            | E::ImportsExceedManifest { .. }
            | E::UnsupportedImport { .. }
            | E::MissingExport { .. }
            | E::NotRequested { .. }
            | E::NotInstalled(_)
            | E::WrongInterface { .. }
            | E::InvalidInput { .. }
            | E::BadGrant { .. } => ErrorKind::Usage,
            E::NotGranted { .. } | E::Blocked(_) => ErrorKind::Blocked,
            E::State(e) if e.needs_human() => ErrorKind::Blocked,
            E::Paths(_) => ErrorKind::Usage,
            E::Read { .. }
            | E::Trap { .. }
            | E::Exited { .. }
            | E::FuelExhausted { .. }
            | E::DeadlineExceeded { .. }
            | E::MemoryLimit { .. }
            | E::OutputTooLarge { .. }
            | E::MalformedOutput { .. }
            | E::State(_)
            | E::Engine(_)
            | E::Fs(_) => ErrorKind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        use SnifError as E;
        Some(match self {
            E::NotInstalled(_) => "`repoman snif list` shows the installed SNIFs".to_owned(),
            E::NotGranted {
                name, capability, ..
            } => match capability.as_str() {
                "filesystem" => format!("to allow it: repoman snif grant {name} --dir DIR"),
                "env" => format!("to allow it: repoman snif grant {name} --env NAME=VALUE"),
                other => format!("to allow it: repoman snif grant {name} --{other}"),
            },
            E::ImportsExceedManifest { .. } => {
                "the module's author must declare these capabilities in snif.toml; \
                 `repoman snif inspect` on an installed SNIF shows imports beside claims"
                    .to_owned()
            }
            E::NotRequested { .. } => {
                "a SNIF only gets capabilities its manifest asks for; install a version that \
                 asks for it"
                    .to_owned()
            }
            E::FuelExhausted { .. } | E::DeadlineExceeded { .. } | E::MemoryLimit { .. } => {
                "the SNIF is stuck or needs more than its [limits]; report it to its author"
                    .to_owned()
            }
            E::Blocked(b) => return b.hint(),
            _ => return None,
        })
    }
}
