//! The engine against real guests: the three interfaces, and hostile modules that must end in
//! a clear error naming the SNIF (never a crash or a hang).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{guest, snif};
use repoman_core::{DomainError, ErrorKind};
use repoman_snif::interface::{
    ContractRef, DetectorInput, Level, PolicyEffect, PolicyInput, Probe, SourceFile, ValidatorInput,
};
use repoman_snif::{Grants, Host, Interface, SnifError};
use serde_json::json;

fn host() -> Host {
    Host::new().unwrap()
}

fn validator_input(content: &str) -> ValidatorInput {
    ValidatorInput {
        contract: ContractRef {
            realm: "platform".into(),
            domain: "billing".into(),
            name: "invoice".into(),
            version: "1.2.0".into(),
            schema: json!({"type": "object"}),
        },
        repo: "api".into(),
        role: "exporter".into(),
        files: vec![SourceFile {
            path: "src/invoice.rs".into(),
            content: Some(content.into()),
            size: content.len() as u64,
        }],
    }
}

#[test]
fn a_validator_passes_and_fails_with_messages() {
    let h = host();
    let s = snif("no-todo", Interface::ContractValidator, guest("validator"));
    let ok = repoman_snif::validate_contract(&h, &s, &validator_input("struct Invoice;")).unwrap();
    assert!(ok.valid);
    assert!(ok.messages.is_empty());
    let bad = repoman_snif::validate_contract(&h, &s, &validator_input("// TODO: total")).unwrap();
    assert!(!bad.valid);
    assert_eq!(bad.messages.len(), 1);
    assert_eq!(bad.messages[0].level, Level::Error);
    assert_eq!(bad.messages[0].message, "a source file contains TODO");
}

fn plan(actor_kind: &str, operation: &str) -> PolicyInput {
    PolicyInput {
        operation: operation.into(),
        object: "backup:alpha".into(),
        project: Some("alpha".into()),
        actor: format!("{actor_kind}:alpha"),
        actor_kind: actor_kind.into(),
        profile: "default".into(),
        details: BTreeMap::new(),
    }
}

#[test]
fn a_policy_rule_denies_a_sync_by_an_agent() {
    let h = host();
    let s = snif(
        "agent-no-sync",
        Interface::PolicyRule,
        guest("policy-agent-sync"),
    );
    let out = repoman_snif::evaluate_policy(&h, &s, &plan("agent", "sync")).unwrap();
    assert_eq!(out.effect, PolicyEffect::Deny);
    assert_eq!(out.reason, "agents may not sync backups");
    for (kind, op) in [("human", "sync"), ("agent", "restore")] {
        let out = repoman_snif::evaluate_policy(&h, &s, &plan(kind, op)).unwrap();
        assert_eq!(out.effect, PolicyEffect::Allow, "{kind} {op}");
    }
}

#[test]
fn a_tool_detector_identifies_a_made_up_tool() {
    let h = host();
    let s = snif("frob", Interface::ToolDetector, guest("detector-frob"));
    let input = |name: &str, stdout: &str| DetectorInput {
        name: name.into(),
        path: format!("/opt/frob/bin/{name}"),
        probe: Some(Probe {
            args: vec!["--version".into()],
            stdout: stdout.into(),
            stderr: String::new(),
            exit_code: Some(0),
        }),
    };
    let out =
        repoman_snif::detect_tool(&h, &s, &input("frobc", "Frobnicator version 4.2.17\n")).unwrap();
    assert!(out.matched);
    assert_eq!(out.tool.as_deref(), Some("frob"));
    assert_eq!(out.category.as_deref(), Some("compiler"));
    assert_eq!(out.version.as_deref(), Some("4.2.17"));
    let out = repoman_snif::detect_tool(&h, &s, &input("gcc", "gcc (Debian) 12.2.0")).unwrap();
    assert!(!out.matched);
}

