//! `repoman list`: registered projects and their sandboxes, reconciled with one Incus listing.

use clap::Args;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_sandbox::listing;
use repoman_sandbox::session::Session;

/// List projects and sandboxes: name, state, IPv4, repo, image, last sync, drift.
///
/// One Incus request lists repoman's project; runtime state is fetched (in parallel) only for
/// running sandboxes that have a network interface. Containers in the Incus project that are not
/// registered are listed as orphans. `--json` prints the shape documented in docs/sandboxes.md.
#[derive(Debug, Args)]
pub struct ListArgs {}

pub fn run(app: &App, _args: ListArgs) -> Result<Exit, CliError> {
    let s = Session::open(app.registry()?, &app.env)?;
    let listing = listing::listing(&s);
    if app.ui.json() {
        app.ui.print_json(&listing)?;
    } else {
        let rows = listing.sandboxes;
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
