//! `repoman tools scan`: probe the host (cached, recorded) or a sandbox (through Incus exec).

use std::time::Duration;

use clap::Args;
use repoman_tools::drift::{self, ToolState};
use repoman_tools::remote::{RemoteExec, RemoteOutput, RemoteScanOptions, scan_remote};
use serde_json::json;

use super::{Ctx, ProbeArgs, ctx, declared, inventory, project_dir, save_cache};
use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Ignore cached probe results and probe every tool again.
    #[arg(long)]
    pub refresh: bool,
    /// Scan inside this project's sandbox container (through Incus exec) and compare with what
    /// the project's manifests declare. Nothing is cached or recorded for sandbox scans.
    #[arg(long, value_name = "NAME", conflicts_with = "refresh")]
    pub sandbox: Option<String>,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

pub(super) fn scan_cmd(app: &App, a: ScanArgs) -> Result<Exit, CliError> {
    let c = ctx(app)?;
    if let Some(name) = &a.sandbox {
        return scan_sandbox(app, &c, name, &a.probe);
    }
    let (inv, mut cache) = inventory(app, &c, &a.probe, a.refresh)?;
    let declared = declared(&c);
    let events = drift::discovered_events(&inv, &declared, &mut cache);
    if !events.is_empty() {
        let state = app.state()?;
        state.append_batch(
            events
                .iter()
                .map(|e| {
                    repoman_state::NewEvent::new(e.type_.clone(), e.object.clone(), e.data.clone())
                })
                .collect(),
        )?;
    }
    // Only after the events are in the log, so a failed append reports them again next time.
    save_cache(app, &mut cache);
    let ghosts = inv
        .installs
        .iter()
        .filter(|i| !declared.contains(&i.id))
        .count();
    if app.ui.json() {
        app.ui.print_json(&json!({
            "stats": inv.stats,
            "installs": inv.installs.len(),
            "ghosts": ghosts,
            "shims": inv.shims.len(),
            "unidentified": inv.unidentified.len(),
            "problems": inv.problems,
            "events": events.len(),
        }))?;
    } else {
        let s = &inv.stats;
        app.ui.data(&format!(
            "{} tools found ({} ghosts), {} shims, {} unidentified; {} probed, {} cached, {} timed out, {} failed in {} ms",
            inv.installs.len(),
            ghosts,
            inv.shims.len(),
            inv.unidentified.len(),
            s.probed,
            s.cached,
            s.timed_out,
            s.failed,
            s.elapsed_ms
        ))?;
        for p in &inv.problems {
            app.ui
                .warn(&format!("cannot read {}: {}", p.path.display(), p.message));
        }
    }
    Ok(Exit::Success)
}

/// Incus exec as the remote channel of a sandbox scan.
struct IncusExec {
    scope: repoman_incus::ProjectScope,
    instance: String,
    wait: Duration,
}

impl RemoteExec for IncusExec {
    fn exec(&self, argv: &[String]) -> Result<RemoteOutput, String> {
        let spec = repoman_incus::ExecSpec::new(argv.iter().cloned()).timeout(self.wait);
        let out = self
            .scope
            .exec(&self.instance, &spec)
            .map_err(|e| e.to_string())?;
        Ok(RemoteOutput {
            code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

fn scan_sandbox(app: &App, c: &Ctx, name: &str, probe: &ProbeArgs) -> Result<Exit, CliError> {
    let dir = project_dir(c, name)?;
    if !(probe.timeout > 0.0 && probe.timeout.is_finite()) {
        return Err(CliError::usage(
            "--timeout must be a positive number of seconds",
        ));
    }
    let incus = repoman_incus::Incus::connect(&app.env)?;
    let opts = RemoteScanOptions {
        timeout: Duration::from_secs_f64(probe.timeout),
        parallelism: probe.jobs.clamp(1, 16),
        ..Default::default()
    };
    let exec = IncusExec {
        scope: incus.project(c.registry.incus_project()),
        instance: name.to_owned(),
        // The tool is killed inside the container at --timeout; the exec call itself gets slack.
        wait: opts.timeout + Duration::from_secs(10),
    };
    let spinner = app.ui.progress_bar(0, "scanning sandbox", false);
    let inv = scan_remote(&exec, &opts, &c.rules);
    spinner.finish_and_clear();
    let inv = inv.map_err(|e| {
        CliError::new(
            Exit::Unavailable,
            format!("cannot scan sandbox `{name}`: {e}"),
        )
        .with_hint(format!(
            "`repoman start {name}` starts it; `repoman list` shows its state"
        ))
    })?;
    let loaded = drift::load_projects(&[(name.to_owned(), dir)], &c.globals);
    let rows = drift::status(&loaded[0], &inv, &c.rules);
    let bad = rows
        .iter()
        .any(|r| matches!(r.state, ToolState::Missing | ToolState::Mismatch { .. }));
    if app.ui.json() {
        app.ui
            .print_json(&json!({ "sandbox": name, "inventory": inv, "status": rows }))?;
    } else {
        app.ui.data(&format!(
            "sandbox {name}: {} tools found, {} shims, {} unidentified; {} timed out, {} failed in {} ms",
            inv.installs.len(),
            inv.shims.len(),
            inv.unidentified.len(),
            inv.stats.timed_out,
            inv.stats.failed,
            inv.stats.elapsed_ms
        ))?;
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["TOOL", "WANTS", "IN SANDBOX", "FOUND"]);
        for r in &rows {
            let found = r.state.found();
            table.add_row([
                r.tool.clone(),
                r.versions.join(" "),
                r.state_name().to_owned(),
                found,
            ]);
        }
        for line in table.lines() {
            app.ui.data(line.trim_end())?;
        }
    }
    Ok(if bad { Exit::Failure } else { Exit::Success })
}
