//! The desired state of one sandbox: what its Incus instance should look like, computed from the
//! registry (`[defaults]`, `[[project]]`), the repo's `.repoman.toml` and the host user.
//!
//! Precedence (DESIGN.md §3, the issue): the image is the `[[project]] image` (recorded from
//! `--image`), else `.repoman.toml` `image`, else `[defaults] default_image`. Profiles are the
//! union, in order, of `default`, `[defaults] profiles`, `.repoman.toml` `profiles` and
//! `[[project]] profiles` (recorded from `--profile`): profiles only ever add configuration.
//!
//! Invariants: the repo is always the device `repo`, a plain (unshifted) bind mount of
//! `<local_repos>/<dirname>` at the mount path (default `/home/<user>/<dirname>`); extra mounts
//! are devices named from their target path (`mount-<slug>`), so reordering `[[mount]]` entries
//! is not drift; the agent door's endpoint directory is the device `repoman-agent`
//! (read-only at `/repoman`, `required=false`); the instance carries `user.repoman.*` tags, `environment.*` keys for `[env]`,
//! `raw.idmap` (see [`raw_idmap`]), the resource limits `limits.processes`, `limits.memory` and
//! (when configured) `limits.cpu` from `[defaults] limits_*` (defaults below), and
//! `security.guestapi` (off unless `[defaults] guest_api = true`), and nothing else repoman
//! compares. The instance's own keys win over its profiles', so these hold whatever a profile
//! says; the values are validated when the registry is read. No disk uses `shift`: with
//! `shift=true` container root would be host root on the repo's filesystem; with `raw.idmap`
//! only the host user's uid/gid are mapped 1:1 and container root is an unprivileged high uid.
//! Building a [`Desired`] touches no file except reading `.repoman.toml` (done by the caller,
//! which passes only its trusted version) and resolving extra mount sources
//! ([`crate::mount_policy`]), and never talks to Incus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use repoman_core::identity::HostUser;
use repoman_core::registry::{OVERRIDES_FILE, ProjectEntry, ProjectOverrides, Registry};
use repoman_core::settings::Settings;
use repoman_incus::ImageSource;
use serde::Serialize;

use super::error::SandboxError;

/// Tag keys (without the `user.` prefix) repoman puts on its instances.
pub const TAG_ESTATE: &str = "repoman.estate";
pub const TAG_PROJECT: &str = "repoman.project";
pub const TAG_REPO: &str = "repoman.repo";
pub const TAG_IMAGE: &str = "repoman.image";
/// The device name of the repo bind mount.
pub const REPO_DEVICE: &str = "repo";

/// Config keys repoman owns on an instance; other keys (`volatile.*`, `image.*`, ...) are
/// Incus' and are never compared or changed.
pub fn is_managed_key(key: &str) -> bool {
    key.starts_with("user.repoman.")
        || key.starts_with("environment.")
        || key == RAW_IDMAP
        || key == crate::hardening::GUEST_API
        || LIMIT_KEYS.contains(&key)
}

/// The resource limits repoman sets on every sandbox (from `[defaults] limits_*`).
pub const LIMIT_KEYS: &[&str] = &[LIMITS_PROCESSES, LIMITS_MEMORY, LIMITS_CPU];
pub const LIMITS_PROCESSES: &str = "limits.processes";
pub const LIMITS_MEMORY: &str = "limits.memory";
pub const LIMITS_CPU: &str = "limits.cpu";

/// `limits.processes` when `[defaults] limits_processes` is unset: far above what a build, an
/// editor's language servers and a test runner use together (a few hundred tasks), low enough
/// that a fork bomb stops long before the host's pid table or memory runs out.
pub const DEFAULT_LIMITS_PROCESSES: u64 = 2000;

/// `limits.memory` when `[defaults] limits_memory` is unset: half the host's memory, whatever
/// the machine. A link step or a test suite still fits on a laptop, and a runaway process is
/// killed inside its container while the other half stays the host's. `limits.cpu` has no
/// default: all CPUs, because the scheduler already shares them fairly between the container's
/// cgroup and the host's (a busy sandbox slows the host down, it does not lock it out), and
/// pinning a 2-core laptop's sandbox to one core would halve every build.
pub const DEFAULT_LIMITS_MEMORY: &str = "50%";

