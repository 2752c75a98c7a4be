//! The events the sandbox domain writes, typed: one [`SandboxEvent`] variant per event type, each
//! with a data struct whose JSON Schema this module registers ([`register_schemas`]), so a
//! malformed event is refused on append and `repoman schema list` shows every one of them.
//!
//! Invariant: [`SandboxEvent::TYPES`] lists every type a variant can have, and [`schemas`]
//! returns exactly one schema per type (tests check both, and that each variant's data validates
//! against its schema). Every data object is closed (`additionalProperties: false`): a field added
//! to a struct without its schema fails the tests, not a user's append.

use std::path::PathBuf;

use repoman_core::ObjectId;
use repoman_state::NewEvent;
use repoman_state::schemas::{Schema, register};
use serde::Serialize;
use serde_json::{Value, json};

use crate::drift::Change;
use crate::setup::SetupStep;

/// `sandbox.setup.applied`: `repoman setup` changed the host (object `incus-project:NAME`).
#[derive(Debug, Clone, Serialize)]
pub struct SetupApplied {
    pub incus_project: String,
    /// The Incus and directory steps that were applied.
    pub steps: Vec<SetupStep>,
    /// The registry steps of the plan.
    pub registry: Vec<SetupStep>,
    /// Whether repoman.toml was rewritten.
    pub registry_written: bool,
}

/// `project.registered`: a `[[project]]` entry was added (object `project:NAME`).
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRegistered {
    #[serde(skip)]
    pub project: String,
    pub repo: String,
    pub repo_path: PathBuf,
    pub container: bool,
}

/// `project.unregistered`: a `[[project]]` entry was removed (object `project:NAME`).
#[derive(Debug, Clone, Serialize)]
pub struct ProjectUnregistered {
    #[serde(skip)]
    pub project: String,
    pub repo: String,
    pub repo_path: Option<PathBuf>,
}

/// `sandbox.created`: a sandbox container was created (and started unless `--no-start`).
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub project: String,
    pub incus_project: String,
    pub image: String,
    pub profiles: Vec<String>,
    /// Device names.
    pub devices: Vec<String>,
    pub repo_path: PathBuf,
    pub mount_path: String,
    pub uid: u32,
    pub gid: u32,
    pub started: bool,
}

/// One undo step of a rolled-back creation.
#[derive(Debug, Clone, Serialize)]
pub struct Undone {
    pub action: String,
    pub ok: bool,
}

/// `sandbox.create.rolled_back`: creating failed at `step` and the earlier steps were undone.
#[derive(Debug, Clone, Serialize)]
pub struct CreateRolledBack {
    pub project: String,
    pub incus_project: String,
    /// `mkdir`, `create`, `start`, `register` or `record`.
    pub step: String,
    pub error: String,
    pub undone: Vec<Undone>,
}

/// `sandbox.started`, `sandbox.stopped`, `sandbox.restarted`: one shape for all three, whoever
/// asked (the lifecycle commands, or `exec`/`shell` starting a stopped sandbox).
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleChanged {
    pub project: String,
    /// The Incus status before (`Running`, `Stopped`, ...).
    pub from: String,
    pub force: bool,
    /// Why, when it was not the lifecycle command itself (`exec/shell`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `sandbox.updated`: profiles, devices and managed config were re-applied.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    pub project: String,
    /// The re-applied changes (never an image change).
    pub changes: Vec<Change>,
}

/// `sandbox.rebuilt`: the root filesystem was replaced from `image`.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    pub project: String,
    pub from_image: Option<String>,
    pub image: String,
}

/// `sandbox.repaired`: `repoman status --repair` fixed one drifted sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    #[serde(skip)]
    pub project: String,
    /// `missing`, `orphan` or `config`.
    pub drift: String,
    /// `recreate`, `forget`, `adopt`, `destroy` or `reapply`.
    pub action: String,
    /// What the repair did (the image recreated from, the repo adopted, the changes re-applied).
    pub detail: Value,
}

/// `sandbox.removed`: the container was destroyed (the repo and the backup were left alone).
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub project: String,
    pub incus_project: String,
    pub repo_path: Option<PathBuf>,
}

/// Every event the sandbox domain writes.
#[derive(Debug, Clone)]
pub enum SandboxEvent {
    SetupApplied(SetupApplied),
    ProjectRegistered(ProjectRegistered),
    ProjectUnregistered(ProjectUnregistered),
    Created(Created),
    CreateRolledBack(CreateRolledBack),
    Started(LifecycleChanged),
    Stopped(LifecycleChanged),
    Restarted(LifecycleChanged),
    Updated(Updated),
    Rebuilt(Rebuilt),
    Repaired(Repaired),
    Removed(Removed),
}

