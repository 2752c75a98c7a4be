//! Installing, granting and removing SNIFs: content-addressed files, events, the policy gate,
//! and refusals (a manifest that lies about its imports, a module changed on disk).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::write_snif;
use repoman_core::{Clock, DomainError, Env, ErrorKind, Paths};
use repoman_snif::store::{self, GrantRequest, SnifStore};
use repoman_snif::{Host, SnifError};
use repoman_state::{EventQuery, GateMode, State};

struct Fixture {
    home: tempfile::TempDir,
    host: Host,
}

impl Fixture {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            host: Host::new().unwrap(),
        }
    }

    fn env(&self, user: &str) -> Env {
        Env::from_pairs([
            ("HOME", self.home.path().to_path_buf()),
            ("USER", user.into()),
            ("XDG_RUNTIME_DIR", self.home.path().join("run")),
        ])
    }

    fn paths(&self) -> Paths {
        Paths::resolve(&self.env("tester")).unwrap()
    }

    fn state(&self) -> State {
        State::open(
            &self.paths(),
            &self.env("tester"),
            Clock::pinned("2026-05-06T07:08:09Z".parse().unwrap()),
        )
        .unwrap()
    }

    fn store(&self) -> SnifStore {
        SnifStore::new(&self.paths())
    }

    fn src(&self) -> std::path::PathBuf {
        self.home.path().join("src")
    }

    fn install(&self, dir: &Path, mode: GateMode) -> Result<store::InstallPlan, SnifError> {
        store::install(&self.host, &self.store(), &self.state(), &[], dir, mode)
    }

    fn events(&self, ty: &str) -> Vec<repoman_state::Event> {
        self.state()
            .events(&EventQuery {
                type_: Some(ty.into()),
                ..Default::default()
            })
            .unwrap()
    }
}

#[test]
fn install_stores_the_module_content_addressed_and_records_an_event() {
    let f = Fixture::new();
    let dir = write_snif(&f.src(), "no-todo", "validator", "contract-validator", "");
    let plan = f.install(&dir, GateMode::DryRun).unwrap();
    assert!(plan.dry_run);
    assert!(!f.paths().data_dir.exists(), "a dry run writes nothing");
    assert!(f.events("snif.installed").is_empty());

    let plan = f.install(&dir, GateMode::Record).unwrap();
    let wasm = std::fs::read(dir.join("module.wasm")).unwrap();
    assert_eq!(plan.module, blake3::hash(&wasm).to_hex().to_string());
    let stored = f
        .paths()
        .data_dir
        .join("snifs/modules")
        .join(format!("{}.wasm", plan.module));
    assert_eq!(std::fs::read(&stored).unwrap(), wasm);
    let ev = f.events("snif.installed");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].object, "snif:no-todo");
    assert_eq!(ev[0].data["module"], plan.module.as_str());
    assert_eq!(ev[0].data["previous"], serde_json::Value::Null);

    let listed = f.store().list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "no-todo");
    // Installing from the manifest file itself works too, and names the previous module.
    let again = f.install(&dir.join("snif.toml"), GateMode::Record).unwrap();
    assert_eq!(again.previous.as_deref(), Some(plan.module.as_str()));
}

