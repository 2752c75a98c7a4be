//! One project's sync inside `repoman sync`: prepare, gate, execute and render, with the
//! project's progress bar.

use super::*;

/// One project's progress: its own bar, and the overall bar across projects.
struct ProjectProgress<'a> {
    pb: indicatif::ProgressBar,
    overall: &'a Overall,
    name: String,
    last_bytes: AtomicU64,
    last_files: AtomicU64,
}

impl Progress for ProjectProgress<'_> {
    fn begin(&self, _label: &str, total: Option<u64>, _unit: Unit) {
        self.pb.set_length(total.unwrap_or(0).max(1));
    }
    fn position(&self, done: u64) {
        self.pb.set_position(done);
        let before = self.last_bytes.fetch_max(done, Ordering::Relaxed);
        self.overall.bar.inc(done.saturating_sub(before));
    }
    fn detail(&self, text: &str) {
        self.pb.set_message(format!("{} {text}", self.name));
        // `text` is "N/M files".
        if let Some(n) = text.split('/').next().and_then(|n| n.parse::<u64>().ok()) {
            let before = self.last_files.fetch_max(n, Ordering::Relaxed);
            self.overall
                .files_done
                .fetch_add(n.saturating_sub(before), Ordering::Relaxed);
        }
        self.overall.bar.set_message(format!(
            "all {}/{} files",
            self.overall.files_done.load(Ordering::Relaxed),
            self.overall.files_total.load(Ordering::Relaxed)
        ));
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn sync_one(
    app: &App,
    state: &State,
    reg: &Registry,
    settings: &Settings,
    args: &SyncArgs,
    limits: DeleteLimits,
    estate_id: &str,
    t: &Target,
    overall: &Overall,
) -> Result<Outcome, CliError> {
    let name = t.entry.name.as_str().to_owned();
    let mut s = SyncSettings::new(
        t.src.clone(),
        t.backup_root.clone(),
        app.paths.runtime_dir.join("locks"),
        engine::stat_cache_path(&app.paths.cache_dir, &name),
        engine::manifests_dir(&app.paths.state_dir),
    );
    s.mount = Expected::from_settings(settings);
    s.probe_timeout = settings.probe_timeout.value;
    s.delete = !args.no_delete;
    s.limits = limits;
    s.allow_empty_source = args.allow_empty_source;
    s.adopt = args.adopt;
    s.checksum = args.checksum;
    s.excludes = t.excludes.clone();
    s.lock_timeout = args.lock_timeout.map(Duration::from_secs);
    s.search_path = app.env.get_os("PATH").map(|p| p.to_owned());
    let owner = Owner {
        estate_id: estate_id.to_owned(),
        project: name.clone(),
        repo: t.entry.repo.as_str().to_owned(),
        device: state.identity().device.clone(),
        profile: state.identity().profile.clone(),
    };
    let ui = &app.ui;
    let prep = engine::prepare(s, owner, state, &app.cancel, || {
        ui.info(&format!(
            "waiting for another sync of project {name} to finish..."
        ));
    })
    .map_err(CliError::from)?;
    let decided =
        engine::decide(state, &prep, &reg.policy.rules, args.dry_run).map_err(CliError::from)?;
    let plan_json = serde_json::to_value(&prep.plan).unwrap_or(Value::Null);
    let plan_summary = format!(
        "+{} ~{} -{} ({} to transfer)",
        prep.plan.creates,
        prep.plan.updates + prep.plan.attribute_changes,
        prep.plan.deletes,
        crate::format::human_bytes(prep.plan.bytes)
    );
    let diverged_json =
        conflict::detail(t.entry.repo.as_str(), "", &prep.diverged)["files"].clone();
    let decision = match decided.result {
        Ok(d) => d,
        Err(blocked) => {
            let mut details = Vec::new();
            for v in &blocked.reasons {
                details.push(format!(
                    "{} ({}): {}",
                    if v.effect == Effect::Deny {
                        "denied"
                    } else {
                        "review required"
                    },
                    v.rule,
                    v.reason
                ));
                if let Some(u) = &v.unblock {
                    details.push(format!("  to unblock: {u}"));
                }
            }
            for d in &prep.diverged {
                details.push(format!(
                    "  diverged: {} ({})",
                    repoman_backup::paths::encode_path(&d.path),
                    serde_json::to_value(d.case)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ));
            }
            let reasons_json = serde_json::to_value(&blocked.all_reasons).unwrap_or(Value::Null);
            return Ok(Outcome {
                exit: Exit::Blocked,
                json: json!({"project": name, "status": "blocked", "effect": blocked.effect.as_str(), "plan": plan_json, "reasons": reasons_json, "conflict": decided.conflict_id, "diverged": diverged_json, "decision_seq": blocked.decision_seq}),
                line: format!("{name}\tblocked\t{plan_summary}"),
                details,
                synced_at: None,
            });
        }
    };
    let reasons_json = serde_json::to_value(&decision.reasons).unwrap_or(Value::Null);
    if args.dry_run {
        let details = plan_lines(&prep);
        return Ok(Outcome {
            exit: Exit::Success,
            json: json!({"project": name, "status": "planned", "plan": plan_json, "items": items_json(&prep), "reasons": reasons_json, "rsync": repoman_backup::rsync::display_argv(&prep.job.run_argv(Some(prep.plan.deletes)))}),
            line: format!("{name}\tplanned\t{plan_summary}"),
            details,
            synced_at: None,
        });
    }

    let progress = ProjectProgress {
        pb: app.ui.progress_bar(prep.plan.bytes.max(1), &name, true),
        overall,
        name: name.clone(),
        last_bytes: AtomicU64::new(0),
        last_files: AtomicU64::new(0),
    };
    overall.bar.inc_length(prep.plan.bytes);
    overall
        .files_total
        .fetch_add(prep.plan.files_to_transfer, Ordering::Relaxed);
    let created_at = app.clock.now_rfc3339();
    let result = engine::execute(&prep, state, created_at.clone(), &app.cancel, &progress);
    progress.pb.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            engine::record_failure(state, &prep, &e).map_err(CliError::from)?;
            if matches!(e, BackupError::Cancelled) {
                return Err(CliError::interrupted().with_hint(format!(
                    "the backup of {name} is usable; run `repoman sync {name}` to finish"
                )));
            }
            return Err(CliError::from(e));
        }
    };
    // Recorded under the project's lock: a sync waiting for it starts from this manifest.
    let ev =
        engine::record_synced(state, &prep, &report, decision.event_seq).map_err(CliError::from)?;
    drop(prep); // release the project lock before touching the registry
    let mut details = Vec::new();
    if !report.rsync_warnings.is_empty()
        || report.outcome != repoman_backup::rsync::RsyncOutcome::Complete
    {
        details.push(report.outcome.explain());
    }
    Ok(Outcome {
        exit: Exit::Success,
        json: json!({"project": name, "status": "synced", "plan": plan_json, "rsync": report.outcome, "root": report.manifest_root, "counts": report.counts, "event_seq": ev.seq, "manifest_stats": report.manifest_stats, "manifest_source": report.manifest_source, "duration_ms": report.duration_ms, "manifest_ms": report.manifest_ms}),
        line: format!(
            "{name}\tsynced\t{plan_summary}\troot {}",
            &report.manifest_root[..16]
        ),
        details,
        synced_at: Some(created_at),
    })
}

fn items_json(prep: &Prepared) -> Value {
    Value::Array(
        prep.plan
            .items
            .iter()
            .map(|i| json!({"change": i.change, "type": i.kind, "path": i.display_path(), "size": i.size, "itemize": i.flags}))
            .collect(),
    )
}

fn plan_lines(prep: &Prepared) -> Vec<String> {
    prep.plan
        .items
        .iter()
        .map(|i| format!("{} {}", i.flags, i.display_path()))
        .collect()
}
