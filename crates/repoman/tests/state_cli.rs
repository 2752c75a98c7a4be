//! `repoman log`, `explain`, `doctor` and `schema` end to end: the real binary over a state
//! directory written by the real `repoman-state` library (a private HOME per test).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use repoman_core::{Clock, Env, Paths};
use repoman_state::{Effect, NewConflict, NewEvent, Operation, State, Verdict};
use serde_json::{Value, json};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> Env {
        Env::from_pairs([
            ("HOME", self.path().to_path_buf()),
            ("USER", PathBuf::from("tester")),
            ("XDG_RUNTIME_DIR", self.path().join("run")),
        ])
    }

    fn paths(&self) -> Paths {
        Paths::resolve(&self.env()).unwrap()
    }

    /// The library, as a writing command would open it, with a pinned clock.
    fn state(&self) -> State {
        State::open(
            &self.paths(),
            &self.env(),
            Clock::pinned("2026-05-06T07:08:09Z".parse().unwrap()),
        )
        .unwrap()
    }

    fn repoman(&self) -> Command {
        let mut cmd = Command::cargo_bin("repoman").unwrap();
        cmd.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_RUNTIME_DIR", self.path().join("run"))
            .env("USER", "tester");
        cmd
    }

    fn state_dir(&self) -> PathBuf {
        self.paths().state_dir
    }

    fn segment(&self) -> PathBuf {
        self.state().log().segments().unwrap().pop().unwrap().1
    }

    /// Replace machine-specific parts (temp dir, host name) for golden files.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.path().display().to_string(), "[HOME]")
            .replace(
                &format!("@{}", repoman_core::identity::host_name()),
                "@[HOST]",
            )
    }
}

/// The estate of the golden test: a project, its backup synced with a manifest and verified, a
/// sync blocked for review, and a conflict found by an agent.
fn populate(home: &Home) {
    let s = home.state();
    s.append(NewEvent::new(
        "project.registered",
        "project:alpha",
        json!({"repo": "alpha", "container": true}),
    ))
    .unwrap();
    s.append(NewEvent::new(
        "sandbox.created",
        "sandbox:alpha",
        json!({"image": "debian/12"}),
    ))
    .unwrap();
    s.append(NewEvent::new(
        "backup.synced",
        "backup:alpha",
        json!({"manifest": "b3-5eed", "files": 3, "bytes": 1200}),
    ))
    .unwrap();
    s.append(NewEvent::new(
        "backup.verified",
        "backup:alpha",
        json!({"manifest": "b3-5eed", "ok": true}),
    ))
    .unwrap();
    let op = Operation {
        name: "sync".into(),
        object: "backup:alpha".into(),
        project: Some("alpha".into()),
    };
    let guard = Verdict {
        rule: "backup.max-delete".into(),
        effect: Effect::ReviewRequired,
        reason: "the plan deletes 40 files, over max_delete 10".into(),
        unblock: Some("repoman sync alpha --max-delete 40".into()),
    };
    s.decide(&op, vec![guard], &[]).unwrap();
    s.record_conflict(NewConflict {
        kind: "backup-diverged".into(),
        object: "backup:alpha".into(),
        project: Some("alpha".into()),
        detail: json!({"paths": ["src/lib.rs"]}),
    })
    .unwrap();
    s.append(NewEvent::new(
        "project.updated",
        "project:alpha",
        json!({"profiles": ["dev"]}),
    ))
    .unwrap();
}

/// Unmounts (lazily) what a test mounted over the state directory, however the test ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            if e.path().is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn read_only_commands_on_a_fresh_home_create_no_files() {
    let home = Home::new();
    let runs: &[&[&str]] = &[
        &["log"],
        &[
            "log", "--json", "alpha", "--type", "backup.*", "--since", "2d", "--limit", "5",
        ],
        &["explain", "alpha"],
        &["explain", "backup:alpha", "--json"],
        &["doctor"],
        &["doctor", "--json"],
        &["doctor", "--repair", "--dry-run"],
        &["schema", "list"],
        &["schema", "list", "--json"],
        &["schema", "show", "repoman.toml/v1"],
    ];
    for args in runs {
        home.repoman().args(*args).assert().success();
    }
    assert_eq!(files_under(home.path()), Vec::<String>::new());
}

