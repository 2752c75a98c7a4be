//! What `status` shows: per sandbox its state, repo, bind mounts, last sync and drift, the
//! problems found, and whether the backup root answers. Read-only.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::desired;
use crate::drift::Drift;
use crate::session::Session;

/// One bind mount of a sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub device: String,
    pub source: String,
    pub path: String,
    /// The instance has this device as desired.
    pub present: bool,
    pub source_exists: bool,
}

/// One sandbox (registered, or an orphan container).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub registered: bool,
    pub container: bool,
    /// Incus status, `missing`, or `none` (registered without a sandbox).
    pub state: String,
    pub repo_path: Option<String>,
    pub repo_exists: Option<bool>,
    pub mounts: Vec<Mount>,
    pub last_sync: Option<String>,
    pub last_sync_age_secs: Option<i64>,
    pub drift: Option<Drift>,
    pub problems: Vec<String>,
}

/// Whether the backup root is the expected mount and answers: the face computes it with
/// repoman-backup's mount guard (the one `sync` uses) and passes it to [`health`].
#[derive(Debug, Clone, Serialize)]
pub struct BackupRoot {
    pub path: PathBuf,
    pub reachable: bool,
    pub error: Option<String>,
}

/// The health of the sandboxes (only `only` when given).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub incus_project: String,
    pub project_exists: bool,
    pub backup_root: Option<BackupRoot>,
    pub sandboxes: Vec<Item>,
    pub drift: Vec<Drift>,
    /// How the Incus project's `restricted.*` keys differ from what `repoman setup` sets (a
    /// project loosened by hand, or made before repoman restricted it).
    pub restrictions: Vec<crate::restrict::Deviation>,
    /// Why the project's restrictions could not be read (a problem too).
    pub restrictions_error: Option<String>,
    /// Drifts, other problems, an unrestricted or loosened Incus project (one problem however
    /// many keys differ) and an unreachable backup root: `status` fails when not zero.
    pub problems: usize,
}

/// Build the health report from an open session; `now` is the current time in seconds since the
/// epoch (for the age of the last sync).
pub fn health(
    s: &Session,
    only: Option<&str>,
    now_secs: i64,
    backup_root: Option<BackupRoot>,
) -> Health {
    let sandboxes = items(s, only, now_secs);
    let drift: Vec<Drift> = s
        .drift
        .iter()
        .filter(|d| only.is_none_or(|o| d.name() == o))
        .cloned()
        .collect();
    let other_problems = sandboxes
        .iter()
        .filter(|i| !i.problems.is_empty() && i.drift.is_none())
        .count();
    let backup_bad = backup_root.as_ref().is_some_and(|b| !b.reachable);
    // Only `status` needs the project's own config: read here, not in every listing.
    let mut config_error = None;
    let restrictions = if s.observed.project_exists {
        let scope = &s.observed.scope;
        match scope.client().get_project(scope.name()) {
            Ok(p) => crate::restrict::deviations(&p.config, &s.estate.restrictions()),
            Err(e) => {
                config_error = Some(format!(
                    "cannot read the restrictions of the Incus project `{}`: {e}",
                    scope.name()
                ));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    Health {
        incus_project: s.estate.incus_project().to_owned(),
        project_exists: s.observed.project_exists,
        problems: drift.len()
            + usize::from(!restrictions.is_empty() || config_error.is_some())
            + other_problems
            + usize::from(backup_bad),
        restrictions,
        restrictions_error: config_error,
        backup_root,
        sandboxes,
        drift,
    }
}

fn items(s: &Session, only: Option<&str>, now_secs: i64) -> Vec<Item> {
    let mut out = Vec::new();
    for p in &s.estate.file.registry.projects {
        let name = p.name.as_str();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let inst = s.observed.instance(name);
        let mut problems = Vec::new();
        let repo_path = desired::repo_path(&s.estate.settings, p.repo.as_str()).ok();
        let repo_exists = repo_path.as_ref().map(|r| r.is_dir());
        if repo_exists == Some(false) {
            problems.push("the repo directory does not exist".to_owned());
        }
        let mut mounts = Vec::new();
        if p.container {
            match s.estate.desired(p, None) {
                Ok(d) => {
                    for (dev, want) in &d.devices {
                        let source = want.get("source").cloned().unwrap_or_default();
                        let present = inst.is_some_and(|i| {
                            i.devices.get(dev).is_some_and(|have| {
                                have.get("source") == want.get("source")
                                    && have.get("path") == want.get("path")
                            })
                        });
                        let source_exists = Path::new(&source).exists();
                        // An optional mount (the agent door's `required=false` endpoint,
                        // made by the daemon) is listed, but a missing source is no problem.
                        let optional = want.get("required").is_some_and(|v| v == "false");
                        if inst.is_some() && !present {
                            problems.push(format!("bind mount `{dev}` is not on the container"));
                        }
                        if !source_exists && !optional {
                            problems.push(format!("bind mount source {source} does not exist"));
                        }
                        mounts.push(Mount {
                            device: dev.clone(),
                            source,
                            path: want.get("path").cloned().unwrap_or_default(),
                            present,
                            source_exists,
                        });
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let drift = s.drift_of(name).cloned();
        if let Some(d) = &drift {
            problems.push(d.summary());
        }
        let age = p
            .last_sync
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| now_secs - t.as_second());
        out.push(Item {
            name: name.to_owned(),
            registered: true,
            container: p.container,
            state: match (p.container, inst) {
                (_, Some(i)) => i.status.clone(),
                (true, None) => "missing".to_owned(),
                (false, None) => "none".to_owned(),
            },
            repo_path: repo_path.map(|p| p.display().to_string()),
            repo_exists,
            mounts,
            last_sync: p.last_sync.clone(),
            last_sync_age_secs: age,
            drift,
            problems,
        });
    }
    for i in &s.observed.instances {
        if s.estate.file.registry.project(&i.name).is_some() || only.is_some_and(|o| o != i.name) {
            continue;
        }
        let drift = s.drift_of(&i.name).cloned();
        out.push(Item {
            name: i.name.clone(),
            registered: false,
            container: true,
            state: i.status.clone(),
            repo_path: i.user_config(desired::TAG_REPO).map(str::to_owned),
            repo_exists: None,
            mounts: Vec::new(),
            last_sync: None,
            last_sync_age_secs: None,
            problems: drift.iter().map(Drift::summary).collect(),
            drift,
        });
    }
    out
}
