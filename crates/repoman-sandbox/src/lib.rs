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

/// Register the JSON Schemas of the sandbox events' `data` with the state crate, so a malformed
/// event is refused on append and `repoman schema` lists them. Idempotent.
pub fn register_schemas() {
    use repoman_state::schemas::{Schema, register};
    use serde_json::json;
    let string = json!({"type": "string"});
    register(Schema::event_data(
        "sandbox.created",
        "A sandbox container was created (and started unless --no-start)",
        json!({
            "type": "object",
            "required": ["project", "incus_project", "image", "profiles", "devices", "repo_path", "mount_path", "uid", "gid", "started"],
            "properties": {
                "project": string, "incus_project": string, "image": string,
                "profiles": {"type": "array", "items": string},
                "devices": {"type": "array", "items": string},
                "repo_path": string, "mount_path": string,
                "uid": {"type": "integer", "minimum": 0}, "gid": {"type": "integer", "minimum": 0},
                "started": {"type": "boolean"}
            }
        }),
    ));
    register(Schema::event_data(
        "sandbox.create.rolled_back",
        "Creating a sandbox failed at a step and the earlier steps were undone",
        json!({
            "type": "object",
            "required": ["project", "incus_project", "step", "error", "undone"],
            "properties": {
                "project": string, "incus_project": string, "error": string,
                "step": {"enum": ["mkdir", "create", "start", "register", "record"]},
                "undone": {"type": "array", "items": {
                    "type": "object", "required": ["action", "ok"],
                    "properties": {"action": string, "ok": {"type": "boolean"}}
                }}
            }
        }),
    ));
    register(Schema::event_data(
        "sandbox.repaired",
        "`repoman status --repair` fixed one drifted sandbox",
        json!({
            "type": "object",
            "required": ["drift", "action", "detail"],
            "properties": {
                "drift": {"enum": ["missing", "orphan", "config"]},
                "action": {"enum": ["recreate", "forget", "adopt", "destroy", "reapply"]},
                "detail": {"type": "object"}
            }
        }),
    ));
    register(Schema::event_data(
        "sandbox.removed",
        "A sandbox container was destroyed (the repo and the backup were left alone)",
        json!({
            "type": "object",
            "required": ["project", "incus_project"],
            "properties": {"project": string, "incus_project": string}
        }),
    ));
}

#[cfg(test)]
mod tests {
    use repoman_core::{Clock, Env, Paths};
    use repoman_state::{NewEvent, State, StateError};
    use serde_json::json;

    #[test]
    fn sandbox_event_schemas_refuse_malformed_data() {
        let home = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("HOME", home.path()), ("USER", std::path::Path::new("t"))]);
        let paths = Paths::resolve(&env).unwrap();
        let state = State::open(
            &paths,
            &env,
            Clock::pinned("2026-01-01T00:00:00Z".parse().unwrap()),
        )
        .unwrap();
        super::register_schemas();
        let bad = NewEvent::new(
            "sandbox.repaired",
            "sandbox:a",
            json!({"drift": "sideways", "action": "adopt", "detail": {}}),
        );
        assert!(matches!(
            state.append(bad),
            Err(StateError::SchemaViolation { .. })
        ));
        let good = NewEvent::new(
            "sandbox.repaired",
            "sandbox:a",
            json!({"drift": "orphan", "action": "adopt", "detail": {}}),
        );
        assert!(state.append(good).is_ok());
    }
}
