//! Toolchains: tool manifests with byte-faithful write-back, discovery of installed tools
//! (including theorem provers and solvers nobody declared), and drift between the two.
//!
//! - [`manifest`]: `.tool-versions`, mise TOML and idiomatic files; precedence and merging;
//!   pin/unpin as planned [`manifest::Edit`]s that change only what they must.
//! - [`rules`]: the table-driven identification rules (embedded TOML + `tools.d/*.toml`).
//! - [`discover`]: walking `PATH` and tools directories, shim detection, cached parallel probes.
//! - [`remote`]: the same discovery inside a sandbox through an exec channel (`--sandbox`).
//! - [`drift`]: declared vs installed (status), ghosts, `tool.discovered` events, doctor.
//! - [`schemas`]: the JSON Schemas of this domain's events.
//!
//! Library code never prints, prompts or exits; the CLI renders the typed values returned here.

pub mod discover;
pub mod drift;
pub mod error;
pub mod manifest;
pub mod remote;
pub mod rules;
pub mod schemas;

pub use error::ToolsError;
pub use schemas::schemas;
