//! The CLI skeleton end to end: version, help, completions, man pages, exit codes, config.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

/// A `repoman` command with a private HOME and XDG dirs under `home`.
fn repoman(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("repoman").unwrap();
    cmd.env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("USER", "tester");
    cmd
}

fn files_under(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn version_names_the_package_version() {
    let home = tempfile::tempdir().unwrap();
    repoman(home.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "repoman {}",
            env!("CARGO_PKG_VERSION")
        )));
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    repoman(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("completions"))
        .stdout(predicate::str::contains("130 interrupted"));
}

#[test]
fn no_arguments_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    repoman(home.path()).assert().code(2);
    repoman(home.path()).arg("no-such-command").assert().code(2);
}

#[test]
fn bash_completions_are_generated() {
    let home = tempfile::tempdir().unwrap();
    repoman(home.path())
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("complete -F _repoman"));
}

#[test]
fn man_pages_are_up_to_date() {
    let out = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    repoman(home.path())
        .args(["generate-man"])
        .arg(out.path())
        .assert()
        .success();
    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man");
    let mut generated = files_under(out.path());
    generated.sort();
    let mut existing = files_under(&checked_in);
    existing.sort();
    assert_eq!(
        generated, existing,
        "the set of man pages changed; run scripts/gen-man and commit docs/man"
    );
    for name in generated {
        let a = std::fs::read(out.path().join(&name)).unwrap();
        let b = std::fs::read(checked_in.join(&name)).unwrap();
        assert!(
            a == b,
            "docs/man/{name} is out of date; run scripts/gen-man and commit docs/man"
        );
    }
    assert!(checked_in.join("repoman.1").exists());
}

/// A subcommand's help is its args struct's whole doc comment, in `--help` and in its man page
/// (a doc comment on the `Command` variant would replace it with one line).
#[test]
fn subcommand_help_and_man_pages_carry_the_full_doc_comment() {
    let home = tempfile::tempdir().unwrap();
    let long = "The restricted per-user Incus socket is refused";
    repoman(home.path())
        .args(["setup", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(long))
        .stdout(predicate::str::contains("safe to run again"));
    repoman(home.path())
        .args(["sync", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "rsync --dry-run --itemize-changes",
        ));
    // The command list shows each struct's first line.
    repoman(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Set up this host for sandboxes (safe to run again",
        ));
    let man = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man/repoman-setup.1"),
    )
    .unwrap();
    assert!(man.contains(r"restricted per\-user Incus socket"), "{man}");
}

#[test]
fn config_show_on_a_fresh_machine_creates_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = repoman(home.path())
        .args(["config", "show", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["config_file_exists"], false);
    assert_eq!(v["settings"]["incus_project"]["value"], "repoman");
    assert_eq!(v["settings"]["incus_project"]["source"]["kind"], "built_in");
    assert!(
        files_under(home.path()).is_empty(),
        "created {:?}",
        files_under(home.path())
    );
}

#[test]
fn config_show_reports_sources() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        "schema_version = 1\n[defaults]\npool = \"fast\"\n",
    )
    .unwrap();
    repoman(home.path())
        .args(["config", "show"])
        .env("NFS_REPOS", "/mnt/backup")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("pool").and(predicate::str::contains("fast  [repoman.toml]")),
        )
        .stdout(predicate::str::contains(
            "/mnt/backup  [environment (NFS_REPOS)]",
        ));
}

#[test]
fn malformed_registry_is_a_configuration_error_with_position() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        "schema_version = 1\n[defaults\npool = 1\n",
    )
    .unwrap();
    repoman(home.path())
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("repoman.toml:2:"))
        .stderr(predicate::str::contains("hint: fix the file"));
}

#[test]
fn newer_registry_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("repoman.toml"), "schema_version = 7\n").unwrap();
    repoman(home.path())
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("schema_version 7"));
}

#[test]
fn config_migrate_upgrades_and_keeps_comments() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    let file = cfg.join("repoman.toml");
    std::fs::write(
        &file,
        "# mine\n[defaults]\nnfs_repos = \"/mnt/b\" # share\n",
    )
    .unwrap();
    repoman(home.path())
        .args(["config", "migrate", "--dry-run"])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("nfs_repos"),
        "dry run wrote"
    );
    repoman(home.path())
        .args(["config", "migrate"])
        .assert()
        .success();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("schema_version = 1"), "{text}");
    assert!(
        text.contains("# mine") && text.contains("backup_root = \"/mnt/b\" # share"),
        "{text}"
    );
    repoman(home.path())
        .args(["config", "migrate"])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing to do"));
}

