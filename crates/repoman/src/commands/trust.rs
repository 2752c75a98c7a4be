//! `repoman trust`: review a repo's `.repoman.toml` and record that a human trusts it
//! (DESIGN.md §5a). Also the review `new` runs on first use, and the "changed since trusted"
//! report of `update` and `status`.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_core::registry::{OVERRIDES_FILE, ProjectOverrides};
use repoman_core::{ProjectName, RepoDirName};
use repoman_sandbox::desired;
use repoman_sandbox::estate::Estate;
use repoman_state::ActorKind;
use repoman_state::{TrustCheck, TrustStatus};

/// Trust a project's `.repoman.toml` after reviewing it (or its diff against the trusted version).
///
/// The sandbox can write its repo, so repoman applies the repo's `.repoman.toml` (image,
/// profiles, `[[mount]]`s, `[env]`) only in a version a human has trusted: this command shows the
/// file, or the unified diff against the version trusted last, asks for confirmation (or takes
/// --yes) and records the file's BLAKE3 hash and text in a `config.trusted` event. Until then
/// `new`, `update` and `status --repair` apply the last trusted version (or nothing) and say so.
/// Only a human can trust: an agent, the daemon or CI (REPOMAN_ACTOR, CI) is refused (exit 3).
/// NAME need not be registered yet (trust before `repoman new NAME`; --repo when the directory
/// under local_repos is not NAME).
///
/// Examples:
///   repoman trust app
///   repoman trust app --dry-run --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TrustArgs {
    /// The project.
    pub name: String,
    /// Repo directory name under local_repos, for a project not registered yet (default: NAME).
    #[arg(long, value_name = "DIRNAME")]
    pub repo: Option<String>,
    /// Show the file or the diff and what would be recorded, without recording anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// The repo directory of a project: its registration, else `--repo`, else the name.
fn repo_of(
    estate: &Estate,
    name: &str,
    repo: Option<&str>,
) -> Result<std::path::PathBuf, CliError> {
    let dirname = match (estate.file.registry.project(name), repo) {
        (Some(e), Some(r)) if e.repo.as_str() != r => {
            return Err(CliError::usage(format!(
                "project `{name}` is registered with repo `{}`, not `{r}`",
                e.repo
            )));
        }
        (Some(e), _) => e.repo.to_string(),
        (None, Some(r)) => RepoDirName::parse(r)
            .map_err(|e| CliError::usage(e.to_string()))?
            .to_string(),
        (None, None) => name.to_owned(),
    };
    Ok(desired::repo_path(&estate.settings, &dirname)?)
}

/// The check of `name`'s `.repoman.toml` in `repo`, with the file's text.
fn check_of(
    estate: &Estate,
    name: &str,
    repo: &std::path::Path,
) -> Result<(TrustCheck, Option<String>), CliError> {
    let text = ProjectOverrides::read_raw(repo)?;
    Ok((
        TrustCheck::new(name, text.as_deref(), estate.trusted.get(name)),
        text,
    ))
}

/// Show what a human is asked to trust: the whole file the first time, else the diff.
fn show(app: &App, check: &TrustCheck, text: &str, path: &std::path::Path) -> Result<(), CliError> {
    match check.status {
        TrustStatus::Untrusted => {
            app.ui.info(&format!(
                "{} (never trusted; {} bytes):",
                path.display(),
                text.len()
            ));
            for line in text.lines() {
                app.ui.info(&format!("  | {line}"));
            }
        }
        TrustStatus::Changed => {
            app.ui.info(&format!(
                "{} changed since trusted ({} -> {}):",
                path.display(),
                check.trusted_hash.as_deref().unwrap_or("-"),
                check.current_hash.as_deref().unwrap_or("-"),
            ));
            for line in check.diff.as_deref().unwrap_or_default().lines() {
                app.ui.info(&format!("  {line}"));
            }
        }
        TrustStatus::Trusted | TrustStatus::Absent => {}
    }
    Ok(())
}

/// Refuse before showing anything when this process is not a human (agent, daemon, CI).
fn require_human(state: &repoman_state::State, name: &str) -> Result<(), CliError> {
    let id = state.identity();
    if id.actor_kind != ActorKind::Human {
        return Err(CliError::from(repoman_state::StateError::NotPermitted {
            actor: id.actor.clone(),
            action: format!("trust the {OVERRIDES_FILE} of `{name}`"),
        }));
    }
    Ok(())
}

