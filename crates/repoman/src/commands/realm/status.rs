//! `repoman realm status`: the realm, its domains, this repo's bindings (read-only).

use clap::Args;
use repoman_realm::git::Git;
use repoman_realm::realm::{Realm, find_membership};
use serde_json::json;

use super::{RealmSel, cwd, resolve_realm};
use crate::app::App;
use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub sel: RealmSel,
}

pub(super) fn status(app: &App, args: StatusArgs) -> Result<Exit, CliError> {
    let realm = resolve_realm(app, args.sel.realm.as_deref())?;
    let git = Git::new(&realm.root, &app.env);
    let head = git.head().ok();
    let me = cwd()
        .ok()
        .and_then(|d| find_membership(&d).ok())
        .filter(|(_, m)| m.realm == realm.name())
        .map(|(_, m)| m.repo);
    // One `git status` for every contract file, not one `git show` per contract.
    let changed = git.changed_paths("domains").unwrap_or_default();
    let pending: Vec<String> = realm
        .domains
        .iter()
        .flat_map(|(d, dom)| dom.contracts.keys().map(move |c| (d.clone(), c.clone())))
        .filter(|(d, c)| head.is_none() || changed.contains(&Realm::contract_rel_path(d, c)))
        .map(|(_, c)| c)
        .collect();
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut stale = Vec::new();
    for (d, dom) in &realm.domains {
        for b in dom.bindings.values() {
            let mine = me.as_deref() == Some(b.repo.as_str());
            for e in &b.exports {
                let current = realm.contract(&e.contract).map(|(_, c)| c.version.clone());
                if mine || me.is_none() {
                    exports.push(json!({"repo": b.repo, "domain": d, "contract": e.contract, "version": current, "recorded_version": e.recorded_version}));
                }
            }
            for i in &b.imports {
                let current = realm.contract(&i.contract).map(|(_, c)| c.version.clone());
                if mine || me.is_none() {
                    imports.push(json!({"repo": b.repo, "domain": d, "contract": i.contract, "range": i.version, "resolved_version": i.resolved_version, "current_version": current}));
                }
                if current.is_some() && i.resolved_version != current {
                    stale.push(json!({"repo": b.repo, "contract": i.contract, "resolved_version": i.resolved_version, "current_version": current}));
                }
            }
        }
    }
    let domains: Vec<_> = realm
        .domains
        .values()
        .map(|d| json!({"name": d.file.name, "provider": d.file.provider, "consumers": d.file.consumers, "contracts": d.contracts.values().map(|c| json!({"name": c.name, "version": c.version, "owner": c.owner})).collect::<Vec<_>>()}))
        .collect();
    let out = json!({
        "realm": realm.name(), "path": realm.root, "commit": head, "repo": me,
        "repos": realm.repos.keys().collect::<Vec<_>>(),
        "domains": domains, "exports": exports, "imports": imports,
        "stale_bindings": stale, "pending_contract_changes": pending,
    });
    if app.ui.json() {
        app.ui.print_json(&out)?;
        return Ok(Exit::Success);
    }
    app.ui.data(&format!(
        "realm {} ({}) at {}",
        realm.name(),
        head.as_deref()
            .map_or("no commits", |h| &h[..h.len().min(12)]),
        realm.root.display()
    ))?;
    if let Some(r) = &me {
        app.ui.data(&format!("this repo: {r}"))?;
    }
    for d in realm.domains.values() {
        app.ui.data(&format!(
            "domain {}: {} → {}",
            d.file.name,
            d.file.provider,
            d.file.consumers.join(", ")
        ))?;
        for c in d.contracts.values() {
            app.ui.data(&format!(
                "  contract {} {} (owner {})",
                c.name, c.version, c.owner
            ))?;
        }
    }
    for e in &exports {
        app.ui.data(&format!(
            "export  {} {} @ {}",
            e["repo"].as_str().unwrap_or(""),
            e["contract"].as_str().unwrap_or(""),
            e["version"].as_str().unwrap_or("?")
        ))?;
    }
    for i in &imports {
        app.ui.data(&format!(
            "import  {} {} {} (resolved {}, current {})",
            i["repo"].as_str().unwrap_or(""),
            i["contract"].as_str().unwrap_or(""),
            i["range"].as_str().unwrap_or(""),
            i["resolved_version"].as_str().unwrap_or("-"),
            i["current_version"].as_str().unwrap_or("?")
        ))?;
    }
    for s in &stale {
        app.ui.data(&format!(
            "stale   {} resolved {} {}, contract is at {}",
            s["repo"].as_str().unwrap_or(""),
            s["contract"].as_str().unwrap_or(""),
            s["resolved_version"].as_str().unwrap_or("-"),
            s["current_version"].as_str().unwrap_or("?")
        ))?;
    }
    for p in &pending {
        app.ui.data(&format!(
            "pending contract change: {p} (uncommitted in the realm repository)"
        ))?;
    }
    Ok(Exit::Success)
}
