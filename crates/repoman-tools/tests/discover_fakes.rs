//! Discovery against generated fake tools: real files, real processes.
//!
//! Every fake appends its name to a counter file when it runs, so the tests can see exactly
//! which processes a scan started. The fake mise shim writes a marker file if it is ever run.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use repoman_tools::discover::{self, Origin, Outcome, ProbeCache, ScanOptions, ShimKind};
use repoman_tools::drift;
use repoman_tools::manifest::ManifestSet;
use repoman_tools::rules::Rules;

struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    counter: PathBuf,
    marker: PathBuf,
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
        let counter = root.join("count");
        let marker = root.join("SHIM-WAS-RUN");
        let lab = Self {
            _tmp: tmp,
            root,
            counter,
            marker,
        };
        let c = lab.counter.display().to_string();
        let t = lab.root.join("tools");
        let count = |name: &str| format!("echo {name} >> '{c}'");
        write_exe(
            &t.join("z3-4.12/bin/z3"),
            &format!("{}\necho 'Z3 version 4.12.5 - 64 bit'", count("z3")),
        );
        write_exe(
            &t.join("cvc5/bin/cvc5"),
            &format!(
                "{}\necho 'This is cvc5 version 1.1.2 [git tag 1.1.2]' >&2",
                count("cvc5")
            ),
        );
        write_exe(
            &t.join("Isabelle2024/bin/isabelle"),
            &format!(
                "{}\nif [ \"$1\" = version ]; then echo Isabelle2024; else echo 'usage: isabelle TOOL' >&2; exit 2; fi",
                count("isabelle")
            ),
        );
        write_exe(
            &t.join("vampire/bin/vampire"),
            &format!("{}\nexec sleep 30", count("vampire")),
        );
        write_exe(
            &t.join("agda/bin/agda"),
            &format!(
                "{}\nwhile read -r line; do :; done\necho 'Agda version 2.6.4.1'",
                count("agda")
            ),
        );
        write_exe(
            &t.join("why3/bin/why3"),
            &format!("{}\necho boom >&2; exit 3", count("why3")),
        );
        write_exe(
            &t.join("mystery/bin/frobnicate"),
            &format!("{}\necho 1.0", count("frobnicate")),
        );
        let home = lab.home();
        write_exe(
            &home.join(".local/share/mise/shims/node"),
            &format!("touch '{}'\necho v99.0.0", lab.marker.display()),
        );
        write_exe(
            &home.join(".local/share/mise/installs/node/20.11.1/bin/node"),
            &format!("{}\necho v20.11.1", count("mise-node")),
        );
        write_exe(
            &lab.root.join("pathbin/node"),
            &format!("{}\necho v18.19.0", count("path-node")),
        );
        // A pyenv shim on PATH and a rustup proxy (a hard link of rustup) in a tools dir.
        let m = lab.marker.display().to_string();
        write_exe(
            &home.join(".pyenv/shims/python3"),
            &format!("touch '{m}'\necho Python 3.0.0"),
        );
        write_exe(
            &t.join("rust/bin/rustup"),
            &format!("[ \"${{0##*/}}\" = rustc ] && touch '{m}'\necho 'rustup 1.0.0'"),
        );
        std::fs::hard_link(t.join("rust/bin/rustup"), t.join("rust/bin/rustc")).unwrap();
        lab
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn options(&self) -> ScanOptions {
        let home = self.home();
        ScanOptions {
            path_dirs: vec![
                home.join(".local/share/mise/shims"),
                self.root.join("pathbin"),
                home.join(".pyenv/shims"),
            ],
            tools_dirs: vec![self.root.join("tools")],
            manager_dirs: discover::manager_dirs(Some(&home)),
            max_depth: 4,
            // Generous for a loaded CI machine; only the hanging fake should reach it.
            timeout: Duration::from_secs(2),
            parallelism: 4,
            refresh: false,
            home: Some(home),
        }
    }

    fn runs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(&self.counter)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }
}

fn install<'a>(inv: &'a discover::Inventory, id: &str) -> &'a discover::Install {
    inv.installs
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", inv.installs))
}