#[test]
fn explain_golden_text_and_json() {
    let home = Home::new();
    populate(&home);
    let out = home.repoman().args(["explain", "alpha"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(
        "explain_project_text",
        home.redact(&String::from_utf8(out.stdout).unwrap())
    );
    let out = home
        .repoman()
        .args(["explain", "project:alpha", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = stdout_json(&out);
    assert_eq!(v["schema"], "repoman.explain/v1");
    let ids: Vec<&str> = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 11, "one section per acceptance question");
    insta::assert_snapshot!(
        "explain_project_json",
        home.redact(&serde_json::to_string_pretty(&v).unwrap())
    );
}

#[test]
fn explain_answers_the_same_after_the_index_is_damaged_and_says_it_repaired() {
    let home = Home::new();
    populate(&home);
    let answers = |home: &Home| {
        let out = home
            .repoman()
            .args(["explain", "alpha", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v = stdout_json(&out);
        v.as_object_mut().unwrap().remove("as_of_seq");
        (v, String::from_utf8(out.stderr).unwrap())
    };
    let (before, _) = answers(&home);
    let index = home.state_dir().join("index.db");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    std::fs::write(
        &index,
        b"this is not a SQLite database, it is garbage".repeat(100),
    )
    .unwrap();
    let (after, stderr) = answers(&home);
    assert_eq!(before, after);
    assert!(stderr.contains("repaired the index"), "{stderr}");
    let out = home
        .repoman()
        .args(["log", "--type", "repair.applied", "--json"])
        .output()
        .unwrap();
    let events = stdout_json(&out);
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["object"], "store:index");
    home.repoman().arg("doctor").assert().success();
}

#[test]
fn doctor_finds_and_repairs_a_torn_last_line() {
    let home = Home::new();
    populate(&home);
    let seg = home.segment();
    let torn = b"{\"actor\":\"human:tester@x\",\"at\":\"2026-05-";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(torn)
        .unwrap();

    let out = home.repoman().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "auto-repairable problems left");
    let v = stdout_json(&out);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "events.tail")
        .unwrap()
        .clone();
    assert_eq!(f["class"], "auto_repairable");
    let out = home
        .repoman()
        .args(["doctor", "--repair", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[would repair]"));

    let out = home
        .repoman()
        .args(["doctor", "--repair", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = stdout_json(&out);
    let q = v["repairs"][0]["quarantined"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(std::fs::read(q).unwrap(), torn.to_vec());
    assert!(std::fs::read_to_string(&seg).unwrap().ends_with('\n'));
    home.repoman().arg("doctor").assert().success();
}

#[test]
fn doctor_reports_a_flipped_byte_as_a_chain_break_with_its_seq_and_exits_3() {
    let home = Home::new();
    populate(&home);
    let seg = home.segment();
    let mut bytes = std::fs::read(&seg).unwrap();
    // seq 3 recorded 1200 bytes; make it 1300.
    let needle = br#""bytes":1200"#;
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[pos + needle.len() - 3] = b'3';
    std::fs::write(&seg, &bytes).unwrap();

    let out = home.repoman().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v = stdout_json(&out);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "events.chain")
        .unwrap()
        .clone();
    assert_eq!(f["seq"], 3);
    assert_eq!(f["class"], "needs_review");
    // --repair refuses to touch it.
    let out = home
        .repoman()
        .args(["doctor", "--repair"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("seq 3"));
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

#[test]
fn log_filters_and_json() {
    let home = Home::new();
    populate(&home);
    let out = home
        .repoman()
        .args(["log", "--json", "--limit", "0"])
        .output()
        .unwrap();
    let all = stdout_json(&out);
    let seqs: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let out = home
        .repoman()
        .args(["log", "backup:alpha", "--type", "backup.*", "--json"])
        .output()
        .unwrap();
    let types: Vec<String> = stdout_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["backup.synced", "backup.verified"]);
    let out = home
        .repoman()
        .args(["log", "alpha", "--limit", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)[0]["type"], "project.updated");
    let out = home
        .repoman()
        .args(["log", "--actor", "agent", "--json"])
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out), json!([]));
    let out = home
        .repoman()
        .args([
            "log",
            "--since",
            "2026-05-06T07:08:09.004Z",
            "--json",
            "-n",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)[0]["at"], "2026-05-06T07:08:09.004Z");
    home.repoman()
        .args(["log", "--since", "yesterday"])
        .assert()
        .code(2);
    let out = home
        .repoman()
        .args(["log", "sandbox:alpha"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("sandbox.created") && text.contains("human:tester@"),
        "{text}"
    );
}

#[test]
fn log_follow_prints_events_appended_by_another_process() {
    let home = Home::new();
    populate(&home);
    let bin = assert_cmd::cargo::cargo_bin("repoman");
    let mut child = std::process::Command::new(bin)
        .args(["log", "--follow", "--json", "--limit", "1"])
        .env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path().join("run"))
        .env("USER", "tester")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["seq"], 8);
    home.state()
        .append(NewEvent::new(
            "tool.discovered",
            "tool:z3",
            json!({"version": "4.13"}),
        ))
        .unwrap();
    let next: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        (next["seq"].as_u64(), next["object"].as_str()),
        (Some(9), Some("tool:z3"))
    );
}

#[test]
fn schema_list_and_show() {
    let home = Home::new();
    let out = home
        .repoman()
        .args(["schema", "list", "--json"])
        .output()
        .unwrap();
    let ids: Vec<String> = stdout_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    for id in [
        "repoman.toml/v1",
        "repoman-project.toml/v1",
        "repoman.event/v1",
        "repoman.manifest/v1",
        "event.policy.decided/v1",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
    let out = home
        .repoman()
        .args(["schema", "show", "repoman.event/v1"])
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)["$id"], "repoman.event/v1");
    home.repoman()
        .args(["schema", "show", "nope/v1"])
        .assert()
        .code(2);
}

#[test]
fn doctor_checks_the_registry_against_its_schema_and_lists_stores() {
    let home = Home::new();
    populate(&home);
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        "schema_version = 1\n[[policy.rule]]\neffect = \"maybe\"\nreason = \"x\"\n",
    )
    .unwrap();
    let out = home.repoman().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v = stdout_json(&out);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "registry")
        .unwrap()
        .clone();
    assert_eq!(f["class"], "needs_review");
    let stores: Vec<(String, String)> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["class"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(stores.contains(&("events".into(), "durable".into())));
    assert!(stores.contains(&("index".into(), "rebuildable".into())));
    assert!(stores.contains(&("runtime".into(), "disposable".into())));
    let events = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "events")
        .unwrap();
    assert!(events["size"].as_u64().unwrap() > 1000);
}

