//! The WASI preview 1 functions a SNIF can import: a deliberately small, read-only subset.
//!
//! Why our own subset rather than a WASI crate: a SNIF needs a handful of calls (captured
//! stdout/stderr, clocks, random, a few environment values, reading files below one directory),
//! and every one of them must be *off* unless granted and *read-only* when granted. The WASI
//! crates for wasmi link the whole preview 1 surface, including writes, and cannot make a
//! pre-opened directory read-only (docs/snif.md, "Why not wasmi_wasi"). Here every function is
//! listed in [`FUNCTIONS`] with the capability it needs, the host refuses a module importing
//! anything else before it runs, and each function checks its capability again at call time.
//!
//! Invariants of the filesystem functions:
//! - Every open is `openat2(dirfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC,
//!   RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from the granted directory (or a directory opened
//!   below it): the kernel refuses `..`, absolute paths and symlinks that leave the directory.
//! - Nothing is ever opened for writing; `O_CREAT`/`O_TRUNC`/`O_EXCL` and write flags fail with
//!   `ENOTCAPABLE`.
//! - Only regular files and directories stay open: a FIFO, socket or device found in the
//!   directory is closed again (opening it non-blocking cannot hang the host).
//! - Guest pointers are bounds-checked; a bad pointer is `EFAULT`, never a host panic.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, SeekFrom};
use wasmi::{Caller, Error, Extern, Linker, Memory};

use crate::manifest::Capability;

/// The WASI module name SNIFs import from.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Every function the host provides, with the capability it needs.
pub const FUNCTIONS: &[(&str, Capability)] = &[
    ("fd_write", Capability::Stdio),
    ("fd_read", Capability::Stdio),
    ("fd_close", Capability::Stdio),
    ("fd_seek", Capability::Stdio),
    ("fd_fdstat_get", Capability::Stdio),
    ("fd_filestat_get", Capability::Stdio),
    ("args_sizes_get", Capability::Stdio),
    ("args_get", Capability::Stdio),
    ("proc_exit", Capability::Stdio),
    ("sched_yield", Capability::Stdio),
    ("fd_prestat_get", Capability::Filesystem),
    ("fd_prestat_dir_name", Capability::Filesystem),
    ("path_open", Capability::Filesystem),
    ("clock_time_get", Capability::Clock),
    ("clock_res_get", Capability::Clock),
    ("random_get", Capability::Random),
    ("environ_sizes_get", Capability::Env),
    ("environ_get", Capability::Env),
];

/// The capability `module.name` needs, or why the host does not provide it.
pub fn capability_of(module: &str, name: &str) -> Result<Capability, String> {
    if module != WASI_MODULE {
        return Err(format!(
            "SNIFs may import only from {WASI_MODULE}, not from {module:?}"
        ));
    }
    FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| match name {
            n if n.starts_with("sock_") => "SNIFs get no network".to_owned(),
            n if n.starts_with("path_") || n.starts_with("fd_") => {
                "SNIFs get read-only files: no writes, renames, links or directory changes"
                    .to_owned()
            }
            _ => "not part of the SNIF host's WASI subset".to_owned(),
        })
}

/// The directory name the guest sees for its granted directory (fd 3).
pub const PREOPEN_NAME: &str = "/granted";

const PREOPEN_FD: u32 = 3;
const MAX_OPEN_FILES: usize = 64;
const MAX_IO: usize = 1 << 20;
const MAX_PATH: usize = 4096;

// WASI errno values.
const SUCCESS: i32 = 0;
const EACCES: i32 = 2;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const EISDIR: i32 = 31;
const ELOOP: i32 = 32;
const EMFILE: i32 = 33;
const ENAMETOOLONG: i32 = 37;
const ENOENT: i32 = 44;
const ENOTDIR: i32 = 54;
const ENOTSUP: i32 = 58;
const EPERM: i32 = 63;
const ESPIPE: i32 = 70;
const ENOTCAPABLE: i32 = 76;

