//! Toolchains: tool manifests with byte-faithful write-back, discovery of installed tools
//! (including theorem provers and solvers nobody declared), and drift between the two.
//!
//! - [`manifest`]: `.tool-versions`, mise TOML and idiomatic files; precedence and merging;
//!   pin/unpin as planned [`manifest::Edit`]s that change only what they must.
//!
//! Library code never prints, prompts or exits; the CLI renders the typed values returned here.

pub mod error;
pub mod manifest;

pub use error::ToolsError;
