//! Realm benchmark (issue 6): a generated realm of 300 contracts (realistic schemas, 5 versions
//! each, in the realm's git history) across 50 repos.
//!
//! Measures, in one run: the cold compatibility diff of all 1,200 consecutive version pairs
//! (in-process, no cache); `realm check` of the realm repository cold (`--no-cache`), first run
//! filling the cache, and warm; `realm check` of one member repo cold and warm.
//!
//! Run: `scripts/bench/realm` (or `cargo bench -p repoman-realm --bench realm [-- DIR]`).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use repoman_core::Env;
use repoman_realm::cache::{self, Cache};
use repoman_realm::check::{self, CheckOptions, Context};
use repoman_realm::compat;
use repoman_realm::git::Git;
use repoman_realm::model::{
    BindingFile, Compatibility, ContractFile, DomainFile, Evolution, Export, Import, Membership,
    RealmFile, RepoFile, Role,
};
use repoman_realm::realm::{Realm, digests};
use repoman_realm::trust::TrustState;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REPOS: usize = 50;
const CONTRACTS: usize = 300;
const VERSIONS: usize = 5;

fn write_yaml<T: serde::Serialize>(path: &Path, v: &T) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_saphyr::to_string(v).unwrap()).unwrap();
}

/// A realistic schema for contract `i` at version step `step` (0..5).
fn schema(i: usize, step: usize) -> Value {
    let mut props = serde_json::Map::new();
    let n = 8 + i % 17;
    for p in 0..n {
        let name = format!("field_{p}");
        let s = match p % 6 {
            0 => json!({"type": "string", "maxLength": 64 + p, "description": "an identifier"}),
            1 => json!({"type": "integer", "minimum": 0, "maximum": 10_000}),
            2 => {
                json!({"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9/-]+$"}, "maxItems": 100})
            }
            3 => json!({"enum": ["read", "write", "admin"]}),
            4 => json!({"type": "object", "additionalProperties": false, "required": ["bucket"],
                        "properties": {"bucket": {"type": "string"}, "prefix": {"type": "string"}, "region": {"$ref": "#/$defs/region"}}}),
            _ => json!({"type": ["number", "null"]}),
        };
        props.insert(name, s);
    }
    // The evolution: add an optional field, widen a bound, extend an enum, then (one contract in
    // three) a breaking change: a new required field.
    if step >= 1 {
        props.insert(
            "labels".into(),
            json!({"type": "object", "additionalProperties": {"type": "string"}, "default": {}}),
        );
    }
    if step >= 2 {
        props.insert(
            "field_0".into(),
            json!({"type": "string", "maxLength": 256, "description": "an identifier"}),
        );
    }
    if step >= 3 && n > 3 {
        props.insert(
            "field_3".into(),
            json!({"enum": ["read", "write", "admin", "owner"]}),
        );
    }
    let mut required = vec!["field_0".to_string(), "field_1".to_string()];
    if step >= 4 && i.is_multiple_of(3) {
        props.insert("tenant".into(), json!({"type": "string"}));
        required.push("tenant".into());
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": props,
        "$defs": {"region": {"type": "string", "enum": ["eu-west-1", "us-east-1", "ap-south-1"]}}
    })
}

fn version(i: usize, step: usize) -> String {
    if step == 4 && i.is_multiple_of(3) {
        "2.0.0".into()
    } else {
        format!("1.{step}.0")
    }
}

fn repo(r: usize) -> String {
    format!("repo-{r:02}")
}

