//! Typed object ids: the `object` of every event (DESIGN.md §4, "The event log").
//!
//! An id is `KIND:REST`, where `REST` is one name or a `/`-separated path whose shape depends on
//! the kind: `project:api`, `sandbox:api`, `backup:api`, `realm:platform`,
//! `domain:platform/billing`, `contract:platform/billing/invoice`,
//! `binding:platform/billing/api`, `tool:node`, `file:api/src/main.rs`, `repo:api`,
//! `incus-project:repoman`. Build ids with the constructors and match them with [`ObjectId`]'s
//! variants instead of formatting or splitting strings, so every writer and reader agrees.
//!
//! Invariant: `id.to_string().parse::<ObjectId>() == Ok(id)` for every id the constructors build
//! (parts are non-empty and, except the last part of a `file:` id, contain no `/`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Project,
    Sandbox,
    Backup,
    Realm,
    Domain,
    Contract,
    Binding,
    Tool,
    File,
    Repo,
    IncusProject,
    /// One of repoman's own stores (`store:events`, `store:index`), what repairs act on.
    Store,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 12] = [
        ObjectKind::Project,
        ObjectKind::Sandbox,
        ObjectKind::Backup,
        ObjectKind::Realm,
        ObjectKind::Domain,
        ObjectKind::Contract,
        ObjectKind::Binding,
        ObjectKind::Tool,
        ObjectKind::File,
        ObjectKind::Repo,
        ObjectKind::IncusProject,
        ObjectKind::Store,
    ];

    /// The prefix before `:`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Project => "project",
            ObjectKind::Sandbox => "sandbox",
            ObjectKind::Backup => "backup",
            ObjectKind::Realm => "realm",
            ObjectKind::Domain => "domain",
            ObjectKind::Contract => "contract",
            ObjectKind::Binding => "binding",
            ObjectKind::Tool => "tool",
            ObjectKind::File => "file",
            ObjectKind::Repo => "repo",
            ObjectKind::IncusProject => "incus-project",
            ObjectKind::Store => "store",
        }
    }

    /// How the part after `:` is shaped, for error messages.
    pub fn shape(self) -> &'static str {
        match self {
            ObjectKind::Domain => "REALM/DOMAIN",
            ObjectKind::Contract => "REALM/DOMAIN/NAME",
            ObjectKind::Binding => "REALM/DOMAIN/REPO",
            ObjectKind::File => "PROJECT/PATH",
            _ => "NAME",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectKind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| IdError::UnknownKind(s.to_owned()))
    }
}

/// One object's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectId {
    Project(String),
    Sandbox(String),
    Backup(String),
    Realm(String),
    Domain {
        realm: String,
        domain: String,
    },
    Contract {
        realm: String,
        domain: String,
        name: String,
    },
    /// A repo's binding to a domain of a realm (what it exports or imports there).
    Binding {
        realm: String,
        domain: String,
        repo: String,
    },
    Tool(String),
    /// A file of a project's working copy, by its path relative to the repo.
    File {
        project: String,
        path: String,
    },
    /// A file outside every project (a global tool manifest), by its absolute path:
    /// `file:/home/me/.tool-versions`.
    HostFile(String),
    Repo(String),
    IncusProject(String),
    Store(String),
}

impl ObjectId {
    pub fn project(name: impl Into<String>) -> Self {
        Self::Project(name.into())
    }
    pub fn sandbox(name: impl Into<String>) -> Self {
        Self::Sandbox(name.into())
    }
    pub fn backup(name: impl Into<String>) -> Self {
        Self::Backup(name.into())
    }
    pub fn realm(name: impl Into<String>) -> Self {
        Self::Realm(name.into())
    }
    pub fn domain(realm: impl Into<String>, domain: impl Into<String>) -> Self {
        Self::Domain {
            realm: realm.into(),
            domain: domain.into(),
        }
    }
    pub fn contract(
        realm: impl Into<String>,
        domain: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self::Contract {
            realm: realm.into(),
            domain: domain.into(),
            name: name.into(),
        }
    }
    pub fn binding(
        realm: impl Into<String>,
        domain: impl Into<String>,
        repo: impl Into<String>,
    ) -> Self {
        Self::Binding {
            realm: realm.into(),
            domain: domain.into(),
            repo: repo.into(),
        }
    }
    pub fn tool(name: impl Into<String>) -> Self {
        Self::Tool(name.into())
    }
    pub fn file(project: impl Into<String>, path: impl Into<String>) -> Self {
        Self::File {
            project: project.into(),
            path: path.into(),
        }
    }
    /// A file outside every project, by its absolute path.
    pub fn host_file(path: &std::path::Path) -> Self {
        Self::HostFile(path.display().to_string())
    }
    pub fn repo(name: impl Into<String>) -> Self {
        Self::Repo(name.into())
    }
    pub fn incus_project(name: impl Into<String>) -> Self {
        Self::IncusProject(name.into())
    }
    pub fn store(name: impl Into<String>) -> Self {
        Self::Store(name.into())
    }