impl SandboxEvent {
    /// Every event type this domain writes.
    pub const TYPES: [&'static str; 12] = [
        "sandbox.setup.applied",
        "project.registered",
        "project.unregistered",
        "sandbox.created",
        "sandbox.create.rolled_back",
        "sandbox.started",
        "sandbox.stopped",
        "sandbox.restarted",
        "sandbox.updated",
        "sandbox.rebuilt",
        "sandbox.repaired",
        "sandbox.removed",
    ];

    /// The event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            SandboxEvent::SetupApplied(_) => "sandbox.setup.applied",
            SandboxEvent::ProjectRegistered(_) => "project.registered",
            SandboxEvent::ProjectUnregistered(_) => "project.unregistered",
            SandboxEvent::Created(_) => "sandbox.created",
            SandboxEvent::CreateRolledBack(_) => "sandbox.create.rolled_back",
            SandboxEvent::Started(_) => "sandbox.started",
            SandboxEvent::Stopped(_) => "sandbox.stopped",
            SandboxEvent::Restarted(_) => "sandbox.restarted",
            SandboxEvent::Updated(_) => "sandbox.updated",
            SandboxEvent::Rebuilt(_) => "sandbox.rebuilt",
            SandboxEvent::Repaired(_) => "sandbox.repaired",
            SandboxEvent::Removed(_) => "sandbox.removed",
        }
    }

    /// The object the event is about.
    pub fn object(&self) -> ObjectId {
        match self {
            SandboxEvent::SetupApplied(e) => ObjectId::incus_project(&e.incus_project),
            SandboxEvent::ProjectRegistered(e) => ObjectId::project(&e.project),
            SandboxEvent::ProjectUnregistered(e) => ObjectId::project(&e.project),
            SandboxEvent::Created(e) => ObjectId::sandbox(&e.project),
            SandboxEvent::CreateRolledBack(e) => ObjectId::sandbox(&e.project),
            SandboxEvent::Started(e) | SandboxEvent::Stopped(e) | SandboxEvent::Restarted(e) => {
                ObjectId::sandbox(&e.project)
            }
            SandboxEvent::Updated(e) => ObjectId::sandbox(&e.project),
            SandboxEvent::Rebuilt(e) => ObjectId::sandbox(&e.project),
            SandboxEvent::Repaired(e) => ObjectId::sandbox(&e.project),
            SandboxEvent::Removed(e) => ObjectId::sandbox(&e.project),
        }
    }

    /// The event's `data`.
    pub fn data(&self) -> Value {
        let v = match self {
            SandboxEvent::SetupApplied(e) => serde_json::to_value(e),
            SandboxEvent::ProjectRegistered(e) => serde_json::to_value(e),
            SandboxEvent::ProjectUnregistered(e) => serde_json::to_value(e),
            SandboxEvent::Created(e) => serde_json::to_value(e),
            SandboxEvent::CreateRolledBack(e) => serde_json::to_value(e),
            SandboxEvent::Started(e) | SandboxEvent::Stopped(e) | SandboxEvent::Restarted(e) => {
                serde_json::to_value(e)
            }
            SandboxEvent::Updated(e) => serde_json::to_value(e),
            SandboxEvent::Rebuilt(e) => serde_json::to_value(e),
            SandboxEvent::Repaired(e) => serde_json::to_value(e),
            SandboxEvent::Removed(e) => serde_json::to_value(e),
        };
        // These structs hold strings, numbers, paths and maps of strings only.
        v.unwrap_or(Value::Null)
    }

    /// The event to append.
    pub fn to_new_event(&self) -> NewEvent {
        NewEvent::new(self.event_type(), self.object(), self.data())
    }
}

impl From<SandboxEvent> for NewEvent {
    fn from(e: SandboxEvent) -> NewEvent {
        e.to_new_event()
    }
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": properties,
    })
}

