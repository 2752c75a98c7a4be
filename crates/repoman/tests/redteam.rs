//! The red-team suite (issue 11, docs/security.md "Probes"): sandboxes made with `repoman new`
//! on the real Incus daemon, probes run **as root inside** the container (Incus exec, uid 0),
//! then the host is checked. Each test is one boundary; each assertion would fail if the
//! defence it names were removed.
//!
//! Without Incus these tests print SKIPPED, unless `REPOMAN_TEST_INCUS=require` (then they fail).
//! The containment probes are here too: a fork bomb and a memory hog inside stop at the
//! sandbox's default `limits.*` while the host's `repoman list` keeps answering (its time is
//! printed, never asserted), `/dev/incus` is absent, a profile that weakens the sandbox is refused
//! before start, and an old-style (`shift=true`) sandbox is security drift that `update`
//! migrates. The setuid-root / `chown 0` probes of the uid mapping live in `sandbox_cli.rs`
//! (`new_maps_the_host_user_and_applies_repoman_toml`; docs/security.md lists them).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use repoman_incus::ExecSpec;
use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TestLab, TestProject};
use serde_json::Value;

/// A private HOME, repos and a tmpfs backup root, with a registry pointing at one Incus project.
struct Lab {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repos: PathBuf,
    backup: PathBuf,
    lab: (TestLab, TestProject),
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.backup)
            .stderr(Stdio::null())
            .status();
    }
}

impl Lab {
    fn new(prefix: &str) -> Option<Lab> {
        Lab::with_defaults(prefix, "")
    }

    /// A lab whose registry has `extra` appended (more `[defaults]` keys, then other tables).
    fn with_defaults(prefix: &str, extra: &str) -> Option<Lab> {
        let l = Lab::unrestricted(prefix, extra)?;
        // The probes run in the restricted project `repoman setup` makes.
        l.setup();
        Some(l)
    }

