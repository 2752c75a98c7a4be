//! `repoman list`: registered projects and their sandboxes, reconciled with one Incus listing.

use clap::Args;
use serde::Serialize;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::drift::Drift;
use repoman_sandbox::estate;
use repoman_sandbox::session::Session;

/// List projects and sandboxes: name, state, IPv4, repo, image, last sync, drift.
///
/// One Incus request lists repoman's project; runtime state is fetched (in parallel) only for
/// running sandboxes that have a network interface. Containers in the Incus project that are not
/// registered are listed as orphans. `--json` prints the shape documented in docs/sandboxes.md.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// One row of `repoman list --json`.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct Listing {
    pub incus_project: String,
    pub project_exists: bool,
    pub sandboxes: Vec<Row>,
}

/// Build the rows (shared with `status`).
pub(crate) fn rows(s: &Session) -> Vec<Row> {
    let ipv4 = estate::ipv4_of(&s.observed);
    let drift_kind = |name: &str| s.drift_of(name).map(Drift::kind);
    let mut rows = Vec::new();
    for p in &s.estate.file.registry.projects {
        let name = p.name.as_str();
        let inst = s.observed.instance(name);
        let state = match (p.container, inst) {
            (_, Some(i)) => i.status.clone(),
            (true, None) => "missing".to_owned(),
            (false, None) => "none".to_owned(),
        };
        let repo_path =
            repoman_sandbox::desired::repo_path(&s.estate.settings, p.repo.as_str()).ok();
        let image = inst
            .and_then(|i| {
                i.user_config(repoman_sandbox::desired::TAG_IMAGE)
                    .map(str::to_owned)
            })
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
                repo_path: i
                    .user_config(repoman_sandbox::desired::TAG_REPO)
                    .map(str::to_owned),
                image: i
                    .user_config(repoman_sandbox::desired::TAG_IMAGE)
                    .map(str::to_owned),
                last_sync: None,
                drift: Some("orphan"),
            });
        }
    }
    rows
}

pub fn run(app: &App, _args: ListArgs) -> Result<Exit, CliError> {
    let s = Session::open(app.registry()?, &app.env)?;
    let rows = rows(&s);
    if app.ui.json() {
        app.ui.print_json(&Listing {
            incus_project: s.estate.incus_project().to_owned(),
            project_exists: s.observed.project_exists,
            sandboxes: rows,
        })?;
    } else {
        for w in s.drift_warnings(None) {
            app.ui.warn(&w);
        }
        if rows.is_empty() {
            app.ui
                .info("no projects registered; `repoman new NAME` creates one");
            return Ok(Exit::Success);
        }
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header([
            "NAME",
            "STATE",
            "IPV4",
            "REPO",
            "IMAGE",
            "LAST SYNC",
            "DRIFT",
        ]);
        for r in &rows {
            table.add_row([
                r.name.clone(),
                r.state.clone(),
                if r.ipv4.is_empty() {
                    "-".to_owned()
                } else {
                    r.ipv4.join(",")
                },
                r.repo_path.clone().unwrap_or_else(|| "-".to_owned()),
                r.image.clone().unwrap_or_else(|| "-".to_owned()),
                r.last_sync.clone().unwrap_or_else(|| "never".to_owned()),
                r.drift.map(|d| format!("! {d}")).unwrap_or_default(),
            ]);
        }
        for line in table.lines() {
            app.ui.data(line.trim_end())?;
        }
    }
    Ok(Exit::Success)
}