/// The JSON Schemas of every sandbox event's `data`, one per [`SandboxEvent::TYPES`] entry.
pub fn schemas() -> Vec<Schema> {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let count = json!({"type": "integer", "minimum": 0});
    let path_or_null = json!({"type": ["string", "null"]});
    let setup_steps = json!({"type": "array", "items": {
        "type": "object", "required": ["step"],
        "properties": {"step": {"enum": [
            "delegate_id", "restart_incus", "create_directory", "create_project",
            "restrict_project", "set_root_disk", "add_nic",
            "create_profile", "update_profile", "set_default", "set_estate_id"
        ]}}
    }});
    let changes = json!({"type": "array", "items": {
        "type": "object", "required": ["kind"],
        "properties": {"kind": {"enum": [
            "add_device", "remove_device", "update_device", "set_profiles", "set_config"
        ]}}
    }});
    let lifecycle = |verb: &str| {
        Schema::event_data(
            &format!("sandbox.{verb}"),
            &format!("A sandbox was {verb} (by its command, or by exec/shell)"),
            object(
                &["project", "from", "force"],
                json!({"project": string, "from": string, "force": {"type": "boolean"}, "reason": string}),
            ),
        )
    };
    vec![
        Schema::event_data(
            "sandbox.setup.applied",
            "`repoman setup` created directories, the Incus project, profiles or registry defaults",
            object(
                &["incus_project", "steps", "registry", "registry_written"],
                json!({
                    "incus_project": string, "steps": setup_steps, "registry": setup_steps,
                    "registry_written": {"type": "boolean"}
                }),
            ),
        ),
        Schema::event_data(
            "project.registered",
            "A project was added to repoman.toml (with or without a sandbox)",
            object(
                &["repo", "repo_path", "container"],
                json!({"repo": string, "repo_path": string, "container": {"type": "boolean"}}),
            ),
        ),
        Schema::event_data(
            "project.unregistered",
            "A project was removed from repoman.toml (its repo and backup were left alone)",
            object(
                &["repo", "repo_path"],
                json!({"repo": string, "repo_path": path_or_null}),
            ),
        ),
        Schema::event_data(
            "sandbox.created",
            "A sandbox container was created (and started unless --no-start)",
            object(
                &[
                    "project",
                    "incus_project",
                    "image",
                    "profiles",
                    "devices",
                    "repo_path",
                    "mount_path",
                    "uid",
                    "gid",
                    "started",
                ],
                json!({
                    "project": string, "incus_project": string, "image": string,
                    "profiles": strings, "devices": strings,
                    "repo_path": string, "mount_path": string,
                    "uid": count, "gid": count, "started": {"type": "boolean"}
                }),
            ),
        ),
        Schema::event_data(
            "sandbox.create.rolled_back",
            "Creating a sandbox failed at a step and the earlier steps were undone",
            object(
                &["project", "incus_project", "step", "error", "undone"],
                json!({
                    "project": string, "incus_project": string, "error": string,
                    "step": {"enum": ["mkdir", "create", "start", "register", "record"]},
                    "undone": {"type": "array", "items": object(
                        &["action", "ok"],
                        json!({"action": string, "ok": {"type": "boolean"}}),
                    )}
                }),
            ),
        ),
        lifecycle("started"),
        lifecycle("stopped"),
        lifecycle("restarted"),
        Schema::event_data(
            "sandbox.updated",
            "Profiles, devices and managed config of a sandbox were re-applied",
            object(
                &["project", "changes"],
                json!({"project": string, "changes": changes}),
            ),
        ),
        Schema::event_data(
            "sandbox.rebuilt",
            "A sandbox's root filesystem was replaced from its desired image",
            object(
                &["project", "from_image", "image"],
                json!({"project": string, "from_image": {"type": ["string", "null"]}, "image": string}),
            ),
        ),
        Schema::event_data(
            "sandbox.repaired",
            "`repoman status --repair` fixed one drifted sandbox",
            object(
                &["drift", "action", "detail"],
                json!({
                    "drift": {"enum": ["missing", "orphan", "config"]},
                    "action": {"enum": ["recreate", "forget", "adopt", "destroy", "reapply"]},
                    "detail": {"type": "object"}
                }),
            ),
        ),
        Schema::event_data(
            "sandbox.removed",
            "A sandbox container was destroyed (the repo and the backup were left alone)",
            object(
                &["project", "incus_project"],
                json!({"project": string, "incus_project": string, "repo_path": path_or_null}),
            ),
        ),
    ]
}