// Rights bits (only what fd_fdstat_get reports).
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_SEEK: u64 = 1 << 2;
const RIGHT_FD_TELL: u64 = 1 << 5;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const RIGHT_PATH_OPEN: u64 = 1 << 13;
const RIGHT_FD_READDIR: u64 = 1 << 14;
const RIGHT_FD_FILESTAT_GET: u64 = 1 << 21;
const FILE_RIGHTS: u64 = RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_TELL | RIGHT_FD_FILESTAT_GET;
const DIR_RIGHTS: u64 = RIGHT_PATH_OPEN | RIGHT_FD_READDIR | RIGHT_FD_FILESTAT_GET;

/// What one call's WASI functions may touch.
#[derive(Debug)]
pub(crate) struct WasiCtx {
    pub caps: Vec<Capability>,
    pub env: Vec<(String, String)>,
    pub preopen: Option<OwnedFd>,
    pub files: BTreeMap<u32, OwnedFd>,
    pub next_fd: u32,
    pub log: Vec<u8>,
    pub log_limit: usize,
    pub log_dropped: u64,
    pub started: Instant,
}

impl WasiCtx {
    pub fn new(
        caps: Vec<Capability>,
        env: Vec<(String, String)>,
        preopen: Option<OwnedFd>,
        log_limit: usize,
    ) -> Self {
        Self {
            caps,
            env,
            preopen,
            files: BTreeMap::new(),
            next_fd: PREOPEN_FD + 1,
            log: Vec::new(),
            log_limit,
            log_dropped: 0,
            started: Instant::now(),
        }
    }

    fn has(&self, cap: Capability) -> bool {
        cap == Capability::Stdio || self.caps.contains(&cap)
    }

    fn dir(&self, fd: u32) -> Option<&OwnedFd> {
        if fd == PREOPEN_FD {
            self.preopen.as_ref()
        } else {
            self.files.get(&fd)
        }
    }
}

/// Anything that carries a [`WasiCtx`].
pub(crate) trait HasWasi: Send + 'static {
    fn wasi(&mut self) -> &mut WasiCtx;
}

fn memory<T>(caller: &Caller<'_, T>) -> Result<Memory, Error> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| Error::new("the SNIF exports no `memory`"))
}

fn slice(mem: &[u8], ptr: i32, len: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= mem.len()).then_some(start..end)
}

