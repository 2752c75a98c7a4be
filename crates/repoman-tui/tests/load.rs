//! The loader and the sync job against a real private estate: a temp HOME with a registry,
//! working copies, a backup root that is a plain directory declared with its real filesystem
//! type, the real event log and index, and rsync. No Incus: the projects have no sandbox, and
//! INCUS_SOCKET points at nothing.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use repoman_core::{Cancel, Clock, Env, Paths};
use repoman_tui::app::{App, Request};
use repoman_tui::jobs::{self, JobMsg};
use repoman_tui::snapshot::Source;
use repoman_tui::{Context, Msg, load};

struct Estate {
    dir: tempfile::TempDir,
}

impl Estate {
    fn new(fstype: Option<&str>, extra: &str) -> Self {
        let e = Estate {
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        let fstype = fstype
            .map(str::to_owned)
            .unwrap_or_else(|| fstype_of(e.dir.path()));
        for p in ["alpha", "beta"] {
            std::fs::create_dir_all(e.path("local").join(p)).expect("mkdir");
        }
        std::fs::create_dir_all(e.path("backup")).expect("mkdir");
        std::fs::write(e.path("local/alpha/a.txt"), "hello\n").expect("write");
        std::fs::write(e.path("local/alpha/.tool-versions"), "nodejs 20.1.0\n").expect("write");
        std::fs::write(e.path("local/beta/b.txt"), "beta\n").expect("write");
        let reg = e.path("home/.config/repoman/repoman.toml");
        std::fs::create_dir_all(reg.parent().expect("a parent")).expect("mkdir");
        std::fs::write(
            &reg,
            format!(
                "schema_version = 1\n[defaults]\nlocal_repos = {:?}\nbackup_root = {:?}\n\
                 backup_fstype = {fstype:?}\nprobe_timeout_secs = 5\n\n\
                 [[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n\n\
                 [[project]]\nname = \"beta\"\nrepo = \"beta\"\ncontainer = false\n\n{extra}\n",
                e.path("local"),
                e.path("backup"),
            ),
        )
        .expect("write the registry");
        e
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn ctx(&self) -> Context {
        let env = Env::from_pairs([
            ("HOME", self.path("home").into_os_string()),
            ("XDG_RUNTIME_DIR", self.path("run").into_os_string()),
            ("USER", "tester".into()),
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            // No test here may reach an Incus daemon.
            (
                "INCUS_SOCKET",
                self.path("no-incus.socket").into_os_string(),
            ),
        ]);
        Context {
            paths: Paths::resolve(&env).expect("paths"),
            env,
            clock: Clock::system(),
            cancel: Cancel::new(),
            color: false,
            actor: repoman_state::ActorRequest::Derived,
        }
    }
}

/// The type of the filesystem `path` is on (the longest mount point in mountinfo above it).
fn fstype_of(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let path = path.canonicalize().expect("canonical");
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((PathBuf::from(f[4]), f.get(sep + 1)?.to_string()))
        })
        .filter(|(mnt, _)| path.starts_with(mnt))
        .max_by_key(|(mnt, _)| mnt.as_os_str().len())
        .map(|(_, t)| t)
        .expect("a mount above the temp dir")
}

/// Run a sync job to its end; its lines and summary.
fn run_sync(ctx: &Context, names: &[&str]) -> (Vec<(String, String)>, String, Vec<JobMsg>) {
    let mut app = App::new(false);
    let (tx, rx) = mpsc::channel();
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let running = jobs::start(ctx, &mut app, Request::Sync(names), tx);
    let mut all = Vec::new();
    loop {
        // A generous bound so a hung job fails the test instead of hanging it.
        let m = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the job reports");
        let Msg::Job(j) = m else { continue };
        all.push(j.clone());
        if jobs::apply(&mut app, j) {
            break;
        }
    }
    running.cancel_and_wait();
    let job = app.job.expect("a job");
    (job.lines, app.message.unwrap_or_default(), all)
}

#[test]
fn index_first_then_live_on_a_fresh_estate() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let s = load::index(&ctx);
    assert_eq!(s.source, Source::Index);
    assert_eq!(s.registry_error, None);
    let names: Vec<&str> = s.projects.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(
        s.projects.iter().all(|p| p.state == "none"),
        "no sandbox: {:?}",
        s.projects
    );
    assert!(s.events.is_empty());
    assert_eq!(
        s.backup_root.as_deref(),
        Some(e.path("backup").to_str().expect("utf-8"))
    );
    assert!(
        !e.path("home/.local/state/repoman/events").exists(),
        "reading never creates the event log"
    );
    let live = load::live(&ctx);
    assert_eq!(live.source, Source::Live);
    assert_eq!(
        live.incus_error, None,
        "no project has a sandbox: Incus is not needed"
    );
    assert_eq!(
        live.backup_error, None,
        "the backup root is the declared filesystem"
    );
    let node = live
        .tools
        .iter()
        .find(|t| t.project == "alpha" && t.tool == "nodejs");
    let node = node.expect("alpha declares nodejs");
    assert_eq!(node.wants, "20.1.0");
    assert_eq!(node.declared_in, ".tool-versions:1");
    assert!(
        live.projects.iter().all(|p| p.untrusted.is_none()),
        "no .repoman.toml anywhere"
    );
}

