//! repoman's backup engine: a guarded `rsync` mirror of each project's working copy onto the
//! backup share, content manifests that prove what the backup holds, verify and restore.
//!
//! The flow of one project's sync (DESIGN.md §3, §6):
//! [`engine::prepare`] takes the per-project lock, probes the destination off-thread (mount,
//! filesystem type, marker), checks the source, asks rsync for a dry-run plan and evaluates the
//! built-in guards and the `backup-diverged` conflict check into [`guards::GuardVerdict`]s; the
//! caller records the policy decision; [`engine::execute`] writes the marker, runs rsync with the
//! same arguments, and builds and stores the manifest.
//!
//! This crate never prints, prompts or exits; progress goes through [`repoman_core::Progress`].

pub mod conflict;
pub mod engine;
pub mod error;
pub mod exclude;
pub mod guards;
pub mod history;
pub mod manifest;
pub mod marker;
pub mod mount;
pub mod paths;
pub mod probe;
pub mod restore;
pub mod rsync;
pub mod schemas;
pub mod verify;

pub use error::BackupError;
