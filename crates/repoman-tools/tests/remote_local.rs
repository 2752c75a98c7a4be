//! The remote scan driven through a local exec channel (real `find`, `env`, `timeout` processes),
//! so its listing, shim policy, timeouts and failures are tested without a container. The same
//! code runs through Incus exec in `crates/repoman/tests/tools_sandbox.rs`.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use repoman_core::process::Cmd;
use repoman_tools::discover::{Origin, Outcome, ShimKind};
use repoman_tools::remote::{RemoteExec, RemoteOutput, RemoteScanOptions, scan_remote};
use repoman_tools::rules::Rules;

struct Local;

impl RemoteExec for Local {
    fn exec(&self, argv: &[String]) -> Result<RemoteOutput, String> {
        let out = Cmd::new(&argv[0])
            .args(&argv[1..])
            .timeout(Duration::from_secs(20))
            .output()
            .map_err(|e| e.to_string())?;
        Ok(RemoteOutput {
            code: out.status.code().unwrap_or(
                128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0),
            ),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

fn write_exe(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn remote_scan_lists_probes_and_never_runs_shims() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    let marker = r.join("SHIM-RAN");
    write_exe(
        &r.join("mise/shims/z3"),
        &format!("touch '{}'", marker.display()),
    );
    write_exe(&r.join("bin/git"), "echo 'git version 2.39.5'");
    write_exe(
        &r.join(".asdf/shims/node"),
        &format!("touch '{}'", marker.display()),
    );
    write_exe(
        &r.join("tools/z3/bin/z3"),
        "echo 'Z3 version 4.12.5 - 64 bit'",
    );
    write_exe(&r.join("tools/vampire/bin/vampire"), "sleep 30");
    write_exe(&r.join("tools/why3/bin/why3"), "echo nope >&2; exit 4");
    write_exe(
        &r.join("tools/agda/bin/agda"),
        "cat; echo 'Agda version 2.6.4.1'",
    );
    write_exe(&r.join("tools/x/lib/z3"), "echo never");
    write_exe(&r.join("tools/mystery/bin/frob"), "echo 1");
    write_exe(
        &r.join("installs/z3/4.13.0/bin/z3"),
        "echo 'Z3 version 4.13.0 - 64 bit'",
    );
    let opts = RemoteScanOptions {
        path_dirs: vec![
            r.join("mise/shims"),
            r.join("bin"),
            PathBuf::from("/nonexistent-dir"),
        ],
        tools_dirs: vec![r.join("tools")],
        manager_dirs: vec![("mise".into(), r.join("installs"))],
        shim_dirs: vec![r.join("mise/shims"), r.join(".asdf/shims")],
        max_depth: 4,
        timeout: Duration::from_secs(2),
        parallelism: 4,
    };
    let inv = scan_remote(&Local, &opts, &Rules::builtin().unwrap()).unwrap();
    let get = |p: &str| {
        inv.installs
            .iter()
            .find(|i| i.path == r.join(p))
            .unwrap_or_else(|| panic!("{p}: {inv:#?}"))
    };
    assert_eq!(get("bin/git").version.as_deref(), Some("2.39.5"));
    assert!(matches!(
        get("bin/git").origin,
        Origin::Path { rank: 1, .. }
    ));
    assert_eq!(get("tools/z3/bin/z3").version.as_deref(), Some("4.12.5"));
    assert_eq!(
        get("installs/z3/4.13.0/bin/z3").version.as_deref(),
        Some("4.13.0")
    );
    assert_eq!(
        get("tools/agda/bin/agda").version.as_deref(),
        Some("2.6.4.1"),
        "stdin must not block"
    );
    assert!(matches!(
        get("tools/vampire/bin/vampire").outcome,
        Outcome::TimedOut { .. }
    ));
    assert!(matches!(
        get("tools/why3/bin/why3").outcome,
        Outcome::Failed { code: Some(4), .. }
    ));
    assert!(
        inv.installs.iter().all(|i| !i.path.ends_with("x/lib/z3")),
        "lib/ is skipped"
    );
    assert_eq!(
        inv.shims.len(),
        2,
        "the shim dir on PATH and the asdf one that is not"
    );
    assert_eq!(inv.shims[0].kind, ShimKind::Mise);
    assert_eq!(inv.shims[1].kind, ShimKind::Asdf);
    assert_eq!(
        inv.shims[0].resolves_to,
        [r.join("installs/z3/4.13.0/bin/z3")]
    );
    assert_eq!(inv.unidentified.len(), 1);
    assert!(!marker.exists(), "a shim was executed");
}

#[test]
fn a_broken_channel_is_an_error() {
    struct Broken;
    impl RemoteExec for Broken {
        fn exec(&self, _: &[String]) -> Result<RemoteOutput, String> {
            Err("instance is not running".into())
        }
    }
    let e = scan_remote(
        &Broken,
        &RemoteScanOptions::default(),
        &Rules::builtin().unwrap(),
    )
    .unwrap_err();
    assert!(e.contains("not running"));
}