fn generate(root: &Path, env: &Env) -> PathBuf {
    let realm = root.join("realm");
    std::fs::create_dir_all(&realm).unwrap();
    write_yaml(
        &realm.join("realm.yaml"),
        &RealmFile {
            name: "bench".into(),
            version: "1.0.0".into(),
            governance: Value::Null,
            trust: Value::Null,
        },
    );
    std::fs::write(realm.join(".gitignore"), ".repoman/\n").unwrap();
    let git = Git::new(&realm, env);
    git.init().unwrap();
    for r in 0..REPOS {
        let dir = root.join(repo(r));
        std::fs::create_dir_all(dir.join(".repoman")).unwrap();
        write_yaml(
            &realm.join(format!("repos/{}.yaml", repo(r))),
            &RepoFile {
                name: repo(r),
                path: Some(dir.display().to_string()),
                url: None,
                maintainers: vec![],
            },
        );
        write_yaml(
            &dir.join(".repoman/realm.yaml"),
            &Membership {
                realm: "bench".into(),
                path: realm.display().to_string(),
                repo: repo(r),
            },
        );
        // Provider r serves the next three repos (acyclic: edges only go up).
        let consumers: Vec<String> = (r + 1..(r + 4).min(REPOS)).map(repo).collect();
        write_yaml(
            &realm.join(format!("domains/d{r:02}/domain.yaml")),
            &DomainFile {
                name: format!("d{r:02}"),
                provider: repo(r),
                consumers,
                description: None,
            },
        );
    }
    for step in 0..VERSIONS {
        for i in 0..CONTRACTS {
            let owner = i % REPOS;
            let domain = format!("d{owner:02}");
            let evolution = (0..=step)
                .map(|s| Evolution {
                    version: version(i, s),
                    changes: vec![format!("step {s}")],
                    compatible: Some(!(s == 4 && i % 3 == 0)),
                })
                .collect();
            let c = ContractFile {
                name: format!("c{i:03}"),
                version: version(i, step),
                owner: repo(owner),
                compatibility: Compatibility::default(),
                schema: schema(i, step),
                validation: Default::default(),
                evolution,
            };
            write_yaml(&realm.join(Realm::contract_rel_path(&domain, &c.name)), &c);
        }
        git.commit_all(&format!("bench: versions step {step}"))
            .unwrap();
    }
    // Bindings at the final versions: owners export (3 source files each), consumers import.
    for r in 0..REPOS {
        let dir = root.join(repo(r));
        let mut exports = Vec::new();
        for i in (0..CONTRACTS).filter(|i| i % REPOS == r) {
            let files: Vec<String> = (0..3).map(|k| format!("src/c{i:03}_{k}.py")).collect();
            for f in &files {
                std::fs::create_dir_all(dir.join("src")).unwrap();
                std::fs::write(
                    dir.join(f),
                    format!("# implements c{i:03}\nVALUE = {i}\n").repeat(50),
                )
                .unwrap();
            }
            exports.push(Export {
                contract: format!("c{i:03}"),
                source_digests: digests(&dir, &files).unwrap(),
                source_files: files,
                recorded_version: Some(version(i, 4)),
            });
        }
        let b = BindingFile {
            repo: repo(r),
            role: Role::Provider,
            exports,
            imports: vec![],
        };
        write_yaml(
            &realm.join(Realm::binding_rel_path(&format!("d{r:02}"), &repo(r))),
            &b,
        );
    }
    for r in 0..REPOS {
        let domain_consumers: Vec<usize> = (r + 1..(r + 4).min(REPOS)).collect();
        for c in domain_consumers {
            let imports: Vec<Import> = (0..CONTRACTS)
                .filter(|i| i % REPOS == r)
                .map(|i| Import {
                    contract: format!("c{i:03}"),
                    version: ">=1.0.0 <3.0.0".into(),
                    binding: Some("cdk/stack.py".into()),
                    status: Some("current".into()),
                    resolved_version: Some(version(i, 4)),
                })
                .collect();
            let b = BindingFile {
                repo: repo(c),
                role: Role::Consumer,
                exports: vec![],
                imports,
            };
            write_yaml(
                &realm.join(Realm::binding_rel_path(&format!("d{r:02}"), &repo(c))),
                &b,
            );
        }
    }
    git.commit_all("bench: bindings").unwrap();
    realm
}