/// The instance key mapping the host user's ids into the container.
pub const RAW_IDMAP: &str = "raw.idmap";

/// The `raw.idmap` value mapping exactly the host user's ids: `both UID GID` when they are
/// equal, else `uid UID UID` and `gid GID GID` on two lines. Incus accepts it only when
/// `/etc/subuid`/`/etc/subgid` delegate the ids to root (`repoman_core::subid`).
pub fn raw_idmap(uid: u32, gid: u32) -> String {
    if uid == gid {
        format!("both {uid} {gid}")
    } else {
        format!("uid {uid} {uid}\ngid {gid} {gid}")
    }
}

/// Which layer chose the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageOrigin {
    Flag,
    Project,
    RepoFile,
    Defaults,
}

/// The computed target state of one sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Desired {
    pub name: String,
    pub incus_project: String,
    pub repo_dir: String,
    pub repo_path: PathBuf,
    /// Where the repo appears inside the container.
    pub mount_path: String,
    /// `HOME` inside the container for the host user.
    pub home: String,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub image: String,
    pub image_origin: ImageOrigin,
    pub profiles: Vec<String>,
    pub devices: BTreeMap<String, BTreeMap<String, String>>,
    pub config: BTreeMap<String, String>,
    /// Host paths of every bind mount (repo first), to check that they exist.
    pub mount_sources: Vec<PathBuf>,
}

impl Desired {
    /// The image as an Incus source (validated when the desired state was built).
    pub fn image_source(&self) -> Result<ImageSource, SandboxError> {
        Ok(ImageSource::parse(&self.image)?)
    }
}

/// Everything [`build`] needs.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub settings: &'a Settings,
    pub registry: &'a Registry,
    pub entry: &'a ProjectEntry,
    pub overrides: &'a ProjectOverrides,
    pub user: &'a HostUser,
    /// The host user's home directory on the host (for `~` in mount sources).
    pub user_home: Option<&'a Path>,
    /// `--image` given to this very command (wins over everything).
    pub image_flag: Option<&'a str>,
    /// Host paths no `[[mount]]` may be, contain or lie under besides the built-in ones
    /// (repoman's own dirs and sockets; [`crate::mount_policy`]).
    pub protected: &'a [PathBuf],
    /// The sandbox's agent endpoint directory on the host (`<runtime>/agents/<project>`),
    /// mounted read-only at `/repoman` (the agent door); `None`: no agent mount.
    pub agent_dir: Option<&'a Path>,
}

/// `<local_repos>/<dirname>`, or an error saying how to configure `local_repos`.
pub fn repo_path(settings: &Settings, dirname: &str) -> Result<PathBuf, SandboxError> {
    let Some(local) = &settings.local_repos else {
        return Err(SandboxError::NotConfigured {
            what: "local_repos (the directory holding your working copies)".to_owned(),
            hint: "run `repoman setup --local-repos DIR`, or set LOCAL_REPOS".to_owned(),
        });
    };
    Ok(local.value.join(dirname))
}

/// The host user's home directory on the host, from `/etc/passwd`.
pub fn host_home(user: &HostUser) -> Option<PathBuf> {
    repoman_core::identity::passwd_entries()
        .find(|e| e.uid == user.uid)
        .map(|e| PathBuf::from(e.home))
}

