//! Trust of in-repo configuration as the CLI shows it (docs/security.md "Trust for in-repo
//! configuration"): the review shared by `repoman trust` and `repoman new` on first use, and the
//! warnings `status` and `update` give about untrusted or changed `.repoman.toml` files.

use crate::app::App;
use crate::error::{CliError, Exit};
use repoman_core::registry::{OVERRIDES_FILE, ProjectOverrides};
use repoman_core::{ProjectName, RepoDirName};
use repoman_sandbox::desired;
use repoman_sandbox::estate::Estate;
use repoman_state::ActorKind;
use repoman_state::{TrustCheck, TrustStatus};

/// The repo directory of a project: its registration, else `--repo`, else the name.
pub(crate) fn repo_of(
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
pub(crate) fn check_of(
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
pub(crate) fn show(
    app: &App,
    check: &TrustCheck,
    text: &str,
    path: &std::path::Path,
) -> Result<(), CliError> {
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
pub(crate) fn require_human(state: &repoman_state::State, name: &str) -> Result<(), CliError> {
    let id = state.identity();
    if id.actor_kind != ActorKind::Human {
        return Err(CliError::from(repoman_state::StateError::NotPermitted {
            actor: id.actor.clone(),
            action: format!("trust the {OVERRIDES_FILE} of `{name}`"),
        }));
    }
    Ok(())
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
