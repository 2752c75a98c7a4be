//! `repoman sync|verify|restore|conflicts` end to end: real rsync, real tmpfs mounts as the
//! backup root (these tests run as root), real signals. Every mount is removed by a Drop guard,
//! also when a test fails.

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;

/// A tmpfs mounted for the life of the value.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=6g", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs needs root");
        Self(at.to_path_buf())
    }
    fn unmount(&self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
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

/// The binary under test: `REPOMAN_TEST_BIN` (e.g. the release build, to check that Ctrl-C and
/// kill handling hold with `panic = "abort"` and LTO), else Cargo's debug build.
fn repoman_bin() -> PathBuf {
    std::env::var_os("REPOMAN_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("repoman"))
}

/// A private estate: HOME, working copies, a tmpfs backup root.
struct Estate {
    dir: tempfile::TempDir,
    mount: Mount,
}

impl Estate {
    fn new(projects: &[&str]) -> Self {
        Self::with_defaults(projects, "")
    }

    fn with_defaults(projects: &[&str], extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mount = Mount::tmpfs(&dir.path().join("backup"));
        let e = Self { dir, mount };
        std::fs::create_dir_all(e.local()).unwrap();
        let mut reg = format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {:?}\nbackup_root = {:?}\nbackup_fstype = \"tmpfs\"\nprobe_timeout_secs = 2\n{extra}\n",
            e.local(),
            e.backup()
        );
        for p in projects {
            reg.push_str(&format!(
                "[[project]]\nname = \"{p}\"\nrepo = \"{p}\"\ncontainer = false\n\n"
            ));
            std::fs::create_dir_all(e.src(p)).unwrap();
        }
        let cfg = e.home().join(".config/repoman");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("repoman.toml"), reg).unwrap();
        e
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
    fn src(&self, p: &str) -> PathBuf {
        self.local().join(p)
    }
    fn dst(&self, p: &str) -> PathBuf {
        self.backup().join(p)
    }
    fn state_dir(&self) -> PathBuf {
        self.home().join(".local/state/repoman")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(repoman_bin());
        c.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("USER", "tester")
            .arg("--no-progress");
        c
    }

    fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(repoman_bin());
        c.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("USER", "tester")
            .arg("--no-progress")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd().args(args).output().unwrap();
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

    fn events(&self) -> String {
        let mut all = String::new();
        for p in walk(&self.state_dir().join("events")) {
            if p.is_file() {
                all.push_str(&std::fs::read_to_string(p).unwrap_or_default());
            }
        }
        all
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out.sort();
    out
}

/// (relative path, type, mode, size, content hash-ish) of every entry.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, u64, i64, Vec<u8>)> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() && m.len() < 1 << 20 {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                m.mode(),
                m.len(),
                m.mtime(),
                content,
            )
        })
        .collect()
}

fn write(p: &Path, bytes: &[u8]) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, bytes).unwrap();
}

fn fill(e: &Estate, project: &str, n: usize) {
    for i in 0..n {
        write(
            &e.src(project).join(format!("dir{}/file{i}.txt", i % 3)),
            format!("content {i}\n").as_bytes(),
        );
    }
}

#[test]
fn sync_verify_then_unmounted_backup_exits_4_and_writes_nothing() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 10);
    let out = e.ok(&["sync", "alpha"]);
    assert!(out.contains("alpha\tsynced"), "{out}");
    assert_eq!(
        std::fs::read(e.dst("alpha").join("dir1/file4.txt")).unwrap(),
        b"content 4\n"
    );
    let marker: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.dst("alpha").join(".repoman-backup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(marker["project"], "alpha");
    assert!(e.events().contains("\"backup.synced\""));
    let reg = std::fs::read_to_string(e.home().join(".config/repoman/repoman.toml")).unwrap();
    assert!(reg.contains("last_sync = "), "{reg}");
    e.ok(&["verify", "--full", "alpha"]);

    e.mount.unmount();
    write(&e.src("alpha").join("new.txt"), b"new");
    let (code, _out, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("not mounted as expected") && err.contains("backup_fstype is tmpfs"),
        "{err}"
    );
    assert!(
        walk(&e.backup()).is_empty(),
        "something was written into the bare mount point: {:?}",
        walk(&e.backup())
    );
}

#[test]
fn backup_root_on_the_root_filesystem_is_refused_without_an_explicit_type() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 2);
    let reg_path = e.home().join(".config/repoman/repoman.toml");
    let reg = std::fs::read_to_string(&reg_path)
        .unwrap()
        .replace("backup_fstype = \"tmpfs\"\n", "");
    std::fs::write(&reg_path, reg).unwrap();
    e.mount.unmount();
    let (code, _, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("root filesystem"), "{err}");
    assert!(walk(&e.backup()).is_empty());
}

#[test]
fn a_hung_destination_times_out_with_exit_4() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 2);
    e.ok(&["sync", "alpha"]);
    // Opening a FIFO blocks until a writer appears: a real hang in open(2), like a dead server.
    let marker = e.dst("alpha").join(".repoman-backup.json");
    std::fs::remove_file(&marker).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(&marker)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, _, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not reachable within 2s"), "{err}");
}

#[test]
fn emptied_source_is_blocked_with_the_reason() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 6);
    e.ok(&["sync", "alpha"]);
    for p in std::fs::read_dir(e.src("alpha")).unwrap() {
        std::fs::remove_dir_all(p.unwrap().path()).unwrap();
    }
    let (code, out, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("backup.source-empty") && err.contains("--allow-empty-source"),
        "{err}"
    );
    assert_eq!(walk(&e.dst("alpha")).len(), 10, "backup must be untouched");
    assert!(e.events().contains("sync.plan.blocked"));
}

