//! The context every sandbox command starts from: the registry and effective settings, the Incus
//! connection, one listing of repoman's Incus project, and the reconciliation of the two.
//!
//! Invariants: observing is read-only (one `GET /1.0/instances?recursion=1` in the project);
//! runtime state (IPv4) is fetched only for running instances that have a NIC, in parallel; the
//! desired state of each registered sandbox is computed from files only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use repoman_core::Env;
use repoman_core::identity::{HostUser, host_user};
use repoman_core::registry::{OVERRIDES_FILE, ProjectEntry, ProjectOverrides, RegistryFile};
use repoman_core::settings::Settings;
use repoman_incus::{Access, Incus, Instance, ProjectScope};
use repoman_state::{State, TrustCheck, TrustedConfig};

use super::desired::{self, Desired, Inputs};
use super::drift::{self, Drift, Expected};
use super::error::SandboxError;

/// Connect to Incus and refuse a connection that cannot do what repoman needs.
pub fn connect(env: &Env) -> Result<Incus, SandboxError> {
    let incus = Incus::connect(env)?;
    match incus.access() {
        Access::Full => Ok(incus),
        other => Err(SandboxError::Restricted(format!(
            "repoman needs full access to Incus, but {}",
            other.explain()
        ))),
    }
}

/// The registry, settings and host user for one command.
#[derive(Debug)]
pub struct Estate {
    pub file: RegistryFile,
    pub settings: Settings,
    pub env: Env,
    /// The human-trusted `.repoman.toml` of each project (from the event log, read-only).
    pub trusted: BTreeMap<String, TrustedConfig>,
    /// Why the trusted versions could not be read (then nothing in-repo is applied).
    pub trust_error: Option<String>,
    /// repoman's own directories, never mounted into a sandbox.
    pub protected: Vec<PathBuf>,
}

impl Estate {
    /// Resolve settings and read the trusted `.repoman.toml` versions from the event log
    /// (read-only: nothing is created). A log that cannot be read trusts nothing.
    pub fn new(file: RegistryFile, env: &Env) -> Self {
        let settings = Settings::resolve(&file.registry, env);
        let paths = repoman_core::Paths::resolve(env);
        let mut protected = paths
            .as_ref()
            .map(crate::mount_policy::host_protected)
            .unwrap_or_default();
        // An Incus daemon with its own directory or socket (INCUS_DIR, INCUS_SOCKET) is as
        // off-limits as the default /var/lib/incus.
        protected.extend(env.get_path("INCUS_DIR"));
        protected.extend(
            env.get_path("INCUS_SOCKET")
                .and_then(|s| s.parent().map(std::path::Path::to_path_buf)),
        );
        let trusted = paths.map_err(|e| e.to_string()).and_then(|p| {
            State::open_read_only(&p, env, repoman_core::Clock::system())
                .and_then(|s| s.trusted_configs())
                .map_err(|e| e.to_string())
        });
        let (trusted, trust_error) = match trusted {
            Ok(t) => (t, None),
            Err(e) => (BTreeMap::new(), Some(e)),
        };
        Self {
            file,
            settings,
            env: env.clone(),
            trusted,
            trust_error,
            protected,
        }
    }

    /// How the repo's `.repoman.toml` stands against its trusted version, and what is applied.
    pub fn trust_check(&self, entry: &ProjectEntry) -> Result<TrustCheck, SandboxError> {
        let repo = desired::repo_path(&self.settings, entry.repo.as_str())?;
        let text = ProjectOverrides::read_raw(&repo)?;
        Ok(TrustCheck::new(
            entry.name.as_str(),
            text.as_deref(),
            self.trusted.get(entry.name.as_str()),
        ))
    }

    /// The overrides to apply: the trusted version of `.repoman.toml` only (none when the file
    /// was never trusted).
    pub fn applied_overrides(
        &self,
        entry: &ProjectEntry,
    ) -> Result<ProjectOverrides, SandboxError> {
        let repo = desired::repo_path(&self.settings, entry.repo.as_str())?;
        match self.trust_check(entry)?.applied {
            None => Ok(ProjectOverrides::default()),
            Some(text) => Ok(ProjectOverrides::parse(&repo.join(OVERRIDES_FILE), &text)?),
        }
    }

    /// The `restricted.*` keys repoman's Incus project should have ([`crate::restrict`]), for
    /// the host user of a command with no repo.
    pub fn restrictions(&self) -> BTreeMap<String, String> {
        let user = self.host_user(None);
        let home = desired::host_home(&user).or_else(|| self.env.get_path("HOME"));
        let runtime = repoman_core::Paths::resolve(&self.env)
            .ok()
            .map(|p| p.runtime_dir);
        crate::restrict::wanted(&crate::restrict::Inputs {
            local_repos: self
                .settings
                .local_repos
                .as_ref()
                .map(|l| l.value.as_path()),
            mount_roots: &self.file.registry.mount_roots,
            allow_devices: &self.file.registry.defaults.allow_devices,
            user: &user,
            user_home: home.as_deref(),
            runtime_dir: runtime.as_deref(),
        })
    }

    /// The Incus project holding the sandboxes.
    pub fn incus_project(&self) -> &str {
        &self.settings.incus_project.value
    }