#[test]
fn relative_override_is_a_usage_error_with_hint() {
    let home = tempfile::tempdir().unwrap();
    repoman(home.path())
        .args(["config", "show"])
        .env("REPOMAN_STATE_DIR", "relative")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "REPOMAN_STATE_DIR must be an absolute path",
        ));
}

#[test]
fn every_domain_schema_is_listed_whichever_command_runs() {
    let home = tempfile::tempdir().unwrap();
    let out = repoman(home.path())
        .args(["schema", "list", "--json"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for id in [
        "repoman.toml/v1",
        "realm.contract",
        "event.sandbox.created/v1",
        "event.backup.synced/v1",
        "event.tool.discovered/v1",
        "repoman.manifest/v1",
    ] {
        assert!(
            text.contains(&format!("\"{id}\"")),
            "schema list lacks {id}"
        );
    }
    repoman(home.path())
        .args(["schema", "show", "realm.contract"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"$schema\""));
}

#[test]
fn registry_is_validated_against_its_schema_on_load() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    // Well-typed TOML, but out of the schema's range.
    std::fs::write(
        cfg.join("repoman.toml"),
        "schema_version = 1\n[defaults]\nmax_delete_percent = 150.0\n",
    )
    .unwrap();
    repoman(home.path())
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("max_delete_percent"))
        .stderr(predicate::str::contains("hint: fix"));
}

/// Values that would make a command do nothing, or something other than asked, are refused up
/// front: exit 2, the value, and what to use instead.
#[test]
fn out_of_range_flags_are_usage_errors_with_the_value_and_a_hint() {
    let home = tempfile::tempdir().unwrap();
    for argv in [
        &["sync", "--all", "--jobs", "0"][..],
        &["tools", "scan", "--jobs", "0"][..],
    ] {
        repoman(home.path())
            .args(argv)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("'0'"))
            .stderr(predicate::str::contains("--jobs"))
            .stderr(predicate::str::contains("use 1 for one at a time"));
    }
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("repoman.toml"),
        "schema_version = 1\n[[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n",
    )
    .unwrap();
    for pct in ["101%", "-1%", "nan%"] {
        repoman(home.path())
            .args(["sync", "alpha", &format!("--max-delete={pct}")])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "invalid value '{pct}' for '--max-delete <N|P%>'"
            )))
            .stderr(predicate::str::contains("between 0% and 100%"))
            .stderr(predicate::str::contains(
                "`--max-delete 100%` allows deleting everything",
            ));
    }
}

#[test]
fn zero_probe_timeout_in_the_registry_is_a_configuration_error() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    let path = cfg.join("repoman.toml");
    std::fs::write(
        &path,
        "schema_version = 1\n[defaults]\nbackup_root = \"/b\"\nprobe_timeout_secs = 0\n",
    )
    .unwrap();
    repoman(home.path())
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:4:22: [defaults] probe_timeout_secs = 0",
            path.display()
        )))
        .stderr(predicate::str::contains(
            "hint: set probe_timeout_secs to 1 or more",
        ));
}

#[test]
fn a_project_registered_twice_is_refused_and_doctor_flags_it() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".config/repoman");
    std::fs::create_dir_all(&cfg).unwrap();
    let path = cfg.join("repoman.toml");
    std::fs::write(
        &path,
        "schema_version = 1\n\n[[project]]\nname = \"alpha\"\nrepo = \"a1\"\n\n[[project]]\nname = \"beta\"\nrepo = \"b\"\n\n[[project]]\nname = \"alpha\"\nrepo = \"a2\"\n",
    )
    .unwrap();
    repoman(home.path())
        .args(["list", "--json"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "{}:12:8: project `alpha` is registered twice (first at line 4)",
            path.display()
        )))
        .stderr(predicate::str::contains(
            "hint: a project name is also its sandbox's name",
        ));
    let out = repoman(home.path()).args(["doctor"]).assert().code(3);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("FAIL registry"), "{stdout}");
    assert!(stdout.contains("registered twice"), "{stdout}");
}