#[test]
fn the_wrong_interface_is_refused_before_the_call() {
    let h = host();
    let s = snif("frob", Interface::ToolDetector, guest("detector-frob"));
    let err = repoman_snif::evaluate_policy(&h, &s, &plan("agent", "sync")).unwrap_err();
    assert!(matches!(err, SnifError::WrongInterface { .. }), "{err}");
}

fn raw_err(s: &repoman_snif::Snif) -> SnifError {
    host().call_raw(s, b"{}").unwrap_err()
}

#[test]
fn an_infinite_loop_is_stopped_by_the_fuel_budget() {
    let mut s = snif("spin", Interface::ContractValidator, guest("loop"));
    s.limits.fuel = 5_000_000;
    let err = raw_err(&s);
    assert!(matches!(err, SnifError::FuelExhausted { .. }), "{err}");
    assert!(err.to_string().starts_with("snif spin: "), "{err}");
    assert_eq!(err.kind(), ErrorKind::Failed);
}

#[test]
fn an_infinite_loop_is_stopped_by_the_deadline_when_fuel_is_plentiful() {
    let mut s = snif("spin", Interface::ContractValidator, guest("loop"));
    s.limits.fuel = u64::MAX;
    s.limits.deadline = Duration::from_millis(200);
    let err = raw_err(&s);
    assert!(matches!(err, SnifError::DeadlineExceeded { .. }), "{err}");
    assert!(err.to_string().contains("deadline of 200ms"), "{err}");
}

#[test]
fn memory_growth_past_the_limit_is_stopped() {
    let mut s = snif("hog", Interface::ContractValidator, guest("grow"));
    s.limits.memory = 4 << 20;
    let err = raw_err(&s);
    assert!(
        matches!(err, SnifError::MemoryLimit { limit, .. } if limit == 4 << 20),
        "{err}"
    );
    assert!(err.to_string().starts_with("snif hog: "), "{err}");

    // A module whose declared memory is already over the limit never starts.
    let mut s = snif("big", Interface::ContractValidator, guest("big-memory"));
    s.limits.memory = 16 << 20;
    let err = raw_err(&s);
    assert!(matches!(err, SnifError::MemoryLimit { .. }), "{err}");
}