    /// The kind part of any object string as the log holds it, including kinds this version
    /// does not know (an older or newer log): `project` in `project:api`, the whole string when
    /// there is no `:`. Readers use this (never fail on an unknown kind); writers build ids.
    pub fn kind_str(object: &str) -> &str {
        object.split_once(':').map_or(object, |(k, _)| k)
    }

    /// What a user typed for an object: an id (`backup:api`), or a bare name meaning the project
    /// (`api` → `project:api`). Text of a kind this version does not know is kept as is, so old
    /// objects can still be looked up.
    pub fn from_user(arg: &str) -> String {
        match arg.parse::<ObjectId>() {
            Ok(id) => id.to_string(),
            Err(IdError::NoKind(_)) => Self::project(arg).to_string(),
            Err(_) => arg.to_owned(),
        }
    }

    pub fn kind(&self) -> ObjectKind {
        match self {
            Self::Project(_) => ObjectKind::Project,
            Self::Sandbox(_) => ObjectKind::Sandbox,
            Self::Backup(_) => ObjectKind::Backup,
            Self::Realm(_) => ObjectKind::Realm,
            Self::Domain { .. } => ObjectKind::Domain,
            Self::Contract { .. } => ObjectKind::Contract,
            Self::Binding { .. } => ObjectKind::Binding,
            Self::Tool(_) => ObjectKind::Tool,
            Self::File { .. } | Self::HostFile(_) => ObjectKind::File,
            Self::Repo(_) => ObjectKind::Repo,
            Self::IncusProject(_) => ObjectKind::IncusProject,
            Self::Store(_) => ObjectKind::Store,
        }
    }

    /// The project this object belongs to, when it belongs to one (`project:`, `sandbox:`,
    /// `backup:`, `file:`): what policy rules match `project = "..."` against.
    pub fn project_name(&self) -> Option<&str> {
        match self {
            Self::Project(n) | Self::Sandbox(n) | Self::Backup(n) => Some(n),
            Self::File { project, .. } => Some(project),
            _ => None,
        }
    }

    /// The id of the same project under another kind (`sandbox:api` → `backup:api`); `None` for
    /// objects that do not belong to one project.
    pub fn sibling(&self, kind: ObjectKind) -> Option<ObjectId> {
        let name = self.project_name()?.to_owned();
        match kind {
            ObjectKind::Project => Some(Self::Project(name)),
            ObjectKind::Sandbox => Some(Self::Sandbox(name)),
            ObjectKind::Backup => Some(Self::Backup(name)),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            Self::Project(n)
            | Self::Sandbox(n)
            | Self::Backup(n)
            | Self::Realm(n)
            | Self::Tool(n)
            | Self::Repo(n)
            | Self::IncusProject(n)
            | Self::Store(n)
            | Self::HostFile(n) => write!(f, "{kind}:{n}"),
            Self::Domain { realm, domain } => write!(f, "{kind}:{realm}/{domain}"),
            Self::Contract {
                realm,
                domain,
                name,
            } => write!(f, "{kind}:{realm}/{domain}/{name}"),
            Self::Binding {
                realm,
                domain,
                repo,
            } => write!(f, "{kind}:{realm}/{domain}/{repo}"),
            Self::File { project, path } => write!(f, "{kind}:{project}/{path}"),
        }
    }
}

/// A string that is not an object id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{0}` is not an object id: expected KIND:NAME, e.g. `project:api`")]
    NoKind(String),
    #[error(
        "`{0}` is not a kind of object; kinds are project, sandbox, backup, realm, domain, contract, binding, tool, file, repo, incus-project, store"
    )]
    UnknownKind(String),
    #[error("`{id}` is not a valid {kind} id: expected {kind}:{shape}")]
    Shape {
        id: String,
        kind: ObjectKind,
        shape: &'static str,
    },
}

