//! `repoman doctor`: integrity checks of every store, with `--repair` for the safe fixes.

use clap::Args;
use repoman_state::doctor::{DoctorOptions, FindingClass, StoreClass};

use crate::app::App;
use crate::error::{CliError, Exit, keep_verdict};

/// Check the event log, index, registry and directories; repair what is safe to repair
///
/// Checks the event log's hash chain and last line, the index, the registry and .repoman.toml
/// files against their schemas, the runtime directory's permissions. Lists every store as
/// durable, rebuildable or disposable with its path and size.
///
/// Each finding is auto-repairable (a torn last line, a stale or corrupt index, runtime dir
/// mode) or needs review (a broken hash chain, lost events, an invalid registry). --repair
/// applies the auto-repairs and writes a report under the state directory; a broken chain is
/// never rewritten. Lost events (a missing segment) are reported until a human accepts them
/// with --acknowledge-loss.
///
/// Exit: 0 healthy (or everything repaired), 1 auto-repairable problems left, 3 something needs
/// a human.
///
/// Examples:
///   repoman doctor
///   repoman doctor --repair --dry-run     what --repair would do
///   repoman doctor --repair
///   repoman doctor --acknowledge-loss     accept reported lost events
///   repoman doctor --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DoctorArgs {
    /// Apply the auto-repairs (quarantine a torn line, rebuild the index, fix runtime dir mode).
    #[arg(long)]
    pub repair: bool,
    /// With --repair: show what would be repaired without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept that the lost events doctor reports are gone: records `events.loss.acknowledged`
    /// (humans only); the lost seqs are never reused.
    #[arg(long)]
    pub acknowledge_loss: bool,
}

pub fn run(app: &App, args: DoctorArgs) -> Result<Exit, CliError> {
    let _span =
        tracing::info_span!("doctor", repair = args.repair, dry_run = args.dry_run).entered();
    let writes =
        (args.repair || args.acknowledge_loss) && !args.dry_run && app.paths.state_dir.exists();
    let state = if writes {
        app.state()?
    } else {
        app.state_read_only()?
    };
    let report = repoman_state::doctor::run(
        &state,
        &app.env,
        DoctorOptions {
            repair: args.repair,
            dry_run: args.dry_run,
            acknowledge_loss: args.acknowledge_loss,
        },
    )?;
    let exit = if report.needs_review() {
        Exit::Blocked
    } else if report.unrepaired() > 0 {
        Exit::Failure
    } else {
        Exit::Success
    };
    // The verdict is computed; a reader that leaves early (`| head -1`) cannot change it.
    if app.ui.json() {
        return keep_verdict(app.ui.print_json(&report), exit);
    }
    keep_verdict(print(app, &args, &report), exit)?;
    match exit {
        Exit::Blocked => app
            .ui
            .warn("some findings need a human: see the actions above"),
        Exit::Failure => app
            .ui
            .hint("`repoman doctor --repair` fixes the auto-repairable findings"),
        _ => {}
    }
    Ok(exit)
}

fn print(
    app: &App,
    args: &DoctorArgs,
    report: &repoman_state::doctor::DoctorReport,
) -> Result<(), CliError> {
    app.ui
        .data(&format!("checks ({} events):", report.events))?;
    for c in &report.checks {
        app.ui.data(&format!(
            "  {} {:<13} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        ))?;
    }
    if !report.findings.is_empty() {
        app.ui.data("\nfindings:")?;
        for f in &report.findings {
            let class = match f.class {
                FindingClass::AutoRepairable => "auto-repairable",
                FindingClass::NeedsReview => "needs review",
            };
            let state = if f.repaired {
                " [repaired]"
            } else if args.repair && args.dry_run && f.class == FindingClass::AutoRepairable {
                " [would repair]"
            } else {
                ""
            };
            app.ui.data(&format!(
                "  [{class}]{state} {}\n      -> {}",
                f.message, f.action
            ))?;
        }
    }
    app.ui.data("\nstores:")?;
    for s in &report.stores {
        let class = match s.class {
            StoreClass::Durable => "durable",
            StoreClass::Rebuildable => "rebuildable",
            StoreClass::Disposable => "disposable",
        };
        let size = if s.exists {
            crate::format::human_bytes(s.size)
        } else {
            "absent".into()
        };
        app.ui.data(&format!(
            "  {:<11} {:<11} {:>9}  {}",
            s.name,
            class,
            size,
            s.path.display()
        ))?;
    }
    for r in &report.repairs {
        if let Some(p) = &r.path {
            app.ui.info(&format!("repair report: {}", p.display()));
        }
    }
    Ok(())
}
