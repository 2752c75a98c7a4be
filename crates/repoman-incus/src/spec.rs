//! Builders for what callers ask Incus to create or run.
//!
//! These are plain values (no I/O): a sandbox command builds an [`InstanceSpec`], shows it in a
//! `--dry-run` plan, and only then hands it to [`crate::ProjectScope::create_instance`]. Every
//! config and device value is stored as a string, which is what Incus expects on the wire.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::api::{Config, Device, Devices};
use crate::error::{IncusError, Result};

/// A project to create.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectSpec {
    pub name: String,
    pub description: String,
    pub config: Config,
}

impl ProjectSpec {
    /// A project with Incus' defaults (own images, own profiles, own storage volumes).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            config: Config::new(),
        }
    }

    /// `features.images`: `false` shares the default project's images (and aliases).
    pub fn features_images(self, own: bool) -> Self {
        self.config("features.images", own)
    }

    /// `features.profiles`: `true` gives the project its own profiles (starting with an empty
    /// `default` profile that has no root disk).
    pub fn features_profiles(self, own: bool) -> Self {
        self.config("features.profiles", own)
    }

    /// Any project config key.
    pub fn config(mut self, key: impl Into<String>, value: impl Display) -> Self {
        self.config.insert(key.into(), value.to_string());
        self
    }

    /// The description shown by `incus project list`.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
}

/// Builders for device maps.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSpec;

impl DeviceSpec {
    /// A bind mount of host path `source` at `path` in the instance.
    pub fn disk(source: impl AsRef<Path>, path: impl Into<String>) -> DiskDevice {
        let mut d = Device::new();
        d.insert("type".into(), "disk".into());
        d.insert(
            "source".into(),
            source.as_ref().to_string_lossy().into_owned(),
        );
        d.insert("path".into(), path.into());
        DiskDevice(d)
    }

    /// A root disk on storage pool `pool`.
    pub fn root_disk(pool: impl Into<String>) -> Device {
        let mut d = Device::new();
        d.insert("type".into(), "disk".into());
        d.insert("path".into(), "/".into());
        d.insert("pool".into(), pool.into());
        d
    }
}

/// A disk device being built; turn it into a [`Device`] with [`DiskDevice::build`] or `into()`.
#[derive(Debug, Clone)]
pub struct DiskDevice(Device);

impl DiskDevice {
    /// `shift=true`: an idmapped mount, so uid 1000 in the container is uid 1000 on the host.
    pub fn shift(self, on: bool) -> Self {
        self.set("shift", on)
    }

    /// `readonly=true`.
    pub fn readonly(self, on: bool) -> Self {
        self.set("readonly", on)
    }

    /// Any other disk key (`propagation`, `recursive`, ...).
    pub fn set(mut self, key: impl Into<String>, value: impl Display) -> Self {
        self.0.insert(key.into(), value.to_string());
        self
    }

    /// The device map.
    pub fn build(self) -> Device {
        self.0
    }
}

impl From<DiskDevice> for Device {
    fn from(d: DiskDevice) -> Device {
        d.0
    }
}

/// Well-known image servers, as the official client's default remotes.
const KNOWN_REMOTES: &[(&str, &str, &str)] = &[(
    "images",
    "https://images.linuxcontainers.org",
    "simplestreams",
)];

/// Where a new instance's image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// A local image alias (in the project's image store, or the default project's when the
    /// project has `features.images=false`).
    Alias(String),
    /// A local image by full fingerprint.
    Fingerprint(String),
    /// An image on another server, which Incus downloads (and caches).
    Remote {
        server: String,
        protocol: String,
        alias: String,
    },
}

impl ImageSource {
    /// A local alias.
    pub fn alias(alias: impl Into<String>) -> Self {
        ImageSource::Alias(alias.into())
    }

    /// A local fingerprint (the full 64 hex digits).
    pub fn fingerprint(fp: impl Into<String>) -> Self {
        ImageSource::Fingerprint(fp.into())
    }

    /// An alias on a remote image server (`protocol`: `simplestreams` or `incus`).
    pub fn remote(
        server: impl Into<String>,
        protocol: impl Into<String>,
        alias: impl Into<String>,
    ) -> Self {
        ImageSource::Remote {
            server: server.into(),
            protocol: protocol.into(),
            alias: alias.into(),
        }
    }

    /// Parse the CLI-style `[remote:]alias`: no prefix or `local:` is a local alias, `images:` is
    /// the public image server (simplestreams). Other remote names are refused because the user's
    /// `incus` CLI remotes are not read here: use [`ImageSource::remote`] with the server URL.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(IncusError::Invalid("empty image name".to_owned()));
        }
        let Some((remote, alias)) = text.split_once(':') else {
            return Ok(ImageSource::alias(text));
        };
        if alias.is_empty() {
            return Err(IncusError::Invalid(format!(
                "image `{text}` has no alias after `:`"
            )));
        }
        if remote == "local" {
            return Ok(ImageSource::alias(alias));
        }
        match KNOWN_REMOTES.iter().find(|(name, _, _)| *name == remote) {
            Some((_, server, protocol)) => Ok(ImageSource::remote(*server, *protocol, alias)),
            None => Err(IncusError::Invalid(format!(
                "unknown image remote `{remote}` in `{text}`: known are `local` and `images` \
                 (use a server URL for others)"
            ))),
        }
    }
}

