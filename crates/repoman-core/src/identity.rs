//! Who and where: the host name, the invoking user, and the host user whose uid/gid own
//! sandbox bind mounts.
//!
//! The user name comes from `USER`, else from `/etc/passwd` for the real uid. Under `sudo`, the
//! *invoking* user (`SUDO_USER`, `SUDO_UID`, `SUDO_GID`) is the one repoman acts for.

use std::path::Path;

use crate::env::Env;

/// The machine's host name (the `nodename` of `uname(2)`).
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The name of the invoking user.
pub fn user_name(env: &Env) -> String {
    if let Some(u) = env.get("SUDO_USER") {
        return u.to_owned();
    }
    if let Some(u) = env.get("USER") {
        return u.to_owned();
    }
    let uid = rustix::process::getuid().as_raw();
    passwd_name(uid).unwrap_or_else(|| format!("uid{uid}"))
}

/// Look up a user name for `uid` in `/etc/passwd`.
pub fn passwd_name(uid: u32) -> Option<String> {
    passwd_entries().find(|e| e.uid == uid).map(|e| e.name)
}

/// A `/etc/passwd` entry (the fields repoman uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Entries of `/etc/passwd` (empty if unreadable).
pub fn passwd_entries() -> impl Iterator<Item = PasswdEntry> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5)?.to_string(),
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
}

/// The uid/gid that should own a project's files inside its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whether this process runs with euid 0 (it may change system files and restart daemons).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Decide the host user: the invoking user; under root, `SUDO_UID`/`SUDO_GID` when set, else the
/// owner of `repo_dir` (when it exists), else root.
pub fn host_user(env: &Env, repo_dir: Option<&Path>) -> HostUser {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    if uid != 0 {
        return HostUser {
            name: user_name(env),
            uid,
            gid,
        };
    }
    let sudo = |k: &str| env.get(k).and_then(|v| v.parse::<u32>().ok());
    if let (Some(u), Some(g)) = (sudo("SUDO_UID"), sudo("SUDO_GID")) {
        let name = env
            .get("SUDO_USER")
            .map(str::to_owned)
            .or_else(|| passwd_name(u));
        return HostUser {
            name: name.unwrap_or_else(|| format!("uid{u}")),
            uid: u,
            gid: g,
        };
    }
    if let Some(meta) = repo_dir.and_then(|d| std::fs::metadata(d).ok()) {
        let (u, g) = (meta.uid(), meta.gid());
        let name = passwd_name(u).unwrap_or_else(|| {
            if u == 0 {
                "root".into()
            } else {
                format!("uid{u}")
            }
        });
        return HostUser {
            name,
            uid: u,
            gid: g,
        };
    }
    HostUser {
        name: "root".to_owned(),
        uid: 0,
        gid: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_user_wins_under_root() {
        if rustix::process::getuid().as_raw() != 0 {
            return; // the sudo rule only applies when repoman runs as root
        }
        let env = Env::from_pairs([
            ("SUDO_UID", "1234"),
            ("SUDO_GID", "2345"),
            ("SUDO_USER", "alice"),
        ]);
        let u = host_user(&env, None);
        assert_eq!(
            u,
            HostUser {
                name: "alice".into(),
                uid: 1234,
                gid: 2345
            }
        );
    }

    #[test]
    fn repo_owner_is_the_fallback_under_root() {
        if rustix::process::getuid().as_raw() != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(1000), Some(1001)).unwrap();
        let u = host_user(&Env::default(), Some(dir.path()));
        assert_eq!((u.uid, u.gid), (1000, 1001));
    }

    #[test]
    fn host_name_is_not_empty() {
        assert!(!host_name().is_empty());
    }
}
