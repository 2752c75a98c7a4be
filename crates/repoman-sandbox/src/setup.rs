//! `repoman setup`: the host plan (directories, the Incus project, its default profile, extra
//! profiles, registry defaults) and applying it.
//!
//! Idempotent by construction: the plan lists only what differs from what exists, so a second
//! run plans nothing and says so. Nothing existing is ever replaced destructively: a root disk
//! on another pool, or project features that differ, are reported as warnings, not changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use repoman_core::registry::{ProfileDef, RegistryFile};
use repoman_incus::{DeviceSpec, ImageSource, Incus, IncusError, ProfilePut, ProjectSpec};
use serde::Serialize;

use super::error::SandboxError;
use super::estate::{Progress, probe_dir};
use super::incus_ext;

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
    if !incus_ext::pool_exists(incus, &req.pool)? {
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
pub fn apply_incus(
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
pub fn apply_registry(
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
