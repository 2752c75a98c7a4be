//! Shared helpers for the state integration tests: a temp HOME with explicit `Env`, pinned clock.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use repoman_core::{Clock, Env, Paths};
use repoman_state::{State, StateOptions};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub env: Env,
    pub paths: Paths,
}

pub fn start() -> jiff::Timestamp {
    "2026-03-04T05:06:07Z".parse().unwrap()
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let env = Env::from_pairs([
            ("HOME", home.clone()),
            ("USER", PathBuf::from("alice")),
            ("XDG_RUNTIME_DIR", dir.path().join("run")),
        ]);
        let paths = Paths::resolve(&env).unwrap();
        Self { dir, env, paths }
    }

    pub fn open(&self) -> State {
        State::open(&self.paths, &self.env, Clock::pinned(start())).unwrap()
    }

    pub fn open_clock(&self, clock: Clock) -> State {
        State::open(&self.paths, &self.env, clock).unwrap()
    }

    pub fn open_with(&self, opts: StateOptions) -> State {
        State::open_with(&self.paths, &self.env, Clock::pinned(start()), opts).unwrap()
    }

    pub fn read_only(&self) -> State {
        State::open_read_only(&self.paths, &self.env, Clock::pinned(start())).unwrap()
    }

    pub fn state_dir(&self) -> &Path {
        &self.paths.state_dir
    }

    pub fn index(&self) -> PathBuf {
        self.paths.state_dir.join("index.db")
    }
}

/// Every file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if p.is_dir() {
                    walk(root, &p, out);
                }
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}
