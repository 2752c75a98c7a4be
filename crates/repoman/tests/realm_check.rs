//! Realm admin commands and `realm check`, end to end with real git, files, processes and SQLite.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

struct World {
    home: tempfile::TempDir,
}

impl World {
    fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    fn cmd(&self, dir: &str) -> Command {
        let home = self.home.path();
        let mut cmd = Command::cargo_bin("repoman").expect("binary");
        cmd.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("USER", "tester")
            .current_dir(home.join(dir));
        cmd
    }

    fn ok(&self, dir: &str, args: &[&str]) -> String {
        let out = self
            .cmd(dir)
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn json(&self, dir: &str, args: &[&str], code: i32) -> Value {
        let out = self
            .cmd(dir)
            .args(args)
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    fn git(&self, dir: &str, args: &[&str]) {
        let st = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(self.path(dir))
            .env("HOME", self.home.path())
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    }
}

const V1: &str = r#"{"type": "object", "required": ["read"], "additionalProperties": false,
  "properties": {"read": {"type": "array", "items": {"type": "string"}}}}"#;
const V1_1: &str = r#"{"type": "object", "required": ["read"], "additionalProperties": false,
  "properties": {"read": {"type": "array", "items": {"type": "string"}},
                 "write": {"type": "array", "items": {"type": "string"}, "default": []}}}"#;
const V2: &str = r#"{"type": "object", "required": ["read", "write"], "additionalProperties": false,
  "properties": {"read": {"type": "array", "items": {"type": "string"}},
                 "write": {"type": "array", "items": {"type": "string"}}}}"#;

/// A realm with two repos: aperture provides `s3-permissions` to fungal.
fn world() -> World {
    let w = World {
        home: tempfile::tempdir().expect("tempdir"),
    };
    for d in ["aperture", "fungal", "rogue"] {
        std::fs::create_dir_all(w.path(d)).expect("mkdir");
    }
    w.write("aperture/models/s3_paths.py", "BUCKET = 'a'\n");
    w.write("aperture/models/extra.py", "X = 1\n");
    w.write("schemas/v1.json", V1);
    w.write("schemas/v1_1.json", V1_1);
    w.write("schemas/v2.json", V2);
    w.ok(
        "",
        &["realm", "admin", "init", "letemcook", "--path", "realm"],
    );
    w.ok("aperture", &["realm", "admin", "join", "../realm"]);
    w.ok("fungal", &["realm", "admin", "join", "../realm"]);
    w.ok("rogue", &["realm", "admin", "join", "../realm"]);
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "domain",
            "create",
            "s3-access",
            "--repos",
            "aperture,fungal",
        ],
    );
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "add",
            "s3-permissions",
            "--domain",
            "s3-access",
            "--owner",
            "aperture",
            "--schema",
            "../schemas/v1.json",
        ],
    );
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "binding",
            "export",
            "s3-permissions",
            "--source-files",
            "models/s3_paths.py,models/extra.py",
        ],
    );
    w.ok(
        "fungal",
        &[
            "realm",
            "admin",
            "binding",
            "import",
            "s3-permissions",
            "--version",
            ">=1.0.0 <2.0.0",
            "--binding",
            "cdk/stack.py",
        ],
    );
    w
}

/// The findings of `report` with rule `rule`.
fn with_rule<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