/// An instance to create.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceSpec {
    pub name: String,
    pub source: ImageSource,
    pub description: String,
    /// `container` (default) or `virtual-machine`.
    pub kind: String,
    /// Applied in order; empty means Incus' default (`["default"]`).
    pub profiles: Vec<String>,
    pub config: Config,
    pub devices: Devices,
    pub ephemeral: bool,
    /// Start right after creating (one operation instead of two).
    pub start: bool,
}

impl InstanceSpec {
    /// A container named `name` from `source`, with the `default` profile.
    pub fn new(name: impl Into<String>, source: ImageSource) -> Self {
        Self {
            name: name.into(),
            source,
            description: String::new(),
            kind: "container".to_owned(),
            profiles: Vec::new(),
            config: Config::new(),
            devices: Devices::new(),
            ephemeral: false,
            start: false,
        }
    }

    /// Append a profile (the first call replaces the implicit `default`).
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profiles.push(name.into());
        self
    }

    /// Set a config key (value sent as a string).
    pub fn config(mut self, key: impl Into<String>, value: impl Display) -> Self {
        self.config.insert(key.into(), value.to_string());
        self
    }

    /// Set a `user.<key>` tag, e.g. `.tag("repoman.project", "api")`.
    pub fn tag(self, key: &str, value: impl Display) -> Self {
        self.config(format!("user.{key}"), value)
    }

    /// Add a device.
    pub fn device(mut self, name: impl Into<String>, device: impl Into<Device>) -> Self {
        self.devices.insert(name.into(), device.into());
        self
    }

    /// Delete the instance when it stops.
    pub fn ephemeral(mut self, on: bool) -> Self {
        self.ephemeral = on;
        self
    }

    /// Start it as part of creation.
    pub fn start(mut self, on: bool) -> Self {
        self.start = on;
        self
    }

    /// A description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
}

/// A non-interactive command to run in an instance.
#[derive(Debug, Clone, Serialize)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub uid: u32,
    pub gid: u32,
    /// Empty: Incus' default (the user's home, `/root` for root).
    pub cwd: String,
    /// How long to wait for the command; `None`: the client's operation timeout.
    pub timeout: Option<Duration>,
}

impl ExecSpec {
    /// `argv` run as root in `/root`, with Incus' default environment.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            command: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            uid: 0,
            gid: 0,
            cwd: String::new(),
            timeout: None,
        }
    }

    /// Run as this uid and gid.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Working directory in the instance.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = dir.into();
        self
    }

    /// Set an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Give up waiting after this long (the command keeps running; see docs/incus.md).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

/// Whether `incus exec` (see [`crate::ProjectScope::cli_exec_args`]) allocates a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// A pseudo-terminal: for an interactive shell.
    Interactive,
    /// Plain pipes: stdout and stderr stay separate and stream as produced.
    None,
}

/// What an exec produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Owner and mode of a file pushed into an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
}

impl FileMode {
    /// Owner `uid:gid`, permissions `mode`.
    pub fn new(uid: u32, gid: u32, mode: u32) -> Self {
        Self { uid, gid, mode }
    }
}

impl Default for FileMode {
    fn default() -> Self {
        Self {
            uid: 0,
            gid: 0,
            mode: 0o644,
        }
    }
}

/// What kind of object a pulled path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Other(String),
}

/// A file (or directory listing) pulled from an instance.
#[derive(Debug, Clone)]
pub struct PulledFile {
    pub kind: FileKind,
    /// The bytes of a file; empty for a directory (see `entries`).
    pub content: Vec<u8>,
    /// Names in a directory.
    pub entries: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_image_sources() {
        assert_eq!(
            ImageSource::parse("busybox").unwrap(),
            ImageSource::alias("busybox")
        );
        assert_eq!(
            ImageSource::parse("local:debian/12").unwrap(),
            ImageSource::alias("debian/12")
        );
        assert_eq!(
            ImageSource::parse("images:debian/12").unwrap(),
            ImageSource::remote(
                "https://images.linuxcontainers.org",
                "simplestreams",
                "debian/12"
            )
        );
        let err = ImageSource::parse("nope:x").unwrap_err().to_string();
        assert!(err.contains("unknown image remote `nope`"), "{err}");
        assert!(ImageSource::parse("images:").is_err());
        assert!(ImageSource::parse("  ").is_err());
    }

    #[test]
    fn builders_store_strings() {
        let spec = InstanceSpec::new("c1", ImageSource::alias("a"))
            .config("limits.cpu", 2)
            .tag("repoman.project", "api")
            .device(
                "repo",
                DeviceSpec::disk("/srv/x", "/work")
                    .shift(true)
                    .readonly(false),
            );
        assert_eq!(spec.config["limits.cpu"], "2");
        assert_eq!(spec.config["user.repoman.project"], "api");
        let repo = &spec.devices["repo"];
        assert_eq!(repo["type"], "disk");
        assert_eq!(repo["source"], "/srv/x");
        assert_eq!(repo["shift"], "true");
        assert_eq!(repo["readonly"], "false");
        let p = ProjectSpec::new("p")
            .features_images(false)
            .features_profiles(true);
        assert_eq!(p.config["features.images"], "false");
        assert_eq!(p.config["features.profiles"], "true");
    }
}
