//! `repoman list`: registered projects and their sandboxes, reconciled with one Incus listing.

use clap::Args;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_core::ErrorKind;
use repoman_sandbox::session::Session;
use repoman_sandbox::{Estate, desired, listing};

/// List projects and sandboxes: name, state, IPv4, repo, image, last sync, drift.
///
/// One Incus request lists repoman's project; runtime state is fetched (in parallel) only for
/// running sandboxes that have a network interface. Containers in the Incus project that are not
/// registered are listed as orphans. `--json` prints the shape documented in docs/sandboxes.md.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// The listing from the registry alone, when Incus is unavailable and no registered project has
/// a sandbox: nothing Incus holds is needed, only orphans go unlisted (a warning says so).
fn registry_only(app: &App) -> Result<listing::Listing, CliError> {
    let estate = Estate::new(app.registry()?, &app.env);
    let sandboxes = estate
        .file
        .registry
        .projects
        .iter()
        .map(|p| listing::Row {
            name: p.name.as_str().to_owned(),
            registered: true,
            container: false,
            state: "none".to_owned(),
            ipv4: Vec::new(),
            repo: Some(p.repo.to_string()),
            repo_path: desired::repo_path(&estate.settings, p.repo.as_str())
                .ok()
                .map(|p| p.display().to_string()),
            image: p.image.clone(),
            last_sync: p.last_sync.clone(),
            drift: None,
        })
        .collect();
    Ok(listing::Listing {
        incus_project: estate.incus_project().to_owned(),
        project_exists: false,
        sandboxes,
    })
}

pub fn run(app: &App, _args: ListArgs) -> Result<Exit, CliError> {
    let registry = app.registry()?;
    let needs_incus = registry.registry.projects.iter().any(|p| p.container);
    let (listing, warnings) = match Session::open(registry, &app.env) {
        Ok(s) => (listing::listing(&s), s.drift_warnings(None)),
        Err(e) if !needs_incus && e.kind() == ErrorKind::Unavailable => {
            let note = format!("{e}; no project has a sandbox, so the registry alone is listed");
            (registry_only(app)?, vec![note])
        }
        Err(e) => return Err(e.into()),
    };
    if app.ui.json() {
        app.ui.print_json(&listing)?;
    } else {
        let rows = listing.sandboxes;
        for w in warnings {
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
