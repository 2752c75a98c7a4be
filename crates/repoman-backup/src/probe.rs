//! Filesystem probes of the backup destination that cannot hang repoman.
//!
//! A stale NFS mount blocks any system call that touches it, uninterruptibly. So every probe of
//! the backup root runs on a worker thread, and the caller waits at most the probe timeout: on
//! timeout repoman reports "not reachable within Ns" (exit 4) and leaves the stuck thread behind
//! (it cannot be cancelled; the process exits soon after).
//!
//! The mount guard built on these probes is [`crate::mount::MountGuard`].

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::BackupError;

/// Default probe timeout (`[defaults] probe_timeout_secs`).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Run `f` on a worker thread; give up after `timeout`.
pub fn with_timeout<T: Send + 'static>(
    root: &Path,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackupError> {
    repoman_core::fs::off_thread(timeout, f)
        .map_err(|e| BackupError::io(root, e))?
        .ok_or_else(|| BackupError::Unreachable {
            path: root.to_path_buf(),
            after: timeout,
        })
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The mount source (`server:/export`, `/dev/sdb1`, `tmpfs`, a ZFS dataset).
    pub source: String,
    /// `major:minor` of the mounted filesystem (changes on every NFS mount: not an identity).
    pub device: String,
}

/// Parse `/proc/self/mountinfo` text. Mount points are unescaped (`\040` is a space).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let device = fields.get(2)?;
            let mount_point = fields.get(4)?;
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(dash + 1)?;
            let source = fields.get(dash + 2).copied().unwrap_or("");
            Some(MountEntry {
                mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(
                    mount_point.as_bytes(),
                ))),
                fstype: (*fstype).to_owned(),
                source: String::from_utf8_lossy(&unescape_octal(source.as_bytes())).into_owned(),
                device: (*device).to_owned(),
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
