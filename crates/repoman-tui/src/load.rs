//! Filling a [`Snapshot`] from the domain crates, in two steps:
//!
//! - [`index`]: the registry and the event log's index only (no Incus, no file-system scan of
//!   the repos), fast enough for the first frame;
//! - [`live`]: the same plus the observations every CLI command makes: one Incus listing
//!   (`repoman list` / `status`), the backup mount guard (`sync`), the trust check of each
//!   `.repoman.toml`, `explain` for each project, tool manifests and the tool inventory
//!   (`tools status`), and the realms (`realm status`).
//!
//! A source that fails does not stop the others: its error is kept in the snapshot and shown in
//! its view. Nothing here writes: the state is opened read-only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use repoman_core::registry::{ProjectOverrides, RegistryFile};
use repoman_core::settings::Settings;
use repoman_state::{ConflictFilter, EventQuery, State, StateOptions, TrustCheck, TrustStatus};

use crate::Context;
use crate::snapshot::{BackupRow, EventRow, ProjectRow, RealmRow, Snapshot, Source, ToolRow};

/// How many recent events the Events view holds.
pub const EVENTS_SHOWN: u64 = 500;

/// The state for reading (never creates a file).
pub(crate) fn open_state(ctx: &Context) -> Result<State, String> {
    State::open_with(
        &ctx.paths,
        &ctx.env,
        ctx.clock.clone(),
        StateOptions {
            read_only: true,
            actor: ctx.actor.clone(),
            ..StateOptions::default()
        },
    )
    .map_err(|e| e.to_string())
}

/// The registry, typed-parsed; with `schema`, also checked against its JSON Schema (what
/// `repoman` commands do; compiling the schema is most of the cost, so the first frame skips it
/// and the live refresh reports what it finds).
fn registry_checked(ctx: &Context, schema: bool) -> Result<RegistryFile, String> {
    let file = RegistryFile::load(&ctx.paths.config_file).map_err(|e| e.to_string())?;
    if schema && file.exists() {
        repoman_state::schemas::validate_registry_file(&ctx.paths.config_file)
            .map_err(|e| format!("{e}; fix {}", ctx.paths.config_file.display()))?;
    }
    Ok(file)
}

/// The first frame's data: registry (typed parse only) + index.
pub fn index(ctx: &Context) -> Snapshot {
    index_with(ctx, false)
}

fn index_with(ctx: &Context, schema: bool) -> Snapshot {
    let mut s = Snapshot {
        source: Source::Index,
        now_secs: ctx.clock.now().as_second(),
        ..Snapshot::default()
    };
    let reg = match registry_checked(ctx, schema) {
        Ok(r) => Some(r),
        Err(e) => {
            s.registry_error = Some(e);
            None
        }
    };
    let settings = reg
        .as_ref()
        .map(|r| Settings::resolve(&r.registry, &ctx.env));
    if let Some(set) = &settings {
        s.backup_root = set
            .backup_root
            .as_ref()
            .map(|b| b.value.display().to_string());
    }
    if let Some(r) = &reg {
        for p in &r.registry.projects {
            let name = p.name.as_str().to_owned();
            s.projects.push(ProjectRow {
                name: name.clone(),
                registered: true,
                state: if p.container {
                    "?".into()
                } else {
                    "none".into()
                },
                repo: p.repo.to_string(),
                repo_path: settings.as_ref().and_then(|set| {
                    repoman_sandbox::desired::repo_path(set, p.repo.as_str())
                        .ok()
                        .map(|p| p.display().to_string())
                }),
                last_sync: p.last_sync.clone(),
                ..ProjectRow::default()
            });
            s.backups.push(BackupRow {
                project: name,
                last_sync: p.last_sync.clone(),
                ..BackupRow::default()
            });
        }
    }
    let state = match open_state(ctx) {
        Ok(st) => st,
        Err(e) => {
            s.state_error = Some(e);
            return s;
        }
    };
    if let Err(e) = from_index(&state, &mut s) {
        s.state_error = Some(e);
    }
    s
}

