//! `repoman realm diff`: the compatibility engine on two schema files outside any realm.

use repoman_core::ErrorKind;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use repoman_realm::compat::{self, CompatError, Mode, Profile};
use serde_json::json;

use super::load_error;
use super::render::render_report;
use crate::app::App;
use crate::error::{CliError, Exit};

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

/// Whose rules decide the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Breaking when some document valid under the old schema is invalid under the new one.
    Semantic,
    /// Confluent Schema Registry's verdicts (it accepts `required` names missing from
    /// `properties`, and newly required properties with a `default`).
    Confluent,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Semantic => Profile::Semantic,
            ProfileArg::Confluent => Profile::Confluent,
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
    /// Whose rules decide the verdict (see docs/realms.md for where they differ).
    #[arg(long, value_enum, default_value = "semantic")]
    pub profile: ProfileArg,
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
}

pub(super) fn diff(app: &App, args: DiffArgs) -> Result<Exit, CliError> {
    let old = repoman_realm::yaml::load_value(&args.old).map_err(load_error)?;
    let new = repoman_realm::yaml::load_value(&args.new).map_err(load_error)?;
    app.check_cancelled()?;
    let mode: Mode = args.mode.into();
    let profile: Profile = args.profile.into();
    let opts = compat::Options {
        profile,
        cancel: Some(app.cancel.clone()),
        ..compat::Options::default()
    };
    let report = match compat::analyze_with(&old, &new, &opts) {
        Ok(analysis) => analysis.report(mode),
        Err(CompatError::Cancelled) => return Err(CliError::interrupted()),
        Err(e) => return Err(CliError::of_kind(ErrorKind::Usage, &e, None)),
    };
    if app.ui.json() || args.format == DiffFormat::Json {
        app.ui.print_json(&json!({
            "old": args.old,
            "new": args.new,
            "mode": report.mode,
            "profile": profile,
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
