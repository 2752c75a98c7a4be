use std::time::Duration;

use repoman_incus::{ExecSpec, FileMode, IncusError, OutputStream};

use crate::{busybox, lab};

/// Whether a `sleep <secs>` started by a test still runs in the container.
fn sleeping(project: &repoman_incus::ProjectScope, instance: &str, secs: &str) -> bool {
    let ps = project
        .exec(instance, &ExecSpec::new(["ps"]))
        .expect("ps in the container");
    ps.stdout_text()
        .lines()
        .any(|l| l.trim_end().ends_with(&format!("sleep {secs}")))
}

#[test]
fn streamed_output_arrives_while_the_command_runs() {
    let lab = lab!();
    let project = lab.project("stream");
    project.create_instance(&busybox("s1").start(true)).unwrap();
    // The command prints `ready`, then waits until /tmp/go exists. We create /tmp/go only when
    // `ready` has reached us: if output were delivered only at the end, the command would never
    // finish and the 30 s deadline would kill it.
    let spec = ExecSpec::new([
        "sh",
        "-c",
        "echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo oops >&2; printf done; exit 7",
    ])
    .user(1000, 1000)
    .cwd("/tmp")
    .timeout(Duration::from_secs(30));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = project
        .exec_streaming("s1", &spec, |stream, bytes| {
            let buf = match stream {
                OutputStream::Stdout => &mut stdout,
                OutputStream::Stderr => &mut stderr,
            };
            buf.extend_from_slice(bytes);
            if stream == OutputStream::Stdout && buf.as_slice() == b"ready\n" {
                project
                    .push_file("s1", "/tmp/go", b"", FileMode::default())
                    .unwrap();
            }
        })
        .unwrap();
    assert_eq!(code, 7);
    assert_eq!(String::from_utf8_lossy(&stdout), "ready\ndone");
    assert_eq!(String::from_utf8_lossy(&stderr), "oops\n");
}

#[test]
fn streamed_exec_has_empty_stdin_and_env_and_user() {
    let lab = lab!();
    let project = lab.project("streamin");
    project.create_instance(&busybox("s2").start(true)).unwrap();
    let spec = ExecSpec::new(["sh", "-c", "cat; id -u; echo \"$X\""])
        .user(1000, 1000)
        .env("X", "y");
    let mut out = Vec::new();
    let code = project
        .exec_streaming("s2", &spec, |stream, bytes| {
            assert!(!bytes.is_empty(), "no empty chunks");
            assert_eq!(
                stream,
                OutputStream::Stdout,
                "{}",
                String::from_utf8_lossy(bytes)
            );
            out.extend_from_slice(bytes);
        })
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "1000\ny\n",
        "cat saw EOF at once"
    );
}

#[test]
fn streamed_exec_is_killed_at_its_deadline() {
    let lab = lab!();
    let project = lab.project("streamkill");
    project.create_instance(&busybox("s3").start(true)).unwrap();
    let spec =
        ExecSpec::new(["sh", "-c", "echo started; exec sleep 61"]).timeout(Duration::from_secs(1));
    let mut out = Vec::new();
    let err = project
        .exec_streaming("s3", &spec, |_, bytes| out.extend_from_slice(bytes))
        .unwrap_err();
    assert!(matches!(err, IncusError::ExecKilled { .. }), "{err:?}");
    assert_eq!(out, b"started\n", "output before the kill is delivered");
    assert!(
        !sleeping(&project, "s3", "61"),
        "the command was killed, not left running"
    );
}

#[test]
fn streamed_exec_stops_on_cancel() {
    let lab = lab!();
    let project = lab.project("streamcancel");
    project.create_instance(&busybox("s4").start(true)).unwrap();
    let cancel = repoman_core::Cancel::new();
    let scope = project.with_cancel(&cancel);
    let err = scope
        .exec_streaming(
            "s4",
            &ExecSpec::new(["sh", "-c", "echo go; exec sleep 62"]),
            |_, bytes| {
                // Ctrl-C as soon as the command is under way.
                if bytes == b"go\n" {
                    cancel.cancel();
                }
            },
        )
        .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(!sleeping(&project, "s4", "62"));
}
