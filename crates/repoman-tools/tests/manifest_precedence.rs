//! Precedence and merging across files and directories (docs/tools.md, "Precedence").
#![allow(clippy::unwrap_used)]

use std::path::Path;

use repoman_tools::manifest::{self, ManifestSet, Scope};

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn nearest_dir_local_over_committed_project_over_global() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let parent = home.join("src");
    let proj = parent.join("proj");
    write(
        &home.join(".tool-versions"),
        "python 3.10\nruby 3.2\nnodejs 16\n",
    );
    write(
        &home.join(".config/mise/config.toml"),
        "[tools]\nruby = \"3.3\"\n",
    );
    write(
        &parent.join(".tool-versions"),
        "nodejs 18\npython 3.11 3.10\n",
    );
    write(
        &proj.join("mise.toml"),
        "[tools]\nnodejs = \"20\"\ngo = \"1.22\"\n",
    );
    write(&proj.join("mise.local.toml"), "[tools]\nnodejs = \"21\"\n");
    write(&proj.join(".tool-versions"), "go 1.21\nzig 0.13\n");
    write(&proj.join(".nvmrc"), "v22.1.0\n");
    write(&proj.join(".python-version"), "3.12\n");
    let globals = manifest::global_candidates(Some(&home), None);
    let set = ManifestSet::load(&proj, &globals);
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    let r = set.resolve();
    let get = |t: &str| r.iter().find(|x| x.tool == t).unwrap();

    // mise.local.toml beats mise.toml beats .tool-versions beats the parent and the globals.
    let node = get("nodejs");
    assert_eq!(
        (node.versions.clone(), node.file.clone()),
        (vec!["21".to_owned()], proj.join("mise.local.toml"))
    );
    let shadowed: Vec<_> = node
        .shadowed
        .iter()
        .map(|(f, _, v)| (f.clone(), v.clone()))
        .collect();
    assert_eq!(
        shadowed,
        [
            (proj.join("mise.toml"), vec!["20".to_owned()]),
            (parent.join(".tool-versions"), vec!["18".to_owned()]),
            (home.join(".tool-versions"), vec!["16".to_owned()]),
        ]
    );
    // mise.toml before .tool-versions in the same directory.
    assert_eq!(get("go").versions, ["1.22"]);
    // The idiomatic `.python-version` of the project beats the parent's `.tool-versions`.
    assert_eq!(
        (get("python").versions.clone(), get("python").scope),
        (vec!["3.12".to_owned()], Scope::Project)
    );
    // The idiomatic `.nvmrc` says `node`, a different name from `nodejs`: both are listed as written.
    assert_eq!(get("node").versions, ["v22.1.0"]);
    // Globals last; the mise global config before ~/.tool-versions; global rank is kept even
    // though ~/.tool-versions is also an ancestor's file.
    assert_eq!(
        (get("ruby").versions.clone(), get("ruby").scope),
        (vec!["3.3".to_owned()], Scope::Global)
    );
    assert_eq!(get("zig").line, 2);

    // Keyed by rule id, `node` (.nvmrc) and `nodejs` are one tool; the winner keeps its spelling.
    let by_id = set.resolve_by(|n| {
        if n == "nodejs" {
            "node".to_owned()
        } else {
            n.to_owned()
        }
    });
    let nodes: Vec<_> = by_id
        .iter()
        .filter(|x| x.tool == "node" || x.tool == "nodejs")
        .collect();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].tool.as_str(), nodes[0].versions.clone()),
        ("nodejs", vec!["21".to_owned()])
    );
    assert_eq!(
        nodes[0].shadowed.len(),
        4,
        "mise.toml, .nvmrc, parent and home"
    );
}

#[test]
fn a_broken_file_is_reported_and_the_others_still_count() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("mise.toml"), "[tools\nnode = 1\n");
    write(&tmp.path().join(".tool-versions"), "nodejs 20\n");
    let set = ManifestSet::load(tmp.path(), &[]);
    assert_eq!(set.problems.len(), 1);
    assert!(
        set.problems[0].message.contains("mise.toml:1:"),
        "{}",
        set.problems[0].message
    );
    assert_eq!(set.resolve()[0].versions, ["20"]);
}

#[test]
fn pin_target_prefers_the_declaring_file_then_committed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_eq!(
        manifest::pin_target(d, "z3").unwrap(),
        d.join(".tool-versions"),
        "nothing yet: create .tool-versions"
    );
    write(&d.join(".tool-versions"), "z3 4.12\n");
    write(&d.join("mise.local.toml"), "[tools]\nnode = \"20\"\n");
    assert_eq!(
        manifest::pin_target(d, "z3").unwrap(),
        d.join(".tool-versions")
    );
    assert_eq!(
        manifest::pin_target(d, "node").unwrap(),
        d.join("mise.local.toml"),
        "the declaring file"
    );
    assert_eq!(
        manifest::pin_target(d, "go").unwrap(),
        d.join(".tool-versions"),
        "local files only when declaring"
    );
    write(&d.join("mise.toml"), "[tools]\n");
    assert_eq!(manifest::pin_target(d, "go").unwrap(), d.join("mise.toml"));
    assert_eq!(
        manifest::unpin_targets(d, "node").unwrap(),
        [d.join("mise.local.toml")]
    );
}
