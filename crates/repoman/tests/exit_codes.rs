//! The exit-code table: every failure documented in `docs/cli.md` ("Exit codes by failure"),
//! driven through the real binary, in every domain that can hit it. The same failure must exit
//! the same way whichever command meets it, and the table in the docs must say what the binary
//! does: a row without a case here, or a case without its row, fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Estate, Run, fstype_of};

const CLI_MD: &str = include_str!("../../../docs/cli.md");

type Case = (&'static str, fn() -> Vec<Run>);

/// What each documented failure does, in every domain that meets it. Keys are the `failure`
/// column of the docs table.
fn cases() -> Vec<Case> {
    vec![
        ("unknown command or flag", || {
            let e = Estate::new("");
            vec![
                e.run(&["no-such-command"]),
                e.run(&["list", "--no-such-flag"]),
            ]
        }),
        ("malformed repoman.toml", || {
            let e = Estate::new("");
            e.write_registry("schema_version = 1\n[defaults\n");
            vec![
                e.run(&["list"]),
                e.run(&["sync", "alpha"]),
                e.run(&["tools", "status", "--project", "alpha"]),
            ]
        }),
        ("repoman.toml newer than this binary", || {
            let e = Estate::new("");
            e.write_registry("schema_version = 99\n");
            vec![e.run(&["list"]), e.run(&["config", "show"])]
        }),
        ("invalid project name", || {
            let e = Estate::new("");
            vec![
                e.run(&["new", "Bad_Name", "--no-container", "--no-input"]),
                e.run(&["sync", "-bad"]),
            ]
        }),
        ("unknown project", || {
            let e = Estate::new("");
            vec![
                e.run(&["sync", "nosuch"]),
                e.run(&["verify", "nosuch"]),
                e.run(&["restore", "nosuch"]),
                e.run(&["conflicts", "nosuch"]),
                e.run(&["tools", "status", "--project", "nosuch"]),
            ]
        }),
        ("blocked by policy", || {
            let deny = |op: &str| {
                format!(
                    "[[policy.rule]]\noperation = \"{op}\"\neffect = \"deny\"\nreason = \"frozen\"\n"
                )
            };
            let sandbox = Estate::new(&deny("project.register"));
            std::fs::create_dir_all(sandbox.local().join("gamma")).unwrap();
            let backup = Estate::new(&deny("sync"));
            std::fs::write(backup.local().join("alpha/a.txt"), "a").unwrap();
            let tools = Estate::new(&deny("tools.*"));
            let realm = Estate::new(&deny("realm.*"));
            let in_dir = |e: &Estate, dir: &str, args: &[&str]| {
                let mut c = e.cmd(args);
                c.current_dir(e.local().join(dir));
                e.run_cmd(format!("(in {dir}) {}", args.join(" ")), c)
            };
            let setup = [
                in_dir(
                    &realm,
                    ".",
                    &["realm", "admin", "init", "plat", "--path", "realm"],
                ),
                in_dir(&realm, "alpha", &["realm", "admin", "join", "../realm"]),
                in_dir(&realm, "beta", &["realm", "admin", "join", "../realm"]),
            ];
            for r in &setup {
                assert_eq!(r.code, Some(0), "{}: {}", r.label, r.stderr);
            }
            vec![
                sandbox.run(&["new", "gamma", "--no-container", "--no-input"]),
                backup.run(&["sync", "alpha"]),
                tools.run(&["tools", "pin", "nodejs", "20.2.0", "--project", "alpha"]),
                in_dir(
                    &realm,
                    "alpha",
                    &[
                        "realm",
                        "admin",
                        "domain",
                        "create",
                        "d",
                        "--repos",
                        "alpha,beta",
                    ],
                ),
            ]
        }),
        ("Incus unavailable", || {
            // `list` needs Incus once a project has a sandbox (without one it lists the registry).
            let e = Estate::new("[[project]]\nname = \"boxed\"\nrepo = \"boxed\"\n");
            vec![e.run(&["list"]), e.run(&["setup", "--no-input", "--yes"])]
        }),
        ("backup root not mounted", || {
            let e = Estate::new("");
            std::fs::write(e.local().join("alpha/a.txt"), "a").unwrap();
            let r = e.run(&["sync", "alpha"]);
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            // Now the backup root is not what the registry expects (a tmpfs share).
            let reg = std::fs::read_to_string(e.registry()).unwrap();
            let real = format!("backup_fstype = {:?}", fstype_of(e.dir.path()));
            e.write_registry(&reg.replace(&real, "backup_fstype = \"tmpfs\""));
            vec![e.run(&["sync", "alpha"]), e.run(&["verify", "alpha"])]
        }),
        ("a program repoman needs is missing", || {
            let e = Estate::new("");
            std::fs::write(e.local().join("alpha/a.txt"), "a").unwrap();
            let mut c = e.cmd(&["sync", "alpha"]);
            c.env("PATH", e.path("empty-path"));
            vec![e.run_cmd("sync alpha (PATH without rsync)".into(), c)]
        }),
        ("the current directory cannot be read", || {
            let e = Estate::new("");
            let run_in_gone = |args: &[&str]| {
                let gone = e.path(&format!("gone-{}", args.join("-")));
                std::fs::create_dir_all(&gone).unwrap();
                let label = format!("(in a deleted directory) {}", args.join(" "));
                spawn_in_deleted_dir(label, &e.cmd(args), &gone)
            };
            vec![
                run_in_gone(&["realm", "status"]),
                run_in_gone(&["tools", "status"]),
            ]
        }),
        ("interrupted", || {
            let e = Estate::new("");
            // One event to print, so the test knows `log --follow` is running (and its signal
            // handlers installed) before it sends the signal.
            let r = e.run(&["new", "beta", "--no-container", "--no-input"]);
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            vec![
                interrupt_log_follow(&e, "INT"),
                interrupt_log_follow(&e, "TERM"),
            ]
        }),
        ("a check found problems", || {
            let e = Estate::new("");
            std::fs::write(e.path("old.json"), r#"{"type": "object"}"#).unwrap();
            std::fs::write(
                e.path("new.json"),
                r#"{"type": "object", "required": ["b"], "properties": {"b": {"type": "string"}}}"#,
            )
            .unwrap();
            vec![e.run(&["realm", "diff", "old.json", "new.json"])]
        }),
    ]
}

/// Run `c` with a working directory that no longer exists: a shell enters `dir`, removes it and
/// execs repoman, which inherits the deleted directory as its cwd.
fn spawn_in_deleted_dir(label: String, c: &Command, dir: &Path) -> Run {
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg("cd \"$1\" && rmdir \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(dir)
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = sh.output().unwrap();
    Run {
        label,
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `repoman log --follow`, stopped with SIGINT or SIGTERM once it has printed the first event.
fn interrupt_log_follow(e: &Estate, signal: &str) -> Run {
    use std::io::BufRead;
    let mut child = e
        .cmd(&["log", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader stays open until the child has exited: a closed pipe would end it first.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("policy.decided"), "{line}");
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    drop(stdout);
    Run {
        label: format!("log --follow, then SIG{signal}"),
        code: status.code(),
        stderr,
    }
}

/// The rows of "Exit codes by failure" in docs/cli.md: (failure, exit code).
fn documented() -> Vec<(String, i32)> {
    let section = CLI_MD
        .split("### Exit codes by failure")
        .nth(1)
        .expect("docs/cli.md has a section `### Exit codes by failure`");
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let code = cells
                .last()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("docs/cli.md: no exit code in row {l:?}"));
            (cells[0].to_owned(), code)
        })
        .collect()
}

#[test]
fn every_documented_failure_exits_as_documented_in_every_domain() {
    let doc = documented();
    let cases = cases();
    let doc_names: Vec<&str> = doc.iter().map(|(n, _)| n.as_str()).collect();
    let case_names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        doc_names, case_names,
        "docs/cli.md's table and this test list different failures"
    );
    let mut wrong = Vec::new();
    for ((failure, code), (_, case)) in doc.iter().zip(&cases) {
        let runs = case();
        assert!(!runs.is_empty());
        for r in &runs {
            if r.code != Some(*code) {
                wrong.push(format!(
                    "{failure}: `repoman {}` exited {:?}, documented {code}\n{}",
                    r.label, r.code, r.stderr
                ));
            }
            // Every failure says what went wrong (a check's findings are data, on stdout).
            if *code != 1 && !r.stderr.contains("error") && !r.stderr.contains("warning") {
                wrong.push(format!(
                    "{failure}: `repoman {}` said nothing on stderr:\n{}",
                    r.label, r.stderr
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn a_block_reads_the_same_in_every_domain() {
    let (_, case) = cases()
        .into_iter()
        .find(|(n, _)| *n == "blocked by policy")
        .unwrap();
    let runs = case();
    assert_eq!(runs.len(), 4, "sandbox, backup, tools and realm");
    // The sandbox and sync gates move to the one gate with their own branches; until then
    // tools and realm are held to the shared rendering.
    for r in &runs[2..] {
        let first = r
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            first.ends_with("is blocked by policy (denied)"),
            "{}: {}",
            r.label,
            r.stderr
        );
        assert!(
            r.stderr.contains("\n  denied (user:1): frozen"),
            "{}: {}",
            r.label,
            r.stderr
        );
        assert!(r.stderr.contains("\nhint: "), "{}: {}", r.label, r.stderr);
    }
}

/// `--dry-run` evaluates the policy, records nothing and shows the decision: allowed plans say
/// so on stderr (and in `--json`), blocked ones fail exactly like the real run.
#[test]
fn dry_runs_show_the_decision_and_record_nothing() {
    let events_dir = |e: &Estate| e.home().join(".local/state/repoman/events");

    // tools
    let e = Estate::new("");
    let out = e
        .cmd(&[
            "--json",
            "tools",
            "pin",
            "nodejs",
            "20.2.0",
            "--project",
            "alpha",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decisions"][0]["effect"], "allow", "{v}");
    assert_eq!(v["decisions"][0]["object"], "file:alpha/.tool-versions");
    assert_eq!(v["decisions"][0]["decision_seq"], serde_json::Value::Null);
    let r = e.run(&[
        "tools",
        "pin",
        "nodejs",
        "20.2.0",
        "--project",
        "alpha",
        "--dry-run",
    ]);
    assert!(
        r.stderr.contains(
            "policy: allow for tools.pin on file:alpha/.tool-versions (no guard or rule objected); nothing recorded (dry run)"
        ),
        "{}",
        r.stderr
    );
    assert!(!events_dir(&e).exists(), "a dry run recorded an event");

    // realm
    let e = Estate::new("");
    let in_dir = |dir: &str, args: &[&str]| {
        let mut c = e.cmd(args);
        c.current_dir(e.local().join(dir));
        e.run_cmd(args.join(" "), c)
    };
    for (dir, args) in [
        (
            ".",
            &["realm", "admin", "init", "plat", "--path", "realm"][..],
        ),
        ("alpha", &["realm", "admin", "join", "../realm"][..]),
        ("beta", &["realm", "admin", "join", "../realm"][..]),
    ] {
        let r = in_dir(dir, args);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let recorded = std::fs::read_dir(events_dir(&e)).unwrap().count();
    let r = in_dir(
        "alpha",
        &[
            "realm",
            "admin",
            "domain",
            "create",
            "d",
            "--repos",
            "alpha,beta",
            "--dry-run",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("policy: allow for realm.domain.create on domain:plat/d"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(events_dir(&e)).unwrap().count(), recorded);

    // A dry run that policy blocks fails as the real run would, and records nothing.
    let e = Estate::new(
        "[[policy.rule]]\noperation = \"tools.pin\"\neffect = \"review_required\"\nreason = \"pins need a human\"\n",
    );
    let r = e.run(&[
        "tools",
        "pin",
        "nodejs",
        "20.2.0",
        "--project",
        "alpha",
        "--dry-run",
    ]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "error: tools.pin on file:alpha/.tool-versions is blocked by policy (waiting for review)\n  review required (user:1): pins need a human\nhint: "
        ),
        "{}",
        r.stderr
    );
    assert!(!events_dir(&e).exists(), "a dry run recorded an event");
}
