//! The sandbox domain: one Incus container per project, in repoman's own Incus project, with the
//! repository bind-mounted (DESIGN.md §1, the seed's "per-project isolated containers").
//!
//! - [`desired`]: what a sandbox should look like, from the registry, `.repoman.toml` and the
//!   host user;
//! - [`drift`]: reconciliation of the registry against one Incus listing (missing, orphan,
//!   config drift) and the diff of one instance against its desired state;
//! - [`estate`], [`session`]: the read-only opening every command shares, and the policy gate;
//! - [`setup`], [`create`], [`repair`]: plans and the changes that apply them (with rollback for
//!   creation);
//! - [`incus_ext`]: the few Incus calls the client crate does not offer yet.
//!
//! Nothing here prints or prompts: commands under `commands/` render plans, drift and errors.

pub mod create;
pub mod desired;
pub mod drift;
pub mod error;
pub mod estate;
pub mod incus_ext;
pub mod repair;
pub mod session;
pub mod setup;

pub use error::SandboxError;