fn from_index(state: &State, s: &mut Snapshot) -> Result<(), String> {
    let err = |e: repoman_state::StateError| e.to_string();
    s.head_seq = state.head().map_err(err)?.seq;
    let conflicts = state
        .conflicts(ConflictFilter {
            pending_only: true,
            ..ConflictFilter::default()
        })
        .map_err(err)?;
    for p in &mut s.projects {
        p.conflicts = conflicts
            .iter()
            .filter(|c| c.project.as_deref() == Some(p.name.as_str()))
            .count();
    }
    for b in &mut s.backups {
        let object = format!("backup:{}", b.project);
        if let Some(ev) = state.last_event(&object, "backup.synced").map_err(err)? {
            b.last_sync = Some(ev.at.clone());
            b.manifest_root = ev.data["root"].as_str().map(str::to_owned);
        }
        if let Some(ev) = state.last_event(&object, "backup.verified").map_err(err)? {
            b.last_verify = Some(ev.at.clone());
            b.verify_result = ev.data["clean"]
                .as_bool()
                .map(|c| if c { "ok" } else { "problems" }.to_owned());
        }
    }
    from_index_events(state, s)
}

fn from_index_events(state: &State, s: &mut Snapshot) -> Result<(), String> {
    let err = |e: repoman_state::StateError| e.to_string();
    let events = state
        .events(&EventQuery {
            limit: Some(EVENTS_SHOWN),
            ..EventQuery::default()
        })
        .map_err(err)?;
    s.events = events
        .into_iter()
        .rev()
        .map(|e| EventRow {
            seq: e.seq,
            at: e.at,
            type_: e.type_,
            object: e.object,
            actor: e.actor,
            data: serde_json::to_string_pretty(&e.data).unwrap_or_default(),
            prev: e.prev,
            hash: e.hash,
        })
        .collect();
    Ok(())
}

/// The recent events, newest first, when the log head moved past `seen` (None: unchanged or
/// unreadable; the next full refresh reports errors).
pub fn events_since(ctx: &Context, seen: Option<u64>) -> Option<(u64, Vec<EventRow>)> {
    let state = open_state(ctx).ok()?;
    let head = state.head().ok()?.seq;
    if Some(head) == seen {
        return None;
    }
    let mut s = Snapshot::default();
    from_index_events(&state, &mut s).ok()?;
    Some((head, s.events))
}

/// The index snapshot plus the live observations.
pub fn live(ctx: &Context) -> Snapshot {
    let mut s = index_with(ctx, true);
    s.source = Source::Live;
    // Validated above (an invalid registry is reported and nothing is observed with it).
    if s.registry_error.is_some() {
        return s;
    }
    let Ok(reg) = registry_checked(ctx, false) else {
        return s;
    };
    let settings = Settings::resolve(&reg.registry, &ctx.env);
    if let Ok(for_session) = registry_checked(ctx, false) {
        observe_incus(ctx, for_session, &mut s);
    }
    if let Some(g) = repoman_backup::mount::MountGuard::from_settings(&settings) {
        s.backup_error = g.check().err().map(|e| e.to_string());
    }
    let state = open_state(ctx).ok();
    trust(&reg, &settings, state.as_ref(), &mut s);
    if let Some(state) = &state {
        for p in s.projects.iter_mut().filter(|p| p.registered) {
            match repoman_state::explain::explain(state, &format!("project:{}", p.name)) {
                Ok(x) => p.explain = x.to_text().lines().map(str::to_owned).collect(),
                Err(e) => p.explain = vec![format!("explain: {e}")],
            }
        }
    }
    tools(ctx, &reg, &settings, &mut s);
    realms(ctx, state.as_ref(), &mut s);
    s
}

