//! Finding the local Incus socket, the way the official client does.
//!
//! Order: `INCUS_SOCKET`; else `$INCUS_DIR/unix.socket`; else `/run/incus/unix.socket` when it
//! exists, else `/var/lib/incus/unix.socket`. When the chosen directory's `unix.socket` is not
//! writable by us but its `unix.socket.user` is, we use the per-user socket of `incus-user`: that
//! socket is restricted to the project `user-<uid>` (see [`crate::access`]). An explicit
//! `INCUS_SOCKET` is taken as is; if it names a `unix.socket.user` it is still recognised as the
//! restricted kind.

use std::path::{Path, PathBuf};

use repoman_core::Env;

/// Which kind of socket we talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// The daemon's main socket: full access for members of `incus-admin` (and root).
    System,
    /// `incus-user`'s per-user socket: only the project `user-<uid>`, with restrictions.
    User,
}

/// A resolved socket path and how we found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    pub path: PathBuf,
    pub kind: SocketKind,
    /// Human-readable origin, e.g. "INCUS_SOCKET" or "default /var/lib/incus".
    pub source: String,
}

impl SocketPath {
    /// The project the per-user socket confines us to (`user-<euid>`), if this is that socket.
    pub fn user_project(&self) -> Option<String> {
        (self.kind == SocketKind::User)
            .then(|| format!("user-{}", rustix::process::geteuid().as_raw()))
    }
}

/// Resolve the socket from `env` (never from the process environment directly).
pub fn resolve(env: &Env) -> SocketPath {
    if let Some(path) = env.get_path("INCUS_SOCKET") {
        let kind = kind_of(&path);
        return SocketPath {
            path,
            kind,
            source: "INCUS_SOCKET".to_owned(),
        };
    }
    let (dir, source) = match env.get_path("INCUS_DIR") {
        Some(dir) => (dir, "INCUS_DIR".to_owned()),
        None if Path::new("/run/incus/unix.socket")
            .symlink_metadata()
            .is_ok() =>
        {
            (PathBuf::from("/run/incus"), "default /run/incus".to_owned())
        }
        None => (
            PathBuf::from("/var/lib/incus"),
            "default /var/lib/incus".to_owned(),
        ),
    };
    let main = dir.join("unix.socket");
    let user = dir.join("unix.socket.user");
    if !writable(&main) && writable(&user) {
        return SocketPath {
            path: user,
            kind: SocketKind::User,
            source,
        };
    }
    SocketPath {
        path: main,
        kind: SocketKind::System,
        source,
    }
}

fn kind_of(path: &Path) -> SocketKind {
    if path.file_name().is_some_and(|n| n == "unix.socket.user") {
        SocketKind::User
    } else {
        SocketKind::System
    }
}

/// `access(W_OK)` on the real ids, like Go's `unix.Access` in the official client.
fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn incus_socket_wins_over_everything() {
        let env = Env::from_pairs([("INCUS_SOCKET", "/x/sock"), ("INCUS_DIR", "/y")]);
        let s = resolve(&env);
        assert_eq!(s.path, PathBuf::from("/x/sock"));
        assert_eq!(s.kind, SocketKind::System);
        assert_eq!(s.source, "INCUS_SOCKET");
    }

    #[test]
    fn explicit_user_socket_is_recognised_as_restricted() {
        let env = Env::from_pairs([("INCUS_SOCKET", "/run/incus/unix.socket.user")]);
        let s = resolve(&env);
        assert_eq!(s.kind, SocketKind::User);
        assert!(s.user_project().is_some_and(|p| p.starts_with("user-")));
    }

    #[test]
    fn incus_dir_main_socket_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let _main = UnixListener::bind(dir.path().join("unix.socket")).unwrap();
        let _user = UnixListener::bind(dir.path().join("unix.socket.user")).unwrap();
        let env = Env::from_pairs([("INCUS_DIR", dir.path())]);
        let s = resolve(&env);
        assert_eq!(s.path, dir.path().join("unix.socket"));
        assert_eq!(s.kind, SocketKind::System);
        assert_eq!(s.user_project(), None);
    }

    #[test]
    fn incus_dir_falls_back_to_user_socket_when_main_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let _user = UnixListener::bind(dir.path().join("unix.socket.user")).unwrap();
        let env = Env::from_pairs([("INCUS_DIR", dir.path())]);
        let s = resolve(&env);
        assert_eq!(s.path, dir.path().join("unix.socket.user"));
        assert_eq!(s.kind, SocketKind::User);
        assert_eq!(s.source, "INCUS_DIR");
    }

    #[test]
    fn incus_dir_without_any_socket_names_the_main_socket() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("INCUS_DIR", dir.path())]);
        let s = resolve(&env);
        assert_eq!(s.path, dir.path().join("unix.socket"));
        assert_eq!(s.kind, SocketKind::System);
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let env = Env::from_pairs([("INCUS_SOCKET", ""), ("INCUS_DIR", "")]);
        let s = resolve(&env);
        assert!(s.source.starts_with("default "), "{s:?}");
    }
}