#[test]
fn a_manifest_that_lies_about_its_imports_is_refused_at_install() {
    let f = Fixture::new();
    // The reader imports path_open & co.; this manifest asks for no capability at all.
    let dir = write_snif(&f.src(), "liar", "reader", "contract-validator", "");
    let err = f.install(&dir, GateMode::Record).unwrap_err();
    match &err {
        SnifError::ImportsExceedManifest { name, imports } => {
            assert_eq!(name, "liar");
            assert!(
                imports
                    .iter()
                    .any(|i| i == "wasi_snapshot_preview1.path_open (`filesystem`)"),
                "{imports:?}"
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(f.store().list().unwrap().is_empty());
    assert!(f.events("snif.installed").is_empty());

    // Telling the truth gets it installed (and still not granted).
    let dir = write_snif(
        &f.src(),
        "honest",
        "reader",
        "contract-validator",
        "[capabilities]\nfilesystem = true\n",
    );
    f.install(&dir, GateMode::Record).unwrap();
    let insp = f.store().inspect(&f.host, "honest").unwrap();
    assert!(insp.intact);
    let open = insp
        .imports
        .iter()
        .find(|r| r.import.name == "wasi_snapshot_preview1.path_open")
        .unwrap();
    assert!(open.claimed && !open.granted);
}

#[test]
fn an_import_no_host_provides_is_refused_at_install() {
    let f = Fixture::new();
    let dir = write_snif(&f.src(), "shell", "bad-import", "contract-validator", "");
    let err = f.install(&dir, GateMode::Record).unwrap_err();
    assert!(matches!(err, SnifError::UnsupportedImport { .. }), "{err}");
}

#[test]
fn grants_are_checked_against_the_manifest_recorded_and_bound_to_the_module() {
    let f = Fixture::new();
    let dir = write_snif(
        &f.src(),
        "reader",
        "reader",
        "contract-validator",
        "[capabilities]\nfilesystem = true\nenv = [\"LANG\"]\n",
    );
    f.install(&dir, GateMode::Record).unwrap();
    let granted = f.home.path().join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(granted.join("a.txt"), "A").unwrap();

    let clock = GrantRequest {
        clock: true,
        ..Default::default()
    };
    let err = store::grant(
        &f.store(),
        &f.state(),
        &[],
        "reader",
        &clock,
        GateMode::Record,
    )
    .unwrap_err();
    assert!(matches!(err, SnifError::NotRequested { .. }), "{err}");

    let req = GrantRequest {
        dir: Some(granted.clone()),
        env: vec![("LANG".into(), "C.UTF-8".into())],
        ..Default::default()
    };
    store::grant(
        &f.store(),
        &f.state(),
        &[],
        "reader",
        &req,
        GateMode::DryRun,
    )
    .unwrap();
    assert!(f.events("snif.granted").is_empty());
    let g = store::grant(
        &f.store(),
        &f.state(),
        &[],
        "reader",
        &req,
        GateMode::Record,
    )
    .unwrap();
    assert_eq!(g.filesystem, Some(std::fs::canonicalize(&granted).unwrap()));
    let ev = f.events("snif.granted");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].data["grants"]["env"], serde_json::json!(["LANG"]));
    assert!(
        !ev[0].to_line().contains("C.UTF-8"),
        "env values stay out of the log"
    );

    let s = f.store().load("reader").unwrap();
    let out = f.host.call_raw(&s, b"-a.txt").unwrap();
    assert_eq!(out.output, b"OK:A");

    // New bytes under the same name drop the grants: they were given to the old module.
    let dir2 = write_snif(
        &f.src(),
        "reader",
        "validator",
        "contract-validator",
        "[capabilities]\nfilesystem = true\n",
    );
    let plan = f.install(&dir2, GateMode::Record).unwrap();
    assert!(plan.drops_grants);
    let s = f.store().load("reader").unwrap();
    assert_eq!(s.grants, repoman_snif::Grants::default());
}

#[test]
fn a_module_changed_on_disk_is_refused() {
    let f = Fixture::new();
    let dir = write_snif(&f.src(), "no-todo", "validator", "contract-validator", "");
    let plan = f.install(&dir, GateMode::Record).unwrap();
    let stored = f
        .paths()
        .data_dir
        .join("snifs/modules")
        .join(format!("{}.wasm", plan.module));
    let mut perms = std::fs::metadata(&stored).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&stored, perms).unwrap();
    std::fs::write(&stored, common::guest("trap")).unwrap();
    let err = f.store().load("no-todo").unwrap_err();
    assert!(
        err.to_string().contains("no longer hashes to its name"),
        "{err}"
    );
    assert!(!f.store().inspect(&f.host, "no-todo").unwrap().intact);
}

#[test]
fn remove_deletes_the_record_grants_and_unshared_module() {
    let f = Fixture::new();
    let a = write_snif(&f.src(), "a", "validator", "contract-validator", "");
    let b = write_snif(&f.src(), "b", "validator", "contract-validator", "");
    let plan = f.install(&a, GateMode::Record).unwrap();
    f.install(&b, GateMode::Record).unwrap();
    let module = f
        .paths()
        .data_dir
        .join("snifs/modules")
        .join(format!("{}.wasm", plan.module));
    store::remove(&f.store(), &f.state(), &[], "a", GateMode::DryRun).unwrap();
    assert_eq!(f.store().list().unwrap().len(), 2);
    store::remove(&f.store(), &f.state(), &[], "a", GateMode::Record).unwrap();
    assert!(module.exists(), "b still uses the same bytes");
    store::remove(&f.store(), &f.state(), &[], "b", GateMode::Record).unwrap();
    assert!(!module.exists());
    assert_eq!(f.events("snif.removed").len(), 2);
    let err = store::remove(&f.store(), &f.state(), &[], "b", GateMode::Record).unwrap_err();
    assert!(matches!(err, SnifError::NotInstalled(_)), "{err}");
    assert_eq!(
        err.hint().unwrap(),
        "`repoman snif list` shows the installed SNIFs"
    );
}

#[test]
fn an_agent_cannot_install_or_grant() {
    let f = Fixture::new();
    let dir = write_snif(&f.src(), "no-todo", "validator", "contract-validator", "");
    let paths = f.paths();
    let agent = State::open_with(
        &paths,
        &f.env("tester"),
        Clock::pinned("2026-05-06T07:08:09Z".parse().unwrap()),
        repoman_state::StateOptions {
            actor: repoman_state::ActorRequest::Agent("alpha".parse().unwrap()),
            ..Default::default()
        },
    );
    let Ok(agent) = agent else {
        panic!("opening the state as an agent failed");
    };
    let err = store::install(&f.host, &f.store(), &agent, &[], &dir, GateMode::Record).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Blocked, "{err}");
    assert!(err.to_string().contains("snif.human-only"), "{err}");
    assert!(f.store().list().unwrap().is_empty());

    let dir = write_snif(
        &f.src(),
        "timed",
        "clock",
        "contract-validator",
        "[capabilities]\nclock = true\n",
    );
    f.install(&dir, GateMode::Record).unwrap();
    let req = GrantRequest {
        clock: true,
        ..Default::default()
    };
    let err = store::grant(&f.store(), &agent, &[], "timed", &req, GateMode::Record).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Blocked, "{err}");
    assert!(!f.store().load("timed").unwrap().grants.clock);
}
