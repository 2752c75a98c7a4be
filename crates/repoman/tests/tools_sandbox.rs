//! `repoman tools scan --sandbox NAME` against the real Incus daemon: a busybox container with
//! fake tools pushed into it, scanned through Incus exec and compared with the project's manifest.
//! Without Incus this test prints SKIPPED, unless `REPOMAN_TEST_INCUS=require`.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TestLab};
use repoman_incus::{FileMode, ImageSource, InstanceSpec};

fn push_exe(scope: &repoman_incus::ProjectScope, inst: &str, path: &str, body: &str) {
    // Create each parent directory (make_dir needs the parent to exist).
    let mut cur = String::new();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for p in &parts[..parts.len() - 1] {
        cur.push('/');
        cur.push_str(p);
        let _ = scope.make_dir(inst, &cur, FileMode::new(0, 0, 0o755));
    }
    scope
        .push_file(
            inst,
            path,
            format!("#!/bin/sh\n{body}\n").as_bytes(),
            FileMode::new(0, 0, 0o755),
        )
        .unwrap();
}

#[test]
fn sandbox_scan_compares_the_container_with_the_manifest_and_never_runs_shims() {
    let Some(lab) = TestLab::connect() else {
        eprintln!("SKIPPED: Incus is not available");
        return;
    };
    let project = lab.project("tools");
    let spec = InstanceSpec::new("alpha", ImageSource::alias(TEST_IMAGE_ALIAS)).start(true);
    project.create_instance(&spec).unwrap();
    let scope: &repoman_incus::ProjectScope = &project;
    push_exe(
        scope,
        "alpha",
        "/opt/z3/bin/z3",
        "echo 'Z3 version 4.12.5 - 64 bit'",
    );
    push_exe(scope, "alpha", "/opt/vampire/bin/vampire", "sleep 30");
    push_exe(
        scope,
        "alpha",
        "/opt/agda/bin/agda",
        "cat; echo 'Agda version 2.6.4.1'",
    );
    push_exe(
        scope,
        "alpha",
        "/root/.local/share/mise/shims/z3",
        "touch /root/SHIM-RAN",
    );
    push_exe(
        scope,
        "alpha",
        "/root/.local/share/mise/installs/z3/4.13.0/bin/z3",
        "echo 'Z3 version 4.13.0'",
    );

    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repos = tmp.path().join("repos");
    std::fs::create_dir_all(home.join(".config/repoman")).unwrap();
    std::fs::create_dir_all(repos.join("alpha")).unwrap();
    std::fs::write(
        repos.join("alpha/.tool-versions"),
        "z3 4.12.5\nlean 4.9.0\n",
    )
    .unwrap();
    std::fs::write(
        home.join(".config/repoman/repoman.toml"),
        format!(
            "schema_version = 1\n\n[defaults]\nlocal_repos = \"{}\"\nincus_project = \"{}\"\n\n[[project]]\nname = \"alpha\"\nrepo = \"alpha\"\n",
            repos.display(),
            project.name()
        ),
    )
    .unwrap();
    let mut cmd = Command::cargo_bin("repoman").unwrap();
    cmd.env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", tmp.path().join("run"))
        .env("USER", "tester");
    for var in ["INCUS_SOCKET", "INCUS_DIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let out = cmd
        .args([
            "tools",
            "scan",
            "--sandbox",
            "alpha",
            "--timeout",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "lean is missing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = |t: &str| {
        v["status"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tool"] == t)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state("z3"), "satisfied");
    assert_eq!(state("lean"), "missing");
    let installs = v["inventory"]["installs"].as_array().unwrap();
    let find = |p: &str| {
        installs
            .iter()
            .find(|i| i["path"] == p)
            .unwrap_or_else(|| panic!("{p}: {v}"))
    };
    assert_eq!(
        find("/opt/agda/bin/agda")["version"],
        "2.6.4.1",
        "stdin must not block"
    );
    assert_eq!(
        find("/opt/vampire/bin/vampire")["outcome"]["status"],
        "timed-out"
    );
    assert_eq!(
        find("/root/.local/share/mise/installs/z3/4.13.0/bin/z3")["version"],
        "4.13.0"
    );
    assert_eq!(
        v["inventory"]["shims"][0]["path"],
        "/root/.local/share/mise/shims/z3"
    );
    let probe = scope
        .exec(
            "alpha",
            &repoman_incus::ExecSpec::new(["test", "-e", "/root/SHIM-RAN"]),
        )
        .unwrap();
    assert_eq!(
        probe.exit_code, 1,
        "the shim was executed inside the sandbox"
    );

    // A sandbox that does not exist is an environment error, not a crash.
    std::fs::write(
        home.join(".config/repoman/repoman.toml"),
        format!(
            "schema_version = 1\n\n[defaults]\nlocal_repos = \"{}\"\nincus_project = \"{}\"\n\n[[project]]\nname = \"beta\"\nrepo = \"alpha\"\n",
            repos.display(),
            project.name()
        ),
    )
    .unwrap();
    let out = cmd_again(&home, tmp.path())
        .args(["tools", "scan", "--sandbox", "beta"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot scan sandbox `beta`"));
}

fn cmd_again(home: &std::path::Path, tmp: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("repoman").unwrap();
    cmd.env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", tmp.join("run"))
        .env("USER", "tester");
    for var in ["INCUS_SOCKET", "INCUS_DIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd
}