/// Register [`schemas`] with the state crate (process-wide, idempotent).
pub fn register_schemas() {
    for s in schemas() {
        register(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repoman_core::{Clock, Env, Paths};
    use repoman_state::{State, StateError};

    fn state(home: &std::path::Path) -> State {
        let env = Env::from_pairs([("HOME", home), ("USER", std::path::Path::new("t"))]);
        let paths = Paths::resolve(&env).unwrap();
        State::open(
            &paths,
            &env,
            Clock::pinned("2026-01-01T00:00:00Z".parse().unwrap()),
        )
        .unwrap()
    }

    fn lifecycle(reason: Option<&str>) -> LifecycleChanged {
        LifecycleChanged {
            project: "a".into(),
            from: "Stopped".into(),
            force: false,
            reason: reason.map(Into::into),
        }
    }

    /// One value of every variant, as the domain writes them.
    fn samples() -> Vec<SandboxEvent> {
        let step = SetupStep::SetRootDisk {
            project: "repoman".into(),
            pool: "default".into(),
        };
        vec![
            SandboxEvent::SetupApplied(SetupApplied {
                incus_project: "repoman".into(),
                steps: vec![step, SetupStep::CreateDirectory { path: "/r".into() }],
                registry: vec![SetupStep::SetEstateId],
                registry_written: true,
            }),
            SandboxEvent::ProjectRegistered(ProjectRegistered {
                project: "a".into(),
                repo: "a".into(),
                repo_path: "/r/a".into(),
                container: true,
            }),
            SandboxEvent::ProjectUnregistered(ProjectUnregistered {
                project: "a".into(),
                repo: "a".into(),
                repo_path: None,
            }),
            SandboxEvent::Created(Created {
                project: "a".into(),
                incus_project: "repoman".into(),
                image: "img".into(),
                profiles: vec!["default".into()],
                devices: vec!["repo".into()],
                repo_path: "/r/a".into(),
                mount_path: "/home/u/a".into(),
                uid: 1000,
                gid: 1000,
                started: true,
            }),
            SandboxEvent::CreateRolledBack(CreateRolledBack {
                project: "a".into(),
                incus_project: "repoman".into(),
                step: "start".into(),
                error: "boom".into(),
                undone: vec![Undone {
                    action: "deleted the container `a`".into(),
                    ok: true,
                }],
            }),
            SandboxEvent::Started(lifecycle(Some("exec/shell"))),
            SandboxEvent::Stopped(lifecycle(None)),
            SandboxEvent::Restarted(lifecycle(None)),
            SandboxEvent::Updated(Updated {
                project: "a".into(),
                changes: vec![Change::SetProfiles {
                    from: vec!["default".into()],
                    to: vec!["default".into(), "x".into()],
                }],
            }),
            SandboxEvent::Rebuilt(Rebuilt {
                project: "a".into(),
                from_image: None,
                image: "img".into(),
            }),
            SandboxEvent::Repaired(Repaired {
                project: "a".into(),
                drift: "orphan".into(),
                action: "adopt".into(),
                detail: json!({"repo": "a"}),
            }),
            SandboxEvent::Removed(Removed {
                project: "a".into(),
                incus_project: "repoman".into(),
                repo_path: Some("/r/a".into()),
            }),
        ]
    }

    #[test]
    fn every_type_has_exactly_one_schema_and_one_variant() {
        let schemas = schemas();
        let applies: Vec<&str> = schemas.iter().map(|s| s.applies_to.as_str()).collect();
        assert_eq!(applies, SandboxEvent::TYPES);
        let written: Vec<&str> = samples().iter().map(SandboxEvent::event_type).collect();
        assert_eq!(written, SandboxEvent::TYPES);
    }

    #[test]
    fn every_variant_validates_against_its_schema_and_is_accepted_on_append() {
        let home = tempfile::tempdir().unwrap();
        let state = state(home.path());
        register_schemas();
        for ev in samples() {
            let id = format!("event.{}/v1", ev.event_type());
            repoman_state::schemas::validate(&id, &ev.data(), ev.event_type())
                .unwrap_or_else(|e| panic!("{}: {e}", ev.event_type()));
            let object: ObjectId = ev.to_new_event().object.parse().unwrap();
            assert_eq!(object, ev.object());
            state.append(ev.to_new_event()).unwrap();
        }
    }

    #[test]
    fn started_has_one_shape_whoever_starts() {
        let by_command = SandboxEvent::Started(lifecycle(None)).data();
        let by_exec = SandboxEvent::Started(lifecycle(Some("exec/shell"))).data();
        for key in ["project", "from", "force"] {
            assert!(by_command.get(key).is_some() && by_exec.get(key).is_some());
        }
    }

    #[test]
    fn schemas_refuse_malformed_data() {
        let home = tempfile::tempdir().unwrap();
        let state = state(home.path());
        register_schemas();
        let bad = [
            (
                "sandbox.repaired",
                json!({"drift": "sideways", "action": "adopt", "detail": {}}),
            ),
            // The old second shape of sandbox.started (no `from`, no `force`).
            (
                "sandbox.started",
                json!({"project": "a", "reason": "exec/shell"}),
            ),
            (
                "sandbox.stopped",
                json!({"project": "a", "from": "Running", "force": false, "extra": 1}),
            ),
            (
                "project.registered",
                json!({"repo": "a", "container": "yes", "repo_path": "/r"}),
            ),
            (
                "sandbox.setup.applied",
                json!({"incus_project": "p", "steps": [{"step": "format_disk"}], "registry": [], "registry_written": false}),
            ),
            (
                "sandbox.updated",
                json!({"project": "a", "changes": [{"kind": "image", "to": "x"}]}),
            ),
        ];
        for (ty, data) in bad {
            let r = state.append(NewEvent::new(ty, "sandbox:a", data));
            assert!(
                matches!(r, Err(StateError::SchemaViolation { .. })),
                "{ty}: {r:?}"
            );
        }
    }
}
