//! The agent's door from inside real sandboxes (red-team probes, docs/security.md "The agent
//! door"): the real daemon, real Incus containers with their endpoint directory mounted
//! read-only at /repoman, and a static probe client (tests/data/groove-probe.c, built with
//! `cc -static`, since the busybox test image has neither socat nor python3) run inside them.
//!
//! Without Incus these tests print SKIPPED, unless `REPOMAN_TEST_INCUS=require`.
//! `REPOMAN_TEST_BIN` may name the repoman binary to run instead of Cargo's.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use repoman_groove::Client;
use repoman_incus::spec::{DeviceSpec, ExecSpec, FileMode, ImageSource, InstanceSpec};
use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TestLab, TestProject};
use serde_json::{Value, json};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    _mount: Mount,
    daemon: Option<Child>,
    lab: TestProject,
    _conn: TestLab,
}

const PROBE: &str = "/groove-probe";
const SOCK: &str = "/repoman/groove.sock";

impl Fixture {
    fn new() -> Option<Fixture> {
        let conn = TestLab::connect()?;
        let lab = conn.project("groove-agent");
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup");
        std::fs::create_dir_all(&backup).unwrap();
        assert!(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
                .arg(&backup)
                .status()
                .unwrap()
                .success()
        );
        let f = Fixture {
            _mount: Mount(backup.clone()),
            dir,
            daemon: None,
            lab,
            _conn: conn,
        };
        let local = f.dir.path().join("local");
        let mut reg = format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {local:?}\nbackup_root = {backup:?}\nbackup_fstype = \"tmpfs\"\nincus_project = {:?}\n\n",
            f.lab.name()
        );
        for p in ["alpha", "beta"] {
            std::fs::create_dir_all(local.join(p)).unwrap();
            std::fs::write(local.join(p).join("README"), p).unwrap();
            reg.push_str(&format!(
                "[[project]]\nname = \"{p}\"\nrepo = \"{p}\"\ncontainer = true\n\n"
            ));
        }
        let cfg = f.dir.path().join("home/.config/repoman");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("repoman.toml"), reg).unwrap();
        std::fs::create_dir_all(f.dir.path().join("run")).unwrap();
        Some(f)
    }

    fn runtime(&self) -> PathBuf {
        self.dir.path().join("run/repoman")
    }

    fn command(&self) -> std::process::Command {
        let bin = std::env::var_os("REPOMAN_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("repoman"));
        let mut c = std::process::Command::new(bin);
        c.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("USER", "tester")
            // Under root (the lab) the host user is SUDO_UID/GID, as for `repoman new`.
            .env("SUDO_UID", "1000")
            .env("SUDO_GID", "1000")
            .env("SUDO_USER", "dev");
        for k in ["INCUS_SOCKET", "INCUS_DIR"] {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        c
    }

    fn start_daemon(&mut self, extra: &[&str]) {
        let mut c = self.command();
        c.args(["daemon", "run"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.daemon = Some(c.spawn().unwrap());
        let t0 = Instant::now();
        let sock = self.runtime().join("groove.sock");
        while Client::connect(&sock)
            .and_then(|mut c| c.call("log.head", json!({})))
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the daemon did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn host(&self) -> Client {
        Client::connect(&self.runtime().join("groove.sock")).unwrap()
    }

    /// A container with the project's endpoint directory mounted read-only at /repoman (what
    /// `repoman_groove::agent::agent_device` describes) and the probe pushed into it.
    fn sandbox(&self, name: &str, probe: &[u8]) {
        let dir = repoman_groove::agent::agent_dir(
            &repoman_core::Paths::resolve(&self.env()).unwrap(),
            name,
        );
        assert!(dir.is_dir(), "the daemon created {}", dir.display());
        let spec = InstanceSpec::new(name, ImageSource::alias(TEST_IMAGE_ALIAS)).device(
            "repoman-agent",
            DeviceSpec::disk(&dir, "/repoman").readonly(true).build(),
        );
        self.lab.create_instance(&spec).unwrap();
        self.lab.start(name).unwrap();
        self.lab
            .push_file(name, PROBE, probe, FileMode::new(0, 0, 0o755))
            .unwrap();
    }

    fn env(&self) -> repoman_core::Env {
        repoman_core::Env::from_pairs([
            ("HOME", self.dir.path().join("home")),
            ("XDG_RUNTIME_DIR", self.dir.path().join("run")),
        ])
    }

    /// Run the probe in `name`; its stdout lines.
    fn probe(&self, name: &str, args: &[&str]) -> Vec<String> {
        let argv: Vec<String> = std::iter::once(PROBE.to_owned())
            .chain(args.iter().map(|s| s.to_string()))
            .collect();
        let out = self
            .lab
            .exec(name, &ExecSpec::new(argv).timeout(Duration::from_secs(120)))
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Poll `whoami` through `name`'s `/repoman` endpoint until it answers as `agent:<name>`
    /// (the daemon opens a new sandbox's listener within a few seconds).
    fn wait_for_agent(&self, name: &str) {
        let t0 = Instant::now();
        let want = format!("\"agent:{name}\"");
        loop {
            let out = self.probe(
                name,
                &[
                    "call",
                    SOCK,
                    r#"{"jsonrpc":"2.0","id":1,"method":"whoami"}"#,
                ],
            );
            if out.first().is_some_and(|l| l.contains(&want)) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no {want} on {SOCK}: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn call(&self, name: &str, method: &str, params: Value) -> Value {
        let req =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let lines = self.probe(name, &["call", SOCK, &req]);
        assert_eq!(lines.len(), 1, "{method}: {lines:?}");
        serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{method}: {e}: {lines:?}"))
    }

    fn events(&self, ty: &str) -> Vec<Value> {
        let out = self
            .command()
            .args(["--json", "log", "--type", ty, "--limit", "0"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn build_probe(dir: &Path) -> Vec<u8> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/groove-probe.c");
    let out = dir.join("groove-probe");
    let st = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) builds the static probe");
    assert!(st.success(), "cc -static failed");
    std::fs::read(out).unwrap()
}

fn refused(v: &Value) -> (&str, &str) {
    assert_eq!(v["error"]["code"], -32003, "expected a policy refusal: {v}");
    assert_eq!(v["error"]["data"]["kind"], "blocked", "{v}");
    (
        v["error"]["data"]["rule"].as_str().unwrap_or(""),
        v["error"]["message"].as_str().unwrap(),
    )
}

#[test]
fn agent_door_identity_policy_and_probes_from_inside_real_sandboxes() {
    let Some(mut f) = Fixture::new() else { return };
    let probe = build_probe(f.dir.path());
    f.start_daemon(&[]);
    f.sandbox("alpha", &probe);
    f.sandbox("beta", &probe);

    // Identity: the endpoint, cross-checked by the cgroup captured at accept.
    let me = f.call("alpha", "whoami", json!({}));
    assert_eq!(me["result"]["actor"], "agent:alpha", "{me}");
    assert_eq!(me["result"]["endpoint"], "agent");
    assert_eq!(
        me["result"]["cgroup"],
        format!("lxc.payload.{}_alpha", f.lab.name())
    );
    assert_eq!(
        f.call("beta", "whoami", json!({}))["result"]["actor"],
        "agent:beta"
    );

    // Own project: reads, a note, a sync and a verify request.
    let note = f.call(
        "alpha",
        "event.append",
        json!({"type": "agent.note", "data": {"text": "tests pass"}}),
    );
    assert_eq!(note["result"]["actor"], "agent:alpha", "{note}");
    let log = f.call("alpha", "log.query", json!({}));
    let evs = log["result"]["events"].as_array().unwrap();
    assert!(!evs.is_empty());
    assert!(
        evs.iter()
            .all(|e| e["object"].as_str().unwrap().ends_with(":alpha")),
        "{log}"
    );
    let sync = f.call("alpha", "sync", json!({}));
    assert_eq!(sync["result"]["projects"][0]["status"], "synced", "{sync}");
    assert_eq!(sync["result"]["projects"].as_array().unwrap().len(), 1);
    assert_eq!(
        f.call("alpha", "verify", json!({}))["result"]["projects"][0]["status"],
        "ok"
    );
    assert!(
        f.call("alpha", "verify.status", json!({}))["result"]["projects"][0]["last_sync"]
            .is_object()
    );
    let synced = f.events("backup.synced");
    assert_eq!(synced.len(), 1);
    assert_eq!(
        synced[0]["actor"], "agent:alpha",
        "the sync requested by the agent is its own"
    );

    // Another project's data, removal, trust, policy, review resolution, daemon control: refused.
    let attempts = [
        ("log.query", json!({"object": "backup:beta"})),
        ("explain", json!({"object": "beta"})),
        ("verify.status", json!({"project": "beta"})),
        ("sync", json!({"projects": ["beta"]})),
        ("sync", json!({"projects": ["alpha", "beta"]})),
        (
            "event.append",
            json!({"type": "agent.note", "object": "project:beta"}),
        ),
        (
            "event.append",
            json!({"type": "backup.synced", "object": "backup:alpha"}),
        ),
        ("remove", json!({"name": "alpha"})),
        ("sandbox.remove", json!({})),
        ("trust", json!({"project": "alpha"})),
        ("policy.set", json!({"rule": {"effect": "allow"}})),
        (
            "conflicts.resolve",
            json!({"id": "x", "resolution": "keep-local"}),
        ),
        ("repair", json!({})),
        ("daemon.stop", json!({})),
        (
            "tools.pin",
            json!({"tool": "x", "versions": ["1"], "project": "alpha"}),
        ),
    ];
    for (m, p) in &attempts {
        let v = f.call("alpha", m, p.clone());
        let (rule, msg) = refused(&v);
        assert!(!rule.is_empty(), "{m}: {v}");
        assert!(msg.contains("agent policy"), "{m}: {msg}");
    }
    let recorded = f.events("agent.called");
    for (m, _) in &attempts {
        assert!(
            recorded.iter().any(|e| e["data"]["method"] == *m
                && e["data"]["outcome"] == "refused"
                && e["actor"] == "agent:alpha"),
            "the refusal of {m} is recorded"
        );
    }
    // Forged identity: a claim in the request changes nothing.
    let v = f.call("alpha", "whoami", json!({"actor": "human:root@host"}));
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let v = f.call(
        "alpha",
        "log.query",
        json!({"actor": "agent:beta", "project": "beta"}),
    );
    let evs = v["result"]["events"].as_array().unwrap();
    assert!(
        evs.iter()
            .all(|e| e["object"].as_str().unwrap().ends_with(":alpha")),
        "still only alpha: {v}"
    );
    // A fake socket planted in the endpoint directory: the mount is read-only.
    let planted = f.probe("alpha", &["plant", "/repoman"]);
    assert_eq!(
        planted,
        vec![
            "unlink Read-only file system",
            "bind Read-only file system",
            "mkdir Read-only file system"
        ]
    );
    assert_eq!(
        f.call("alpha", "whoami", json!({}))["result"]["actor"],
        "agent:alpha"
    );
    // Beta's container has only beta's socket.
    let ls = f
        .lab
        .exec("beta", &ExecSpec::new(["ls", "-a", "/repoman"]))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        [".", "..", "groove.sock"]
    );
    // Connect, then fork and exit the parent: the child gets at most the sandbox's own identity.
    f.probe(
        "alpha",
        &[
            "fork",
            SOCK,
            r#"{"jsonrpc":"2.0","id":1,"method":"whoami"}"#,
            "/fork.out",
        ],
    );
    let t0 = Instant::now();
    let line = loop {
        let out = f
            .lab
            .exec("alpha", &ExecSpec::new(["cat", "/fork.out"]))
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !text.is_empty() {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the forked child never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        line == "closed" || line.contains("\"agent:alpha\"") || line.contains("exited"),
        "connect-then-fork gave {line}"
    );
    assert!(
        !line.contains("human:") && !line.contains("agent:beta"),
        "{line}"
    );

    // Every agent call is on record, by the agent.
    let alpha_calls = f
        .events("agent.called")
        .into_iter()
        .filter(|e| e["actor"] == "agent:alpha")
        .count();
    assert!(alpha_calls >= attempts.len() + 8, "{alpha_calls}");
}

#[test]
fn a_flooding_agent_is_rate_limited_without_starving_another_sandbox_or_the_cli() {
    let Some(mut f) = Fixture::new() else { return };
    let probe = build_probe(f.dir.path());
    f.start_daemon(&["--agent-rate", "200"]);
    f.sandbox("alpha", &probe);
    f.sandbox("beta", &probe);
    let lat = |f: &Fixture| -> String {
        let out = f.probe("beta", &["lat", SOCK, "100"]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].starts_with("n 100 "),
            "beta's calls all succeeded: {out:?}"
        );
        out[0].clone()
    };
    let quiet = lat(&f);
    let host_quiet = host_latency(&f);
    std::thread::scope(|s| {
        let flood = s.spawn(|| f.probe("alpha", &["flood", SOCK, "3", "8"]));
        std::thread::sleep(Duration::from_millis(300));
        let busy = lat(&f);
        let host_busy = host_latency(&f);
        let flood = flood.join().unwrap();
        assert_eq!(flood.len(), 8, "{flood:?}");
        let num = |k: &str| -> u64 {
            flood
                .iter()
                .map(|l| {
                    let parts: Vec<&str> = l.split_whitespace().collect();
                    parts[parts.iter().position(|p| *p == k).unwrap() + 1]
                        .parse::<u64>()
                        .unwrap()
                })
                .sum()
        };
        assert!(
            num("sent") >= 1000,
            "the flood sent over 1,000 requests in 3 s: {flood:?}"
        );
        // Burst (200) + 200/s for the 3 s flood (each of its 8 processes runs 3 s from its own
        // start), with two seconds of slack for timing.
        assert!(
            num("ok") <= 200 + 5 * 200,
            "at most burst + rate x time got through: {flood:?}"
        );
        assert!(num("limited") > 0, "the flood was rate limited: {flood:?}");
        assert_eq!(num("other"), 0, "{flood:?}");
        eprintln!(
            "beta quiet: {quiet}\nbeta during alpha's flood: {busy}\nhost quiet: {host_quiet}\nhost during the flood: {host_busy}\nflood (8 connections): sent {} ok {} limited {}",
            num("sent"),
            num("ok"),
            num("limited")
        );
    });
    let limited = f.host().call("daemon.status", json!({})).unwrap()["rate_limited"]
        .as_u64()
        .unwrap();
    assert!(limited > 0);
}

/// 100 `log.head` calls on the host socket: "p50 .. p99 .. max .." in microseconds.
fn host_latency(f: &Fixture) -> String {
    let mut c = f.host();
    let mut v: Vec<u128> = (0..100)
        .map(|_| {
            let t = Instant::now();
            c.call("log.head", json!({})).unwrap();
            t.elapsed().as_micros()
        })
        .collect();
    v.sort_unstable();
    format!("p50 {} p99 {} max {}", v[50], v[99], v[99])
}

#[test]
fn a_sandbox_started_before_its_endpoint_existed_gets_it_once_the_daemon_runs() {
    let Some(mut f) = Fixture::new() else { return };
    let probe = build_probe(f.dir.path());
    // As after a reboot: the runtime dir is empty, the sandbox starts anyway (required=false)
    // and has no endpoint yet.
    let paths = repoman_core::Paths::resolve(&f.env()).unwrap();
    let dir = repoman_groove::agent::agent_dir(&paths, "alpha");
    assert!(!dir.exists());
    let dev = repoman_groove::agent::agent_device(&dir);
    let spec = InstanceSpec::new("alpha", ImageSource::alias(TEST_IMAGE_ALIAS))
        .device(repoman_groove::agent::AGENT_DEVICE, dev);
    f.lab.create_instance(&spec).unwrap();
    f.lab.start("alpha").unwrap();
    f.lab
        .push_file("alpha", PROBE, &probe, FileMode::new(0, 0, 0o755))
        .unwrap();
    let ls = f.lab.exec("alpha", &ExecSpec::new(["ls", SOCK])).unwrap();
    assert_ne!(ls.exit_code, 0, "no endpoint before the daemon runs");
    f.start_daemon(&[]);
    f.wait_for_agent("alpha");
}

/// The agent door on sandboxes made the normal way: `repoman new` gives the sandbox its
/// read-only `/repoman` endpoint mount (the directory made before the first start), the daemon's
/// listener answers there as `agent:<project>`, and a sandbox without the mount (made by an older
/// version) shows it as drift that `repoman update` repairs.
#[test]
fn new_gives_a_sandbox_the_agent_door_and_update_adds_it_to_an_older_one() {
    let Some(mut f) = Fixture::new() else { return };
    let probe = build_probe(f.dir.path());
    let repo = f.dir.path().join("local/gamma");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::chown(&repo, Some(1000), Some(1000)).unwrap();
    let run = |f: &Fixture, args: &[&str]| {
        let out = f.command().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = run(&f, &["new", "gamma", "--image", TEST_IMAGE_ALIAS, "--yes"]);
    assert_eq!(code, 0, "{out}");
    let paths = repoman_core::Paths::resolve(&f.env()).unwrap();
    let dir = repoman_groove::agent::agent_dir(&paths, "gamma");
    let inst = f.lab.get_instance("gamma").unwrap();
    let dev = &inst.devices[repoman_groove::agent::AGENT_DEVICE];
    assert_eq!(dev["source"], dir.display().to_string());
    assert_eq!(dev["path"], "/repoman");
    assert_eq!(dev["readonly"], "true");
    assert!(
        dir.is_dir(),
        "the endpoint directory exists before the first start"
    );

    f.start_daemon(&[]);
    f.lab
        .push_file("gamma", PROBE, &probe, FileMode::new(0, 0, 0o755))
        .unwrap();
    f.wait_for_agent("gamma");

    // The same domain through the daemon: `list` and `status` on the host socket, `status` of
    // its own project for the agent (another project's is refused).
    let mut host = f.host();
    let list = host.call("list", json!({})).unwrap();
    assert!(
        list["sandboxes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "gamma" && r["state"] == "Running"),
        "{list}"
    );
    let status = host.call("status", json!({"project": "gamma"})).unwrap();
    assert_eq!(status["drift"], json!([]), "{status}");
    let own = f.call("gamma", "status", json!({}));
    assert_eq!(own["result"]["sandboxes"][0]["name"], "gamma", "{own}");
    let other = f.call("gamma", "status", json!({"project": "alpha"}));
    assert_eq!(refused(&other).0, "agent.own-project", "{other}");
    let repair = f.call("gamma", "repair", json!({}));
    assert!(repair.get("error").is_some(), "an agent repaired: {repair}");

    // As a sandbox made before the agent door: no mount. Drift, repaired through the daemon.
    f.lab
        .remove_device("gamma", repoman_groove::agent::AGENT_DEVICE)
        .unwrap();
    let status = host.call("status", json!({"project": "gamma"})).unwrap();
    assert_eq!(status["drift"][0]["kind"], "config", "{status}");
    let dry = host
        .call("repair", json!({"project": "gamma", "dry_run": true}))
        .unwrap();
    assert!(
        !f.lab
            .get_instance("gamma")
            .unwrap()
            .devices
            .contains_key(repoman_groove::agent::AGENT_DEVICE),
        "a dry run repaired: {dry}"
    );
    let repaired = host.call("repair", json!({"project": "gamma"})).unwrap();
    // (The test project is not restricted: that problem stays, the drift is gone.)
    assert_eq!(repaired["drift"], json!([]), "{repaired}");
    assert_eq!(repaired["repairs"][0]["applied"], true, "{repaired}");
    assert!(
        f.lab
            .get_instance("gamma")
            .unwrap()
            .devices
            .contains_key(repoman_groove::agent::AGENT_DEVICE)
    );
    f.wait_for_agent("gamma");

    // And by `update`.
    f.lab
        .remove_device("gamma", repoman_groove::agent::AGENT_DEVICE)
        .unwrap();
    let (code, out) = run(&f, &["--json", "status", "gamma"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("repoman-agent"), "{out}");
    let (code, out) = run(&f, &["update", "gamma", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        f.lab
            .get_instance("gamma")
            .unwrap()
            .devices
            .contains_key(repoman_groove::agent::AGENT_DEVICE)
    );
    f.wait_for_agent("gamma");
}