fn rules(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["level"].as_str().unwrap_or("").to_string(),
                f["rule"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_fresh_realm_checks_clean_everywhere_and_records_events() {
    let w = world();
    assert!(
        w.path("realm/.git").is_dir(),
        "the realm is a git repository"
    );
    assert!(w.path("aperture/.repoman/realm.yaml").is_file());
    let r = w.json("realm", &["realm", "check", "--format", "json"], 0);
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["context"], "realm");
    let r = w.json("aperture", &["realm", "check", "--format", "json"], 0);
    assert_eq!(r["context"], "repo:aperture");
    assert_eq!(r["errors"], 0, "{r:#}");
    w.json("fungal", &["realm", "check", "--format", "json"], 0);
    let log = w.ok("", &["log", "--json"]);
    for t in [
        "realm.created",
        "realm.joined",
        "realm.domain.created",
        "contract.added",
        "binding.exported",
        "binding.imported",
        "realm.checked",
    ] {
        assert!(log.contains(t), "event {t} missing from the log");
    }
}

#[test]
fn cycles_are_refused_with_the_full_cycle_and_suggestions() {
    let w = world();
    w.cmd("aperture")
        .args([
            "realm",
            "admin",
            "domain",
            "create",
            "feedback-loop",
            "--repos",
            "fungal,aperture",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "aperture → (s3-access) → fungal → (feedback-loop) → aperture",
        ))
        .stderr(predicate::str::contains("Consider:"))
        .stderr(predicate::str::contains("hub-and-spoke"));
    // Three repos: aperture → fungal → rogue → aperture.
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "domain",
            "create",
            "d2",
            "--repos",
            "fungal,rogue",
        ],
    );
    w.cmd("aperture")
        .args([
            "realm",
            "admin",
            "domain",
            "create",
            "d3",
            "--repos",
            "rogue,aperture",
            "--dry-run",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "aperture → (s3-access) → fungal → (d2) → rogue → (d3) → aperture",
        ));
    // A self-loop, and a hyperedge whose consumers form no cycle.
    w.cmd("aperture")
        .args([
            "realm",
            "admin",
            "domain",
            "create",
            "selfish",
            "--repos",
            "rogue,rogue",
        ])
        .assert()
        .code(3);
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "domain",
            "create",
            "hub",
            "--repos",
            "aperture,fungal,rogue",
        ],
    );
    assert!(
        !w.path("realm/domains/feedback-loop").exists(),
        "a refused domain writes nothing"
    );
}

#[test]
fn contract_bumps_follow_the_computed_compatibility() {
    let w = world();
    // A breaking change (new required property) with a minor bump is refused.
    w.cmd("aperture")
        .args([
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v2.json",
            "--version",
            "1.1.0",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "needs a major bump (to 2.0.0 or later)",
        ));
    // A compatible change gets the next minor by default.
    let out = w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v1_1.json",
        ],
    );
    assert!(out.contains("property-added"), "{out}");
    let r = w.json("realm", &["realm", "check", "--format", "json"], 0);
    assert_eq!(r["compatibility"][0]["from"], "1.0.0");
    assert_eq!(r["compatibility"][0]["to"], "1.1.0");
    // The importer is now stale: a warning, a failure under --strict.
    let r = w.json(
        "fungal",
        &["realm", "check", "--mode", "importer", "--format", "json"],
        0,
    );
    assert!(
        rules(&r).contains(&("warning".into(), "stale-binding".into())),
        "{r:#}"
    );
    w.cmd("fungal")
        .args(["realm", "check", "--mode", "importer", "--strict"])
        .assert()
        .code(1);
    // The breaking change as a major bump: allowed, but the importer's range no longer matches.
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v2.json",
        ],
    );
    let r = w.json(
        "fungal",
        &["realm", "check", "--mode", "importer", "--format", "json"],
        1,
    );
    assert!(
        rules(&r).contains(&("error".into(), "range-mismatch".into())),
        "{r:#}"
    );
    // Explicit version pairs from the realm history.
    let r = w.json(
        "realm",
        &[
            "realm",
            "check",
            "--mode",
            "compatibility",
            "--from",
            "1.1.0",
            "--to",
            "2.0.0",
            "--format",
            "json",
        ],
        0,
    );
    assert_eq!(r["compatibility"][0]["verdict"], "breaking");
    assert!(
        rules(&r).contains(&("info".into(), "required-added".into())),
        "allowed by the major step: {r:#}"
    );
    w.cmd("realm")
        .args([
            "realm",
            "check",
            "--mode",
            "compatibility",
            "--from",
            "1.0.0",
            "--to",
            "9.9.9",
        ])
        .assert()
        .code(1);
}