#[test]
fn a_sync_from_the_tui_is_recorded_and_shows_in_the_index() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let (lines, summary, msgs) = run_sync(&ctx, &["alpha"]);
    assert_eq!(summary, "sync: 1 synced", "{lines:?}");
    let alpha = &lines
        .iter()
        .find(|(n, _)| n == "alpha")
        .expect("alpha's line")
        .1;
    assert!(alpha.starts_with("synced: "), "{alpha}");
    assert!(
        msgs.iter()
            .any(|m| matches!(m, JobMsg::Line(n, l) if n == "alpha" && l.starts_with("files "))),
        "live progress was reported: {msgs:?}"
    );
    assert_eq!(
        std::fs::read_to_string(e.path("backup/alpha/a.txt")).expect("mirrored"),
        "hello\n"
    );
    let s = load::index(&ctx);
    assert_eq!(s.state_error, None);
    let b = s
        .backups
        .iter()
        .find(|b| b.project == "alpha")
        .expect("alpha");
    assert!(b.last_sync.is_some());
    let root = b.manifest_root.clone().expect("a manifest root");
    assert!(alpha.contains(&root[..16]), "{alpha} names root {root}");
    let types: Vec<&str> = s.events.iter().map(|e| e.type_.as_str()).collect();
    assert!(types.contains(&"backup.synced"), "{types:?}");
    assert!(
        types.contains(&"policy.decided"),
        "the policy gate recorded its decision: {types:?}"
    );
    assert_eq!(
        s.events.first().map(|e| e.type_.as_str()),
        Some("backup.synced"),
        "newest first"
    );
    // The registry's last_sync was written, as `repoman sync` writes it.
    let p = s
        .projects
        .iter()
        .find(|p| p.name == "alpha")
        .expect("alpha");
    assert!(p.last_sync.is_some());
    assert!(
        s.projects
            .iter()
            .find(|p| p.name == "beta")
            .is_some_and(|p| p.last_sync.is_none())
    );
    let since = load::events_since(&ctx, Some(s.head_seq));
    assert_eq!(since, None, "nothing new since the head");
    let (head, evs) = load::events_since(&ctx, Some(0)).expect("events since 0");
    assert_eq!(head, s.head_seq);
    assert_eq!(evs.len(), s.events.len());
}

#[test]
fn a_policy_rule_blocks_the_sync_and_shows_why() {
    let e = Estate::new(
        None,
        "[[policy.rule]]\noperation = \"sync\"\nproject = \"alpha\"\neffect = \"deny\"\nreason = \"frozen for the audit\"\n",
    );
    let ctx = e.ctx();
    let (lines, summary, _) = run_sync(&ctx, &["alpha", "beta"]);
    assert_eq!(summary, "sync: 1 synced, 1 blocked", "{lines:?}");
    let alpha = &lines.iter().find(|(n, _)| n == "alpha").expect("alpha").1;
    assert!(alpha.starts_with("blocked: denied (user:"), "{alpha}");
    assert!(alpha.contains("frozen for the audit"), "{alpha}");
    assert!(!e.path("backup/alpha/a.txt").exists(), "nothing was copied");
    assert!(
        e.path("backup/beta/b.txt").exists(),
        "a blocked project does not stop the others"
    );
}

#[test]
fn an_unmounted_backup_is_shown_and_nothing_is_copied() {
    let e = Estate::new(Some("nfs4"), "");
    let ctx = e.ctx();
    let live = load::live(&ctx);
    let err = live
        .backup_error
        .expect("the backup root is not the declared nfs4 mount");
    assert!(err.contains("nfs4"), "{err}");
    let (lines, summary, _) = run_sync(&ctx, &["alpha"]);
    assert!(summary.starts_with("sync: 0 synced"), "{summary} {lines:?}");
    let alpha = &lines.iter().find(|(n, _)| n == "alpha").expect("alpha").1;
    assert!(alpha.contains("nfs4"), "{alpha}");
    assert!(!e.path("backup/alpha").exists());
}

