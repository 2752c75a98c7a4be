//! SNIF benchmark (issue 15), run by `scripts/bench/snif`; results in docs/performance.md.
//!
//! The same check done two ways on the same binding, in the same run:
//! - the **shell hook** as the realm check runs it today: a `/bin/sh` script, started through
//!   `repoman_core::process::Cmd` (argv, cwd = the repo, a timeout), that greps the binding's
//!   source files for TODO;
//! - the **SNIF**: the `validator` guest (tests/guests/validator.wat), given the same files'
//!   contents as `contract-validator/v1` JSON (reading the files and building the JSON is
//!   timed too).
//!
//! Timed: warm SNIF call (module cached in the host), cold SNIF call (a new host: validation
//! and translation included; wasmi has no precompiled form, so "with cache" is the warm row),
//! and the hook process. Every timed call's result is checked; a wrong answer aborts the run.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use repoman_core::process::Cmd;
use repoman_snif::interface::{ContractRef, SourceFile, ValidatorInput};
use repoman_snif::{Grants, Host, Interface, Limits, Snif};

fn guest(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests");
    let prelude = std::fs::read_to_string(dir.join("prelude.wat")).expect("prelude.wat");
    let src = std::fs::read_to_string(dir.join(format!("{name}.wat")))
        .expect("guest source")
        .replace(";;@prelude", &prelude);
    wat::parse_str(&src).expect("guest assembles")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..(n / 10).max(1) {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn input(repo: &Path, files: &[&str]) -> ValidatorInput {
    ValidatorInput {
        contract: ContractRef {
            realm: "platform".into(),
            domain: "billing".into(),
            name: "invoice".into(),
            version: "1.2.0".into(),
            schema: serde_json::json!({"type": "object", "properties": {"total": {"type": "number"}}}),
        },
        repo: "api".into(),
        role: "exporter".into(),
        files: files
            .iter()
            .map(|f| {
                let bytes = std::fs::read(repo.join(f)).expect("source file");
                SourceFile {
                    path: (*f).to_owned(),
                    size: bytes.len() as u64,
                    content: String::from_utf8(bytes).ok(),
                }
            })
            .collect(),
    }
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo: PathBuf = tmp.path().join("api");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    let files = ["src/invoice.rs", "src/total.rs"];
    for f in files {
        std::fs::write(
            repo.join(f),
            "pub struct Invoice { pub total: f64 }\n".repeat(50),
        )
        .expect("write source");
    }
    let hook = tmp.path().join("no-todo.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\nif grep -q TODO src/invoice.rs src/total.rs; then echo 'a source file contains TODO'; exit 1; fi\nexit 0\n",
    )
    .expect("write hook");
    std::fs::set_permissions(
        &hook,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod hook");

    let wasm = guest("validator");
    let snif = Snif {
        name: "no-todo".into(),
        interface: Interface::ContractValidator,
        module_hash: blake3::hash(&wasm).to_hex().to_string(),
        wasm: Arc::from(wasm),
        grants: Grants::default(),
        limits: Limits::DEFAULT,
    };

    let run_hook = || {
        let out = Cmd::new(&hook)
            .current_dir(&repo)
            .timeout(Duration::from_secs(10))
            .env("REPOMAN_CONTRACT", "invoice")
            .env("REPOMAN_CONTRACT_VERSION", "1.2.0")
            .env("REPOMAN_HOOK_ROLE", "exporter")
            .output()
            .expect("hook runs");
        assert_eq!(out.status.code(), Some(0), "the hook must pass");
    };
    let host = Host::new().expect("host");
    let call = |host: &Host| {
        let out =
            repoman_snif::validate_contract(host, &snif, &input(&repo, &files)).expect("snif call");
        assert!(out.valid, "the SNIF must pass");
    };

    let hook_n = (n / 5).max(20);
    let t_hook = time(hook_n, run_hook);
    let t_warm = time(n, || call(&host));
    let t_cold = time(hook_n, || {
        let fresh = Host::new().expect("host");
        call(&fresh);
    });
    // The host's own share of a warm call (no file reads, no JSON): raw bytes in and out.
    let raw = serde_json::to_vec(&input(&repo, &files)).expect("json");
    let t_raw = time(n, || {
        let out = host.call_raw(&snif, &raw).expect("raw call");
        assert!(out.output.starts_with(br#"{"valid":true"#));
    });

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "snif benchmark ({} engine), medians",
        repoman_snif::host::ENGINE
    );
    println!("| what | median | runs |");
    println!("|---|---:|---:|");
    println!(
        "| shell hook as a process (realm hook path) | {:.0} µs | {hook_n} |",
        us(t_hook)
    );
    println!(
        "| SNIF warm call (read files, JSON in/out, schema checks) | {:.1} µs | {n} |",
        us(t_warm)
    );
    println!(
        "| SNIF warm call, raw bytes (host + guest only) | {:.1} µs | {n} |",
        us(t_raw)
    );
    println!(
        "| SNIF cold call (new host: validate + translate + call) | {:.1} µs | {hook_n} |",
        us(t_cold)
    );
    let ratio = t_warm.as_secs_f64() / t_hook.as_secs_f64();
    println!("warm SNIF / shell hook = {ratio:.3} (goal <= 0.1)");
    if ratio > 0.1 {
        println!("GOAL MISSED: warm SNIF call is more than 0.1x the process hook");
    }
}
