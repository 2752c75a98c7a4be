//! Running other programs (`rsync`, `git`, `incus`, tool probes) safely.
//!
//! Invariants:
//! - argv only: there is no way to hand this module a shell string;
//! - the program is resolved to an absolute path once, before spawning, so `PATH` tricks after
//!   validation cannot change what runs, and "not installed" is a clear error;
//! - stdin is `/dev/null` unless the command is interactive, so a child can never hang waiting for
//!   input;
//! - non-interactive children run in their own process group, and a timeout or cancellation kills
//!   the whole group (SIGTERM, then SIGKILL after a grace period), including grandchildren;
//! - the child's stderr is captured and included in the error.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::cancel::Cancel;

/// How long a child gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Process groups of captured children that are still running (see [`kill_live_groups`]).
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// A running child's process group, listed in [`LIVE_GROUPS`] until dropped.
struct LiveGroup(i32);

impl LiveGroup {
    fn register(pid: u32) -> Self {
        let pgid = pid as i32;
        LIVE_GROUPS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pgid);
        Self(pgid)
    }
}

impl Drop for LiveGroup {
    fn drop(&mut self) {
        LIVE_GROUPS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|g| *g != self.0);
    }
}

/// SIGKILL the process group of every captured child still running. For a last-resort exit (the
/// CLI's second Ctrl-C, which exits right after): the graceful stop (SIGTERM, a grace period,
/// SIGKILL) of a cancelled run may still be waiting, and nothing of it may outlive repoman.
pub fn kill_live_groups() {
    let groups = LIVE_GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for g in groups {
        if let Some(pid) = Pid::from_raw(g) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}
static HARD_EXIT_HOOKS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Register `hook` to run before a last-resort exit (the CLI's second Ctrl-C or SIGTERM exits at
/// once, without unwinding): for state that only a normal return would put back, such as a
/// terminal left in raw mode by the TUI. Register once (a hook registered twice runs twice).
pub fn on_hard_exit(hook: fn()) {
    HARD_EXIT_HOOKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(hook);
}

/// Run the hooks of [`on_hard_exit`] (the caller exits right after).
pub fn run_hard_exit_hooks() {
    let hooks = HARD_EXIT_HOOKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for h in hooks {
        h();
    }
}

/// How much of stderr is kept in an error message.
const STDERR_TAIL: usize = 4096;

/// Why running a program failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("`{program}` was not found on PATH; install it (e.g. `apt-get install {program}`)")]
    NotFound { program: String },
    #[error("cannot start {program}: {source}")]
    Spawn { program: PathBuf, source: io::Error },
    #[error("{program} did not finish within {after:?} and was killed{}", stderr_suffix(.stderr))]
    Timeout {
        program: PathBuf,
        after: Duration,
        stderr: String,
    },
    #[error("{program} was interrupted")]
    Cancelled { program: PathBuf },
    #[error("{program} {}{}", describe_status(.status), stderr_suffix(.stderr))]
    Failed {
        program: PathBuf,
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: String,
    },
    #[error("I/O error talking to {program}: {source}")]
    Io { program: PathBuf, source: io::Error },
}

fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".to_owned(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

/// Find `program` on `path` (a `PATH`-style list). A name containing `/` is taken as a path.
pub fn resolve_program(program: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ProcessError> {
    let not_found = || ProcessError::NotFound {
        program: program.to_string_lossy().into_owned(),
    };
    let p = Path::new(program);
    if p.components().count() > 1 || p.is_absolute() {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_err(|_| not_found())?.join(p)
        };
        return if is_executable(&abs) {
            Ok(abs)
        } else {
            Err(not_found())
        };
    }
    let default_path;
    let path = match path {
        Some(p) => p,
        None => {
            default_path = std::env::var_os("PATH")
                .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
            &default_path
        }
    };
    std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|c| is_executable(c))
        .ok_or_else(not_found)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What the child's stdin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// stdin null, stdout/stderr captured, own process group.
    Captured,
    /// stdin/stdout/stderr inherited from repoman (a terminal), same process group so the
    /// terminal's job control works.
    Interactive,
}

/// One line of output from a streamed child.
#[derive(Debug)]
pub enum Line<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
}

/// The result of a finished child.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A command to run: program, argv, and the safety settings described in the module docs.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    env_clear: bool,
    path: Option<OsString>,
    timeout: Option<Duration>,
    cancel: Option<Cancel>,
    mode: Mode,
}

