use repoman_incus::{ExecSpec, FileKind, FileMode};

use crate::{busybox, lab};

#[test]
fn exec_returns_exit_code_stdout_and_stderr() {
    let lab = lab!();
    let project = lab.project("exec");
    project.create_instance(&busybox("e1").start(true)).unwrap();

    let out = project
        .exec(
            "e1",
            &ExecSpec::new(["sh", "-c", "echo out; echo err >&2; exit 3"]),
        )
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    assert!(!out.success());

    // Binary-safe and larger than a pipe buffer.
    let out = project
        .exec(
            "e1",
            &ExecSpec::new(["sh", "-c", "head -c 200000 /dev/zero; printf '\\377'"]),
        )
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 200_001);
    assert_eq!(out.stdout.last(), Some(&0xff));
    assert!(out.stderr.is_empty());

    // The recorded output files are removed after reading (Incus keeps them in the instance's
    // directory, `$INCUS_DIR/containers/<project>_<name>/exec-output`, until someone deletes them).
    let incus_dir = lab
        .incus
        .socket()
        .and_then(|s| s.path.parent())
        .unwrap()
        .to_owned();
    let dir = incus_dir.join(format!("containers/{}_e1/exec-output", project.name()));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "exec output logs left behind: {left:?}");
}

#[test]
fn exec_as_user_with_cwd_and_env() {
    let lab = lab!();
    let project = lab.project("execuser");
    project.create_instance(&busybox("e2").start(true)).unwrap();
    let spec = ExecSpec::new(["sh", "-c", "id -u; id -g; pwd; echo \"$GREETING\""])
        .user(1000, 1000)
        .cwd("/home/dev")
        .env("GREETING", "hello sandbox");
    let out = project.exec("e2", &spec).unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_text(), "1000\n1000\n/home/dev\nhello sandbox\n");

    // Root by default; a missing command is a non-zero exit or a failed operation, never Ok(0).
    let out = project.exec("e2", &ExecSpec::new(["id", "-u"])).unwrap();
    assert_eq!(out.stdout_text(), "0\n");
    match project.exec("e2", &ExecSpec::new(["/no/such/program"])) {
        Ok(out) => assert_ne!(out.exit_code, 0, "{out:?}"),
        Err(e) => assert!(e.incus_message().is_some(), "{e:?}"),
    }
}

#[test]
fn file_push_pull_mkdir_delete() {
    let lab = lab!();
    let project = lab.project("files");
    project.create_instance(&busybox("f1").start(true)).unwrap();

    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    project
        .make_dir("f1", "/home/dev/data", FileMode::new(1000, 1000, 0o750))
        .unwrap();
    project
        .push_file(
            "f1",
            "/home/dev/data/blob.bin",
            &content,
            FileMode::new(1000, 1000, 0o640),
        )
        .unwrap();

    let pulled = project.pull_file("f1", "/home/dev/data/blob.bin").unwrap();
    assert_eq!(pulled.kind, FileKind::File);
    assert_eq!(pulled.content, content);
    assert_eq!((pulled.uid, pulled.gid, pulled.mode), (1000, 1000, 0o640));

    // The container sees the same owner and mode.
    let out = project
        .exec(
            "f1",
            &ExecSpec::new(["stat", "-c", "%u %g %a", "/home/dev/data/blob.bin"]),
        )
        .unwrap();
    assert_eq!(out.stdout_text(), "1000 1000 640\n");

    let dir = project.pull_file("f1", "/home/dev/data").unwrap();
    assert_eq!(dir.kind, FileKind::Directory);
    assert_eq!(dir.entries, vec!["blob.bin".to_owned()]);
    assert_eq!(dir.mode, 0o750);

    // Overwrite: new content, the existing owner and mode stay (Incus applies them on create).
    project
        .push_file(
            "f1",
            "/home/dev/data/blob.bin",
            b"short",
            FileMode::default(),
        )
        .unwrap();
    let pulled = project.pull_file("f1", "/home/dev/data/blob.bin").unwrap();
    assert_eq!(pulled.content, b"short");
    assert_eq!((pulled.uid, pulled.mode), (1000, 0o640));
    project
        .delete_file("f1", "/home/dev/data/blob.bin")
        .unwrap();
    let err = project
        .pull_file("f1", "/home/dev/data/blob.bin")
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    let err = project.pull_file("f1", "relative/path").unwrap_err();
    assert!(err.to_string().contains("must be absolute"), "{err}");
}

#[test]
fn cli_exec_args_run_through_the_incus_cli_and_stream() {
    use repoman_core::Env;
    use repoman_core::process::{Cmd, Line};
    use repoman_incus::Terminal;

    let lab = lab!();
    let project = lab.project("cliexec");
    project.create_instance(&busybox("c1").start(true)).unwrap();
    let spec = ExecSpec::new([
        "sh",
        "-c",
        "echo one; echo two >&2; id -u; pwd; echo \"$K\"; exit 5",
    ])
    .user(1000, 1000)
    .cwd("/home/dev")
    .env("K", "v w");
    let args = project.cli_exec_args("c1", &spec, Terminal::None);
    let env = Env::capture();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let out = Cmd::new("incus")
        .args(&args)
        .search_path(env.get_os("PATH").unwrap_or_default())
        .timeout(std::time::Duration::from_secs(60))
        .stream(|line| match line {
            Line::Stdout(b) => stdout.push(String::from_utf8_lossy(b).into_owned()),
            Line::Stderr(b) => stderr.push(String::from_utf8_lossy(b).into_owned()),
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(stdout, ["one", "1000", "/home/dev", "v w"]);
    assert_eq!(stderr, ["two"]);
}