    /// A registered project.
    pub fn entry(&self, name: &str) -> Result<&ProjectEntry, SandboxError> {
        self.file
            .registry
            .project(name)
            .ok_or_else(|| SandboxError::UnknownProject(name.to_owned()))
    }

    /// The host user for a repo (SUDO_UID/GID, or the repo owner under root).
    pub fn host_user(&self, repo: Option<&std::path::Path>) -> HostUser {
        host_user(&self.env, repo)
    }

    /// The desired state of a registered sandbox.
    pub fn desired(
        &self,
        entry: &ProjectEntry,
        image_flag: Option<&str>,
    ) -> Result<Desired, SandboxError> {
        let repo = desired::repo_path(&self.settings, entry.repo.as_str())?;
        let overrides = self.applied_overrides(entry)?;
        let user = self.host_user(Some(&repo));
        let home = desired::host_home(&user).or_else(|| self.env.get_path("HOME"));
        let agent_dir = repoman_core::Paths::resolve(&self.env)
            .ok()
            .map(|p| repoman_core::agent_door::agent_dir(&p, entry.name.as_str()));
        desired::build(&Inputs {
            settings: &self.settings,
            registry: &self.file.registry,
            entry,
            overrides: &overrides,
            user: &user,
            user_home: home.as_deref(),
            image_flag,
            protected: &self.protected,
            agent_dir: agent_dir.as_deref(),
        })
    }

    /// The expected state of every registered project (errors kept per project).
    pub fn expected(&self) -> Vec<Expected> {
        self.file
            .registry
            .projects
            .iter()
            .map(|p| Expected {
                name: p.name.to_string(),
                container: p.container,
                desired: if p.container {
                    self.desired(p, None).map_err(|e| e.to_string())
                } else {
                    Err("registered without a sandbox".to_owned())
                },
            })
            .collect()
    }
}

/// One listing of repoman's Incus project.
#[derive(Debug)]
pub struct Observed {
    pub scope: ProjectScope,
    /// `false` when the Incus project does not exist (setup has not run): no instances.
    pub project_exists: bool,
    pub instances: Vec<Instance>,
}

impl Observed {
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }
}

/// List the instances of the project (one call). A missing project is an empty listing.
pub fn observe(incus: &Incus, project: &str) -> Result<Observed, SandboxError> {
    let scope = incus.project(project);
    match scope.list_instances() {
        Ok(instances) => Ok(Observed {
            scope,
            project_exists: true,
            instances,
        }),
        Err(e) if e.is_not_found() => Ok(Observed {
            scope,
            project_exists: false,
            instances: Vec::new(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// IPv4 addresses of the running instances that have a NIC, fetched in parallel.
pub fn ipv4_of(observed: &Observed) -> std::collections::BTreeMap<String, Vec<String>> {
    let names: Vec<String> = observed
        .instances
        .iter()
        .filter(|i| {
            i.is_running()
                && i.expanded_devices
                    .values()
                    .any(|d| d.get("type").is_some_and(|t| t == "nic"))
        })
        .map(|i| i.name.clone())
        .collect();
    if names.is_empty() {
        return Default::default();
    }
    observed
        .scope
        .instance_states(&names)
        .into_iter()
        .filter_map(|(name, st)| st.ok().map(|s| (name, s.ipv4())))
        .collect()
}

/// The read-only reconciliation every command starts with.
pub fn reconcile(estate: &Estate, observed: &Observed) -> Vec<Drift> {
    drift::reconcile(
        &estate.expected(),
        &observed.instances,
        estate.file.registry.estate_id.as_deref(),
    )
}

/// Create a directory (and its parents) for the host user: under sudo repoman runs as root, but
/// the repo must belong to the user who will work in it (the sandbox maps that uid/gid).
pub fn make_dir_for(path: &std::path::Path, user: &HostUser) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let err = |message: String| SandboxError::Directory {
        path: path.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(path).map_err(|e| err(format!("cannot create: {e}")))?;
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if (meta.uid(), meta.gid()) != (user.uid, user.gid) {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
            err(format!(
                "cannot give it to uid {} gid {}: {e}",
                user.uid, user.gid
            ))
        })?;
    }
    Ok(())
}

/// Whether a host path exists, probed off the main thread with a timeout (a stale NFS mount
/// must not hang repoman). `None`: no answer in time.
pub fn probe_dir(path: PathBuf, timeout: std::time::Duration) -> Option<Result<(), String>> {
    let probe = move || match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(&path)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Ok(_) => Err("not a directory".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    repoman_core::fs::off_thread(timeout, probe).unwrap_or_else(|e| Some(Err(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_incus_dir_and_socket_are_protected_like_the_default() {
        let tmp = tempfile::tempdir().unwrap();
        let file =
            RegistryFile::from_text(&tmp.path().join("repoman.toml"), String::new()).unwrap();
        let env = Env::from_pairs([
            ("HOME", tmp.path().join("home")),
            ("INCUS_DIR", PathBuf::from("/opt/incus")),
            ("INCUS_SOCKET", PathBuf::from("/srv/incus-sock/unix.socket")),
        ]);
        let estate = Estate::new(file, &env);
        assert!(
            estate.protected.contains(&PathBuf::from("/opt/incus"))
                && estate.protected.contains(&PathBuf::from("/srv/incus-sock")),
            "{:?}",
            estate.protected
        );
    }
}
