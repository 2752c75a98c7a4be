//! `repoman snif ...` end to end: guests assembled from the WAT sources of repoman-snif, the real
//! binary, the real event log.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn guest(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../repoman-snif/tests/guests");
    let prelude = std::fs::read_to_string(dir.join("prelude.wat")).unwrap();
    let src = std::fs::read_to_string(dir.join(format!("{name}.wat")))
        .unwrap()
        .replace(";;@prelude", &prelude);
    wat::parse_str(&src).unwrap()
}

impl Lab {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("home")).unwrap();
        Self { _tmp: tmp, root }
    }

    fn repoman(&self) -> Command {
        let mut cmd = Command::cargo_bin("repoman").unwrap();
        cmd.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("HOME", self.root.join("home"))
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env("USER", "tester")
            .current_dir(&self.root);
        cmd
    }

    fn snif(&self, name: &str, guest_name: &str, interface: &str, extra: &str) -> PathBuf {
        let d = self.root.join("src").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("m.wasm"), guest(guest_name)).unwrap();
        std::fs::write(
            d.join("snif.toml"),
            format!(
                "schema_version = 1\nname = \"{name}\"\nversion = \"0.1.0\"\n\
                 interface = \"{interface}\"\ninterface_version = 1\nabi = 1\n\
                 module = \"m.wasm\"\n{extra}"
            ),
        )
        .unwrap();
        d
    }

    fn input(&self, json: serde_json::Value) -> PathBuf {
        let p = self.root.join("input.json");
        std::fs::write(&p, json.to_string()).unwrap();
        p
    }

    /// The `policy.decided` events of syncs, in log order.
    fn sync_decisions(&self) -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = self
            .events()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["type"] == "policy.decided" && e["data"]["operation"] == "sync")
            .collect();
        v.sort_by_key(|e| e["seq"].as_u64());
        v
    }

    fn events(&self) -> String {
        let dir = self.root.join("home/.local/state/repoman/events");
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd {
                all += &std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
            }
        }
        all
    }
}

fn validator_input(content: &str) -> serde_json::Value {
    serde_json::json!({
        "contract": {"realm": "r", "domain": "d", "name": "n", "version": "1.0.0",
                     "schema": {"type": "object"}},
        "repo": "api",
        "role": "exporter",
        "files": [{"path": "src/a.rs", "content": content, "size": content.len()}],
    })
}

#[test]
fn install_list_run_inspect_remove() {
    let lab = Lab::new();
    let dir = lab.snif("no-todo", "validator", "contract-validator", "");
    lab.repoman()
        .args(["snif", "install", "--dry-run"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(predicate::str::contains("would install no-todo 0.1.0"));
    assert!(!lab.root.join("home/.local/share/repoman").exists());
    lab.repoman()
        .args(["snif", "install"])
        .arg(&dir)
        .assert()
        .success();
    let out = lab
        .repoman()
        .args(["--json", "snif", "list"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["snifs"][0]["name"], "no-todo");
    assert_eq!(v["snifs"][0]["interface"], "contract-validator");

    let input = lab.input(validator_input("fn main() {}"));
    lab.repoman()
        .args(["snif", "run", "no-todo", "--input"])
        .arg(&input)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"valid\": true"));
    let input = lab.input(validator_input("// TODO"));
    lab.repoman()
        .args(["snif", "run", "no-todo", "--input"])
        .arg(&input)
        .assert()
        .success()
        .stdout(predicate::str::contains("a source file contains TODO"));
    // An input that breaks the interface's schema is a usage error, before any call.
    let input = lab.input(serde_json::json!({"files": 3}));
    lab.repoman()
        .args(["snif", "run", "no-todo", "--input"])
        .arg(&input)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("snif no-todo: invalid input"));

    lab.repoman()
        .args(["snif", "inspect", "no-todo"])
        .assert()
        .success()
        .stdout(predicate::str::contains("imports:    none"))
        .stdout(predicate::str::contains("intact"));

    lab.repoman()
        .args(["snif", "remove", "no-todo", "--dry-run"])
        .assert()
        .success();
    lab.repoman()
        .args(["snif", "remove", "no-todo"])
        .assert()
        .success();
    lab.repoman()
        .args(["snif", "inspect", "no-todo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no SNIF named no-todo"));
    let events = lab.events();
    assert_eq!(events.matches("\"snif.installed\"").count(), 1);
    assert_eq!(events.matches("\"snif.removed\"").count(), 1);
}

