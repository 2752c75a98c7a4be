//! `repoman generate-man DIR` (hidden): render the man pages with clap_mangen, one page for
//! `repoman` and one per subcommand (`repoman-sync.1`, `repoman-realm-check.1`, ...). The pages in
//! `docs/man/` are checked in and a test fails when they are out of date; regenerate them with
//! `scripts/gen-man`.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::app::App;
use crate::cli::Cli;
use crate::error::{CliError, Exit};

/// Write the man pages into a directory.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Output directory (created if missing).
    pub dir: PathBuf,
}

pub fn run(app: &App, args: ManArgs) -> Result<Exit, CliError> {
    std::fs::create_dir_all(&args.dir)?;
    let pages = render_all()?;
    for (name, bytes) in &pages {
        repoman_core::fs::write_atomic(&args.dir.join(name), bytes, Some(0o644))?;
    }
    app.ui.success(&format!(
        "wrote {} man pages to {}",
        pages.len(),
        args.dir.display()
    ));
    Ok(Exit::Success)
}

/// Every page as (file name, roff bytes), in a stable order.
pub fn render_all() -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut pages = Vec::new();
    render(&cmd, "repoman", &mut pages)?;
    Ok(pages)
}

fn render(
    cmd: &clap::Command,
    name: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), CliError> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    // The package version only: the git revision in `--version` would make the checked-in pages
    // stale on every commit.
    let page = cmd
        .clone()
        .name(name.to_owned())
        .version(env!("CARGO_PKG_VERSION"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .date("")
        .render(&mut buf)
        .map_err(|e| CliError::failed(format!("cannot render man page {name}: {e}")))?;
    pages.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        render(sub, &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}
