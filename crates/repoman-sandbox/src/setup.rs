//! `repoman setup`: the host plan (directories, the Incus project, its default profile, extra
//! profiles, registry defaults) and applying it: [`resolve`] merges the flags with the registry
//! and the environment, [`plan`] works out what differs, [`apply`] changes it after the gate.
//!
//! Idempotent by construction: the plan lists only what differs from what exists, so a second
//! run plans nothing and says so. Nothing existing is ever replaced destructively: a root disk
//! on another pool, or project features that differ, are reported as warnings, not changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use repoman_core::registry::{ProfileDef, RegistryFile};
use repoman_core::settings::Settings;
use repoman_core::{Env, ObjectId, Progress};
use repoman_incus::{DeviceSpec, ImageSource, Incus, IncusError, ProfilePut, ProjectSpec};
use repoman_state::{Operation, State};
use serde::Serialize;

use super::error::SandboxError;
use super::estate::probe_dir;
use super::events::{self, SandboxEvent};
use super::session::Approval;

/// What setup was asked for (flags and wizard answers, already merged with the registry).
#[derive(Debug, Clone, Default)]
pub struct SetupRequest {
    pub local_repos: Option<PathBuf>,
    pub backup_root: Option<PathBuf>,
    pub incus_project: String,
    pub pool: String,
    pub network: Option<String>,
    pub image: Option<String>,
    pub profiles: Vec<String>,
    /// `[[profile]]` definitions from the registry.
    pub profile_defs: Vec<ProfileDef>,
    pub probe_timeout: Duration,
    /// Registry `[defaults]` keys to write: (key, value).
    pub registry_strings: Vec<(&'static str, String)>,
    pub registry_profiles: Option<Vec<String>>,
    /// Who owns directories setup creates (the host user).
    pub owner: Option<repoman_core::identity::HostUser>,
}

/// One step of the setup plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SetupStep {
    CreateDirectory {
        path: PathBuf,
    },
    CreateProject {
        name: String,
        config: BTreeMap<String, String>,
    },
    SetRootDisk {
        project: String,
        pool: String,
    },
    AddNic {
        project: String,
        network: String,
    },
    CreateProfile {
        project: String,
        name: String,
    },
    UpdateProfile {
        project: String,
        name: String,
    },
    SetDefault {
        key: String,
        value: String,
    },
    SetEstateId,
}

impl SetupStep {
    pub fn describe(&self) -> String {
        match self {
            SetupStep::CreateDirectory { path } => format!("create directory {}", path.display()),
            SetupStep::CreateProject { name, config } => format!(
                "create Incus project `{name}` ({})",
                config
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            SetupStep::SetRootDisk { project, pool } => {
                format!("give the `default` profile of `{project}` a root disk on pool `{pool}`")
            }
            SetupStep::AddNic { project, network } => {
                format!("give the `default` profile of `{project}` a NIC on network `{network}`")
            }
            SetupStep::CreateProfile { project, name } => {
                format!("create profile `{name}` in `{project}` (from [[profile]] in repoman.toml)")
            }
            SetupStep::UpdateProfile { project, name } => {
                format!(
                    "update profile `{name}` in `{project}` to match [[profile]] in repoman.toml"
                )
            }
            SetupStep::SetDefault { key, value } => format!("set [defaults] {key} = {value:?}"),
            SetupStep::SetEstateId => "record a new estate id in repoman.toml".to_owned(),
        }
    }
}

/// The plan: steps plus warnings about things setup will not change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetupPlan {
    pub steps: Vec<SetupStep>,
    pub warnings: Vec<String>,
}

