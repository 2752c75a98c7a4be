//! The one mount guard: is the backup root the share we expect, mounted, right now?
//!
//! Every command that touches the backup (`sync`, `verify`, `restore`, `conflicts resolve`,
//! `status`) asks [`MountGuard`] and so gets the same verdict for the same situation.
//!
//! The check, on a worker thread with a timeout (a hung NFS server blocks in the kernel):
//! 1. list the backup root and open the marker inside it: that access is what makes autofs mount
//!    the share (before it, the mount point shows as `autofs`);
//! 2. canonicalize the root and find the mount holding it in `/proc/self/mountinfo` (the longest
//!    mount point, the top-most of stacked mounts);
//! 3. compare that mount with what `setup` recorded: its mount point (`backup_mount_point`), its
//!    filesystem type (`backup_fstype`) and its source device (`backup_device`). A share that is
//!    not mounted leaves the root on the *enclosing* mount, which has another mount point even
//!    when it has the same filesystem type (a tmpfs inside a tmpfs, an NFS share below another
//!    NFS mount): the mount point is what catches that. Without any recorded expectation a root
//!    on `/` is refused, as that usually means the share is not mounted.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::BackupError;
use crate::marker::{Marker, MarkerRead};
use crate::probe::{MountEntry, containing_mount, parse_mountinfo, with_timeout};
use crate::rsync::{MARKER_FILE, PARTIAL_DIR};

/// What `setup` recorded about the mount holding the backup root (`[defaults]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// `backup_fstype`, e.g. `nfs4`, `zfs`, `tmpfs`.
    pub fstype: Option<String>,
    /// `backup_mount_point`: where the share is mounted (the backup root or an ancestor).
    pub mount_point: Option<PathBuf>,
    /// `backup_device`: the mount's source (`server:/export`, `/dev/sdb1`, a ZFS dataset).
    pub device: Option<String>,
}

impl Expected {
    /// From the resolved settings.
    pub fn from_settings(s: &repoman_core::settings::Settings) -> Self {
        Self {
            fstype: s.backup_fstype.as_ref().map(|f| f.value.clone()),
            mount_point: s.backup_mount_point.as_ref().map(|f| f.value.clone()),
            device: s.backup_device.as_ref().map(|f| f.value.clone()),
        }
    }

    /// What to record for a backup root on `mount`.
    pub fn of(mount: &MountEntry) -> Self {
        Self {
            fstype: Some(mount.fstype.clone()),
            mount_point: Some(mount.mount_point.clone()),
            device: Some(mount.source.clone()),
        }
    }
}

/// The backup root as the guard found it.
#[derive(Debug, Clone, Serialize)]
pub struct Mounted {
    /// The backup root, canonicalized.
    pub root: PathBuf,
    pub mount: MountEntry,
}

/// What a probe of one project's destination found.
#[derive(Debug, Clone)]
pub struct DestinationProbe {
    /// The backup root, canonicalized.
    pub root: PathBuf,
    pub mount: MountEntry,
    /// `<backup_root>/<repo>` exists.
    pub repo_dir_exists: bool,
    /// It has entries besides the marker and rsync's partial and temporary directories.
    pub repo_dir_has_content: bool,
    pub marker: MarkerRead,
}

/// The mount guard of one backup root.
#[derive(Debug, Clone)]
pub struct MountGuard {
    root: PathBuf,
    expected: Expected,
    timeout: Duration,
}

impl MountGuard {
    pub fn new(root: impl Into<PathBuf>, expected: Expected, timeout: Duration) -> Self {
        Self {
            root: root.into(),
            expected,
            timeout,
        }
    }

