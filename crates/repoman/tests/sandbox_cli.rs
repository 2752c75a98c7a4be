//! Sandboxes end to end against the real Incus daemon: setup, new (uid mapping, .repoman.toml,
//! rollback), list/status JSON, drift detection and repair, exec, lifecycle, update, remove,
//! `--dry-run`, and the error cases (names, malformed files, Incus unreachable).
//!
//! Every test that needs Incus gets its own Incus project (`TestProject`, deleted on drop even
//! when the test fails) and a private HOME whose registry points `[defaults] incus_project` at
//! it. Without Incus these tests print SKIPPED, unless `REPOMAN_TEST_INCUS=require`.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TestLab, TestProject};
use repoman_incus::{DeviceSpec, ExecSpec, ImageSource, InstanceSpec};
use serde_json::Value;

/// A private HOME with repos and a registry pointing at one Incus project.
struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repos: PathBuf,
    project: String,
    lab: Option<(TestLab, TestProject)>,
}

impl Fixture {
    /// With a test Incus project; `None` when Incus is unavailable (skip).
    fn with_incus(prefix: &str) -> Option<Fixture> {
        let lab = TestLab::connect()?;
        let project = lab.project(prefix);
        let mut f = Fixture::without_incus(project.name());
        f.lab = Some((lab, project));
        f.restrict();
        Some(f)
    }

    /// `repoman setup --yes`: the test project becomes the restricted project setup makes, with
    /// this registry's directories (run again after the registry gains a `[[mount_root]]`).
    fn restrict(&self) {
        self.repoman()
            .args(["setup", "--yes", "--no-input"])
            .assert()
            .success();
    }

