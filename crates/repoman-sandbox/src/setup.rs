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
use repoman_core::subid;
use repoman_core::{Env, ObjectId, Progress};
use repoman_incus::daemon::Manager;
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
    /// The `restricted.*` keys of the Incus project ([`crate::restrict::wanted`]).
    pub restrictions: BTreeMap<String, String>,
    /// `/etc/subuid` and `/etc/subgid` (or `REPOMAN_SUBUID_FILE`/`REPOMAN_SUBGID_FILE`).
    pub subid_files: (PathBuf, PathBuf),
    /// Whether repoman runs as root (it can change the files and restart Incus itself).
    pub as_root: bool,
    /// The Incus socket (waited on after a daemon restart).
    pub incus_socket: PathBuf,
}

impl SetupRequest {
    /// Whether the subordinate id files are the system's, which incusd reads (so a change needs
    /// a daemon restart); with `REPOMAN_SUB?ID_FILE` pointing elsewhere there is nothing to
    /// restart.
    fn system_subid_files(&self) -> bool {
        self.subid_files.0 == std::path::Path::new(subid::SUBUID)
            && self.subid_files.1 == std::path::Path::new(subid::SUBGID)
    }
}

/// One step of the setup plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SetupStep {
    /// Delegate one host id to root for Incus (`root:ID:1` in `/etc/subuid` or `/etc/subgid`).
    DelegateId {
        file: PathBuf,
        line: String,
    },
    /// Restart the Incus daemon so it reads the new delegations.
    RestartIncus {
        manager: Manager,
    },
    CreateDirectory {
        path: PathBuf,
    },
    CreateProject {
        name: String,
        config: BTreeMap<String, String>,
    },
    /// Set the `restricted.*` keys of an existing project (first time, or re-tightening).
    RestrictProject {
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
        let pairs = |config: &BTreeMap<String, String>| {
            config
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            SetupStep::DelegateId { file, line } => format!(
                "add `{line}` to {} (lets Incus map this one id into sandboxes)",
                file.display()
            ),
            SetupStep::RestartIncus { manager } => format!(
                "restart the Incus daemon, which reads the id files only when it starts (running sandboxes keep running): {}",
                manager.restart_commands().join("; ")
            ),
            SetupStep::RestrictProject { name, config } => {
                format!("restrict Incus project `{name}`: {}", pairs(config))
            }
            SetupStep::CreateDirectory { path } => format!("create directory {}", path.display()),
            SetupStep::CreateProject { name, config } => {
                format!("create Incus project `{name}` ({})", pairs(config))
            }
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
    plan_subids(req, &mut plan)?;
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
    let features = BTreeMap::from([
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
            let mut config = features.clone();
            config.extend(req.restrictions.clone());
            plan.steps.push(SetupStep::CreateProject {
                name: project.clone(),
                config,
            });
            None
        }
        Some(p) => {
            let off = crate::restrict::deviations(&p.config, &req.restrictions);
            if !off.is_empty() {
                plan.steps.push(SetupStep::RestrictProject {
                    name: project.clone(),
                    config: off.into_iter().map(|d| (d.key, d.want)).collect(),
                });
                warn_unmigrated(incus, project, &mut plan)?;
            }
            for (k, v) in &features {
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
            "backup_fstype" => d.backup_fstype.clone(),
            "backup_mount_point" => d
                .backup_mount_point
                .as_ref()
                .map(|p| p.display().to_string()),
            "backup_device" => d.backup_device.clone(),
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

/// The `/etc/subuid`/`/etc/subgid` lines the host user's ids need, and the daemon restart
/// that makes incusd read them. Root is never delegated (it is never mapped).
fn plan_subids(req: &SetupRequest, plan: &mut SetupPlan) -> Result<(), SandboxError> {
    let Some(user) = &req.owner else {
        return Ok(());
    };
    if user.uid == 0 || user.gid == 0 {
        plan.warnings.push(format!(
            "the host user is root (uid {}, gid {}): root is never mapped into a sandbox, so no id is delegated; run setup with sudo from your own account (SUDO_UID names you)",
            user.uid, user.gid
        ));
        return Ok(());
    }
    let (u, g) = (&req.subid_files.0, &req.subid_files.1);
    let read = |p: &PathBuf| {
        subid::read(p).map_err(|e| SandboxError::Directory {
            path: p.clone(),
            message: format!("cannot read: {e}"),
        })
    };
    let (uc, gc) = (read(u)?, read(g)?);
    let missing = subid::missing((u, uc.as_deref()), (g, gc.as_deref()), user.uid, user.gid);
    if missing.is_empty() {
        return Ok(());
    }
    for m in &missing {
        plan.steps.push(SetupStep::DelegateId {
            file: m.file.clone(),
            line: m.line.clone(),
        });
    }
    if req.system_subid_files() {
        plan.steps.push(SetupStep::RestartIncus {
            manager: repoman_incus::daemon::observe(),
        });
    }
    Ok(())
}

/// Sandboxes still made the old way (a `shift=true` disk) will not start in a restricted project
/// until `repoman update` migrates them: say so before restricting.
fn warn_unmigrated(incus: &Incus, project: &str, plan: &mut SetupPlan) -> Result<(), SandboxError> {
    for inst in incus.project(project).list_instances()? {
        let shifted = inst.devices.values().any(|d| {
            d.get("type").is_some_and(|t| t == "disk")
                && d.get("shift").is_some_and(|v| v == "true")
        });
        if shifted {
            plan.warnings.push(format!(
                "sandbox `{}` still has a shift=true mount: once the project is restricted it will not start until `repoman update {} --yes` migrates it to raw.idmap",
                inst.name, inst.name
            ));
        }
    }
    Ok(())
}

/// Before anything else (before Incus is even asked): refuse when the host needs changes that
/// repoman cannot make here (the id files need root), with the commands to run instead.
pub fn precheck(req: &SetupRequest) -> Result<(), SandboxError> {
    let mut plan = SetupPlan::default();
    plan_subids(req, &mut plan)?;
    check_host_steps(req, &plan)
}

/// Refuse before changing anything when the plan has host steps repoman cannot do here.
fn check_host_steps(req: &SetupRequest, plan: &SetupPlan) -> Result<(), SandboxError> {
    let lines: Vec<subid::MissingLine> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            SetupStep::DelegateId { file, line } => Some(subid::MissingLine {
                kind: if file == &req.subid_files.1 {
                    subid::Kind::Gid
                } else {
                    subid::Kind::Uid
                },
                file: file.clone(),
                line: line.clone(),
            }),
            _ => None,
        })
        .collect();
    let restart = plan.steps.iter().find_map(|s| match s {
        SetupStep::RestartIncus { manager } => Some(manager),
        _ => None,
    });
    let mut commands = subid::sudo_commands(&lines);
    if let Some(m) = restart {
        commands.extend(m.restart_commands());
    }
    if !lines.is_empty() && !req.as_root {
        return Err(SandboxError::HostChange {
            message: format!(
                "sandboxes map your ids ({}) with raw.idmap, which needs {} delegated to root, and only root can change those files",
                lines
                    .iter()
                    .map(|l| l.line.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                lines
                    .iter()
                    .map(|l| l.file.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
            ),
            commands,
        });
    }
    if matches!(restart, Some(Manager::NotFound)) {
        return Err(SandboxError::HostChange {
            message: "the id files need a restart of the Incus daemon, and it was not found (no active incus.service/incus.socket, no incusd process)".to_owned(),
            commands,
        });
    }
    Ok(())
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
            SetupStep::DelegateId { file, line } => {
                progress.step(&step.describe());
                let kind = if file == &req.subid_files.1 {
                    subid::Kind::Gid
                } else {
                    subid::Kind::Uid
                };
                subid::apply(&[subid::MissingLine {
                    kind,
                    file: file.clone(),
                    line: line.clone(),
                }])
                .map_err(|e| SandboxError::Directory {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
            }
            SetupStep::RestartIncus { manager } => {
                progress.step(&step.describe());
                manager
                    .restart(&req.incus_socket, Duration::from_secs(90))
                    .map_err(|message| SandboxError::HostChange {
                        message: format!("restarting the Incus daemon failed: {message}"),
                        commands: manager.restart_commands(),
                    })?;
            }
            SetupStep::RestrictProject { name, config } => {
                progress.step(&step.describe());
                incus.patch_project_config(name, config)?;
            }
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
    /// The mount holding the backup root as observed now (`backup_fstype`,
    /// `backup_mount_point`, `backup_device`), to record; `None`: keep what is recorded.
    pub backup_mount: Option<BackupMount>,
}

/// The mount holding the backup root, as `setup` records it for the mount guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupMount {
    pub fstype: String,
    pub mount_point: PathBuf,
    pub device: String,
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
    if let Some(m) = &flags.backup_mount {
        registry_strings.push(("backup_fstype", m.fstype.clone()));
        registry_strings.push(("backup_mount_point", m.mount_point.display().to_string()));
        registry_strings.push(("backup_device", m.device.clone()));
    }
    let user = repoman_core::identity::host_user(env, None);
    let home = crate::desired::host_home(&user).or_else(|| env.get_path("HOME"));
    let runtime = repoman_core::Paths::resolve(env)
        .ok()
        .map(|p| p.runtime_dir);
    let restrictions = crate::restrict::wanted(&crate::restrict::Inputs {
        local_repos: local_repos.as_deref(),
        mount_roots: &file.registry.mount_roots,
        allow_devices: &file.registry.defaults.allow_devices,
        user: &user,
        user_home: home.as_deref(),
        runtime_dir: runtime.as_deref(),
    });
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
        restrictions,
        subid_files: (
            env.get_path("REPOMAN_SUBUID_FILE")
                .unwrap_or_else(|| subid::SUBUID.into()),
            env.get_path("REPOMAN_SUBGID_FILE")
                .unwrap_or_else(|| subid::SUBGID.into()),
        ),
        as_root: repoman_core::identity::running_as_root(),
        incus_socket: repoman_incus::socket::resolve(env).path,
        owner: Some(user),
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
    check_host_steps(req, plan)?;
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
