//! What we may do on the daemon we reached.
//!
//! The main socket gives members of `incus-admin` (and root) full control. `incus-user`'s per-user
//! socket (`unix.socket.user`) confines a user to one project, `user-<uid>`, created with
//! `restricted=true`: disk devices only from the user's home directory, idmaps only to the user's
//! own uid/gid, its own image store and no way to create other projects. An untrusted client (no
//! accepted certificate) may only read `GET /1.0`. repoman tells the user which of these it got
//! instead of failing later with a bare HTTP 403.

use crate::api::{Project, ServerInfo};
use crate::socket::{SocketKind, SocketPath};

/// The access level of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Everything repoman does is allowed.
    Full,
    /// Confined to one project with restrictions (the per-user socket).
    Restricted(Restriction),
    /// The daemon does not trust us: nothing but server discovery works.
    Untrusted,
}

/// Details of a restricted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// The only project we may use.
    pub project: String,
    /// What the restriction comes from (the socket path).
    pub origin: String,
    /// Host paths under which disk devices may be attached (`restricted.devices.disk.paths` of
    /// the project), when the project could be read.
    pub disk_paths: Vec<String>,
}

impl Restriction {
    /// Fill in what the project's `restricted.*` config allows.
    pub fn with_project_config(mut self, project: &Project) -> Self {
        if let Some(paths) = project.config.get("restricted.devices.disk.paths") {
            self.disk_paths = paths
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
        }
        self
    }
}

impl Access {
    /// Work out the access level from the socket kind and `GET /1.0`.
    pub fn classify(socket: Option<&SocketPath>, server: &ServerInfo) -> Access {
        if server.auth != "trusted" {
            return Access::Untrusted;
        }
        match socket {
            Some(s) if s.kind == SocketKind::User => Access::Restricted(Restriction {
                project: s.user_project().unwrap_or_else(|| "user-<uid>".to_owned()),
                origin: format!("the per-user socket {}", s.path.display()),
                disk_paths: Vec::new(),
            }),
            _ => Access::Full,
        }
    }

    /// Whether nothing is restricted.
    pub fn is_full(&self) -> bool {
        matches!(self, Access::Full)
    }

    /// The project a restricted connection must use, if any.
    pub fn forced_project(&self) -> Option<&str> {
        match self {
            Access::Restricted(r) => Some(&r.project),
            _ => None,
        }
    }

    /// A paragraph for the user: what repoman can and cannot do with this access.
    pub fn explain(&self) -> String {
        match self {
            Access::Full => "full access: repoman can create projects, profiles and sandboxes, \
                             bind-mount any host directory and use idmapped (shift=true) mounts"
                .to_owned(),
            Access::Restricted(r) => format!(
                "restricted access through {origin}: repoman can only use the Incus project `{p}`. \
                 There it can create, start, stop, exec in and delete containers and bind-mount \
                 directories under {paths}, with ids mapped only to your own uid/gid. \
                 It cannot create a project per sandbox, use images of the `default` project \
                 (`{p}` has its own image store: import the image there), mount paths outside your \
                 home, or change server settings. For full access add your user to the \
                 `incus-admin` group and log in again (then {main} is used).",
                origin = r.origin,
                p = r.project,
                paths = if r.disk_paths.is_empty() {
                    "your home directory".to_owned()
                } else {
                    r.disk_paths.join(", ")
                },
                main = "the main socket unix.socket",
            ),
            Access::Untrusted => "untrusted: the daemon answered but does not trust this client, \
                                  so repoman cannot list or change anything; use the local socket \
                                  as root or a member of `incus-admin`"
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn server(auth: &str) -> ServerInfo {
        ServerInfo {
            auth: auth.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn untrusted_wins() {
        assert_eq!(
            Access::classify(None, &server("untrusted")),
            Access::Untrusted
        );
        assert!(Access::Untrusted.explain().contains("cannot list"));
    }

    #[test]
    fn user_socket_is_restricted_to_the_user_project() {
        let s = SocketPath {
            path: PathBuf::from("/run/incus/unix.socket.user"),
            kind: SocketKind::User,
            source: "test".into(),
        };
        let access = Access::classify(Some(&s), &server("trusted"));
        let project = access.forced_project().unwrap().to_owned();
        assert!(project.starts_with("user-"), "{project}");
        let text = access.explain();
        assert!(
            text.contains(&project) && text.contains("incus-admin"),
            "{text}"
        );
        assert!(text.contains("your home directory"), "{text}");

        // With the project's config (as incus-user creates it) the allowed paths are named.
        let Access::Restricted(r) = access else {
            unreachable!()
        };
        let mut p = Project::default();
        p.config.insert(
            "restricted.devices.disk.paths".into(),
            "/home/bob, /srv/bob".into(),
        );
        let r = r.with_project_config(&p);
        assert_eq!(r.disk_paths, ["/home/bob", "/srv/bob"]);
        let text = Access::Restricted(r).explain();
        assert!(text.contains("under /home/bob, /srv/bob"), "{text}");
    }

    #[test]
    fn system_socket_trusted_is_full() {
        let s = SocketPath {
            path: PathBuf::from("/var/lib/incus/unix.socket"),
            kind: SocketKind::System,
            source: "test".into(),
        };
        assert_eq!(Access::classify(Some(&s), &server("trusted")), Access::Full);
    }
}
