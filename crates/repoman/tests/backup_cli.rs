//! `repoman sync|verify|restore|conflicts` end to end: real rsync, real tmpfs mounts as the
//! backup root (these tests run as root), real signals. Every mount is removed by a Drop guard,
//! also when a test fails.

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

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
        let mut c = Command::cargo_bin("repoman").unwrap();
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("USER", "tester")
            .arg("--no-progress");
        c
    }

    fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("repoman"));
        c.env_clear()
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

/// Whether rsync's temporary file for `name` exists in `dir`.
fn transferring(dir: &Path, name: &str) -> bool {
    let prefix = format!(".{name}.");
    std::fs::read_dir(dir)
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

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigint_mid_transfer_cancels_cleanly_and_the_next_sync_completes() {
    let e = Estate::new(&["alpha"]);
    write(&e.src("alpha").join("small.txt"), b"small");
    e.ok(&["sync", "alpha"]);
    make_big(&e.src("alpha").join("big.bin"), 2048);
    let child = e
        .std_cmd(&["sync", "alpha"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // rsync writes into a temporary `.big.bin.XXXXXX`: the transfer is under way.
    let partial = e.dst("alpha").join(".repoman-partial");
    wait_for("the transfer to start", Duration::from_secs(60), || {
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
    wait_for(
        "the first transfer to start",
        Duration::from_secs(60),
        || transferring(&e.dst("alpha"), "big.bin"),
    );
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
    e.ok(&["sync", "alpha"]);
    assert!(e.dst("alpha").join("keep.rs").exists());
    assert!(!e.dst("alpha").join("scratch.tmp").exists());
    assert!(!e.dst("alpha").join("target").exists());
    e.ok(&["verify", "--full", "alpha"]);
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
