//! Creating a sandbox (`repoman new`, and "recreate" repairs), with rollback.
//!
//! Planning is two calls so a face can show drift warnings in between: [`draft`] resolves the
//! request against the registry and the repo's `.repoman.toml` (no Incus), then [`plan_create`]
//! checks it against the Incus listing of an open [`Session`]. [`execute_create`] applies the
//! plan after the policy gate ([`crate::session::authorize`]).
//!
//! Steps, in order: create the repo directory (only when asked), create the instance, start it
//! (after the pre-start hardening check, [`crate::hardening`]), register the project. If any step fails, every earlier step is undone in reverse order (the
//! instance is force-stopped and deleted, a registry entry this run added is removed, a repo
//! directory this run created is removed while still empty), and a `sandbox.create.rolled_back`
//! event records the failed step, the error and what was undone. The repo's contents are never
//! touched.
//!
//! `REPOMAN_TEST_FAIL_AFTER=<step>` (tests only, listed in core's `ENV_VARS`) fails the run right
//! after the named step (`mkdir`, `create`, `start`, `register`), so rollback is tested against
//! the real daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use repoman_core::registry::{ProjectEntry, RegistryFile};
use repoman_core::{Clock, Env, Progress, ProjectName, RepoDirName};
use repoman_incus::{IMAGE_OPERATION_TIMEOUT, InstanceSpec, ProgressReporter, ProjectScope};
use repoman_state::{NewEvent, Operation, State};
use serde::Serialize;

use super::desired::{self, Desired};
use super::error::SandboxError;
use super::estate::Estate;
use super::events::{self, SandboxEvent};
use super::session::{self, Approval, Session};

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
    /// What the registry allows the sandbox beyond the hardened baseline (checked at start).
    #[serde(skip)]
    pub allowed: crate::hardening::Allowed,
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
    crate::mount_policy::recheck_desired(d)?;
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

/// Everything [`execute_create`] needs besides the plan.
#[derive(Debug)]
pub struct CreateCtx<'a> {
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

