//! `repoman trust`: review a repo's `.repoman.toml` and record that a human trusts it
//! (DESIGN.md §5a). Also the review `new` runs on first use, and the "changed since trusted"
//! report of `update` and `status`.

use clap::Args;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, Exit};
use crate::trust_review::{check_of, repo_of, require_human, show};
use repoman_core::ProjectName;
use repoman_core::registry::{OVERRIDES_FILE, ProjectOverrides};
use repoman_sandbox::estate::Estate;
use repoman_state::TrustStatus;

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
