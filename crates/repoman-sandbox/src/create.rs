//! Creating a sandbox (`repoman new`, and "recreate" repairs), with rollback.
//!
//! Steps, in order: create the repo directory (only when asked), create the instance, start it,
//! register the project. If any step fails, every earlier step is undone in reverse order (the
//! instance is force-stopped and deleted, a registry entry this run added is removed, a repo
//! directory this run created is removed while still empty), and a `sandbox.create.rolled_back`
//! event records the failed step, the error and what was undone. The repo's contents are never
//! touched.
//!
//! `REPOMAN_TEST_FAIL_AFTER=<step>` (tests only, listed in core's `ENV_VARS`) fails the run right
//! after the named step (`mkdir`, `create`, `start`, `register`), so rollback is tested against
//! the real daemon.

use std::path::PathBuf;
use std::time::Duration;

use repoman_core::Env;
use repoman_core::registry::{ProjectEntry, RegistryFile};
use repoman_incus::{InstanceSpec, ProjectScope};
use repoman_state::{NewEvent, State};
use serde::Serialize;
use serde_json::json;

use super::desired::Desired;
use super::error::SandboxError;
use super::estate::Progress;

/// What `new` will do, shown before it runs (and as the `--dry-run` output).
#[derive(Debug, Clone, Serialize)]
pub struct CreatePlan {
    pub name: String,
    pub incus_project: String,
    /// Create `<local_repos>/<dirname>` first.
    pub create_repo_dir: bool,
    /// Create the instance (false with `--no-container`).
    pub create_instance: bool,
    pub start: bool,
    /// Add a `[[project]]` entry (false when the project is registered `--no-container` and
    /// only its `container` flag changes).
    pub register: bool,
    pub entry: ProjectEntry,
    pub repo_path: PathBuf,
    pub desired: Option<Desired>,
    /// The estate id the sandbox is tagged with; recorded in the registry if it has none yet.
    pub estate_id: String,
    /// The `[[project]] image` before this run (restored by a rollback when `register` is false).
    #[serde(skip)]
    pub previous_image: Option<String>,
    /// Who owns a repo directory this plan creates (the host user).
    #[serde(skip)]
    pub owner: repoman_core::identity::HostUser,
}

impl CreatePlan {
    /// The plan as lines for a terminal.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.create_repo_dir {
            out.push(format!("create directory {}", self.repo_path.display()));
        }
        if let Some(d) = self.desired.as_ref().filter(|_| self.create_instance) {
            out.push(format!(
                "create container `{}` in Incus project `{}` from image `{}`",
                d.name, d.incus_project, d.image
            ));
            out.push(format!("  profiles: {}", d.profiles.join(", ")));
            for (name, dev) in &d.devices {
                out.push(format!(
                    "  device {name}: {}",
                    super::drift::fmt_device(dev)
                ));
            }
            for (k, v) in &d.config {
                out.push(format!("  config {k}={v}"));
            }
            out.push(format!(
                "  shell/exec as uid {} gid {} in {}",
                d.uid, d.gid, d.mount_path
            ));
            if self.start {
                out.push(format!("start `{}`", d.name));
            }
        }
        if self.register {
            out.push(format!(
                "register project `{}` (repo `{}`{}) in repoman.toml",
                self.name,
                self.entry.repo,
                if self.entry.container {
                    ""
                } else {
                    ", no container"
                }
            ));
        } else {
            out.push(format!(
                "mark project `{}` as having a sandbox in repoman.toml",
                self.name
            ));
        }
        out
    }
}

/// The instance spec for a desired state.
pub fn instance_spec(d: &Desired) -> Result<InstanceSpec, SandboxError> {
    let mut spec = InstanceSpec::new(&d.name, d.image_source()?)
        .description(format!("repoman sandbox for {}", d.repo_path.display()));
    for p in &d.profiles {
        spec = spec.profile(p.clone());
    }
    for (k, v) in &d.config {
        spec = spec.config(k.clone(), v);
    }
    for (name, dev) in &d.devices {
        spec = spec.device(name.clone(), dev.clone());
    }
    Ok(spec)
}

/// Everything [`execute`] needs besides the plan.
#[derive(Debug)]
pub struct CreateCtx<'a> {
    pub scope: &'a ProjectScope,
    pub registry_path: &'a std::path::Path,
    pub state: &'a State,
    pub env: &'a Env,
    pub cancel: &'a repoman_core::Cancel,
}

#[derive(Debug, Default)]
struct Done {
    repo_dir: Option<PathBuf>,
    instance: bool,
    registered: bool,
    container_flag_set: bool,
}

