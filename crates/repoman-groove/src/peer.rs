//! Who is on the other end of a unix socket: `SO_PEERCRED` for the host socket, and for an agent
//! socket the peer's cgroup, read through a pidfd captured with `SO_PEERPIDFD` at accept time.
//!
//! Why `unsafe`: rustix 1.1 has no wrapper for `SO_PEERPIDFD`, so [`peer_pidfd`] makes the one
//! `getsockopt` call through libc. It passes a correctly sized `c_int` buffer and takes ownership
//! of the descriptor the kernel returns; nothing else in the crate uses `unsafe`.
//!
//! Invariants:
//! - The cgroup is read once, at accept, from `/proc/<pid>/cgroup` of the process the pidfd names,
//!   and the pidfd is checked to still name a live process *after* the read (a pid cannot be
//!   reused while its process lives), so a peer that exited (connect-then-exit, connect-then-fork
//!   with the parent gone) cannot be mistaken for another process. It is never re-resolved later.
//! - Parsing is strict ([`parse_cgroup`]): exactly one cgroup v2 line `0::/...`, whose first
//!   component must be exactly `lxc.payload.<incus project>_<instance>` (or `lxc.payload.<instance>`
//!   in Incus's `default` project). Anything else is refused.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The credentials of a connected peer (from `SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// `SO_PEERCRED` of a connected unix socket.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let c = rustix::net::sockopt::socket_peercred(sock)?;
    Ok(PeerCred {
        pid: c.pid.as_raw_nonzero().get(),
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// `SO_PEERPIDFD` (Linux 6.5+): a pidfd for the process that connected.
#[allow(unsafe_code)]
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    ))]
    const SO_PEERPIDFD: libc::c_int = 77;
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )))]
    return Err(io::Error::from_raw_os_error(libc::ENOPROTOOPT));
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    ))]
    {
        let mut fd: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `fd` and `len` are valid for writes of a c_int and a socklen_t, and `len` holds
        // the buffer's size as getsockopt requires.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERPIDFD,
                (&mut fd as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        if fd < 0 || len as usize != std::mem::size_of::<libc::c_int>() {
            return Err(io::Error::other("SO_PEERPIDFD returned no descriptor"));
        }
        // SAFETY: on success the kernel installed a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The pid a pidfd names right now, from `/proc/self/fdinfo`: `None` once the process exited.
pub fn pidfd_pid(pidfd: &OwnedFd) -> io::Result<Option<i32>> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_fd().as_raw_fd()))?;
    for line in info.lines() {
        if let Some(v) = line.strip_prefix("Pid:") {
            let pid: i32 = v
                .trim()
                .parse()
                .map_err(|_| io::Error::other(format!("bad Pid line in fdinfo: {line:?}")))?;
            return Ok((pid > 0).then_some(pid));
        }
    }
    Err(io::Error::other("fdinfo of the pidfd has no Pid line"))
}

/// Whether `pid` has exited and waits to be reaped (state `Z` or `X` in `/proc/<pid>/stat`).
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true; // gone altogether
    };
    // `pid (comm) S ...`: the state follows the last `)` (comm may itself contain one).
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| matches!(state, 'Z' | 'X'))
}

/// Why a peer's cgroup did not prove it is in the expected container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    #[error("the peer process has exited (its identity cannot be checked)")]
    Exited,
    #[error("cannot read the peer's cgroup: {0}")]
    Read(String),
    #[error("the peer's cgroup file is not a single cgroup v2 line: {0:?}")]
    Shape(String),
    #[error("the peer is not in a container (cgroup {0:?})")]
    NotContainer(String),
    #[error("the peer is in container cgroup {found:?}, not {expected:?}")]
    Mismatch { found: String, expected: String },
}

/// The first cgroup component Incus gives the payload of `instance` in `incus_project`.
pub fn expected_payload(incus_project: &str, instance: &str) -> String {
    if incus_project == "default" {
        format!("lxc.payload.{instance}")
    } else {
        format!("lxc.payload.{incus_project}_{instance}")
    }
}

/// Parse a `/proc/<pid>/cgroup` text and return the first component of its path, checked
/// against `expected` (from [`expected_payload`]). Exactly one cgroup v2 line (`0::/...`) is
/// required; on a hybrid host every v1 line (`N:controllers:/...`) must name the same first
/// component too, so a process moved out of the container in any hierarchy is refused.
pub fn parse_cgroup(text: &str, expected: &str) -> Result<String, CgroupError> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let shape = || CgroupError::Shape(text.chars().take(200).collect());
    if lines.iter().filter(|l| l.starts_with("0::")).count() != 1 {
        return Err(shape());
    }
    let mut unified = None;
    for line in &lines {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(shape());
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(shape());
        };
        let first = rest.split('/').next().unwrap_or_default();
        if !first.starts_with("lxc.payload.") {
            return Err(CgroupError::NotContainer(path.to_owned()));
        }
        if first != expected {
            return Err(CgroupError::Mismatch {
                found: first.to_owned(),
                expected: expected.to_owned(),
            });
        }
        if id == "0" {
            unified = Some(first.to_owned());
        }
    }
    unified.ok_or_else(shape)
}