fn validate_dir(
    path: &std::path::Path,
    what: &str,
    timeout: Duration,
) -> Result<bool, SandboxError> {
    let err = |message: String| SandboxError::Directory {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_absolute() {
        return Err(err(format!("{what} must be an absolute path")));
    }
    match probe_dir(path.to_path_buf(), timeout) {
        None => Err(err(format!(
            "{what} did not answer within {}s (a hung network mount?)",
            timeout.as_secs_f64()
        ))),
        Some(Ok(())) => {
            // Writability is tested by writing (permission bits do not tell for root, ACLs or
            // read-only mounts); the probe file is removed at once.
            let probe = path.join(format!(".repoman-write-probe-{}", std::process::id()));
            match std::fs::write(&probe, b"") {
                Ok(()) => {
                    let _ = std::fs::remove_file(&probe);
                    Ok(true)
                }
                Err(e) => Err(err(format!("{what} is not writable: {e}"))),
            }
        }
        Some(Err(e)) if !path.exists() => {
            tracing::debug!(error = %e, "directory missing");
            Ok(false)
        }
        Some(Err(e)) => Err(err(format!("{what} is not usable: {e}"))),
    }
}

/// Work out what setup would change. Reads Incus and the file system; changes nothing.
pub fn plan(
    incus: &Incus,
    req: &SetupRequest,
    file: &RegistryFile,
) -> Result<SetupPlan, SandboxError> {
    let mut plan = SetupPlan::default();
    if let Some(dir) = &req.local_repos
        && !validate_dir(dir, "local_repos", req.probe_timeout)?
    {
        plan.steps
            .push(SetupStep::CreateDirectory { path: dir.clone() });
    }
    if let Some(dir) = &req.backup_root
        && !validate_dir(dir, "backup_root", req.probe_timeout)?
    {
        return Err(SandboxError::Directory {
            path: dir.clone(),
            message:
                "backup_root does not exist; mount the backup share (or create the directory) first"
                    .to_owned(),
        });
    }
    if !incus.storage_pool_exists(&req.pool)? {
        return Err(SandboxError::Invalid(format!(
            "the storage pool `{}` does not exist; create it (`incus storage create {} dir`) or pass --pool",
            req.pool, req.pool
        )));
    }
    if let Some(image) = &req.image {
        // Projects made by setup share the default project's images, so a local alias must be
        // there; remote images are fetched by the server when a sandbox is created.
        if let ImageSource::Alias(alias) = ImageSource::parse(image)?
            && let Err(e) = incus.project("default").resolve_image_alias(&alias)
        {
            if e.is_not_found() {
                return Err(SandboxError::Invalid(format!(
                    "image `{image}` is not a local image alias; `incus image list` shows them, or use `images:...`"
                )));
            }
            return Err(e.into());
        }
    }

    let project = &req.incus_project;
    let want_config = BTreeMap::from([
        ("features.images".to_owned(), "false".to_owned()),
        ("features.profiles".to_owned(), "true".to_owned()),
    ]);
    let existing = match incus.get_project(project) {
        Ok(p) => Some(p),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let scope = incus.project(project);
    let default_profile = match &existing {
        None => {
            plan.steps.push(SetupStep::CreateProject {
                name: project.clone(),
                config: want_config.clone(),
            });
            None
        }
        Some(p) => {
            for (k, v) in &want_config {
                let have = p.config.get(k).map(String::as_str).unwrap_or("(unset)");
                if have != v {
                    plan.warnings.push(format!(
                        "Incus project `{project}` has {k}={have}, repoman expects {v}; left unchanged"
                    ));
                }
            }
            Some(scope.get_profile("default")?)
        }
    };
    let devices = default_profile
        .as_ref()
        .map(|p| p.devices.clone())
        .unwrap_or_default();
    match devices.values().find(|d| d.get("path").is_some_and(|p| p == "/") && d.get("type").is_some_and(|t| t == "disk")) {
        None => plan.steps.push(SetupStep::SetRootDisk { project: project.clone(), pool: req.pool.clone() }),
        Some(d) if d.get("pool") != Some(&req.pool) => plan.warnings.push(format!(
            "the `default` profile of `{project}` has its root disk on pool `{}`, not `{}`; left unchanged",
            d.get("pool").map(String::as_str).unwrap_or("?"),
            req.pool
        )),
        Some(_) => {}
    }
    if let Some(net) = &req.network {
        let has_nic = devices
            .values()
            .any(|d| d.get("type").is_some_and(|t| t == "nic"));
        if !has_nic {
            plan.steps.push(SetupStep::AddNic {
                project: project.clone(),
                network: net.clone(),
            });
        }
    }

    let existing_profiles: Vec<repoman_incus::Profile> = if existing.is_some() {
        scope.list_profiles()?
    } else {
        Vec::new()
    };
    for def in &req.profile_defs {
        match existing_profiles.iter().find(|p| p.name == def.name) {
            None => plan.steps.push(SetupStep::CreateProfile {
                project: project.clone(),
                name: def.name.clone(),
            }),
            Some(p)
                if p.config != def.config
                    || p.devices != def.devices
                    || p.description != def.description =>
            {
                plan.steps.push(SetupStep::UpdateProfile {
                    project: project.clone(),
                    name: def.name.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for name in &req.profiles {
        let declared = req.profile_defs.iter().any(|d| &d.name == name);
        let exists = name == "default" || existing_profiles.iter().any(|p| &p.name == name);
        if !declared && !exists {
            return Err(SandboxError::Invalid(format!(
                "profile `{name}` is neither declared in repoman.toml ([[profile]] name = \"{name}\") nor present in the Incus project `{project}`"
            )));
        }
    }

    if file.registry.estate_id.is_none() {
        plan.steps.push(SetupStep::SetEstateId);
    }
    let d = &file.registry.defaults;
    for (key, value) in &req.registry_strings {
        let current = match *key {
            "local_repos" => d.local_repos.as_ref().map(|p| p.display().to_string()),
            "backup_root" => d.backup_root.as_ref().map(|p| p.display().to_string()),
            "incus_project" => d.incus_project.clone(),
            "pool" => d.pool.clone(),
            "network" => d.network.clone(),
            "default_image" => d.default_image.clone(),
            _ => None,
        };
        if current.as_deref() != Some(value.as_str()) {
            plan.steps.push(SetupStep::SetDefault {
                key: (*key).to_owned(),
                value: value.clone(),
            });
        }
    }
    if let Some(list) = &req.registry_profiles
        && &d.profiles != list
    {
        plan.steps.push(SetupStep::SetDefault {
            key: "profiles".to_owned(),
            value: list.join(", "),
        });
    }
    Ok(plan)
}

/// Apply the Incus and directory steps (registry steps are applied by [`apply_registry`]).
fn apply_incus(
    incus: &Incus,
    req: &SetupRequest,
    plan: &SetupPlan,
    progress: &dyn Progress,
) -> Result<Vec<SetupStep>, SandboxError> {
    let mut done = Vec::new();
    let scope = incus.project(&req.incus_project);
    for step in &plan.steps {
        match step {
            SetupStep::CreateDirectory { path } => {
                progress.step(&step.describe());
                match &req.owner {
                    Some(owner) => super::estate::make_dir_for(path, owner)?,
                    None => std::fs::create_dir_all(path).map_err(|e| SandboxError::Directory {
                        path: path.clone(),
                        message: format!("cannot create: {e}"),
                    })?,
                }
            }
            SetupStep::CreateProject { name, config } => {
                progress.step(&step.describe());
                let mut spec = ProjectSpec::new(name).description("repoman sandboxes");
                for (k, v) in config {
                    spec = spec.config(k.clone(), v);
                }
                match incus.create_project(&spec) {
                    Ok(()) | Err(IncusError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            SetupStep::SetRootDisk { pool, .. } => {
                progress.step(&step.describe());
                scope.set_profile_device("default", "root", DeviceSpec::root_disk(pool.clone()))?;
            }
            SetupStep::AddNic { network, .. } => {
                progress.step(&step.describe());
                let nic = BTreeMap::from([
                    ("type".to_owned(), "nic".to_owned()),
                    ("network".to_owned(), network.clone()),
                    ("name".to_owned(), "eth0".to_owned()),
                ]);
                scope.set_profile_device("default", "eth0", nic)?;
            }
            SetupStep::CreateProfile { name, .. } | SetupStep::UpdateProfile { name, .. } => {
                progress.step(&step.describe());
                let def = req
                    .profile_defs
                    .iter()
                    .find(|d| &d.name == name)
                    .ok_or_else(|| {
                        SandboxError::Invalid(format!("profile `{name}` vanished from the plan"))
                    })?;
                let put = ProfilePut {
                    description: def.description.clone(),
                    config: def.config.clone(),
                    devices: def.devices.clone(),
                };
                if matches!(step, SetupStep::CreateProfile { .. }) {
                    scope.create_profile(name, &put)?;
                } else {
                    scope.update_profile(name, &put)?;
                }
            }
            SetupStep::SetDefault { .. } | SetupStep::SetEstateId => continue,
        }
        done.push(step.clone());
    }
    Ok(done)
}

/// Write the registry steps. Returns whether the file changed.
fn apply_registry(
    path: &std::path::Path,
    req: &SetupRequest,
    new_id: impl FnOnce() -> String,
) -> Result<bool, SandboxError> {
    let (_, written) = RegistryFile::edit(path, Some(Duration::from_secs(10)), |f| {
        f.ensure_estate_id(new_id);
        for (key, value) in &req.registry_strings {
            f.set_default(key, value);
        }
        if let Some(list) = &req.registry_profiles {
            f.set_default_list("profiles", list);
        }
        Ok(())
    })?;
    Ok(written)
}

/// What `setup` was given (flags, or wizard answers); `None`/empty: keep what the registry or
/// the environment says.
#[derive(Debug, Clone, Default)]
pub struct SetupFlags {
    pub local_repos: Option<PathBuf>,
    pub backup_root: Option<PathBuf>,
    pub incus_project: Option<String>,
    pub pool: Option<String>,
    pub network: Option<String>,
    pub image: Option<String>,
    /// Replaces `[defaults] profiles` when not empty.
    pub profiles: Vec<String>,
}

/// Merge the flags with the effective settings into a request. Every effective value is written
/// to the registry, so the registry alone describes the estate (values from
/// LOCAL_REPOS/NFS_REPOS become explicit); unchanged values are not rewritten.
pub fn resolve(
    file: &RegistryFile,
    settings: &Settings,
    env: &Env,
    flags: &SetupFlags,
) -> Result<SetupRequest, SandboxError> {
    let local_repos = flags
        .local_repos
        .clone()
        .or_else(|| settings.local_repos.as_ref().map(|s| s.value.clone()));
    let backup_root = flags
        .backup_root
        .clone()
        .or_else(|| settings.backup_root.as_ref().map(|s| s.value.clone()));
    let incus_project = flags
        .incus_project
        .clone()
        .unwrap_or_else(|| settings.incus_project.value.clone());
    repoman_core::ProjectName::parse(&incus_project)
        .map_err(|e| SandboxError::Invalid(format!("--incus-project: {e}")))?;
    let pool = flags
        .pool
        .clone()
        .unwrap_or_else(|| settings.pool.value.clone());
    let network = flags
        .network
        .clone()
        .or_else(|| settings.network.as_ref().map(|s| s.value.clone()));
    let image = flags
        .image
        .clone()
        .or_else(|| settings.default_image.as_ref().map(|s| s.value.clone()));
    let profiles = if flags.profiles.is_empty() {
        settings.profiles.value.clone()
    } else {
        flags.profiles.clone()
    };
    let mut registry_strings: Vec<(&'static str, String)> = Vec::new();
    for (key, p) in [("local_repos", &local_repos), ("backup_root", &backup_root)] {
        if let Some(p) = p {
            registry_strings.push((key, p.display().to_string()));
        }
    }
    registry_strings.push(("incus_project", incus_project.clone()));
    registry_strings.push(("pool", pool.clone()));
    if let Some(n) = &network {
        registry_strings.push(("network", n.clone()));
    }
    if let Some(i) = &image {
        registry_strings.push(("default_image", i.clone()));
    }
    Ok(SetupRequest {
        local_repos,
        backup_root,
        incus_project,
        pool,
        network,
        image,
        profiles: profiles.clone(),
        profile_defs: file.registry.profiles.clone(),
        probe_timeout: settings.probe_timeout.value,
        registry_strings,
        registry_profiles: (!flags.profiles.is_empty()).then_some(profiles),
        owner: Some(repoman_core::identity::host_user(env, None)),
    })
}

impl SetupRequest {
    /// `sandbox.setup` on `incus-project:NAME`.
    pub fn operation(&self) -> Operation {
        Operation {
            name: "sandbox.setup".to_owned(),
            object: ObjectId::incus_project(&self.incus_project).to_string(),
            project: None,
        }
    }
}

/// Where [`apply`] writes.
pub struct SetupCtx<'a> {
    pub registry_path: &'a std::path::Path,
    pub state: &'a State,
    pub progress: &'a dyn Progress,
}

impl std::fmt::Debug for SetupCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupCtx")
            .field("registry_path", &self.registry_path)
            .finish_non_exhaustive()
    }
}

/// Apply the plan (Incus and directories, then the registry) and record
/// `sandbox.setup.applied`. `new_id` makes the estate id when the registry has none.
pub fn apply(
    incus: &Incus,
    req: &SetupRequest,
    plan: &SetupPlan,
    ctx: &SetupCtx<'_>,
    approval: Approval,
    new_id: impl FnOnce() -> String,
) -> Result<(), SandboxError> {
    approval.check(
        "sandbox.setup",
        &ObjectId::incus_project(&req.incus_project),
    )?;
    let state = ctx.state;
    let done = apply_incus(incus, req, plan, ctx.progress)?;
    let written = apply_registry(ctx.registry_path, req, new_id)?;
    let registry = plan
        .steps
        .iter()
        .filter(|s| matches!(s, SetupStep::SetDefault { .. } | SetupStep::SetEstateId))
        .cloned()
        .collect();
    state.append(
        SandboxEvent::SetupApplied(events::SetupApplied {
            incus_project: req.incus_project.clone(),
            steps: done,
            registry,
            registry_written: written,
        })
        .into(),
    )?;
    Ok(())
}
