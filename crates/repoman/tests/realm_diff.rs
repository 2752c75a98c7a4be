//! `repoman realm diff OLD NEW`: the compatibility engine on two files, exit codes and formats.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn repoman(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("repoman").expect("binary");
    cmd.env_clear()
        .env("REPOMAN_STRICT_SCHEMAS", "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("USER", "tester")
        .current_dir(home);
    cmd
}

/// `repoman <args> OLD NEW` (args asking for JSON), asserting the exit code; the parsed output.
fn diff_json(home: &Path, args: &[&str], old: &Path, new: &Path, code: i32) -> serde_json::Value {
    let out = repoman(home)
        .args(args)
        .arg(old)
        .arg(new)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("json")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn compatible_change_exits_zero_with_a_text_summary() {
    let home = tempfile::tempdir().expect("tempdir");
    let old = write(
        home.path(),
        "old.json",
        r#"{"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false}"#,
    );
    let new = write(
        home.path(),
        "new.yaml",
        "type: object\nproperties:\n  a: {type: number}\n  b: {type: string}\nadditionalProperties: false\n",
    );
    repoman(home.path())
        .args(["realm", "diff"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "backward compatibility: COMPATIBLE",
        ))
        .stdout(predicate::str::contains("#/properties/b"))
        .stdout(predicate::str::contains("property-added"));
}

#[test]
fn breaking_change_exits_one_and_json_lists_pointer_kind_verdict() {
    let home = tempfile::tempdir().expect("tempdir");
    let old = write(
        home.path(),
        "old.json",
        r#"{"type": "string", "maxLength": 12}"#,
    );
    let new = write(
        home.path(),
        "new.json",
        r#"{"type": "string", "maxLength": 10}"#,
    );
    let v = diff_json(
        home.path(),
        &["realm", "diff", "--format", "json"],
        &old,
        &new,
        1,
    );
    assert_eq!(v["verdict"], "breaking");
    assert_eq!(v["mode"], "backward");
    assert_eq!(v["changes"][0]["pointer"], "#/maxLength");
    assert_eq!(v["changes"][0]["kind"], "max-length-narrowed");
    assert_eq!(v["changes"][0]["verdict"], "breaking");
    // The same pair is fine for FORWARD readers (old reads new: shorter strings are fine).
    repoman(home.path())
        .args(["realm", "diff", "--mode", "forward"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(0);
    repoman(home.path())
        .args(["--json", "realm", "diff", "--mode", "full"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"verdict\": \"breaking\""));
}

#[test]
fn malformed_yaml_names_file_line_and_column_and_exits_two() {
    let home = tempfile::tempdir().expect("tempdir");
    let old = write(
        home.path(),
        "old.yaml",
        "type: object\nproperties:\n  a: [unclosed\n",
    );
    let new = write(home.path(), "new.yaml", "type: object\n");
    repoman(home.path())
        .args(["realm", "diff"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(2)
        .stderr(predicate::str::is_match(r"old\.yaml:\d+:\d+: ").expect("regex"));
    let bad_json = write(home.path(), "bad.json", "{\n  \"type\": \"object\",\n}\n");
    repoman(home.path())
        .args(["realm", "diff"])
        .arg(&bad_json)
        .arg(&new)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.json:3:1"));
}

#[test]
fn billion_laughs_is_refused_by_the_budget() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut doc = String::from(
        "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        doc.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 9].join(", ")));
    }
    let bomb = write(home.path(), "bomb.yaml", &doc);
    let ok = write(home.path(), "ok.yaml", "type: object\n");
    repoman(home.path())
        .args(["realm", "diff"])
        .arg(&bomb)
        .arg(&ok)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("bomb.yaml:").and(predicate::str::contains("limit exceeded")),
        );
}

#[test]
fn a_fifty_megabyte_schema_is_refused_and_missing_files_exit_two() {
    let home = tempfile::tempdir().expect("tempdir");
    let big = home.path().join("big.json");
    let mut text = String::from("{\"description\": \"");
    text.push_str(&"x".repeat(50 * 1024 * 1024));
    text.push_str("\"}");
    std::fs::write(&big, text).expect("write");
    let ok = write(home.path(), "ok.json", "{}");
    repoman(home.path())
        .args(["realm", "diff"])
        .arg(&big)
        .arg(&ok)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("over the 16777216-byte limit"));
    repoman(home.path())
        .args(["realm", "diff", "missing.json"])
        .arg(&ok)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.json"));
}

#[test]
fn ref_cycles_are_compared_without_hanging() {
    let home = tempfile::tempdir().expect("tempdir");
    let cyc = r##"{"$defs": {"n": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}"##;
    let old = write(home.path(), "old.json", cyc);
    let new = write(home.path(), "new.json", &cyc.replace("integer", "string"));
    repoman(home.path())
        .args(["realm", "diff"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("#/properties/v/type"));
}

#[test]
fn the_default_profile_is_semantic_and_confluent_is_a_flag() {
    let home = tempfile::tempdir().expect("tempdir");
    let old = write(
        home.path(),
        "old.json",
        r#"{"properties": {"foo": {"type": "string"}}, "required": ["foo"]}"#,
    );
    // Confluent's "Detect required array to be changed": `bar` is required but not declared, so
    // `{"foo": "x"}` (valid before) is rejected now.
    let new = write(
        home.path(),
        "new.json",
        r#"{"properties": {"foo": {"type": "string"}}, "required": ["bar"]}"#,
    );
    let v = diff_json(home.path(), &["--json", "realm", "diff"], &old, &new, 1);
    assert_eq!(v["profile"], "semantic");
    assert_eq!(v["verdict"], "breaking");
    assert!(
        v["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["pointer"] == "#/required/bar" && c["verdict"] == "breaking"),
        "{v}"
    );
    let v = diff_json(
        home.path(),
        &["--json", "realm", "diff", "--profile", "confluent"],
        &old,
        &new,
        0,
    );
    assert_eq!(v["profile"], "confluent");
    assert_eq!(v["verdict"], "compatible");
    repoman(home.path())
        .args(["realm", "diff", "--profile", "avro"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(2);
}

/// The first SIGTERM ends a long diff with 130 (it used to be swallowed until the diff finished).
/// The schema is big enough that loading and comparing take seconds, so the signal lands while
/// repoman works; a swallowed signal would end in the verdict (exit 1) instead.
#[test]
fn sigterm_ends_a_long_diff_at_once() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut props = serde_json::Map::new();
    for i in 0..300_000 {
        props.insert(
            format!("p{i}"),
            serde_json::json!({"type": "string", "maxLength": 10}),
        );
    }
    let mut schema = serde_json::json!({"type": "object", "properties": props});
    let old = home.path().join("old.json");
    std::fs::write(&old, schema.to_string()).expect("write");
    schema["properties"]["p123"]["maxLength"] = serde_json::json!(5);
    let new = home.path().join("new.json");
    std::fs::write(&new, schema.to_string()).expect("write");
    let cmd = repoman(home.path());
    let child = std::process::Command::new(cmd.get_program())
        .args(["realm", "diff"])
        .arg(&old)
        .arg(&new)
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "no verdict after an interrupt");
}
