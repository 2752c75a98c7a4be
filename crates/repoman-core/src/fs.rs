//! Crash-safe file writes and cross-process advisory locks.
//!
//! [`write_atomic`] never leaves a half-written file under the final name: it writes a temporary
//! file in the same directory, fsyncs it, renames it over the target and fsyncs the directory, so
//! after a crash the target holds either the old or the new bytes.
//!
//! [`read_in_dir`] reads a file a sandbox may have planted (in a repo) without following a
//! symlink anywhere on the way and without blocking on a FIFO or device.
//!
//! [`FileLock`] is an advisory `flock(2)` lock on a lock file; it is released when dropped (and by
//! the kernel if the process dies), so a crashed repoman never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;

/// Errors from atomic writes and locks.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot open lock file {path}: {source}")]
    LockOpen { path: PathBuf, source: io::Error },
    #[error("{what} is locked by another repoman process (waited {waited:?}; lock file {path})")]
    LockTimeout {
        what: String,
        path: PathBuf,
        waited: Duration,
    },
}

/// Write `bytes` to `path` atomically. The file gets `mode` if given, else keeps the mode of the
/// file it replaces, else 0644.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = mode
        .or_else(|| {
            std::fs::metadata(path)
                .ok()
                .map(|m| m.permissions().mode() & 0o7777)
        })
        .unwrap_or(0o644);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile_in(dir, &name).map_err(err)?;
    let result = (|| {
        tmp.1.write_all(bytes)?;
        tmp.1
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    result.map_err(err)
}

/// fsync a directory so a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn tempfile_in(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    for attempt in 0u32..1000 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(".{name}.tmp-{pid}-{nanos:x}-{attempt}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not pick a temporary file name",
    ))
}

/// An exclusive advisory lock, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Take the lock on `path` (created if missing), waiting up to `timeout` (`None`: forever).
    /// `what` names the protected thing in the timeout message, e.g. "the event log".
    /// `on_wait` is called once if the lock is busy, so the caller can tell the user it waits.
    pub fn acquire(
        path: &Path,
        what: &str,
        timeout: Option<Duration>,
        on_wait: impl FnOnce(),
    ) -> Result<Self, FsError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| FsError::LockOpen {
                path: path.to_path_buf(),
                source,
            })?;
        if file.try_lock_exclusive().unwrap_or(false) {
            return Ok(Self {
                file,
                path: path.to_path_buf(),
            });
        }
        on_wait();
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            if file.try_lock_exclusive().unwrap_or(false) {
                return Ok(Self {
                    file,
                    path: path.to_path_buf(),
                });
            }
            if let Some(t) = timeout
                && start.elapsed() >= t
            {
                return Err(FsError::LockTimeout {
                    what: what.to_owned(),
                    path: path.to_path_buf(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.toml");
        write_atomic(&p, b"one", Some(0o600)).unwrap();
        write_atomic(&p, b"two", None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }

    #[test]
    fn atomic_write_into_missing_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/f");
        let e = write_atomic(&p, b"x", None).unwrap_err().to_string();
        assert!(e.contains("missing/f"), "{e}");
    }

    #[test]
    fn second_lock_times_out_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = FileLock::acquire(&p, "the registry", None, || {}).unwrap();
        let mut waited = false;
        let e = FileLock::acquire(&p, "the registry", Some(Duration::from_millis(50)), || {
            waited = true
        })
        .unwrap_err();
        assert!(waited);
        assert!(
            e.to_string()
                .contains("the registry is locked by another repoman process")
        );
        drop(held);
        FileLock::acquire(&p, "the registry", Some(Duration::ZERO), || {}).unwrap();
    }
}

/// Run `f` on a detached worker thread and wait at most `timeout` for its answer (`None`: no
/// answer in time). For filesystem calls that can hang in the kernel (a stale NFS mount): the
/// caller gives up, and a thread stuck there cannot be joined, so it is left behind on purpose.
pub fn off_thread<T: Send + 'static>(
    timeout: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<Option<T>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("repoman-fs-probe".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    Ok(rx.recv_timeout(timeout).ok())
}

/// Read `rel` under `dir` when it is a regular file of at most `max` bytes. `Ok(None)` when it
/// does not exist.
///
/// For files the sandbox can write (DESIGN.md §5a): no component of `rel` may be a symlink and
/// `rel` may not leave `dir` (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`; on kernels
/// without `openat2`, `O_NOFOLLOW` on the last component and a refusal of `..`); the file is opened
/// non-blocking, so a FIFO never blocks, and anything but a regular file is refused.
pub fn read_in_dir(dir: &Path, rel: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use std::io::Read;
    use std::path::Component;
    let refuse = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(refuse(
            "the path must stay inside its directory (no `/`, `.` or `..`)",
        ));
    }
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let dirfd = match File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let opened = rustix::fs::openat2(
        &dirfd,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    );
    let fd = match opened {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOSYS) => {
            match rustix::fs::openat(&dirfd, rel, flags | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(fd) => fd,
                Err(e) => return open_error(e),
            }
        }
        Err(e) => return open_error(e),
    };
    let file = File::from(fd);
    let meta = file.metadata()?;
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link; it is not followed"));
    }
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file (a FIFO, device, socket or directory); it is not read",
        ));
    }
    if meta.len() > max {
        return Err(refuse(&format!("is larger than {max} bytes")));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(refuse(&format!("is larger than {max} bytes")));
    }
    Ok(Some(buf))
}

/// Read `path` like [`read_in_dir`] reads a file in its directory: a symlink as the last
/// component is refused (not followed), a FIFO or device is refused without blocking, a file
/// larger than `max` is refused. `Ok(None)` when it does not exist. For files in a repo the
/// sandbox can write that are named by a path (toolchain manifests).
pub fn read_no_follow(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    read_in_dir(dir, Path::new(name), max)
}

fn open_error(e: rustix::io::Errno) -> io::Result<Option<Vec<u8>>> {
    match e {
        rustix::io::Errno::NOENT => Ok(None),
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link (or lies behind one); it is not followed",
        )),
        e => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod read_in_dir_tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_links_fifos_and_escapes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(dir.join("ok.toml"), "a = 1\n").unwrap();
        assert_eq!(
            read_in_dir(dir, Path::new("ok.toml"), 100)
                .unwrap()
                .unwrap(),
            b"a = 1\n"
        );
        assert_eq!(read_in_dir(dir, Path::new("absent"), 100).unwrap(), None);
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.join("link")).unwrap();
        let err = read_in_dir(dir, Path::new("link"), 100).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::create_dir(dir.join("real")).unwrap();
        std::fs::write(dir.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("sub")).unwrap();
        assert!(read_in_dir(dir, Path::new("sub/f"), 100).is_err());
        assert!(read_in_dir(dir, Path::new("../x"), 100).is_err());
        assert!(read_in_dir(dir, Path::new("/etc/passwd"), 100).is_err());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read_in_dir(dir, Path::new("fifo"), 100).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::write(dir.join("big"), vec![b'x'; 101]).unwrap();
        assert!(read_in_dir(dir, Path::new("big"), 100).is_err());
    }
}
