//! `repoman tui`: the full-screen view of the estate (crates/repoman-tui, docs/tui.md).

use std::io::IsTerminal;

use clap::Args;
use repoman_core::ErrorKind;

use crate::app::App;
use crate::error::{CliError, Exit};

/// Full-screen terminal UI over the whole estate: projects, backups, toolchains, realms, events
///
/// Starts from the registry and the event log's index (no Incus or file-system scan before the
/// first frame), then refreshes in the background: Incus, the backup mount, tool manifests and
/// realms. Actions pass the same guards and policy gate as the CLI: s/S sync one/all (asks
/// first, live progress, x cancels), v verifies, u/D start/stop a sandbox (asks first), e opens
/// a shell in it (the TUI is suspended meanwhile), p/U pin/unpin a tool and t trusts a changed
/// .repoman.toml (each shows the diff and asks), R repairs drift (shows it and asks).
/// Keys: Tab/Shift-Tab switch views, j/k or arrows move, Enter opens the detail, / filters,
/// r refreshes, ? shows every key, q quits.
/// Colours follow --color and NO_COLOR. Needs a terminal on stdin and stdout.
///
/// Examples:
///   repoman tui
///   NO_COLOR=1 repoman tui
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TuiArgs {}

pub fn run(app: &App, _args: TuiArgs) -> Result<Exit, CliError> {
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        return Err(
            CliError::usage("repoman tui needs a terminal on stdin and stdout").with_hint(
                "run it in a terminal; `repoman list` and `repoman status` print the same data",
            ),
        );
    }
    let ctx = repoman_tui::Context {
        env: app.env.clone(),
        paths: app.paths.clone(),
        clock: app.clock.clone(),
        cancel: app.cancel.clone(),
        color: app.ui.color_stderr(),
        actor: app.actor_request()?,
    };
    repoman_tui::run(ctx).map_err(|e| CliError::of_kind(ErrorKind::Failed, &e, None))?;
    if app.cancel.is_cancelled() {
        return Err(CliError::interrupted());
    }
    Ok(Exit::Success)
}
