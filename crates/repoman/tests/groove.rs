//! The daemon and the Groove protocol end to end: the real `repoman daemon run` process, real
//! unix sockets, real rsync onto a real tmpfs (these tests run as root), real signals
//! (SIGTERM, SIGHUP, SIGKILL). Time for the scheduler comes from a clock file the test writes
//! (`--test-clock`), and the scheduler ticks only when asked (`schedule.tick`).
//!
//! `REPOMAN_TEST_BIN` may name the binary to run instead of Cargo's (for a target directory that
//! other builds share and may overwrite while these tests run).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use repoman_groove::{Client, ClientError};
use serde_json::{Value, json};

/// A tmpfs mounted for the life of the value.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512m", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs needs root");
        Self(at.to_path_buf())
    }
    fn unmount(&self) {
        let st = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
    fn remount(&self) {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512m", "tmpfs"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// A private estate (HOME, XDG dirs, working copies, a tmpfs backup root) and its daemon.
struct Estate {
    dir: tempfile::TempDir,
    mount: Option<Mount>,
    daemon: Option<Child>,
    daemon_args: Vec<String>,
    extra_env: Vec<(String, String)>,
}

impl Estate {
    fn new(projects: &[&str], defaults: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mount = Some(Mount::tmpfs(&dir.path().join("backup")));
        let e = Self {
            dir,
            mount,
            daemon: None,
            daemon_args: Vec::new(),
            extra_env: Vec::new(),
        };
        std::fs::create_dir_all(e.local()).unwrap();
        std::fs::create_dir_all(e.dir.path().join("run")).unwrap();
        let mut reg = format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {:?}\nbackup_root = {:?}\nbackup_fstype = \"tmpfs\"\nprobe_timeout_secs = 2\n{defaults}\n",
            e.local(),
            e.backup()
        );
        for p in projects {
            reg.push_str(&format!(
                "[[project]]\nname = \"{p}\"\nrepo = \"{p}\"\ncontainer = false\n\n"
            ));
            std::fs::create_dir_all(e.local().join(p)).unwrap();
            std::fs::write(e.local().join(p).join("README"), format!("{p}\n")).unwrap();
        }
        std::fs::create_dir_all(e.config_file().parent().unwrap()).unwrap();
        std::fs::write(e.config_file(), reg).unwrap();
        e
    }

    fn config_file(&self) -> PathBuf {
        self.home().join(".config/repoman/repoman.toml")
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn local(&self) -> PathBuf {
        self.dir.path().join("local")
    }
    fn backup(&self) -> PathBuf {
        self.dir.path().join("backup")
    }
    fn runtime(&self) -> PathBuf {
        self.dir.path().join("run/repoman")
    }
    fn socket(&self) -> PathBuf {
        self.runtime().join("groove.sock")
    }
    fn clock_file(&self) -> PathBuf {
        self.dir.path().join("clock")
    }
    fn set_clock(&self, t: jiff::Timestamp) {
        std::fs::write(self.clock_file(), format!("{t}\n")).unwrap();
    }

    fn command(&self) -> std::process::Command {
        let bin = std::env::var_os("REPOMAN_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("repoman"));
        let mut c = std::process::Command::new(bin);
        c.env_clear()
            // Not strict about schemas: these tests append their own event types (`note.added`)
            // through `log.append`, as any client may; the daemon's own types are checked by
            // groove_agent.rs and the schema tests.
            .env("REPOMAN_STRICT_SCHEMAS", "0")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("USER", "tester");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .command()
            .arg("--no-progress")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "repoman {args:?} failed\nstdout:\n{out}\nstderr:\n{err}"
        );
        out
    }

    /// Start `repoman daemon run` and wait until it answers.
    fn start(&mut self) {
        let mut c = self.command();
        c.args(["daemon", "run", "--no-agents"])
            .args(&self.daemon_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        self.daemon = Some(child);
        let t0 = Instant::now();
        loop {
            if let Ok(mut cl) = Client::connect(&self.socket())
                && cl.call("log.head", json!({})).is_ok()
            {
                return;
            }
            if let Some(ch) = self.daemon.as_mut()
                && let Some(st) = ch.try_wait().unwrap()
            {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(ch.stderr.as_mut().unwrap(), &mut err);
                panic!("the daemon exited with {st}: {err}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the daemon did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.daemon.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the daemon process to exit; its exit code.
    fn wait(&mut self) -> i32 {
        let mut ch = self.daemon.take().unwrap();
        ch.wait().unwrap().code().unwrap_or(-1)
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket()).unwrap()
    }

    fn call(&self, method: &str, params: Value) -> Value {
        self.client()
            .call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"))
    }

    fn events(&self, ty: &str) -> Vec<Value> {
        let out = self.ok(&["--json", "log", "--type", ty, "--limit", "0"]);
        serde_json::from_str::<Vec<Value>>(&out).unwrap()
    }
}

impl Drop for Estate {
    fn drop(&mut self) {
        if let Some(mut ch) = self.daemon.take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
    }
}

/// A raw line-level connection (for malformed input).
struct Raw {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Raw {
    fn new(path: &Path) -> Self {
        let w = UnixStream::connect(path).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }
    fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
    }
    /// Send, ignoring a write error (the daemon may close while a huge line is still going).
    fn send_lossy(&mut self, s: &str) {
        let _ = self
            .w
            .write_all(s.as_bytes())
            .and_then(|_| self.w.write_all(b"\n"));
    }
    fn recv(&mut self) -> Value {
        let mut line = String::new();
        assert!(
            self.r.read_line(&mut line).unwrap() > 0,
            "connection closed"
        );
        serde_json::from_str(&line).unwrap()
    }
    fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.r.read_line(&mut line), Ok(0) | Err(_))
    }
}

#[test]
fn json_rpc_conformance_errors_batches_notifications_and_limits() {
    let mut e = Estate::new(&["alpha"], "");
    e.start();
    let mut c = Raw::new(&e.socket());
    // Parse error and invalid requests: id null when it cannot be read.
    c.send("{not json");
    let v = c.recv();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    c.send(r#"{"jsonrpc":"1.0","id":5,"method":"whoami"}"#);
    let v = c.recv();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    c.send(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"whoami"}"#);
    assert_eq!(c.recv()["error"]["code"], -32600);
    c.send(r#"{"jsonrpc":"2.0","id":"m","method":"no.such.method"}"#);
    let v = c.recv();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!("m"), json!(-32601))
    );
    c.send(r#"{"jsonrpc":"2.0","id":6,"method":"log.query","params":{"bogus":1}}"#);
    let v = c.recv();
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["data"]["kind"], "usage");
    c.send(r#"{"jsonrpc":"2.0","id":7,"method":"log.query","params":[1,2]}"#);
    assert_eq!(c.recv()["error"]["code"], -32602);
    // A domain error carries the domain's kind and hint.
    c.send(r#"{"jsonrpc":"2.0","id":8,"method":"verify.status","params":{"project":"nope"}}"#);
    let v = c.recv();
    assert_eq!(v["error"]["code"], -32002);
    assert_eq!(v["error"]["data"]["kind"], "usage");
    assert!(
        v["error"]["data"]["hint"]
            .as_str()
            .unwrap()
            .contains("repoman list")
    );
    // Notifications get no answer: the next line is the answer to the request after them.
    c.send(r#"{"jsonrpc":"2.0","method":"whoami"}"#);
    c.send(r#"{"jsonrpc":"2.0","method":"no.such.method"}"#);
    c.send(r#"[{"jsonrpc":"2.0","method":"whoami"},{"jsonrpc":"2.0","method":"log.head"}]"#);
    c.send(r#"{"jsonrpc":"2.0","id":9,"method":"log.head"}"#);
    assert_eq!(c.recv()["id"], 9);
    // A batch: one array of answers for the requests, none for the notification, errors in place.
    c.send(r#"[{"jsonrpc":"2.0","id":1,"method":"whoami"},{"jsonrpc":"2.0","method":"whoami"},7,{"jsonrpc":"2.0","id":2,"method":"nope"}]"#);
    let v = c.recv();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3, "{v}");
    assert_eq!(arr[0]["id"], 1);
    assert!(
        arr[0]["result"]["actor"]
            .as_str()
            .unwrap()
            .starts_with("human:tester@")
    );
    assert_eq!(
        (arr[1]["id"].clone(), arr[1]["error"]["code"].clone()),
        (Value::Null, json!(-32600))
    );
    assert_eq!(arr[2]["error"]["code"], -32601);
    c.send("[]");
    assert_eq!(c.recv()["error"]["code"], -32600);
    let big: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"log.head"}}"#))
        .collect();
    c.send(&format!("[{}]", big.join(",")));
    let v = c.recv();
    assert_eq!(
        v["error"]["code"], -32600,
        "a batch over the limit is refused whole"
    );
    // Oversized request: refused with its own code, and the connection is closed.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"log.head","params":{{"x":"{}"}}}}"#,
        "a".repeat(1024 * 1024 + 10)
    );
    c.send_lossy(&huge);
    let v = c.recv();
    assert_eq!(v["error"]["code"], -32010);
    assert!(c.closed());
    // The daemon is still fine.
    assert!(e.call("log.head", json!({}))["seq"].as_u64().unwrap() >= 1);
}

fn validate(schema: &Value, components: &Value, value: &Value, what: &str) {
    let mut root = schema.clone();
    root["components"] = components.clone();
    let v = jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{what}: bad schema: {e}"));
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the response does not match its schema: {errors:?}\n{value}"
    );
}

#[test]
fn every_methods_schema_matches_real_responses() {
    let mut e = Estate::new(&["alpha", "beta"], "");
    std::fs::write(e.local().join("alpha/.tool-versions"), "nodejs 20.1.0\n").unwrap();
    e.daemon_args = vec!["--test-jobs".into(), "sync".into()];
    e.start();
    let doc = e.call("rpc.discover", json!({}));
    // `repoman groove schema` prints the same document.
    let printed: Value = serde_json::from_str(&e.ok(&["groove", "schema"])).unwrap();
    assert_eq!(printed["methods"], doc["methods"]);
    let components = doc["components"].clone();
    let results: std::collections::BTreeMap<String, Value> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["result"]["schema"].clone(),
            )
        })
        .collect();
    let mut c = e.client();
    let checked = std::cell::RefCell::new(BTreeSet::new());
    let check = |c: &mut Client, method: &str, params: Value| -> Value {
        let v = c
            .call(method, params.clone())
            .unwrap_or_else(|err| panic!("{method} {params}: {err:?}"));
        validate(&results[method], &components, &v, method);
        checked.borrow_mut().insert(method.to_owned());
        v
    };
    check(&mut c, "whoami", json!({}));
    check(&mut c, "rpc.discover", json!({}));
    let m = check(&mut c, "groove.manifest", json!({}));
    assert_eq!(m["groove_version"], "1.0");
    let on_disk: Value = serde_json::from_slice(
        &std::fs::read(e.runtime().join(".well-known/groove/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["service_id"], m["service_id"]);
    check(
        &mut c,
        "event.append",
        json!({"type": "note.added", "object": "project:alpha", "data": {"text": "hi"}}),
    );
    let synced = check(&mut c, "sync", json!({"projects": ["alpha"]}));
    assert_eq!(synced["projects"][0]["status"], "synced", "{synced}");
    check(&mut c, "sync", json!({"dry_run": true}));
    check(&mut c, "verify", json!({"projects": ["alpha"]}));
    check(&mut c, "log.head", json!({}));
    let log = check(&mut c, "log.query", json!({"type": "backup.*"}));
    assert!(!log["events"].as_array().unwrap().is_empty());
    check(&mut c, "log.query", json!({"project": "alpha", "limit": 5}));
    check(&mut c, "explain", json!({"object": "backup:alpha"}));
    let vs = check(&mut c, "verify.status", json!({}));
    assert_eq!(vs["projects"][0]["last_verify"]["clean"], true, "{vs}");
    check(&mut c, "tools.status", json!({"project": "alpha"}));
    let list = check(&mut c, "list", json!({}));
    assert_eq!(list["sandboxes"][0]["name"], "alpha", "{list}");
    let status = check(&mut c, "status", json!({"project": "alpha"}));
    assert_eq!(status["sandboxes"][0]["name"], "alpha", "{status}");
    check(&mut c, "repair", json!({"dry_run": true}));
    check(
        &mut c,
        "tools.pin",
        json!({"tool": "nodejs", "versions": ["20.2.0"], "project": "alpha", "dry_run": true}),
    );
    check(
        &mut c,
        "tools.pin",
        json!({"tool": "nodejs", "versions": ["20.2.0"], "project": "alpha"}),
    );
    assert_eq!(
        std::fs::read_to_string(e.local().join("alpha/.tool-versions")).unwrap(),
        "nodejs 20.2.0\n"
    );
    let realm_dir = e.local().join("alpha");
    match c.call("realm.status", json!({"dir": realm_dir})) {
        Ok(v) => {
            validate(&results["realm.status"], &components, &v, "realm.status");
            checked.borrow_mut().insert("realm.status".into());
        }
        // Not a realm member: the CLI's own usage error, with its kind.
        Err(ClientError::Rpc(err)) => {
            assert!(err.data.as_ref().unwrap()["kind"].is_string(), "{err:?}");
            checked.borrow_mut().insert("realm.status".into());
        }
        Err(other) => panic!("{other:?}"),
    }
    check(&mut c, "schedule.list", json!({}));
    check(&mut c, "schedule.tick", json!({}));
    check(&mut c, "daemon.status", json!({}));
    check(&mut c, "daemon.reload", json!({}));
    let sub = check(
        &mut c,
        "subscribe",
        json!({"from_seq": 1, "types": "backup."}),
    );
    assert!(sub["subscription"].as_u64().unwrap() >= 1);
    let n = c.next_notification().unwrap();
    assert_eq!(n["method"], "groove.event");
    assert!(
        n["params"]["event"]["type"]
            .as_str()
            .unwrap()
            .starts_with("backup.")
    );
    let mut c2 = e.client();
    let v = c2.call("daemon.stop", json!({})).unwrap();
    validate(&results["daemon.stop"], &components, &v, "daemon.stop");
    checked.borrow_mut().insert("daemon.stop".into());
    assert_eq!(e.wait(), 0);
    let all: BTreeSet<String> = results.keys().cloned().collect();
    assert_eq!(
        checked.into_inner(),
        all,
        "every method was called and checked"
    );
}

/// Append `n` events through the daemon from `writers` threads; the seqs acknowledged.
fn append_concurrently(socket: &Path, writers: usize, n: usize) -> Vec<u64> {
    let per = n / writers;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket).unwrap();
                (0..per)
                    .map(|i| {
                        c.call("event.append", json!({"type": "note.added", "object": "project:alpha", "data": {"w": w, "i": i}}))
                            .unwrap()["seq"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    all
}

/// Read `groove.event` notifications until `want` note events arrived (or the stream ends).
fn collect_notes(c: &mut Client, want: usize) -> (Vec<u64>, Option<Value>) {
    let mut seqs = Vec::new();
    while seqs.len() < want {
        match c.next_notification() {
            Ok(n) if n["method"] == "groove.event" => {
                let seq = n["params"]["seq"].as_u64().unwrap();
                assert_eq!(n["params"]["event"]["seq"], seq);
                if n["params"]["event"]["type"] == "note.added" {
                    seqs.push(seq);
                }
            }
            Ok(n) if n["method"] == "groove.dropped" => return (seqs, Some(n)),
            Ok(n) => panic!("unexpected {n}"),
            Err(_) => return (seqs, None),
        }
    }
    (seqs, None)
}

#[test]
fn ten_subscribers_get_ten_thousand_events_without_loss() {
    let mut e = Estate::new(&["alpha"], "");
    e.start();
    let head = e.call("log.head", json!({}))["seq"].as_u64().unwrap();
    let subs: Vec<_> = (0..10)
        .map(|_| {
            let mut c = e.client();
            c.call(
                "subscribe",
                json!({"types": ["note."], "from_seq": head + 1}),
            )
            .unwrap();
            std::thread::spawn(move || collect_notes(&mut c, 10_000))
        })
        .collect();
    let acked = append_concurrently(&e.socket(), 20, 10_000);
    assert_eq!(acked.len(), 10_000);
    for s in subs {
        let (got, dropped) = s.join().unwrap();
        assert!(dropped.is_none(), "no subscriber was dropped: {dropped:?}");
        assert_eq!(
            got, acked,
            "every subscriber got every acknowledged event, in order, once"
        );
    }
    let status = e.call("daemon.status", json!({}));
    assert!(
        status["commit"]["batches"].as_u64().unwrap() < 10_000,
        "appends shared fsyncs: {status}"
    );
}

#[test]
fn kill_9_mid_stream_then_resume_from_seq_loses_and_repeats_nothing() {
    let mut e = Estate::new(&["alpha"], "");
    e.start();
    let socket = e.socket();
    let stop = Arc::new(AtomicBool::new(false));
    // Appenders that keep going across the daemon's death (retrying the connection).
    let appenders: Vec<_> = (0..4)
        .map(|w| {
            let (socket, stop) = (socket.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut c) = Client::connect(&socket) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        match c.call("event.append", json!({"type": "note.added", "object": "project:alpha", "data": {"w": w, "i": i}})) {
                            Ok(v) => acked.push(v["seq"].as_u64().unwrap()),
                            Err(_) => break,
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let mut sub = e.client();
    sub.call("subscribe", json!({"from_seq": 1})).unwrap();
    let mut seen: Vec<u64> = Vec::new();
    let next = |c: &mut Client, seen: &mut Vec<u64>| -> bool {
        match c.next_notification() {
            Ok(n) if n["method"] == "groove.event" => {
                seen.push(n["params"]["seq"].as_u64().unwrap());
                true
            }
            Ok(n) if n["method"] == "groove.dropped" => panic!("dropped: {n}"),
            Ok(n) => panic!("{n}"),
            Err(_) => false,
        }
    };
    while seen.len() < 500 {
        assert!(next(&mut sub, &mut seen));
    }
    e.signal("KILL");
    assert_ne!(e.wait(), 0);
    // Drain what was already sent before the kill, then the stream ends.
    while next(&mut sub, &mut seen) {}
    let resume_from = seen.last().unwrap() + 1;
    e.start();
    std::thread::sleep(Duration::from_millis(300)); // appenders write to the new daemon too
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<u64> = appenders
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    acked.sort_unstable();
    let head = e.call("log.head", json!({}))["seq"].as_u64().unwrap();
    let mut sub = e.client();
    sub.call("subscribe", json!({"from_seq": resume_from}))
        .unwrap();
    while *seen.last().unwrap() < head {
        assert!(
            next(&mut sub, &mut seen),
            "the stream ended before the head"
        );
    }
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(
        seen, expected,
        "every seq exactly once, in order, across the kill"
    );
    let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
    assert!(
        acked.iter().all(|s| seen_set.contains(s)),
        "every acknowledged append is in the stream"
    );
    // The log is one valid chain after the kill.
    let (code, out, err) = e.run(&["--json", "doctor"]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn a_stalled_subscriber_is_dropped_with_its_resume_point_while_others_keep_receiving() {
    let mut e = Estate::new(&["alpha"], "");
    e.daemon_args = vec![
        "--sub-buffer".into(),
        "200".into(),
        "--sub-write-timeout".into(),
        "120".into(),
    ];
    e.start();
    let head = e.call("log.head", json!({}))["seq"].as_u64().unwrap();
    let mut stalled = e.client();
    let s = stalled
        .call("subscribe", json!({"from_seq": head + 1, "types": "note."}))
        .unwrap();
    assert_eq!(s["buffer"], 200);
    let mut good = e.client();
    good.call(
        "subscribe",
        json!({"from_seq": head + 1, "types": "note.", "buffer": 20000}),
    )
    .unwrap();
    let reader = std::thread::spawn(move || collect_notes(&mut good, 5000));
    // The stalled one reads nothing while 5,000 events are appended.
    let acked = append_concurrently(&e.socket(), 10, 5000);
    let (got, dropped) = reader.join().unwrap();
    assert!(dropped.is_none());
    assert_eq!(
        got, acked,
        "the healthy subscriber kept receiving everything"
    );
    let status = e.call("daemon.status", json!({}));
    assert_eq!(status["dropped_subscribers"], 1, "{status}");
    // Now the stalled client reads: what was queued, then the drop notice with its resume point.
    let (part, dropped) = collect_notes(&mut stalled, usize::MAX);
    let dropped = dropped.expect("a groove.dropped notification");
    let resume_from = dropped["params"]["resume_from"].as_u64().unwrap();
    assert!(!part.is_empty() && part.len() < 5000, "{}", part.len());
    assert_eq!(
        part,
        acked[..part.len()].to_vec(),
        "what it got is a prefix, in order"
    );
    assert_eq!(resume_from, part.last().unwrap() + 1);
    // Resuming from there gives exactly the rest.
    let mut again = e.client();
    again
        .call(
            "subscribe",
            json!({"from_seq": resume_from, "types": "note."}),
        )
        .unwrap();
    let (rest, d) = collect_notes(&mut again, 5000 - part.len());
    assert!(d.is_none());
    let mut all = part;
    all.extend(rest);
    assert_eq!(all, acked);
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn add_hours(t: jiff::Timestamp, h: i64) -> jiff::Timestamp {
    t.checked_add(jiff::SignedDuration::from_hours(h)).unwrap()
}

fn jobs(e: &Estate) -> Vec<Value> {
    e.call("schedule.list", json!({}))["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

fn ran(tick: &Value) -> Vec<(String, String)> {
    tick["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn scheduled_syncs_with_a_pinned_clock_due_missed_jitter_and_backoff() {
    let mut e = Estate::new(
        &["alpha", "beta"],
        "sync_every = \"6h\"\nsync_jitter = \"30m\"",
    );
    e.ok(&["sync", "--all"]);
    let synced = e.events("backup.synced");
    assert_eq!(synced.len(), 2);
    let t0 = synced
        .iter()
        .map(|ev| ts(ev["at"].as_str().unwrap()))
        .max()
        .unwrap();
    e.set_clock(add_hours(t0, 5));
    e.daemon_args = vec![
        "--test-clock".into(),
        e.clock_file().display().to_string(),
        "--test-jobs".into(),
        "sync".into(),
    ];
    e.start();
    // Not due yet; each project's next run is 6h after its sync plus its own jitter (< 30m).
    let nexts: Vec<jiff::Timestamp> = jobs(&e)
        .iter()
        .map(|j| ts(j["next"].as_str().unwrap()))
        .collect();
    assert_eq!(nexts.len(), 2);
    for n in &nexts {
        assert!(
            *n >= add_hours(t0, 6) - jiff::SignedDuration::from_secs(1),
            "{n}"
        );
        assert!(
            *n < add_hours(t0, 6) + jiff::SignedDuration::from_mins(30),
            "{n}"
        );
    }
    assert_ne!(
        nexts[0], nexts[1],
        "the jitter spreads projects synced together"
    );
    assert!(ran(&e.call("schedule.tick", json!({}))).is_empty());
    // Jitter: between the two due times only the earlier project runs.
    let (first, second) = (nexts[0].min(nexts[1]), nexts[0].max(nexts[1]));
    let between = first + (second.duration_since(first) / 2);
    e.set_clock(between);
    let r = ran(&e.call("schedule.tick", json!({})));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1, "ok");
    assert_eq!(e.events("backup.synced").len(), 3);
    // Missed while down: stop, a day passes, start: each job runs once, not four times.
    e.call("daemon.stop", json!({}));
    assert_eq!(e.wait(), 0);
    e.set_clock(add_hours(t0, 30));
    e.start();
    let r = ran(&e.call("schedule.tick", json!({})));
    assert_eq!(
        r,
        vec![
            ("sync:alpha".into(), "ok".into()),
            ("sync:beta".into(), "ok".into())
        ]
    );
    assert!(
        ran(&e.call("schedule.tick", json!({}))).is_empty(),
        "ran once, not once per missed period"
    );
    assert_eq!(e.events("backup.synced").len(), 5);
    // The backup share goes away: reported, retried with backoff, never a crash loop.
    e.mount.as_ref().unwrap().unmount();
    let later = add_hours(t0, 40);
    e.set_clock(later);
    let r = ran(&e.call("schedule.tick", json!({})));
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|(_, o)| o == "unavailable"), "{r:?}");
    let failed: Vec<Value> = jobs(&e);
    for j in &failed {
        assert_eq!(j["failures"], 1);
        assert_eq!(
            ts(j["next"].as_str().unwrap())
                .duration_since(later)
                .as_secs(),
            60,
            "first retry after 60 s"
        );
    }
    e.set_clock(later + jiff::SignedDuration::from_secs(61));
    let r = ran(&e.call("schedule.tick", json!({})));
    assert!(r.iter().all(|(_, o)| o == "unavailable"));
    for j in jobs(&e) {
        assert_eq!(j["failures"], 2);
        assert_eq!(
            ts(j["next"].as_str().unwrap())
                .duration_since(later)
                .as_secs(),
            61 + 120,
            "then 120 s"
        );
    }
    e.mount.as_ref().unwrap().remount();
    e.set_clock(later + jiff::SignedDuration::from_secs(61 + 121));
    let r = ran(&e.call("schedule.tick", json!({})));
    // The backup came back empty (a fresh tmpfs): the sync guards may block it (no marker);
    // what matters here is that the environment is reachable again and the backoff ended.
    assert!(r.iter().all(|(_, o)| o != "unavailable"), "{r:?}");
    let recorded = e.events("schedule.ran");
    assert!(
        recorded
            .iter()
            .any(|ev| ev["data"]["outcome"] == "unavailable" && ev["data"]["error"].is_string())
    );
    assert!(
        recorded
            .iter()
            .all(|ev| ev["actor"].as_str().unwrap().starts_with("daemon:"))
    );
    // Scheduled syncs are recorded as the daemon's.
    let syncs = e.events("backup.synced");
    assert!(
        syncs[2..]
            .iter()
            .all(|ev| ev["actor"].as_str().unwrap().starts_with("daemon:")),
        "{syncs:?}"
    );
}

#[test]
fn reconcile_survives_incus_going_away_and_records_its_return() {
    // Skips (loudly) without Incus, fails under REPOMAN_TEST_INCUS=require.
    let Some(lab) = repoman_incus::testlab::TestLab::connect() else {
        return;
    };
    let incus_socket = lab.incus.endpoint();
    let mut e = Estate::new(&["alpha"], "");
    // A sandboxed project, so the reconcile needs Incus.
    let reg = std::fs::read_to_string(e.config_file())
        .unwrap()
        .replace("container = false", "container = true");
    std::fs::write(e.config_file(), reg).unwrap();
    // Incus "restarts": the daemon's socket path is a link we point away and back.
    let link = e.dir.path().join("incus.sock");
    std::os::unix::fs::symlink(&incus_socket, &link).unwrap();
    e.extra_env
        .push(("INCUS_SOCKET".into(), link.display().to_string()));
    let t = ts("2030-01-01T00:00:00Z");
    e.set_clock(t);
    e.daemon_args = vec![
        "--test-clock".into(),
        e.clock_file().display().to_string(),
        "--test-jobs".into(),
        "reconcile".into(),
    ];
    e.start();
    e.set_clock(t + jiff::SignedDuration::from_mins(2));
    let r = ran(&e.call("schedule.tick", json!({})));
    assert_eq!(r, vec![("reconcile".into(), "ok".into())]);
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(e.dir.path().join("no-such.socket"), &link).unwrap();
    let t1 = t + jiff::SignedDuration::from_mins(30);
    e.set_clock(t1);
    let r = ran(&e.call("schedule.tick", json!({})));
    assert_eq!(r, vec![("reconcile".into(), "unavailable".into())]);
    let m = e.call("groove.manifest", json!({}));
    assert_eq!(m["health"]["status"], "degraded", "{m}");
    let j = &jobs(&e)[0];
    assert_eq!(
        ts(j["next"].as_str().unwrap()).duration_since(t1).as_secs(),
        60
    );
    // Incus is back.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&incus_socket, &link).unwrap();
    e.set_clock(t1 + jiff::SignedDuration::from_secs(61));
    let r = ran(&e.call("schedule.tick", json!({})));
    assert_eq!(r, vec![("reconcile".into(), "ok".into())]);
    let recs = e.events("reconcile.ran");
    let changed: Vec<Value> = recs.iter().map(|r| r["data"]["changed"].clone()).collect();
    assert_eq!(changed[1], json!(["incus: unreachable"]), "{changed:?}");
    assert_eq!(changed[2], json!(["incus: reachable"]), "{changed:?}");
    assert_eq!(
        e.call("groove.manifest", json!({}))["health"]["status"],
        "ok"
    );
}

#[test]
fn one_daemon_per_user_sighup_reloads_sigterm_stops_cleanly() {
    let mut e = Estate::new(&["alpha"], "");
    e.daemon_args = vec![
        "--test-clock".into(),
        e.clock_file().display().to_string(),
        "--test-jobs".into(),
        "sync".into(),
    ];
    e.set_clock(ts("2030-01-01T00:00:00Z"));
    e.start();
    // A second daemon is refused (exit 3) and the first keeps answering.
    let (code, _, err) = e.run(&["daemon", "run", "--no-agents"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already running"), "{err}");
    let (code, out, _) = e.run(&["--json", "daemon", "status"]);
    assert_eq!(code, 0);
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["status"]["pid"], e.pid());
    assert!(jobs(&e).is_empty(), "no sync_every yet");
    // SIGHUP: the registry is read again.
    let reg = std::fs::read_to_string(e.config_file())
        .unwrap()
        .replace("[defaults]\n", "[defaults]\nsync_every = \"1h\"\n");
    std::fs::write(e.config_file(), reg).unwrap();
    e.signal("HUP");
    let t0 = Instant::now();
    while jobs(&e).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(jobs(&e)[0]["name"], "sync:alpha");
    // SIGTERM with appends in flight: each one is either committed and acknowledged or refused;
    // the daemon exits 0, removes its socket, and the log is one valid chain ending in
    // daemon.stopped.
    let socket = e.socket();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket).unwrap();
                let mut acked = Vec::new();
                loop {
                    match c.call(
                        "event.append",
                        json!({"type": "note.added", "object": "project:alpha"}),
                    ) {
                        Ok(v) => acked.push(v["seq"].as_u64().unwrap()),
                        Err(ClientError::Rpc(err)) => {
                            assert_eq!(err.data.unwrap()["kind"], "interrupted");
                            break;
                        }
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    e.signal("TERM");
    assert_eq!(e.wait(), 0);
    let acked: Vec<u64> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(!acked.is_empty());
    assert!(!e.socket().exists(), "the socket is removed");
    let (code, out, err) = e.run(&["--json", "doctor"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let notes: BTreeSet<u64> = e
        .events("note.added")
        .iter()
        .map(|ev| ev["seq"].as_u64().unwrap())
        .collect();
    assert!(
        acked.iter().all(|s| notes.contains(s)),
        "every acknowledged append is durable"
    );
    let last = e.ok(&["--json", "log", "--limit", "1"]);
    let last: Vec<Value> = serde_json::from_str(&last).unwrap();
    assert_eq!(last[0]["type"], "daemon.stopped");
    assert_eq!(e.events("daemon.reloaded").len(), 1);
    // `daemon status` / `stop` when nothing runs.
    let (code, out, _) = e.run(&["daemon", "status"]);
    assert_eq!((code, out.trim()), (1, "not running"));
    let (code, _, _) = e.run(&["daemon", "stop"]);
    assert_eq!(code, 0);
}

#[test]
fn install_writes_a_user_unit_and_dry_run_writes_nothing() {
    let e = Estate::new(&[], "");
    let out = e.ok(&["daemon", "install", "--dry-run"]);
    assert!(out.contains("ExecStart=") && out.contains(" daemon run"));
    let unit = e.home().join(".config/systemd/user/repoman.service");
    assert!(!unit.exists());
    let (code, out, err) = e.run(&["daemon", "install"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), unit.display().to_string());
    assert!(
        err.contains("systemctl --user enable --now repoman.service"),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("ExecReload=/bin/kill -HUP $MAINPID")
    );
}

#[test]
fn the_host_socket_is_private_and_a_host_process_cannot_pose_as_an_agent() {
    let mut e = Estate::new(&["alpha"], "");
    let reg = std::fs::read_to_string(e.config_file())
        .unwrap()
        .replace("container = false", "container = true");
    std::fs::write(e.config_file(), reg).unwrap();
    // With agent endpoints on (the default).
    let mut c = e.command();
    c.args(["daemon", "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    e.daemon = Some(c.spawn().unwrap());
    let t0 = Instant::now();
    while Client::connect(&e.socket())
        .and_then(|mut c| c.call("log.head", json!({})))
        .is_err()
    {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.runtime()), 0o700);
    assert_eq!(mode(&e.socket()), 0o600);
    let agent_sock = e.runtime().join("agents/alpha/groove.sock");
    assert!(
        agent_sock.exists(),
        "the endpoint of a sandboxed project is opened"
    );
    assert_eq!(mode(agent_sock.parent().unwrap()), 0o755);
    // A host process on the agent socket is not in the sandbox's cgroup: refused at accept,
    // whatever it then claims, and the refusal is recorded.
    let mut raw = Raw::new(&agent_sock);
    let v = raw.recv();
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not in a container"),
        "{v}"
    );
    assert!(raw.closed());
    let rejected = e.events("agent.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["object"], "project:alpha");
    // A sandbox registered while the daemon runs (as `repoman new` does) gets its endpoint
    // without a SIGHUP: the daemon notices the edited registry.
    let mut reg = std::fs::read_to_string(e.config_file()).unwrap();
    reg.push_str("[[project]]\nname = \"gamma\"\nrepo = \"gamma\"\ncontainer = true\n");
    std::fs::write(e.config_file(), reg).unwrap();
    let gamma = e.runtime().join("agents/gamma/groove.sock");
    let t0 = Instant::now();
    while !gamma.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the new sandbox's endpoint did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `[[project]] sync_every` overrides `[defaults] sync_every` (`off`: never scheduled); a bad
/// period is a configuration error naming the file and line.
#[test]
fn a_project_sync_every_overrides_the_default_and_a_bad_one_is_refused() {
    let mut e = Estate::new(&["alpha", "beta", "gamma"], "sync_every = \"6h\"");
    let reg = std::fs::read_to_string(e.config_file()).unwrap();
    let with = |name: &str, line: &str, reg: &str| {
        reg.replace(
            &format!("name = \"{name}\"\n"),
            &format!("name = \"{name}\"\n{line}\n"),
        )
    };
    let good = with(
        "gamma",
        "sync_every = \"1h\"",
        &with("beta", "sync_every = \"off\"", &reg),
    );
    std::fs::write(e.config_file(), &good).unwrap();
    e.daemon_args = vec![
        "--test-clock".into(),
        e.clock_file().display().to_string(),
        "--test-jobs".into(),
        "sync".into(),
    ];
    e.set_clock(ts("2030-01-01T00:00:00Z"));
    e.start();
    let every: BTreeMap<String, u64> = jobs(&e)
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap().to_owned(),
                j["every"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        every,
        BTreeMap::from([
            ("sync:alpha".to_owned(), 6 * 3600),
            ("sync:gamma".to_owned(), 3600)
        ])
    );
    e.call("daemon.stop", json!({}));
    assert_eq!(e.wait(), 0);

    std::fs::write(
        e.config_file(),
        with("alpha", "sync_every = \"soon\"", &reg),
    )
    .unwrap();
    let (code, _, err) = e.run(&["list"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("repoman.toml:") && err.contains("sync_every") && err.contains("\"soon\""),
        "{err}"
    );
}
