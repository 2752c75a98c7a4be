//! What `list` shows: registered projects and their sandboxes, reconciled with one Incus
//! listing, plus orphan containers.

use serde::Serialize;

use crate::desired;
use crate::drift::Drift;
use crate::estate;
use crate::session::Session;

/// One row of `repoman list --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub registered: bool,
    /// Whether the project should have a sandbox.
    pub container: bool,
    /// Incus status (`Running`, `Stopped`, ...), `missing`, or `none` (no sandbox).
    pub state: String,
    pub ipv4: Vec<String>,
    pub repo: Option<String>,
    pub repo_path: Option<String>,
    pub image: Option<String>,
    pub last_sync: Option<String>,
    /// `null`, `missing`, `orphan`, `config` or `unknown`.
    pub drift: Option<&'static str>,
}

/// The whole `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub incus_project: String,
    pub project_exists: bool,
    pub sandboxes: Vec<Row>,
}

/// The listing of an open session (IPv4 fetched in parallel for running sandboxes with a NIC).
pub fn listing(s: &Session) -> Listing {
    Listing {
        incus_project: s.estate.incus_project().to_owned(),
        project_exists: s.observed.project_exists,
        sandboxes: rows(s),
    }
}

fn rows(s: &Session) -> Vec<Row> {
    let ipv4 = estate::ipv4_of(&s.observed);
    let drift_kind = |name: &str| s.drift_of(name).map(Drift::label);
    let mut rows = Vec::new();
    for p in &s.estate.file.registry.projects {
        let name = p.name.as_str();
        let inst = s.observed.instance(name);
        let state = match (p.container, inst) {
            (_, Some(i)) => i.status.clone(),
            (true, None) => "missing".to_owned(),
            (false, None) => "none".to_owned(),
        };
        let repo_path = desired::repo_path(&s.estate.settings, p.repo.as_str()).ok();
        let image = inst
            .and_then(|i| i.user_config(desired::TAG_IMAGE).map(str::to_owned))
            .or_else(|| p.image.clone());
        rows.push(Row {
            name: name.to_owned(),
            registered: true,
            container: p.container,
            state,
            ipv4: ipv4.get(name).cloned().unwrap_or_default(),
            repo: Some(p.repo.to_string()),
            repo_path: repo_path.map(|p| p.display().to_string()),
            image,
            last_sync: p.last_sync.clone(),
            drift: drift_kind(name),
        });
    }
    for i in &s.observed.instances {
        if s.estate.file.registry.project(&i.name).is_none() {
            rows.push(Row {
                name: i.name.clone(),
                registered: false,
                container: true,
                state: i.status.clone(),
                ipv4: ipv4.get(&i.name).cloned().unwrap_or_default(),
                repo: None,
                repo_path: i.user_config(desired::TAG_REPO).map(str::to_owned),
                image: i.user_config(desired::TAG_IMAGE).map(str::to_owned),
                last_sync: None,
                drift: Some("orphan"),
            });
        }
    }
    rows
}
