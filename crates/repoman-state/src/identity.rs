//! Who records events: the actor, the device and the profile.
//!
//! - The **device id** is a UUIDv7 generated once per state directory and stored in
//!   `<state>/device-id` with the first recorded event (opening state creates nothing). It is
//!   created with a link-if-absent step so two processes starting at the same time agree on one id.
//! - The **actor** is derived, never supplied: `human:USER@HOST` from the environment snapshot
//!   and the host name, or `ci:NAME` when `CI` is set. `agent:PROJECT` and `daemon:HOST` are only
//!   reachable through [`ActorRequest`], which the daemon uses; no variant of it names a human, so
//!   nothing on a command line can make repoman record a different human.
//! - The **profile** is `REPOMAN_PROFILE`, else `default`.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use repoman_core::{Env, ProjectName};
use serde::{Deserialize, Serialize};

use crate::error::StateError;

/// The name of the file holding the device id, in the state directory.
pub const DEVICE_ID_FILE: &str = "device-id";

/// The kind of an actor, the part before `:` in `human:alice@laptop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Human,
    Ci,
    Agent,
    Daemon,
}

impl ActorKind {
    /// Parse the kind of an actor string (`human:...` => `Human`).
    pub fn of(actor: &str) -> Option<Self> {
        match actor.split_once(':').map(|(k, _)| k) {
            Some("human") => Some(Self::Human),
            Some("ci") => Some(Self::Ci),
            Some("agent") => Some(Self::Agent),
            Some("daemon") => Some(Self::Daemon),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Ci => "ci",
            Self::Agent => "agent",
            Self::Daemon => "daemon",
        }
    }

    /// What this kind of actor may do, as recorded in the actors registry.
    pub fn capabilities(self) -> &'static [&'static str] {
        match self {
            Self::Human => &["append", "decide", "resolve-conflict", "repair"],
            Self::Ci => &["append", "decide", "repair"],
            Self::Agent => &["append", "decide"],
            Self::Daemon => &["append", "decide", "repair"],
        }
    }

    /// Trust level recorded in the actors registry: `owner` (a human at this machine),
    /// `automation` (CI, daemon) or `untrusted` (agents in sandboxes).
    pub fn trust(self) -> &'static str {
        match self {
            Self::Human => "owner",
            Self::Ci | Self::Daemon => "automation",
            Self::Agent => "untrusted",
        }
    }
}

/// Which actor a process records as. The default ([`ActorRequest::Derived`]) is the human (or CI)
/// running the process; the other variants exist for the daemon and cannot name a human.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ActorRequest {
    #[default]
    Derived,
    /// `agent:PROJECT`: an agent working inside a project's sandbox.
    Agent(ProjectName),
    /// `daemon:HOST`: the repoman daemon of this host.
    Daemon,
}

/// The actor, device and profile recorded on every event this process appends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub actor: String,
    pub actor_kind: ActorKind,
    pub device: String,
    pub profile: String,
    /// Whether the device id is already stored (false for a read-only open on a fresh machine).
    pub device_persisted: bool,
}

impl Identity {
    /// Derive the actor for `request` from the environment snapshot.
    pub fn derive_actor(env: &Env, request: &ActorRequest) -> (String, ActorKind) {
        let host = repoman_core::identity::host_name();
        match request {
            ActorRequest::Agent(p) => (format!("agent:{}", p.as_str()), ActorKind::Agent),
            ActorRequest::Daemon => (format!("daemon:{host}"), ActorKind::Daemon),
            ActorRequest::Derived if env.is_set("CI") => {
                let name = if env.is_set("GITHUB_ACTIONS") {
                    "github-actions".to_owned()
                } else {
                    host
                };
                (format!("ci:{name}"), ActorKind::Ci)
            }
            ActorRequest::Derived => {
                let user = repoman_core::identity::user_name(env);
                (format!("human:{user}@{host}"), ActorKind::Human)
            }
        }
    }

    /// The profile events are recorded under.
    pub fn profile(env: &Env) -> String {
        env.get("REPOMAN_PROFILE").unwrap_or("default").to_owned()
    }
}

/// Read the device id of `state_dir`, if one is stored.
pub fn read_device_id(state_dir: &Path) -> Result<Option<String>, StateError> {
    let path = state_dir.join(DEVICE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(StateError::BadDeviceId {
                    path,
                    value: id.to_owned(),
                });
            }
            Ok(Some(id.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// Read the device id, storing `candidate` if none is stored yet (creates the state directory).
/// When another process stores its candidate first, that one is returned.
pub fn ensure_device_id(state_dir: &Path, candidate: &str) -> Result<String, StateError> {
    if let Some(id) = read_device_id(state_dir)? {
        return Ok(id);
    }
    let io_err = |path: &Path| {
        let path: PathBuf = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
    let id = candidate.to_owned();
    let tmp = state_dir.join(format!(".{DEVICE_ID_FILE}.{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(format!("{id}\n").as_bytes())
            .map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    let target = state_dir.join(DEVICE_ID_FILE);
    // hard_link fails if the target exists: the first process to link wins, others read its id.
    let linked = std::fs::hard_link(&tmp, &target);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            repoman_core::fs::sync_dir(state_dir).map_err(io_err(state_dir))?;
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_device_id(state_dir)?
            .ok_or_else(|| StateError::Io {
                path: target.clone(),
                source: e,
            }),
        Err(source) => Err(StateError::Io {
            path: target,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repoman_core::Clock;

    #[test]
    fn ci_overrides_human_and_agent_is_explicit() {
        let env = Env::from_pairs([("USER", "alice")]);
        let (a, k) = Identity::derive_actor(&env, &ActorRequest::Derived);
        assert!(a.starts_with("human:alice@"), "{a}");
        assert_eq!(k, ActorKind::Human);
        let env = Env::from_pairs([
            ("USER", "alice"),
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
        ]);
        assert_eq!(
            Identity::derive_actor(&env, &ActorRequest::Derived).0,
            "ci:github-actions"
        );
        let p = ProjectName::parse("alpha").unwrap();
        assert_eq!(
            Identity::derive_actor(&env, &ActorRequest::Agent(p)).0,
            "agent:alpha"
        );
    }

    #[test]
    fn device_id_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(read_device_id(&state).unwrap(), None);
        let first = Clock::system().new_id().to_string();
        let a = ensure_device_id(&state, &first).unwrap();
        let b = ensure_device_id(&state, "0190a0b0-0000-7000-8000-000000000002").unwrap();
        assert_eq!((a.as_str(), b.as_str()), (first.as_str(), first.as_str()));
        assert_eq!(read_device_id(&state).unwrap(), Some(a));
    }
}
