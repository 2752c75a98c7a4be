//! Changing existing sandboxes: re-applying the desired state (`update`, config-drift repair),
//! rebuilding, and the repairs of `status --repair` ([`apply_repair`]: recreate or forget a
//! missing sandbox, adopt or destroy an orphan, re-apply drifted config).
//!
//! Removal and the repairs never touch the repo directory or the backup. Every change that
//! records an event takes the [`Approval`] of the policy gate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use repoman_core::registry::{ProjectEntry, RegistryFile};
use repoman_core::{ObjectId, Progress, ProjectName, RepoDirName};
use repoman_incus::{
    IMAGE_OPERATION_TIMEOUT, IncusError, Instance, ProgressReporter, ProjectScope,
};
use repoman_state::State;
use serde::Serialize;
use serde_json::{Value, json};

use super::desired::{Desired, TAG_IMAGE, TAG_REPO, is_managed_key};
use super::drift::{Change, Drift};
use super::error::SandboxError;
use super::events::{self, SandboxEvent};
use super::session::{Approval, Session};

const LOCK: Option<Duration> = Some(Duration::from_secs(10));

/// What `status --repair` can do about one drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairAction {
    /// Missing: create the container again from the registry and `.repoman.toml`.
    Recreate,
    /// Missing: remove the project from the registry (the repo and the backup stay).
    Forget,
    /// Orphan: register it as a project (repo dirname from its `user.repoman.repo` tag, else its
    /// name).
    Adopt,
    /// Orphan: stop and delete the container.
    Destroy,
    /// Config drift: re-apply profiles, devices and managed config (not the image).
    Reapply,
}