#[test]
fn cold_scan_identifies_fakes_reports_failures_and_never_runs_shims() {
    let lab = Lab::new();
    let rules = Rules::builtin().unwrap();
    let mut cache = ProbeCache::default();
    let inv = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);

    assert_eq!(install(&inv, "z3").version.as_deref(), Some("4.12.5"));
    assert_eq!(
        install(&inv, "cvc5").version.as_deref(),
        Some("1.1.2"),
        "version on stderr"
    );
    assert_eq!(
        install(&inv, "isabelle").version.as_deref(),
        Some("2024"),
        "subcommand `version`"
    );
    let agda = install(&inv, "agda");
    assert_eq!(
        (agda.version.as_deref(), &agda.outcome),
        (Some("2.6.4.1"), &Outcome::Ok),
        "stdin is null"
    );
    assert!(matches!(
        install(&inv, "vampire").outcome,
        Outcome::TimedOut { after_ms: 2000 }
    ));
    assert!(matches!(
        install(&inv, "why3").outcome,
        Outcome::Failed { code: Some(3), .. }
    ));
    assert_eq!(inv.stats.timed_out, 1);

    // The mise install and the PATH install of node are both found; the shim is not run.
    let nodes: Vec<_> = inv.installs.iter().filter(|i| i.id == "node").collect();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().any(|n| n.version.as_deref() == Some("20.11.1")
        && matches!(&n.origin, Origin::Manager { manager, .. } if manager == "mise")));
    assert!(
        nodes
            .iter()
            .any(|n| n.version.as_deref() == Some("18.19.0"))
    );
    let kinds: Vec<(String, ShimKind)> =
        inv.shims.iter().map(|s| (s.name.clone(), s.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("node".into(), ShimKind::Mise),
            ("python3".into(), ShimKind::Pyenv),
            ("rustc".into(), ShimKind::Rustup)
        ]
    );
    assert_eq!(
        inv.shims[0].resolves_to,
        [lab.home()
            .join(".local/share/mise/installs/node/20.11.1/bin/node")]
    );
    assert!(!lab.marker.exists(), "a shim was executed");

    // Unidentified executables are listed, never run.
    assert_eq!(inv.unidentified.len(), 1);
    assert!(inv.unidentified[0].path.ends_with("mystery/bin/frobnicate"));
    assert_eq!(
        lab.runs(),
        [
            "agda",
            "cvc5",
            "isabelle",
            "mise-node",
            "path-node",
            "vampire",
            "why3",
            "z3"
        ]
    );
}

#[test]
fn warm_scan_runs_no_process_and_a_changed_file_is_probed_again() {
    let lab = Lab::new();
    let rules = Rules::builtin().unwrap();
    // Directories older than the racy window, so the cold scan caches every listing and an
    // unchanged warm scan has nothing to update.
    age_dirs(
        &lab.root,
        std::time::SystemTime::now() - Duration::from_secs(60),
    );
    let cache_dir = lab.root.join("cache");
    let mut cache = ProbeCache::load(&cache_dir);
    let cold = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert!(cache.save(&cache_dir).unwrap());
    let after_cold = lab.runs();
    assert_eq!(after_cold.len(), 8);

    let mut cache = ProbeCache::load(&cache_dir);
    let warm = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert_eq!(lab.runs(), after_cold, "the warm scan started a process");
    assert_eq!(
        (warm.stats.probed, warm.stats.cached),
        (0, cold.stats.candidates)
    );
    assert!(
        !cache.save(&cache_dir).unwrap(),
        "an unchanged cache is not rewritten"
    );
    let version = |inv: &discover::Inventory, id: &str| install(inv, id).version.clone();
    assert_eq!(version(&warm, "z3"), version(&cold, "z3"));

    // A new z3 build at the same path: only it is probed again.
    write_exe(
        &lab.root.join("tools/z3-4.12/bin/z3"),
        &format!(
            "echo z3 >> '{}'\necho 'Z3 version 4.13.0 - 64 bit'",
            lab.counter.display()
        ),
    );
    let again = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert_eq!(again.stats.probed, 1);
    assert_eq!(version(&again, "z3").as_deref(), Some("4.13.0"));

    // Cached directory listings notice new and removed entries (the directory's mtime changes).
    write_exe(
        &lab.root.join("tools/z3-4.12/bin/cvc5"),
        "echo 'This is cvc5 version 1.2.0'",
    );
    write_exe(
        &lab.root.join("tools/lean4/bin/lean"),
        "echo 'Lean (version 4.9.0, Release)'",
    );
    std::fs::remove_file(lab.root.join("tools/why3/bin/why3")).unwrap();
    let changed = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert_eq!(changed.stats.probed, 2);
    assert!(
        changed
            .installs
            .iter()
            .any(|i| i.path.ends_with("z3-4.12/bin/cvc5"))
    );
    assert_eq!(version(&changed, "lean").as_deref(), Some("4.9.0"));
    assert!(changed.installs.iter().all(|i| i.id != "why3"));
    assert!(
        !cache.entries.keys().any(|p| p.ends_with("why3/bin/why3")),
        "stale cache entry kept"
    );

    let mut refresh = lab.options();
    refresh.refresh = true;
    let r = discover::scan(&refresh, &rules, &mut cache, &discover::NoReport);
    assert_eq!(r.stats.probed, r.stats.candidates);
    assert!(!lab.marker.exists());
}