    /// Without Incus: the registry names a project that is never contacted.
    fn without_incus(project: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let repos = tmp.path().join("repos");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&repos).unwrap();
        let f = Fixture {
            home,
            repos,
            project: project.to_owned(),
            lab: None,
            _tmp: tmp,
        };
        f.write_registry("");
        f
    }

    fn write_registry(&self, extra: &str) {
        let dir = self.home.join(".config/repoman");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("repoman.toml"),
            format!(
                "schema_version = 1\n\n[defaults]\nlocal_repos = \"{}\"\nincus_project = \"{}\"\ndefault_image = \"{TEST_IMAGE_ALIAS}\"\n{extra}",
                self.repos.display(),
                self.project
            ),
        )
        .unwrap();
    }

    /// Append a `[[mount_root]]` to the registry (only the host file allows extra mounts).
    fn allow_mount_root(&self, path: &std::path::Path) {
        let file = self.home.join(".config/repoman/repoman.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            format!("{text}\n[[mount_root]]\npath = \"{}\"\n", path.display()),
        )
        .unwrap();
        if self.lab.is_some() {
            self.restrict();
        }
    }

    /// Trust the repo's `.repoman.toml` as the human (`repoman trust NAME --yes`).
    fn trust(&self, name: &str) {
        self.repoman()
            .args(["trust", name, "--yes"])
            .assert()
            .success();
    }

    fn registry_text(&self) -> String {
        std::fs::read_to_string(self.home.join(".config/repoman/repoman.toml")).unwrap_or_default()
    }

    fn scope(&self) -> &TestProject {
        &self.lab.as_ref().unwrap().1
    }

    fn repoman(&self) -> Command {
        let mut cmd = Command::cargo_bin("repoman").unwrap();
        cmd.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("USER", "tester")
            // Under root (the lab), the host user is SUDO_UID/GID: uid 1000 is `dev` in the
            // busybox test image.
            .env("SUDO_UID", "1000")
            .env("SUDO_GID", "1000")
            .env("SUDO_USER", "dev")
            // `setup` delegates ids in these, never in the system's files (and so never
            // restarts the lab's daemon under the other tests).
            .env("REPOMAN_SUBUID_FILE", self.home.join("subuid"))
            .env("REPOMAN_SUBGID_FILE", self.home.join("subgid"));
        cmd
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let out = self.repoman().arg("--json").args(args).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "`repoman {args:?}` did not print JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, v)
    }

    /// A repo owned by the host user (uid/gid 1000 under root).
    fn repo(&self, name: &str) -> PathBuf {
        let p = self.repos.join(name);
        std::fs::create_dir_all(&p).unwrap();
        if is_root() {
            std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
        }
        p
    }

    fn new_sandbox(&self, name: &str) {
        self.repo(name);
        self.repoman()
            .args(["new", name, "--yes"])
            .assert()
            .success();
    }

    /// Every event type recorded so far, in order.
    fn event_types(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn events(&self) -> Vec<Value> {
        let dir = self.home.join(".local/state/repoman/events");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// What Incus holds in the project: name -> (status, devices, profiles, managed config).
    fn incus_snapshot(&self) -> BTreeMap<String, String> {
        self.scope()
            .list_instances()
            .unwrap()
            .into_iter()
            .map(|i| {
                let cfg: BTreeMap<_, _> = i
                    .config
                    .iter()
                    .filter(|(k, _)| !k.starts_with("volatile."))
                    .collect();
                (
                    i.name.clone(),
                    format!("{} {:?} {:?} {:?}", i.status, i.devices, i.profiles, cfg),
                )
            })
            .collect()
    }
}

fn is_root() -> bool {
    // A directory we just created is owned by our effective uid.
    let d = tempfile::tempdir().unwrap();
    std::fs::metadata(d.path()).unwrap().uid() == 0
}

fn host_uid() -> u32 {
    if is_root() {
        1000
    } else {
        std::fs::metadata(tempfile::tempdir().unwrap().path())
            .unwrap()
            .uid()
    }
}

/// Deletes a project created by `repoman setup` when the test ends, however it ends.
struct ProjectGuard(repoman_incus::Incus, String);

impl Drop for ProjectGuard {
    fn drop(&mut self) {
        let _ = self.0.delete_project_force(&self.1);
    }
}

#[test]
fn setup_twice_then_the_project_runs_a_sandbox() {
    let Some(lab) = TestLab::connect() else {
        return;
    };
    let name = format!("repoman-test-setup-{}-0", std::process::id());
    let _guard = ProjectGuard(lab.incus.clone(), name.clone());
    let f = Fixture::without_incus(&name);
    // A registry that only declares a profile sharing an agent directory into every sandbox
    // (read-only, from a `[[mount_root]]`: the restricted project allows disks from nowhere else).
    let agent = f.home.join("agent");
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::write(
        f.home.join(".config/repoman/repoman.toml"),
        format!(
            "# my estate\n[[mount_root]]\npath = \"{0}\"\n\n[[profile]]\nname = \"share\"\ndescription = \"agent config\"\n[profile.devices.agent]\ntype = \"disk\"\nsource = \"{0}\"\npath = \"/mnt/agent\"\nreadonly = \"true\"\n",
            agent.display()
        ),
    )
    .unwrap();
    // The system's id files as the lab has them: a range for the containers, not the one id.
    let (subuid, subgid) = (f.home.join("subuid"), f.home.join("subgid"));
    for file in [&subuid, &subgid] {
        std::fs::write(file, "root:1000000:1000000000\n").unwrap();
    }
    let backup = f.home.join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let args = [
        "setup",
        "--local-repos",
        f.repos.to_str().unwrap(),
        "--backup-root",
        backup.to_str().unwrap(),
        "--incus-project",
        &name,
        "--image",
        TEST_IMAGE_ALIAS,
        "--profile",
        "share",
    ];
    // An unreachable backup root is refused before anything is created.
    let missing = f.home.join("not-mounted");
    f.repoman()
        .args([
            "setup",
            "--incus-project",
            &name,
            "--backup-root",
            missing.to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("backup_root does not exist"));
    assert!(lab.incus.get_project(&name).unwrap_err().is_not_found());
    // --dry-run shows the id lines and the restrictions, and changes nothing.
    let (code, dry) = f.json(&[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{dry}");
    let dry_steps = dry["steps"].as_array().unwrap();
    assert!(
        dry_steps
            .iter()
            .any(|s| s["step"] == "delegate_id" && s["line"] == "root:1000:1"),
        "{dry}"
    );
    assert_eq!(
        std::fs::read_to_string(&subuid).unwrap(),
        "root:1000000:1000000000\n"
    );
    assert!(lab.incus.get_project(&name).unwrap_err().is_not_found());

    let (code, first) = f.json(&args);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["changed"], true);
    let steps: Vec<&str> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"create_project")
            && steps.contains(&"set_root_disk")
            && steps.contains(&"create_profile")
            && steps.iter().filter(|s| **s == "delegate_id").count() == 2,
        "{steps:?}"
    );
    // Not the system's files, so no daemon restart was planned.
    assert!(!steps.contains(&"restart_incus"), "{steps:?}");
    for file in [&subuid, &subgid] {
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            "root:1000000:1000000000\nroot:1000:1\n"
        );
    }

    let out = f.repoman().args(args).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no changes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, second) = f.json(&["setup"]);
    assert_eq!(second["changed"], false, "{second}");
    assert!(second["steps"].as_array().unwrap().is_empty());

    let project = lab.incus.get_project(&name).unwrap();
    assert_eq!(project.config["features.profiles"], "true");
    assert_eq!(project.config["features.images"], "false");
    // A restricted project: only the estate's directories, only the host user's ids.
    for (k, v) in [
        ("restricted", "true"),
        ("restricted.containers.privilege", "unprivileged"),
        ("restricted.containers.nesting", "block"),
        ("restricted.containers.lowlevel", "block"),
        ("restricted.devices.disk", "allow"),
        ("restricted.idmap.uid", "1000"),
        ("restricted.idmap.gid", "1000"),
        ("restricted.devices.unix-block", "block"),
        ("restricted.devices.unix-char", "block"),
        ("restricted.devices.usb", "block"),
        ("restricted.devices.pci", "block"),
        ("restricted.devices.gpu", "block"),
    ] {
        assert_eq!(project.config.get(k).map(String::as_str), Some(v), "{k}");
    }
    let disk_paths: Vec<&str> = project.config["restricted.devices.disk.paths"]
        .split(',')
        .collect();
    assert!(
        disk_paths.contains(&f.repos.to_str().unwrap())
            && disk_paths.contains(&agent.to_str().unwrap())
            && !disk_paths.contains(&"/"),
        "{disk_paths:?}"
    );
    let profile = lab.incus.project(&name).get_profile("default").unwrap();
    assert_eq!(profile.devices["root"]["pool"], "default");
    let reg = f.registry_text();
    assert!(
        reg.contains(&format!("incus_project = \"{name}\"")) && reg.contains("estate_id"),
        "{reg}"
    );
    assert!(
        f.event_types()
            .contains(&"sandbox.setup.applied".to_owned())
    );

    // The default profile is usable: a sandbox starts in the project.
    f.new_sandbox("first");
    let inst = lab.incus.project(&name).get_instance("first").unwrap();
    assert!(inst.is_running(), "{}", inst.status);
    assert_eq!(inst.profiles, ["default", "share"]);
    let share = lab.incus.project(&name).get_profile("share").unwrap();
    assert_eq!(share.devices["agent"]["path"], "/mnt/agent");
    assert!(
        f.registry_text().contains("# my estate\n[[mount_root]]"),
        "comments survive: {}",
        f.registry_text()
    );

    // What must never happen is refused by the server itself, whatever repoman asks.
    let scope = lab.incus.project(&name);
    let etc = DeviceSpec::disk("/etc", "/mnt/etc").build();
    let err = scope.add_device("first", "etc", etc).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    for (key, value, why) in [
        ("security.privileged", "true", "forbidden"),
        ("security.nesting", "true", "forbidden"),
        ("raw.idmap", "both 0 0", "forbidden"),
        ("raw.lxc", "lxc.apparmor.profile=unconfined", "forbidden"),
    ] {
        let err = scope
            .edit_instance("first", |i| {
                i.config.insert(key.into(), value.into());
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains(why), "{key}={value}: {err}");
    }
    // (The backup root here is a plain directory, not a mount: one problem of its own.)
    let (_, healthy) = f.json(&["status"]);
    assert_eq!(healthy["restrictions"], serde_json::json!([]), "{healthy}");
    assert_eq!(healthy["problems"], 1, "{healthy}");

    // Loosened by hand: `status` reports it and fails, `setup` re-tightens.
    let paths = &lab.incus.get_project(&name).unwrap().config["restricted.devices.disk.paths"];
    lab.incus
        .patch_project_config(
            &name,
            &BTreeMap::from([
                (
                    "restricted.containers.nesting".to_owned(),
                    "allow".to_owned(),
                ),
                (
                    "restricted.devices.disk.paths".to_owned(),
                    format!("{paths},/etc"),
                ),
            ]),
        )
        .unwrap();
    let (code, loose) = f.json(&["status"]);
    assert_eq!(code, 1, "{loose}");
    // One problem for the project (however many keys), one for the backup root.
    assert_eq!(loose["problems"], 2, "{loose}");
    let keys: Vec<&str> = loose["restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["looser"] == true)
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "restricted.containers.nesting",
            "restricted.devices.disk.paths"
        ],
        "{loose}"
    );
    let text = f.repoman().arg("status").output().unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("looser than repoman's") && stdout.contains("repoman setup"),
        "{stdout}"
    );
    let (code, fix) = f.json(&["setup", "--dry-run"]);
    assert_eq!(code, 0, "{fix}");
    assert_eq!(fix["steps"][0]["step"], "restrict_project", "{fix}");
    assert_eq!(
        lab.incus.get_project(&name).unwrap().config["restricted.containers.nesting"],
        "allow"
    );
    f.repoman().args(["setup", "--yes"]).assert().success();
    assert_eq!(
        lab.incus.get_project(&name).unwrap().config["restricted.containers.nesting"],
        "block"
    );
    let (_, again) = f.json(&["status"]);
    assert_eq!(again["restrictions"], serde_json::json!([]), "{again}");
    assert_eq!(again["problems"], 1, "{again}");
}