/// Compute the desired state.
pub fn build(i: &Inputs<'_>) -> Result<Desired, SandboxError> {
    let name = i.entry.name.as_str().to_owned();
    let dirname = i.entry.repo.as_str().to_owned();
    let repo_path = repo_path(i.settings, &dirname)?;
    let overrides_path = repo_path.join(OVERRIDES_FILE);
    let bad = |message: String| SandboxError::Overrides {
        path: overrides_path.clone(),
        message,
    };

    // Host uid/gid 0 is never mapped into a sandbox: container root would own host-root files
    // in the repo (a setuid-root binary planted there, files given to root).
    if i.user.uid == 0 || i.user.gid == 0 {
        return Err(SandboxError::Invalid(format!(
            "the host user for `{name}` would be root (uid {}, gid {}), and root is never mapped into a sandbox; run repoman as your own user, run it with sudo (SUDO_UID names you), or give the repo {} to an unprivileged user",
            i.user.uid,
            i.user.gid,
            repo_path.display()
        )));
    }
    let (image, image_origin) = if let Some(img) = i.image_flag {
        (img.to_owned(), ImageOrigin::Flag)
    } else if let Some(img) = &i.entry.image {
        (img.clone(), ImageOrigin::Project)
    } else if let Some(img) = &i.overrides.image {
        (img.clone(), ImageOrigin::RepoFile)
    } else if let Some(img) = &i.settings.default_image {
        (img.value.clone(), ImageOrigin::Defaults)
    } else {
        return Err(SandboxError::NotConfigured {
            what: format!("an image for `{name}`"),
            hint: "pass --image IMG, set `image` in the repo's .repoman.toml, or `[defaults] default_image` (repoman setup --image IMG)".to_owned(),
        });
    };
    ImageSource::parse(&image)
        .map_err(|e| SandboxError::Invalid(format!("image `{image}`: {e}")))?;

    let mut profiles = vec!["default".to_owned()];
    for p in i
        .settings
        .profiles
        .value
        .iter()
        .chain(&i.overrides.profiles)
        .chain(&i.entry.profiles)
    {
        if p.trim().is_empty() {
            return Err(SandboxError::Invalid(format!(
                "empty profile name for `{name}`"
            )));
        }
        if !profiles.contains(p) {
            profiles.push(p.clone());
        }
    }

    let mount_path = i.settings.mount_path_for(&i.user.name, &dirname);
    if !mount_path.starts_with('/') {
        return Err(SandboxError::Invalid(format!(
            "mount path `{mount_path}` (from [defaults] mount_path) must be absolute"
        )));
    }
    let home = if i.user.uid == 0 {
        "/root".to_owned()
    } else {
        format!("/home/{}", i.user.name)
    };

    let mut devices = BTreeMap::new();
    devices.insert(REPO_DEVICE.to_owned(), disk(&repo_path, &mount_path, false));
    let mut mount_sources = vec![repo_path.clone()];
    let policy = crate::mount_policy::for_sandbox(i, &repo_path);
    for m in &i.overrides.mounts {
        if !m.path.starts_with('/') {
            return Err(bad(format!(
                "[[mount]] path `{}` must be an absolute path inside the sandbox",
                m.path
            )));
        }
        if m.path.trim_end_matches('/') == mount_path.trim_end_matches('/') {
            return Err(bad(format!(
                "[[mount]] path `{}` is where the repo itself is mounted",
                m.path
            )));
        }
        let source = expand_source(&m.source, &repo_path, i.user_home).map_err(bad)?;
        let allowed = policy
            .resolve(&m.source, &source, m.readonly)
            .map_err(bad)?;
        let (source, readonly) = (allowed.source, allowed.readonly);
        let mut dev_name = format!("mount-{}", slug(&m.path));
        let mut n = 2;
        while devices.contains_key(&dev_name) {
            dev_name = format!("mount-{}-{n}", slug(&m.path));
            n += 1;
        }
        devices.insert(dev_name, disk(&source, &m.path, readonly));
        mount_sources.push(source);
    }

    if let Some(dir) = i.agent_dir {
        // Not a mount source to check: `required=false`, the daemon creates the directory.
        devices.insert(
            repoman_core::agent_door::AGENT_DEVICE.to_owned(),
            repoman_core::agent_door::agent_device(dir),
        );
    }

    let mut config = BTreeMap::new();
    config.insert(RAW_IDMAP.to_owned(), raw_idmap(i.user.uid, i.user.gid));
    let defaults = &i.registry.defaults;
    config.insert(
        LIMITS_PROCESSES.to_owned(),
        defaults
            .limits_processes
            .unwrap_or(DEFAULT_LIMITS_PROCESSES)
            .to_string(),
    );
    config.insert(
        LIMITS_MEMORY.to_owned(),
        defaults
            .limits_memory
            .clone()
            .unwrap_or_else(|| DEFAULT_LIMITS_MEMORY.to_owned()),
    );
    if let Some(cpu) = &defaults.limits_cpu {
        config.insert(LIMITS_CPU.to_owned(), cpu.clone());
    }
    config.insert(
        crate::hardening::GUEST_API.to_owned(),
        defaults.guest_api.unwrap_or(false).to_string(),
    );
    if let Some(estate) = &i.registry.estate_id {
        config.insert(format!("user.{TAG_ESTATE}"), estate.clone());
    }
    config.insert(format!("user.{TAG_PROJECT}"), name.clone());
    config.insert(format!("user.{TAG_REPO}"), repo_path.display().to_string());
    config.insert(format!("user.{TAG_IMAGE}"), image.clone());
    for (k, v) in &i.overrides.env {
        if !valid_env_name(k) {
            return Err(bad(format!(
                "[env] key `{k}` is not a valid environment variable name (letters, digits and `_`, not starting with a digit)"
            )));
        }
        config.insert(format!("environment.{k}"), v.clone());
    }

    Ok(Desired {
        name,
        incus_project: i.settings.incus_project.value.clone(),
        repo_dir: dirname,
        repo_path,
        mount_path,
        home,
        uid: i.user.uid,
        gid: i.user.gid,
        user: i.user.name.clone(),
        image,
        image_origin,
        profiles,
        devices,
        config,
        mount_sources,
    })
}

