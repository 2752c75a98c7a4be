//! repoman's state integrity core (DESIGN.md §4 "The event log", "The index", "Policy").
//!
//! - [`log`]: the append-only, hash-chained JSONL event log (the durable truth).
//! - [`index`]: the SQLite index derived from it by replay; rebuilt and reported when missing,
//!   corrupt, of an older schema or out of step with the log. Nothing durable lives only there.
//! - [`identity`]: actor, device and profile recorded on every event.
//! - [`policy`], [`gate`], [`conflict`]: decisions (the one gate every mutating plan passes
//!   through) and human-only conflict resolution, recorded as events.
//! - [`schemas`]: the embedded JSON Schemas of every durable format, used on load and on append.
//! - [`explain`], [`doctor`]: answers about objects, and integrity checks with repairs.
//! - [`trust`]: which version of a repo's `.repoman.toml` a human trusted (`config.trusted`).
//!
//! Library code never prints, prompts or exits; it returns typed values and [`StateError`].

pub mod conflict;
pub mod doctor;
pub mod error;
pub mod event;
pub mod explain;
pub mod gate;
pub mod identity;
pub mod index;
pub mod log;
pub mod policy;
pub mod repair;
pub mod replay;
pub mod schemas;
pub mod state;
pub mod trust;

pub use conflict::{Conflict, ConflictFilter, ConflictState, NewConflict, Resolution};
pub use error::StateError;
pub use event::{Event, NewEvent};
pub use gate::{Blocked, GateError, GateMode, gate};
pub use identity::{ActorKind, ActorRequest, Identity};
pub use index::EventQuery;
pub use policy::{Decision, Effect, Operation, Verdict};
pub use state::{AppendThenError, State, StateOptions};
pub use trust::{TrustCheck, TrustStatus, TrustedConfig};
