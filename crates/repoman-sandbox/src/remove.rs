//! `remove`: destroy a sandbox and unregister its project (or keep it registered without a
//! sandbox). The repo directory and the backup are never touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use repoman_core::ObjectId;
use repoman_core::registry::{ProjectEntry, RegistryFile};
use repoman_state::{NewEvent, Operation, State};

use crate::desired;
use crate::error::SandboxError;
use crate::events::{self, SandboxEvent};
use crate::repair;
use crate::session::{self, Approval, Session};

/// What `remove` will do.
#[derive(Debug, Clone)]
pub struct RemovePlan {
    pub name: String,
    pub entry: ProjectEntry,
    /// The container's status, when it has one to destroy.
    pub instance_status: Option<String>,
    pub repo_path: Option<PathBuf>,
    pub keep_repo: bool,
    pub incus_project: String,
}

impl RemovePlan {
    /// The plan as lines for a terminal (and the `plan` of `--json`).
    pub fn describe(&self) -> Vec<String> {
        let name = &self.name;
        let mut plan = Vec::new();
        if let Some(status) = &self.instance_status {
            plan.push(format!(
                "stop and delete the container `{name}` ({})",
                status.to_lowercase()
            ));
        }
        if self.keep_repo {
            if self.entry.container {
                plan.push(format!(
                    "keep project `{name}` registered, without a sandbox"
                ));
            }
        } else {
            plan.push(format!("unregister project `{name}` from repoman.toml"));
        }
        if let Some(r) = &self.repo_path {
            plan.push(format!(
                "leave the repo {} and its backup untouched",
                r.display()
            ));
        }
        plan
    }

    /// `sandbox.remove`.
    pub fn operation(&self) -> Operation {
        session::op("sandbox.remove", &self.name)
    }
}

/// Plan the removal of the registered project `name`.
pub fn plan_remove(s: &Session, name: &str, keep_repo: bool) -> Result<RemovePlan, SandboxError> {
    let entry = s.estate.entry(name)?.clone();
    let instance_status = s
        .observed
        .instance(name)
        .filter(|_| entry.container)
        .map(|i| i.status.clone());
    Ok(RemovePlan {
        name: name.to_owned(),
        repo_path: desired::repo_path(&s.estate.settings, entry.repo.as_str()).ok(),
        entry,
        instance_status,
        keep_repo,
        incus_project: s.estate.incus_project().to_owned(),
    })
}

/// Destroy the container (if any), edit the registry, record `sandbox.removed` and
/// `project.unregistered`.
pub fn execute_remove(
    s: &Session,
    plan: &RemovePlan,
    registry_path: &Path,
    state: &State,
    approval: Approval,
) -> Result<(), SandboxError> {
    approval.check("sandbox.remove", &ObjectId::sandbox(&plan.name))?;
    let name = plan.name.as_str();
    let had_container = plan.instance_status.is_some();
    if had_container {
        repair::destroy_instance(&s.observed.scope, name)?;
    }
    let keep = plan.keep_repo;
    RegistryFile::edit(registry_path, Some(Duration::from_secs(10)), |f| {
        if keep {
            f.set_project_container(name, false).map(|_| ())
        } else {
            f.remove_project(name).map(|_| ())
        }
    })?;
    let mut batch: Vec<NewEvent> = Vec::new();
    if had_container {
        batch.push(
            SandboxEvent::Removed(events::Removed {
                project: name.to_owned(),
                incus_project: plan.incus_project.clone(),
                repo_path: plan.repo_path.clone(),
            })
            .into(),
        );
    }
    if !keep {
        batch.push(
            SandboxEvent::ProjectUnregistered(events::ProjectUnregistered {
                project: name.to_owned(),
                repo: plan.entry.repo.to_string(),
                repo_path: plan.repo_path.clone(),
            })
            .into(),
        );
    }
    state.append_batch(batch)?;
    Ok(())
}