#[test]
fn zero_x_contracts_use_the_minor_as_major_and_tombstones_are_enforced() {
    let w = world();
    w.write("schemas/t1.json", r#"{"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}"#);
    w.write("schemas/t2.json", r#"{"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}"#);
    w.write("schemas/t3.json", r#"{"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}"#);
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "add",
            "tags",
            "--domain",
            "s3-access",
            "--owner",
            "aperture",
            "--schema",
            "../schemas/t1.json",
            "--version",
            "0.3.0",
        ],
    );
    // Removing `b` from a closed model is breaking: 0.3.1 is not enough below 1.0.0.
    w.cmd("aperture")
        .args([
            "realm",
            "admin",
            "contract",
            "bump",
            "tags",
            "--schema",
            "../schemas/t2.json",
            "--version",
            "0.3.1",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "below 1.0.0 the minor acts as the major",
        ));
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "tags",
            "--schema",
            "../schemas/t2.json",
            "--version",
            "0.4.0",
        ],
    );
    // Re-adding `b` (as another type) is compatible for the schema, but reuses a tombstoned name.
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "tags",
            "--schema",
            "../schemas/t3.json",
        ],
    );
    let r = w.json(
        "realm",
        &["realm", "check", "--mode", "contract", "--format", "json"],
        1,
    );
    let tomb = with_rule(&r, "tombstone");
    assert_eq!(tomb.len(), 1, "{r:#}");
    assert_eq!(tomb[0]["pointer"], "#/properties/b");
}

#[test]
fn exporter_ownership_and_changed_sources() {
    let w = world();
    w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        0,
    );
    // Touching without changing the content is fine.
    w.write("aperture/models/s3_paths.py", "BUCKET = 'a'\n");
    w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        0,
    );
    // Changed source, unchanged contract: fail.
    w.write("aperture/models/s3_paths.py", "BUCKET = 'b'\n");
    let r = w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        1,
    );
    let changed = with_rule(&r, "source-changed");
    assert_eq!(changed.len(), 1, "only the changed file: {r:#}");
    assert_eq!(changed[0]["file"], "models/s3_paths.py");
    // A bump from the owner's working copy re-records the digests.
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v1_1.json",
        ],
    );
    w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        0,
    );
    // A repo exporting a contract it does not own.
    w.write("rogue/impl.py", "x\n");
    w.ok(
        "rogue",
        &[
            "realm",
            "admin",
            "binding",
            "export",
            "s3-permissions",
            "--source-files",
            "impl.py",
        ],
    );
    let r = w.json(
        "rogue",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        1,
    );
    assert!(
        rules(&r).contains(&("error".into(), "ownership".into())),
        "{r:#}"
    );
}

fn add_hook(w: &World, role: &str, script: &str, body: &str) {
    let p = w.path(&format!("fungal/{script}"));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, body).expect("write hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let contract = w.path("realm/domains/s3-access/contracts/s3-permissions.yaml");
    let mut text = std::fs::read_to_string(&contract).expect("contract");
    if text.contains("validation:\n") {
        text = text.replace(
            "validation:\n",
            &format!("validation:\n  {role}: {script}\n"),
        );
    } else {
        text.push_str(&format!("validation:\n  {role}: {script}\n"));
    }
    std::fs::write(&contract, text).expect("write contract");
    w.git("realm", &["commit", "-qam", "add hook"]);
}