/// One Incus listing, as `repoman list` and `repoman status` make it.
fn observe_incus(ctx: &Context, reg: RegistryFile, s: &mut Snapshot) {
    let needs_incus = reg.registry.projects.iter().any(|p| p.container);
    let session = match repoman_sandbox::session::Session::open(reg, &ctx.env) {
        Ok(sess) => sess,
        Err(e) => {
            if needs_incus {
                s.incus_error = Some(e.to_string());
            }
            return;
        }
    };
    let listing = repoman_sandbox::listing::listing(&session);
    let health = repoman_sandbox::health::health(&session, None, s.now_secs, None);
    let mounts: BTreeMap<String, Vec<String>> = health
        .sandboxes
        .iter()
        .map(|i| {
            let m = i
                .mounts
                .iter()
                .map(|m| {
                    let mut line = format!("{} -> {}", m.source, m.path);
                    if !m.present {
                        line.push_str(" (not on the container)");
                    }
                    if !m.source_exists {
                        line.push_str(" (source missing)");
                    }
                    line
                })
                .collect();
            (i.name.clone(), m)
        })
        .collect();
    let old: BTreeMap<String, ProjectRow> =
        s.projects.drain(..).map(|p| (p.name.clone(), p)).collect();
    for r in listing.sandboxes {
        let mut p = old.get(&r.name).cloned().unwrap_or_default();
        p.name = r.name.clone();
        p.registered = r.registered;
        p.state = r.state;
        p.ipv4 = r.ipv4;
        p.repo = r.repo.unwrap_or_default();
        p.repo_path = r.repo_path.or(p.repo_path);
        p.last_sync = r.last_sync.or(p.last_sync);
        p.drift = r.drift.map(str::to_owned);
        p.mounts = mounts.get(&r.name).cloned().unwrap_or_default();
        s.projects.push(p);
    }
    if !listing.project_exists && !s.projects.is_empty() && needs_incus {
        s.incus_error = Some(format!(
            "the Incus project `{}` does not exist; run `repoman setup`",
            listing.incus_project
        ));
    }
}

/// Which `.repoman.toml` files are untrusted or changed since trusted (what `status` warns).
fn trust(reg: &RegistryFile, settings: &Settings, state: Option<&State>, s: &mut Snapshot) {
    let trusted = state
        .and_then(|st| st.trusted_configs().ok())
        .unwrap_or_default();
    for p in s.projects.iter_mut().filter(|p| p.registered) {
        let Some(entry) = reg.registry.project(&p.name) else {
            continue;
        };
        let Ok(dir) = repoman_sandbox::desired::repo_path(settings, entry.repo.as_str()) else {
            continue;
        };
        let text = match ProjectOverrides::read_raw(&dir) {
            Ok(t) => t,
            Err(e) => {
                p.untrusted = Some(format!("unreadable: {e}"));
                continue;
            }
        };
        let check = TrustCheck::new(&p.name, text.as_deref(), trusted.get(&p.name));
        p.untrusted = match check.status {
            TrustStatus::Untrusted => Some("untrusted".into()),
            TrustStatus::Changed => Some("changed".into()),
            _ => None,
        };
    }
}