#[test]
fn capabilities_need_a_grant_and_a_liar_is_refused() {
    let lab = Lab::new();
    let liar = lab.snif("liar", "reader", "contract-validator", "");
    lab.repoman()
        .args(["snif", "install"])
        .arg(&liar)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "snif liar: the module imports wasi_snapshot_preview1.fd_prestat_get (`filesystem`)",
        ));

    let dir = lab.snif(
        "reader",
        "reader",
        "contract-validator",
        "[capabilities]\nfilesystem = true\n",
    );
    lab.repoman()
        .args(["snif", "install"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(predicate::str::contains("repoman snif grant reader"));
    let out = lab
        .repoman()
        .args(["--json", "snif", "inspect", "reader"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let open = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "wasi_snapshot_preview1.path_open")
        .unwrap();
    assert_eq!(open["capability"], "filesystem");
    assert_eq!(open["claimed"], true);
    assert_eq!(open["granted"], false);

    let input = lab.input(validator_input("x"));
    lab.repoman()
        .args(["snif", "run", "reader", "--input"])
        .arg(&input)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("it is not granted"))
        .stderr(predicate::str::contains(
            "hint: to allow it: repoman snif grant reader --dir DIR",
        ));

    let granted = lab.root.join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    lab.repoman()
        .args(["snif", "grant", "reader", "--clock"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not ask for the `clock`"));
    lab.repoman()
        .args(["snif", "grant", "reader", "--dry-run", "--dir"])
        .arg(&granted)
        .assert()
        .success();
    assert!(!lab.events().contains("snif.granted"));
    lab.repoman()
        .args(["snif", "grant", "reader", "--dir"])
        .arg(&granted)
        .assert()
        .success();
    assert!(lab.events().contains("\"snif.granted\""));
    // Granted: the call now runs (the reader's raw output is not validator JSON).
    lab.repoman()
        .args(["snif", "run", "reader", "--input"])
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("snif reader: malformed output"));
}

#[test]
fn a_runaway_snif_ends_with_an_error_naming_it() {
    let lab = Lab::new();
    let dir = lab.snif(
        "spin",
        "loop",
        "contract-validator",
        "[limits]\nfuel = 3000000\n",
    );
    lab.repoman()
        .args(["snif", "install"])
        .arg(&dir)
        .assert()
        .success();
    let input = lab.input(validator_input("x"));
    lab.repoman()
        .args(["snif", "run", "spin", "--input"])
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "snif spin: used its whole fuel budget of 3000000 units",
        ));
}

/// A `policy-rule` SNIF joins the policy gate: its verdict is in every decision, and its deny
/// blocks the operation with its reason (here: a sync by an agent actor). A human's sync of the
/// same project gets the SNIF's `allow` in its decision.
#[test]
fn a_policy_rule_snif_denies_a_sync_by_an_agent_at_the_gate() {
    let lab = Lab::new();
    let repos = lab.root.join("repos");
    let backup = lab.root.join("backup");
    std::fs::create_dir_all(repos.join("alpha")).unwrap();
    std::fs::write(repos.join("alpha/README"), "a\n").unwrap();
    std::fs::create_dir_all(&backup).unwrap();
    // The backup lives in the test's directory: name its filesystem so the mount guard lets the
    // sync reach the policy gate.
    let fstype = common::fstype_of(&backup);
    let cfg = lab.root.join("home/.config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {repos:?}\nbackup_root = {backup:?}\n\
             backup_fstype = {fstype:?}\n\n\
             [[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n"
        ),
    )
    .unwrap();
    let dir = lab.snif("no-agent-sync", "policy-agent-sync", "policy-rule", "");
    lab.repoman()
        .args(["snif", "install"])
        .arg(&dir)
        .assert()
        .success();
    // A dry run shows the same verdict (the gate evaluates the SNIFs without recording).
    let dry = lab
        .repoman()
        .env("REPOMAN_ACTOR", "agent:alpha")
        .args(["sync", "alpha", "--dry-run"])
        .output()
        .unwrap();
    let dry_out = format!(
        "{}{}",
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        dry_out.contains("agents may not sync backups"),
        "the dry run shows the deny: {dry_out} ({})",
        dry.status
    );
    assert!(lab.sync_decisions().is_empty(), "a dry run records nothing");
    let agent = lab
        .repoman()
        .env("REPOMAN_ACTOR", "agent:alpha")
        .args(["sync", "alpha"])
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&agent.stderr);
    assert!(
        err.contains("agents may not sync backups") && err.contains("snif:no-agent-sync"),
        "the SNIF's reason and rule: {err}"
    );
    let decided = lab.sync_decisions();
    let last = decided.last().expect("the agent's sync was decided");
    assert_eq!(last["actor"], "agent:alpha");
    assert_eq!(last["data"]["effect"], "deny");
    // The human's sync: the SNIF allows (whatever the other guards say).
    let _ = lab.repoman().args(["sync", "alpha"]).output().unwrap();
    let decided = lab.sync_decisions();
    let human = decided.last().expect("the human's sync was decided");
    assert!(human["actor"].as_str().unwrap_or("").starts_with("human:"));
    let snif_verdict = human["data"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "snif:no-agent-sync")
        .cloned();
    assert_eq!(
        snif_verdict.map(|v| v["effect"].clone()),
        Some(serde_json::json!("allow")),
        "{human:#}"
    );
    // A record that cannot be read: the rules cannot be consulted, so decisions are denied
    // (never silently allowed).
    let record = lab
        .root
        .join("home/.local/share/repoman/snifs/installed/no-agent-sync.json");
    std::fs::write(&record, "{ not json").unwrap();
    std::fs::write(repos.join("alpha/NEW"), "new\n").unwrap();
    let out = lab.repoman().args(["sync", "alpha"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policy-rule SNIFs cannot be read"),
        "fails closed: {err}"
    );
    // The record named in the error, removed by hand: the rules are consulted again (the SNIF
    // is gone, so the sync is allowed).
    std::fs::remove_file(&record).unwrap();
    let out = lab.repoman().args(["sync", "alpha"]).output().unwrap();
    assert!(
        out.status.success(),
        "consulted again: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
