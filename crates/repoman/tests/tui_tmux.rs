//! `repoman tui` end to end under tmux, against the real Incus lab: a sandboxed project is shown
//! as Running with its address, a sync is started from the Backups view with send-keys, its
//! result is read from capture-pane, and after `q` the terminal is back in cooked mode on the
//! normal screen and the sync's events are in the log. A second test sends SIGTERM to a running
//! TUI (no Incus needed) and checks the same terminal state and exit 130.
//!
//! Needs Incus (skipped without it, unless `REPOMAN_TEST_INCUS=require`) and tmux (a missing
//! tmux fails: it is part of the test environment, like rsync).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use common::fstype_of;
use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TestLab};

/// The private tmux server of one test, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A private tmux server (named after `tag` and this process) running `sh script` in a
    /// detached `cols`x`rows` session called `tui`.
    fn start(tag: &str, cols: u16, rows: u16, script: &Path) -> Tmux {
        let tmux = Tmux {
            socket: format!("repoman-tui-{tag}-{}", std::process::id()),
        };
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            &cols,
            "-y",
            &rows,
            "sh",
            script.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e} (install tmux)"))
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "tui"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success(), "send-keys {keys:?}");
    }

    fn alternate_on(&self) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "tui", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Wait until the screen satisfies `f` (a bound only so that a broken TUI fails instead of
    /// hanging the suite; nothing is measured).
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {what}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn is_root() -> bool {
    let d = tempfile::tempdir().unwrap();
    std::fs::metadata(d.path()).unwrap().uid() == 0
}

#[test]
fn tui_under_tmux_shows_the_sandbox_syncs_and_restores_the_terminal() {
    let Some(lab) = TestLab::connect() else {
        return;
    };
    let project = lab.project("tui");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repos = tmp.path().join("repos");
    let backup = tmp.path().join("backup");
    for d in [&home, &repos, &backup] {
        std::fs::create_dir_all(d).unwrap();
    }
    let cfg = home.join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        format!(
            "schema_version = 1\n\n[defaults]\nlocal_repos = {:?}\nbackup_root = {:?}\n\
             backup_fstype = {:?}\nincus_project = {:?}\ndefault_image = \"{TEST_IMAGE_ALIAS}\"\n\n\
             [[policy.rule]]\noperation = \"sandbox.stop\"\neffect = \"deny\"\n\
             reason = \"the demo must keep running\"\n",
            repos,
            backup,
            fstype_of(&backup),
            project.name()
        ),
    )
    .unwrap();
    let app_repo = repos.join("app");
    std::fs::create_dir_all(&app_repo).unwrap();
    std::fs::write(app_repo.join("README"), "the app\n").unwrap();
    std::fs::write(app_repo.join("data.bin"), vec![7u8; 256 * 1024]).unwrap();
    if is_root() {
        for p in [
            &app_repo,
            &app_repo.join("README"),
            &app_repo.join("data.bin"),
        ] {
            std::os::unix::fs::chown(p, Some(1000), Some(1000)).unwrap();
        }
    }
    let env: Vec<(String, String)> = vec![
        ("REPOMAN_STRICT_SCHEMAS".into(), "1".into()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.display().to_string()),
        (
            "XDG_RUNTIME_DIR".into(),
            home.join("run").display().to_string(),
        ),
        ("USER".into(), "tester".into()),
        ("SUDO_UID".into(), "1000".into()),
        ("SUDO_GID".into(), "1000".into()),
        ("SUDO_USER".into(), "dev".into()),
        (
            "REPOMAN_SUBUID_FILE".into(),
            home.join("subuid").display().to_string(),
        ),
        (
            "REPOMAN_SUBGID_FILE".into(),
            home.join("subgid").display().to_string(),
        ),
        ("TERM".into(), "screen".into()),
    ];
    let repoman = |args: &[&str]| {
        let out = Command::new(cargo_bin("repoman"))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "repoman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    repoman(&["setup", "--yes", "--no-input"]);
    repoman(&["new", "app", "--yes", "--no-input"]);

    // The TUI in a 100x30 pane; after it exits, the shell prints its exit code and the
    // terminal's mode, then waits (so the pane can still be read).
    let script = tmp.path().join("run.sh");
    let envs: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    std::fs::write(
        &script,
        format!(
            "cd {:?}\nenv -i {envs} {:?} tui\necho \"TUI-EXIT=$?\"\nstty -a\necho STTY-END\nsleep 600\n",
            tmp.path(),
            cargo_bin("repoman")
        ),
    )
    .unwrap();
    let tmux = Tmux::start("test", 100, 30, &script);

    // Projects: the sandbox as Incus reports it, after the live refresh.
    let s = tmux.wait_for("the live Projects view with app Running", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with("live"))
            && s.lines()
                .any(|l| l.contains("app") && l.contains("Running"))
    });
    let row = s
        .lines()
        .find(|l| l.contains("app") && l.contains("Running"))
        .unwrap();
    assert!(row.contains("never"), "app was never synced: {row}");
    assert_eq!(
        tmux.alternate_on(),
        "1",
        "the TUI draws on the alternate screen"
    );

    // Tab to Backups, start a sync of the selected project, confirm.
    tmux.keys(&["Tab"]);
    tmux.wait_for("the Backups view", |s| s.contains("backups (1/1)"));
    tmux.keys(&["s"]);
    tmux.wait_for("the question", |s| s.contains("sync app to the backup?"));
    tmux.keys(&["y"]);
    let s = tmux.wait_for("the sync's result and summary", |s| {
        s.contains("app: synced:") && s.contains("sync: 1 synced")
    });
    let line = s.lines().find(|l| l.contains("app: synced:")).unwrap();
    assert!(line.contains("files"), "{line}");
    assert!(s.contains("sync: 1 synced"), "the summary line: {s}");
    assert_eq!(
        std::fs::read(backup.join("app/data.bin")).unwrap().len(),
        256 * 1024,
        "the working copy is on the backup"
    );
    // After the refresh the Backups row has the sync and its manifest root.
    tmux.keys(&["Escape"]);
    let s = tmux.wait_for("the refreshed Backups row", |s| {
        s.lines()
            .any(|l| l.contains("app") && l.contains(" ago") && !l.trim_end().ends_with('-'))
    });
    assert!(!s.contains("app: synced:"), "Esc closed the job pane: {s}");

    // Projects: stopping the sandbox is blocked by the policy rule, with its reason; starting
    // a running one has nothing to do.
    tmux.keys(&["1", "D"]);
    tmux.wait_for("the stop question", |s| s.contains("stop the sandbox app?"));
    tmux.keys(&["y"]);
    let s = tmux.wait_for("the blocked stop", |s| s.contains("app: blocked:"));
    assert!(
        s.contains("denied (user:1): the demo must keep running"),
        "the policy reason is shown: {s}"
    );
    tmux.keys(&["Escape", "u", "y"]);
    tmux.wait_for("the start that has nothing to do", |s| {
        s.contains("app: already running")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("app still Running", |s| {
        !s.contains("done; Esc closes")
            && s.lines()
                .any(|l| l.contains("app") && l.contains("Running"))
    });

    // `R`: config drift made behind repoman's back is shown, then reapplied after confirmation.
    let st = Command::new("incus")
        .args([
            "--project",
            project.name(),
            "config",
            "set",
            "app",
            "environment.EXTRA=1",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "incus config set");
    tmux.keys(&["r"]);
    tmux.wait_for("the config drift", |s| {
        s.lines()
            .any(|l| l.contains("app") && l.contains("! config"))
    });
    tmux.keys(&["R"]);
    let s = tmux.wait_for("the repair question", |s| {
        s.contains("repair app: reapply?")
    });
    assert!(s.contains("environment.EXTRA"), "the drift is shown: {s}");
    tmux.keys(&["y"]);
    tmux.wait_for("the repair", |s| s.contains("app: reapply done"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("no drift after the refresh", |s| {
        !s.contains("done; Esc closes")
            && s.lines()
                .any(|l| l.contains("app") && l.contains("Running") && !l.contains("! config"))
    });

    // `e`: a shell in the sandbox with the TUI suspended (normal screen), then the TUI again.
    tmux.keys(&["e"]);
    tmux.wait_for("the shell on the normal screen", |_| {
        tmux.alternate_on() == "0"
    });
    tmux.keys(&["echo INSIDE-$((6*7)) $(id -u)", "Enter"]);
    let s = tmux.wait_for("the shell's output", |s| s.contains("INSIDE-42 1000"));
    assert!(!s.contains("1 Projects"), "the TUI is suspended: {s}");
    tmux.keys(&["exit", "Enter"]);
    let s = tmux.wait_for("the TUI back", |s| s.contains("shell in app exited"));
    assert!(s.contains("1 Projects"), "{s}");
    assert_eq!(tmux.alternate_on(), "1", "back on the alternate screen");

    // Events: the sync and the blocked stop are recorded.
    tmux.keys(&["5"]);
    let s = tmux.wait_for("the Events view", |s| s.contains("events, newest first"));
    assert!(
        s.lines()
            .any(|l| l.contains("backup.synced") && l.contains("backup:app")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.contains("sandbox.stop.plan.blocked") && l.contains("sandbox:app")),
        "the blocked stop is recorded: {s}"
    );
    let first = s.lines().nth(3).unwrap_or_default();
    assert!(
        first.contains("sandbox.repaired"),
        "the repair is the newest event: {s}"
    );

    // Quit: the terminal is restored (normal screen, cooked mode with echo).
    tmux.keys(&["q"]);
    // After the exit code, `stty -a` prints the terminal's modes (waited for to the end).
    let s = tmux.wait_for("the TUI's exit", |s| s.contains("STTY-END"));
    assert!(s.contains("TUI-EXIT=0"), "{s}");
    assert_eq!(tmux.alternate_on(), "0", "back on the normal screen");
    let modes = s.split("TUI-EXIT=0").nth(1).unwrap_or_default();
    let words: Vec<&str> = modes.split_whitespace().collect();
    for want in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(
            words.contains(&want),
            "stty shows `{want}` (not `-{want}`):\n{modes}"
        );
    }
    assert!(
        !s.contains("1 Projects"),
        "nothing of the TUI is left on the screen:\n{s}"
    );

    // The log has the sync and its policy decision, as the human.
    let dir = home.join(".local/state/repoman/events");
    let events: Vec<serde_json::Value> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let synced = events
        .iter()
        .find(|e| e["type"] == "backup.synced" && e["object"] == "backup:app")
        .unwrap_or_else(|| panic!("no backup.synced for app in {events:?}"));
    assert!(
        synced["actor"].as_str().unwrap().starts_with("human:"),
        "{synced}"
    );
    let decided = events
        .iter()
        .find(|e| e["type"] == "policy.decided" && e["data"]["operation"] == "sync")
        .unwrap_or_else(|| panic!("no policy decision for the sync in {events:?}"));
    assert_eq!(
        synced["data"]["decision_seq"], decided["seq"],
        "the sync names its decision"
    );
}

/// SIGTERM while the TUI runs (no Incus needed: the project has no sandbox): it exits 130 and
/// the terminal is back in cooked mode on the normal screen.
#[test]
fn sigterm_restores_the_terminal() {
    signals_restore_the_terminal("term", "kill -TERM $1");
}

/// A second signal right after the first is the CLI's last-resort exit (no unwinding, no
/// destructors): the terminal is still restored. SIGTERM then SIGINT, so the two cannot merge
/// into one pending signal.
#[test]
fn a_second_signal_still_restores_the_terminal() {
    signals_restore_the_terminal("twice", "kill -TERM $1; kill -INT $1");
}

/// Runs the TUI under tmux, sends the signals of `kill` (a shell line with the TUI's pid as
/// `$1`), and checks the exit code and the terminal.
fn signals_restore_the_terminal(tag: &str, kill: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repos = tmp.path().join("repos");
    let backup = tmp.path().join("backup");
    for d in [&home, &repos.join("alpha"), &backup] {
        std::fs::create_dir_all(d).unwrap();
    }
    let cfg = home.join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {repos:?}\nbackup_root = {backup:?}\n\n\
             [[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n"
        ),
    )
    .unwrap();
    let pidfile = tmp.path().join("tui.pid");
    let script = tmp.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            "sh -c 'echo $$ > {pidfile:?}; exec env -i HOME={home:?} XDG_RUNTIME_DIR={run:?} \
             USER=tester TERM=screen PATH=/usr/bin:/bin INCUS_SOCKET={sock:?} {bin:?} tui'\n\
             echo \"TUI-EXIT=$?\"\nstty -a\necho STTY-END\nsleep 600\n",
            run = home.join("run"),
            sock = tmp.path().join("no-incus.socket"),
            bin = cargo_bin("repoman"),
        ),
    )
    .unwrap();
    let tmux = Tmux::start(tag, 80, 24, &script);
    tmux.wait_for("the live view", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with("live"))
            && s.contains("alpha")
    });
    assert_eq!(tmux.alternate_on(), "1");
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let st = Command::new("sh")
        .args(["-c", kill, "sh", &pid])
        .status()
        .unwrap();
    assert!(st.success(), "{kill}");
    let s = tmux.wait_for("the TUI's exit", |s| s.contains("STTY-END"));
    assert!(
        s.contains("TUI-EXIT=130"),
        "SIGTERM is an interruption: {s}"
    );
    assert_eq!(tmux.alternate_on(), "0", "back on the normal screen");
    let modes = s.split("TUI-EXIT=130").nth(1).unwrap_or_default();
    let words: Vec<&str> = modes.split_whitespace().collect();
    for want in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(words.contains(&want), "stty shows `{want}`:\n{modes}");
    }
}

