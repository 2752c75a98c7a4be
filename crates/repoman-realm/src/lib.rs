//! repoman realms: repositories that depend on each other declare contracts (JSON Schema + semver)
//! in a shared realm git repository; this crate checks them.
//!
//! - [`compat`]: the direction-aware JSON Schema compatibility engine (BACKWARD/FORWARD/FULL).
//! - [`graph`]: the repo dependency graph and cycle detection (`tarjan_scc`).
//! - [`model`], [`schemas`]: the realm files and their JSON Schemas.
//! - [`realm`]: loading a realm repository and the admin changes, returned as events.
//! - [`git`]: the `git` CLI for the realm repository.
//! - [`version`]: semver versions, npm- and comma-style ranges, bump rules.
//! - [`check`]: `realm check` (contract, compatibility, exporter, importer, hooks).
//! - [`cache`]: the SQLite check cache; [`trust`]: which realms may run hooks here.
//! - [`yaml`]: budgeted YAML/JSON loading with `file:line:column` errors.
//!
//! Library code never prints, prompts or exits; it returns typed values and errors.

pub mod cache;
pub mod check;
pub mod compat;
pub mod git;
pub mod graph;
pub mod model;
pub mod realm;
pub mod schemas;
pub mod trust;
pub mod version;
pub mod yaml;

/// Every JSON Schema this crate owns (realm files, event data), for
/// `repoman_state::schemas::register_all`.
pub use schemas::registered as schemas;