#[test]
fn hooks_run_only_when_trusted_and_report_exit_codes() {
    let w = world();
    let marker = w.path("hook-ran");
    add_hook(
        &w,
        "importer",
        "scripts/validate.sh",
        &format!(
            "#!/bin/sh\necho checked > '{}'\necho 'looks odd'\nexit 2\n",
            marker.display()
        ),
    );
    // Untrusted: not run, says how to trust.
    w.cmd("fungal")
        .args(["realm", "check", "--mode", "importer"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("repoman realm admin trust"))
        .stdout(predicate::str::contains("skipped: realm not trusted"));
    assert!(!marker.exists(), "an untrusted realm's hook must not run");
    w.ok("fungal", &["realm", "admin", "trust"]);
    let r = w.json(
        "fungal",
        &[
            "realm",
            "check",
            "--mode",
            "importer",
            "--no-cache",
            "--format",
            "json",
        ],
        0,
    );
    assert!(marker.exists(), "a trusted realm's hook runs");
    assert!(
        rules(&r).contains(&("warning".into(), "hook-warning".into())),
        "exit 2 is a warning: {r:#}"
    );
    w.cmd("fungal")
        .args([
            "realm",
            "check",
            "--mode",
            "importer",
            "--strict",
            "--no-cache",
        ])
        .assert()
        .code(1);
    // A changed realm needs trust again.
    add_hook(&w, "exporter", "scripts/other.sh", "#!/bin/sh\nexit 0\n");
    std::fs::remove_file(&marker).expect("rm");
    w.cmd("fungal")
        .args(["realm", "check", "--mode", "importer"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("changed since it was trusted"));
    assert!(!marker.exists());
}

#[test]
fn a_hung_hook_is_killed_at_the_timeout_and_fails_the_check() {
    let w = world();
    let pidfile = w.path("hung.pid");
    add_hook(
        &w,
        "importer",
        "scripts/hang.sh",
        &format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 300\n",
            pidfile.display()
        ),
    );
    w.ok("fungal", &["realm", "admin", "trust"]);
    let r = w.json(
        "fungal",
        &[
            "realm",
            "check",
            "--mode",
            "importer",
            "--hook-timeout",
            "1",
            "--format",
            "json",
        ],
        1,
    );
    assert!(
        rules(&r).contains(&("error".into(), "hook-timeout".into())),
        "{r:#}"
    );
    let pid = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .to_string();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the hung hook was killed"
    );
}

#[test]
fn ci_only_hooks_run_only_in_ci() {
    let w = world();
    let marker = w.path("ci-ran");
    let script = "scripts/integration.sh";
    let p = w.path(&format!("fungal/{script}"));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).expect("hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let contract = w.path("realm/domains/s3-access/contracts/s3-permissions.yaml");
    let mut text = std::fs::read_to_string(&contract).expect("contract");
    text.push_str(&format!("validation:\n  ci_only:\n  - {script}\n"));
    std::fs::write(&contract, text).expect("write");
    w.git("realm", &["commit", "-qam", "ci hook"]);
    w.ok("fungal", &["realm", "admin", "trust"]);
    w.cmd("fungal")
        .args(["realm", "check", "--mode", "importer"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("skipped: CI only"));
    assert!(!marker.exists());
    w.cmd("fungal")
        .env("CI", "true")
        .args(["realm", "check", "--mode", "importer"])
        .assert()
        .code(0);
    assert!(marker.exists(), "CI runs ci_only hooks");
}

#[test]
fn warm_cache_matches_no_cache_and_touching_invalidates_one_entry() {
    let w = world();
    // An entry stored within a second of its file's last change is not trusted (a rewrite in the
    // same timestamp tick keeps the ctime): let the setup's files age past that.
    past_the_racy_window();
    // Lookups: the realm's load, then the two source files.
    let first = w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        0,
    );
    assert_eq!(first["cache"]["misses"], 3, "{first:#}");
    let warm = w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        0,
    );
    assert_eq!(warm["cache"]["hits"], 3, "{warm:#}");
    assert_eq!(warm["cache"]["misses"], 0);
    let cold = w.json(
        "aperture",
        &[
            "realm",
            "check",
            "--mode",
            "exporter",
            "--no-cache",
            "--format",
            "json",
        ],
        0,
    );
    assert_eq!(cold["cache"]["hits"], 0);
    assert_eq!(warm["findings"], cold["findings"]);
    // Rewrite one file (new ctime): exactly that entry is recomputed.
    w.write("aperture/models/extra.py", "X = 1\n");
    let touched = w.json(
        "aperture",
        &["realm", "check", "--mode", "exporter", "--format", "json"],
        0,
    );
    assert_eq!(touched["cache"]["misses"], 1, "{touched:#}");
    assert_eq!(touched["cache"]["hits"], 2);
    // The realm repo's own cache: history and diffs.
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v1_1.json",
        ],
    );
    let cold = w.json(
        "realm",
        &["realm", "check", "--no-cache", "--format", "json"],
        0,
    );
    past_the_racy_window();
    w.json("realm", &["realm", "check", "--format", "json"], 0);
    let warm = w.json("realm", &["realm", "check", "--format", "json"], 0);
    assert_eq!(warm["cache"]["misses"], 0, "{warm:#}");
    // The realm's load and the whole report, nothing else.
    assert_eq!(warm["cache"]["hits"], 2, "{warm:#}");
    assert_eq!(warm["findings"], cold["findings"]);
    assert_eq!(
        warm["compatibility"].to_string(),
        cold["compatibility"].to_string()
    );
    let stats = w.json("realm", &["--json", "realm", "admin", "cache", "stats"], 0);
    assert!(
        stats["contract_entries"].as_u64().unwrap_or(0) >= 1,
        "{stats:#}"
    );
    assert_eq!(stats["realm_entries"], 1, "{stats:#}");
    w.ok("realm", &["realm", "admin", "cache", "clear"]);
    assert!(!w.path("realm/.repoman/cache.db").exists());
}