#[test]
fn sequential_and_parallel_scans_agree() {
    let lab = Lab::new();
    let rules = Rules::builtin().unwrap();
    let mut seq = lab.options();
    seq.parallelism = 1;
    let a = discover::scan(
        &seq,
        &rules,
        &mut ProbeCache::default(),
        &discover::NoReport,
    );
    let b = discover::scan(
        &lab.options(),
        &rules,
        &mut ProbeCache::default(),
        &discover::NoReport,
    );
    let key = |inv: &discover::Inventory| {
        let mut v: Vec<_> = inv
            .installs
            .iter()
            .map(|i| (i.path.clone(), i.version.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&a), key(&b));
}

#[test]
fn doctor_finds_shim_ahead_failures_and_unreadable_dirs() {
    let lab = Lab::new();
    let rules = Rules::builtin().unwrap();
    let mut opts = lab.options();
    let not_a_dir = lab.root.join("count-as-dir");
    std::fs::write(&not_a_dir, "x").unwrap();
    opts.tools_dirs.push(not_a_dir.clone());
    let inv = discover::scan(
        &opts,
        &rules,
        &mut ProbeCache::default(),
        &discover::NoReport,
    );
    let findings = drift::doctor(&inv);
    let kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&"shim-ahead"), "{findings:#?}");
    assert!(
        findings
            .iter()
            .any(|f| f.kind == "unreadable-dir" && f.paths == [not_a_dir.clone()]),
        "{findings:#?}"
    );
    assert_eq!(
        findings.iter().filter(|f| f.kind == "probe-failed").count(),
        2,
        "{findings:#?}"
    );
}

#[test]
fn status_ghosts_and_discovered_events() {
    let lab = Lab::new();
    let rules = Rules::builtin().unwrap();
    let mut cache = ProbeCache::default();
    let inv = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    let proj = lab.root.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(
        proj.join(".tool-versions"),
        "z3 4.12.5\nnodejs 21 20\ncvc5 1.0\nlean 4.9.0\nfoo 1\n",
    )
    .unwrap();
    std::fs::write(proj.join("mise.toml"), "[tools]\nisabelle = \"2024\"\n").unwrap();
    let projects = drift::load_projects(&[("proj".into(), proj.clone())], &[]);
    let st = drift::status(&projects[0], &inv, &rules);
    let state = |t: &str| st.iter().find(|s| s.tool == t).unwrap().state_name();
    assert_eq!(state("z3"), "satisfied");
    assert_eq!(
        state("nodejs"),
        "satisfied",
        "the fallback 20 matches the mise install"
    );
    assert_eq!(state("cvc5"), "mismatch");
    assert_eq!(state("lean"), "missing");
    assert_eq!(state("foo"), "unknown");
    assert_eq!(state("isabelle"), "satisfied");
    let node = st.iter().find(|s| s.tool == "nodejs").unwrap();
    assert!(matches!(&node.state, drift::ToolState::Satisfied { matched, .. } if matched == "20"));

    let declared = drift::declared_ids(&projects, &ManifestSet::default(), &rules);
    let events = drift::discovered_events(&inv, &declared, &mut cache);
    let ghost = |id: &str| {
        events
            .iter()
            .find(|e| e.object == format!("tool:{id}"))
            .map(|e| e.data["ghost"].as_bool().unwrap())
    };
    assert_eq!(ghost("z3"), Some(false));
    assert_eq!(ghost("agda"), Some(true));
    assert_eq!(
        ghost("vampire"),
        None,
        "a timed-out probe is not a discovery"
    );
    assert!(events.iter().all(|e| e.type_ == "tool.discovered"));
    assert!(
        drift::discovered_events(&inv, &declared, &mut cache).is_empty(),
        "reported once"
    );
}

fn age_dirs(dir: &Path, t: std::time::SystemTime) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            age_dirs(&e.path(), t);
        }
    }
    std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
}

#[test]
fn directory_listings_are_cached_by_mtime() {
    let lab = Lab::new();
    let rules = Rules::builtin().unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    age_dirs(&lab.root.join("tools"), old);
    let mut cache = ProbeCache::default();
    discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert!(cache.dirs.contains_key(&lab.root.join("tools/z3-4.12/bin")));

    // A new entry whose directory mtime is put back is invisible: the listing came from the
    // cache, no directory was read again.
    let bin = lab.root.join("tools/z3-4.12/bin");
    write_exe(&bin.join("cvc5"), "echo 'This is cvc5 version 1.2.0'");
    std::fs::File::open(&bin)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let inv = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert!(
        inv.installs
            .iter()
            .all(|i| i.id != "cvc5" || !i.path.starts_with(&bin))
    );

    // With its real mtime the directory is read again and the tool found; --refresh re-reads all.
    std::fs::File::open(&bin)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let inv = discover::scan(&lab.options(), &rules, &mut cache, &discover::NoReport);
    assert!(inv.installs.iter().any(|i| i.path == bin.join("cvc5")));
    std::fs::remove_file(bin.join("cvc5")).unwrap();
    std::fs::File::open(&bin)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut refresh = lab.options();
    refresh.refresh = true;
    let inv = discover::scan(&refresh, &rules, &mut cache, &discover::NoReport);
    assert!(inv.installs.iter().all(|i| i.path != bin.join("cvc5")));
}
