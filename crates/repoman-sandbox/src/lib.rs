//! The sandbox domain: one Incus container per project, in repoman's own Incus project, with the
//! repository bind-mounted (DESIGN.md §1, the seed's "per-project isolated containers").
//!
//! Every face (CLI, daemon, TUI) calls the same functions here; nothing in this crate prints,
//! prompts or exits. The shape of each mutation is plan → gate → execute:
//!
//! - open a [`Session`] (registry, settings, one Incus listing, drift) — read-only;
//! - plan: [`create::draft`] + [`create::plan_create`], [`update::plan_update`],
//!   [`remove::plan_remove`], [`setup::resolve`] + [`setup::plan`], a [`Drift`] and a
//!   [`RepairAction`], a [`Lifecycle`] action; each plan names its policy operation;
//! - gate: [`session::authorize`] (records the decision; a block is [`SandboxError::Blocked`]) or
//!   [`session::preview`] for `--dry-run`; the [`Approval`] it returns is what every execute
//!   function takes, so no face can skip the gate;
//! - execute: [`create::execute_create`] (with rollback), [`update::execute_update`],
//!   [`remove::execute_remove`], [`setup::apply`], [`repair::apply_repair`], [`lifecycle::run`],
//!   [`lifecycle::start_for_exec`]; each records its typed [`SandboxEvent`];
//! - read: [`health::health`] (what `status` shows), [`listing::listing`] (what `list` shows).
//!
//! Long work reports through [`repoman_core::Progress`] (steps; Incus image downloads as
//! detail text and bytes). Errors implement [`repoman_core::DomainError`].
//!
//! Modules: [`desired`] (what a sandbox should look like), [`drift`] (reconciliation),
//! [`hardening`] (the check before every start),
//! [`estate`] and [`session`] (the opening and the gate), [`events`] (typed events and their
//! schemas), and one module per plan.

pub mod create;
pub mod desired;
pub mod drift;
pub mod error;
pub mod estate;
pub mod events;
pub mod hardening;
pub mod health;
pub mod lifecycle;
pub mod listing;
pub mod mount_policy;
pub mod remove;
pub mod repair;
pub mod restrict;
pub mod session;
pub mod setup;
pub mod update;

pub use drift::Drift;
pub use error::SandboxError;
pub use estate::Estate;
pub use events::{SandboxEvent, register_schemas};
pub use lifecycle::Lifecycle;
pub use repair::RepairAction;
pub use session::{Approval, Session, Target};