/// Declared vs installed, as `repoman tools status --all` computes it; provers and installed
/// tools that no project declares, as `tools list` shows them.
fn tools(ctx: &Context, reg: &RegistryFile, settings: &Settings, s: &mut Snapshot) {
    use repoman_tools::discover::{self, ProbeCache, ScanOptions, ScanReporter};
    use repoman_tools::drift;
    use repoman_tools::manifest::{self, ManifestSet};

    struct Quiet;
    impl ScanReporter for Quiet {}

    let rules = match repoman_tools::rules::Rules::load(&ctx.paths.config_dir) {
        Ok(r) => r,
        Err(e) => {
            s.tools_error = Some(e.to_string());
            return;
        }
    };
    let globals = manifest::global_candidates(
        ctx.paths.home.as_deref(),
        ctx.env.get_path("XDG_CONFIG_HOME").as_deref(),
    );
    let projects: Vec<(String, PathBuf)> = match &settings.local_repos {
        Some(local) => reg
            .registry
            .projects
            .iter()
            .map(|p| {
                (
                    p.name.as_str().to_owned(),
                    local.value.join(p.repo.as_str()),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let loaded = drift::load_projects(&projects, &globals);
    let opts = ScanOptions::new(
        &ctx.env,
        ctx.paths.home.as_deref(),
        reg.registry.defaults.tools_dirs.as_deref(),
    );
    let mut cache = ProbeCache::load(&ctx.paths.cache_dir);
    let inv = discover::scan(&opts, &rules, &mut cache, &Quiet);
    // The cache is rebuildable; failing to save it only costs time next run.
    let _ = cache.save(&ctx.paths.cache_dir);
    let mut problems = Vec::new();
    for p in &loaded {
        problems.extend(p.manifests.problems.iter().map(|pr| pr.message.clone()));
        for r in drift::status(p, &inv, &rules) {
            let found = r.state.found();
            let rel = r.file.strip_prefix(&p.dir).unwrap_or(&r.file);
            s.tools.push(ToolRow {
                project: p.project.clone(),
                tool: r.tool.clone(),
                wants: r.versions.join(" "),
                state: r.state_name().to_owned(),
                found,
                declared_in: format!("{}:{}", rel.display(), r.line),
                file: r.file.display().to_string(),
                dir: p.dir.display().to_string(),
            });
        }
    }
    if !problems.is_empty() {
        s.tools_error = Some(problems.join("; "));
    }
    let globals_set = ManifestSet::load_files(&globals, manifest::Scope::Global);
    let declared = drift::declared_ids(&loaded, &globals_set, &rules);
    let mut provers: Vec<(String, String)> = inv
        .installs
        .iter()
        .filter(|i| i.category == repoman_tools::rules::Category::Prover)
        .map(|i| {
            (
                i.id.clone(),
                i.version.clone().unwrap_or_else(|| "?".into()),
            )
        })
        .collect();
    provers.sort();
    provers.dedup();
    s.provers = provers;
    let mut ghosts: Vec<String> = inv
        .installs
        .iter()
        .filter(|i| !declared.contains(&i.id))
        .map(|i| i.id.clone())
        .collect();
    ghosts.sort();
    ghosts.dedup();
    s.ghosts = ghosts;
}

/// The realms under `<state>/realms/` and the one of the current directory, as
/// `repoman realm status` shows each; the last `contract.checked` verdicts from the index.
fn realms(ctx: &Context, state: Option<&State>, s: &mut Snapshot) {
    use repoman_realm::realm::{Realm, find_membership, membership_root};
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(ctx.paths.state_dir.join("realms")) {
        for e in rd.flatten() {
            if e.path().join("realm.yaml").is_file() {
                roots.push(e.path());
            }
        }
    }
    if let Ok(here) = std::env::current_dir() {
        if here.join("realm.yaml").is_file() {
            roots.push(here);
        } else if let Ok((dir, m)) = find_membership(&here) {
            roots.push(membership_root(&dir, &m));
        }
    }
    roots.sort();
    roots.dedup();
    let checked = state
        .and_then(|st| {
            st.events(&EventQuery {
                type_: Some("contract.checked".into()),
                limit: Some(200),
                ..EventQuery::default()
            })
            .ok()
        })
        .unwrap_or_default();
    let mut errors = Vec::new();
    for root in roots {
        let realm = match Realm::load(&root) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{}: {e}", root.display()));
                continue;
            }
        };
        let mut row = RealmRow {
            name: realm.name().to_owned(),
            path: realm.root.display().to_string(),
            ..RealmRow::default()
        };
        for (d, dom) in &realm.domains {
            row.domains.push(format!(
                "{}: {} -> {}",
                d,
                dom.file.provider,
                dom.file.consumers.join(", ")
            ));
            for c in dom.contracts.values() {
                row.contracts
                    .push(format!("{d}/{} {} (owner {})", c.name, c.version, c.owner));
            }
            for b in dom.bindings.values() {
                for e in &b.exports {
                    row.bindings
                        .push(format!("{} exports {}", b.repo, e.contract));
                }
                for i in &b.imports {
                    let current = realm.contract(&i.contract).map(|(_, c)| c.version.clone());
                    row.bindings
                        .push(format!("{} imports {} {}", b.repo, i.contract, i.version));
                    if current.is_some() && i.resolved_version != current {
                        row.stale.push(format!(
                            "{} resolved {} {}, contract is at {}",
                            b.repo,
                            i.contract,
                            i.resolved_version.as_deref().unwrap_or("-"),
                            current.as_deref().unwrap_or("?")
                        ));
                    }
                }
            }
        }
        let prefix = format!("contract:{}/", row.name);
        row.verdicts = checked
            .iter()
            .rev()
            .filter(|e| e.object.starts_with(&prefix))
            .take(20)
            .map(|e| {
                let verdict = e.data["verdict"]
                    .as_str()
                    .or_else(|| e.data["result"].as_str())
                    .unwrap_or("?");
                format!(
                    "{} {} {}",
                    e.at.get(..19).unwrap_or(&e.at),
                    e.object,
                    verdict
                )
            })
            .collect();
        s.realms.push(row);
    }
    if !errors.is_empty() {
        s.realm_error = Some(errors.join("; "));
    }
}