/// Kills the daemon of a test on drop.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// With a daemon running, the TUI joins its event stream (the soft groove's `subscribe`): the
/// daemon counts it as a subscriber, the header says `live+daemon`, and an event appended
/// through the daemon shows in the Events view. No Incus needed.
#[test]
fn with_a_daemon_the_tui_follows_its_event_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let run = home.join("run");
    let repos = tmp.path().join("repos");
    for d in [&home, &run, &repos.join("alpha")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let cfg = home.join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {repos:?}\n\n\
             [[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n"
        ),
    )
    .unwrap();
    let no_incus = tmp.path().join("no-incus.socket");
    let daemon = Daemon(
        Command::new(cargo_bin("repoman"))
            .args(["daemon", "run"])
            .env_clear()
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &run)
            .env("USER", "tester")
            .env("PATH", "/usr/bin:/bin")
            .env("INCUS_SOCKET", &no_incus)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let socket = run.join("repoman/groove.sock");
    let connect = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(c) = repoman_groove::client::Client::connect(&socket) {
                return c;
            }
            assert!(Instant::now() < deadline, "the daemon never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut client = connect();
    let script = tmp.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            "env -i HOME={home:?} XDG_RUNTIME_DIR={run:?} USER=tester TERM=screen \
             PATH=/usr/bin:/bin INCUS_SOCKET={no_incus:?} {bin:?} tui\n\
             echo \"TUI-EXIT=$?\"\nsleep 600\n",
            bin = cargo_bin("repoman"),
        ),
    )
    .unwrap();
    let tmux = Tmux::start("daemon", 80, 24, &script);
    tmux.wait_for("the daemon's stream joined", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with("live+daemon"))
    });
    let status = client.call("daemon.status", serde_json::json!({})).unwrap();
    assert_eq!(status["subscribers"], 1, "the TUI subscribed: {status:#}");
    tmux.keys(&["5"]);
    let ev = client
        .call(
            "event.append",
            serde_json::json!({"type": "note.from-the-stream", "object": "project:alpha"}),
        )
        .unwrap();
    assert!(ev["seq"].as_u64().is_some(), "{ev:#}");
    tmux.wait_for("the appended event", |s| s.contains("note.from-the-stream"));
    tmux.keys(&["q"]);
    let s = tmux.wait_for("the TUI's exit", |s| s.contains("TUI-EXIT="));
    assert!(s.contains("TUI-EXIT=0"), "{s}");
    drop(daemon);
}

/// Without a terminal `repoman tui` draws nothing and says why (a usage error, exit 2).
#[test]
fn without_a_terminal_it_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(cargo_bin("repoman"))
        .env_clear()
        .env("HOME", tmp.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("tui")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing drawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("repoman tui needs a terminal on stdin and stdout"),
        "{err}"
    );
}
