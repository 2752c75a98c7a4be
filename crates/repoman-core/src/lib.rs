//! The foundation every other repoman crate stands on.
//!
//! Nothing here knows about Incus, backups, realms or tools. This crate owns the things that must
//! behave the same everywhere: where files live ([`paths`]), which environment variables repoman
//! reads ([`env`]), what a valid name is ([`names`]), the registry file ([`registry`]), the one
//! source of time and ids ([`clock`]), crash-safe writes and cross-process locks ([`fs`]),
//! running other programs safely ([`process`]) and cooperative cancellation ([`cancel`]); and the
//! shapes every domain shares: error kinds and hints ([`error`]), typed object ids ([`ids`]) and
//! progress reporting ([`progress`]).
//!
//! Library code in this crate never prints, never prompts and never exits the process.

pub mod agent_door;
pub mod cancel;
pub mod clock;
pub mod env;
pub mod error;
pub mod fs;
pub mod identity;
pub mod ids;
pub mod names;
pub mod paths;
pub mod process;
pub mod progress;
pub mod registry;
pub mod settings;
pub mod subid;

pub use cancel::Cancel;
pub use clock::Clock;
pub use env::Env;
pub use error::{DomainError, ErrorKind};
pub use ids::{ObjectId, ObjectKind};
pub use names::{NameError, ProjectName, RepoDirName};
pub use paths::Paths;
pub use progress::{NoProgress, Progress, Unit};