pub fn run(app: &App, args: TrustArgs) -> Result<Exit, CliError> {
    ProjectName::parse(&args.name).map_err(|e| CliError::usage(e.to_string()))?;
    let estate = Estate::new(app.registry()?, &app.env);
    if let Some(e) = &estate.trust_error {
        return Err(CliError::failed(format!(
            "cannot read the trusted versions from the event log: {e}"
        )));
    }
    let name = args.name.as_str();
    let repo = repo_of(&estate, name, args.repo.as_deref())?;
    let path = repo.join(OVERRIDES_FILE);
    let (check, text) = check_of(&estate, name, &repo)?;
    let state = if args.dry_run {
        app.state_read_only()?
    } else {
        app.state()?
    };
    require_human(&state, name)?;
    let Some(text) = text else {
        return Err(CliError::failed(format!(
            "{} does not exist: nothing to trust",
            path.display()
        ))
        .with_hint("without a .repoman.toml only repoman.toml applies"));
    };
    // A file that does not parse cannot be applied: say so now, not at the next `update`.
    ProjectOverrides::parse(&path, &text)?;
    let out = |trusted: bool, seq: Option<u64>| {
        json!({
            "project": name,
            "path": path,
            "status": check.status,
            "hash": check.current_hash,
            "trusted_hash": check.trusted_hash,
            "diff": check.diff,
            "dry_run": args.dry_run,
            "trusted": trusted,
            "seq": seq,
        })
    };
    if check.status == TrustStatus::Trusted {
        app.ui.success(&format!(
            "{} is trusted already ({})",
            path.display(),
            check.current_hash.as_deref().unwrap_or("")
        ));
        if app.ui.json() {
            app.ui.print_json(&out(true, None))?;
        }
        return Ok(Exit::Success);
    }
    show(app, &check, &text, &path)?;
    if args.dry_run {
        app.ui.info(&format!(
            "trust would record {} for `{name}` (dry run: nothing recorded)",
            check.current_hash.as_deref().unwrap_or("")
        ));
        if app.ui.json() {
            app.ui.print_json(&out(false, None))?;
        }
        return Ok(Exit::Success);
    }
    if !app.ui.confirm(
        &format!("trust this {OVERRIDES_FILE} for `{name}`?"),
        "--yes",
    )? {
        return Err(CliError::failed("not trusted"));
    }
    let ev = state.trust_config(name, &text, check.trusted_hash.as_deref())?;
    app.ui.success(&format!(
        "trusted {} ({}); `repoman update {name}` applies it",
        path.display(),
        check.current_hash.as_deref().unwrap_or("")
    ));
    if app.ui.json() {
        app.ui.print_json(&out(true, Some(ev.seq)))?;
    }
    Ok(Exit::Success)
}

/// `new` on first use: when the repo's `.repoman.toml` is not the trusted version, show it and
/// ask on a terminal (never taken from --yes); records the trust and updates `estate`.
/// Non-interactive: refused with the `repoman trust` command to run.
pub(crate) fn review_for_new(
    app: &App,
    estate: &mut Estate,
    name: &str,
    repo: Option<&str>,
    dry_run: bool,
) -> Result<(), CliError> {
    let Ok(parsed) = ProjectName::parse(name) else {
        return Ok(()); // `new` reports the bad name itself.
    };
    let name = parsed.as_str();
    let repo_path = match repo_of(estate, name, repo) {
        Ok(p) => p,
        Err(_) => return Ok(()), // `new` reports a bad --repo or missing local_repos itself.
    };
    let (check, text) = check_of(estate, name, &repo_path)?;
    if !check.needs_trust() {
        return Ok(());
    }
    let path = repo_path.join(OVERRIDES_FILE);
    let trust_cmd = match repo {
        Some(r) if r != name => format!("repoman trust {name} --repo {r}"),
        _ => format!("repoman trust {name}"),
    };
    let text = text.unwrap_or_default();
    // A file that does not parse is reported as such (file:line:col), trusted or not.
    ProjectOverrides::parse(&path, &text)?;
    if dry_run {
        app.ui.warn(&check.summary());
        return Ok(());
    }
    if !app.ui.can_prompt() {
        return Err(CliError::new(
            Exit::Blocked,
            format!(
                "{} is {}: repoman applies only a version you have reviewed",
                path.display(),
                if check.status == TrustStatus::Changed {
                    "changed since trusted"
                } else {
                    "not trusted"
                }
            ),
        )
        .with_hint(format!(
            "review and trust it with `{trust_cmd}`, then run `repoman new` again"
        )));
    }
    let state = app.state()?;
    require_human(&state, name)?;
    show(app, &check, &text, &path)?;
    // Asked on the terminal even with --yes: --yes never trusts a file by itself.
    if !app
        .ui
        .ask_on_terminal(&format!("trust this {OVERRIDES_FILE} for `{name}`?"))?
    {
        return Err(CliError::failed(format!("{} not trusted", path.display()))
            .with_hint(format!("review it, then `{trust_cmd}`")));
    }
    state.trust_config(name, &text, check.trusted_hash.as_deref())?;
    if let Some(t) = state.trusted_config(name)? {
        estate.trusted.insert(name.to_owned(), t);
    }
    Ok(())
}

/// Warn about every project (or only `only`) whose `.repoman.toml` is untrusted or changed since
/// trusted, with the diff when `diff`. Returns those checks (for `--json`).
pub(crate) fn warn_untrusted(
    app: &App,
    estate: &Estate,
    only: Option<&str>,
    diff: bool,
) -> Vec<TrustCheck> {
    let mut out = Vec::new();
    if let Some(e) = &estate.trust_error {
        app.ui.warn(&format!(
            "cannot read the trusted .repoman.toml versions ({e}); no in-repo configuration is applied"
        ));
    }
    for p in &estate.file.registry.projects {
        if only.is_some_and(|o| o != p.name.as_str()) {
            continue;
        }
        let Ok(check) = estate.trust_check(p) else {
            continue;
        };
        if !check.needs_trust() {
            continue;
        }
        app.ui.warn(&check.summary());
        if diff {
            for line in check.diff.as_deref().unwrap_or_default().lines() {
                app.ui.info(&format!("  {line}"));
            }
        }
        out.push(check);
    }
    out
}