impl Cmd {
    /// A command running `program` (a name looked up on `PATH`, or a path).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            env_clear: false,
            path: None,
            timeout: None,
            cancel: None,
            mode: Mode::Captured,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// Start the child with an empty environment (plus what [`Cmd::env`] adds).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// The `PATH` used to resolve the program (default: the process's `PATH`).
    pub fn search_path(mut self, path: impl AsRef<OsStr>) -> Self {
        self.path = Some(path.as_ref().to_owned());
        self
    }

    /// Kill the child's process group if it runs longer than `t`.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Kill the child's process group when `cancel` fires.
    pub fn cancel(mut self, cancel: &Cancel) -> Self {
        self.cancel = Some(cancel.clone());
        self
    }

    /// Attach the child to repoman's terminal (for `repoman shell`). No capture, no timeout.
    pub fn interactive(mut self) -> Self {
        self.mode = Mode::Interactive;
        self
    }

    /// The argv as it would run, for logs and `--dry-run` output.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn build(&self) -> Result<(PathBuf, Command), ProcessError> {
        let program = resolve_program(&self.program, self.path.as_deref())?;
        let mut cmd = Command::new(&program);
        cmd.args(&self.args);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        if self.env_clear {
            cmd.env_clear();
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        match self.mode {
            Mode::Captured => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                cmd.process_group(0);
            }
            Mode::Interactive => {
                cmd.stdin(Stdio::inherit())
                    .stdout(Stdio::inherit())
                    .stderr(Stdio::inherit());
            }
        }
        Ok((program, cmd))
    }

    /// Run to completion and return the output whatever the exit status.
    pub fn output(&self) -> Result<Output, ProcessError> {
        self.stream(|_| {})
    }

    /// Run to completion; a non-zero exit is [`ProcessError::Failed`].
    pub fn run(&self) -> Result<Output, ProcessError> {
        let out = self.output()?;
        self.check(out)
    }

    /// Turn a non-zero exit into [`ProcessError::Failed`].
    pub fn check(&self, out: Output) -> Result<Output, ProcessError> {
        if out.status.success() {
            return Ok(out);
        }
        let program = resolve_program(&self.program, self.path.as_deref())
            .unwrap_or_else(|_| PathBuf::from(&self.program));
        Err(ProcessError::Failed {
            program,
            status: out.status,
            stdout: out.stdout,
            stderr: tail(&out.stderr),
        })
    }

    /// Run to completion, handing each output line (without its `\n`, `\r` also ends a line,
    /// as progress meters use it) to `on_line` as it arrives. The lines are also collected
    /// into the returned [`Output`].
    pub fn stream(&self, mut on_line: impl FnMut(Line<'_>)) -> Result<Output, ProcessError> {
        let (program, mut cmd) = self.build()?;
        let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
        if self.mode == Mode::Interactive {
            let status = child.wait().map_err(|source| ProcessError::Io {
                program: program.clone(),
                source,
            })?;
            return Ok(Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            });
        }
        let _live = LiveGroup::register(child.id());

        let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
        let readers = [
            child
                .stdout
                .take()
                .map(|s| spawn_reader(s, true, tx.clone())),
            child
                .stderr
                .take()
                .map(|s| spawn_reader(s, false, tx.clone())),
        ];
        drop(tx);

        let start = Instant::now();
        let mut out = Output {
            status: ExitStatus::from_raw(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mut streams_open = true;
        let status = loop {
            if streams_open {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok((is_stdout, line)) => {
                        let buf = if is_stdout {
                            &mut out.stdout
                        } else {
                            &mut out.stderr
                        };
                        buf.extend_from_slice(&line);
                        let trimmed = trim_eol(&line);
                        on_line(if is_stdout {
                            Line::Stdout(trimmed)
                        } else {
                            Line::Stderr(trimmed)
                        });
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => streams_open = false,
                }
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                kill_group(&mut child);
                join(readers);
                return Err(ProcessError::Cancelled { program });
            }
            if let Some(t) = self.timeout
                && start.elapsed() >= t
            {
                kill_group(&mut child);
                for (is_stdout, line) in rx.try_iter() {
                    if !is_stdout {
                        out.stderr.extend_from_slice(&line);
                    }
                }
                join(readers);
                return Err(ProcessError::Timeout {
                    program,
                    after: t,
                    stderr: tail(&out.stderr),
                });
            }
            if !streams_open {
                match child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) => {}
                    Err(source) => return Err(ProcessError::Io { program, source }),
                }
            }
        };
        join(readers);
        out.status = status;
        Ok(out)
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\n' | b'\r'] = l {
        l = rest;
    }
    l
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn spawn_reader(
    stream: impl Read + Send + 'static,
    is_stdout: bool,
    tx: mpsc::Sender<(bool, Vec<u8>)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = Vec::new();
            // Split on '\n' and also on '\r' (progress meters redraw with '\r').
            let n = read_until_eol(&mut reader, &mut line);
            match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send((is_stdout, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

fn read_until_eol(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(total);
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            out.extend_from_slice(&buf[..=i]);
            r.consume(i + 1);
            return Ok(total + i + 1);
        }
        let n = buf.len();
        out.extend_from_slice(buf);
        r.consume(n);
        total += n;
    }
}

fn join(readers: [Option<std::thread::JoinHandle<()>>; 2]) {
    for r in readers.into_iter().flatten() {
        let _ = r.join();
    }
}

/// SIGTERM the child's process group, then SIGKILL it if it is still alive after a grace period.
fn kill_group(child: &mut Child) {
    let Some(pid) = Pid::from_raw(child.id() as i32) else {
        return;
    };
    let _ = kill_process_group(pid, Signal::TERM);
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            // The leader is gone; make sure no grandchild survives it.
            let _ = kill_process_group(pid, Signal::KILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = kill_process_group(pid, Signal::KILL);
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let e = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("exited with status 3") && msg.contains("boom"),
            "{msg}"
        );
    }

    #[test]
    fn arguments_are_never_interpreted_by_a_shell() {
        let out = Cmd::new("echo")
            .arg("$(touch /tmp/never); `x` | y")
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"$(touch /tmp/never); `x` | y\n");
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let e = Cmd::new("definitely-not-a-program-xyz")
            .output()
            .unwrap_err();
        assert!(matches!(e, ProcessError::NotFound { .. }));
        assert!(e.to_string().contains("not found on PATH"));
    }

    #[test]
    fn stdin_is_null() {
        // `cat` with an inherited terminal would hang; with /dev/null it ends at once.
        let out = Cmd::new("cat")
            .timeout(Duration::from_secs(10))
            .run()
            .unwrap();
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        // No clock in the assertions: the child would never end on its own (`sleep infinity`),
        // so a returned `Timeout` proves the timeout fired and killed it; a grandchild that holds
        // a FIFO open and would write to it if it lived proves the whole group died. A FIFO's
        // reader sees EOF only once every writer has exited, so the read below returns as soon
        // as the group is gone, and it returns the grandchild's words if the kill missed it.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("grandchild");
        Cmd::new("mkfifo").arg(&fifo).run().unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut heard = Vec::new();
                std::fs::File::open(&fifo)
                    .unwrap()
                    .read_to_end(&mut heard)
                    .unwrap();
                heard
            })
        };
        let script = format!(
            "exec 3>'{}'; (sleep 2; echo survived >&3) & exec sleep infinity",
            fifo.display()
        );
        let e = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(200))
            .output();
        assert!(matches!(e, Err(ProcessError::Timeout { .. })), "{e:?}");
        let heard = reader.join().unwrap();
        assert!(
            heard.is_empty(),
            "a grandchild outlived the timeout: {:?}",
            String::from_utf8_lossy(&heard)
        );
    }

    #[test]
    fn cancel_stops_the_child() {
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            c2.cancel();
        });
        let e = Cmd::new("sleep").arg("30").cancel(&cancel).output();
        t.join().unwrap();
        assert!(matches!(e, Err(ProcessError::Cancelled { .. })), "{e:?}");
    }

    #[test]
    fn streams_lines_split_on_cr_and_lf() {
        let mut lines = Vec::new();
        Cmd::new("printf")
            .arg("a\rb\nc")
            .stream(|l| {
                if let Line::Stdout(s) = l {
                    lines.push(String::from_utf8_lossy(s).into_owned())
                }
            })
            .unwrap();
        assert_eq!(lines, ["a", "b", "c"]);
    }

    #[test]
    fn resolves_to_an_absolute_path() {
        let p = resolve_program(OsStr::new("sh"), None).unwrap();
        assert!(p.is_absolute());
        let e = resolve_program(OsStr::new("sh"), Some(OsStr::new("/nonexistent")));
        assert!(e.is_err());
    }
}