#[test]
fn a_cancelled_sync_starts_nothing() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let mut app = App::new(false);
    let (tx, rx) = mpsc::channel();
    let running = jobs::start(
        &ctx,
        &mut app,
        Request::Sync(vec!["alpha".into(), "beta".into()]),
        tx,
    );
    running.cancel_and_wait();
    let mut summary = None;
    while let Ok(Msg::Job(j)) = rx.try_recv() {
        if let JobMsg::Finished(s) = &j {
            summary = Some(s.clone());
        }
        jobs::apply(&mut app, j);
    }
    let summary = summary.expect("the job finished");
    assert!(summary.ends_with("(cancelled)"), "{summary}");
    let synced = summary
        .strip_prefix("sync: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("a count");
    assert!(synced < 2, "cancelled before both ran: {summary}");
}

#[test]
fn verify_from_the_tui_records_the_verdict() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let run = |req: Request| run_job(&ctx, req);
    let (lines, summary) = run(Request::Verify(vec!["alpha".into()]));
    assert_eq!(summary, "verify: 0 ok, 1 with problems");
    assert_eq!(lines[0].1, "never synced; nothing to verify (s syncs it)");
    let (_, summary) = run(Request::Sync(vec!["alpha".into()]));
    assert_eq!(summary, "sync: 1 synced");
    let (lines, summary) = run(Request::Verify(vec!["alpha".into()]));
    assert_eq!(summary, "verify: 1 ok, 0 with problems", "{lines:?}");
    assert!(lines[0].1.starts_with("ok: "), "{lines:?}");
    // A file changed on the backup behind repoman's back is found.
    std::fs::write(e.path("backup/alpha/a.txt"), "tampered, longer\n").expect("write");
    let (lines, summary) = run(Request::Verify(vec!["alpha".into()]));
    assert_eq!(summary, "verify: 0 ok, 1 with problems");
    assert!(lines[0].1.contains("1 changed"), "{lines:?}");
    let s = load::index(&ctx);
    let b = s
        .backups
        .iter()
        .find(|b| b.project == "alpha")
        .expect("alpha");
    assert_eq!(
        b.verify_result.as_deref(),
        Some("problems"),
        "the last verdict is shown"
    );
    assert!(b.last_verify.is_some());
}

#[test]
fn start_without_incus_says_why() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let mut app = App::new(false);
    let (tx, rx) = mpsc::channel();
    let running = jobs::start(&ctx, &mut app, Request::Start("alpha".into()), tx);
    running.cancel_and_wait();
    let mut summary = String::new();
    while let Ok(Msg::Job(j)) = rx.try_recv() {
        if let JobMsg::Finished(s) = &j {
            summary = s.clone();
        }
    }
    assert!(summary.starts_with("start failed: "), "{summary}");
    assert!(summary.to_lowercase().contains("incus"), "{summary}");
}

#[test]
fn a_broken_registry_is_reported_not_fatal() {
    let e = Estate::new(None, "");
    std::fs::write(
        e.path("home/.config/repoman/repoman.toml"),
        "schema_version = 1\n[[project]\n",
    )
    .expect("write");
    let ctx = e.ctx();
    for s in [load::index(&ctx), load::live(&ctx)] {
        let err = s.registry_error.clone().expect("the parse error is shown");
        assert!(err.contains("repoman.toml"), "{err}");
        assert!(s.projects.is_empty());
    }
}

fn run_job(ctx: &Context, req: Request) -> (Vec<(String, String)>, String) {
    let mut app = App::new(false);
    let (tx, rx) = mpsc::channel();
    let running = jobs::start(ctx, &mut app, req, tx);
    loop {
        let m = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the job reports");
        let Msg::Job(j) = m else { continue };
        if jobs::apply(&mut app, j) {
            break;
        }
    }
    running.cancel_and_wait();
    (
        app.job.expect("a job").lines,
        app.message.unwrap_or_default(),
    )
}

fn pin(file: &Path, tool: &str, versions: Option<&[&str]>) -> Request {
    Request::Edit {
        project: "alpha".into(),
        tool: tool.into(),
        file: file.display().to_string(),
        versions: versions.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
        diff: String::new(),
    }
}