    /// `repoman setup --yes`: restrict the project (and create the registry's profiles).
    fn setup(&self) -> String {
        let out = self
            .repoman()
            .args(["setup", "--yes", "--no-input"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "setup failed:\n{text}");
        text
    }

    /// The same lab before `repoman setup` restricted its Incus project (an estate made by an
    /// earlier version, or repoman's own checks tested without the server's).
    fn unrestricted(prefix: &str, extra: &str) -> Option<Lab> {
        let lab = TestLab::connect()?;
        let project = lab.project(prefix);
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let repos = tmp.path().join("repos");
        let backup = tmp.path().join("backup");
        for d in [&home, &repos, &backup] {
            std::fs::create_dir_all(d).unwrap();
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
            .arg(&backup)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs backup root needs root");
        let l = Lab {
            _tmp: tmp,
            home,
            repos,
            backup,
            lab: (lab, project),
        };
        let cfg = l.home.join(".config/repoman");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(
            cfg.join("repoman.toml"),
            format!(
                "schema_version = 1\n\n[defaults]\nlocal_repos = \"{}\"\nbackup_root = \"{}\"\nbackup_fstype = \"tmpfs\"\nincus_project = \"{}\"\ndefault_image = \"{TEST_IMAGE_ALIAS}\"\n{extra}",
                l.repos.display(),
                l.backup.display(),
                l.scope().name()
            ),
        )
        .unwrap();
        Some(l)
    }

    fn scope(&self) -> &TestProject {
        &self.lab.1
    }

    fn repoman(&self) -> Command {
        let mut cmd = Command::cargo_bin("repoman").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("USER", "tester")
            .env("SUDO_UID", "1000")
            .env("SUDO_GID", "1000")
            .env("SUDO_USER", "dev")
            // `setup` delegates ids in these, never in the system's files.
            .env("REPOMAN_SUBUID_FILE", self.home.join("subuid"))
            .env("REPOMAN_SUBGID_FILE", self.home.join("subgid"))
            .arg("--no-progress")
            // No probe may make a host command hang.
            .timeout(Duration::from_secs(120));
        cmd
    }

    fn repo(&self, name: &str) -> PathBuf {
        let p = self.repos.join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
        p
    }

    fn new_sandbox(&self, name: &str) {
        self.repo(name);
        self.repoman()
            .args(["new", name, "--yes"])
            .assert()
            .success();
    }

    /// Run `script` as root (uid 0) inside `name`; returns (exit code, stdout + stderr).
    fn root_sh(&self, name: &str, script: &str) -> (i32, String) {
        let out = self
            .scope()
            .exec(name, &ExecSpec::new(["sh", "-c", script]))
            .unwrap();
        (
            out.exit_code,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The names of the instance's devices besides the agent door's read-only endpoint mount
    /// (the repo mount and nothing else, normally).
    fn devices(&self, name: &str) -> Vec<String> {
        let inst = self.scope().get_instance(name).unwrap();
        let agent = &inst.devices[repoman_core::agent_door::AGENT_DEVICE];
        assert_eq!(agent["readonly"], "true", "{agent:?}");
        assert!(
            agent["source"].ends_with(&format!("/agents/{name}")),
            "{agent:?}"
        );
        inst.devices
            .keys()
            .filter(|k| *k != repoman_core::agent_door::AGENT_DEVICE)
            .cloned()
            .collect()
    }

    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self.repoman().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Probe: `.repoman.toml` rewritten from inside (mount `/etc`, `~/.ssh`, a relative source that
/// is a symlink to `/etc`, `../other`). Host `update --yes` and `status --repair --yes` mount
/// nothing and say the file is untrusted; a human who trusts it anyway still gets nothing
/// mounted (the mount-source policy).
#[test]
fn config_rewritten_inside_is_never_applied() {
    let Some(l) = Lab::new("rt-config") else {
        return;
    };
    if !is_root() {
        panic!("the red-team suite runs as root (the Incus lab)");
    }
    let ssh = l.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), "host secret\n").unwrap();
    l.repo("other");
    std::fs::write(l.repos.join("other/secret.txt"), "other project\n").unwrap();
    l.new_sandbox("app");
    assert_eq!(l.devices("app"), ["repo"]);

    let mount_path = "/home/dev/app";
    let script = format!(
        "cd {mount_path} && ln -s /etc etc-link && cat > .repoman.toml <<'EOF'\n\
         [[mount]]\nsource = \"/etc\"\npath = \"/mnt/etc\"\n\n\
         [[mount]]\nsource = \"~/.ssh\"\npath = \"/mnt/ssh\"\n\n\
         [[mount]]\nsource = \"etc-link\"\npath = \"/mnt/link\"\n\n\
         [[mount]]\nsource = \"../other\"\npath = \"/mnt/other\"\n\n\
         [[mount]]\nsource = \"../../../../etc\"\npath = \"/mnt/up\"\n\
         EOF\n"
    );
    let (code, out) = l.root_sh("app", &script);
    assert_eq!(code, 0, "{out}");

    let (code, out) = l.run(&["update", "app", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("untrusted"),
        "update did not say untrusted:\n{out}"
    );
    assert!(out.contains("repoman trust app"), "{out}");
    assert_eq!(l.devices("app"), ["repo"], "update mounted something");

    let (code, out) = l.run(&["status", "--repair", "--yes"]);
    assert!(
        out.contains("untrusted"),
        "status did not say untrusted:\n{out}"
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        l.devices("app"),
        ["repo"],
        "status --repair mounted something"
    );

    let out = l
        .repoman()
        .args(["--json", "update", "app", "--dry-run"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config_trust"][0]["status"], "untrusted", "{v}");
    assert!(
        v["config_trust"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+source = \"/etc\""),
        "{v}"
    );

    // A careless human trusts it: every one of those sources is still refused.
    for (src, why) in [
        ("/etc", "protected"),
        ("~/.ssh", "protected"),
        ("etc-link", "protected"),
        ("../other", "leaves the repo"),
        ("../../../../etc", "leaves the repo"),
    ] {
        let (code, out) = l.root_sh(
            "app",
            &format!(
                "printf '[[mount]]\\nsource = \"{src}\"\\npath = \"/mnt/x\"\\n' > {mount_path}/.repoman.toml"
            ),
        );
        assert_eq!(code, 0, "{out}");
        let (code, out) = l.run(&["trust", "app", "--yes"]);
        assert_eq!(code, 0, "{out}");
        let (code, out) = l.run(&["update", "app", "--yes"]);
        assert_ne!(code, 0, "{src}: update succeeded:\n{out}");
        assert!(out.contains(why), "{src}: {out}");
        assert_eq!(l.devices("app"), ["repo"], "{src} was mounted");
    }
    // Nothing inside sees the host's files.
    let (code, _) = l.root_sh(
        "app",
        "cat /mnt/*/id_ed25519 /mnt/*/secret.txt /mnt/*/shadow 2>/dev/null",
    );
    assert_ne!(code, 0);
}

/// Probe: an agent cannot trust (REPOMAN_ACTOR=agent:..., as the daemon's agent door sets it),
/// and `--yes` alone never trusts: `new` without a terminal refuses an untrusted file.
#[test]
fn only_a_human_trusts() {
    let Some(l) = Lab::new("rt-trust") else {
        return;
    };
    let repo = l.repo("app");
    std::fs::write(repo.join(".repoman.toml"), "[env]\nX = \"1\"\n").unwrap();
    let (code, out) = l.run(&["new", "app", "--yes"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("repoman trust app"), "{out}");
    assert!(l.scope().find_instance("app").unwrap().is_none());
    let out = l
        .repoman()
        .env("REPOMAN_ACTOR", "agent:app")
        .args(["trust", "app", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a human"));
    let out = l
        .repoman()
        .env("CI", "1")
        .args(["trust", "app", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (code, out) = l.run(&["trust", "app", "--yes"]);
    assert_eq!(code, 0, "{out}");
    l.repoman().args(["new", "app", "--yes"]).assert().success();
    let inst = l.scope().get_instance("app").unwrap();
    assert_eq!(
        inst.config.get("environment.X").map(String::as_str),
        Some("1")
    );
}

/// Probe: symlinks (to `/etc/shadow`, to `/`, to another project's repo) and a FIFO planted in
/// the repo. Host `sync`, `verify` and `restore` neither read through them nor hang: the backup
/// holds links as links, and the restored copy too.
#[test]
fn links_and_fifos_in_the_repo_are_not_followed_and_do_not_hang() {
    let Some(l) = Lab::new("rt-links") else {
        return;
    };
    l.repo("other");
    std::fs::write(l.repos.join("other/secret.txt"), "other project\n").unwrap();
    l.new_sandbox("app");
    let other = l.repos.join("other");
    let (code, out) = l.root_sh(
        "app",
        &format!(
            "cd /home/dev/app && echo data > real.txt && ln -s /etc/shadow shadow && ln -s / root \
             && ln -s {} peer && mkfifo fifo && ls -la",
            other.display()
        ),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = l.run(&["sync", "app", "--yes"]);
    assert_eq!(code, 0, "sync: {out}");
    let (code, out) = l.run(&["verify", "app"]);
    assert_eq!(code, 0, "verify: {out}");
    let restored = l.home.join("restored");
    let (code, out) = l.run(&[
        "restore",
        "app",
        "--to",
        restored.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, 0, "restore: {out}");
    // The repo's `.repoman.toml` turned into a FIFO: every host command that reads it refuses
    // it at once instead of waiting for a writer.
    let (code, out) = l.root_sh("app", "mkfifo /home/dev/app/.repoman.toml");
    assert_eq!(code, 0, "{out}");
    // (A command that waited on a FIFO would be killed by the 120 s timeout of `repoman()`, exit
    // -1, without the refusal in its output: that is what the assertions catch.)
    for args in [
        &["update", "app", "--dry-run"][..],
        &["status", "app"],
        &["trust", "app", "--dry-run"],
        &["sync", "app", "--yes"],
    ] {
        let (code, out) = l.run(args);
        assert_ne!(code, -1, "{args:?} was killed (it hung): {out}");
        if args[0] != "sync" {
            assert!(out.contains("not a regular file"), "{args:?}: {out}");
        }
    }
    // Toolchain manifests planted by root inside: a link to /etc/shadow and a FIFO. `tools
    // status` on the host reads neither through nor waits on them.
    let (code, out) = l.root_sh(
        "app",
        "cd /home/dev/app && ln -s /etc/shadow .tool-versions && mkfifo mise.toml",
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = l.run(&["tools", "status", "app"]);
    eprintln!("tools status: exit {code}:\n{out}");
    assert_ne!(code, -1, "tools status was killed (it hung): {out}");
    assert!(
        out.contains("symbolic link") && out.contains("not a regular file"),
        "{out}"
    );
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let root_line = shadow.lines().next().unwrap_or("root:");
    assert!(!out.contains(root_line), "tools status printed /etc/shadow");

    let backup = l.backup.join("app");
    for root in [&backup, &restored] {
        for (link, target) in [
            ("shadow", PathBuf::from("/etc/shadow")),
            ("root", PathBuf::from("/")),
            ("peer", other.clone()),
        ] {
            let p = root.join(link);
            let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            assert!(meta.file_type().is_symlink(), "{p:?} is not a link");
            assert_eq!(std::fs::read_link(&p).unwrap(), target);
        }
        assert_eq!(
            std::fs::read_to_string(root.join("real.txt")).unwrap(),
            "data\n"
        );
        assert!(
            !root.join("secret.txt").exists() && !root.join("etc").exists(),
            "{root:?}: a link was followed"
        );
    }
}

/// Probes: mknod of a block device, writes under `/proc/sys`, the Incus socket, another
/// project's repo and host processes are all out of reach of root inside the sandbox.
#[test]
fn host_interfaces_are_out_of_reach_of_root_inside() {
    let Some(l) = Lab::new("rt-host") else {
        return;
    };
    l.repo("other");
    std::fs::write(l.repos.join("other/secret.txt"), "other project\n").unwrap();
    l.new_sandbox("app");
    let other = l.repos.join("other");
    let host_pid = std::process::id();
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let probes: Vec<(&str, String)> = vec![
        (
            "mknod a block device and read the host disk",
            "mknod /tmp/sda b 8 0 && head -c 512 /tmp/sda >/dev/null".to_owned(),
        ),
        (
            "write /proc/sys/kernel/core_pattern (the classic escape to a host root helper)",
            "echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern".to_owned(),
        ),
        (
            "reach the Incus socket",
            "ls /var/lib/incus/unix.socket /run/incus/unix.socket /var/lib/incus/unix.socket.user 2>/dev/null | grep -q .".to_owned(),
        ),
        (
            "read another project's repo",
            format!("cat {}/secret.txt", other.display()),
        ),
        (
            "see or signal a host process",
            format!("test -d /proc/{host_pid}/ && grep -q repoman /proc/{host_pid}/cmdline || kill -0 {host_pid}"),
        ),
    ];
    // How the boundary says no, per probe (`|`: any of these).
    let refusals: [(&str, &str); 5] = [
        (
            "mknod a block device and read the host disk",
            "not permitted",
        ),
        (
            "write /proc/sys/kernel/core_pattern (the classic escape to a host root helper)",
            "Permission denied|Read-only",
        ),
        ("reach the Incus socket", ""),
        ("read another project's repo", "No such file"),
        ("see or signal a host process", "No such process"),
    ];
    for (what, script) in &probes {
        let (code, out) = l.root_sh("app", script);
        eprintln!("probe `{what}`: exit {code}: {}", out.trim());
        assert_ne!(code, 0, "probe `{what}` succeeded as root inside:\n{out}");
        // The probe ran and was refused by the boundary (a missing tool or file would "fail"
        // without testing anything).
        assert!(
            !out.contains("not found") && code != 127,
            "probe `{what}` did not run: {out}"
        );
        let why = refusals
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, r)| *r)
            .unwrap_or_default();
        assert!(
            why.split('|').any(|r| out.contains(r)),
            "probe `{what}` failed for another reason than the boundary ({why}): {out}"
        );
    }
    // The host is as it was.
    assert_eq!(
        std::fs::read_to_string(other.join("secret.txt")).unwrap(),
        "other project\n"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern,
        "core_pattern was changed"
    );
}

/// `repoman list --json` from the host: it must answer (and list `name`) whatever runs inside.
/// Returns how long it took.
fn list_answers(l: &Lab, name: &str) -> Duration {
    let started = Instant::now();
    let out = l.repoman().args(["--json", "list"]).output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["sandboxes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == name),
        "{v}"
    );
    took
}

/// Probe: a fork bomb as root inside. The sandbox's default `limits.processes` (2000, no
/// `[defaults] limits_processes` in this registry) stops it: the process count Incus reports
/// never exceeds the limit, while the host's `repoman list --json` keeps answering (its times are
/// printed, not asserted: the host is shared). The bomb stops itself when the host creates a file
/// in the repo (the host needs no process inside to stop it), and `timeout` bounds it anyway.
#[test]
fn a_fork_bomb_inside_stops_at_the_process_limit_and_the_host_answers() {
    let Some(l) = Lab::new("rt-forkbomb") else {
        return;
    };
    l.new_sandbox("app");
    let inst = l.scope().get_instance("app").unwrap();
    let limit: i64 = inst.config["limits.processes"].parse().unwrap();
    assert_eq!(limit, 2000, "the default limits.processes");
    let stop = l.repos.join("app/STOP");
    let baseline = list_answers(&l, "app");
    eprintln!("repoman list before the bomb: {baseline:?}");

    // Busybox ash: `[` is a builtin, so the check costs no fork.
    let bomb = "timeout 40 sh -c 'f(){ [ -e /home/dev/app/STOP ] || { f | f & }; }; f' \
                >/dev/null 2>&1 </dev/null; echo launched";
    let (code, out) = l.root_sh("app", bomb);
    assert_eq!(code, 0, "{out}");
    let mut peak = 0i64;
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(st) = l.scope().instance_state("app") {
            peak = peak.max(st.processes);
        }
        times.push(list_answers(&l, "app"));
        if let Ok(st) = l.scope().instance_state("app") {
            peak = peak.max(st.processes);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(&stop, "").unwrap();
    let max = times.iter().max().copied().unwrap_or_default();
    let avg = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    eprintln!(
        "fork bomb: peak {peak} processes inside (limit {limit}); repoman list answered {} times during it: avg {avg:?}, max {max:?} (before: {baseline:?})",
        times.len()
    );
    assert!(
        peak > 100,
        "the fork bomb did not run (peak {peak} processes)"
    );
    assert!(
        peak <= limit,
        "{peak} processes inside, over limits.processes={limit}"
    );
    // The bomb drains once STOP exists; the sandbox is usable again.
    let drained = Instant::now();
    loop {
        let n = l.scope().instance_state("app").unwrap().processes;
        if n < 20 {
            break;
        }
        assert!(
            drained.elapsed() < Duration::from_secs(90),
            "the fork bomb did not stop: {n} processes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, out) = l.root_sh("app", "echo alive");
    assert_eq!((code, out.trim()), (0, "alive"));
}

/// Probe: a memory hog as root inside (a shell string doubling until it is killed) with
/// `[defaults] limits_memory = "256MiB"`: it is killed inside its container, the container keeps
/// running, and the host's `repoman list` answers meanwhile.
#[test]
fn a_memory_hog_inside_is_killed_at_the_memory_limit_and_the_host_answers() {
    let Some(l) = Lab::with_defaults("rt-memhog", "limits_memory = \"256MiB\"\n") else {
        return;
    };
    l.new_sandbox("app");
    let inst = l.scope().get_instance("app").unwrap();
    assert_eq!(inst.config["limits.memory"], "256MiB");
    let hog = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let started = Instant::now();
            let r = l.root_sh(
                "app",
                "x=0123456789abcdef; while :; do x=\"$x$x\"; done; echo survived",
            );
            (r, started.elapsed())
        });
        let mut times = Vec::new();
        while !h.is_finished() && times.len() < 60 {
            times.push(list_answers(&l, "app"));
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("repoman list during the memory hog: {times:?}");
        h.join().unwrap()
    });
    let ((code, out), took) = hog;
    eprintln!("memory hog: exit {code} after {took:?}: {}", out.trim());
    assert_ne!(code, 0, "the hog was not stopped: {out}");
    assert!(!out.contains("survived"), "{out}");
    // Killed by the OOM killer (SIGKILL: 137), or its allocation refused inside.
    assert!(
        code == 137 || out.contains("out of memory") || out.contains("Killed"),
        "the hog failed for another reason than the memory limit: exit {code}: {out}"
    );
    assert!(l.scope().get_instance("app").unwrap().is_running());
    let (code, out) = l.root_sh("app", "echo alive");
    assert_eq!((code, out.trim()), (0, "alive"));
    list_answers(&l, "app");
}

/// Probe: the guest API. `/dev/incus` is absent inside (repoman sets `security.guestapi=false`)
/// and nothing answers on its socket path.
#[test]
fn the_guest_api_is_absent_inside() {
    let Some(l) = Lab::new("rt-guestapi") else {
        return;
    };
    l.new_sandbox("app");
    let inst = l.scope().get_instance("app").unwrap();
    assert_eq!(inst.expanded_config["security.guestapi"], "false");
    let (code, out) = l.root_sh("app", "ls -la /dev/incus/sock || ls -la /dev/incus");
    eprintln!("probe `/dev/incus`: exit {code}: {}", out.trim());
    assert_ne!(code, 0, "/dev/incus is present inside:\n{out}");
    assert!(out.contains("No such file"), "{out}");
}

/// Probe: a registry `[[profile]]` with `security.nesting=true` and `security.privileged=true`
/// used by a project: `repoman new` refuses to start it (exit 3, the keys and the profile named)
/// and leaves no container; a low-level key set on an existing sandbox's instance by hand is
/// refused by `start` and by the start before `exec` (exit 3, named as set on the instance), and
/// the container stays stopped.
#[test]
fn a_profile_or_key_that_weakens_the_sandbox_is_refused_before_start() {
    let profile = "\n[[profile]]\nname = \"nest\"\ndescription = \"nested containers\"\n\
                   config = { \"security.nesting\" = \"true\", \"security.privileged\" = \"true\" }\n";
    // repoman's own check, whatever project it is given: here one that is not restricted (the
    // restricted project would refuse these keys itself, checked at the end).
    let Some(l) = Lab::unrestricted("rt-harden", profile) else {
        return;
    };
    // What `repoman setup` makes of that [[profile]], made here through the API.
    let mut put = repoman_incus::ProfilePut {
        description: "nested containers".into(),
        ..Default::default()
    };
    put.config.insert("security.nesting".into(), "true".into());
    put.config
        .insert("security.privileged".into(), "true".into());
    l.scope().create_profile("nest", &put).unwrap();

    l.repo("app");
    let (code, out) = l.run(&["new", "app", "--profile", "nest", "--yes"]);
    eprintln!("new with profile nest: exit {code}:\n{out}");
    assert_eq!(code, 3, "{out}");
    for needle in [
        "security.nesting=true (from profile `nest`)",
        "security.privileged=true (from profile `nest`)",
        "nothing was left behind",
        "incus profile edit nest",
    ] {
        assert!(out.contains(needle), "missing `{needle}`:\n{out}");
    }
    assert!(
        l.scope().find_instance("app").unwrap().is_none(),
        "a refused sandbox was left behind"
    );
    let (code, out) = l.run(&["list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("app"),
        "the refused project was registered:\n{out}"
    );

    // A sandbox made safely, then given raw.lxc by hand while stopped.
    l.new_sandbox("ok");
    l.scope().stop("ok", true).unwrap();
    l.scope()
        .edit_instance("ok", |i| {
            i.config
                .insert("raw.lxc".into(), "lxc.apparmor.profile=unconfined".into());
            Ok(())
        })
        .unwrap();
    for args in [&["start", "ok"][..], &["exec", "ok", "--yes", "--", "true"]] {
        let (code, out) = l.run(args);
        eprintln!("{args:?}: exit {code}:\n{out}");
        assert_eq!(code, 3, "{args:?}: {out}");
        assert!(
            out.contains("raw.lxc=lxc.apparmor.profile=unconfined (set on the instance)"),
            "{args:?}: {out}"
        );
        assert!(out.contains("incus config unset ok raw.lxc"), "{out}");
        assert_eq!(l.scope().get_instance("ok").unwrap().status, "Stopped");
    }
}

/// Migration: a sandbox made the way versions before the hardening did (repo disk with
/// `shift=true`, no `raw.idmap`, no limits, the guest API at Incus' default), running. `status`
/// reports security drift (human and `--json`); `update --yes` shows the diff, migrates it and
/// restarts it; afterwards root inside maps to no host uid that owns anything, `/dev/incus` is
/// gone, and `status` is clean.
#[test]
fn an_old_shift_mounted_sandbox_is_security_drift_that_update_migrates() {
    // An estate made by the previous version: its project is not restricted yet.
    let Some(l) = Lab::unrestricted("rt-migrate", "") else {
        return;
    };
    let repo = l.repo("old");
    let reg = l.home.join(".config/repoman/repoman.toml");
    let mut text = std::fs::read_to_string(&reg).unwrap();
    text.push_str("\n[[project]]\nname = \"old\"\nrepo = \"old\"\n");
    std::fs::write(&reg, text).unwrap();
    let spec = repoman_incus::InstanceSpec::new(
        "old",
        repoman_incus::ImageSource::alias(TEST_IMAGE_ALIAS),
    )
    .profile("default")
    .tag("repoman.project", "old")
    .tag("repoman.repo", repo.display())
    .tag("repoman.image", TEST_IMAGE_ALIAS)
    .device(
        "repo",
        // Read-only: the old idmapped layout (what the migration must find and replace) without
        // a window in which root inside could own the host's files through it.
        repoman_incus::DeviceSpec::disk(&repo, "/home/dev/old")
            .shift(true)
            .readonly(true),
    );
    l.scope().create_instance(&spec).unwrap();
    l.scope().start("old").unwrap();
    let (code, out) = l.root_sh("old", "ls /dev/incus/sock");
    assert_eq!(
        code, 0,
        "the old-style sandbox should have the guest API: {out}"
    );

    // The upgrade: setup restricts the project, warning that `old` will not start until it is
    // migrated; the running sandbox keeps running.
    let out = l.setup();
    assert!(
        out.contains("sandbox `old` still has a shift=true mount")
            && out.contains("repoman update old --yes"),
        "{out}"
    );
    assert!(l.scope().get_instance("old").unwrap().is_running());
    let (code, out) = l.run(&["status", "old"]);
    eprintln!("status before:\n{out}");
    assert_eq!(code, 1, "{out}");
    for needle in [
        "SECURITY drift",
        "shift=true",
        "+ config raw.idmap=both 1000 1000  [security:",
        "+ config limits.processes=2000  [security:",
        "+ config security.guestapi=false  [security:",
    ] {
        assert!(out.contains(needle), "missing `{needle}`:\n{out}");
    }
    let out = l
        .repoman()
        .args(["--json", "status", "old"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift = &v["drift"][0];
    assert_eq!(drift["kind"], "config", "{v}");
    assert_eq!(drift["security"], true, "{v}");
    let repo_change = drift["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["device"] == "repo")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        repo_change["security"].as_str().unwrap().contains("shift"),
        "{v}"
    );

    let out = l.repoman().args(["--json", "list"]).output().unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows["sandboxes"][0]["drift"], "security", "{rows}");

    // Starting it as it is would be refused (shift=true, the guest API on).
    let (code, out) = l.run(&["restart", "old"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("device repo shift=true"), "{out}");

    let (code, out) = l.run(&["update", "old", "--yes"]);
    eprintln!("update:\n{out}");
    assert_eq!(code, 0, "{out}");
    for needle in [
        "~ device repo: type=disk source=",
        "shift=true ->",
        "+ config raw.idmap=both 1000 1000",
        "+ config limits.memory=50%",
        "restart `old`",
    ] {
        assert!(out.contains(needle), "missing `{needle}`:\n{out}");
    }
    let inst = l.scope().get_instance("old").unwrap();
    assert!(inst.is_running());
    assert!(
        !inst.devices["repo"].contains_key("shift"),
        "{:?}",
        inst.devices
    );
    assert_eq!(inst.config["raw.idmap"], "both 1000 1000");
    assert_eq!(inst.config["limits.processes"], "2000");
    assert_eq!(inst.config["security.guestapi"], "false");
    // The migration took effect (the restart): root inside owns nothing on the host.
    let (code, out) = l.root_sh(
        "old",
        "touch /home/dev/old/by-root && chown 0:0 /home/dev/old/by-root; ls /dev/incus",
    );
    assert_ne!(code, 0, "/dev/incus still present: {out}");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(repo.join("by-root")).unwrap();
    assert!(
        meta.uid() != 0 && meta.gid() != 0,
        "root inside made a host-root file"
    );

    let out = l
        .repoman()
        .args(["--json", "status", "old"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift"], serde_json::json!([]), "{v}");
    let (code, out) = l.run(&["status", "old"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("drift"), "{out}");
}