#[test]
fn max_delete_exceeded_is_blocked_with_counts_and_dry_run_changes_nothing() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 12);
    e.ok(&["sync", "alpha"]);
    for i in 0..5 {
        std::fs::remove_file(e.src("alpha").join(format!("dir{}/file{i}.txt", i % 3))).unwrap();
    }
    write(&e.src("alpha").join("dir0/file0.txt"), b"changed\n");

    let before_local = snapshot(&e.local());
    let before_backup = snapshot(&e.backup());
    let before_events = e.events();
    let out = e.ok(&["sync", "--dry-run", "alpha"]);
    assert!(
        out.contains("alpha\tplanned") && out.contains("-4"),
        "{out}"
    );
    assert!(out.contains("*deleting   dir1/file1.txt"), "{out}");
    assert_eq!(snapshot(&e.local()), before_local);
    assert_eq!(snapshot(&e.backup()), before_backup);
    assert_eq!(e.events(), before_events, "a dry run records nothing");

    let (code, out, err) = e.run(&["sync", "alpha", "--max-delete", "2"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("would delete 4 entries") && err.contains("over max_delete 2"),
        "{err}"
    );
    assert!(err.contains("repoman sync alpha --max-delete 4"), "{err}");
    assert_eq!(snapshot(&e.backup()), before_backup);
    e.ok(&["sync", "alpha", "--max-delete", "4"]);
    assert!(!e.dst("alpha").join("dir1/file1.txt").exists());
    e.ok(&["verify", "--full", "alpha"]);
}

#[test]
fn foreign_marker_is_blocked_and_adopt_takes_over() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 3);
    e.ok(&["sync", "alpha"]);
    let mpath = e.dst("alpha").join(".repoman-backup.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["estate_id"] = "someone-else".into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    write(&e.src("alpha").join("more.txt"), b"x");
    let (code, out, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("backup.marker-foreign") && err.contains("someone-else"),
        "{err}"
    );
    assert!(!e.dst("alpha").join("more.txt").exists());
    e.ok(&["sync", "alpha", "--adopt"]);
    assert!(e.dst("alpha").join("more.txt").exists());
}

