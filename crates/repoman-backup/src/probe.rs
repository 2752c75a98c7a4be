//! Filesystem probes of the backup destination that cannot hang repoman.
//!
//! A stale NFS mount blocks any system call that touches it, uninterruptibly. So every probe of
//! the backup root runs on a worker thread, and the caller waits at most the probe timeout: on
//! timeout repoman reports "not reachable within Ns" (exit 4) and leaves the stuck thread behind
//! (it cannot be cancelled; the process exits soon after).
//!
//! The mount check reads `/proc/self/mountinfo` *after* listing the backup root and opening the
//! marker inside it, because that access is what makes autofs mount the share: before it, the
//! mount point shows as `autofs`.

use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::BackupError;
use crate::marker::{Marker, MarkerRead};
use crate::rsync::{MARKER_FILE, PARTIAL_DIR};

/// Default probe timeout (`[defaults] probe_timeout_secs`).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Run `f` on a worker thread; give up after `timeout`.
pub fn with_timeout<T: Send + 'static>(
    root: &Path,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackupError> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("repoman-fs-probe".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| BackupError::io(root, e))?;
    drop(spawned); // detached on purpose: a thread stuck in the kernel cannot be joined
    rx.recv_timeout(timeout)
        .map_err(|_| BackupError::Unreachable {
            path: root.to_path_buf(),
            after: timeout,
        })
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Parse `/proc/self/mountinfo` text. Mount points are unescaped (`\040` is a space).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = fields.get(4)?;
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(dash + 1)?;
            let source = fields.get(dash + 2).copied().unwrap_or("");
            Some(MountEntry {
                mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(
                    mount_point.as_bytes(),
                ))),
                fstype: (*fstype).to_owned(),
                source: source.to_owned(),
            })
        })
        .collect()
}

/// Decode the `\ooo` escapes of mountinfo (space, tab, newline, backslash).
fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && s.len() - i > 3
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            out.push(((s[i + 1] - b'0') << 6) | ((s[i + 2] - b'0') << 3) | (s[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The mount holding `path` (already canonical): the longest mount point that is a prefix; for
/// several mounts on the same point, the last one (the one on top).
pub fn containing_mount<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let mut best: Option<&MountEntry> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best
                .is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len())
        {
            best = Some(m);
        }
    }
    best
}

/// What a probe of the destination found.
#[derive(Debug, Clone)]
pub struct DestinationProbe {
    /// The backup root, canonicalized.
    pub root: PathBuf,
    pub mount: MountEntry,
    /// `<backup_root>/<repo>` exists.
    pub repo_dir_exists: bool,
    /// It has entries besides the marker and rsync's partial directory.
    pub repo_dir_has_content: bool,
    pub marker: MarkerRead,
}

/// Probe `<backup_root>` and `<backup_root>/<repo>` on a worker thread: trigger autofs, check the
/// mount and its filesystem type, read the marker.
pub fn probe_destination(
    backup_root: &Path,
    repo: &str,
    expected_fstype: Option<&str>,
    timeout: Duration,
) -> Result<DestinationProbe, BackupError> {
    let root = backup_root.to_path_buf();
    let repo = repo.to_owned();
    let probe = with_timeout(backup_root, timeout, move || probe_blocking(&root, &repo))?;
    let probe = probe.map_err(|(path, e)| {
        if e.kind() == io::ErrorKind::NotFound && path == backup_root {
            BackupError::NotMounted {
                path: backup_root.to_path_buf(),
                reason: "the directory does not exist".into(),
                hint: format!(
                    "mount the backup share at {} (or fix [defaults] backup_root)",
                    backup_root.display()
                ),
            }
        } else {
            BackupError::io(path, e)
        }
    })?;
    check_mount(backup_root, &probe.mount, expected_fstype)?;
    Ok(probe)
}

