//! repoman's daemon and the Groove protocol (DESIGN.md §2, §4).
//!
//! - [`rpc`]: JSON-RPC 2.0, one JSON message per line (the **hard groove**).
//! - [`methods`]: the method table, its schemas (`rpc.discover`, OpenRPC), the manifest.
//! - [`stream`]: the **soft groove**: events streamed from the log's segments to subscribers.
//! - [`commit`]: group commit of appends (one fsync for many callers).
//! - [`server`], [`peer`], [`agent`]: connections, caller identity (`SO_PEERCRED`, and for a
//!   sandbox's endpoint its cgroup via `SO_PEERPIDFD`), the agent's door and its built-in policy.
//! - [`schedule`], [`daemon`]: scheduled work and the daemon's lifecycle.
//! - [`client`]: a small blocking client.
//!
//! Threads and blocking sockets, no async runtime: the daemon serves one user's tools and
//! sandboxes (tens of connections), and every request ends in blocking work anyway (SQLite,
//! fsync, a child process). Library code never prints, prompts or exits.

// Protocol errors carry their JSON `data` and are built on the error path only; boxing them
// would cost an allocation per error for nothing.
#![allow(clippy::result_large_err)]

pub mod agent;
pub mod client;
pub mod commit;
pub mod core;
pub mod daemon;
pub mod methods;
pub mod peer;
pub mod rpc;
pub mod runner;
pub mod schedule;
pub mod server;
pub mod stream;

pub use client::{Client, ClientError};
pub use core::{Config, Limits};
pub use daemon::DaemonError;
pub use rpc::RpcError;

/// Register the JSON Schemas of the events the daemon writes (idempotent).
pub fn register_schemas() {
    repoman_state::schemas::register_all(schemas());
}

/// The JSON Schemas of the events the daemon writes.
pub fn schemas() -> Vec<repoman_state::schemas::Schema> {
    use repoman_state::schemas::Schema;
    use serde_json::json;
    let any_object = || json!({"type": "object"});
    [
        (
            "daemon.started",
            "The daemon started",
            json!({"type": "object", "required": ["pid", "version", "socket"],
                   "properties": {"pid": {"type": "integer"}, "version": {"type": "string"}, "socket": {"type": "string"}}}),
        ),
        (
            "daemon.stopped",
            "The daemon stopped cleanly",
            json!({"type": "object", "required": ["pid"], "properties": {"pid": {"type": "integer"}, "reason": {"type": "string"}}}),
        ),
        (
            "daemon.reloaded",
            "The daemon re-read repoman.toml",
            json!({"type": "object", "required": ["projects"], "properties": {"projects": {"type": "integer"}, "error": {"type": ["string", "null"]}}}),
        ),
        (
            "schedule.ran",
            "A scheduled job ran",
            json!({"type": "object", "required": ["job", "outcome", "due_at", "finished_at", "next_at", "failures"],
                   "properties": {"job": {"type": "string"}, "outcome": {"enum": ["ok", "failed", "usage", "blocked", "unavailable", "interrupted"]},
                                  "due_at": {"type": "string"}, "finished_at": {"type": "string"}, "next_at": {"type": "string"},
                                  "failures": {"type": "integer", "minimum": 0}, "duration_ms": {"type": "integer"},
                                  "error": {"type": "string"}, "hint": {"type": "string"}, "kind": any_object()}}),
        ),
        (
            "reconcile.ran",
            "The periodic reconcile: Incus and backup reachability, and what changed",
            json!({"type": "object", "required": ["incus", "backup", "changed"],
                   "properties": {"incus": any_object(), "backup": any_object(), "changed": {"type": "array", "items": {"type": "string"}}, "needs_incus": {"type": "boolean"}}}),
        ),
        (
            "agent.called",
            "An agent called the daemon (every call, allowed or refused)",
            json!({"type": "object", "required": ["method", "outcome"],
                   "properties": {"method": {"type": "string"}, "outcome": {"enum": ["ok", "error", "refused"]},
                                  "code": {"type": "integer"}, "message": {"type": "string"}, "rule": {"type": "string"}, "pid": {"type": "integer"}}}),
        ),
        (
            "agent.rejected",
            "A connection to a sandbox's endpoint failed the identity check",
            json!({"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}, "pid": {"type": "integer"}, "uid": {"type": "integer"}}}),
        ),
        (
            "agent.note",
            "A note an agent recorded about its project",
            json!({"type": "object", "properties": {"text": {"type": "string", "maxLength": 65536}}}),
        ),
    ]
    .into_iter()
    .map(|(ty, title, schema)| Schema::event_data(ty, title, schema))
    .collect()
}