#[test]
fn junit_and_github_formats() {
    let w = world();
    w.write("aperture/models/s3_paths.py", "changed\n");
    let out = w
        .cmd("aperture")
        .args(["realm", "check", "--format", "junit"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let xml = String::from_utf8_lossy(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<failure type=\"error\""), "{xml}");
    assert!(xml.contains("source-changed"), "{xml}");
    let out = w
        .cmd("aperture")
        .args(["realm", "check", "--format", "github"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let gh = String::from_utf8_lossy(&out);
    assert!(
        gh.lines()
            .any(|l| l.starts_with("::error file=models/s3_paths.py,title=realm source-changed")),
        "{gh}"
    );
    assert!(
        gh.contains("::notice title=realm check::letemcook FAILED"),
        "{gh}"
    );
}

#[test]
fn status_shows_stale_bindings_and_pending_changes() {
    let w = world();
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v1_1.json",
        ],
    );
    let contract = w.path("realm/domains/s3-access/contracts/s3-permissions.yaml");
    let text = std::fs::read_to_string(&contract).expect("read");
    std::fs::write(
        &contract,
        text.replace("owner: aperture", "owner: aperture\n"),
    )
    .expect("write");
    let s = w.json("fungal", &["--json", "realm", "status"], 0);
    assert_eq!(s["repo"], "fungal");
    assert_eq!(s["stale_bindings"][0]["contract"], "s3-permissions");
    assert_eq!(s["stale_bindings"][0]["current_version"], "1.1.0");
    assert_eq!(s["pending_contract_changes"][0], "s3-permissions");
    let text = w.ok("fungal", &["realm", "status"]);
    assert!(text.contains("stale"), "{text}");
}

#[test]
fn malformed_realm_files_name_file_line_column() {
    let w = world();
    w.write(
        "realm/domains/s3-access/bindings/fungal.yaml",
        "repo: fungal\nrole: consumer\nimports:\n  - contract: [oops\n",
    );
    w.cmd("fungal")
        .args(["realm", "check"])
        .assert()
        .code(2)
        .stderr(predicate::str::is_match(r"bindings/fungal\.yaml:\d+:\d+: ").expect("regex"));
    w.write(
        "realm/domains/s3-access/bindings/fungal.yaml",
        "repo: fungal\nrole: consumer\nimprots: []\n",
    );
    w.cmd("fungal")
        .args(["realm", "check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("improts"));
}

#[test]
fn ranges_with_commas_and_leave() {
    let w = world();
    w.ok(
        "rogue",
        &[
            "realm",
            "admin",
            "binding",
            "import",
            "s3-permissions",
            "--version",
            ">=1.0.0, <2.0.0",
        ],
    );
    w.json(
        "rogue",
        &["realm", "check", "--mode", "importer", "--format", "json"],
        0,
    );
    w.cmd("rogue")
        .args([
            "realm",
            "admin",
            "binding",
            "import",
            "s3-permissions",
            "--version",
            ">=2.0.0",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not accept"));
    // aperture owns a contract and provides a domain: it cannot leave.
    w.cmd("aperture")
        .args(["realm", "admin", "leave"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("still used by"));
}

#[test]
fn ci_checkouts_pass_the_realm_with_dash_dash_realm() {
    let w = world();
    // CI: the realm is cloned inside the workspace; the membership's absolute path does not exist.
    let st = std::process::Command::new("git")
        .args(["clone", "--quiet"])
        .arg(w.path("realm"))
        .arg(w.path("aperture/.realm"))
        .status()
        .expect("git clone");
    assert!(st.success());
    std::fs::rename(w.path("realm"), w.path("realm-moved")).expect("move the original");
    w.cmd("aperture")
        .args(["realm", "check", "--mode", "exporter"])
        .assert()
        .code(2);
    let r = w.json(
        "aperture",
        &[
            "realm", "check", "--realm", ".realm", "--mode", "exporter", "--format", "json",
        ],
        0,
    );
    assert_eq!(r["context"], "repo:aperture");
    w.ok(
        "aperture",
        &["realm", "admin", "trust", "--realm", ".realm"],
    );
}

fn realm_head(w: &World) -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(w.path("realm"))
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn dry_runs_validate_but_write_nothing() {
    let w = world();
    let head = realm_head(&w);
    w.ok(
        "rogue",
        &[
            "realm",
            "admin",
            "binding",
            "import",
            "s3-permissions",
            "--version",
            "^1",
            "--dry-run",
        ],
    );
    assert!(
        !w.path("realm/domains/s3-access/bindings/rogue.yaml")
            .exists()
    );
    w.cmd("rogue")
        .args([
            "realm",
            "admin",
            "binding",
            "import",
            "s3-permissions",
            "--version",
            "^2",
            "--dry-run",
        ])
        .assert()
        .code(2);
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "add",
            "extra",
            "--domain",
            "s3-access",
            "--owner",
            "aperture",
            "--schema",
            "../schemas/v1.json",
            "--dry-run",
        ],
    );
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v2.json",
            "--dry-run",
        ],
    );
    w.ok("rogue", &["realm", "admin", "leave", "--dry-run"]);
    assert!(w.path("rogue/.repoman/realm.yaml").exists());
    assert_eq!(realm_head(&w), head, "no commit was made");
    let s = w.json("aperture", &["--json", "realm", "status"], 0);
    assert_eq!(s["domains"][0]["contracts"][0]["version"], "1.0.0");
}

#[test]
fn transitive_contracts_compare_with_every_earlier_version() {
    let w = world();
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "add",
            "t",
            "--domain",
            "s3-access",
            "--owner",
            "aperture",
            "--schema",
            "../schemas/v1.json",
            "--transitive",
            "--compatibility",
            "full",
        ],
    );
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "t",
            "--schema",
            "../schemas/v1_1.json",
            "--version",
            "2.0.0",
        ],
    );
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "t",
            "--schema",
            "../schemas/v2.json",
        ],
    );
    let r = w.json(
        "realm",
        &[
            "realm",
            "check",
            "--mode",
            "compatibility",
            "--format",
            "json",
        ],
        0,
    );
    let pairs: Vec<(String, String)> = r["compatibility"]
        .as_array()
        .expect("compatibility")
        .iter()
        .filter(|d| d["contract"] == "t")
        .map(|d| {
            (
                d["from"].as_str().unwrap_or("").to_string(),
                d["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("1.0.0".to_string(), "3.0.0".to_string()),
            ("2.0.0".to_string(), "3.0.0".to_string())
        ]
    );
    assert!(
        r["compatibility"]
            .as_array()
            .expect("list")
            .iter()
            .filter(|d| d["contract"] == "t")
            .all(|d| d["mode"] == "full")
    );
}

#[test]
fn policy_rules_can_block_realm_changes() {
    let w = world();
    w.write(
        "config/repoman/repoman.toml",
        "schema_version = 1\n[[policy.rule]]\noperation = \"realm.contract.*\"\neffect = \"deny\"\nreason = \"contracts are frozen\"\n",
    );
    let head = realm_head(&w);
    w.cmd("aperture")
        .args([
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v1_1.json",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("contracts are frozen"));
    assert_eq!(realm_head(&w), head, "a blocked bump writes nothing");
    // Other realm operations are not matched by the rule.
    w.ok(
        "rogue",
        &[
            "realm",
            "admin",
            "binding",
            "import",
            "s3-permissions",
            "--version",
            "^1",
        ],
    );
    let log = w.ok("", &["log", "--json"]);
    assert!(log.contains("policy.decided"), "the decision is recorded");
}

#[test]
fn text_output_lists_changes_and_the_result_like_the_seed() {
    let w = world();
    w.ok(
        "aperture",
        &[
            "realm",
            "admin",
            "contract",
            "bump",
            "s3-permissions",
            "--schema",
            "../schemas/v1_1.json",
        ],
    );
    let out = w.ok("realm", &["realm", "check", "--mode", "compatibility"]);
    assert!(
        out.contains("checking s3-permissions 1.0.0 → 1.1.0 (backward)"),
        "{out}"
    );
    assert!(out.contains("✓ #/properties/write property-added"), "{out}");
    assert!(
        out.contains("Result: COMPATIBLE (minor version step OK)"),
        "{out}"
    );
    assert!(
        out.contains("realm check (compatibility) letemcook: OK"),
        "{out}"
    );
}

#[test]
fn join_by_registered_project_uses_local_repos() {
    let w = world();
    std::fs::create_dir_all(w.path("repos/infra")).expect("mkdir");
    w.write(
        "config/repoman/repoman.toml",
        &format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {:?}\n[[project]]\nname = \"infra\"\nrepo = \"infra\"\ncontainer = false\n",
            w.path("repos").display().to_string()
        ),
    );
    w.ok(
        "",
        &["realm", "admin", "join", "realm", "--project", "infra"],
    );
    assert!(w.path("repos/infra/.repoman/realm.yaml").is_file());
    assert!(w.path("realm/repos/infra.yaml").is_file());
    w.cmd("")
        .args(["realm", "admin", "join", "realm", "--project", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no project `nope`"));
}

/// Hostile input (docs/security.md "Host-side commands and the repo's files"): a binding's
/// source file replaced by a symlink to a host secret, or by a FIFO, as a sandbox could do in its
/// repo. `realm check` neither reads through the link nor waits on the FIFO: each is a finding
/// naming the file, and nothing of the secret appears.
#[test]
fn binding_sources_that_became_links_or_fifos_are_refused_not_followed() {
    let w = world();
    // A check that opened a FIFO would wait for a writer until the timeout killed it (no exit
    // code then).
    let check = || {
        let out = w
            .cmd("aperture")
            .args(["realm", "check", "--mode", "exporter", "--format", "json"])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .expect("run");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let secret = w.path("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-HOST-VALUE\n").expect("write");
    let source = w.path("aperture/models/s3_paths.py");
    std::fs::remove_file(&source).expect("rm");
    std::os::unix::fs::symlink(&secret, &source).expect("symlink");
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("models/s3_paths.py"), "{text}");
    assert!(
        !text.contains("TOP-SECRET"),
        "the link was followed: {text}"
    );
    // Refused as what it is (a followed link would be a `source-changed` finding instead).
    assert!(
        text.contains("source-missing") && text.contains("it is not read"),
        "{text}"
    );

    std::fs::remove_file(&source).expect("rm");
    let made = std::process::Command::new("mkfifo")
        .arg(&source)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("source-missing") && text.contains("it is not read"),
        "{text}"
    );
}

/// Longer than the cache's racy window (`repoman_realm::cache::RACY_NS`, one second).
fn past_the_racy_window() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Rewrites `rel` with `text` (same length as before) and sets its mtime back to what it was, as
/// `touch -r` would: size and mtime cannot tell the versions apart, only the ctime can.
fn forge_same_size_edit(w: &World, rel: &str, text: &str) {
    let p = w.path(rel);
    let before = std::fs::metadata(&p).expect("stat");
    assert_eq!(before.len(), text.len() as u64, "a same-size edit");
    std::fs::write(&p, text).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_modified(before.modified().expect("mtime")))
        .expect("set mtime back");
    let after = std::fs::metadata(&p).expect("stat");
    assert_eq!(after.modified().ok(), before.modified().ok());
    assert_eq!(after.len(), before.len());
}

#[test]
fn a_same_size_edit_with_the_mtime_set_back_is_still_seen() {
    // Red team: the member repo is sandbox-writable, so an agent can edit a source file and put
    // its mtime back. A cache keyed by mtime and size would keep the old digest and pass.
    let w = world();
    past_the_racy_window();
    let exporter = ["realm", "check", "--mode", "exporter", "--format", "json"];
    let warm = w.json("aperture", &exporter, 0);
    assert_eq!(warm["cache"]["misses"], 3, "{warm:#}");
    let warm = w.json("aperture", &exporter, 0);
    assert_eq!(warm["cache"]["hits"], 3, "the cache is in use: {warm:#}");
    forge_same_size_edit(&w, "aperture/models/s3_paths.py", "BUCKET = 'b'\n");
    let r = w.json("aperture", &exporter, 1);
    let changed = with_rule(&r, "source-changed");
    assert_eq!(changed.len(), 1, "{r:#}");
    assert_eq!(changed[0]["file"], "models/s3_paths.py");
    assert_eq!(
        r["findings"],
        w.json("aperture", &[&exporter[..], &["--no-cache"]].concat(), 1)["findings"]
    );
}

#[test]
fn a_realm_file_edited_behind_the_load_cache_is_reloaded() {
    // The realm's load is cached in the member's cache; the same forgery on a realm file (the
    // binding that records the source digests) must reload it.
    let w = world();
    past_the_racy_window();
    let exporter = ["realm", "check", "--mode", "exporter", "--format", "json"];
    w.json("aperture", &exporter, 0);
    let warm = w.json("aperture", &exporter, 0);
    assert_eq!(warm["cache"]["misses"], 0, "{warm:#}");
    let binding = "realm/domains/s3-access/bindings/aperture.yaml";
    let text = std::fs::read_to_string(w.path(binding)).expect("binding");
    // The recorded digest of models/s3_paths.py: a 64-digit hex word on its line.
    let digest = text
        .lines()
        .filter(|l| l.contains("s3_paths.py"))
        .flat_map(|l| l.split(|c: char| !c.is_ascii_hexdigit()))
        .find(|word| word.len() == 64)
        .unwrap_or_else(|| panic!("the binding records the digest: {text}"))
        .to_string();
    let forged: String = digest
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    forge_same_size_edit(&w, binding, &text.replace(&digest, &forged));
    let r = w.json("aperture", &exporter, 1);
    assert!(
        rules(&r).contains(&("error".into(), "source-changed".into())),
        "the forged digest is read: {r:#}"
    );
    assert!(r["cache"]["misses"].as_u64().unwrap_or(0) >= 1, "{r:#}");
}

#[test]
fn a_contract_git_ignores_is_checked_even_at_a_clean_commit() {
    // The whole contract/compatibility report of a clean realm commit is cached, but a file git
    // ignores is part of the realm as loaded: the commit cannot stand for the content.
    let w = world();
    let ignore = std::fs::read_to_string(w.path("realm/.gitignore")).expect(".gitignore");
    w.write(
        "realm/.gitignore",
        &format!("{ignore}domains/s3-access/contracts/shadow.yaml\n"),
    );
    w.git("realm", &["add", ".gitignore"]);
    w.git("realm", &["commit", "-q", "-m", "ignore a contract file"]);
    let clean = w.json("realm", &["realm", "check", "--format", "json"], 0);
    assert_eq!(clean["errors"], 0, "{clean:#}");
    // Owned by a repo the realm does not have: contract mode reports it.
    w.write(
        "realm/domains/s3-access/contracts/shadow.yaml",
        "name: shadow\nversion: 1.0.0\nowner: nobody\nschema:\n  type: object\n",
    );
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(w.path("realm"))
        .output()
        .expect("git status");
    assert!(
        status.stdout.is_empty(),
        "git sees nothing to commit: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    let r = w.json("realm", &["realm", "check", "--format", "json"], 1);
    assert!(
        r["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["level"] == "error" && f["object"].as_str().unwrap_or("").contains("shadow")),
        "{r:#}"
    );
}