#[test]
fn a_1_gib_output_is_refused_without_copying_it() {
    let s = snif("flood", Interface::ContractValidator, guest("huge-output"));
    let err = raw_err(&s);
    match err {
        SnifError::OutputTooLarge { len, limit, .. } => {
            assert_eq!(len, 1 << 30);
            assert_eq!(limit, repoman_snif::Limits::DEFAULT.output);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_trap_and_malformed_outputs_are_clear_errors() {
    let h = host();
    let s = snif("boom", Interface::ContractValidator, guest("trap"));
    let err = raw_err(&s);
    assert!(matches!(err, SnifError::Trap { .. }), "{err}");
    assert!(err.to_string().starts_with("snif boom: trapped"), "{err}");

    let s = snif("garbled", Interface::ContractValidator, guest("malformed"));
    let err = repoman_snif::validate_contract(&h, &s, &validator_input("text")).unwrap_err();
    assert!(
        matches!(&err, SnifError::MalformedOutput { message, .. } if message.contains("not JSON")),
        "{err}"
    );
    let err = repoman_snif::validate_contract(&h, &s, &validator_input("x")).unwrap_err();
    assert!(
        matches!(&err, SnifError::MalformedOutput { message, .. } if message.contains("/valid")),
        "{err}"
    );
}

#[test]
fn an_ungranted_import_is_refused_at_instantiate() {
    let h = host();
    let mut s = snif("timed", Interface::ContractValidator, guest("clock"));
    let err = h.call_raw(&s, b"{}").unwrap_err();
    match &err {
        SnifError::NotGranted {
            import, capability, ..
        } => {
            assert_eq!(import, "wasi_snapshot_preview1.clock_time_get");
            assert_eq!(capability, "clock");
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.kind(), ErrorKind::Blocked);
    assert_eq!(
        err.hint().unwrap(),
        "to allow it: repoman snif grant timed --clock"
    );
    s.grants.clock = true;
    let out = h.call_raw(&s, b"{}").unwrap();
    assert_eq!(out.output, br#"{"valid":true,"messages":[]}"#);
}

#[test]
fn an_import_the_host_does_not_provide_is_refused() {
    let s = snif("shell", Interface::ContractValidator, guest("bad-import"));
    let err = raw_err(&s);
    assert!(
        matches!(&err, SnifError::UnsupportedImport { import, .. } if import == "env.system"),
        "{err}"
    );
}

#[test]
fn a_warm_call_uses_the_module_cache() {
    let h = host();
    let s = snif("no-todo", Interface::ContractValidator, guest("validator"));
    assert!(!h.is_cached(&s.module_hash));
    h.call_raw(&s, b"x").unwrap();
    assert!(h.is_cached(&s.module_hash));
    let out = h.call_raw(&s, b"TODO").unwrap();
    assert!(out.fuel_used > 0);
}

#[test]
fn each_call_gets_a_fresh_instance() {
    // The validator's output must not depend on an earlier call's input.
    let h = host();
    let s = snif("no-todo", Interface::ContractValidator, guest("validator"));
    let big = "TODO".repeat(40_000);
    assert!(
        h.call_raw(&s, big.as_bytes())
            .unwrap()
            .output
            .starts_with(br#"{"valid":false"#)
    );
    assert!(
        h.call_raw(&s, b"fine")
            .unwrap()
            .output
            .starts_with(br#"{"valid":true"#)
    );
}

fn reader(dir: Option<&std::path::Path>) -> repoman_snif::Snif {
    let mut s = snif("reader", Interface::ContractValidator, guest("reader"));
    s.grants = Grants {
        filesystem: dir.map(|d| std::fs::canonicalize(d).unwrap()),
        ..Grants::default()
    };
    s
}

fn read(s: &repoman_snif::Snif, request: &str) -> String {
    let out = host().call_raw(s, request.as_bytes()).unwrap();
    String::from_utf8(out.output).unwrap()
}

#[test]
fn a_granted_directory_is_readable_but_dotdot_and_symlinks_out_are_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let granted = tmp.path().join("granted");
    std::fs::create_dir_all(granted.join("sub")).unwrap();
    std::fs::write(granted.join("inside.txt"), "hello from inside").unwrap();
    std::fs::write(tmp.path().join("outside.txt"), "secret").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", granted.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", granted.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("inside.txt", granted.join("ok-link")).unwrap();
    let s = reader(Some(&granted));

    // The positive control: reading inside works, so the denials below are real denials.
    assert_eq!(read(&s, "-inside.txt"), "OK:hello from inside");
    assert_eq!(read(&s, "-sub/../inside.txt"), "OK:hello from inside");
    assert_eq!(read(&s, "Fok-link"), "OK:hello from inside");

    // ENOTCAPABLE (76): the kernel refused to resolve outside the directory.
    for path in [
        "-../../../../../../etc/passwd",
        "-../outside.txt",
        "-sub/../../outside.txt",
        "-/etc/passwd",
        "Fpasswd-link",
        "Frel-link",
    ] {
        assert_eq!(read(&s, path), "E76", "{path}");
    }
    // Without follow, the final symlink is not followed at all (ELOOP, 32).
    assert_eq!(read(&s, "-passwd-link"), "E32");
    // Asking to create a file is refused: the directory is read-only.
    assert_eq!(read(&s, "Wnew.txt"), "E76");
    assert!(!granted.join("new.txt").exists());
}

#[test]
fn a_fifo_in_the_granted_directory_cannot_hang_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let s = reader(Some(tmp.path()));
    // ENOTSUP (58): opened non-blocking, found not to be a regular file, closed again.
    assert_eq!(read(&s, "-fifo"), "E58");
}

#[test]
fn without_a_grant_the_reader_cannot_even_start() {
    let s = reader(None);
    let err = host().call_raw(&s, b"-inside.txt").unwrap_err();
    assert!(
        matches!(&err, SnifError::NotGranted { capability, .. } if capability == "filesystem"),
        "{err}"
    );
}