/// Verdict agreement with Confluent on the 263 conformance cases: repoman vs the peer.
fn conformance_comparison() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/confluent");
    let mut total = 0;
    let (mut ours, mut semantic, mut peer, mut peer_errors) = (0, 0, 0, 0);
    for f in [
        "diff-schema-examples.json",
        "diff-schema-examples-2020-12.json",
        "diff-combined-schema-examples.json",
        "diff-combined-schema-examples-2020-12.json",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| {
            panic!(
                "conformance corpus file {} unreadable ({e}); it is vendored in the repository",
                dir.join(f).display()
            )
        });
        let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
        for c in cases {
            total += 1;
            let expected = c["compatible"].as_bool().unwrap();
            let (a, b) = (c["original_schema"].clone(), c["update_schema"].clone());
            // Strictly: a case Confluent accepts must be `compatible`, not a warning.
            let verdict = |profile| {
                let opts = compat::Options {
                    profile,
                    ..compat::Options::default()
                };
                compat::analyze_with(&a, &b, &opts)
                    .unwrap()
                    .report(compat::Mode::Backward)
                    .verdict
                    == compat::Verdict::Compatible
            };
            if verdict(compat::Profile::Confluent) == expected {
                ours += 1;
            }
            if verdict(compat::Profile::Semantic) == expected {
                semantic += 1;
            }
            match std::panic::catch_unwind(|| json_schema_diff::diff(a, b)) {
                Ok(Ok(ch)) => {
                    if ch.iter().any(|c| c.change.is_breaking()) != expected {
                        peer += 1;
                    }
                }
                _ => peer_errors += 1,
            }
        }
    }
    println!(
        "| Confluent conformance verdicts reproduced | repoman `--profile confluent` {ours}/{total} (default `semantic`: {semantic}/{total}), json-schema-diff {peer}/{total} ({peer_errors} errors) |"
    );
}