fn put(mem: &mut [u8], ptr: i32, bytes: &[u8]) -> bool {
    match slice(mem, ptr, bytes.len()) {
        Some(r) => {
            mem[r].copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

fn get_u32(mem: &[u8], at: usize) -> Option<u32> {
    let b = mem.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The (ptr, len) pairs of an iovec array, bounds-checked.
fn iovecs(mem: &[u8], iovs: i32, count: i32) -> Option<Vec<std::ops::Range<usize>>> {
    let count = usize::try_from(count).ok()?;
    if count > 1024 {
        return None;
    }
    let base = iovs as u32 as usize;
    (0..count)
        .map(|i| {
            let at = base.checked_add(i * 8)?;
            let ptr = get_u32(mem, at)?;
            let len = get_u32(mem, at + 4)? as usize;
            slice(mem, ptr as i32, len)
        })
        .collect()
}

fn errno_of(e: rustix::io::Errno) -> i32 {
    use rustix::io::Errno as E;
    match e {
        E::NOENT => ENOENT,
        E::ACCESS => EACCES,
        // RESOLVE_BENEATH: the path tried to leave the granted directory.
        E::XDEV => ENOTCAPABLE,
        E::LOOP => ELOOP,
        E::NOTDIR => ENOTDIR,
        E::ISDIR => EISDIR,
        E::NAMETOOLONG => ENAMETOOLONG,
        E::PERM => EPERM,
        E::INVAL => EINVAL,
        _ => EIO,
    }
}

type R = Result<i32, Error>;

/// Define every function of [`FUNCTIONS`] in `linker`.
pub(crate) fn add_to_linker<T: HasWasi>(linker: &mut Linker<T>) -> Result<(), Error> {
    let m = WASI_MODULE;
    linker.func_wrap(
        m,
        "fd_write",
        |mut c: Caller<'_, T>, fd: i32, iovs: i32, n: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if fd != 1 && fd != 2 {
                return Ok(if ctx.files.contains_key(&(fd as u32)) || fd == 3 {
                    ENOTCAPABLE
                } else {
                    EBADF
                });
            }
            let Some(ranges) = iovecs(data, iovs, n) else {
                return Ok(EFAULT);
            };
            let mut total: u32 = 0;
            for r in ranges {
                let room = ctx.log_limit.saturating_sub(ctx.log.len());
                let take = room.min(r.len());
                ctx.log.extend_from_slice(&data[r.start..r.start + take]);
                ctx.log_dropped += (r.len() - take) as u64;
                total = total.saturating_add(r.len() as u32);
            }
            Ok(if put(data, out, &total.to_le_bytes()) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_read",
        |mut c: Caller<'_, T>, fd: i32, iovs: i32, n: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            let Some(ranges) = iovecs(data, iovs, n) else {
                return Ok(EFAULT);
            };
            if fd == 0 {
                // stdin is empty: input arrives through the ABI, not stdio.
                return Ok(if put(data, out, &0u32.to_le_bytes()) {
                    SUCCESS
                } else {
                    EFAULT
                });
            }
            let Some(file) = ctx.files.get(&(fd as u32)) else {
                return Ok(EBADF);
            };
            let want: usize = ranges.iter().map(|r| r.len()).sum::<usize>().min(MAX_IO);
            let mut buf = vec![0u8; want];
            let got = match rustix::io::read(file, &mut buf) {
                Ok(n) => n,
                Err(rustix::io::Errno::ISDIR) => return Ok(EISDIR),
                Err(rustix::io::Errno::AGAIN) => 0,
                Err(e) => return Ok(errno_of(e)),
            };
            let mut done = 0;
            for r in ranges {
                if done == got {
                    break;
                }
                let take = r.len().min(got - done);
                data[r.start..r.start + take].copy_from_slice(&buf[done..done + take]);
                done += take;
            }
            Ok(if put(data, out, &(got as u32).to_le_bytes()) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(m, "fd_close", |mut c: Caller<'_, T>, fd: i32| -> R {
        let ctx = c.data_mut().wasi();
        let fd = fd as u32;
        let closed = ctx.files.remove(&fd).is_some()
            || (fd == PREOPEN_FD && ctx.preopen.take().is_some())
            || fd <= 2;
        Ok(if closed { SUCCESS } else { EBADF })
    })?;
    linker.func_wrap(
        m,
        "fd_seek",
        |mut c: Caller<'_, T>, fd: i32, offset: i64, whence: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if (0..=2).contains(&fd) {
                return Ok(ESPIPE);
            }
            let Some(file) = ctx.files.get(&(fd as u32)) else {
                return Ok(EBADF);
            };
            let pos = match whence {
                0 if offset >= 0 => SeekFrom::Start(offset as u64),
                1 => SeekFrom::Current(offset),
                2 => SeekFrom::End(offset),
                _ => return Ok(EINVAL),
            };
            match rustix::fs::seek(file, pos) {
                Ok(p) => Ok(if put(data, out, &p.to_le_bytes()) {
                    SUCCESS
                } else {
                    EFAULT
                }),
                Err(e) => Ok(errno_of(e)),
            }
        },
    )?;
    linker.func_wrap(
        m,
        "fd_fdstat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            let (filetype, rights, inheriting): (u8, u64, u64) = match fd as u32 {
                0 => (2, RIGHT_FD_READ, 0),
                1 | 2 => (2, RIGHT_FD_WRITE, 0),
                fd => match ctx.dir(fd) {
                    None => return Ok(EBADF),
                    Some(f) => match rustix::fs::fstat(f) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode).is_dir() => {
                            (3, DIR_RIGHTS, FILE_RIGHTS | DIR_RIGHTS)
                        }
                        Ok(_) => (4, FILE_RIGHTS, 0),
                        Err(e) => return Ok(errno_of(e)),
                    },
                },
            };
            let mut buf = [0u8; 24];
            buf[0] = filetype;
            buf[8..16].copy_from_slice(&rights.to_le_bytes());
            buf[16..24].copy_from_slice(&inheriting.to_le_bytes());
            Ok(if put(data, out, &buf) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_filestat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            let Some(f) = ctx.dir(fd as u32) else {
                return Ok(EBADF);
            };
            let st = match rustix::fs::fstat(f) {
                Ok(st) => st,
                Err(e) => return Ok(errno_of(e)),
            };
            // Type and size only: inode numbers and times would tell a SNIF about the host.
            let mut buf = [0u8; 64];
            buf[16] = if FileType::from_raw_mode(st.st_mode).is_dir() {
                3
            } else {
                4
            };
            buf[24..32].copy_from_slice(&1u64.to_le_bytes());
            buf[32..40].copy_from_slice(&(st.st_size as u64).to_le_bytes());
            Ok(if put(data, out, &buf) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(
        m,
        "args_sizes_get",
        |mut c: Caller<'_, T>, argc: i32, size: i32| -> R {
            let mem = memory(&c)?;
            let data = mem.data_mut(&mut c);
            Ok(
                if put(data, argc, &0u32.to_le_bytes()) && put(data, size, &0u32.to_le_bytes()) {
                    SUCCESS
                } else {
                    EFAULT
                },
            )
        },
    )?;
    linker.func_wrap(m, "args_get", |_: Caller<'_, T>, _: i32, _: i32| -> R {
        Ok(SUCCESS)
    })?;
    linker.func_wrap(
        m,
        "proc_exit",
        |_: Caller<'_, T>, code: i32| -> Result<(), Error> { Err(Error::i32_exit(code)) },
    )?;
    linker.func_wrap(m, "sched_yield", |_: Caller<'_, T>| -> R { Ok(SUCCESS) })?;

    // ---- filesystem ----
    linker.func_wrap(
        m,
        "fd_prestat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if !ctx.has(Capability::Filesystem) {
                return Ok(ENOTCAPABLE);
            }
            if fd as u32 != PREOPEN_FD || ctx.preopen.is_none() {
                return Ok(EBADF);
            }
            let mut buf = [0u8; 8];
            buf[4..8].copy_from_slice(&(PREOPEN_NAME.len() as u32).to_le_bytes());
            Ok(if put(data, out, &buf) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_prestat_dir_name",
        |mut c: Caller<'_, T>, fd: i32, path: i32, len: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if !ctx.has(Capability::Filesystem) {
                return Ok(ENOTCAPABLE);
            }
            if fd as u32 != PREOPEN_FD || ctx.preopen.is_none() {
                return Ok(EBADF);
            }
            let name = PREOPEN_NAME.as_bytes();
            if (len as u32 as usize) < name.len() {
                return Ok(ENAMETOOLONG);
            }
            Ok(if put(data, path, name) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(
        m,
        "path_open",
        |mut c: Caller<'_, T>,
         dirfd: i32,
         dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         _rights: i64,
         _inheriting: i64,
         fdflags: i32,
         out: i32|
         -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if !ctx.has(Capability::Filesystem) {
                return Ok(ENOTCAPABLE);
            }
            // O_CREAT, O_EXCL, O_TRUNC; APPEND, DSYNC, RSYNC, SYNC: all mean writing.
            if oflags & (1 | 4 | 8) != 0 || fdflags & (1 | 2 | 8 | 16) != 0 {
                return Ok(ENOTCAPABLE);
            }
            let len = path_len as u32 as usize;
            if len > MAX_PATH {
                return Ok(ENAMETOOLONG);
            }
            let Some(r) = slice(data, path, len) else {
                return Ok(EFAULT);
            };
            let bytes = data[r].to_vec();
            if bytes.contains(&0) {
                return Ok(EINVAL);
            }
            if ctx.files.len() >= MAX_OPEN_FILES {
                return Ok(EMFILE);
            }
            let Some(dir) = ctx.dir(dirfd as u32) else {
                return Ok(EBADF);
            };
            let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
            if oflags & 2 != 0 {
                flags |= OFlags::DIRECTORY;
            }
            if dirflags & 1 == 0 {
                flags |= OFlags::NOFOLLOW;
            }
            let p = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes);
            let opened = match rustix::fs::openat2(
                dir.as_fd(),
                p,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                Err(e) => return Ok(errno_of(e)),
            };
            match rustix::fs::fstat(&opened) {
                Ok(st) => {
                    let ft = FileType::from_raw_mode(st.st_mode);
                    if !(ft.is_file() || ft.is_dir()) {
                        return Ok(ENOTSUP);
                    }
                }
                Err(e) => return Ok(errno_of(e)),
            }
            let fd = ctx.next_fd;
            ctx.next_fd += 1;
            ctx.files.insert(fd, opened);
            Ok(if put(data, out, &fd.to_le_bytes()) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;

    // ---- clock ----
    linker.func_wrap(
        m,
        "clock_time_get",
        |mut c: Caller<'_, T>, id: i32, _precision: i64, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if !ctx.has(Capability::Clock) {
                return Ok(ENOTCAPABLE);
            }
            let nanos: u64 = match id {
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                1 => ctx.started.elapsed().as_nanos() as u64,
                _ => return Ok(ENOTSUP),
            };
            Ok(if put(data, out, &nanos.to_le_bytes()) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;
    linker.func_wrap(
        m,
        "clock_res_get",
        |mut c: Caller<'_, T>, id: i32, out: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            if !t.wasi().has(Capability::Clock) {
                return Ok(ENOTCAPABLE);
            }
            if !(0..=1).contains(&id) {
                return Ok(ENOTSUP);
            }
            Ok(if put(data, out, &1000u64.to_le_bytes()) {
                SUCCESS
            } else {
                EFAULT
            })
        },
    )?;

    // ---- random ----
    linker.func_wrap(
        m,
        "random_get",
        |mut c: Caller<'_, T>, buf: i32, len: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            if !t.wasi().has(Capability::Random) {
                return Ok(ENOTCAPABLE);
            }
            let len = len as u32 as usize;
            if len > MAX_IO {
                return Ok(EINVAL);
            }
            let Some(r) = slice(data, buf, len) else {
                return Ok(EFAULT);
            };
            let target = &mut data[r];
            let mut filled = 0;
            while filled < target.len() {
                match rustix::rand::getrandom(
                    &mut target[filled..],
                    rustix::rand::GetRandomFlags::empty(),
                ) {
                    Ok(n) => filled += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Ok(errno_of(e)),
                }
            }
            Ok(SUCCESS)
        },
    )?;

    // ---- env ----
    linker.func_wrap(
        m,
        "environ_sizes_get",
        |mut c: Caller<'_, T>, count: i32, size: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if !ctx.has(Capability::Env) {
                return Ok(ENOTCAPABLE);
            }
            let n = ctx.env.len() as u32;
            let bytes: usize = ctx.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            Ok(
                if put(data, count, &n.to_le_bytes())
                    && put(data, size, &(bytes as u32).to_le_bytes())
                {
                    SUCCESS
                } else {
                    EFAULT
                },
            )
        },
    )?;
    linker.func_wrap(
        m,
        "environ_get",
        |mut c: Caller<'_, T>, ptrs: i32, buf: i32| -> R {
            let mem = memory(&c)?;
            let (data, t) = mem.data_and_store_mut(&mut c);
            let ctx = t.wasi();
            if !ctx.has(Capability::Env) {
                return Ok(ENOTCAPABLE);
            }
            let mut at = buf as u32;
            for (i, (k, v)) in ctx.env.iter().enumerate() {
                let entry = format!("{k}={v}\0");
                if !put(data, ptrs.wrapping_add(4 * i as i32), &at.to_le_bytes())
                    || !put(data, at as i32, entry.as_bytes())
                {
                    return Ok(EFAULT);
                }
                at = at.wrapping_add(entry.len() as u32);
            }
            Ok(SUCCESS)
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_gate_agree() {
        assert_eq!(
            capability_of(WASI_MODULE, "path_open"),
            Ok(Capability::Filesystem)
        );
        assert!(
            capability_of(WASI_MODULE, "sock_send")
                .unwrap_err()
                .contains("network")
        );
        assert!(
            capability_of(WASI_MODULE, "path_unlink_file")
                .unwrap_err()
                .contains("read-only")
        );
        assert!(capability_of("env", "system").unwrap_err().contains("only"));
        let mut names: Vec<_> = FUNCTIONS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FUNCTIONS.len());
    }
}
