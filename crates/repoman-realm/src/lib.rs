//! repoman realms: repositories that depend on each other declare contracts (JSON Schema + semver)
//! in a shared realm git repository; this crate checks them.
//!
//! - [`compat`]: the direction-aware JSON Schema compatibility engine (BACKWARD/FORWARD/FULL).
//! - [`graph`]: the repo dependency graph and cycle detection (`tarjan_scc`).
//! - [`version`]: semver versions, npm- and comma-style ranges, bump rules.
//! - [`yaml`]: budgeted YAML/JSON loading with `file:line:column` errors.
//!
//! Library code never prints, prompts or exits; it returns typed values and errors.

pub mod compat;
pub mod graph;
pub mod version;
pub mod yaml;
