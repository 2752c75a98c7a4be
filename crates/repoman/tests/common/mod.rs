//! Shared by the CLI tests that need a whole private estate: HOME, XDG dirs, working copies,
//! a backup root that is a plain directory declared with its real filesystem type (so the
//! mount guard lets syncs through), and no reachable Incus.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::cargo_bin;

/// A private estate: HOME, XDG dirs, working copies, a backup root that is a plain directory.
pub struct Estate {
    pub dir: tempfile::TempDir,
}

impl Estate {
    /// The backup root is a plain directory, declared with the type of the filesystem it is
    /// on, so the mount guard lets syncs through.
    pub fn new(extra_toml: &str) -> Self {
        Self::with_fstype(extra_toml, None)
    }

    /// `fstype`: what `backup_fstype` says (`None`: what the backup root really is on).
    pub fn with_fstype(extra_toml: &str, fstype: Option<&str>) -> Self {
        let e = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let fstype = fstype
            .map(str::to_owned)
            .unwrap_or_else(|| fstype_of(e.dir.path()));
        for p in ["alpha", "realm", "beta"] {
            std::fs::create_dir_all(e.local().join(p)).unwrap();
        }
        std::fs::create_dir_all(e.path("backup")).unwrap();
        std::fs::write(e.local().join("alpha/.tool-versions"), "nodejs 20.1.0\n").unwrap();
        e.write_registry(&format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {:?}\nbackup_root = {:?}\n\
             backup_fstype = {fstype:?}\nprobe_timeout_secs = 5\n\n\
             [[project]]\nname = \"alpha\"\nrepo = \"alpha\"\ncontainer = false\n\n{extra_toml}\n",
            e.local(),
            e.path("backup"),
        ));
        e
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }
    pub fn local(&self) -> PathBuf {
        self.path("local")
    }
    pub fn registry(&self) -> PathBuf {
        self.home().join(".config/repoman/repoman.toml")
    }
    pub fn write_registry(&self, text: &str) {
        std::fs::create_dir_all(self.registry().parent().unwrap()).unwrap();
        std::fs::write(self.registry(), text).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cargo_bin("repoman"));
        c.env_clear()
            .env("REPOMAN_STRICT_SCHEMAS", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("USER", "tester")
            // No test here may reach the shared Incus daemon by accident.
            .env("INCUS_SOCKET", self.path("no-incus.socket"))
            .current_dir(self.dir.path())
            .arg("--no-progress")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(args.join(" "), self.cmd(args))
    }

    /// Run in `dir` (relative to the working copies).
    pub fn in_dir(&self, dir: &str, args: &[&str]) -> Run {
        let mut c = self.cmd(args);
        c.current_dir(self.local().join(dir));
        self.run_cmd(format!("(in {dir}) {}", args.join(" ")), c)
    }

    /// Run and require success.
    pub fn ok(&self, dir: &str, args: &[&str]) {
        let r = self.in_dir(dir, args);
        assert_eq!(r.code, Some(0), "{}: {}", r.label, r.stderr);
    }

    /// Every event in the log, oldest segment first, as JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let dir = self.home().join(".local/state/repoman/events");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn run_cmd(&self, label: String, mut c: Command) -> Run {
        let out: Output = c.output().unwrap();
        Run {
            label,
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The type of the filesystem `path` is on (the longest mount point in mountinfo above it).
pub fn fstype_of(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.canonicalize().unwrap();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((PathBuf::from(f[4]), f.get(sep + 1)?.to_string()))
        })
        .filter(|(mnt, _)| path.starts_with(mnt))
        .max_by_key(|(mnt, _)| mnt.as_os_str().len())
        .map(|(_, t)| t)
        .unwrap()
}

/// One command of a case and what it did.
pub struct Run {
    pub label: String,
    pub code: Option<i32>,
    pub stderr: String,
}
