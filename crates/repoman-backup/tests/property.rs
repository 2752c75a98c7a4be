//! The manifest is a proof (issue 16): for random trees, random edits of the working copy, random
//! silent rot on the backup (a flipped byte, size and mtime kept), lost stat caches, `--adopt`,
//! and random interruptions (a run killed after moving some files into place), after the next
//! completed sync `verify --full` passes exactly when the backup equals the working copy.
//!
//! Real rsync, real state log, the engine's own prepare / decide / execute / record steps.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use repoman_backup::engine::{self, Settings};
use repoman_backup::exclude::Excludes;
use repoman_backup::marker::Owner;
use repoman_backup::mount::{self, Expected};
use repoman_backup::rsync::{Plan, TEMP_DIR};
use repoman_backup::verify::{self, Mode, Scope};
use repoman_backup::{history, manifest};
use repoman_core::{Cancel, Clock, Env, NoProgress, Paths};
use repoman_state::{NewEvent, State};

const FILES: usize = 8;

/// One working-copy edit.
#[derive(Debug, Clone)]
enum Edit {
    Write(usize, Vec<u8>),
    Delete(usize),
    Chmod(usize, bool),
}

/// Damage on the backup side.
#[derive(Debug, Clone)]
enum Rot {
    /// Flip a byte, keep size and mtime: invisible to rsync's quick check.
    Flip(usize),
    /// The file disappears from the backup.
    Remove(usize),
}

#[derive(Debug, Clone)]
struct Step {
    edits: Vec<Edit>,
    rot: Vec<Rot>,
    /// Kill a run after it moved these planned paths (indexes into the plan) into place.
    interrupt: Option<Vec<usize>>,
    lose_cache: bool,
    adopt: bool,
}

fn path_of(i: usize) -> String {
    format!("d{}/f{i}", i % 3)
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..FILES, proptest::collection::vec(any::<u8>(), 1..40)).prop_map(|(i, b)| Edit::Write(i, b)),
        1 => (0..FILES).prop_map(Edit::Delete),
        1 => (0..FILES, any::<bool>()).prop_map(|(i, x)| Edit::Chmod(i, x)),
    ]
}

fn rot() -> impl Strategy<Value = Rot> {
    prop_oneof![
        3 => (0..FILES).prop_map(Rot::Flip),
        1 => (0..FILES).prop_map(Rot::Remove),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        proptest::collection::vec(edit(), 0..4),
        proptest::collection::vec(rot(), 0..3),
        proptest::option::weighted(0.4, proptest::collection::vec(0usize..20, 0..4)),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(edits, rot, interrupt, lose_cache, adopt)| Step {
            edits,
            rot,
            interrupt,
            lose_cache,
            adopt,
        })
}