fn disk(source: &Path, path: &str, readonly: bool) -> BTreeMap<String, String> {
    let mut d: BTreeMap<String, String> = repoman_incus::DeviceSpec::disk(source, path).build();
    if readonly {
        d.insert("readonly".to_owned(), "true".to_owned());
    }
    d
}

/// `~` and `~/x` are the host user's home; relative paths are relative to the repo.
fn expand_source(source: &str, repo: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    if source.is_empty() {
        return Err("[[mount]] source is empty".to_owned());
    }
    if source == "~" || source.starts_with("~/") {
        let home = home.ok_or_else(|| {
            format!(
                "[[mount]] source `{source}` uses `~` but the host user's home directory is unknown"
            )
        })?;
        return Ok(match source.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => home.to_path_buf(),
        });
    }
    let p = Path::new(source);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        repo.join(p)
    })
}

fn slug(path: &str) -> String {
    let s: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "root".to_owned() } else { s }
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Load `.repoman.toml` from `repo` (a missing file, or a missing repo, means no overrides).
pub fn load_overrides(repo: &Path) -> Result<ProjectOverrides, SandboxError> {
    Ok(ProjectOverrides::load(repo)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use repoman_core::Env;
    use repoman_core::registry::MountDef;

    fn setup(defaults: &str) -> (Registry, Settings) {
        let reg = Registry::parse(Path::new("r.toml"), defaults).unwrap();
        let s = Settings::resolve(&reg, &Env::default());
        (reg, s)
    }

    fn entry(name: &str, repo: &str) -> ProjectEntry {
        ProjectEntry {
            name: name.parse().unwrap(),
            repo: repo.parse().unwrap(),
            container: true,
            image: None,
            profiles: vec![],
            created_at: None,
            last_sync: None,
            sync_every: None,
        }
    }

    fn user() -> HostUser {
        HostUser {
            name: "dev".into(),
            uid: 1000,
            gid: 1000,
        }
    }

    #[test]
    fn defaults_give_repo_mount_tags_and_image() {
        let (reg, s) = setup(
            "estate_id = \"e1\"\n[defaults]\nlocal_repos = \"/srv/r\"\ndefault_image = \"busy\"\nprofiles = [\"share\"]\n",
        );
        let e = entry("app", "app-repo");
        let d = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &ProjectOverrides::default(),
            user: &user(),
            user_home: None,
            image_flag: None,
            protected: &[],
            agent_dir: None,
        })
        .unwrap();
        assert_eq!(d.repo_path, PathBuf::from("/srv/r/app-repo"));
        assert_eq!(d.mount_path, "/home/dev/app-repo");
        assert_eq!(d.image, "busy");
        assert_eq!(d.image_origin, ImageOrigin::Defaults);
        assert_eq!(d.profiles, ["default", "share"]);
        let repo = &d.devices["repo"];
        assert_eq!(repo["source"], "/srv/r/app-repo");
        assert_eq!(repo["path"], "/home/dev/app-repo");
        assert!(!repo.contains_key("shift"), "no shift mount: {repo:?}");
        assert_eq!(d.config["raw.idmap"], "both 1000 1000");
        assert_eq!(d.config["limits.processes"], "2000");
        assert_eq!(d.config["limits.memory"], "50%");
        assert!(!d.config.contains_key("limits.cpu"));
        assert_eq!(d.config["security.guestapi"], "false");
        assert_eq!(d.config["user.repoman.estate"], "e1");
        assert_eq!(d.config["user.repoman.project"], "app");
        assert_eq!(d.config["user.repoman.repo"], "/srv/r/app-repo");
        assert_eq!(d.home, "/home/dev");
    }

    #[test]
    fn limits_and_guest_api_come_from_defaults() {
        let (reg, s) = setup(
            "[defaults]\nlocal_repos = \"/r\"\ndefault_image = \"d\"\nlimits_processes = 300\nlimits_memory = \"2GiB\"\nlimits_cpu = \"0-1\"\nguest_api = true\n",
        );
        let e = entry("x", "x");
        let d = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &ProjectOverrides::default(),
            user: &user(),
            user_home: None,
            image_flag: None,
            protected: &[],
            agent_dir: None,
        })
        .unwrap();
        assert_eq!(d.config["limits.processes"], "300");
        assert_eq!(d.config["limits.memory"], "2GiB");
        assert_eq!(d.config["limits.cpu"], "0-1");
        assert_eq!(d.config["security.guestapi"], "true");
        for k in [
            "limits.processes",
            "limits.memory",
            "limits.cpu",
            "security.guestapi",
        ] {
            assert!(is_managed_key(k), "{k}");
        }
        assert!(!is_managed_key("limits.cpu.allowance"));
    }

    #[test]
    fn raw_idmap_maps_only_the_user_ids() {
        assert_eq!(raw_idmap(1000, 1000), "both 1000 1000");
        assert_eq!(raw_idmap(1000, 1001), "uid 1000 1000\ngid 1001 1001");
    }

    #[test]
    fn a_root_host_user_is_never_mapped() {
        let (reg, s) = setup("[defaults]\nlocal_repos = \"/r\"\ndefault_image = \"d\"\n");
        let e = entry("x", "x");
        let o = ProjectOverrides::default();
        for (uid, gid) in [(0, 0), (0, 1000), (1000, 0)] {
            let u = HostUser { uid, gid, ..user() };
            let err = build(&Inputs {
                settings: &s,
                registry: &reg,
                entry: &e,
                overrides: &o,
                user: &u,
                user_home: None,
                image_flag: None,
                protected: &[],
                agent_dir: None,
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("would be root") && err.contains("SUDO_UID"),
                "{err}"
            );
        }
    }

    #[test]
    fn precedence_of_image_and_union_of_profiles() {
        let (reg, s) =
            setup("[defaults]\nlocal_repos = \"/r\"\ndefault_image = \"d\"\nprofiles = [\"a\"]\n");
        let mut e = entry("x", "x");
        e.profiles = vec!["c".into(), "a".into()];
        let o = ProjectOverrides {
            image: Some("repo-img".into()),
            profiles: vec!["default".into(), "b".into()],
            ..Default::default()
        };
        let mk = |e: &ProjectEntry, flag: Option<&str>| {
            build(&Inputs {
                settings: &s,
                registry: &reg,
                entry: e,
                overrides: &o,
                user: &user(),
                user_home: None,
                image_flag: flag,
                protected: &[],
                agent_dir: None,
            })
            .unwrap()
        };
        let d = mk(&e, None);
        assert_eq!(
            (d.image.as_str(), d.image_origin),
            ("repo-img", ImageOrigin::RepoFile)
        );
        assert_eq!(d.profiles, ["default", "a", "b", "c"]);
        e.image = Some("pinned".into());
        assert_eq!(mk(&e, None).image, "pinned");
        assert_eq!(mk(&e, Some("flag")).image_origin, ImageOrigin::Flag);
    }

    #[test]
    fn missing_image_and_local_repos_say_how_to_fix() {
        let (reg, s) = setup("[defaults]\nlocal_repos = \"/r\"\n");
        let e = entry("x", "x");
        let err = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &Default::default(),
            user: &user(),
            user_home: None,
            image_flag: None,
            protected: &[],
            agent_dir: None,
        })
        .unwrap_err();
        assert!(err.hint().unwrap().contains("--image"), "{err}");
        let (reg, s) = setup("");
        let err = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &Default::default(),
            user: &user(),
            user_home: None,
            image_flag: Some("i"),
            protected: &[],
            agent_dir: None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("local_repos"), "{err}");
        assert!(err.hint().unwrap().contains("LOCAL_REPOS"));
    }

    #[test]
    fn extra_mounts_env_and_their_errors() {
        let (reg, s) = setup(
            "[defaults]\nlocal_repos = \"/r\"\ndefault_image = \"d\"\n[[mount_root]]\npath = \"~/.npm\"\nwritable = true\n",
        );
        let e = entry("x", "x");
        let mut o = ProjectOverrides::default();
        o.mounts.push(MountDef {
            source: "~/.npm".into(),
            path: "/home/dev/.npm".into(),
            readonly: false,
        });
        o.mounts.push(MountDef {
            source: "data".into(),
            path: "/data".into(),
            readonly: true,
        });
        o.env.insert("NODE_ENV".into(), "development".into());
        let home = PathBuf::from("/home/dev");
        let d = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &o,
            user: &user(),
            user_home: Some(&home),
            image_flag: None,
            protected: &[],
            agent_dir: None,
        })
        .unwrap();
        assert_eq!(d.devices["mount-home-dev-.npm"]["source"], "/home/dev/.npm");
        assert_eq!(d.devices["mount-data"]["source"], "/r/x/data");
        assert_eq!(d.devices["mount-data"]["readonly"], "true");
        assert_eq!(d.config["environment.NODE_ENV"], "development");
        assert_eq!(d.mount_sources.len(), 3);
        assert!(!d.devices["mount-home-dev-.npm"].contains_key("readonly"));

        // The mount-source policy runs on every extra mount (crate::mount_policy).
        for (src, why) in [
            ("/etc", "protected"),
            ("../../../../etc", "leaves the repo"),
            ("../other", "leaves the repo"),
            ("~/.ssh", "protected"),
            ("/opt/x", "[[mount_root]]"),
        ] {
            let mut o = ProjectOverrides::default();
            o.mounts.push(MountDef {
                source: src.into(),
                path: "/mnt/x".into(),
                readonly: false,
            });
            let err = build(&Inputs {
                settings: &s,
                registry: &reg,
                entry: &e,
                overrides: &o,
                user: &user(),
                user_home: Some(&home),
                image_flag: None,
                protected: &[],
                agent_dir: None,
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(why), "{src}: {err}");
        }

        o.env.insert("1BAD".into(), "x".into());
        let err = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &o,
            user: &user(),
            user_home: Some(&home),
            image_flag: None,
            protected: &[],
            agent_dir: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/r/x/.repoman.toml") && err.contains("1BAD"),
            "{err}"
        );
        o.env.clear();
        o.mounts.push(MountDef {
            source: "/x".into(),
            path: "relative".into(),
            readonly: false,
        });
        let err = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &o,
            user: &user(),
            user_home: Some(&home),
            image_flag: None,
            protected: &[],
            agent_dir: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("must be an absolute path"), "{err}");
    }

    #[test]
    fn bad_image_reference_is_refused() {
        let (reg, s) = setup("[defaults]\nlocal_repos = \"/r\"\n");
        let e = entry("x", "x");
        let err = build(&Inputs {
            settings: &s,
            registry: &reg,
            entry: &e,
            overrides: &Default::default(),
            user: &user(),
            user_home: None,
            image_flag: Some("nope:img"),
            protected: &[],
            agent_dir: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown image remote"), "{err}");
    }
}