fn opts() -> CheckOptions {
    CheckOptions {
        modes: vec![],
        from: None,
        to: None,
        strict: false,
        ci: false,
        trust: TrustState::Untrusted,
        hook_timeout: Duration::from_secs(60),
        now: 0,
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn main() {
    let env = Env::capture();
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tmp = tempfile::tempdir().unwrap();
    let root = arg
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let (realm_dir, generated) = time(|| generate(&root, &env));
    println!(
        "generated {CONTRACTS} contracts x {VERSIONS} versions across {REPOS} repos in {:.1} s ({})",
        generated.as_secs_f64(),
        realm_dir.display()
    );

    // 1,200 consecutive version pairs, cold, in process.
    let pairs: Vec<(Value, Value)> = (0..CONTRACTS)
        .flat_map(|i| (0..VERSIONS - 1).map(move |s| (schema(i, s), schema(i, s + 1))))
        .collect();
    let (breaking, diff_time) = time(|| {
        pairs
            .iter()
            .filter(|(a, b)| {
                compat::diff(a, b, compat::Mode::Backward)
                    .unwrap()
                    .is_breaking()
            })
            .count()
    });
    let (_, full_time) = time(|| {
        pairs
            .iter()
            .map(|(a, b)| compat::analyze(a, b).unwrap().changes.len())
            .sum::<usize>()
    });
    println!(
        "| {} version-pair diffs, BACKWARD verdicts ({breaking} breaking) | {:.0} ms |",
        pairs.len(),
        diff_time.as_secs_f64() * 1e3
    );
    println!(
        "| {} version-pair analyses (both directions, all changes) | {:.0} ms |",
        pairs.len(),
        full_time.as_secs_f64() * 1e3
    );

    // The peer, on the same pairs: getsentry/json-schema-diff (BACKWARD-style "breaking" flags).
    let (peer, peer_time) = time(|| {
        pairs
            .iter()
            .filter(|(a, b)| {
                json_schema_diff::diff(a.clone(), b.clone())
                    .map(|ch| ch.iter().any(|c| c.change.is_breaking()))
                    .unwrap_or(true)
            })
            .count()
    });
    println!(
        "| peer json-schema-diff 0.1.8, same {} pairs ({peer} breaking) | {:.0} ms |",
        pairs.len(),
        peer_time.as_secs_f64() * 1e3
    );
    conformance_comparison();

    let realm = Realm::load(&realm_dir).unwrap();
    let run = |ctx: &Context, dir: &Path, cached: bool| {
        let mut c = if cached {
            Cache::open(dir).unwrap()
        } else {
            Cache::disabled(dir)
        };
        let (r, t) = time(|| check::check(&realm, ctx, &opts(), &env, &mut c).unwrap());
        assert!(
            r.ok,
            "the generated realm checks clean: {:?}",
            r.findings
                .iter()
                .filter(|f| f.level == check::Level::Error)
                .take(3)
                .collect::<Vec<_>>()
        );
        (r, t)
    };
    let (_, load) = time(|| Realm::load(&realm_dir).unwrap());
    println!(
        "| load the realm (all YAML files) | {:.0} ms |",
        load.as_secs_f64() * 1e3
    );
    let _ = cache::clear(&realm_dir);
    let (cold_r, cold) = run(&Context::Realm, &realm_dir, false);
    let (_, fill) = run(&Context::Realm, &realm_dir, true);
    let (warm_r, warm) = run(&Context::Realm, &realm_dir, true);
    assert_eq!(cold_r.findings, warm_r.findings);
    println!(
        "| realm repo check (contract + compatibility, {} diffs), cold `--no-cache` | {:.0} ms |",
        cold_r.compatibility.len(),
        cold.as_secs_f64() * 1e3
    );
    println!(
        "| realm repo check, first cached run (fills the cache) | {:.0} ms |",
        fill.as_secs_f64() * 1e3
    );
    println!(
        "| realm repo check, warm ({} hits, {} misses) | {:.0} ms ({:.1}% of cold) |",
        warm_r.cache.hits,
        warm_r.cache.misses,
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 100.0 / cold.as_secs_f64()
    );

    let member = root.join(repo(10));
    let ctx = Context::Member {
        repo: repo(10),
        dir: member.clone(),
    };
    let _ = cache::clear(&member);
    let (m_cold_r, m_cold) = run(&ctx, &member, false);
    let _ = run(&ctx, &member, true);
    let (m_warm_r, m_warm) = run(&ctx, &member, true);
    assert_eq!(m_cold_r.findings, m_warm_r.findings);
    println!(
        "| member repo check (exporter + importer), cold `--no-cache` | {:.1} ms |",
        m_cold.as_secs_f64() * 1e3
    );
    println!(
        "| member repo check, warm | {:.1} ms ({:.0}% of cold) |",
        m_warm.as_secs_f64() * 1e3,
        m_warm.as_secs_f64() * 100.0 / m_cold.as_secs_f64()
    );

    // The whole command, as CI runs it: process start, realm load, check, events recorded.
    match std::env::var_os("REPOMAN_BIN") {
        Some(bin) => whole_cli(Path::new(&bin), &root, &realm_dir, &member),
        None => println!("(set REPOMAN_BIN to a release `repoman` for the whole-command rows)"),
    }
}

/// `repoman realm check` as a command, median of `RUNS`, in a throwaway home. A run that fails
/// stops the benchmark: a timing of a failed command measures nothing.
fn whole_cli(bin: &Path, root: &Path, realm_dir: &Path, member: &Path) {
    const RUNS: usize = 5;
    let home = root.join("home");
    let run = |dir: &Path, no_cache: bool| -> Duration {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["realm", "check", "--format", "json"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("USER", "bench")
            .stdout(std::process::Stdio::null());
        if no_cache {
            cmd.arg("--no-cache");
        }
        let t = Instant::now();
        let st = cmd.status().expect("run repoman");
        let d = t.elapsed();
        assert!(
            st.success(),
            "`repoman realm check` in {} failed: {st}",
            dir.display()
        );
        d
    };
    let median = |dir: &Path, no_cache: bool| -> Duration {
        let mut v: Vec<Duration> = (0..RUNS).map(|_| run(dir, no_cache)).collect();
        v.sort();
        v[RUNS / 2]
    };
    for (what, dir) in [("realm repo", realm_dir), ("member repo", member)] {
        let _ = cache::clear(dir);
        let cold = median(dir, true);
        // Fill the cache, then let every file age past the racy window before the warm runs.
        run(dir, false);
        std::thread::sleep(Duration::from_millis(1100));
        run(dir, false);
        let warm = median(dir, false);
        println!(
            "| `repoman realm check` whole command, {what}, cold `--no-cache` | {:.0} ms |",
            cold.as_secs_f64() * 1e3
        );
        println!(
            "| `repoman realm check` whole command, {what}, warm | {:.0} ms ({:.1}% of cold) |",
            warm.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 100.0 / cold.as_secs_f64()
        );
    }
}
