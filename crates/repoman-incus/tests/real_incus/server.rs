use std::os::unix::net::UnixListener;

use repoman_core::Env;
use repoman_incus::{Access, Incus, IncusError, SocketKind};

use crate::lab;

#[test]
fn connect_reads_server_info_and_extensions() {
    let lab = lab!();
    let incus = &lab.incus;
    let server = incus.server();
    assert_eq!(server.api_version, "1.0");
    assert_eq!(server.auth, "trusted");
    assert!(
        server.environment.server_version.starts_with('6'),
        "{server:?}"
    );
    assert!(server.has_extension("instances"));
    incus
        .require_extension("container_exec_recording", "capture exec output")
        .unwrap();
    assert_eq!(
        incus.access(),
        &Access::Full,
        "the lab runs tests as root on the main socket"
    );
    assert!(incus.access().explain().contains("full access"));
    assert_eq!(incus.socket().map(|s| s.kind), Some(SocketKind::System));
    assert_eq!(incus.default_project().name(), "default");
    // A fresh GET /1.0 answers the same server.
    let again = incus.fetch_server().unwrap();
    assert_eq!(again.environment.server_pid, server.environment.server_pid);
}

#[test]
fn missing_extension_is_a_clear_error() {
    let lab = lab!();
    let err = lab
        .incus
        .require_extension("repoman_no_such_extension", "test things")
        .unwrap_err();
    assert!(
        matches!(err, IncusError::MissingExtension { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("repoman_no_such_extension") && text.contains("test things"),
        "{text}"
    );
}

#[test]
fn missing_socket_is_unavailable_with_a_hint() {
    // Real sockets, no daemon: a path that does not exist, and a socket file nobody listens on.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here.socket");
    let env = Env::from_pairs([("INCUS_SOCKET", missing.as_os_str())]);
    let err = Incus::connect(&env).unwrap_err();
    match &err {
        IncusError::Unavailable { socket, cause } => {
            assert_eq!(socket, &missing);
            assert!(!cause.is_empty());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.is_unavailable());
    assert!(err.hint().unwrap().contains("scripts/incus-lab"));

    let stale = dir.path().join("stale.socket");
    drop(UnixListener::bind(&stale).unwrap());
    let env = Env::from_pairs([("INCUS_SOCKET", stale.as_os_str())]);
    let err = Incus::connect(&env).unwrap_err();
    assert!(
        err.is_unavailable(),
        "refused connection must be Unavailable: {err:?}"
    );
}

#[test]
fn incus_dir_resolves_the_lab_socket() {
    let lab = lab!();
    let Some(dir) = lab
        .incus
        .socket()
        .and_then(|s| s.path.parent())
        .map(|p| p.to_owned())
    else {
        panic!("lab connection has no socket");
    };
    let env = Env::from_pairs([("INCUS_DIR", dir.as_os_str())]);
    let incus = Incus::connect(&env).unwrap();
    assert_eq!(incus.socket().unwrap().source, "INCUS_DIR");
    assert_eq!(
        incus.server().environment.server_pid,
        lab.incus.server().environment.server_pid
    );
}
