#![allow(clippy::unwrap_used)]
//! Golden tests for byte-faithful write-back on the corpus in `tests/corpus/`.
//!
//! Each case applies one operation to a corpus file and compares the result with
//! `tests/corpus/golden/<file>.<case>`. A missing golden file is written and the test fails, so a
//! new case is reviewed (by reading the file and its diff) before it counts.

use std::path::{Path, PathBuf};

use repoman_tools::manifest::{self, Edit};

enum Op {
    Pin(&'static str, &'static [&'static str]),
    Unpin(&'static str),
}

const CASES: &[(&str, &str, Op)] = &[
    (
        "commented.tool-versions",
        "pin-existing",
        Op::Pin("nodejs", &["22.1.0"]),
    ),
    (
        "commented.tool-versions",
        "pin-fallbacks",
        Op::Pin("python", &["3.13.0", "3.12.2", "3.11.8"]),
    ),
    (
        "commented.tool-versions",
        "pin-new",
        Op::Pin("z3", &["4.13.0"]),
    ),
    ("commented.tool-versions", "unpin", Op::Unpin("python")),
    (
        "aligned-crlf.tool-versions",
        "pin-existing",
        Op::Pin("z3", &["4.13.0"]),
    ),
    (
        "aligned-crlf.tool-versions",
        "pin-new",
        Op::Pin("vampire", &["4.8"]),
    ),
    ("aligned-crlf.tool-versions", "unpin", Op::Unpin("cvc5")),
    (
        "no-final-newline.tool-versions",
        "pin-existing",
        Op::Pin("python", &["3.13"]),
    ),
    (
        "no-final-newline.tool-versions",
        "pin-new",
        Op::Pin("go", &["1.22.1"]),
    ),
    (
        "no-final-newline.tool-versions",
        "unpin",
        Op::Unpin("python"),
    ),
    (
        "decorated.mise.toml",
        "pin-string",
        Op::Pin("node", &["22.1.0"]),
    ),
    (
        "decorated.mise.toml",
        "pin-inline-table",
        Op::Pin("z3", &["4.13.0"]),
    ),
    (
        "decorated.mise.toml",
        "pin-array",
        Op::Pin("python", &["3.13"]),
    ),
    (
        "decorated.mise.toml",
        "pin-literal",
        Op::Pin("lean", &["4.10.0"]),
    ),
    (
        "decorated.mise.toml",
        "pin-table",
        Op::Pin("rust", &["1.81.0"]),
    ),
    (
        "decorated.mise.toml",
        "pin-new",
        Op::Pin("cvc5", &["1.1.2"]),
    ),
    ("decorated.mise.toml", "unpin", Op::Unpin("lean")),
    (
        "crlf-no-newline.mise.toml",
        "pin-quoted-key",
        Op::Pin("npm:prettier", &["3.3.0"]),
    ),
    (
        "crlf-no-newline.mise.toml",
        "pin-new",
        Op::Pin("npm:eslint", &["9.0.0"]),
    ),
    ("crlf-no-newline.mise.toml", "unpin", Op::Unpin("node")),
    ("no-tools.mise.toml", "pin-new", Op::Pin("node", &["20"])),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn plan(path: &Path, op: &Op) -> Edit {
    match op {
        Op::Pin(tool, vs) => {
            let vs: Vec<String> = vs.iter().map(|s| s.to_string()).collect();
            manifest::plan_pin(path, tool, &vs).unwrap()
        }
        Op::Unpin(tool) => manifest::plan_unpin(path, tool).unwrap(),
    }
}

#[test]
fn corpus_edits_match_golden_files() {
    let mut missing = Vec::new();
    for (file, case, op) in CASES {
        let input = corpus().join(file);
        let edit = plan(&input, op);
        assert!(edit.changed(), "{file} {case}: expected a change");
        let golden = corpus().join("golden").join(format!("{file}.{case}"));
        match std::fs::read(&golden) {
            Ok(expected) => assert_eq!(
                edit.after.as_bytes(),
                &expected[..],
                "{file} {case}: differs from {}\n{}",
                golden.display(),
                edit.diff()
            ),
            Err(_) => {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &edit.after).unwrap();
                missing.push(golden);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "new golden files written, review them: {missing:#?}"
    );
}

/// Every edit in the corpus changes at most the lines of the tool it is about: the diff has
/// exactly one hunk and few changed lines.
#[test]
fn corpus_edits_touch_only_one_place() {
    for (file, case, op) in CASES {
        let edit = plan(&corpus().join(file), op);
        let diff = similar::TextDiff::from_lines(&edit.before, &edit.after);
        let changed: Vec<_> = diff
            .iter_all_changes()
            .filter(|c| c.tag() != similar::ChangeTag::Equal)
            .collect();
        let hunks = diff.grouped_ops(0).len();
        // A change at the very end of a file without a final newline also rewrites the line
        // before it (it gains or loses the line ending), hence up to 4 changed lines.
        assert!(
            hunks == 1 && changed.len() <= 4,
            "{file} {case}: {hunks} hunks\n{}",
            edit.diff()
        );
    }
}

#[test]
fn pin_then_unpin_of_a_new_tool_restores_each_corpus_file() {
    for file in [
        "commented.tool-versions",
        "aligned-crlf.tool-versions",
        "no-final-newline.tool-versions",
        "decorated.mise.toml",
        "crlf-no-newline.mise.toml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        let original = std::fs::read(corpus().join(file)).unwrap();
        std::fs::write(&path, &original).unwrap();
        assert!(
            manifest::plan_pin(&path, "agda", &["2.6.4".into()])
                .unwrap()
                .apply()
                .unwrap()
        );
        assert!(
            manifest::plan_unpin(&path, "agda")
                .unwrap()
                .apply()
                .unwrap()
        );
        assert_eq!(std::fs::read(&path).unwrap(), original, "{file}");
    }
}

#[test]
fn unchanged_file_is_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".tool-versions");
    std::fs::write(&path, "nodejs 20 # keep\n").unwrap();
    let before = std::fs::metadata(&path).unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&before);
    let edit = manifest::plan_pin(&path, "nodejs", &["20".into()]).unwrap();
    assert!(!edit.changed());
    assert_eq!(edit.diff(), "");
    assert!(!edit.apply().unwrap());
    assert!(
        !manifest::plan_unpin(&path, "python")
            .unwrap()
            .apply()
            .unwrap()
    );
    // Atomic writes replace the inode; the same inode proves no write happened.
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
        ino
    );
}

#[test]
fn malformed_toml_and_unknown_scope_are_located_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (file, expect) in [
        ("malformed.mise.toml", "malformed.mise.toml:3:"),
        (
            "unknown-scope.tool-versions",
            "unknown-scope.tool-versions:2:8: unknown version scope `foo:`",
        ),
    ] {
        let path = dir.path().join(file);
        let original = std::fs::read(corpus().join(file)).unwrap();
        std::fs::write(&path, &original).unwrap();
        let err = manifest::plan_pin(&path, "go", &["1.22".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{err}");
        let err = manifest::plan_unpin(&path, "nodejs")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}

#[test]
fn concurrent_change_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".tool-versions");
    std::fs::write(&path, "nodejs 20\n").unwrap();
    let edit = manifest::plan_pin(&path, "nodejs", &["22".into()]).unwrap();
    std::fs::write(&path, "nodejs 18\n").unwrap();
    assert!(
        edit.apply()
            .unwrap_err()
            .to_string()
            .contains("changed on disk")
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "nodejs 18\n");
}

#[test]
fn dry_run_diff_is_unified() {
    let path = corpus().join("aligned-crlf.tool-versions");
    let d = manifest::plan_pin(
        &path,
        "z3",
        &["4.13.0"].iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap()
    .diff();
    assert!(
        d.starts_with(&format!(
            "--- {}\n+++ {}\n@@",
            path.display(),
            path.display()
        )),
        "{d}"
    );
    assert!(
        d.contains("-z3          4.12.5\r\n") && d.contains("+z3          4.13.0\r\n"),
        "{d}"
    );
}