fn check_mount(
    backup_root: &Path,
    mount: &MountEntry,
    expected: Option<&str>,
) -> Result<(), BackupError> {
    let not_mounted = |reason: String, hint: String| BackupError::NotMounted {
        path: backup_root.to_path_buf(),
        reason,
        hint,
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
    match expected {
        Some(want) if want != mount.fstype => Err(not_mounted(
            format!(
                "it is on {} ({} mounted at {}), but [defaults] backup_fstype is {want}",
                mount.fstype,
                mount.source,
                mount.mount_point.display()
            ),
            format!(
                "mount the backup share at {} (or fix [defaults] backup_fstype)",
                backup_root.display()
            ),
        )),
        Some(_) => Ok(()),
        None if mount.mount_point == Path::new("/") => Err(not_mounted(
            format!(
                "it is on the root filesystem ({}), which usually means the share is not mounted",
                mount.fstype
            ),
            format!(
                "mount the share; if {} really is meant to live on the root filesystem, set [defaults] backup_fstype = \"{}\"",
                backup_root.display(),
                mount.fstype
            ),
        )),
        None => Ok(()),
    }
}

fn probe_blocking(root: &Path, repo: &str) -> Result<DestinationProbe, (PathBuf, io::Error)> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    // Listing the root is the access that triggers an automount.
    let mut entries = std::fs::read_dir(root).map_err(at(root))?;
    let _ = entries.next();
    let canonical = std::fs::canonicalize(root).map_err(at(root))?;
    let repo_dir = canonical.join(repo);
    let (repo_dir_exists, repo_dir_has_content) = match std::fs::read_dir(&repo_dir) {
        Ok(rd) => {
            let mut content = false;
            for e in rd {
                let e = e.map_err(at(&repo_dir))?;
                let name = e.file_name();
                if name != MARKER_FILE && name != PARTIAL_DIR {
                    content = true;
                    break;
                }
            }
            (true, content)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (false, false),
        Err(e) => return Err((repo_dir, e)),
    };
    let marker = Marker::read(&repo_dir.join(MARKER_FILE));
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
        repo_dir_exists,
        repo_dir_has_content,
        marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
        27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
        40 27 0:50 / /mnt/nfs rw,relatime - autofs systemd-1 rw,fd=1\n\
        41 40 0:51 / /mnt/nfs rw,relatime - nfs4 srv:/export rw,vers=4.2\n\
        42 27 0:52 / /mnt/with\\040space rw shared:1 - tmpfs tmpfs rw\n";

    #[test]
    fn the_mount_on_top_wins_and_escapes_are_decoded() {
        let mounts = parse_mountinfo(SAMPLE);
        let m = containing_mount(&mounts, Path::new("/mnt/nfs/repos")).unwrap();
        assert_eq!(m.fstype, "nfs4");
        let m = containing_mount(&mounts, Path::new("/mnt/with space/x")).unwrap();
        assert_eq!(m.fstype, "tmpfs");
        let m = containing_mount(&mounts, Path::new("/mnt/nfsx")).unwrap();
        assert_eq!(m.mount_point, Path::new("/"));
    }

    #[test]
    fn root_filesystem_without_expected_type_is_refused() {
        let root = MountEntry {
            mount_point: "/".into(),
            fstype: "ext4".into(),
            source: "/dev/vda".into(),
        };
        let e = check_mount(Path::new("/mnt/b"), &root, None).unwrap_err();
        assert!(e.to_string().contains("root filesystem"), "{e}");
        check_mount(Path::new("/mnt/b"), &root, Some("ext4")).unwrap();
        let e = check_mount(Path::new("/mnt/b"), &root, Some("nfs4")).unwrap_err();
        assert!(e.to_string().contains("backup_fstype is nfs4"), "{e}");
    }

    #[test]
    fn a_probe_that_blocks_times_out() {
        // A FIFO blocks open(2) until a writer appears: a real hang, like a dead NFS server.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let f2 = fifo.clone();
        let e = with_timeout(dir.path(), Duration::from_millis(200), move || {
            std::fs::read(&f2).is_ok()
        })
        .unwrap_err();
        assert!(e.to_string().contains("not reachable within 0s"), "{e}");
        // Unblock the stuck thread so the test process ends cleanly.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    }
}