#[test]
fn pin_shows_the_diff_and_writes_only_the_version_token() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let file = e.path("local/alpha/.tool-versions");
    std::fs::write(&file, "nodejs 20.1.0\r\n# keep me\r\npython   3.12\r\n").expect("write");
    let (req, diff) = jobs::plan_edit(pin(&file, "nodejs", Some(&["22.0.0"]))).expect("a plan");
    assert!(
        diff.contains("-nodejs 20.1.0\r\n") && diff.contains("+nodejs 22.0.0\r\n"),
        "{diff:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "nodejs 20.1.0\r\n# keep me\r\npython   3.12\r\n",
        "planning writes nothing"
    );
    let (lines, summary) = run_job(&ctx, req);
    assert!(
        summary.starts_with("pinned nodejs in "),
        "{summary} {lines:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "nodejs 22.0.0\r\n# keep me\r\npython   3.12\r\n",
        "only the version token changed; CRLF, the comment and the spacing kept"
    );
    let s = load::index(&ctx);
    let types: Vec<&str> = s.events.iter().map(|e| e.type_.as_str()).collect();
    assert_eq!(types.first(), Some(&"tool.pinned"), "{types:?}");
    let decided = s
        .events
        .iter()
        .find(|e| e.type_ == "policy.decided")
        .expect("decided");
    assert!(decided.data.contains("tools.pin"), "{}", decided.data);
    assert_eq!(decided.object, "file:alpha/.tool-versions");
    // Unpin removes the line only.
    let (req, diff) = jobs::plan_edit(pin(&file, "python", None)).expect("a plan");
    assert!(diff.contains("-python   3.12\r\n"), "{diff:?}");
    run_job(&ctx, req);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "nodejs 22.0.0\r\n# keep me\r\n"
    );
    // Nothing to change: an empty diff.
    let (_, diff) = jobs::plan_edit(pin(&file, "nodejs", Some(&["22.0.0"]))).expect("a plan");
    assert_eq!(diff, "");
}

#[test]
fn a_pin_is_refused_when_the_file_changed_after_the_diff_or_policy_blocks() {
    let e = Estate::new(
        None,
        "[[policy.rule]]\noperation = \"tools.*\"\nproject = \"alpha\"\neffect = \"review_required\"\nreason = \"pins need a human\"\n",
    );
    let ctx = e.ctx();
    let file = e.path("local/alpha/.tool-versions");
    let (req, _) = jobs::plan_edit(pin(&file, "nodejs", Some(&["22.0.0"]))).expect("a plan");
    std::fs::write(&file, "nodejs 21.0.0\n").expect("someone else edits it");
    let (_, summary) = run_job(&ctx, req);
    assert!(
        summary.contains("changed since the diff was shown; nothing was written"),
        "{summary}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "nodejs 21.0.0\n"
    );
    let (req, _) = jobs::plan_edit(pin(&file, "nodejs", Some(&["22.0.0"]))).expect("a plan");
    let (lines, summary) = run_job(&ctx, req);
    assert!(
        summary.starts_with("nodejs: blocked: review required (user:"),
        "{summary}"
    );
    assert!(lines[0].1.contains("pins need a human"), "{lines:?}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "nodejs 21.0.0\n",
        "nothing written"
    );
}

#[test]
fn trust_shows_the_diff_and_records_only_the_file_shown() {
    let e = Estate::new(None, "");
    let ctx = e.ctx();
    let file = e.path("local/alpha/.repoman.toml");
    let nothing = jobs::plan_trust(&ctx, "alpha").expect("readable");
    assert!(nothing.is_err_and(|m| m.contains("does not exist: nothing to trust")));
    std::fs::write(&file, "[env]\nMODE = \"dev\"\n").expect("write");
    assert_eq!(
        load::live(&ctx).projects[0].untrusted.as_deref(),
        Some("untrusted")
    );
    let (req, diff) = jobs::plan_trust(&ctx, "alpha")
        .expect("readable")
        .expect("to trust");
    assert!(
        diff.contains("+MODE = \"dev\""),
        "the whole file the first time: {diff}"
    );
    let (_, summary) = run_job(&ctx, req);
    assert!(summary.starts_with("trusted "), "{summary}");
    assert_eq!(load::live(&ctx).projects[0].untrusted, None);
    let types: Vec<String> = load::index(&ctx)
        .events
        .iter()
        .map(|e| e.type_.clone())
        .collect();
    assert_eq!(
        types.first().map(String::as_str),
        Some("config.trusted"),
        "{types:?}"
    );
    // A change is shown as a diff; a file changed again after the review is not trusted.
    std::fs::write(&file, "[env]\nMODE = \"prod\"\n").expect("write");
    let (req, diff) = jobs::plan_trust(&ctx, "alpha")
        .expect("readable")
        .expect("to trust");
    assert!(
        diff.contains("-MODE = \"dev\"") && diff.contains("+MODE = \"prod\""),
        "{diff}"
    );
    std::fs::write(&file, "[env]\nMODE = \"evil\"\n").expect("the sandbox edits it again");
    let (_, summary) = run_job(&ctx, req);
    assert!(
        summary.contains("changed since it was shown; nothing was trusted"),
        "{summary}"
    );
    assert_eq!(
        load::live(&ctx).projects[0].untrusted.as_deref(),
        Some("changed")
    );
}