/// Not root: `setup` changes nothing and prints what to run with sudo (exit 4), before it even
/// asks Incus; `--dry-run` shows the same lines.
#[test]
fn setup_as_a_normal_user_prints_the_id_lines_to_add_with_sudo() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to run repoman as another user");
        return;
    }
    let f = Fixture::without_incus("repoman-never-created");
    for file in ["subuid", "subgid"] {
        std::fs::write(f.home.join(file), "").unwrap();
    }
    // uid 1000 owns the fixture so that it can read its registry.
    let top = f.home.parent().unwrap();
    let st = std::process::Command::new("chown")
        .args(["-R", "1000:1000"])
        .arg(top)
        .status()
        .unwrap();
    assert!(st.success());
    let repoman = assert_cmd::cargo::cargo_bin("repoman");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--"])
        .arg(&repoman)
        .args(["setup", "--local-repos"])
        .arg(&f.repos)
        .arg("--yes")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &f.home)
        .env("USER", "dev")
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("REPOMAN_SUBUID_FILE", f.home.join("subuid"))
        .env("REPOMAN_SUBGID_FILE", f.home.join("subgid"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    for want in [
        "only root can change those files",
        &format!(
            "echo 'root:1000:1' | sudo tee -a {} >/dev/null",
            f.home.join("subuid").display()
        ),
        &format!(
            "echo 'root:1000:1' | sudo tee -a {} >/dev/null",
            f.home.join("subgid").display()
        ),
        "then `repoman setup` again",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert_eq!(std::fs::read_to_string(f.home.join("subuid")).unwrap(), "");
}

/// Unmounts (lazily) what a test mounted, however the test ends.
struct Unmount(Vec<PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(p)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn mount_tmpfs(source: &str, at: &Path) {
    std::fs::create_dir_all(at).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", source])
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs at {}", at.display());
}

/// `setup` records the mount holding the backup root (fstype, mount point, source), so a share
/// that is not mounted is caught even when the root then lies on another mount of the same
/// type (a tmpfs inside a tmpfs); a later setup never silently records the enclosing mount.
#[test]
fn setup_records_the_backup_mount_and_a_nested_unmount_is_caught() {
    let Some(lab) = TestLab::connect() else {
        return;
    };
    if !is_root() {
        panic!("mounting needs root");
    }
    let name = format!("repoman-test-setupmnt-{}-0", std::process::id());
    let _guard = ProjectGuard(lab.incus.clone(), name.clone());
    let f = Fixture::without_incus(&name);
    let outer = f.home.join("srv");
    let backup = outer.join("backup");
    let _unmount = Unmount(vec![outer.clone(), backup.clone()]);
    mount_tmpfs("repoman-test-outer", &outer);
    mount_tmpfs("repoman-test-share", &backup);
    f.repoman()
        .args(["setup", "--incus-project", &name, "--local-repos"])
        .arg(&f.repos)
        .arg("--backup-root")
        .arg(&backup)
        .arg("--yes")
        .assert()
        .success();
    let reg = f.registry_text();
    for want in [
        "backup_fstype = \"tmpfs\"".to_owned(),
        format!("backup_mount_point = \"{}\"", backup.display()),
        "backup_device = \"repoman-test-share\"".to_owned(),
    ] {
        assert!(reg.contains(&want), "missing {want} in:\n{reg}");
    }
    let (_, status) = f.json(&["status"]);
    assert_eq!(status["backup_root"]["reachable"], true, "{status}");

    let st = std::process::Command::new("umount")
        .arg(&backup)
        .status()
        .unwrap();
    assert!(st.success());
    // Now the root is a bare directory on the outer tmpfs: same fstype, another mount point.
    let (code, status) = f.json(&["status"]);
    assert_eq!(code, 1, "{status}");
    assert_eq!(status["backup_root"]["reachable"], false, "{status}");
    let error = status["backup_root"]["error"].as_str().unwrap();
    assert!(
        error.contains("recorded as mounted at") && error.contains(backup.to_str().unwrap()),
        "{error}"
    );
    // setup again (the share still unmounted) keeps the recorded mount and says why.
    let out = f.repoman().args(["setup", "--yes"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("another mount is recorded"), "{stderr}");
    assert_eq!(f.registry_text(), reg);
}

/// An estate made before repoman restricted its project: `status` says so in one line and fails,
/// `setup` restricts the project, and the sandbox made the old way still restarts in it.
#[test]
fn an_unrestricted_project_is_reported_and_setup_restricts_it() {
    let Some(lab) = TestLab::connect() else {
        return;
    };
    let project = lab.project("unrestricted");
    let mut f = Fixture::without_incus(project.name());
    f.lab = Some((lab, project));
    f.new_sandbox("old");
    let out = f.repoman().arg("status").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the Incus project is not restricted")
            && stdout.matches("problem:").count() == 1,
        "{stdout}"
    );
    let (_, dry) = f.json(&["setup", "--dry-run"]);
    let step = dry["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "restrict_project")
        .unwrap_or_else(|| panic!("no restrict_project step: {dry}"));
    assert_eq!(step["config"]["restricted"], "true", "{dry}");
    f.repoman().args(["setup", "--yes"]).assert().success();
    let (code, status) = f.json(&["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["restrictions"], serde_json::json!([]));
    f.repoman()
        .args(["restart", "old", "--force"])
        .assert()
        .success();
    f.repoman()
        .args(["exec", "old", "--", "id", "-u"])
        .assert()
        .success();
    // The features setup relies on survive the restriction (a PATCH would have dropped them).
    let config = f
        .lab
        .as_ref()
        .unwrap()
        .0
        .incus
        .get_project(f.scope().name())
        .unwrap()
        .config;
    assert_eq!(config["features.profiles"], "true", "{config:?}");
}

#[test]
fn setup_refuses_the_restricted_per_user_socket() {
    let Some(_lab) = TestLab::connect() else {
        return;
    };
    let f = Fixture::without_incus("repoman-never-created");
    // The per-user socket is recognised by its name; point one at the daemon.
    let sock_dir = f.home.join("sock");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let real = ["/var/lib/incus/unix.socket", "/run/incus/unix.socket"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(real, sock_dir.join("unix.socket.user")).unwrap();
    let out = f
        .repoman()
        .env("INCUS_SOCKET", sock_dir.join("unix.socket.user"))
        .args(["setup", "--incus-project", "repoman-never-created"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("restricted") && stderr.contains("incus-admin"),
        "{stderr}"
    );
}

#[test]
fn new_maps_the_host_user_and_applies_repoman_toml() {
    let Some(f) = Fixture::with_incus("new") else {
        return;
    };
    let repo = f.repo("app");
    std::fs::write(repo.join("host.txt"), "from the host\n").unwrap();
    let extra = f.home.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("data.txt"), "extra mount\n").unwrap();
    std::fs::write(
        repo.join(".repoman.toml"),
        format!("[[mount]]\nsource = \"{}\"\npath = \"/mnt/extra\"\nreadonly = true\n\n[env]\nGREETING = \"hello sandbox\"\n", extra.display()),
    )
    .unwrap();
    // Untrusted, the file is refused without a terminal (--yes never trusts it).
    f.repoman()
        .args(["new", "app", "--yes"])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("repoman trust app"));
    f.allow_mount_root(&extra);
    f.trust("app");
    f.repoman().args(["new", "app", "--yes"]).assert().success();

    let inst = f.scope().get_instance("app").unwrap();
    assert!(inst.is_running());
    assert_eq!(inst.user_config("repoman.project"), Some("app"));
    assert_eq!(
        inst.user_config("repoman.repo"),
        Some(repo.to_str().unwrap())
    );
    assert!(inst.user_config("repoman.estate").is_some());
    // The user's ids are mapped with raw.idmap; the repo is a plain (unshifted) bind mount.
    assert!(
        !inst.devices["repo"].contains_key("shift"),
        "{:?}",
        inst.devices["repo"]
    );
    assert_eq!(
        inst.config.get("raw.idmap").map(String::as_str),
        Some("both 1000 1000")
    );
    assert_eq!(inst.devices["repo"]["path"], "/home/dev/app");

    let out = f
        .repoman()
        .args(["exec", "app", "--", "sh", "-c", "id -u; id -g; pwd; echo $HOME; echo $GREETING; cat host.txt; cat /mnt/extra/data.txt; echo inside > made-inside.txt"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uid = host_uid().to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..7],
        [
            uid.as_str(),
            uid.as_str(),
            "/home/dev/app",
            "/home/dev",
            "hello sandbox",
            "from the host",
            "extra mount"
        ],
        "{stdout}"
    );
    let made = std::fs::metadata(repo.join("made-inside.txt")).unwrap();
    assert_eq!((made.uid(), made.gid()), (host_uid(), host_uid()));
    assert_eq!(
        std::fs::read_to_string(repo.join("made-inside.txt")).unwrap(),
        "inside\n"
    );

    // Root inside is not root on the host: a file it creates and chowns to 0:0, and a setuid
    // binary it plants, belong to an unprivileged high uid on the host.
    let out = f
        .scope()
        .exec(
            "app",
            &ExecSpec::new([
                "sh",
                "-c",
                "cd /home/dev/app && touch by-root && chown 0:0 by-root && cp /bin/busybox suid && chown 0:0 suid && chmod 4755 suid",
            ]),
        )
        .unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["by-root", "suid"] {
        let m = std::fs::metadata(repo.join(name)).unwrap();
        assert_ne!(m.uid(), 0, "{name} is owned by host root");
        assert_ne!(m.gid(), 0, "{name} has host group root");
        assert_ne!(
            m.uid(),
            host_uid(),
            "container root must not be the user either"
        );
    }

    // The extra mount is read-only inside.
    f.repoman()
        .args(["exec", "app", "--", "touch", "/mnt/extra/x"])
        .assert()
        .failure();
    let types = f.event_types();
    assert!(
        types.contains(&"sandbox.created".to_owned())
            && types.contains(&"project.registered".to_owned()),
        "{types:?}"
    );

    // A repo directory `new` creates belongs to the host user, who can write in it inside.
    f.repoman()
        .args(["new", "fresh", "--yes"])
        .assert()
        .success();
    let fresh = std::fs::metadata(f.repos.join("fresh")).unwrap();
    assert_eq!((fresh.uid(), fresh.gid()), (host_uid(), host_uid()));
    f.repoman()
        .args(["exec", "fresh", "--", "touch", "written-inside"])
        .assert()
        .success();
    assert!(f.repos.join("fresh/written-inside").exists());
}

#[test]
fn exec_exits_with_the_command_status_and_lifecycle_commands_work() {
    let Some(f) = Fixture::with_incus("exec") else {
        return;
    };
    f.new_sandbox("box");
    f.repoman()
        .args([
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ])
        .assert()
        .code(7)
        .stdout("out\n");
    // `shell` with a command and no terminal: same user, directory and HOME.
    f.repoman()
        .args(["shell", "box", "--", "sh", "-c", "id -u; pwd; echo $HOME"])
        .assert()
        .success()
        .stdout(format!("{}\n/home/dev/box\n/home/dev\n", host_uid()));
    f.repoman()
        .args(["shell", "box", "--", "false"])
        .assert()
        .code(1);
    // The child's own status is passed through, not flattened to 1.
    f.repoman()
        .args(["shell", "box", "--", "sh", "-c", "exit 7"])
        .assert()
        .code(7);
    f.repoman()
        .args(["stop", "box", "--force"])
        .assert()
        .success();
    assert_eq!(f.scope().get_instance("box").unwrap().status, "Stopped");
    // Not on a terminal: starting needs --yes.
    f.repoman()
        .args(["exec", "box", "--", "true"])
        .assert()
        .code(2);
    f.repoman().args(["start", "box"]).assert().success();
    assert!(f.scope().get_instance("box").unwrap().is_running());
    f.repoman()
        .args(["restart", "box", "--force"])
        .assert()
        .success();
    f.repoman()
        .args(["start", "box"])
        .assert()
        .success()
        .stderr(predicates::str::contains("already running"));
    let types = f.event_types();
    for t in ["sandbox.stopped", "sandbox.started", "sandbox.restarted"] {
        assert!(types.contains(&t.to_owned()), "{t} missing from {types:?}");
    }
}

#[test]
fn list_and_status_json_shapes() {
    let Some(f) = Fixture::with_incus("list") else {
        return;
    };
    f.new_sandbox("alpha");
    f.repoman()
        .args(["new", "beta", "--no-container", "--yes"])
        .assert()
        .success();
    let (code, list) = f.json(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(list["incus_project"], f.project.as_str());
    assert_eq!(list["project_exists"], true);
    let rows = list["sandboxes"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let alpha = &rows[0];
    for key in [
        "name",
        "registered",
        "container",
        "state",
        "ipv4",
        "repo",
        "repo_path",
        "image",
        "last_sync",
        "drift",
    ] {
        assert!(alpha.get(key).is_some(), "list row lacks {key}: {alpha}");
    }
    assert_eq!(alpha["state"], "Running");
    assert_eq!(alpha["image"], TEST_IMAGE_ALIAS);
    assert_eq!(alpha["drift"], Value::Null);
    assert_eq!(rows[1]["state"], "none");
    assert_eq!(rows[1]["container"], false);

    let (code, status) = f.json(&["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["problems"], 0);
    let s = &status["sandboxes"][0];
    assert_eq!(s["name"], "alpha");
    assert_eq!(s["mounts"][0]["device"], "repo");
    assert_eq!(s["mounts"][0]["present"], true);
    assert_eq!(s["mounts"][0]["source_exists"], true);

    // A bind-mount source that disappears from the host is a problem `status` reports (exit 1).
    let cache = f.home.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    f.repo("gamma");
    std::fs::write(
        f.repos.join("gamma/.repoman.toml"),
        format!(
            "[[mount]]\nsource = \"{}\"\npath = \"/cache\"\n",
            cache.display()
        ),
    )
    .unwrap();
    f.allow_mount_root(&cache);
    f.trust("gamma");
    f.repoman()
        .args(["new", "gamma", "--yes"])
        .assert()
        .success();
    std::fs::remove_dir(&cache).unwrap();
    let (code, status) = f.json(&["status", "gamma"]);
    assert_eq!(code, 1, "{status}");
    let mounts = status["sandboxes"][0]["mounts"].as_array().unwrap();
    let gone = mounts.iter().find(|m| m["path"] == "/cache").unwrap();
    assert_eq!(
        (&gone["present"], &gone["source_exists"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert!(
        status["sandboxes"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{status}"
    );
    f.repoman()
        .args(["remove", "gamma", "--yes"])
        .assert()
        .success();

    // A later `new` adds the sandbox to the --no-container project.
    f.repo("beta");
    f.repoman()
        .args(["new", "beta", "--profile", "x", "--yes"])
        .assert()
        .code(2);
    f.repoman()
        .args(["new", "beta", "--image", TEST_IMAGE_ALIAS, "--yes"])
        .assert()
        .success();
    assert!(f.scope().get_instance("beta").unwrap().is_running());
    let text = f.registry_text();
    assert!(!text.contains("container = false"), "{text}");
    assert!(
        text.contains(&format!("image = \"{TEST_IMAGE_ALIAS}\"")),
        "{text}"
    );
    let (code, status) = f.json(&["status"]);
    assert_eq!(
        (code, &status["problems"]),
        (0, &Value::from(0)),
        "{status}"
    );
}

#[test]
fn status_detects_missing_orphan_and_config_drift_and_repairs_each() {
    let Some(f) = Fixture::with_incus("drift") else {
        return;
    };
    f.new_sandbox("keep");
    f.new_sandbox("gone");
    // Behind repoman's back: delete one, remove a device from another, create a stray one.
    f.scope().stop("gone", true).unwrap();
    f.scope().delete_instance("gone").unwrap();
    f.scope().remove_device("keep", "repo").unwrap();
    // (From inside local_repos: the restricted project allows disks from nowhere else.)
    let scratch = f.repo("scratch");
    let stray = InstanceSpec::new("stray", ImageSource::alias(TEST_IMAGE_ALIAS))
        .device("scratch", DeviceSpec::disk(&scratch, "/scratch").build());
    f.scope().create_instance(&stray).unwrap();

    let (code, status) = f.json(&["status"]);
    assert_eq!(code, 1, "{status}");
    let kinds: BTreeMap<String, String> = status["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds.get("gone").map(String::as_str),
        Some("missing"),
        "{kinds:?}"
    );
    assert_eq!(kinds.get("stray").map(String::as_str), Some("orphan"));
    assert_eq!(kinds.get("keep").map(String::as_str), Some("config"));
    let keep = status["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "keep")
        .unwrap();
    assert_eq!(keep["changes"][0]["kind"], "add_device");
    assert_eq!(keep["changes"][0]["device"], "repo");

    // Every other command warns about the drift it finds.
    f.repoman()
        .args(["list"])
        .assert()
        .success()
        .stderr(predicates::str::contains("gone: missing"));

    // Read-only without --repair; a repair without a terminal needs --yes.
    let before = f.incus_snapshot();
    f.repoman().args(["status", "--repair"]).assert().code(2);
    f.repoman()
        .args(["status", "--repair", "--dry-run"])
        .assert()
        .code(1);
    assert_eq!(before, f.incus_snapshot());

    let (code, repaired) = f.json(&["status", "--repair", "--yes"]);
    assert_eq!(
        code, 1,
        "the adopted orphan still differs from its desired state: {repaired}"
    );
    let actions: Vec<(String, String, bool)> = repaired["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["applied"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("gone".into(), "recreate".into(), true)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("stray".into(), "adopt".into(), true)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("keep".into(), "reapply".into(), true)),
        "{actions:?}"
    );
    assert!(f.scope().get_instance("gone").unwrap().is_running());
    let keep = f.scope().get_instance("keep").unwrap();
    assert!(
        keep.devices
            .get("repo")
            .is_some_and(|d| !d.contains_key("shift")),
        "{:?}",
        keep.devices
    );
    assert!(f.registry_text().contains("name = \"stray\""));
    let repairs = f
        .events()
        .into_iter()
        .filter(|e| e["type"] == "sandbox.repaired")
        .count();
    assert_eq!(repairs, 3);

    // The adopted container's config drift is re-applied by `update`; its image stays reported.
    std::fs::create_dir_all(f.repos.join("stray")).unwrap();
    f.repoman()
        .args(["update", "stray", "--yes"])
        .assert()
        .success();
    let (_, after) = f.json(&["status", "stray"]);
    let changes = after["drift"][0]["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["kind"] == "image"), "{after}");

    // Destroy the orphan instead, this time.
    let stray2 = InstanceSpec::new("stray2", ImageSource::alias(TEST_IMAGE_ALIAS));
    f.scope().create_instance(&stray2).unwrap();
    // Exit 1: the adopted `stray` still reports its image, which only a rebuild changes.
    f.repoman()
        .args([
            "status",
            "--repair",
            "--yes",
            "--orphan",
            "destroy",
            "--missing",
            "skip",
        ])
        .assert()
        .code(1);
    assert!(f.scope().find_instance("stray2").unwrap().is_none());
}

#[test]
fn update_shows_the_diff_and_dry_run_changes_nothing() {
    let Some(f) = Fixture::with_incus("update") else {
        return;
    };
    f.new_sandbox("app");
    std::fs::write(f.repos.join("app/.repoman.toml"), "[env]\nMODE = \"dev\"\n").unwrap();
    // Not trusted yet: nothing of it is applied, and update says so.
    let (code, plan) = f.json(&["update", "app", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(plan["changes"], serde_json::json!([]), "{plan}");
    assert_eq!(plan["config_trust"][0]["status"], "untrusted", "{plan}");
    f.trust("app");
    let before = (f.incus_snapshot(), f.registry_text());
    let (code, plan) = f.json(&["update", "app", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(plan["changes"][0]["kind"], "set_config");
    assert_eq!(plan["changes"][0]["key"], "environment.MODE");
    assert_eq!(plan["applied"], false);
    f.repoman()
        .args(["new", "other", "--dry-run", "--yes"])
        .assert()
        .success();
    f.repoman()
        .args(["remove", "app", "--dry-run"])
        .assert()
        .success();
    f.repoman()
        .args(["stop", "app", "--dry-run"])
        .assert()
        .success();
    assert_eq!(
        before,
        (f.incus_snapshot(), f.registry_text()),
        "a dry run changed something"
    );
    assert!(!f.repos.join("other").exists());

    f.repoman().args(["update", "app"]).assert().success();
    f.repoman()
        .args(["exec", "app", "--", "sh", "-c", "echo $MODE"])
        .assert()
        .success()
        .stdout("dev\n");
    assert!(f.event_types().contains(&"sandbox.updated".to_owned()));

    // An image change is reported, and only --rebuild applies it: the root filesystem is
    // replaced, the repo is not. The same image by fingerprint is a different reference.
    let fingerprint = f
        .lab
        .as_ref()
        .unwrap()
        .0
        .incus
        .project("default")
        .resolve_image_alias(TEST_IMAGE_ALIAS)
        .unwrap();
    std::fs::write(
        f.repos.join("app/.repoman.toml"),
        format!("image = \"{fingerprint}\"\n[env]\nMODE = \"dev\"\n"),
    )
    .unwrap();
    f.trust("app");
    std::fs::write(f.repos.join("app/keep.txt"), "repo data").unwrap();
    f.repoman()
        .args(["exec", "app", "--", "touch", "/tmp/rootfs-marker"])
        .assert()
        .success();
    let (code, plan) = f.json(&["update", "app"]);
    assert_eq!((code, &plan["applied"]), (0, &Value::Bool(false)), "{plan}");
    assert_eq!(plan["changes"][0]["kind"], "image");
    f.repoman()
        .args(["update", "app", "--rebuild"])
        .assert()
        .code(2);
    f.repoman()
        .args(["update", "app", "--rebuild", "--yes"])
        .assert()
        .success();
    let inst = f.scope().get_instance("app").unwrap();
    assert!(inst.is_running());
    assert_eq!(
        inst.user_config("repoman.image"),
        Some(fingerprint.as_str())
    );
    f.repoman()
        .args(["exec", "app", "--", "test", "-e", "/tmp/rootfs-marker"])
        .assert()
        .code(1);
    f.repoman()
        .args(["exec", "app", "--", "cat", "keep.txt"])
        .assert()
        .success()
        .stdout("repo data");
    let (code, status) = f.json(&["status", "app"]);
    assert_eq!(code, 0, "{status}");
    assert!(f.event_types().contains(&"sandbox.rebuilt".to_owned()));
}

#[test]
fn remove_keeps_the_repo_and_needs_confirmation() {
    let Some(f) = Fixture::with_incus("remove") else {
        return;
    };
    f.new_sandbox("app");
    std::fs::write(f.repos.join("app/work.txt"), "precious").unwrap();
    // A policy rule blocks removal: exit 3, nothing changes, the block is recorded.
    let registry = f.home.join(".config/repoman/repoman.toml");
    let original = f.registry_text();
    std::fs::write(
        &registry,
        format!("{original}\n[[policy.rule]]\noperation = \"sandbox.remove\"\neffect = \"deny\"\nreason = \"keep it\"\n"),
    )
    .unwrap();
    f.repoman()
        .args(["remove", "app", "--yes"])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("keep it"));
    assert!(f.scope().find_instance("app").unwrap().is_some());
    let types = f.event_types();
    assert!(
        types.contains(&"sandbox.remove.plan.blocked".to_owned()),
        "{types:?}"
    );
    std::fs::write(&registry, original).unwrap();
    f.repoman().args(["remove", "app"]).assert().code(2);
    assert!(f.scope().find_instance("app").unwrap().is_some());
    f.repoman()
        .args(["remove", "app", "--yes"])
        .assert()
        .success();
    assert!(f.scope().find_instance("app").unwrap().is_none());
    assert_eq!(
        std::fs::read_to_string(f.repos.join("app/work.txt")).unwrap(),
        "precious"
    );
    assert!(!f.registry_text().contains("name = \"app\""));

    f.new_sandbox("kept");
    f.repoman()
        .args(["remove", "kept", "--keep-repo", "--yes"])
        .assert()
        .success();
    assert!(f.scope().find_instance("kept").unwrap().is_none());
    assert!(f.registry_text().contains("container = false"));
    let types = f.event_types();
    assert!(
        types.contains(&"sandbox.removed".to_owned())
            && types.contains(&"project.unregistered".to_owned())
    );
}

#[test]
fn a_failure_mid_new_rolls_back_everything() {
    let Some(f) = Fixture::with_incus("rollback") else {
        return;
    };
    for step in ["mkdir", "create", "start", "register"] {
        let name = format!("rb-{step}");
        // `mkdir`: the repo does not exist, so `new` creates it (and must remove it again).
        if step != "mkdir" {
            f.repo(&name);
        }
        let before = f.registry_text();
        let out = f
            .repoman()
            .env("REPOMAN_TEST_FAIL_AFTER", step)
            .args(["new", &name, "--yes"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("failed at step `{step}`")) && stderr.contains("rolled back"),
            "{stderr}"
        );
        assert!(
            f.scope().find_instance(&name).unwrap().is_none(),
            "orphan left after failing at {step}"
        );
        assert!(
            !f.registry_text().contains(&name),
            "registry entry left after failing at {step}"
        );
        if step != "register" {
            assert_eq!(before, f.registry_text());
        }
        // The repo is removed only if this run created it (and it is still empty).
        assert_eq!(
            f.repos.join(&name).exists(),
            step != "mkdir",
            "repo dir after failing at {step}"
        );
        let ev = f
            .events()
            .into_iter()
            .rev()
            .find(|e| e["type"] == "sandbox.create.rolled_back")
            .unwrap();
        assert_eq!(ev["object"], format!("sandbox:{name}"));
        assert_eq!(ev["data"]["step"], step);
        assert!(
            ev["data"]["undone"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["ok"] == true),
            "{ev}"
        );
    }
    // `--no-container`: when the event cannot be recorded after the registry was written, the
    // entry (and the repo dir this run made) is taken out again, so log and registry agree.
    let out = f
        .repoman()
        .env("REPOMAN_TEST_FAIL_AFTER", "register")
        .args(["new", "plain-rb", "--no-container", "--yes"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !f.registry_text().contains("plain-rb"),
        "{}",
        f.registry_text()
    );
    assert!(!f.repos.join("plain-rb").exists());
    assert!(
        !f.events()
            .iter()
            .any(|e| e["type"] == "project.registered" && e["object"] == "project:plain-rb")
    );
    // A bad extra mount source is refused before anything is created.
    let repo = f.repo("badmount");
    std::fs::write(
        repo.join(".repoman.toml"),
        "[[mount]]\nsource = \"/does/not/exist\"\npath = \"/x\"\n",
    )
    .unwrap();
    f.trust("badmount");
    f.repoman()
        .args(["new", "badmount", "--yes"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("/does/not/exist"));
    assert!(f.scope().find_instance("badmount").unwrap().is_none());
}

#[test]
fn invalid_names_and_dirnames_are_usage_errors() {
    let f = Fixture::without_incus("unused");
    let long = "a".repeat(64);
    for bad in ["../x", "UPPER", long.as_str(), "-x", "", "héllo"] {
        f.repoman()
            .args(["new", "--yes", "--", bad])
            .assert()
            .code(2)
            .stderr(predicates::str::contains("project name"));
    }
    f.repoman()
        .args(["new", "ok", "--repo", "a/b", "--yes"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("single path component"));
}

#[test]
fn trust_shows_the_file_then_the_diff_and_records_a_human_event() {
    let f = Fixture::without_incus("unused");
    let repo = f.repo("app");
    let out = f
        .repoman()
        .args(["trust", "app", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to trust"));

    std::fs::write(repo.join(".repoman.toml"), "[env]\nA = \"1\"\n").unwrap();
    let (code, v) = f.json(&["trust", "app", "--dry-run"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["status"], &v["trusted"]),
        (&"untrusted".into(), &false.into())
    );
    assert!(!f.event_types().contains(&"config.trusted".to_owned()));
    // No terminal and no --yes: the confirmation cannot be given.
    f.repoman().args(["trust", "app"]).assert().code(2);

    let (code, v) = f.json(&["trust", "app", "--yes"]);
    assert_eq!((code, &v["trusted"]), (0, &true.into()), "{v}");
    let hash = v["hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("blake3:"), "{hash}");
    let (_, v) = f.json(&["trust", "app", "--yes"]);
    assert_eq!(v["status"], "trusted");
    assert_eq!(
        f.event_types()
            .iter()
            .filter(|t| *t == "config.trusted")
            .count(),
        1,
        "trusting the same bytes again records nothing"
    );

    std::fs::write(repo.join(".repoman.toml"), "[env]\nA = \"2\"\n").unwrap();
    let out = f
        .repoman()
        .args(["trust", "app", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("changed since trusted"), "{stderr}");
    assert!(
        stderr.contains("-A = \"1\"") && stderr.contains("+A = \"2\""),
        "{stderr}"
    );
    let (_, v) = f.json(&["trust", "app", "--yes"]);
    assert_eq!(v["trusted_hash"], hash.as_str());
    let ev: Vec<Value> = f
        .events()
        .into_iter()
        .filter(|e| e["type"] == "config.trusted")
        .collect();
    assert_eq!(ev.len(), 2);
    assert!(
        ev[1]["actor"].as_str().unwrap().starts_with("human:"),
        "{}",
        ev[1]
    );
    assert_eq!(ev[1]["data"]["previous_hash"], hash.as_str());
    assert_eq!(ev[1]["data"]["content"], "[env]\nA = \"2\"\n");
}

#[test]
fn malformed_repoman_toml_names_file_line_and_column() {
    let f = Fixture::without_incus("unused");
    let repo = f.repo("app");
    std::fs::write(repo.join(".repoman.toml"), "image = \"x\"\n[env]\nFOO = \n").unwrap();
    let out = f.repoman().args(["new", "app", "--yes"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", repo.join(".repoman.toml").display())),
        "{stderr}"
    );
    assert!(!f.registry_text().contains("[[project]]"));
}

#[test]
fn unreachable_incus_exits_4_with_a_hint() {
    let f = Fixture::without_incus("unused");
    // A project with a sandbox: `list` needs Incus for it.
    f.write_registry("\n[[project]]\nname = \"boxed\"\nrepo = \"boxed\"\n");
    for args in [
        &["list"][..],
        &["status"],
        &["setup"],
        &["exec", "x", "--", "true"],
    ] {
        f.repoman()
            .env("INCUS_SOCKET", f.home.join("no-such.socket"))
            .args(args)
            .assert()
            .code(4)
            .stderr(predicates::str::contains("hint:"))
            .stderr(predicates::str::contains("no-such.socket"));
    }
}

#[test]
fn a_hung_incus_socket_exits_4_with_a_hint() {
    // A socket that accepts connections and never answers (a hung incusd).
    let f = Fixture::without_incus("unused");
    f.write_registry("\n[[project]]\nname = \"boxed\"\nrepo = \"boxed\"\n");
    let sock = f.home.join("hung.socket");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    for args in [&["list"][..], &["status"], &["exec", "boxed", "--", "true"]] {
        let out = f
            .repoman()
            .env("INCUS_SOCKET", &sock)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no answer from Incus"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("hint:") && stderr.contains("hung"),
            "{stderr}"
        );
    }
}

#[test]
fn list_works_without_incus_when_no_project_has_a_sandbox() {
    let f = Fixture::without_incus("unused");
    f.write_registry("\n[[project]]\nname = \"plain\"\nrepo = \"plain\"\ncontainer = false\n");
    let out = f
        .repoman()
        .env("INCUS_SOCKET", f.home.join("no-such.socket"))
        .args(["list", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sandboxes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["sandboxes"][0]["name"], "plain");
    assert_eq!(v["sandboxes"][0]["state"], "none");
    assert_eq!(v["sandboxes"][0]["container"], false);
    assert!(
        v["sandboxes"][0]["repo_path"]
            .as_str()
            .unwrap()
            .ends_with("/plain"),
        "{v}"
    );
    // The table too, with a warning that orphans could not be looked for.
    f.repoman()
        .env("INCUS_SOCKET", f.home.join("no-such.socket"))
        .arg("list")
        .assert()
        .success()
        .stdout(predicates::str::contains("plain"))
        .stderr(predicates::str::contains("registry alone is listed"));
}

#[test]
fn tracing_lines_carry_no_ansi_escapes_unless_colour_is_asked_for() {
    let f = Fixture::without_incus("unused");
    let run = |color: &str| {
        let out = f
            .repoman()
            .env("INCUS_SOCKET", f.home.join("no-such.socket"))
            .env("REPOMAN_LOG", "trace")
            .args(["--color", color, "status"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // stderr is a pipe here: `auto` and `never` mean no colour.
    for color in ["never", "auto"] {
        let stderr = run(color);
        assert!(stderr.contains("TRACE"), "no tracing line: {stderr}");
        assert!(!stderr.contains('\x1b'), "--color {color}: {stderr:?}");
    }
    assert!(run("always").contains('\x1b'));
}

#[test]
fn shell_and_exec_never_print_the_incus_first_run_banner() {
    let Some(f) = Fixture::with_incus("banner") else {
        return;
    };
    f.new_sandbox("b1");
    // The private HOME has no ~/.config/incus: a bare `incus exec` would print its banner.
    assert!(!f.home.join(".config/incus").exists());
    f.repoman()
        .args(["exec", "b1", "--", "sh", "-c", "echo err >&2"])
        .assert()
        .success()
        .stderr("err\n");
    f.repoman()
        .args(["shell", "b1", "--", "sh", "-c", "echo err >&2"])
        .assert()
        .success()
        .stderr("err\n");
    assert!(!f.home.join(".config/incus").exists());
}

/// The lab's managed bridge without addresses (`scripts/incus-lab`).
const LAB_BRIDGE: &str = "repomanbr0";

fn incus_cli(project: &str, args: &[&str]) {
    let out = std::process::Command::new("incus")
        .arg("--force-local")
        .args(["--project", project])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "incus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn list_shows_the_ipv4_of_a_sandbox_on_the_labs_bridge() {
    let Some(f) = Fixture::with_incus("bridge") else {
        return;
    };
    let bridge = std::process::Command::new("incus")
        .args(["--force-local", "network", "show", LAB_BRIDGE])
        .output()
        .unwrap();
    assert!(
        bridge.status.success(),
        "the lab has no bridge `{LAB_BRIDGE}`: run scripts/incus-lab"
    );
    // A profile with a NIC on the bridge; `lan` gets it, `solo` has no NIC.
    incus_cli(&f.project, &["profile", "create", "lan"]);
    incus_cli(
        &f.project,
        &[
            "profile",
            "device",
            "add",
            "lan",
            "eth0",
            "nic",
            "network=repomanbr0",
            "name=eth0",
        ],
    );
    f.repo("lan");
    f.repoman()
        .args(["new", "lan", "--profile", "lan", "--yes"])
        .assert()
        .success();
    f.new_sandbox("solo");
    // No DHCP on the bridge: give the interface an address from inside, as root.
    incus_cli(
        &f.project,
        &[
            "exec",
            "lan",
            "--",
            "sh",
            "-c",
            "ip link set eth0 up && ip addr add 10.77.0.2/24 dev eth0",
        ],
    );
    let (code, list) = f.json(&["list"]);
    assert_eq!(code, 0, "{list}");
    let row = |name: &str| {
        list["sandboxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing: {list}"))
    };
    let lan = row("lan");
    assert_eq!(lan["state"], "Running", "{lan}");
    assert_eq!(lan["ipv4"], serde_json::json!(["10.77.0.2"]), "{lan}");
    assert_eq!(lan["drift"], Value::Null, "{lan}");
    assert_eq!(row("solo")["ipv4"], serde_json::json!([]));
    f.repoman()
        .arg("list")
        .assert()
        .success()
        .stdout(predicates::str::contains("10.77.0.2"));
}

/// Run `repoman ARGS` on a pseudo-terminal (util-linux `script`), typing `input`; returns the
/// terminal transcript once repoman exits. stdin stays open until then, as a user's would.
fn on_a_terminal(f: &Fixture, args: &[&str], input: &str) -> (i32, String) {
    use std::io::{Read, Write};
    let bin = assert_cmd::cargo::cargo_bin("repoman");
    let mut line = vec![bin.display().to_string()];
    line.extend(args.iter().map(|a| a.to_string()));
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &f.home)
        .env("XDG_RUNTIME_DIR", f.home.join("run"))
        .env("TERM", "xterm")
        .env("USER", "tester")
        .env("SUDO_UID", "1000")
        .env("SUDO_GID", "1000")
        .env("SUDO_USER", "dev")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` is installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    (status.code().unwrap_or(-1), out.replace('\r', ""))
}

#[test]
fn the_wizard_asks_again_after_an_invalid_name() {
    let f = Fixture::without_incus("unused");
    f.repo("good");
    let (code, transcript) = on_a_terminal(&f, &["new", "--no-container"], "Bad_Name\rgood\r");
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.contains("uses uppercase 'B'"), "{transcript}");
    assert!(
        transcript.matches("Project name").count() >= 2,
        "{transcript}"
    );
    assert!(f.registry_text().contains("name = \"good\""));
}

#[test]
fn wizard_answers_and_flags_take_the_same_path() {
    let Some(lab) = TestLab::connect() else {
        return;
    };
    let (a, b) = (
        format!("repoman-test-wiza-{}-0", std::process::id()),
        format!("repoman-test-wizb-{}-0", std::process::id()),
    );
    let _ga = ProjectGuard(lab.incus.clone(), a.clone());
    let _gb = ProjectGuard(lab.incus.clone(), b.clone());
    let wizard = Fixture::without_incus(&a);
    let flags = Fixture::without_incus(&b);
    for f in [&wizard, &flags] {
        std::fs::remove_file(f.home.join(".config/repoman/repoman.toml")).unwrap();
    }
    // Answers: working copies, no backup root (empty), the image.
    let answers = format!("{}\r\r{TEST_IMAGE_ALIAS}\r", wizard.repos.display());
    let (code, transcript) = on_a_terminal(&wizard, &["setup", "--incus-project", &a], &answers);
    assert_eq!(code, 0, "{transcript}");
    assert!(
        transcript.contains("Directory holding your working copies"),
        "{transcript}"
    );
    flags
        .repoman()
        .args([
            "setup",
            "--incus-project",
            &b,
            "--local-repos",
            flags.repos.to_str().unwrap(),
            "--image",
            TEST_IMAGE_ALIAS,
        ])
        .assert()
        .success();
    let defaults = |f: &Fixture, project: &str| {
        let text = f.registry_text();
        let d = text.split_once("[defaults]").unwrap().1.to_owned();
        d.replace(f.repos.to_str().unwrap(), "REPOS")
            .replace(project, "PROJECT")
    };
    assert_eq!(defaults(&wizard, &a), defaults(&flags, &b));

    // `status --repair` offers the choice for each drift on a terminal.
    wizard.new_sandbox("gone");
    let scope = lab.incus.project(&a);
    scope.stop("gone", true).unwrap();
    scope.delete_instance("gone").unwrap();
    let (code, transcript) = on_a_terminal(&wizard, &["status", "--repair"], "forget\ry");
    assert_eq!(code, 0, "{transcript}");
    assert!(
        transcript.contains("[recreate/forget/skip]"),
        "{transcript}"
    );
    assert!(!wizard.registry_text().contains("name = \"gone\""));
}

/// A realistic sandbox end to end (issue 17): the lab's Debian 12 image (minbase + git, built by
/// `scripts/incus-lab` with debootstrap), which, like a stock image, has no user for the mapped
/// uid. `new`, then git as the user inside (the commit lands in the host's working copy, owned by
/// the host user), and `shell` reading commands from a pipe, with its exit status passed on.
#[test]
fn a_debian_sandbox_runs_git_and_a_shell_as_the_user() {
    let Some(f) = Fixture::with_incus("debian") else {
        return;
    };
    let lab = &f.lab.as_ref().unwrap().0;
    if let Err(e) = lab
        .incus
        .project("default")
        .resolve_image_alias(repoman_incus::testlab::DEBIAN_IMAGE_ALIAS)
    {
        panic!("the Debian test image is missing ({e}); run scripts/incus-lab");
    }
    f.repo("deb");
    f.repoman()
        .args([
            "new",
            "deb",
            "--image",
            repoman_incus::testlab::DEBIAN_IMAGE_ALIAS,
            "--yes",
        ])
        .assert()
        .success();
    let out = f
        .repoman()
        .args([
            "exec",
            "deb",
            "--",
            "sh",
            "-c",
            "id -u && cat /etc/debian_version && git init -q && git -c user.name=dev \
             -c user.email=dev@example.org commit -q --allow-empty -m 'from the sandbox' \
             && git log --format=%s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1000", "{stdout}");
    assert!(lines[1].starts_with("12."), "{stdout}");
    assert_eq!(lines.last(), Some(&"from the sandbox"), "{stdout}");
    let head = f.repos.join("deb/.git/HEAD");
    assert!(head.is_file(), "the commit is in the host's working copy");
    assert_eq!(
        std::fs::metadata(f.repos.join("deb/.git")).unwrap().uid(),
        1000
    );

    let out = f
        .repoman()
        .args(["shell", "deb"])
        .write_stdin("echo \"user=$(id -u) pwd=$(pwd)\"; git log --format=%s; exit 7\n")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("user=1000 pwd=/home/dev/deb") && stdout.contains("from the sandbox"),
        "{stdout}"
    );
}
