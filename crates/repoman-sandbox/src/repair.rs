//! Changing existing sandboxes: re-applying the desired state (`update`, config-drift repair),
//! repairs of missing and orphan sandboxes (`status --repair`), lifecycle actions and removal.
//!
//! Each function does one Incus/registry change and returns the event to record; the command
//! records it (after the policy decision it took before calling). Removal never touches the repo
//! directory unless asked and never touches the backup.

use std::path::Path;
use std::time::Duration;

use repoman_core::registry::{ProjectEntry, RegistryFile};
use repoman_core::{ProjectName, RepoDirName};
use repoman_incus::{Incus, IncusError, Instance, ProjectScope};
use repoman_state::NewEvent;
use serde::Serialize;
use serde_json::json;

use super::desired::{Desired, TAG_REPO};
use super::drift::Change;
use super::error::SandboxError;
use super::incus_ext;

const LOCK: Option<Duration> = Some(Duration::from_secs(10));

/// What to do about a missing sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingAction {
    /// Create the container again from the registry and `.repoman.toml`.
    Recreate,
    /// Remove the project from the registry (the repo and the backup stay).
    Forget,
    /// Leave it.
    Skip,
}

/// What to do about an orphan container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanAction {
    /// Register it as a project (repo dirname from its `user.repoman.repo` tag, else its name).
    Adopt,
    /// Stop and delete the container.
    Destroy,
    /// Leave it.
    Skip,
}

/// Re-apply profiles, devices and managed config (not the image). Returns the event.
pub fn reapply(
    incus: &Incus,
    desired: &Desired,
    changes: &[Change],
) -> Result<NewEvent, SandboxError> {
    incus_ext::apply_desired(
        incus,
        &desired.incus_project,
        &desired.name,
        &desired.profiles,
        &desired.devices,
        &desired.config,
        false,
    )?;
    Ok(NewEvent::new(
        "sandbox.updated",
        format!("sandbox:{}", desired.name),
        json!({
            "project": desired.name,
            "changes": changes.iter().filter(|c| c.reapplicable()).collect::<Vec<_>>(),
        }),
    ))
}

/// Rebuild the container from the desired image (its root filesystem is replaced; the repo and
/// extra mounts are bind mounts and are not touched), re-apply the rest, and restore its
/// running state. Returns the event.
pub fn rebuild(
    incus: &Incus,
    scope: &ProjectScope,
    desired: &Desired,
    was_running: bool,
    from: Option<&str>,
) -> Result<NewEvent, SandboxError> {
    if was_running {
        scope.stop(&desired.name, true)?;
    }
    incus_ext::rebuild(
        incus,
        &desired.incus_project,
        &desired.name,
        &desired.image_source()?,
    )?;
    incus_ext::apply_desired(
        incus,
        &desired.incus_project,
        &desired.name,
        &desired.profiles,
        &desired.devices,
        &desired.config,
        true,
    )?;
    if was_running {
        scope.start(&desired.name)?;
    }
    Ok(NewEvent::new(
        "sandbox.rebuilt",
        format!("sandbox:{}", desired.name),
        json!({"project": desired.name, "from_image": from, "image": desired.image}),
    ))
}

/// Stop (forcefully) and delete an instance; a missing one is fine.
pub fn destroy_instance(scope: &ProjectScope, name: &str) -> Result<(), SandboxError> {
    match scope.find_instance(name)? {
        None => return Ok(()),
        Some(i) if i.status != "Stopped" => match scope.stop(name, true) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        },
        Some(_) => {}
    }
    match scope.delete_instance(name) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Remove a project from the registry.
pub fn forget(registry: &Path, name: &str) -> Result<bool, SandboxError> {
    let (removed, _) = RegistryFile::edit(registry, LOCK, |f| f.remove_project(name))?;
    Ok(removed)
}

/// Register an orphan instance. The repo dirname comes from the instance's `user.repoman.repo`
/// tag when it lies directly under `local_repos`, else the instance name.
pub fn adopt(
    registry: &Path,
    local_repos: Option<&Path>,
    inst: &Instance,
    now: String,
) -> Result<ProjectEntry, SandboxError> {
    let name = ProjectName::parse(&inst.name)?;
    let tagged = inst.config.get(&format!("user.{TAG_REPO}")).map(Path::new);
    let dirname = tagged
        .filter(|p| local_repos.is_some_and(|l| p.parent() == Some(l)))
        .and_then(|p| p.file_name())
        .and_then(|f| f.to_str())
        .unwrap_or(&inst.name);
    let repo = RepoDirName::parse(dirname)?;
    let entry = ProjectEntry {
        name,
        repo,
        container: true,
        image: None,
        profiles: Vec::new(),
        created_at: Some(now),
        last_sync: None,
    };
    let e = entry.clone();
    RegistryFile::edit(registry, LOCK, |f| {
        if f.registry.project(e.name.as_str()).is_some() {
            f.set_project_container(e.name.as_str(), true).map(|_| ())
        } else {
            f.add_project(&e)
        }
    })?;
    Ok(entry)
}

/// Start / stop / restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Start,
    Stop,
    Restart,
}

impl Lifecycle {
    pub fn verb(self) -> &'static str {
        match self {
            Lifecycle::Start => "start",
            Lifecycle::Stop => "stop",
            Lifecycle::Restart => "restart",
        }
    }

    /// The event type recorded after the action.
    pub fn event(self) -> &'static str {
        match self {
            Lifecycle::Start => "sandbox.started",
            Lifecycle::Stop => "sandbox.stopped",
            Lifecycle::Restart => "sandbox.restarted",
        }
    }

    /// Whether the action would change anything for an instance in `status`.
    pub fn needed(self, status: &str) -> bool {
        match self {
            Lifecycle::Start => status != "Running",
            Lifecycle::Stop => status != "Stopped",
            Lifecycle::Restart => true,
        }
    }

    /// Run it. Restarting a stopped instance starts it.
    pub fn run(
        self,
        scope: &ProjectScope,
        name: &str,
        status: &str,
        force: bool,
    ) -> Result<(), IncusError> {
        match self {
            Lifecycle::Start => scope.start(name),
            Lifecycle::Stop => scope.stop(name, force),
            Lifecycle::Restart if status != "Running" => scope.start(name),
            Lifecycle::Restart => scope.restart(name, force),
        }
    }
}
