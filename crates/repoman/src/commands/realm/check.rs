//! `repoman realm check`: contract checks for CI, in the realm repository or a member repo.

use repoman_core::{ErrorKind, ObjectId};
use std::path::Path;
use std::time::Duration;

use clap::{Args, ValueEnum};
use repoman_realm::cache::Cache;
use repoman_realm::check::{self, CheckMode, CheckOptions, CheckReport, Context};
use repoman_realm::git::Git;
use repoman_realm::realm::{Realm, RealmEvent, find_membership};
use repoman_realm::trust;
use serde_json::json;

use super::render::{render_check_text, render_github, render_junit};
use super::{RealmSel, cwd, realm_error, record, resolve_realm_root, same_realm};
use crate::app::App;
use crate::error::{CliError, Exit};

/// `realm check` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Junit,
    Github,
}

/// `realm check --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckModeArg {
    Exporter,
    Importer,
    Contract,
    Compatibility,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Which checks (repeatable; default depends on where it runs).
    #[arg(long, value_enum)]
    pub mode: Vec<CheckModeArg>,
    /// Compare this contract version ... (compatibility mode)
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// ... with this one.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Warnings fail the check too.
    #[arg(long)]
    pub strict: bool,
    /// Bypass the cache (nothing read, nothing written).
    #[arg(long)]
    pub no_cache: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// Seconds a validation hook may run before it is killed.
    #[arg(long, default_value_t = 60)]
    pub hook_timeout: u64,
    #[command(flatten)]
    pub sel: RealmSel,
}

pub(super) fn check_cmd(app: &App, args: CheckArgs) -> Result<Exit, CliError> {
    let root = resolve_realm_root(app, args.sel.realm.as_deref())?;
    let here = cwd()?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    // Where the check runs decides the cache's place, and the cache holds the realm's load.
    let membership = if same(&here, &root) {
        None
    } else {
        match find_membership(&here) {
            Ok(m) => Some(m),
            Err(_) if args.sel.realm.is_some() => None,
            Err(e) => return Err(realm_error(e)),
        }
    };
    let repo_dir = membership
        .as_ref()
        .map_or_else(|| root.clone(), |(dir, _)| dir.clone());
    let mut cache = if args.no_cache {
        Cache::disabled(&repo_dir)
    } else {
        Cache::open(&repo_dir).unwrap_or_else(|_| Cache::disabled(&repo_dir))
    };
    let realm = Realm::load_cached(&root, &mut cache).map_err(realm_error)?;
    let ctx = match membership {
        None => Context::Realm,
        Some((dir, m)) => {
            same_realm(&dir, &m, &realm)?;
            Context::Member { repo: m.repo, dir }
        }
    };
    let head = Git::new(&realm.root, &app.env)
        .head()
        .map_err(|e| realm_error(e.into()))?;
    let trust_state = trust::state(&app.paths.state_dir, &realm.root, &head)
        .map_err(|e| CliError::of_kind(ErrorKind::Failed, &e, None))?;
    let modes = args
        .mode
        .iter()
        .map(|m| match m {
            CheckModeArg::Exporter => CheckMode::Exporter,
            CheckModeArg::Importer => CheckMode::Importer,
            CheckModeArg::Contract => CheckMode::Contract,
            CheckModeArg::Compatibility => CheckMode::Compatibility,
        })
        .collect();
    let opts = CheckOptions {
        modes,
        from: args.from.clone(),
        to: args.to.clone(),
        strict: args.strict,
        ci: app
            .env
            .get("CI")
            .is_some_and(|v| !v.is_empty() && v != "false" && v != "0"),
        trust: trust_state,
        hook_timeout: Duration::from_secs(args.hook_timeout.max(1)),
        now: app.clock.now().as_second(),
    };
    let report = check::check(&realm, &ctx, &opts, &app.env, &mut cache).map_err(realm_error)?;
    record_check(app, &realm, &report)?;
    let format = if app.ui.json() {
        CheckFormat::Json
    } else {
        args.format
    };
    match format {
        CheckFormat::Json => app.ui.print_json(&report)?,
        CheckFormat::Text => {
            for line in render_check_text(&report) {
                app.ui.data(&line)?;
            }
        }
        CheckFormat::Junit => app.ui.data(&render_junit(&report))?,
        CheckFormat::Github => {
            for line in render_github(&report) {
                app.ui.data(&line)?;
            }
        }
    }
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn record_check(app: &App, realm: &Realm, report: &CheckReport) -> Result<(), CliError> {
    let mut events = vec![RealmEvent::new(
        "realm.checked",
        ObjectId::realm(realm.name()).to_string(),
        json!({"ok": report.ok, "modes": report.modes, "errors": report.errors, "warnings": report.warnings, "context": report.context, "strict": report.strict}),
    )];
    for d in &report.compatibility {
        // A contract no domain holds any more is still recorded, under the domain `?`.
        let domain = realm.contract(&d.contract).map_or("?", |(dom, _)| dom);
        let obj = ObjectId::contract(realm.name(), domain, &d.contract).to_string();
        events.push(RealmEvent::new(
            "contract.checked",
            obj,
            json!({"from": d.from, "to": d.to, "mode": d.mode, "verdict": d.verdict}),
        ));
    }
    record(app, events)
}