    /// The guard for the configured backup root; `None` when `backup_root` is not set.
    pub fn from_settings(s: &repoman_core::settings::Settings) -> Option<Self> {
        let root = s.backup_root.as_ref()?.value.clone();
        Some(Self::new(
            root,
            Expected::from_settings(s),
            s.probe_timeout.value,
        ))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `f` (file-system work on the backup) on a worker thread, at most the probe timeout
    /// (times `factor`, for work that grows with a plan).
    pub fn off_thread<T: Send + 'static>(
        &self,
        factor: u32,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, BackupError> {
        with_timeout(&self.root, self.timeout * factor.max(1), f)
    }

    /// Is the backup root mounted as expected?
    pub fn check(&self) -> Result<Mounted, BackupError> {
        let p = self.probe_repo(None)?;
        Ok(Mounted {
            root: p.root,
            mount: p.mount,
        })
    }

    /// Check the mount and look at `<backup_root>/<repo>`: does it exist, has it content, its
    /// marker.
    pub fn probe(&self, repo: &str) -> Result<DestinationProbe, BackupError> {
        self.probe_repo(Some(repo))
    }

    fn probe_repo(&self, repo: Option<&str>) -> Result<DestinationProbe, BackupError> {
        let root = self.root.clone();
        let repo = repo.map(str::to_owned);
        let probe = self.off_thread(1, move || probe_blocking(&root, repo.as_deref()))?;
        let probe = probe.map_err(|(path, e)| {
            if e.kind() == io::ErrorKind::NotFound && path == self.root {
                BackupError::NotMounted {
                    path: self.root.clone(),
                    reason: "the directory does not exist".into(),
                    hint: format!(
                        "mount the backup share at {} (or fix [defaults] backup_root)",
                        self.root.display()
                    ),
                }
            } else {
                BackupError::io(path, e)
            }
        })?;
        verdict(&self.root, &probe.mount, &self.expected)?;
        Ok(probe)
    }
}

/// Find the mount holding `backup_root` now (for `setup`, which records it).
pub fn observe(backup_root: &Path, timeout: Duration) -> Result<MountEntry, BackupError> {
    let root = backup_root.to_path_buf();
    with_timeout(backup_root, timeout, move || probe_blocking(&root, None))?
        .map(|p| p.mount)
        .map_err(|(path, e)| BackupError::io(path, e))
}

/// The guard's verdict on the mount holding the backup root.
pub fn verdict(
    backup_root: &Path,
    mount: &MountEntry,
    expected: &Expected,
) -> Result<(), BackupError> {
    let not_mounted = |reason: String, hint: String| BackupError::NotMounted {
        path: backup_root.to_path_buf(),
        reason,
        hint,
    };
    let mount_hint = || {
        format!(
            "mount the backup share{} (or, if the share really moved, run `repoman setup` again to record it)",
            expected
                .mount_point
                .as_ref()
                .map(|p| format!(" at {}", p.display()))
                .unwrap_or_default()
        )
    };
    if mount.fstype == "autofs" {
        return Err(not_mounted(
            format!(
                "{} is still an automount trigger after access (the share did not mount)",
                mount.mount_point.display()
            ),
            "check the automounter (`systemctl status autofs`) and the file server".into(),
        ));
    }
    let on = format!(
        "{} ({} from {})",
        mount.mount_point.display(),
        mount.fstype,
        mount.source
    );
    if let Some(want) = &expected.mount_point
        && *want != mount.mount_point
    {
        return Err(not_mounted(
            format!(
                "it is on the mount {on}, but the backup share was recorded as mounted at {}",
                want.display()
            ),
            mount_hint(),
        ));
    }
    if let Some(want) = &expected.fstype
        && *want != mount.fstype
    {
        return Err(not_mounted(
            format!("it is on {on}, but [defaults] backup_fstype is {want}"),
            format!(
                "mount the backup share at {} (or fix [defaults] backup_fstype)",
                backup_root.display()
            ),
        ));
    }
    if let Some(want) = &expected.device
        && *want != mount.source
    {
        return Err(not_mounted(
            format!("it is on {on}, but the backup share was recorded as {want}"),
            mount_hint(),
        ));
    }
    let nothing_recorded = expected.fstype.is_none() && expected.mount_point.is_none();
    if nothing_recorded && mount.mount_point == Path::new("/") {
        return Err(not_mounted(
            format!(
                "it is on the root filesystem ({}), which usually means the share is not mounted",
                mount.fstype
            ),
            format!(
                "mount the share; if {} really is meant to live on the root filesystem, set [defaults] backup_fstype = \"{}\"",
                backup_root.display(),
                mount.fstype
            ),
        ));
    }
    Ok(())
}

fn probe_blocking(
    root: &Path,
    repo: Option<&str>,
) -> Result<DestinationProbe, (PathBuf, io::Error)> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    // Listing the root is the access that triggers an automount.
    let mut entries = std::fs::read_dir(root).map_err(at(root))?;
    let _ = entries.next();
    let canonical = std::fs::canonicalize(root).map_err(at(root))?;
    let (mut exists, mut content, mut marker) = (false, false, MarkerRead::Missing);
    if let Some(repo) = repo {
        let repo_dir = canonical.join(repo);
        match std::fs::read_dir(&repo_dir) {
            Ok(rd) => {
                exists = true;
                for e in rd {
                    let e = e.map_err(at(&repo_dir))?;
                    let name = e.file_name();
                    if name != MARKER_FILE && name != PARTIAL_DIR && name != crate::rsync::TEMP_DIR
                    {
                        content = true;
                        break;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err((repo_dir, e)),
        }
        marker = Marker::read(&repo_dir.join(MARKER_FILE));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(at(Path::new("/proc/self/mountinfo")))?;
    let mounts = parse_mountinfo(&mountinfo);
    let mount = containing_mount(&mounts, &canonical)
        .cloned()
        .ok_or_else(|| {
            (
                canonical.clone(),
                io::Error::other("no mount in /proc/self/mountinfo contains this path"),
            )
        })?;
    Ok(DestinationProbe {
        root: canonical,
        mount,
        repo_dir_exists: exists,
        repo_dir_has_content: content,
        marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(point: &str, fstype: &str, source: &str) -> MountEntry {
        MountEntry {
            mount_point: point.into(),
            fstype: fstype.into(),
            source: source.into(),
            device: "0:1".into(),
        }
    }

    #[test]
    fn root_filesystem_without_expectations_is_refused() {
        let root = mount("/", "ext4", "/dev/vda");
        let b = Path::new("/mnt/b");
        let e = verdict(b, &root, &Expected::default()).unwrap_err();
        assert!(e.to_string().contains("root filesystem"), "{e}");
        let ext4 = Expected {
            fstype: Some("ext4".into()),
            ..Default::default()
        };
        verdict(b, &root, &ext4).unwrap();
        let nfs = Expected {
            fstype: Some("nfs4".into()),
            ..Default::default()
        };
        let e = verdict(b, &root, &nfs).unwrap_err();
        assert!(e.to_string().contains("backup_fstype is nfs4"), "{e}");
    }

    #[test]
    fn an_enclosing_mount_of_the_same_type_is_not_the_share() {
        let recorded = Expected::of(&mount("/mnt/outer/share", "tmpfs", "share"));
        let b = Path::new("/mnt/outer/share");
        verdict(b, &mount("/mnt/outer/share", "tmpfs", "share"), &recorded).unwrap();
        let e = verdict(b, &mount("/mnt/outer", "tmpfs", "outer"), &recorded).unwrap_err();
        assert!(
            e.to_string()
                .contains("recorded as mounted at /mnt/outer/share"),
            "{e}"
        );
        let e = verdict(b, &mount("/mnt/outer/share", "tmpfs", "other"), &recorded).unwrap_err();
        assert!(e.to_string().contains("recorded as share"), "{e}");
    }
}