/// Capture and check the cgroup of the peer of `sock` at accept time.
pub fn check_peer_cgroup(sock: BorrowedFd<'_>, expected: &str) -> Result<String, CgroupError> {
    let pidfd = peer_pidfd(sock).map_err(|e| CgroupError::Read(format!("SO_PEERPIDFD: {e}")))?;
    let pid = pidfd_pid(&pidfd)
        .map_err(|e| CgroupError::Read(e.to_string()))?
        .ok_or(CgroupError::Exited)?;
    let text = match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(t) => t,
        // Reaped between the pid lookup and the read (connect, then exit at once): that is an
        // exit too, not an unreadable peer.
        Err(_) if pidfd_pid(&pidfd).ok().flatten() != Some(pid) => {
            return Err(CgroupError::Exited);
        }
        Err(e) => return Err(CgroupError::Read(format!("/proc/{pid}/cgroup: {e}"))),
    };
    // The read described `pid` only if that process still lives now. A process that has exited
    // but is not reaped yet (a zombie) still has its pid, but it has left its cgroup (the file
    // reads `0::/`): that is an exit, not a peer outside any container.
    if pidfd_pid(&pidfd).map_err(|e| CgroupError::Read(e.to_string()))? != Some(pid)
        || is_zombie(pid)
    {
        return Err(CgroupError::Exited);
    }
    parse_cgroup(&text, expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn strict_cgroup_parsing() {
        let want = expected_payload("repoman-x", "alpha");
        assert_eq!(want, "lxc.payload.repoman-x_alpha");
        assert_eq!(expected_payload("default", "a"), "lxc.payload.a");
        assert_eq!(
            parse_cgroup("0::/lxc.payload.repoman-x_alpha/init.scope\n", &want).unwrap(),
            want
        );
        assert_eq!(
            parse_cgroup("0::/lxc.payload.repoman-x_alpha\n", &want).unwrap(),
            want
        );
        let hybrid = "9:name=systemd:/lxc.payload.repoman-x_alpha\n4:memory:/lxc.payload.repoman-x_alpha\n0::/lxc.payload.repoman-x_alpha/.lxc\n";
        assert_eq!(parse_cgroup(hybrid, &want).unwrap(), want);
        for (text, shape) in [
            ("0::/lxc.payload.repoman-x_beta/x\n", "mismatch"),
            ("0::/lxc.payload.repoman-x_alphabet\n", "mismatch"),
            ("0::/user.slice/lxc.payload.repoman-x_alpha\n", "not"),
            ("0::/system.slice\n", "not"),
            (
                "1:name=systemd:/x\n0::/lxc.payload.repoman-x_alpha\n",
                "not",
            ),
            (
                "1:cpu:/lxc.payload.repoman-x_beta\n0::/lxc.payload.repoman-x_alpha\n",
                "mismatch",
            ),
            (
                "0::/lxc.payload.repoman-x_alpha\n0::/lxc.payload.repoman-x_alpha\n",
                "shape",
            ),
            ("", "shape"),
            ("0::lxc.payload.repoman-x_alpha\n", "shape"),
            ("12:pids:/lxc.payload.repoman-x_alpha\n", "shape"),
        ] {
            let e = parse_cgroup(text, &want).unwrap_err();
            let ok = match shape {
                "mismatch" => matches!(e, CgroupError::Mismatch { .. }),
                "not" => matches!(e, CgroupError::NotContainer(_)),
                _ => matches!(e, CgroupError::Shape(_)),
            };
            assert!(ok, "{text:?} gave {e:?}");
        }
    }

    #[test]
    fn an_exited_unreaped_peer_counts_as_exited_not_as_outside_a_container() {
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!is_zombie(live.id() as i32));
        let mut done = std::process::Command::new("true").spawn().unwrap();
        let pid = done.id() as i32;
        // Not waited for: once it exits it stays a zombie until `wait` below.
        let t0 = std::time::Instant::now();
        while !is_zombie(pid) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(30),
                "`true` never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(done.wait().unwrap().success());
        assert!(
            is_zombie(pid),
            "a reaped pid is gone, which counts as exited too"
        );
        live.kill().unwrap();
        live.wait().unwrap();
    }

    #[test]
    fn peer_credentials_and_pidfd_of_a_local_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let c = peer_cred(b.as_fd()).unwrap();
        assert_eq!(c.pid as u32, std::process::id());
        assert_eq!(c.uid, rustix::process::getuid().as_raw());
        let fd = peer_pidfd(b.as_fd()).unwrap();
        assert_eq!(pidfd_pid(&fd).unwrap(), Some(std::process::id() as i32));
        // This test process is not in a container: the check refuses it.
        let e = check_peer_cgroup(b.as_fd(), "lxc.payload.x_y").unwrap_err();
        assert!(
            matches!(
                e,
                CgroupError::NotContainer(_) | CgroupError::Mismatch { .. }
            ),
            "{e:?}"
        );
        drop(a);
    }
}
