//! `repoman verify`: compare backup copies with their last manifests.

use clap::Args;
use repoman_backup::exclude::Excludes;
use repoman_backup::mount::{Expected, MountGuard};
use repoman_backup::verify::{self, Mode, Scope};
use repoman_state::NewEvent;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit, keep_verdict};
use crate::targets::{last_manifest, targets};

/// Check backup copies against their last manifests and report missing, changed and extra files.
///
/// `--quick` (the default) compares type, permission bits, size, mtime and symlink targets;
/// `--full` also re-hashes every file with BLAKE3 and so detects silent corruption. Exit 1 when
/// anything differs. Records a `backup.verified` event per project.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Projects to verify (default: all registered projects).
    pub names: Vec<String>,
    /// Verify every registered project.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Compare metadata only (default).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Re-hash every file.
    #[arg(long)]
    pub full: bool,
}

pub fn run(app: &App, args: VerifyArgs) -> Result<Exit, CliError> {
    let reg = app.registry()?;
    let settings = app.settings()?;
    let targets = targets(app, &reg.registry, &settings, &args.names)?;
    let state = app.state()?;
    let mode = if args.full { Mode::Full } else { Mode::Quick };
    let mut exit = Exit::Success;
    let mut out = Vec::new();
    // The verdict is complete before anything is printed: a closed pipe cannot change it.
    let mut lines: Vec<String> = Vec::new();
    for t in &targets {
        let name = t.entry.name.as_str();
        let object = repoman_core::ObjectId::backup(name).to_string();
        let Some((manifest, ev)) = last_manifest(app, &state, name)? else {
            app.ui.warn(&format!(
                "{name}: never synced; nothing to verify (run `repoman sync {name}`)"
            ));
            exit = exit.worst(Exit::Failure);
            out.push(json!({"project": name, "status": "no-manifest"}));
            continue;
        };
        MountGuard::new(
            &t.backup_root,
            Expected::from_settings(&settings),
            settings.probe_timeout.value,
        )
        .check()
        .map_err(CliError::from)?;
        let excludes = Excludes::new(&t.excludes).map_err(CliError::from)?;
        let report = verify::verify(&t.dst, &manifest, &excludes, mode, Scope::All, &app.cancel)
            .map_err(CliError::from)?;
        let clean = report.is_clean();
        let recorded = state.append(NewEvent::new(
            "backup.verified",
            object,
            json!({"project": name, "mode": mode, "root": manifest.root, "synced_seq": ev.seq, "clean": clean,
                   "checked": report.checked, "missing": report.missing.len(), "changed": report.changed.len(), "extra": report.extra.len()}),
        ))?;
        if !clean {
            exit = exit.worst(Exit::Failure);
        }
        if app.ui.json() {
            out.push(json!({"project": name, "status": if clean { "ok" } else { "problems" }, "mode": mode, "root": manifest.root,
                            "synced_seq": ev.seq, "event_seq": recorded.seq, "report": report}));
        } else {
            let status = if clean { "ok" } else { "problems" };
            lines.push(format!(
                "{name}\t{status}\t{} entries checked ({mode:?}), {} missing, {} changed, {} extra",
                report.checked,
                report.missing.len(),
                report.changed.len(),
                report.extra.len()
            ));
            for m in &report.missing {
                lines.push(format!("  missing: {m}"));
            }
            for c in &report.changed {
                lines.push(format!("  changed: {} ({})", c.path, c.what.join(", ")));
            }
            for x in &report.extra {
                lines.push(format!("  extra:   {x}"));
            }
            if !clean && report.changed.iter().any(|c| c.what.contains(&"content")) {
                app.ui.hint(&format!(
                    "`repoman sync {name} --checksum` copies the working copy's bytes over backup files whose content differs"
                ));
            }
        }
    }
    let printed = if app.ui.json() {
        app.ui.print_json(&json!({"projects": out}))
    } else {
        lines.iter().try_for_each(|l| app.ui.data(l))
    };
    keep_verdict(printed, exit)
}