/// Run the plan (the approval must be for [`CreatePlan::operation`]); on failure undo what was
/// done and record why. Without a container (`--no-container`) no Incus is needed and
/// `prepared.session` is `None`.
pub fn execute_create(
    prepared: &Prepared,
    ctx: &CreateCtx<'_>,
    approval: Approval,
    progress: Arc<dyn Progress>,
) -> Result<(), SandboxError> {
    let plan = &prepared.plan;
    let op = plan.operation();
    approval.check(&op.name, &repoman_core::ObjectId::sandbox(&plan.name))?;
    let Some(session) = &prepared.session else {
        return register_only(plan, ctx);
    };
    // Image downloads and unpacking report through the same progress.
    let scope = session
        .observed
        .scope
        .with_reporter(ProgressReporter::new(progress.clone()));
    let mut done = Done::default();
    match run_steps(plan, ctx, &scope, &*progress, &mut done) {
        Ok(()) => Ok(()),
        Err((step, err)) => {
            progress.step(&format!("step `{step}` failed; rolling back"));
            let undone = rollback(plan, &scope, ctx, &done);
            let cause = err.to_string();
            let ev = SandboxEvent::CreateRolledBack(events::CreateRolledBack {
                project: plan.name.clone(),
                incus_project: plan.incus_project.clone(),
                step: step.to_owned(),
                error: cause.clone(),
                undone: undone
                    .iter()
                    .map(|(action, ok)| events::Undone {
                        action: action.clone(),
                        ok: *ok,
                    })
                    .collect(),
            });
            if let Err(e) = ctx.state.append(ev.into()) {
                tracing::warn!(error = %e, "could not record the rollback event");
            }
            if matches!(err, SandboxError::Interrupted) {
                return Err(err);
            }
            if let SandboxError::Hardening {
                name,
                project,
                findings,
                ..
            } = err
            {
                // Blocked (exit 3), not failed: the fix is in the configuration, and nothing of
                // the refused sandbox is left behind.
                let left = if undone.iter().all(|(_, ok)| *ok) {
                    "nothing was left behind (the container `new` had created was deleted)"
                } else {
                    "rollback INCOMPLETE, check by hand"
                };
                return Err(SandboxError::Hardening {
                    name,
                    project,
                    findings,
                    note: Some(left.to_owned()),
                });
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
    scope: &ProjectScope,
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
        match scope
            .with_operation_timeout(IMAGE_OPERATION_TIMEOUT)
            .create_instance(&spec)
        {
            Ok(_) => done.instance = true,
            Err(e) => {
                // A failed create may still have left the instance record behind.
                if matches!(scope.find_instance(&d.name), Ok(Some(_))) {
                    done.instance = true;
                }
                return Err(("create", e.into()));
            }
        }
        fail_after(ctx, "create").map_err(|e| ("create", e))?;
        if plan.start {
            progress.step(&format!("starting `{}`", d.name));
            crate::hardening::start(
                scope,
                &d.name,
                &plan.allowed,
                crate::hardening::StartMode::Start,
            )
            .map_err(|e| ("start", e))?;
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

    let mut events: Vec<NewEvent> = Vec::new();
    if register {
        events.push(plan.registered_event().into());
    }
    if let Some(d) = plan.desired.as_ref().filter(|_| plan.create_instance) {
        events.push(
            SandboxEvent::Created(events::Created {
                project: plan.name.clone(),
                incus_project: d.incus_project.clone(),
                image: d.image.clone(),
                profiles: d.profiles.clone(),
                devices: d.devices.keys().cloned().collect(),
                repo_path: d.repo_path.clone(),
                mount_path: d.mount_path.clone(),
                uid: d.uid,
                gid: d.gid,
                started: plan.start,
            })
            .into(),
        );
    }
    ctx.state
        .append_batch(events)
        .map_err(|e| ("record", e.into()))?;
    Ok(())
}

fn rollback(
    plan: &CreatePlan,
    scope: &ProjectScope,
    ctx: &CreateCtx<'_>,
    done: &Done,
) -> Vec<(String, bool)> {
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
        // Cleanup must finish even when Ctrl-C is what stopped the run.
        let _ = scope.stop(&plan.name, true);
        // Right after a failed start Incus may still be tearing the container down and refuse
        // the delete for a moment: retry a few times before calling the rollback incomplete.
        let mut last_err = None;
        let mut ok = false;
        for attempt in 0..10 {
            match scope.delete_instance(&plan.name) {
                Ok(()) => ok = true,
                Err(e) if e.is_not_found() => ok = true,
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "deleting the container failed; retrying");
                    last_err = Some(e.to_string());
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    continue;
                }
            }
            break;
        }
        let what = match (&last_err, ok) {
            (Some(e), false) => format!("deleted the container `{}` ({e})", plan.name),
            _ => format!("deleted the container `{}`", plan.name),
        };
        undone.push((what, ok));
    }
    if let Some(dir) = &done.repo_dir {
        // Only an empty directory is removed: nothing in it can be lost.
        let ok = std::fs::remove_dir(dir).is_ok();
        undone.push((format!("removed the empty directory {}", dir.display()), ok));
    }
    undone
}

/// What `new` was asked for (flags and wizard answers).
#[derive(Debug, Clone, Default)]
pub struct NewRequest {
    /// Project name, also the container name.
    pub name: String,
    /// Repo directory name under `local_repos` (default: the name).
    pub repo: Option<String>,
    /// `--image`, recorded for the project.
    pub image: Option<String>,
    /// `--profile`s, recorded for a new project.
    pub profiles: Vec<String>,
    /// Start the container once created.
    pub start: bool,
    /// Create a container (`false`: `--no-container`, only register the project).
    pub container: bool,
}

/// The first half of planning [`plan_create`]: the request resolved against the registry and
/// the repo's `.repoman.toml`, without Incus.
#[derive(Debug)]
pub struct Draft {
    estate: Estate,
    plan: CreatePlan,
}

impl Draft {
    /// Whether the plan needs Incus (a [`Session`] for [`plan_create`]).
    pub fn needs_incus(&self) -> bool {
        self.plan.create_instance
    }

    /// The project name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The estate the draft was made from (registry and settings).
    pub fn estate(&self) -> &Estate {
        &self.estate
    }
}

/// A plan ready for the policy gate and [`execute_create`].
#[derive(Debug)]
pub struct Prepared {
    pub plan: CreatePlan,
    /// The Incus side (`None` with `--no-container`).
    pub session: Option<Session>,
    /// The policy rules of the registry the plan was made from.
    pub rules: Vec<repoman_core::registry::PolicyRule>,
}

/// Resolve a `new` request: name and repo dirname validated, the existing registration (if any)
/// taken into account, the desired state computed and its extra mount sources checked. Reads
/// files only. The sandbox is tagged with the estate id; a registry without one gets a new id
/// (recorded on registration).
pub fn draft(mut estate: Estate, req: &NewRequest, clock: &Clock) -> Result<Draft, SandboxError> {
    let estate_id = match &estate.file.registry.estate_id {
        Some(id) => id.clone(),
        None => clock.new_id().to_string(),
    };
    estate.file.registry.estate_id = Some(estate_id.clone());
    let name = ProjectName::parse(&req.name)?;
    let existing = estate.file.registry.project(name.as_str()).cloned();
    let repo = match (&req.repo, &existing) {
        (Some(r), Some(e)) if r != e.repo.as_str() => {
            return Err(SandboxError::Invalid(format!(
                "project `{name}` is registered with repo `{}`, not `{r}`",
                e.repo
            )));
        }
        (Some(r), _) => RepoDirName::parse(r)?,
        (None, Some(e)) => e.repo.clone(),
        (None, None) => RepoDirName::parse(name.as_str())?,
    };
    if let Some(e) = &existing
        && (!req.container || e.container)
    {
        return Err(SandboxError::AlreadyRegistered {
            name: name.to_string(),
            with_sandbox: e.container,
        });
    }
    let repo_path = desired::repo_path(&estate.settings, repo.as_str())?;
    let create_repo_dir = !repo_path.exists();
    if existing.is_some() && !req.profiles.is_empty() {
        return Err(SandboxError::ProfilesOfExisting(name.to_string()));
    }
    let entry = match &existing {
        // Adding a sandbox to a project registered --no-container: --image is recorded as for a
        // new project (the register step writes it), so later drift checks agree.
        Some(e) => ProjectEntry {
            image: req.image.clone().or_else(|| e.image.clone()),
            ..e.clone()
        },
        None => ProjectEntry {
            name: name.clone(),
            repo: repo.clone(),
            container: req.container,
            image: req.image.clone(),
            profiles: req.profiles.clone(),
            created_at: Some(clock.now_rfc3339()),
            last_sync: None,
            sync_every: None,
        },
    };
    let desired = if req.container {
        let d = estate.desired(&entry, None)?;
        for src in d.mount_sources.iter().skip(1) {
            if !src.exists() {
                return Err(SandboxError::Invalid(format!(
                    "mount source {} (from {}) does not exist",
                    src.display(),
                    repo_path
                        .join(repoman_core::registry::OVERRIDES_FILE)
                        .display()
                )));
            }
        }
        Some(d)
    } else {
        None
    };
    let allowed = desired
        .as_ref()
        .map(|d| crate::hardening::Allowed::for_sandbox(&estate.file.registry.defaults, d))
        .unwrap_or_default();
    let plan = CreatePlan {
        name: name.to_string(),
        incus_project: estate.incus_project().to_owned(),
        create_repo_dir,
        create_instance: req.container,
        start: req.start,
        register: existing.is_none(),
        entry: ProjectEntry {
            container: req.container,
            ..entry
        },
        repo_path: repo_path.clone(),
        desired,
        previous_image: existing.as_ref().and_then(|e| e.image.clone()),
        allowed,
        estate_id,
        owner: estate.host_user(Some(&repo_path)),
    };
    Ok(Draft { estate, plan })
}

/// Finish planning against Incus: the project must exist and no unregistered container may
/// have the name already. `session` is required when [`Draft::needs_incus`].
pub fn plan_create(draft: Draft, session: Option<Session>) -> Result<Prepared, SandboxError> {
    let Draft { estate, plan } = draft;
    let session = match (plan.create_instance, session) {
        (false, _) => None,
        (true, None) => {
            return Err(SandboxError::Invalid(
                "internal: creating a sandbox needs an Incus session".to_owned(),
            ));
        }
        (true, Some(s)) => {
            s.require_project()?;
            if s.observed.instance(&plan.name).is_some() {
                return Err(SandboxError::OrphanExists {
                    name: plan.name.clone(),
                    project: s.estate.incus_project().to_owned(),
                });
            }
            Some(s)
        }
    };
    Ok(Prepared {
        plan,
        session,
        rules: estate.file.registry.policy.rules.clone(),
    })
}

impl CreatePlan {
    /// The operation the policy gate decides on: `sandbox.create`, or `project.register` without
    /// a container (object `sandbox:NAME` in both cases).
    pub fn operation(&self) -> Operation {
        session::op(
            if self.create_instance {
                "sandbox.create"
            } else {
                "project.register"
            },
            &self.name,
        )
    }

    fn registered_event(&self) -> SandboxEvent {
        SandboxEvent::ProjectRegistered(events::ProjectRegistered {
            project: self.name.clone(),
            repo: self.entry.repo.to_string(),
            repo_path: self.repo_path.clone(),
            container: self.entry.container,
        })
    }
}

/// `--no-container`: registering a project needs no Incus.
fn register_only(plan: &CreatePlan, ctx: &CreateCtx<'_>) -> Result<(), SandboxError> {
    if plan.create_repo_dir {
        super::estate::make_dir_for(&plan.repo_path, &plan.owner)?;
    }
    let entry = plan.entry.clone();
    let undo_dir = |plan: &CreatePlan| {
        if plan.create_repo_dir {
            // Only if still empty: nothing of the user's is ever removed.
            let _ = std::fs::remove_dir(&plan.repo_path);
        }
    };
    if let Err(e) = RegistryFile::edit(ctx.registry_path, Some(Duration::from_secs(10)), |f| {
        f.ensure_estate_id(|| plan.estate_id.clone());
        f.add_project(&entry)
    }) {
        undo_dir(plan);
        return Err(e.into());
    }
    // The registry and the log stay a pair: when the event cannot be recorded (a full or
    // read-only state directory), the registry entry is taken out again.
    let recorded = fail_after(ctx, "register")
        .and_then(|()| Ok(ctx.state.append(plan.registered_event().into())?));
    if let Err(e) = recorded {
        let name = plan.name.clone();
        let _ = RegistryFile::edit(ctx.registry_path, Some(Duration::from_secs(10)), |f| {
            f.remove_project(&name).map(|_| ())
        });
        undo_dir(plan);
        return Err(e);
    }
    Ok(())
}