struct World {
    _dir: tempfile::TempDir,
    src: PathBuf,
    backup_root: PathBuf,
    paths: Paths,
    env: Env,
    expected: Expected,
    /// Each write gets a later mtime, whole seconds apart (rsync's quick check).
    clock: u64,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("local/alpha");
        let backup_root = dir.path().join("backup");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&backup_root).unwrap();
        let env = Env::from_pairs([
            ("HOME", dir.path().join("home")),
            ("USER", PathBuf::from("alice")),
            ("XDG_RUNTIME_DIR", dir.path().join("run")),
            (
                "PATH",
                PathBuf::from(std::env::var_os("PATH").unwrap_or_default()),
            ),
        ]);
        let paths = Paths::resolve(&env).unwrap();
        // Whatever filesystem the temp dir is on is "the share" here.
        let expected =
            Expected::of(&mount::observe(&backup_root, Duration::from_secs(10)).unwrap());
        Self {
            _dir: dir,
            src,
            backup_root,
            paths,
            env,
            expected,
            clock: 1_700_000_000,
        }
    }

    fn dst(&self) -> PathBuf {
        self.backup_root.join("alpha")
    }

    fn state(&self) -> State {
        State::open(&self.paths, &self.env, Clock::system()).unwrap()
    }

    fn settings(&self, adopt: bool) -> Settings {
        let mut s = Settings::new(
            self.src.clone(),
            self.backup_root.clone(),
            self.paths.runtime_dir.join("locks"),
            engine::stat_cache_path(&self.paths.cache_dir, "alpha"),
            engine::manifests_dir(&self.paths.state_dir),
        );
        s.mount = self.expected.clone();
        s.adopt = adopt;
        s.search_path = std::env::var_os("PATH");
        s
    }

    fn owner(state: &State) -> Owner {
        Owner {
            estate_id: "estate".into(),
            project: "alpha".into(),
            repo: "alpha".into(),
            device: state.identity().device.clone(),
            profile: state.identity().profile.clone(),
        }
    }

    fn write(&mut self, i: usize, bytes: &[u8]) {
        let p = self.src.join(path_of(i));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        self.clock += 2;
        set_mtime(&p, SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock));
    }

    fn apply(&mut self, e: &Edit) {
        let p = self.src.join(path_of(match e {
            Edit::Write(i, _) | Edit::Delete(i) | Edit::Chmod(i, _) => *i,
        }));
        match e {
            Edit::Write(i, b) => self.write(*i, b),
            Edit::Delete(_) => {
                let _ = std::fs::remove_file(&p);
            }
            Edit::Chmod(_, x) => {
                if p.exists() {
                    let mode = if *x { 0o755 } else { 0o600 };
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
                }
            }
        }
    }

    fn rot(&self, r: &Rot) {
        match r {
            Rot::Flip(i) => {
                let p = self.dst().join(path_of(*i));
                let Ok(meta) = std::fs::metadata(&p) else {
                    return;
                };
                let mut b = std::fs::read(&p).unwrap();
                if b.is_empty() {
                    return;
                }
                b[0] ^= 0x20;
                std::fs::write(&p, &b).unwrap();
                set_mtime(&p, meta.modified().unwrap());
            }
            Rot::Remove(i) => {
                let _ = std::fs::remove_file(self.dst().join(path_of(*i)));
            }
        }
    }

    /// A sync killed after rsync moved `pick` of the planned paths into place (no record of its
    /// end, as after kill -9).
    fn interrupted(&self, pick: &[usize]) {
        let state = self.state();
        let prep = engine::prepare(
            self.settings(false),
            Self::owner(&state),
            &state,
            &Cancel::new(),
            || {},
        )
        .unwrap();
        let d = engine::decide(&state, &prep, &[], false).unwrap();
        if d.result.is_err() || prep.plan.is_empty() {
            return;
        }
        state
            .append(NewEvent::new(
                history::STARTED,
                prep.object(),
                serde_json::json!({"project": "alpha"}),
            ))
            .unwrap();
        let mut partial = Plan::default();
        for &k in pick {
            if let Some(item) = prep.plan.items.get(k % prep.plan.items.len()) {
                partial.items.push(item.clone());
            }
        }
        partial.deletes = partial.deletions().count() as u64;
        let mut job = prep.job.clone();
        job.temp_dir = true;
        std::fs::create_dir_all(prep.dst.join(TEMP_DIR)).unwrap();
        job.run_planned(
            &partial,
            &prep.settings().scratch_dir,
            &Cancel::new(),
            |_| {},
        )
        .unwrap();
    }

    /// A completed sync; returns its manifest's root.
    fn sync(&self, adopt: bool) -> String {
        let state = self.state();
        let prep = engine::prepare(
            self.settings(adopt),
            Self::owner(&state),
            &state,
            &Cancel::new(),
            || {},
        )
        .unwrap();
        let d = engine::decide(&state, &prep, &[], false).unwrap();
        let decision = d.result.unwrap_or_else(|b| panic!("blocked: {b}"));
        let report = engine::execute(
            &prep,
            &state,
            "2026-01-01T00:00:00.000Z".into(),
            &Cancel::new(),
            &NoProgress,
        )
        .unwrap();
        engine::record_synced(&state, &prep, &report, decision.event_seq).unwrap();
        report.manifest_root
    }

    /// The manifest of the last completed sync.
    fn last_manifest(&self) -> manifest::Manifest {
        let state = self.state();
        history::last_manifest(
            &state,
            &engine::manifests_dir(&self.paths.state_dir),
            "alpha",
        )
        .unwrap()
        .unwrap()
        .0
    }

    fn verify_full_clean(&self) -> bool {
        verify::verify(
            &self.dst(),
            &self.last_manifest(),
            &Excludes::default(),
            Mode::Full,
            Scope::All,
            &Cancel::new(),
        )
        .unwrap()
        .is_clean()
    }
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Every entry of a tree (as repoman mirrors it): type, permission bits, size, file mtime,
/// content, symlink target.
fn tree(root: &Path) -> BTreeMap<Vec<u8>, (u32, u64, i64, Vec<u8>)> {
    manifest::walk(root, &Excludes::default(), &Cancel::new())
        .unwrap()
        .into_iter()
        .map(|(p, m)| {
            let full = repoman_backup::paths::join(root, &p);
            let (content, mtime) = if m.is_file() {
                (std::fs::read(&full).unwrap(), m.mtime())
            } else {
                (Vec::new(), 0)
            };
            (
                p,
                (
                    m.mode(),
                    if m.is_file() { m.len() } else { 0 },
                    mtime,
                    content,
                ),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn verify_full_passes_exactly_when_the_backup_equals_the_working_copy(
        initial in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..FILES),
        steps in proptest::collection::vec(step(), 1..4),
    ) {
        let mut w = World::new();
        for (i, b) in initial.iter().enumerate() {
            w.write(i, b);
        }
        w.sync(false);
        prop_assert!(w.verify_full_clean());
        for s in &steps {
            for e in &s.edits {
                w.apply(e);
            }
            for r in &s.rot {
                w.rot(r);
            }
            if let Some(pick) = &s.interrupt {
                w.interrupted(pick);
            }
            if s.lose_cache {
                let _ = std::fs::remove_file(engine::stat_cache_path(&w.paths.cache_dir, "alpha"));
            }
            w.sync(s.adopt);
            let equal = tree(&w.src) == tree(&w.dst());
            prop_assert_eq!(w.verify_full_clean(), equal, "step {:?}", s);
        }
    }
}

/// Found by the property above: a file the backup lost (rot) and the working copy then deleted
/// is in no rsync item, so a manifest extended by the items alone kept listing it (a manifest
/// naming a path the working copy does not have), and `verify --full` failed on a backup equal to
/// the working copy. The extension is now checked against every source path of the dry run.
#[test]
fn a_path_gone_from_both_sides_is_not_kept_in_an_extended_manifest() {
    let mut w = World::new();
    w.write(0, b"zero");
    w.write(1, b"one");
    w.sync(false);
    assert!(w.verify_full_clean());
    w.apply(&Edit::Delete(0));
    w.rot(&Rot::Remove(0));
    let root = w.sync(false);
    assert_eq!(tree(&w.src), tree(&w.dst()));
    let m = w.last_manifest();
    assert_eq!(m.root, root);
    let paths: Vec<String> = m
        .entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect();
    assert!(
        !paths.iter().any(|p| p == &path_of(0)),
        "the manifest still lists {}: {paths:?}",
        path_of(0)
    );
    assert!(w.verify_full_clean());
}

/// The mirror case: a file the backup holds behind rsync's back, equal to a new working-copy file
/// by size and mtime but not by content, is skipped by rsync's quick check and named by no item.
/// The manifest must still list the working copy's file (it is rebuilt from the working copy),
/// and `verify --full` must then see that the backup's bytes are not the working copy's.
#[test]
fn a_file_planted_on_the_backup_does_not_drop_the_working_copy_file_from_the_manifest() {
    let mut w = World::new();
    w.write(0, b"zero");
    w.sync(false);
    w.write(1, b"one");
    let src = w.src.join(path_of(1));
    let planted = w.dst().join(path_of(1));
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, b"ONE").unwrap();
    let meta = std::fs::metadata(&src).unwrap();
    std::fs::set_permissions(&planted, meta.permissions()).unwrap();
    set_mtime(&planted, meta.modified().unwrap());
    w.sync(false);
    let m = w.last_manifest();
    assert!(
        m.entries.iter().any(|e| e.path == path_of(1).as_bytes()),
        "the manifest does not list the working copy's {}",
        path_of(1)
    );
    assert_eq!(
        std::fs::read(&planted).unwrap(),
        b"ONE",
        "rsync's quick check skipped it"
    );
    assert!(!w.verify_full_clean());
}