impl RepairAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairAction::Recreate => "recreate",
            RepairAction::Forget => "forget",
            RepairAction::Adopt => "adopt",
            RepairAction::Destroy => "destroy",
            RepairAction::Reapply => "reapply",
        }
    }

    /// The actions that apply to `drift`, the non-destructive default first (empty: nothing
    /// can be repaired, e.g. only the image differs, or the desired state is unknown).
    pub fn choices(drift: &Drift) -> &'static [RepairAction] {
        match drift {
            Drift::Missing { .. } => &[RepairAction::Recreate, RepairAction::Forget],
            Drift::Orphan { .. } => &[RepairAction::Adopt, RepairAction::Destroy],
            Drift::Config { changes, .. } if changes.iter().any(Change::reapplicable) => {
                &[RepairAction::Reapply]
            }
            _ => &[],
        }
    }

    /// Parse a name from [`RepairAction::as_str`].
    pub fn parse(text: &str) -> Option<RepairAction> {
        [
            RepairAction::Recreate,
            RepairAction::Forget,
            RepairAction::Adopt,
            RepairAction::Destroy,
            RepairAction::Reapply,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// One planned or applied repair, as `status --json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub name: String,
    pub drift: &'static str,
    pub action: String,
    pub applied: bool,
    pub error: Option<String>,
}

/// The operation the policy gate decides on for a repair (`sandbox.repair`).
pub fn repair_operation(drift: &Drift) -> repoman_state::Operation {
    super::session::op("sandbox.repair", drift.name())
}

/// Apply one repair and record `sandbox.repaired`. Returns what was done (the event's
/// `detail`).
pub fn apply_repair(
    session: &Session,
    drift: &Drift,
    action: RepairAction,
    ctx: &RepairCtx<'_>,
    approval: Approval,
) -> Result<Value, SandboxError> {
    approval.check("sandbox.repair", &ObjectId::sandbox(drift.name()))?;
    let detail = repair(session, drift, action, ctx)?;
    ctx.state.append(
        SandboxEvent::Repaired(events::Repaired {
            project: drift.name().to_owned(),
            drift: drift.kind().to_owned(),
            action: action.as_str().to_owned(),
            detail: detail.clone(),
        })
        .into(),
    )?;
    Ok(detail)
}

/// What [`apply_repair`] needs besides the session.
pub struct RepairCtx<'a> {
    pub registry_path: &'a Path,
    pub state: &'a State,
    /// The `created_at` of an adopted project.
    pub now: String,
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for RepairCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepairCtx")
            .field("registry_path", &self.registry_path)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

fn repair(
    s: &Session,
    d: &Drift,
    action: RepairAction,
    ctx: &RepairCtx<'_>,
) -> Result<Value, SandboxError> {
    let scope = &s.observed.scope;
    match (d, action) {
        (Drift::Missing { name }, RepairAction::Recreate) => {
            let entry = s.estate.entry(name)?;
            let desired = s.estate.desired(entry, None)?;
            let spec = super::create::instance_spec(&desired)?;
            ctx.progress.step(&format!(
                "creating container `{name}` from `{}`",
                desired.image
            ));
            scope
                .with_reporter(ProgressReporter::new(ctx.progress.clone()))
                .with_operation_timeout(IMAGE_OPERATION_TIMEOUT)
                .create_instance(&spec)?;
            let allowed =
                crate::hardening::Allowed::for_sandbox(&s.estate.file.registry.defaults, &desired);
            if let Err(e) =
                crate::hardening::start(scope, name, &allowed, crate::hardening::StartMode::Start)
            {
                // Leave nothing half-made behind: the container that cannot start is removed.
                let _ = destroy_instance(scope, name);
                return Err(e);
            }
            Ok(json!({"image": desired.image}))
        }
        (Drift::Missing { name }, RepairAction::Forget) => {
            forget(ctx.registry_path, name)?;
            Ok(json!({}))
        }
        (Drift::Orphan { name, .. }, RepairAction::Adopt) => {
            let inst = s
                .observed
                .instance(name)
                .ok_or_else(|| SandboxError::Missing {
                    name: name.clone(),
                    project: s.estate.incus_project().to_owned(),
                })?;
            let local = s
                .estate
                .settings
                .local_repos
                .as_ref()
                .map(|l| l.value.as_path());
            let entry = adopt(ctx.registry_path, local, inst, ctx.now.clone())?;
            Ok(json!({"repo": entry.repo.as_str()}))
        }
        (Drift::Orphan { name, .. }, RepairAction::Destroy) => {
            destroy_instance(scope, name)?;
            Ok(json!({}))
        }
        (Drift::Config { name, changes, .. }, RepairAction::Reapply) => {
            let entry = s.estate.entry(name)?;
            let desired = s.estate.desired(entry, None)?;
            let allowed =
                crate::hardening::Allowed::for_sandbox(&s.estate.file.registry.defaults, &desired);
            let running = s.observed.instance(name).is_some_and(Instance::is_running);
            let event = reapply(scope, &desired, changes)?;
            let restarted = restart_if_needed(scope, &desired, changes, running, &allowed)?;
            let mut detail = event.data();
            if restarted && let Some(obj) = detail.as_object_mut() {
                obj.insert("restarted".to_owned(), Value::Bool(true));
            }
            Ok(detail)
        }
        _ => Err(SandboxError::Invalid(format!(
            "no repair `{}` for {}",
            action.as_str(),
            d.summary()
        ))),
    }
}

/// Bring an instance to its desired profiles, own devices and managed config keys
/// (`user.repoman.*`, `environment.*`) in one etag-checked write, keeping every other config
/// key and field as Incus stored it. The image tag changes only with `set_image_tag` (a rebuild).
fn apply_desired(
    scope: &ProjectScope,
    desired: &Desired,
    set_image_tag: bool,
) -> Result<(), IncusError> {
    let image_key = format!("user.{TAG_IMAGE}");
    scope.edit_instance(&desired.name, |i| {
        i.config
            .retain(|k, _| !is_managed_key(k) || (*k == image_key && !set_image_tag));
        i.config.extend(
            desired
                .config
                .iter()
                .filter(|(k, _)| set_image_tag || **k != image_key)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        i.profiles = desired.profiles.clone();
        i.devices = desired.devices.clone();
        Ok(())
    })
}

/// Re-apply profiles, devices and managed config (not the image). Returns the event (not yet
/// recorded: `update` records it, a repair records `sandbox.repaired` with it as detail).
pub fn reapply(
    scope: &ProjectScope,
    desired: &Desired,
    changes: &[Change],
) -> Result<SandboxEvent, SandboxError> {
    crate::mount_policy::recheck_desired(desired)?;
    apply_desired(scope, desired, false)?;
    Ok(SandboxEvent::Updated(events::Updated {
        project: desired.name.clone(),
        changes: changes
            .iter()
            .filter(|c| c.reapplicable())
            .cloned()
            .collect(),
    }))
}

/// Whether applying `changes` to a running container needs a restart to take effect:
/// `raw.idmap` and `security.guestapi` are read when the container starts, so a migrated
/// sandbox keeps its old mapping (and `/dev/incus`) until then.
pub fn needs_restart(changes: &[Change], running: bool) -> bool {
    running
        && changes.iter().any(|c| {
            matches!(c, Change::SetConfig { key, .. }
                if key == super::desired::RAW_IDMAP || key == crate::hardening::GUEST_API)
        })
}

/// Restart a running container after [`reapply`] when [`needs_restart`] says so (through the
/// pre-start check). Returns whether it restarted.
pub fn restart_if_needed(
    scope: &ProjectScope,
    desired: &Desired,
    changes: &[Change],
    running: bool,
    allowed: &crate::hardening::Allowed,
) -> Result<bool, SandboxError> {
    if !needs_restart(changes, running) {
        return Ok(false);
    }
    crate::hardening::start(
        scope,
        &desired.name,
        allowed,
        crate::hardening::StartMode::Restart { force: true },
    )?;
    Ok(true)
}

/// Rebuild the container from the desired image (its root filesystem is replaced; the repo and
/// extra mounts are bind mounts and are not touched), re-apply the rest, and restore its
/// running state. Returns the event.
pub fn rebuild(
    scope: &ProjectScope,
    desired: &Desired,
    was_running: bool,
    from: Option<&str>,
    allowed: &crate::hardening::Allowed,
) -> Result<SandboxEvent, SandboxError> {
    crate::mount_policy::recheck_desired(desired)?;
    if was_running {
        scope.stop(&desired.name, true)?;
    }
    scope.rebuild_instance(&desired.name, &desired.image_source()?)?;
    apply_desired(scope, desired, true)?;
    if was_running {
        crate::hardening::start(
            scope,
            &desired.name,
            allowed,
            crate::hardening::StartMode::Start,
        )?;
    }
    Ok(SandboxEvent::Rebuilt(events::Rebuilt {
        project: desired.name.clone(),
        from_image: from.map(str::to_owned),
        image: desired.image.clone(),
    }))
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
        sync_every: None,
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