#[test]
fn doctor_repairs_runtime_dir_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    populate(&home);
    let rt = home.path().join("run/repoman");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
    home.repoman().arg("doctor").assert().code(1);
    home.repoman()
        .args(["doctor", "--repair"])
        .assert()
        .success();
    assert_eq!(
        std::fs::metadata(&rt).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn json_logs_go_to_stderr_when_asked() {
    let home = Home::new();
    populate(&home);
    std::fs::remove_file(home.state_dir().join("index.db")).unwrap();
    let out = home
        .repoman()
        .args(["explain", "alpha", "--log-format", "json"])
        .env("REPOMAN_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.contains("rebuilding the index"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN");
}

/// A read-only state directory (a snapshot, a read-only mount): `log`, `explain` and `doctor`
/// answer from the log (an index built in memory), say so, and write nothing; a mutation is
/// refused as read-only, not as "another process holds the lock".
#[test]
fn read_only_commands_answer_on_a_read_only_state_directory() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root for a read-only bind mount");
        return;
    }
    let home = Home::new();
    populate(&home);
    let dir = home.state_dir();
    let log_before = home.repoman().args(["log", "--json"]).output().unwrap();
    assert!(log_before.status.success());
    let files_before = files_under(&dir);
    let mount = |args: &[&str]| {
        let st = std::process::Command::new("mount")
            .args(args)
            .arg(&dir)
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount {args:?}");
    };
    mount(&["--bind"]);
    let _unmount = Unmount(dir.clone());
    let st = std::process::Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    // Even with the on-disk index gone stale: it is simply not used.
    let log = home.repoman().args(["log", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert!(log.status.success(), "{stderr}");
    assert_eq!(log.stdout, log_before.stdout);
    assert!(stderr.contains("read-only"), "{stderr}");
    let explain = home
        .repoman()
        .args(["explain", "project:alpha"])
        .output()
        .unwrap();
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    let doctor = home.repoman().arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(0), "{text}");
    assert!(text.contains("ok   index"), "{text}");
    let repos = home.path().join("repos");
    std::fs::create_dir_all(repos.join("beta")).unwrap();
    let registry_before = std::fs::read(home.paths().config_file).ok();
    let err = home
        .repoman()
        .env("LOCAL_REPOS", &repos)
        .args(["new", "beta", "--no-container", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert_ne!(err.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("read-only") && !stderr.contains("another repoman process"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(home.paths().config_file).ok(),
        registry_before
    );
    drop(_unmount);
    assert_eq!(files_under(&dir), files_before);
}

/// A torn tail met by a read-only command that also has to rebuild the index (`repoman log`
/// after the index was lost): it answers with the committed events, warns, and writes nothing
/// after the torn bytes; `doctor --repair` then quarantines them and the chain goes on.
#[test]
fn a_torn_tail_and_an_index_rebuild_from_log_stay_read_only_until_doctor_repairs() {
    let home = Home::new();
    populate(&home);
    let seg = home.segment();
    let torn = b"{\"actor\":\"human:tester@x\",\"at\":\"2026-05-";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(torn)
        .unwrap();
    std::fs::remove_file(home.state_dir().join("index.db")).unwrap();
    let before = std::fs::read(&seg).unwrap();

    let out = home.repoman().args(["log", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v = stdout_json(&out);
    let events = v.as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["type"] != "repair.applied"),
        "a read-only command recorded a repair: {events:?}"
    );
    assert!(stderr.contains("torn"), "{stderr}");
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        before,
        "the segment was written"
    );

    home.repoman()
        .args(["doctor", "--repair"])
        .assert()
        .success();
    home.repoman().arg("doctor").assert().success();
    // Appending works again and the chain is whole.
    home.state()
        .append(NewEvent::new("project.updated", "project:alpha", json!({})))
        .unwrap();
    home.repoman().arg("doctor").assert().success();
}

/// A lost last segment, through the CLI: every command refuses with exit 3 and the lost range,
/// nothing is renumbered over it, `doctor` keeps saying so until `doctor --acknowledge-loss`
/// (a human's event), and then the estate works again.
#[test]
fn lost_events_exit_3_until_a_human_acknowledges_them() {
    let home = Home::new();
    let s = State::open_with(
        &home.paths(),
        &home.env(),
        Clock::system(),
        repoman_state::StateOptions {
            segment_max: 1500,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..30 {
        s.append(NewEvent::new(
            "project.updated",
            "project:alpha",
            json!({ "n": i }),
        ))
        .unwrap();
    }
    let segs = s.log().segments().unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    let (first_lost, last) = segs.last().unwrap().clone();
    drop(s);
    std::fs::remove_file(&last).unwrap();
    let range = format!("{first_lost} to 30");

    for args in [&["log"][..], &["explain", "project:alpha"], &["doctor"]] {
        let out = home.repoman().args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}: {text}");
        assert!(text.contains(&range), "{args:?}: {text}");
    }
    let out = home
        .repoman()
        .args(["doctor", "--repair"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "repair does not paper over it");

    let out = home
        .repoman()
        .args(["doctor", "--acknowledge-loss"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    home.repoman().arg("doctor").assert().success();
    let out = home
        .repoman()
        .args(["log", "--json", "--type", "events.loss.acknowledged"])
        .output()
        .unwrap();
    let acks = stdout_json(&out);
    let ack = acks
        .as_array()
        .unwrap()
        .first()
        .expect("an acknowledgement event");
    assert_eq!(ack["seq"], 31, "the lost seqs are never reused: {ack}");
    assert!(
        ack["actor"].as_str().unwrap().starts_with("human:"),
        "{ack}"
    );
}

/// A full state filesystem: `new` says the state directory is full (not "locked"), and the
/// registry and the log stay a pair (no half-registered project); once there is room again the
/// same command succeeds and `doctor` is clean.
#[test]
fn a_full_state_filesystem_leaves_no_half_registered_project() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root for a tmpfs");
        return;
    }
    let home = Home::new();
    let dir = home.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let _unmount = Unmount(dir.clone());
    populate(&home);
    // Fill what is left.
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    drop(f);
    let repos = home.path().join("repos");
    std::fs::create_dir_all(repos.join("beta")).unwrap();
    let registry_before = std::fs::read(home.paths().config_file).ok();
    let out = home
        .repoman()
        .env("LOCAL_REPOS", &repos)
        .args(["new", "beta", "--no-container", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("full") && !stderr.contains("another repoman process"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(home.paths().config_file).ok(),
        registry_before
    );

    std::fs::remove_file(&filler).unwrap();
    // The log is whole; the index (rebuildable) may have been set aside when SQLite could not
    // write it, and `doctor --repair` rebuilds it from the log.
    let out = home.repoman().arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok   events.chain"), "{text}");
    assert!(text.contains("ok   events.tail"), "{text}");
    home.repoman()
        .args(["doctor", "--repair"])
        .assert()
        .success();
    home.repoman()
        .env("LOCAL_REPOS", &repos)
        .args(["new", "beta", "--no-container", "--yes"])
        .assert()
        .success();
    let reg = std::fs::read_to_string(home.paths().config_file).unwrap();
    assert!(reg.contains("name = \"beta\""), "{reg}");
    home.repoman().arg("doctor").assert().success();
}
