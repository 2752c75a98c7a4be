//! `repoman tools ...` end to end: real files, real fake-tool processes, the real event log.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn write_exe(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Lab {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let lab = Self { _tmp: tmp, root };
        let count = lab.root.join("count").display().to_string();
        std::fs::create_dir_all(lab.home().join(".config/repoman")).unwrap();
        std::fs::write(
            lab.home().join(".config/repoman/repoman.toml"),
            format!(
                "schema_version = 1\n\n[defaults]\nlocal_repos = \"{}\"\ntools_dirs = [\"{}\"]\n\n[[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n",
                lab.root.join("repos").display(),
                lab.root.join("tools").display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(lab.alpha()).unwrap();
        let t = lab.root.join("tools");
        write_exe(
            &t.join("z3/bin/z3"),
            &format!("echo z3 >> '{count}'\necho 'Z3 version 4.12.5 - 64 bit'"),
        );
        write_exe(
            &t.join("agda/bin/agda"),
            &format!("echo agda >> '{count}'\necho 'Agda version 2.6.4.1'"),
        );
        write_exe(&t.join("mystery/bin/frob"), "echo 1");
        write_exe(
            &lab.root.join("bin/node"),
            &format!("echo node >> '{count}'\necho v20.11.1"),
        );
        lab
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn alpha(&self) -> PathBuf {
        self.root.join("repos/alpha")
    }

    fn repoman(&self) -> Command {
        let mut cmd = Command::cargo_bin("repoman").unwrap();
        cmd.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", self.root.join("bin"))
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env("USER", "tester")
            .current_dir(self.alpha());
        cmd
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.root.join("count"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// `args` (asking for JSON), asserting the exit code; the parsed output.
    fn json_exit(&self, args: &[&str], code: i32) -> serde_json::Value {
        let out = self
            .repoman()
            .args(args)
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.repoman().args(args).arg("--json").output().unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
fn pin_dry_run_prints_a_diff_and_writes_nothing_then_pin_edits_one_token() {
    let lab = Lab::new();
    let tv = lab.alpha().join(".tool-versions");
    let original = "# tools\r\nnodejs   18.19.0   # lts\r\nz3       4.12.5\r\n";
    std::fs::write(&tv, original).unwrap();
    lab.repoman()
        .args(["tools", "pin", "nodejs", "20.11.1", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "-nodejs   18.19.0   # lts\r\n+nodejs   20.11.1   # lts\r\n",
        ));
    assert_eq!(std::fs::read_to_string(&tv).unwrap(), original);

    lab.repoman()
        .args(["tools", "pin", "nodejs", "20.11.1"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&tv).unwrap(),
        "# tools\r\nnodejs   20.11.1   # lts\r\nz3       4.12.5\r\n"
    );
    // The same pin again writes nothing (an atomic write would change the inode).
    let ino = std::fs::metadata(&tv).unwrap().ino();
    lab.repoman()
        .args(["tools", "pin", "nodejs", "20.11.1"])
        .assert()
        .success();
    assert_eq!(std::fs::metadata(&tv).unwrap().ino(), ino);

    // A new tool by project name, then unpin: the file is back to the pinned bytes.
    lab.repoman()
        .args(["tools", "pin", "agda", "2.6.4.1", "--project", "alpha"])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(&tv)
            .unwrap()
            .ends_with("z3       4.12.5\r\nagda     2.6.4.1\r\n")
    );
    lab.repoman()
        .args(["tools", "unpin", "agda", "--project", "alpha"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&tv).unwrap(),
        "# tools\r\nnodejs   20.11.1   # lts\r\nz3       4.12.5\r\n"
    );
    let log = lab.json(&["log", "--type", "tool.*"]);
    let text = log.to_string();
    assert!(
        text.contains("tool.pinned") && text.contains("tool.unpinned"),
        "{text}"
    );
}

#[test]
fn global_pin_creates_home_tool_versions() {
    let lab = Lab::new();
    lab.repoman()
        .args(["tools", "pin", "z3", "4.12.5", "--global"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(lab.home().join(".tool-versions")).unwrap(),
        "z3 4.12.5\n"
    );
}

#[test]
fn malformed_manifests_are_located_and_never_written() {
    let lab = Lab::new();
    let nvmrc = lab.alpha().join(".nvmrc");
    std::fs::write(&nvmrc, "20\n").unwrap();
    lab.repoman()
        .args(["tools", "pin", "node", "22", "--file"])
        .arg(&nvmrc)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a manifest repoman can edit"));
    assert_eq!(std::fs::read_to_string(&nvmrc).unwrap(), "20\n");
    let mise = lab.alpha().join("mise.toml");
    std::fs::write(&mise, "[tools]\nnode = \"20\nz3 = \"4\"\n").unwrap();
    lab.repoman()
        .args(["tools", "pin", "z3", "4.13.0", "--file"])
        .arg(&mise)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mise.toml:2:"));
    assert_eq!(
        std::fs::read_to_string(&mise).unwrap(),
        "[tools]\nnode = \"20\nz3 = \"4\"\n"
    );

    let tv = lab.alpha().join(".tool-versions");
    std::fs::write(&tv, "nodejs 20\nz3 nightly:4\n").unwrap();
    lab.repoman()
        .args(["tools", "unpin", "nodejs", "--file"])
        .arg(&tv)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            ".tool-versions:2:4: unknown version scope `nightly:`",
        ));
    assert_eq!(
        std::fs::read_to_string(&tv).unwrap(),
        "nodejs 20\nz3 nightly:4\n"
    );
}

#[test]
fn status_reports_satisfied_missing_and_mismatch() {
    let lab = Lab::new();
    std::fs::write(
        lab.alpha().join(".tool-versions"),
        "nodejs 20\nz3 4.13 # newer\nlean 4.9.0\n",
    )
    .unwrap();
    std::fs::write(lab.alpha().join(".python-version"), "3.12\n").unwrap();
    let v = lab.json_exit(&["tools", "status", "alpha", "--json"], 1);
    let tools = v["projects"][0]["tools"].as_array().unwrap();
    let state = |t: &str| {
        tools.iter().find(|r| r["tool"] == t).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state("nodejs"), "satisfied");
    assert_eq!(state("z3"), "mismatch");
    assert_eq!(state("lean"), "missing");
    assert_eq!(state("python"), "missing");
    let node = tools.iter().find(|r| r["tool"] == "nodejs").unwrap();
    assert_eq!(node["by"], lab.root.join("bin/node").display().to_string());
    assert_eq!(node["line"], 1);

    std::fs::write(lab.alpha().join(".tool-versions"), "nodejs 20\nz3 4.12\n").unwrap();
    std::fs::remove_file(lab.alpha().join(".python-version")).unwrap();
    lab.repoman()
        .args(["tools", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("alpha").and(predicate::str::contains("satisfied")));
    let all = lab.json(&["tools", "status", "--all"]);
    assert_eq!(all["projects"].as_array().unwrap().len(), 1);
    assert_eq!(all["projects"][0]["project"], "alpha");
    lab.repoman()
        .args(["tools", "status", "nosuch"])
        .assert()
        .code(2);
}

#[test]
fn scan_records_ghosts_once_and_a_warm_scan_runs_no_process() {
    let lab = Lab::new();
    std::fs::write(lab.alpha().join("mise.toml"), "[tools]\nz3 = \"4.12\"\n").unwrap();
    let v = lab.json(&["tools", "scan"]);
    assert_eq!(v["installs"], 3);
    assert_eq!(v["ghosts"], 2, "agda and node are declared nowhere: {v}");
    assert_eq!(v["events"], 3);
    assert_eq!(v["unidentified"], 1);
    let after_cold = lab.runs();
    assert_eq!(after_cold, 3);

    let v = lab.json(&["tools", "scan"]);
    assert_eq!(
        (v["events"].as_u64(), v["stats"]["probed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(lab.runs(), after_cold, "warm scan ran a process");

    let log = lab.json(&["log", "--type", "tool.discovered"]);
    let text = log.to_string();
    assert!(
        text.contains("\"ghost\":true") && text.contains("\"ghost\":false"),
        "{text}"
    );

    let ghosts = lab.json(&["tools", "list", "--ghosts"]);
    let ids: Vec<&str> = ghosts["installs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node", "agda"]);
    let provers = lab.json(&["tools", "list", "--category", "prover"]);
    assert_eq!(provers["installs"].as_array().unwrap().len(), 1);
    lab.repoman()
        .args(["tools", "list", "--category", "wizard"])
        .assert()
        .code(2);

    let v = lab.json(&["tools", "scan", "--refresh"]);
    assert_eq!(v["stats"]["probed"], 3);
    assert_eq!(lab.runs(), after_cold + 3);
}

#[test]
fn doctor_reports_shadowing_and_list_shows_unidentified() {
    let lab = Lab::new();
    write_exe(&lab.root.join("bin2/node"), "echo v18.0.0");
    let path = std::env::join_paths([lab.root.join("bin"), lab.root.join("bin2")]).unwrap();
    let out = lab
        .repoman()
        .env("PATH", &path)
        .args(["tools", "doctor", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert!(
        f.iter()
            .any(|x| x["kind"] == "path-shadowing" && x["severity"] == "warning"),
        "{v}"
    );
    lab.repoman()
        .args(["tools", "list"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("unidentified")
                .and(predicate::str::contains("mystery/bin/frob")),
        );
}

#[test]
fn policy_can_block_manifest_edits() {
    let lab = Lab::new();
    let reg = lab.home().join(".config/repoman/repoman.toml");
    let mut text = std::fs::read_to_string(&reg).unwrap();
    text.push_str(
        "\n[[policy.rule]]\noperation = \"tools.*\"\nproject = \"alpha\"\neffect = \"deny\"\nreason = \"toolchains are frozen for the release\"\n",
    );
    std::fs::write(&reg, text).unwrap();
    let tv = lab.alpha().join(".tool-versions");
    std::fs::write(&tv, "nodejs 20\n").unwrap();
    lab.repoman()
        .args(["tools", "pin", "nodejs", "22"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "tools.pin on file:alpha/.tool-versions is blocked by policy",
        ))
        .stderr(predicate::str::contains("toolchains are frozen"));
    assert_eq!(std::fs::read_to_string(&tv).unwrap(), "nodejs 20\n");
    // Outside the project the rule does not match.
    lab.repoman()
        .args(["tools", "pin", "z3", "4.12.5", "--global"])
        .assert()
        .success();
    let log = lab.json(&["log", "--type", "policy.decided"]).to_string();
    assert!(log.contains("tools.pin"), "{log}");
}

#[test]
fn a_token_that_is_not_a_version_is_reported_and_matches_nothing() {
    let lab = Lab::new();
    // node v20.11.1 is installed: `banana` used to "match" it.
    std::fs::write(lab.alpha().join(".tool-versions"), "nodejs 99.0.0 banana\n").unwrap();
    let v = lab.json_exit(&["tools", "status", "alpha", "--json"], 1);
    let node = &v["projects"][0]["tools"][0];
    assert_eq!(node["tool"], "nodejs");
    assert_eq!(node["state"], "mismatch", "{node}");
    assert_eq!(node["not_versions"], serde_json::json!(["banana"]));
    lab.repoman()
        .args(["tools", "status", "alpha"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            ".tool-versions:1: `banana` is not a version of nodejs",
        ));
    // A real fallback still matches.
    std::fs::write(lab.alpha().join(".tool-versions"), "nodejs 99.0.0 20\n").unwrap();
    let v = lab.json(&["tools", "status", "alpha"]);
    assert_eq!(v["projects"][0]["tools"][0]["state"], "satisfied");
    assert_eq!(
        v["projects"][0]["tools"][0]["not_versions"],
        serde_json::json!([])
    );
}