/// Run the plan; on failure undo what was done and record why.
pub fn execute(
    plan: &CreatePlan,
    ctx: &CreateCtx<'_>,
    progress: &dyn Progress,
) -> Result<(), SandboxError> {
    let mut done = Done::default();
    match run_steps(plan, ctx, progress, &mut done) {
        Ok(()) => Ok(()),
        Err((step, err)) => {
            progress.step(&format!("step `{step}` failed; rolling back"));
            let undone = rollback(plan, ctx, &done);
            let cause = err.to_string();
            let ev = NewEvent::new(
                "sandbox.create.rolled_back",
                format!("sandbox:{}", plan.name),
                json!({
                    "project": plan.name,
                    "incus_project": plan.incus_project,
                    "step": step,
                    "error": cause,
                    "undone": undone.iter().map(|(what, ok)| json!({"action": what, "ok": ok})).collect::<Vec<_>>(),
                }),
            );
            if let Err(e) = ctx.state.append(ev) {
                tracing::warn!(error = %e, "could not record the rollback event");
            }
            if matches!(err, SandboxError::Interrupted) {
                return Err(err);
            }
            let failed: Vec<&str> = undone
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(w, _)| w.as_str())
                .collect();
            let summary = if undone.is_empty() {
                "nothing had been changed".to_owned()
            } else if failed.is_empty() {
                format!(
                    "rolled back: {}",
                    undone
                        .iter()
                        .map(|(w, _)| w.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("rollback INCOMPLETE, check by hand: {}", failed.join(", "))
            };
            Err(SandboxError::RolledBack {
                name: plan.name.clone(),
                step: step.to_owned(),
                cause,
                undone: summary,
            })
        }
    }
}

/// After each step: stop (and roll back) on Ctrl-C, or on the test hook naming this step.
fn fail_after(ctx: &CreateCtx<'_>, step: &str) -> Result<(), SandboxError> {
    if ctx.cancel.is_cancelled() {
        return Err(SandboxError::Interrupted);
    }
    if ctx.env.get("REPOMAN_TEST_FAIL_AFTER") == Some(step) {
        return Err(SandboxError::Injected(step.to_owned()));
    }
    Ok(())
}

fn run_steps(
    plan: &CreatePlan,
    ctx: &CreateCtx<'_>,
    progress: &dyn Progress,
    done: &mut Done,
) -> Result<(), (&'static str, SandboxError)> {
    if plan.create_repo_dir {
        progress.step(&format!("creating {}", plan.repo_path.display()));
        super::estate::make_dir_for(&plan.repo_path, &plan.owner).map_err(|e| ("mkdir", e))?;
        done.repo_dir = Some(plan.repo_path.clone());
        fail_after(ctx, "mkdir").map_err(|e| ("mkdir", e))?;
    }
    if let Some(d) = plan.desired.as_ref().filter(|_| plan.create_instance) {
        progress.step(&format!(
            "creating container `{}` from `{}`",
            d.name, d.image
        ));
        let spec = instance_spec(d).map_err(|e| ("create", e))?;
        // Download of a remote image may take a while; local images take about a second.
        let scope = ctx.scope.with_operation_timeout(Duration::from_secs(600));
        match scope.create_instance(&spec) {
            Ok(_) => done.instance = true,
            Err(e) => {
                // A failed create may still have left the instance record behind.
                if matches!(ctx.scope.find_instance(&d.name), Ok(Some(_))) {
                    done.instance = true;
                }
                return Err(("create", e.into()));
            }
        }
        fail_after(ctx, "create").map_err(|e| ("create", e))?;
        if plan.start {
            progress.step(&format!("starting `{}`", d.name));
            ctx.scope.start(&d.name).map_err(|e| ("start", e.into()))?;
            fail_after(ctx, "start").map_err(|e| ("start", e))?;
        }
    }
    progress.step("registering the project");
    let entry = plan.entry.clone();
    let register = plan.register;
    let name = plan.name.clone();
    let estate_id = plan.estate_id.clone();
    RegistryFile::edit(ctx.registry_path, Some(Duration::from_secs(10)), |f| {
        if register {
            f.ensure_estate_id(|| estate_id.clone());
            f.add_project(&entry)
        } else {
            f.set_project_container(&name, true)?;
            f.set_project_field(&name, "image", entry.image.as_deref())
                .map(|_| ())
        }
    })
    .map_err(|e| ("register", e.into()))?;
    if register {
        done.registered = true;
    } else {
        done.container_flag_set = true;
    }
    fail_after(ctx, "register").map_err(|e| ("register", e))?;

    let mut events = Vec::new();
    if register {
        events.push(NewEvent::new(
            "project.registered",
            format!("project:{}", plan.name),
            json!({"repo": plan.entry.repo.as_str(), "repo_path": plan.repo_path, "container": plan.entry.container}),
        ));
    }
    if let Some(d) = plan.desired.as_ref().filter(|_| plan.create_instance) {
        events.push(NewEvent::new(
            "sandbox.created",
            format!("sandbox:{}", plan.name),
            json!({
                "project": plan.name,
                "incus_project": d.incus_project,
                "image": d.image,
                "profiles": d.profiles,
                "devices": d.devices.keys().collect::<Vec<_>>(),
                "repo_path": d.repo_path,
                "mount_path": d.mount_path,
                "uid": d.uid,
                "gid": d.gid,
                "started": plan.start,
            }),
        ));
    }
    ctx.state
        .append_batch(events)
        .map_err(|e| ("record", e.into()))?;
    Ok(())
}

fn rollback(plan: &CreatePlan, ctx: &CreateCtx<'_>, done: &Done) -> Vec<(String, bool)> {
    let mut undone = Vec::new();
    if done.registered || done.container_flag_set {
        let name = plan.name.clone();
        let registered = done.registered;
        let previous_image = plan.previous_image.clone();
        let ok = RegistryFile::edit(ctx.registry_path, Some(Duration::from_secs(10)), |f| {
            if registered {
                f.remove_project(&name).map(|_| ())
            } else {
                f.set_project_container(&name, false)?;
                f.set_project_field(&name, "image", previous_image.as_deref())
                    .map(|_| ())
            }
        })
        .is_ok();
        undone.push((
            if registered {
                "removed the registry entry".to_owned()
            } else {
                "restored container = false in the registry".to_owned()
            },
            ok,
        ));
    }
    if done.instance {
        let _ = ctx.scope.stop(&plan.name, true);
        let ok = match ctx.scope.delete_instance(&plan.name) {
            Ok(()) => true,
            Err(e) => e.is_not_found(),
        };
        undone.push((format!("deleted the container `{}`", plan.name), ok));
    }
    if let Some(dir) = &done.repo_dir {
        // Only an empty directory is removed: nothing in it can be lost.
        let ok = std::fs::remove_dir(dir).is_ok();
        undone.push((format!("removed the empty directory {}", dir.display()), ok));
    }
    undone
}