impl FromStr for ObjectId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| IdError::NoKind(s.to_owned()))?;
        let kind: ObjectKind = kind.parse()?;
        let bad = || IdError::Shape {
            id: s.to_owned(),
            kind,
            shape: kind.shape(),
        };
        let parts = |n: usize| -> Result<Vec<String>, IdError> {
            let v: Vec<&str> = rest.split('/').collect();
            if v.len() == n && v.iter().all(|p| !p.is_empty()) {
                Ok(v.into_iter().map(str::to_owned).collect())
            } else {
                Err(bad())
            }
        };
        let one = || -> Result<String, IdError> { Ok(parts(1)?.remove(0)) };
        Ok(match kind {
            ObjectKind::Project => Self::Project(one()?),
            ObjectKind::Sandbox => Self::Sandbox(one()?),
            ObjectKind::Backup => Self::Backup(one()?),
            ObjectKind::Realm => Self::Realm(one()?),
            // Tool names are the manifests' own (`npm:prettier`, `ubi:BurntSushi/ripgrep`).
            ObjectKind::Tool if !rest.is_empty() => Self::Tool(rest.to_owned()),
            ObjectKind::Tool => return Err(bad()),
            ObjectKind::Repo => Self::Repo(one()?),
            ObjectKind::IncusProject => Self::IncusProject(one()?),
            ObjectKind::Store => Self::Store(one()?),
            ObjectKind::Domain => {
                let mut p = parts(2)?.into_iter();
                Self::Domain {
                    realm: p.next().unwrap_or_default(),
                    domain: p.next().unwrap_or_default(),
                }
            }
            ObjectKind::Contract => {
                let mut p = parts(3)?.into_iter();
                Self::Contract {
                    realm: p.next().unwrap_or_default(),
                    domain: p.next().unwrap_or_default(),
                    name: p.next().unwrap_or_default(),
                }
            }
            ObjectKind::Binding => {
                let mut p = parts(3)?.into_iter();
                Self::Binding {
                    realm: p.next().unwrap_or_default(),
                    domain: p.next().unwrap_or_default(),
                    repo: p.next().unwrap_or_default(),
                }
            }
            ObjectKind::File if rest.len() > 1 && rest.starts_with('/') => {
                Self::HostFile(rest.to_owned())
            }
            ObjectKind::File => match rest.split_once('/') {
                Some((project, path)) if !project.is_empty() && !path.is_empty() => Self::File {
                    project: project.to_owned(),
                    path: path.to_owned(),
                },
                _ => return Err(bad()),
            },
        })
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<ObjectId> for String {
    fn from(id: ObjectId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_and_parse_agree_with_the_design() {
        let cases = [
            (ObjectId::project("api"), "project:api"),
            (ObjectId::sandbox("api"), "sandbox:api"),
            (ObjectId::backup("api"), "backup:api"),
            (ObjectId::realm("platform"), "realm:platform"),
            (
                ObjectId::domain("platform", "billing"),
                "domain:platform/billing",
            ),
            (
                ObjectId::contract("platform", "billing", "invoice"),
                "contract:platform/billing/invoice",
            ),
            (
                ObjectId::binding("platform", "billing", "api"),
                "binding:platform/billing/api",
            ),
            (ObjectId::tool("node"), "tool:node"),
            (
                ObjectId::tool("ubi:BurntSushi/ripgrep"),
                "tool:ubi:BurntSushi/ripgrep",
            ),
            (ObjectId::file("api", "src/main.rs"), "file:api/src/main.rs"),
            (
                ObjectId::host_file(std::path::Path::new("/home/me/.tool-versions")),
                "file:/home/me/.tool-versions",
            ),
            (ObjectId::repo("api"), "repo:api"),
            (ObjectId::incus_project("repoman"), "incus-project:repoman"),
            (ObjectId::store("index"), "store:index"),
        ];
        for (id, text) in cases {
            assert_eq!(id.to_string(), text);
            assert_eq!(text.parse::<ObjectId>().unwrap(), id);
        }
    }

    #[test]
    fn malformed_ids_are_refused_with_the_expected_shape() {
        for bad in [
            "api",
            "project:",
            "project:a/b",
            "contract:platform/billing",
            "contract:platform//invoice",
            "domain:platform",
            "file:api",
            "file:/",
            "volume:x",
        ] {
            assert!(bad.parse::<ObjectId>().is_err(), "{bad} parsed");
        }
        let e = "contract:p/d".parse::<ObjectId>().unwrap_err();
        assert!(e.to_string().contains("contract:REALM/DOMAIN/NAME"), "{e}");
    }

    #[test]
    fn project_objects_know_their_project_and_siblings() {
        let s = ObjectId::sandbox("api");
        assert_eq!(s.project_name(), Some("api"));
        assert_eq!(s.sibling(ObjectKind::Backup), Some(ObjectId::backup("api")));
        assert_eq!(ObjectId::realm("p").project_name(), None);
        assert_eq!(ObjectId::file("api", "a/b").project_name(), Some("api"));
    }

    #[test]
    fn readers_keep_unknown_kinds_and_users_may_omit_project() {
        assert_eq!(ObjectId::kind_str("volume:x"), "volume");
        assert_eq!(ObjectId::kind_str("project:a"), "project");
        assert_eq!(ObjectId::kind_str("bare"), "bare");
        assert_eq!(ObjectId::from_user("api"), "project:api");
        assert_eq!(ObjectId::from_user("backup:api"), "backup:api");
        assert_eq!(ObjectId::from_user("volume:x"), "volume:x");
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = ObjectId::contract("p", "d", "n");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"contract:p/d/n\"");
        assert_eq!(serde_json::from_str::<ObjectId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ObjectId>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn every_constructed_id_round_trips(
            a in "[a-z][a-z0-9-]{0,12}",
            b in "[a-z][a-z0-9._-]{0,12}",
            c in "[a-z][a-z0-9._-]{0,12}",
            path in "[a-z0-9._-]{1,8}(/[a-z0-9._-]{1,8}){0,3}",
        ) {
            for id in [
                ObjectId::project(a.clone()),
                ObjectId::domain(a.clone(), b.clone()),
                ObjectId::contract(a.clone(), b.clone(), c.clone()),
                ObjectId::binding(a.clone(), b.clone(), c.clone()),
                ObjectId::file(a.clone(), path.clone()),
            ] {
                prop_assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
            }
        }
    }
}