fn conflict_id(e: &Estate) -> String {
    let out = e.ok(&["--json", "conflicts"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = v["conflicts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{out}");
    assert_eq!(list[0]["kind"], "backup-diverged");
    list[0]["id"].as_str().unwrap().to_owned()
}

/// Make a backup-side edit with a different size so rsync's quick check sees it.
fn edit_backup(e: &Estate, rel: &str, bytes: &[u8]) {
    write(&e.dst("alpha").join(rel), bytes);
}

fn saved_copy(e: &Estate, side: &str, rel: &str) -> Vec<u8> {
    let base = e.backup().join(".repoman-conflicts/alpha");
    let mut stamps: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    stamps.sort();
    std::fs::read(stamps.last().unwrap().join(side).join(rel)).unwrap()
}

#[test]
fn backup_diverged_conflict_and_each_resolution() {
    let e = Estate::new(&["alpha"]);
    write(&e.src("alpha").join("a.txt"), b"a v1\n");
    write(&e.src("alpha").join("b.txt"), b"b v1\n");
    write(&e.src("alpha").join("c.txt"), b"c v1\n");
    e.ok(&["sync", "alpha"]);

    // 1. Backup-only change of a.txt, both sides changed b.txt -> blocked, conflict recorded.
    edit_backup(&e, "a.txt", b"a edited on the backup\n");
    edit_backup(&e, "b.txt", b"b edited on the backup\n");
    write(&e.src("alpha").join("b.txt"), b"b edited locally, longer\n");
    let (code, out, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("backup.diverged") && err.contains("repoman conflicts resolve"),
        "{err}"
    );
    assert!(
        err.contains("a.txt (backup-changed)") && err.contains("b.txt (both-changed)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(e.dst("alpha").join("a.txt")).unwrap(),
        b"a edited on the backup\n"
    );
    let id = conflict_id(&e);
    // A second attempt does not record a duplicate.
    assert_eq!(e.run(&["sync", "alpha"]).0, 3);
    assert_eq!(conflict_id(&e), id);

    // --dry-run names the files and changes nothing on either side.
    let (code, out, err) = e.run(&["conflicts", "resolve", &id, "--keep-local", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a.txt") && out.contains("b.txt"), "{out}");
    assert_eq!(
        std::fs::read(e.dst("alpha").join("a.txt")).unwrap(),
        b"a edited on the backup\n"
    );
    assert_eq!(conflict_id(&e), id, "a dry run closed the conflict");

    // keep-local: backup gets the local bytes, the backup's bytes are saved.
    e.ok(&["conflicts", "resolve", &id, "--keep-local"]);
    assert_eq!(
        std::fs::read(e.dst("alpha").join("a.txt")).unwrap(),
        b"a v1\n"
    );
    assert_eq!(
        std::fs::read(e.dst("alpha").join("b.txt")).unwrap(),
        b"b edited locally, longer\n"
    );
    assert_eq!(
        saved_copy(&e, "backup", "a.txt"),
        b"a edited on the backup\n"
    );
    assert_eq!(
        saved_copy(&e, "backup", "b.txt"),
        b"b edited on the backup\n"
    );
    e.ok(&["sync", "alpha"]);
    e.ok(&["verify", "--full", "alpha"]);
    // explain reads the real verify event: the restore-integrity answer cites it.
    let out = e.ok(&["--json", "explain", "backup:alpha"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let answer = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "restore_integrity")
        .map(|s| s["answer"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(answer.contains("verified against it"), "{answer}");
    // Resolved files are not flagged again when they change later.
    write(&e.src("alpha").join("a.txt"), b"a v2 after resolution\n");
    e.ok(&["sync", "alpha"]);

    // keep-backup: the working copy gets the backup's bytes, the local ones are saved.
    std::thread::sleep(Duration::from_millis(1100)); // distinct timestamp directory
    edit_backup(&e, "c.txt", b"c from the backup side\n");
    let (code, _, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 3, "{err}");
    let id2 = conflict_id(&e);
    assert_ne!(id, id2);
    e.ok(&["conflicts", "resolve", &id2, "--keep-backup"]);
    assert_eq!(
        std::fs::read(e.src("alpha").join("c.txt")).unwrap(),
        b"c from the backup side\n"
    );
    assert_eq!(saved_copy(&e, "local", "c.txt"), b"c v1\n");
    e.ok(&["sync", "alpha"]);
    e.ok(&["verify", "--full", "alpha"]);

    // A file created only on the backup would be deleted by the mirror: a conflict too.
    edit_backup(&e, "backup-only.txt", b"precious\n");
    let (code, _, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("backup-only.txt (backup-created)"), "{err}");
    // skip closes the conflict and changes nothing; the next sync detects it again.
    let id3 = conflict_id(&e);
    e.ok(&["conflicts", "resolve", &id3, "--skip"]);
    assert!(e.dst("alpha").join("backup-only.txt").exists());
    assert_eq!(e.run(&["sync", "alpha"]).0, 3);
    let listed = e.ok(&["--json", "conflicts", "--all"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let states: Vec<&str> = v["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "pending").count(),
        1,
        "{listed}"
    );
    assert_eq!(states.len(), 4, "{listed}");
}

#[test]
fn conflicts_cannot_be_resolved_by_a_non_human_actor() {
    let e = Estate::new(&["alpha"]);
    write(&e.src("alpha").join("a.txt"), b"1");
    e.ok(&["sync", "alpha"]);
    edit_backup(&e, "a.txt", b"22");
    assert_eq!(e.run(&["sync", "alpha"]).0, 3);
    let id = conflict_id(&e);
    // CI=1 makes the actor `ci:HOST`.
    let out = e
        .cmd()
        .env("CI", "1")
        .args(["conflicts", "resolve", &id, "--keep-local"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("may not resolve conflicts"), "{err}");
    assert_eq!(
        std::fs::read(e.dst("alpha").join("a.txt")).unwrap(),
        b"22",
        "nothing may change"
    );
    assert!(!e.backup().join(".repoman-conflicts").exists());
    assert_eq!(conflict_id(&e), id, "still pending");
}

/// Whether rsync's temporary file for `name` exists in the backup copy `dir` (rsync writes them
/// into `.repoman-tmp/` at its top).
fn transferring(dir: &Path, name: &str) -> bool {
    let prefix = format!("{name}.");
    std::fs::read_dir(dir.join(".repoman-tmp"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or(false)
}

fn make_big(path: &Path, mib: usize) {
    let st = std::process::Command::new("dd")
        .args([
            "if=/dev/urandom",
            "bs=1M",
            &format!("count={mib}"),
            "status=none",
        ])
        .arg(format!("of={}", path.display()))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Poll `f` until it holds. There is no clock in it (a loaded machine is slow, not wrong): it
/// fails when one of `watched`, the processes whose work `f` waits for, exits first, so a broken
/// feature fails with that process's status instead of hanging.
fn wait_for(what: &str, watched: &mut [&mut std::process::Child], mut f: impl FnMut() -> bool) {
    loop {
        if f() {
            return;
        }
        for c in watched.iter_mut() {
            if let Some(st) = c.try_wait().unwrap() {
                // It may have made `f` true just before it exited.
                if f() {
                    return;
                }
                panic!("waiting for {what}: process {} exited first ({st})", c.id());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigint_mid_transfer_cancels_cleanly_and_the_next_sync_completes() {
    let e = Estate::new(&["alpha"]);
    write(&e.src("alpha").join("small.txt"), b"small");
    e.ok(&["sync", "alpha"]);
    make_big(&e.src("alpha").join("big.bin"), 2048);
    let mut child = e
        .std_cmd(&["sync", "alpha"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // rsync writes into a temporary `.big.bin.XXXXXX`: the transfer is under way.
    let partial = e.dst("alpha").join(".repoman-partial");
    wait_for("the transfer to start", &mut [&mut child], || {
        transferring(&e.dst("alpha"), "big.bin")
    });
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        !e.dst("alpha").join("big.bin").exists(),
        "a half-written file is visible under its final name"
    );
    // rsync kept the partial data aside for the next run, out of the manifest's and verify's view.
    assert!(
        partial.join("big.bin").exists(),
        "{:?}",
        walk(&e.dst("alpha"))
    );
    assert!(e.events().contains("\"sync.cancelled\""));
    assert_eq!(
        e.events().matches("\"backup.synced\"").count(),
        1,
        "only the first sync completed"
    );
    e.ok(&["sync", "alpha"]);
    assert_eq!(
        std::fs::metadata(e.dst("alpha").join("big.bin"))
            .unwrap()
            .len(),
        2048 << 20
    );
    assert!(
        !partial.exists(),
        "the partial directory is cleaned up by the completed run"
    );
    e.ok(&["verify", "--full", "alpha"]);
}

#[test]
fn two_concurrent_syncs_wait_or_fail_clearly_without_corruption() {
    let e = Estate::new(&["alpha"]);
    make_big(&e.src("alpha").join("big.bin"), 1024);
    let mut first = e
        .std_cmd(&["sync", "alpha"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first transfer to start", &mut [&mut first], || {
        transferring(&e.dst("alpha"), "big.bin")
    });
    let (code, _, err) = e.run(&["sync", "alpha", "--lock-timeout", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the backup of project alpha is locked by another repoman process"),
        "{err}"
    );
    // Without a timeout the second one waits, says so, and then completes.
    let second = e
        .std_cmd(&["sync", "alpha"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a = first.wait().unwrap();
    let b = second.wait_with_output().unwrap();
    assert!(a.success());
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    e.ok(&["verify", "--full", "alpha"]);
}

#[test]
fn verify_full_detects_one_flipped_byte_that_quick_cannot_see() {
    let e = Estate::new(&["alpha"]);
    make_big(&e.src("alpha").join("big.bin"), 64);
    e.ok(&["sync", "alpha"]);
    let p = e.dst("alpha").join("big.bin");
    let meta = std::fs::metadata(&p).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[40 << 20] ^= 0x01;
    std::fs::write(&p, &bytes).unwrap();
    // Keep size and mtime, as silent corruption would.
    let mtime = std::time::SystemTime::UNIX_EPOCH
        + Duration::new(meta.mtime() as u64, meta.mtime_nsec() as u32);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    e.ok(&["verify", "--quick", "alpha"]);
    let (code, out, _) = e.run(&["verify", "--full", "alpha"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("changed: big.bin (content)"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&e.run(&["--json", "verify", "--full", "alpha"]).1).unwrap();
    assert_eq!(
        v["projects"][0]["report"]["changed"][0]["what"][0],
        "content"
    );
    assert!(e.events().contains("\"backup.verified\""));
}

#[test]
fn odd_names_symlinks_empty_dirs_sparse_file_and_modes_round_trip() {
    let e = Estate::new(&["alpha"]);
    let src = e.src("alpha");
    write(&src.join("with space.txt"), b"space");
    write(&src.join(OsStr::from_bytes(b"new\nline")), b"newline");
    write(&src.join(OsStr::from_bytes(b"bad\xffbyte")), b"latin1");
    write(&src.join("back\\#012slash"), b"escape lookalike");
    write(&src.join("100%"), b"percent");
    std::os::unix::fs::symlink("with space.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::fs::create_dir_all(src.join("empty/nested-empty")).unwrap();
    write(&src.join("secret"), b"s");
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    write(&src.join("tool"), b"#!/bin/sh\n");
    std::fs::set_permissions(src.join("tool"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    std::fs::set_permissions(src.join("empty"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let sparse = std::fs::File::create(src.join("sparse.img")).unwrap();
    sparse.set_len(2 << 30).unwrap();
    drop(sparse);

    e.ok(&["sync", "alpha"]);
    e.ok(&["verify", "--full", "alpha"]);
    let to = e.dir.path().join("restored");
    let out = e.ok(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    assert!(
        out.starts_with("restore verified: root ") && out.contains("matches backup.synced event #"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(to.join(OsStr::from_bytes(b"new\nline"))).unwrap(),
        b"newline"
    );
    assert_eq!(
        std::fs::read(to.join(OsStr::from_bytes(b"bad\xffbyte"))).unwrap(),
        b"latin1"
    );
    assert_eq!(
        std::fs::read_link(to.join("dangling")).unwrap(),
        Path::new("/nonexistent/target")
    );
    assert!(to.join("empty/nested-empty").is_dir());
    assert_eq!(
        std::fs::metadata(to.join("tool")).unwrap().mode() & 0o7777,
        0o4750
    );
    assert_eq!(
        std::fs::metadata(to.join("secret")).unwrap().mode() & 0o7777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(to.join("empty")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(to.join("sparse.img")).unwrap().len(),
        2 << 30
    );
    assert!(
        !to.join(".repoman-backup.json").exists(),
        "the marker is not part of the project"
    );

    // A non-empty target needs --force; a partial restore verifies the chosen paths.
    let (code, _, err) = e.run(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force"), "{err}");
    let part = e.dir.path().join("partial");
    let out = e.ok(&[
        "restore",
        "alpha",
        "--to",
        part.to_str().unwrap(),
        "--path",
        "empty",
        "--path",
        "secret",
    ]);
    assert!(out.contains("restore verified"), "{out}");
    assert!(
        part.join("secret").exists()
            && part.join("empty/nested-empty").is_dir()
            && !part.join("tool").exists()
    );
    // A dry run shows the plan and writes nothing.
    let dry = e.dir.path().join("dry");
    let out = e.ok(&[
        "restore",
        "alpha",
        "--to",
        dry.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(out.contains("sparse.img"), "{out}");
    assert!(!dry.exists());
}

#[test]
fn restore_reports_mismatches_when_the_backup_was_damaged() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 4);
    e.ok(&["sync", "alpha"]);
    write(&e.dst("alpha").join("dir0/file0.txt"), b"tampered with\n");
    let to = e.dir.path().join("r");
    let (code, out, _) = e.run(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("changed: dir0/file0.txt"), "{out}");
    assert!(!out.contains("restore verified"));
}

#[test]
fn excludes_from_defaults_and_the_project_are_honoured_and_verify_agrees() {
    let e = Estate::with_defaults(&["alpha"], "backup_exclude = [\"*.tmp\"]");
    write(
        &e.src("alpha").join(".repoman.toml"),
        b"[backup]\nexclude = [\"target/\"]\n",
    );
    write(&e.src("alpha").join("keep.rs"), b"fn main() {}");
    write(&e.src("alpha").join("scratch.tmp"), b"x");
    write(&e.src("alpha").join("target/debug/bin"), b"elf");
    // Untrusted (the sandbox may have written it): its exclude does not count, and sync says so.
    let (code, _, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("untrusted") && err.contains("[backup] exclude"),
        "{err}"
    );
    assert!(e.dst("alpha").join("target/debug/bin").exists());
    assert!(!e.dst("alpha").join("scratch.tmp").exists());
    // Trusted by the human, it applies (what the first sync copied stays: rsync leaves excluded
    // paths on the destination alone).
    e.ok(&["trust", "alpha", "--yes"]);
    write(&e.src("alpha").join("target/debug/new"), b"elf");
    e.ok(&["sync", "alpha"]);
    assert!(e.dst("alpha").join("keep.rs").exists());
    assert!(!e.dst("alpha").join("scratch.tmp").exists());
    assert!(!e.dst("alpha").join("target/debug/new").exists());
    e.ok(&["verify", "--full", "alpha"]);
    // Rewritten (say from inside the sandbox) to exclude the sources: the trusted version still
    // applies, so keep.rs stays in the backup.
    write(
        &e.src("alpha").join(".repoman.toml"),
        b"[backup]\nexclude = [\"target/\", \"*.rs\"]\n",
    );
    write(&e.src("alpha").join("keep.rs"), b"fn main() { changed() }");
    let (code, _, err) = e.run(&["sync", "alpha"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("changed since trusted"), "{err}");
    assert_eq!(
        std::fs::read(e.dst("alpha").join("keep.rs")).unwrap(),
        b"fn main() { changed() }"
    );
}

#[test]
fn several_projects_sync_concurrently_and_a_blocked_one_does_not_stop_the_others() {
    let e = Estate::new(&["alpha", "beta", "gamma"]);
    for p in ["alpha", "beta", "gamma"] {
        fill(&e, p, 5);
    }
    let out = e.ok(&["sync", "--all", "--jobs", "3"]);
    assert_eq!(out.matches("\tsynced").count(), 3, "{out}");
    for p in std::fs::read_dir(e.src("beta")).unwrap() {
        std::fs::remove_dir_all(p.unwrap().path()).unwrap();
    }
    write(&e.src("alpha").join("new.txt"), b"n");
    let (code, out, err) = e.run(&["--json", "sync"]);
    assert_eq!(code, 3, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let status: Vec<(&str, &str)> = v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["project"].as_str().unwrap(),
                p["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("alpha", "synced"),
            ("beta", "blocked"),
            ("gamma", "synced")
        ]
    );
    assert!(e.dst("alpha").join("new.txt").exists());
}
/// A read-only bind mount over a directory of the backup: rsync cannot write there and exits 23.
struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    fn over(dir: &Path) -> Self {
        for args in [
            vec!["--bind", dir.to_str().unwrap(), dir.to_str().unwrap()],
            vec!["-o", "remount,bind,ro", dir.to_str().unwrap()],
        ] {
            let st = std::process::Command::new("mount")
                .args(&args)
                .status()
                .unwrap();
            assert!(st.success(), "mount {args:?} needs root");
        }
        Self(dir.to_path_buf())
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn rsync_partial_transfer_is_an_explained_failure_and_the_next_sync_completes() {
    let e = Estate::new(&["alpha"]);
    write(&e.src("alpha").join("ro/a.txt"), b"one\n");
    write(&e.src("alpha").join("rw/b.txt"), b"two\n");
    e.ok(&["sync", "alpha"]);
    write(&e.src("alpha").join("ro/a.txt"), b"one, edited\n");
    write(&e.src("alpha").join("rw/b.txt"), b"two, edited\n");
    {
        let _ro = ReadOnlyBind::over(&e.dst("alpha").join("ro"));
        let (code, out, err) = e.run(&["sync", "alpha"]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("rsync exit 23"), "{err}");
        // The failure is recorded with rsync's code, and no success is claimed.
        let events = e.events();
        assert!(
            events.contains("\"sync.failed\"") && events.contains("\"rsync_exit\":23"),
            "{events}"
        );
        assert_eq!(
            std::fs::read(e.dst("alpha").join("ro/a.txt")).unwrap(),
            b"one\n"
        );
    }
    e.ok(&["sync", "alpha"]);
    e.ok(&["verify", "--full", "alpha"]);
    assert_eq!(
        std::fs::read(e.dst("alpha").join("ro/a.txt")).unwrap(),
        b"one, edited\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Integrity under faults (issue 16): every test below failed on the code before the fix.

/// Flip one byte of `path` in place and put its mtime back: rot that size and mtime cannot see.
fn rot(path: &Path) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(before)
        .unwrap();
}

/// The `data` of every event of `type_`, in order.
fn event_data(e: &Estate, type_: &str) -> Vec<serde_json::Value> {
    e.events()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == type_)
        .map(|v| v["data"].clone())
        .collect()
}

#[test]
fn bit_rot_on_the_backup_is_never_certified_by_a_rebuilt_manifest() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 6);
    e.ok(&["sync", "alpha"]);
    // The backup rots in place; the stat cache (documented as rebuildable) is lost; --adopt
    // rebuilds the manifest. rsync's quick check skips the rotten file (same size and mtime).
    rot(&e.dst("alpha").join("dir0/file0.txt"));
    std::fs::remove_file(e.home().join(".cache/repoman/backup/alpha.statcache")).unwrap();
    e.ok(&["sync", "alpha", "--adopt"]);
    let (code, out, _) = e.run(&["verify", "--full", "alpha"]);
    assert_eq!(code, 1, "the rotten file must not be certified:\n{out}");
    assert!(out.contains("changed: dir0/file0.txt (content)"), "{out}");
    let to = e.dir.path().join("restored");
    let (code, out, _) = e.run(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("restore verified"), "{out}");
    // `sync --checksum` compares contents and copies the working copy's bytes again.
    e.ok(&["sync", "alpha", "--checksum"]);
    e.ok(&["verify", "--full", "alpha"]);
    assert_eq!(
        std::fs::read(e.dst("alpha").join("dir0/file0.txt")).unwrap(),
        std::fs::read(e.src("alpha").join("dir0/file0.txt")).unwrap()
    );
}

/// How the run before the rebuilding sync ended without a `backup.synced`.
#[derive(Debug, Clone, Copy)]
enum Unfinished {
    /// rsync failed (exit 23: a read-only directory on the backup).
    Failed,
    /// Ctrl-C mid-transfer.
    Interrupted,
    /// No unfinished run: `sync --adopt` rebuilds.
    Adopt,
}

/// Rot two backup files in place (size and mtime kept), one of them chmod-ed in the working copy
/// (so the next runs itemize it as attributes-only), end a run as `how` says, then complete a
/// sync, which rebuilds the manifest: it must describe the working copy, so `verify --full` and
/// `restore` report both rotten files and `sync --checksum` repairs them.
fn rot_through_a_rebuild(how: Unfinished, lose_cache: bool) {
    use std::os::unix::process::CommandExt;
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 6);
    e.ok(&["sync", "alpha"]);
    rot(&e.dst("alpha").join("dir0/file0.txt"));
    rot(&e.dst("alpha").join("dir1/file1.txt"));
    std::fs::set_permissions(
        e.src("alpha").join("dir1/file1.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if lose_cache {
        std::fs::remove_file(e.home().join(".cache/repoman/backup/alpha.statcache")).unwrap();
    }
    let mut last = vec!["--json", "sync", "alpha"];
    match how {
        Unfinished::Failed => {
            write(&e.src("alpha").join("dir2/file2.txt"), b"edited\n");
            let _ro = ReadOnlyBind::over(&e.dst("alpha").join("dir2"));
            let (code, out, err) = e.run(&["sync", "alpha"]);
            assert_eq!(code, 1, "{out}{err}");
        }
        Unfinished::Interrupted => {
            make_big(&e.src("alpha").join("big.bin"), 40);
            let mut child = e
                .std_cmd(&["sync", "alpha"])
                .env("PATH", slow_rsync(&e))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap();
            wait_for("rsync to transfer big.bin", &mut [&mut child], || {
                transferring(&e.dst("alpha"), "big.bin")
            });
            let st = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success());
            assert_eq!(child.wait().unwrap().code(), Some(130));
        }
        Unfinished::Adopt => last.push("--adopt"),
    }
    let out = e.ok(&last);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["projects"][0]["manifest_source"], "rebuilt", "{v}");
    let (code, out, _) = e.run(&["verify", "--full", "alpha"]);
    assert_eq!(code, 1, "{how:?}: rot was certified:\n{out}");
    for f in ["dir0/file0.txt", "dir1/file1.txt"] {
        assert!(
            out.contains(&format!("changed: {f} (content)")),
            "{how:?}: {out}"
        );
    }
    let to = e.dir.path().join("restored");
    let (code, out, _) = e.run(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 1, "{how:?}: {out}");
    assert!(!out.contains("restore verified"), "{how:?}: {out}");
    e.ok(&["sync", "alpha", "--checksum"]);
    e.ok(&["verify", "--full", "alpha"]);
    for f in ["dir0/file0.txt", "dir1/file1.txt"] {
        assert_eq!(
            std::fs::read(e.dst("alpha").join(f)).unwrap(),
            std::fs::read(e.src("alpha").join(f)).unwrap(),
            "{how:?}: {f}"
        );
    }
}

#[test]
fn rot_is_not_certified_by_the_rebuild_after_a_failed_run() {
    rot_through_a_rebuild(Unfinished::Failed, true);
}

#[test]
fn rot_is_not_certified_by_the_rebuild_after_ctrl_c() {
    rot_through_a_rebuild(Unfinished::Interrupted, true);
}

#[test]
fn rot_behind_a_chmod_is_not_certified_by_adopt() {
    rot_through_a_rebuild(Unfinished::Adopt, false);
}

/// Read a child's stderr on a thread, so the test can wait for a line without blocking it.
fn collect_stderr(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::Read;
    let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = err.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

#[test]
fn a_sync_that_waited_for_the_lock_records_the_root_the_other_one_left() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 4);
    e.ok(&["sync", "alpha"]);
    write(
        &e.src("alpha").join("dir0/new.txt"),
        b"new since the first sync\n",
    );
    // Hold the project's sync lock, start two syncs, and let them go once both wait.
    let lock = e.dir.path().join("run/repoman/locks/sync-alpha.lock");
    // `-o`: flock itself holds the lock, not `sleep` (which would inherit the locked descriptor
    // and keep holding it after flock is killed).
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the test to hold the lock", &mut [&mut holder], || {
        !std::process::Command::new("flock")
            .args(["-n"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    });
    let mut a = e
        .std_cmd(&["sync", "alpha"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = e
        .std_cmd(&["sync", "alpha"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ea, eb) = (collect_stderr(&mut a), collect_stderr(&mut b));
    wait_for("both syncs to wait", &mut [&mut a, &mut b], || {
        ea.lock().unwrap().contains("waiting for another sync")
            && eb.lock().unwrap().contains("waiting for another sync")
    });
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(a.wait().unwrap().success(), "{}", ea.lock().unwrap());
    assert!(b.wait().unwrap().success(), "{}", eb.lock().unwrap());
    let roots: Vec<String> = event_data(&e, "backup.synced")
        .iter()
        .map(|d| d["root"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roots.len(), 3, "{roots:?}");
    assert_eq!(roots[1], roots[2], "the waiter recorded a stale root");
    e.ok(&["verify", "--full", "alpha"]);
    // A local edit afterwards is an ordinary update, not a backup-diverged conflict.
    write(&e.src("alpha").join("dir0/new.txt"), b"edited\n");
    e.ok(&["sync", "alpha"]);
    e.ok(&["verify", "--full", "alpha"]);
}

/// A `rsync` first on PATH that runs the real one slowly (2 MB/s), so a test can act while it
/// transfers. It execs the real rsync: the process is rsync itself.
fn slow_rsync(e: &Estate) -> std::ffi::OsString {
    let bin = e.dir.path().join("slowbin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v rsync"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let shim = bin.join("rsync");
    std::fs::write(
        &shim,
        format!("#!/bin/sh\nexec {} --bwlimit=2000 \"$@\"\n", real.trim()),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = bin.into_os_string();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

/// `(pid, ppid, pgrp, comm)` of every process.
fn processes() -> Vec<(i32, i32, i32, String)> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(ent.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        if rest.len() > 3 && rest[0] != "Z" {
            out.push((
                pid,
                rest[1].parse().unwrap_or(0),
                rest[2].parse().unwrap_or(0),
                comm,
            ));
        }
    }
    out
}

/// Processes whose command line mentions `needle` (the test's own backup path).
fn rsyncs_for(needle: &Path) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(pid, _, _, comm)| {
            comm == "rsync"
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| {
                        c.windows(needle.as_os_str().len())
                            .any(|w| w == needle.as_os_str().as_bytes())
                    })
                    .unwrap_or(false)
        })
        .map(|(pid, ..)| pid)
        .collect()
}

fn kill_9_mid_transfer(with_group: bool) {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 3);
    e.ok(&["sync", "alpha"]);
    make_big(&e.src("alpha").join("big.bin"), 40);
    write(
        &e.src("alpha").join("dir1/file1.txt"),
        b"changed with the big file\n",
    );
    let path = slow_rsync(&e);
    let mut child = e.std_cmd(&["sync", "alpha"]);
    child
        .env("PATH", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    use std::os::unix::process::CommandExt;
    let mut child = child.spawn().unwrap();
    let repoman = child.id() as i32;
    wait_for("rsync to transfer big.bin", &mut [&mut child], || {
        transferring(&e.dst("alpha"), "big.bin")
    });
    let rsync_groups: Vec<i32> = processes()
        .into_iter()
        .filter(|(pid, ppid, _, comm)| {
            comm == "rsync" && (*ppid == repoman || rsyncs_for(&e.dst("alpha")).contains(pid))
        })
        .map(|(_, _, pgrp, _)| pgrp)
        .collect();
    assert!(!rsync_groups.is_empty(), "no rsync found under repoman");
    let mut targets = vec![format!("-{repoman}")];
    if with_group {
        targets.extend(rsync_groups.iter().map(|g| format!("-{g}")));
    }
    // `--`: a negative number after the signal is a process group, not another option.
    let st = std::process::Command::new("kill")
        .args(["-s", "KILL", "--"])
        .args(&targets)
        .status()
        .unwrap();
    assert!(st.success());
    child.wait().unwrap();
    // rsync dies with repoman: it must not go on to finish the copy behind the next sync's back.
    wait_for("rsync to be gone", &mut [], || {
        rsyncs_for(&e.dst("alpha")).is_empty()
    });
    assert!(
        std::fs::metadata(e.dst("alpha").join("big.bin"))
            .map(|m| m.len() != 40 << 20)
            .unwrap_or(true),
        "rsync outlived repoman and completed the copy"
    );
    assert!(e.events().contains("\"sync.started\""));
    // The next sync recognises the killed run's leftovers as its own and rebuilds the manifest.
    let out = e.ok(&["--json", "sync", "alpha"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["projects"][0]["manifest_source"], "rebuilt", "{v}");
    e.ok(&["verify", "--full", "alpha"]);
    let to = e.dir.path().join("restored");
    let out = e.ok(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    assert!(out.contains("restore verified"), "{out}");
}

/// A `rsync` first on PATH whose process-group leader is slow to stop: it ignores SIGTERM (as a
/// process busy in a cleanup or a slow syscall does), runs the real rsync slowly, and when that
/// was stopped, waits for repoman to be gone and writes `survived` next to itself: it acts only
/// if it outlived repoman.
fn stubborn_rsync(e: &Estate) -> (std::ffi::OsString, PathBuf) {
    let bin = e.dir.path().join("stubbornbin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v rsync"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mark = bin.join("survived");
    std::fs::write(
        bin.join("rsync"),
        format!(
            "#!/bin/sh\ntrap '' TERM\n{} --bwlimit=2000 \"$@\"\nst=$?\nif [ $st -ne 0 ]; then\n  while kill -0 $PPID 2>/dev/null; do sleep 0.05; done\n  echo survived > {}\nfi\nexit $st\n",
            real.trim(),
            mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("rsync"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = bin.into_os_string();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    (path, mark)
}

#[test]
fn a_second_ctrl_c_kills_the_rsync_group_before_repoman_exits() {
    use std::os::unix::process::CommandExt;
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 2);
    e.ok(&["sync", "alpha"]);
    make_big(&e.src("alpha").join("big.bin"), 40);
    let (path, mark) = stubborn_rsync(&e);
    // Its own process group, as a shell puts a foreground job: Ctrl-C reaches repoman only.
    let mut child = e
        .std_cmd(&["sync", "alpha"])
        .env("PATH", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let repoman = child.id() as i32;
    wait_for("rsync to transfer big.bin", &mut [&mut child], || {
        transferring(&e.dst("alpha"), "big.bin")
    });
    let leader = processes()
        .into_iter()
        .find(|(_, ppid, _, comm)| *ppid == repoman && comm == "rsync")
        .map(|(pid, ..)| pid)
        .expect("the rsync wrapper runs under repoman");
    let sigint = || {
        let st = std::process::Command::new("kill")
            .args(["-INT", &repoman.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    // The first Ctrl-C stops the real rsync (SIGTERM to the group); the leader ignores it, and
    // repoman waits out its grace period.
    sigint();
    wait_for("the real rsync to stop", &mut [&mut child], || {
        !processes()
            .iter()
            .any(|(_, ppid, _, comm)| *ppid == leader && comm == "rsync")
    });
    // The second one, during that wait: repoman exits at once, and takes the group with it.
    sigint();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130), "{st}");
    wait_for("the group to be gone (or to act)", &mut [], || {
        mark.exists() || !processes().iter().any(|(_, _, pgrp, _)| *pgrp == leader)
    });
    assert!(
        !mark.exists(),
        "a process of rsync's group outlived repoman"
    );
    // The next sync finishes the job from what the killed run left.
    e.ok(&["sync", "alpha"]);
    e.ok(&["verify", "--full", "alpha"]);
}

#[test]
fn kill_9_of_repoman_stops_rsync_and_the_next_sync_rebuilds_the_manifest() {
    kill_9_mid_transfer(false);
}

#[test]
fn kill_9_of_repoman_and_rsync_leaves_no_conflict_only_our_own_leftovers() {
    kill_9_mid_transfer(true);
}

#[test]
fn reserved_names_under_the_backup_root_cannot_be_a_project_destination() {
    let e = Estate::new(&["alpha"]);
    write(&e.src("alpha").join("a.txt"), b"a");
    e.ok(&["sync", "alpha"]);
    let saved = e
        .backup()
        .join(".repoman-conflicts/alpha/20260101T000000.000Z/backup/a.txt");
    write(&saved, b"a saved conflict copy");
    let (code, _, err) = e.run(&[
        "new",
        "zz",
        "--repo",
        ".repoman-conflicts",
        "--no-container",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("reserved"), "{err}");
    // A hand-edited registry is refused too, before anything touches the backup.
    let cfg = e.home().join(".config/repoman/repoman.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[[project]]\nname = \"zz\"\nrepo = \".repoman-conflicts\"\ncontainer = false\n");
    std::fs::write(&cfg, text).unwrap();
    std::fs::create_dir_all(e.src(".repoman-conflicts")).unwrap();
    let (code, _, err) = e.run(&["sync", "zz", "--adopt"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("reserved"), "{err}");
    assert_eq!(std::fs::read(&saved).unwrap(), b"a saved conflict copy");
}

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

#[test]
fn sparse_files_stay_sparse_on_the_backup_and_on_restore() {
    let e = Estate::new(&["alpha"]);
    let img = e.src("alpha").join("disk.img");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(256 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"data in the middle", 128 << 20).unwrap();
    drop(f);
    assert!(allocated(&img) < 1 << 20);
    e.ok(&["sync", "alpha"]);
    let b = e.dst("alpha").join("disk.img");
    assert_eq!(std::fs::metadata(&b).unwrap().len(), 256 << 20);
    assert!(
        allocated(&b) < 1 << 20,
        "inflated on the backup: {} bytes",
        allocated(&b)
    );
    e.ok(&["verify", "--full", "alpha"]);
    let to = e.dir.path().join("restored");
    e.ok(&["restore", "alpha", "--to", to.to_str().unwrap()]);
    let r = to.join("disk.img");
    assert!(
        allocated(&r) < 1 << 20,
        "inflated on restore: {} bytes",
        allocated(&r)
    );
}

#[test]
fn restore_handles_non_utf8_paths_and_targets() {
    let e = Estate::new(&["alpha"]);
    write(
        &e.src("alpha").join(OsStr::from_bytes(b"bad\xffname")),
        b"latin1",
    );
    write(&e.src("alpha").join("ok.txt"), b"ok");
    e.ok(&["sync", "alpha"]);
    let to = e.dir.path().join(OsStr::from_bytes(b"target-\xfe"));
    let out = e
        .cmd()
        .args([
            OsStr::new("--json"),
            OsStr::new("restore"),
            OsStr::new("alpha"),
        ])
        .arg("--to")
        .arg(&to)
        .arg("--path")
        .arg(OsStr::from_bytes(b"bad\xffname"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert!(v["target"].as_str().unwrap().ends_with("target-%FE"), "{v}");
    assert_eq!(
        std::fs::read(to.join(OsStr::from_bytes(b"bad\xffname"))).unwrap(),
        b"latin1"
    );
    let out = e
        .cmd()
        .arg("restore")
        .arg("alpha")
        .arg("--to")
        .arg(to.join("all"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restore verified"));
}

/// Run with stdout already closed (the reader of `| head -1` gone before the first line).
fn exit_with_closed_stdout(e: &Estate, args: &[&str]) -> i32 {
    let mut child = e
        .std_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn a_closed_pipe_does_not_hide_a_failing_verdict() {
    let e = Estate::new(&["alpha"]);
    fill(&e, "alpha", 4);
    e.ok(&["sync", "alpha"]);
    rot(&e.dst("alpha").join("dir0/file0.txt"));
    assert_eq!(
        exit_with_closed_stdout(&e, &["verify", "--full", "alpha"]),
        1
    );
    assert_eq!(
        exit_with_closed_stdout(&e, &["verify", "--full", "--json", "alpha"]),
        1
    );
    // doctor: the runtime directory made world-readable is an auto-repairable finding (exit 1).
    std::fs::set_permissions(
        e.dir.path().join("run/repoman"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let (code, _, _) = e.run(&["doctor"]);
    assert_eq!(code, 1);
    assert_eq!(exit_with_closed_stdout(&e, &["doctor"]), 1);
    assert_eq!(exit_with_closed_stdout(&e, &["doctor", "--json"]), 1);
}

/// The source of the mount at `point`, as /proc/self/mountinfo shows it.
fn mount_source(point: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(point.to_str().unwrap()))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-").unwrap();
            f[dash + 2].to_owned()
        })
        .unwrap()
}

#[test]
fn an_unmounted_share_nested_in_another_mount_is_refused_by_every_command() {
    // The backup share is a tmpfs mounted inside another tmpfs (the estate's backup root).
    // `status` needs Incus (its own test project); the backup commands do not.
    let lab = repoman_incus::testlab::TestLab::connect();
    let project = lab.as_ref().map(|l| l.project("i16-nested"));
    let incus_project = project
        .as_ref()
        .map(|p| p.name().to_owned())
        .unwrap_or_else(|| "repoman-i16-no-incus".into());
    let e = Estate::new(&[]);
    let share = e.backup().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "repoman-i16-share"])
        .arg(&share)
        .status()
        .unwrap();
    assert!(st.success());
    let inner = Mount(share.clone());
    let cfg = e.home().join(".config/repoman/repoman.toml");
    std::fs::write(
        &cfg,
        format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {:?}\nbackup_root = {:?}\nbackup_fstype = \"tmpfs\"\nbackup_mount_point = {:?}\nbackup_device = {:?}\nprobe_timeout_secs = 2\nincus_project = {:?}\n\n[[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n",
            e.local(),
            share,
            share,
            mount_source(&share),
            incus_project
        ),
    )
    .unwrap();
    fill(&e, "alpha", 3);
    e.ok(&["sync", "alpha"]);
    if project.is_some() {
        let (_, status, err) = e.run(&["--json", "status"]);
        let v: serde_json::Value =
            serde_json::from_str(&status).unwrap_or_else(|_| panic!("{err}"));
        assert_eq!(v["backup_root"]["reachable"], true, "{v}");
    }

    inner.unmount();
    // Same filesystem type (the enclosing tmpfs), other mount point: not the share.
    for args in [
        &["sync", "alpha"][..],
        &["verify", "alpha"],
        &["restore", "alpha", "--to", "/nonexistent-i16"],
    ] {
        let (code, _, err) = e.run(args);
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(err.contains("recorded as mounted at"), "{args:?}: {err}");
    }
    assert!(
        std::fs::read_dir(&share).unwrap().next().is_none(),
        "something was written into the bare mount point"
    );
    if project.is_none() {
        return; // TestLab::connect said why (and fails under REPOMAN_TEST_INCUS=require)
    }
    let (code, out, err) = e.run(&["--json", "status"]);
    assert_eq!(code, 1, "status reports the problem: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["backup_root"]["reachable"], false, "{v}");
    assert!(
        v["backup_root"]["error"]
            .as_str()
            .unwrap()
            .contains("recorded as mounted at"),
        "{v}"
    );
}
