//! `repoman realm ...`: realm contracts between repositories (issue 6).
//!
//! `realm diff` runs the compatibility engine on two schema files outside any realm; the other
//! subcommands work on a realm repository (see `docs/realms.md`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use repoman_realm::compat::{self, DiffReport, Mode, Verdict};
use repoman_realm::yaml::LoadError;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Subcommand)]
pub enum RealmCommand {
    /// Compare two JSON Schemas (JSON or YAML files) and report breaking changes.
    ///
    /// Exit 0 when compatible in the chosen mode (warnings included), 1 when breaking, 2 when a file
    /// is unreadable or the arguments are wrong. BACKWARD: NEW reads data written under OLD;
    /// FORWARD: OLD reads data written under NEW; FULL: both.
    Diff(DiffArgs),
}

/// Output formats of `realm diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

/// Compatibility modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Backward,
    Forward,
    Full,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Backward => Mode::Backward,
            ModeArg::Forward => Mode::Forward,
            ModeArg::Full => Mode::Full,
        }
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old schema (JSON or YAML).
    pub old: PathBuf,
    /// The new schema (JSON or YAML).
    pub new: PathBuf,
    /// Which readers must keep working.
    #[arg(long, value_enum, default_value = "backward")]
    pub mode: ModeArg,
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
}

pub fn run(app: &App, cmd: RealmCommand) -> Result<Exit, CliError> {
    match cmd {
        RealmCommand::Diff(a) => diff(app, a),
    }
}

pub(crate) fn load_error(e: LoadError) -> CliError {
    let hint = match &e {
        LoadError::TooLarge { .. } => Some("split the schema, or compare a smaller excerpt"),
        LoadError::Syntax { .. } | LoadError::Invalid { .. } => {
            Some("fix the file at the position shown")
        }
        LoadError::Io { .. } => None,
    };
    let err = CliError::from_error(Exit::Usage, &e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn diff(app: &App, args: DiffArgs) -> Result<Exit, CliError> {
    let old = repoman_realm::yaml::load_value(&args.old).map_err(load_error)?;
    let new = repoman_realm::yaml::load_value(&args.new).map_err(load_error)?;
    let mode: Mode = args.mode.into();
    let report =
        compat::diff(&old, &new, mode).map_err(|e| CliError::from_error(Exit::Usage, &e))?;
    if app.ui.json() || args.format == DiffFormat::Json {
        app.ui.print_json(&json!({
            "old": args.old,
            "new": args.new,
            "mode": report.mode,
            "verdict": report.verdict,
            "changes": report.changes,
        }))?;
    } else {
        for line in render_report(&report) {
            app.ui.data(&line)?;
        }
    }
    Ok(if report.is_breaking() {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// Text lines for a diff report: a summary line, then one line per change.
pub(crate) fn render_report(report: &DiffReport) -> Vec<String> {
    let count = |v: Verdict| report.changes.iter().filter(|c| c.verdict == v).count();
    let mut lines = vec![format!(
        "{} compatibility: {} ({} breaking, {} warning, {} compatible change{})",
        report.mode.as_str(),
        report.verdict.as_str().to_uppercase(),
        count(Verdict::Breaking),
        count(Verdict::Warning),
        count(Verdict::Compatible),
        if count(Verdict::Compatible) == 1 {
            ""
        } else {
            "s"
        },
    )];
    let width = report
        .changes
        .iter()
        .map(|c| c.pointer.len())
        .max()
        .unwrap_or(0);
    let kind_width = report
        .changes
        .iter()
        .map(|c| c.kind.len())
        .max()
        .unwrap_or(0);
    let mut sorted: Vec<_> = report.changes.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.verdict));
    for c in sorted {
        lines.push(format!(
            "  {:<10} {:<width$}  {:<kind_width$}  {}",
            c.verdict.as_str(),
            c.pointer,
            c.kind,
            c.message,
            width = width,
            kind_width = kind_width
        ));
    }
    lines
}
