//! The agent door's host side that the sandbox domain and the daemon share: where each
//! sandbox's endpoint directory lives on the host, and the Incus device that mounts it into the
//! sandbox (docs/daemon.md "The agent door", docs/security.md).
//!
//! `repoman new` puts the device on every sandbox and `update` adds it to older ones; the daemon
//! binds `groove.sock` in the directory. The directory, not the socket file, is mounted, so the
//! socket the daemon re-creates on restart is the one the container sees.

use std::path::{Path, PathBuf};

use crate::Paths;

/// Where a sandbox sees its endpoint directory. Not under `/run`: an init that mounts a tmpfs on
/// `/run` after Incus set up the devices would hide it.
pub const AGENT_MOUNT: &str = "/repoman";

/// The socket's file name inside the endpoint directory.
pub const AGENT_SOCKET: &str = "groove.sock";

/// The Incus device name of the endpoint mount.
pub const AGENT_DEVICE: &str = "repoman-agent";

/// `<runtime>/agents/<project>/`.
pub fn agent_dir(paths: &Paths, project: &str) -> PathBuf {
    paths.runtime_dir.join("agents").join(project)
}

/// Create the endpoint directory of `project` (mode 0755, so the container's users can reach
/// the socket through the read-only mount). Call before the container starts: a missing disk
/// source blocks the start.
pub fn ensure_agent_dir(paths: &Paths, project: &str) -> std::io::Result<PathBuf> {
    paths
        .ensure_runtime_dir()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = agent_dir(paths, project);
    make_endpoint_dir(&dir)?;
    Ok(dir)
}

/// `<agents>/<project>` with its modes: `agents` 0711 and the project's directory 0755, so the
/// container's users reach the socket through the read-only mount while the runtime dir (0700)
/// keeps the subtree closed to everyone else on the host.
fn make_endpoint_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(agents) = dir.parent() {
        std::fs::DirBuilder::new()
            .mode(0o711)
            .recursive(true)
            .create(agents)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// The Incus `disk` device that mounts the endpoint directory into the sandbox: read-only,
/// without `shift` (the daemon's uid is never mapped into the container by it), and
/// `required=false`, so a sandbox still starts when the directory is missing (the runtime dir is
/// emptied at reboot, before any daemon runs); the daemon re-adds the device once it made the
/// directory, which mounts it into the running sandbox.
pub fn agent_device(dir: &Path) -> std::collections::BTreeMap<String, String> {
    [
        ("type", "disk".to_owned()),
        ("source", dir.display().to_string()),
        ("path", AGENT_MOUNT.to_owned()),
        ("readonly", "true".to_owned()),
        ("required", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Create the endpoint directory an agent device mounts (from the device's `source`:
/// `<runtime>/agents/<project>`), with the modes of [`ensure_agent_dir`], so that a sandbox that
/// starts has its `/repoman` mount from the first moment. Does nothing for a device whose source
/// is not such a directory.
pub fn ensure_device_dir(
    device: &std::collections::BTreeMap<String, String>,
) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = device.get("source").map(Path::new) else {
        return Ok(());
    };
    let Some(agents) = dir
        .parent()
        .filter(|a| a.file_name().is_some_and(|n| n == "agents"))
    else {
        return Ok(());
    };
    if let Some(runtime) = agents.parent() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(runtime)?;
    }
    make_endpoint_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_device_mounts_the_directory_read_only_and_its_directory_is_made_with_its_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run/repoman/agents/app");
        let dev = agent_device(&dir);
        assert_eq!(dev["path"], AGENT_MOUNT);
        assert_eq!(dev["readonly"], "true");
        assert_eq!(dev["required"], "false");
        assert!(!dev.contains_key("shift"));
        ensure_device_dir(&dev).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(mode(dir.parent().unwrap()), 0o711);
        // Not an endpoint directory: left alone.
        let other = agent_device(&tmp.path().join("elsewhere/app"));
        ensure_device_dir(&other).unwrap();
        assert!(!tmp.path().join("elsewhere").exists());
    }
}
