//! The rsync driver: one argument list for the plan and the run, a typed plan parsed from
//! `--itemize-changes`, progress parsed from `--info=progress2`, and rsync's exit codes turned into
//! explained outcomes.
//!
//! Invariants:
//! - [`RsyncJob::args`] is the single source of the argument list; the dry-run plan and the real run
//!   differ only in `--dry-run` (plan) and `--info=progress2 --max-delete=<planned deletions>`
//!   (run), the latter only ever *tightening* what the run may do;
//! - item lines carry the prefix [`ITEM_PREFIX`], so they can never be confused with progress
//!   lines; file names in them are decoded from rsync's `\#ooo` escapes (rsync escapes every
//!   control character, including newline, and a backslash that precedes `#`; `-8` leaves
//!   non-UTF-8 high bytes raw), so every byte string round-trips;
//! - the destination marker is excluded by an anchored filter rule, which also protects it from
//!   `--delete`; the partial directory is protected by rsync itself.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use repoman_core::Cancel;
use repoman_core::process::{Cmd, Line, ProcessError, resolve_program};
use serde::Serialize;

use crate::error::BackupError;
use crate::paths::encode_path;

/// Name of the destination marker, relative to the backup copy of a project.
pub const MARKER_FILE: &str = ".repoman-backup.json";
/// rsync's staging directory (inside each destination directory) for `--delay-updates` and for
/// partially transferred files after an interruption.
pub const PARTIAL_DIR: &str = ".repoman-partial";
/// Where the real run of a sync writes rsync's temporary files (`--temp-dir`, relative to the
/// destination): one directory at the top of the backup copy, excluded from plans, manifests,
/// verify and conflict detection, so the leftovers of a killed run are recognised as repoman's
/// own, never as a file someone created on the backup.
pub const TEMP_DIR: &str = ".repoman-tmp";
/// Names under the backup root (and at the top of every backup copy) that repoman itself uses;
/// no project may be mirrored to, or contain at its top, a name starting with this.
pub const RESERVED_PREFIX: &str = ".repoman";
/// Prefix of every item line in rsync's output.
pub const ITEM_PREFIX: &[u8] = b"@rm ";
/// Default I/O timeout handed to rsync (`--timeout`): a stalled transfer ends with exit 30.
pub const DEFAULT_IO_TIMEOUT_SECS: u64 = 300;

/// What one rsync invocation copies, and how.
#[derive(Debug, Clone)]
pub struct RsyncJob {
    /// Source directory (copied as its contents: a trailing `/` is added).
    pub src: PathBuf,
    /// Destination directory.
    pub dst: PathBuf,
    /// Mirror deletions (`--delete --delete-delay`); off with `--no-delete`.
    pub delete: bool,
    /// rsync `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--timeout` seconds.
    pub io_timeout_secs: u64,
    /// Restrict the transfer to these relative paths (`--files-from`, NUL-separated file).
    pub files_from: Option<PathBuf>,
    /// `PATH` used to find `rsync`.
    pub search_path: Option<OsString>,
    /// Compare file contents, not size and mtime (`--checksum`).
    pub checksum: bool,
    /// Write temporary files into [`TEMP_DIR`] at the top of the destination (real runs of a
    /// sync only; the directory must exist).
    pub temp_dir: bool,
}

impl RsyncJob {
    pub fn new(src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> Self {
        Self {
            src: src.into(),
            dst: dst.into(),
            delete: true,
            excludes: Vec::new(),
            io_timeout_secs: DEFAULT_IO_TIMEOUT_SECS,
            files_from: None,
            search_path: None,
            temp_dir: false,
            checksum: false,
        }
    }

    /// The argument list shared by the plan and the run (see `docs/backup.md` for each flag).
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--archive",
            "--hard-links",
            "--numeric-ids",
            "--delay-updates",
            "--itemize-changes",
            "--8-bit-output",
            // Holes stay holes: a sparse disk image is not inflated on the backup or on restore.
            "--sparse",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        a.push(format!("--partial-dir={PARTIAL_DIR}").into());
        a.push(
            format!(
                "--out-format={} %i %l %n",
                String::from_utf8_lossy(ITEM_PREFIX).trim_end()
            )
            .into(),
        );
        a.push(format!("--timeout={}", self.io_timeout_secs).into());
        if self.checksum {
            a.push("--checksum".into());
        }
        if self.delete {
            a.push("--delete".into());
            a.push("--delete-delay".into());
        }
        // Anchored: only the marker at the top of the copy. An exclude also protects the
        // destination's file from --delete (we never pass --delete-excluded).
        a.push(format!("--filter=- /{MARKER_FILE}").into());
        // The temporary files of a killed run: never planned, sent or deleted.
        a.push(format!("--filter=- /{TEMP_DIR}/").into());
        for e in &self.excludes {
            a.push(format!("--exclude={e}").into());
        }
        if let Some(list) = &self.files_from {
            // --files-from turns off the recursion that --archive implies; listed directories
            // must still be copied whole.
            a.push("--recursive".into());
            a.push("--from0".into());
            let mut f = OsString::from("--files-from=");
            f.push(list);
            a.push(f);
        }
        a.push(with_trailing_slash(&self.src));
        a.push(with_trailing_slash(&self.dst));
        a
    }

    fn cmd(&self, args: Vec<OsString>, cancel: &Cancel) -> Result<Cmd, BackupError> {
        let rsync = resolve_program(OsStr::new("rsync"), self.search_path.as_deref())
            .map_err(BackupError::Process)?;
        // rsync runs in its own process group, which repoman stops on Ctrl-C and SIGTERM. If
        // repoman itself dies (kill -9, a crash), `setpriv --pdeathsig` has the kernel send rsync
        // SIGTERM when the thread that started it is gone, so no orphaned rsync goes on changing
        // the backup behind the next sync's back. (`prctl(PR_SET_PDEATHSIG)` needs `pre_exec`,
        // i.e. unsafe code; setpriv, from util-linux, does exactly that and then execs rsync.)
        let mut cmd = match resolve_program(OsStr::new("setpriv"), self.search_path.as_deref()) {
            Ok(setpriv) => Cmd::new(setpriv)
                .args(["--pdeathsig", "TERM", "--"])
                .arg(rsync),
            Err(_) => {
                tracing::warn!(
                    "setpriv (util-linux) not found: rsync would outlive a killed repoman"
                );
                Cmd::new(rsync)
            }
        };
        cmd = cmd.args(args).cancel(cancel);
        if let Some(p) = &self.search_path {
            cmd = cmd.search_path(p);
        }
        Ok(cmd)
    }

    /// The argv of the dry run, for display.
    pub fn plan_argv(&self) -> Vec<OsString> {
        let mut a = vec![OsString::from("--dry-run")];
        a.extend(self.args());
        // Twice: unchanged paths are listed too (`.f          `), so the plan knows every path
        // of the source, not only the ones that differ (see [`Plan::unchanged`]).
        a.push("--itemize-changes".into());
        a
    }

    /// The argv of the real run.
    pub fn run_argv(&self, max_delete: Option<u64>) -> Vec<OsString> {
        let mut a = vec![OsString::from("--info=progress2")];
        if let Some(n) = max_delete {
            a.push(format!("--max-delete={n}").into());
        }
        if self.temp_dir {
            a.push(format!("--temp-dir={TEMP_DIR}").into());
        }
        a.extend(self.args());
        a
    }

    /// The two argvs of a run restricted to a plan's paths (DESIGN.md §6): first the transfer of
    /// `transfer_list` (the planned creates, updates and attribute changes; no deletion), then,
    /// if `delete_list` is given, the deletion of the planned top-most deleted paths
    /// (`--delete-missing-args --force`, capped by `--max-delete`). The second walk of the tree
    /// is over the listed paths only, and deletions still happen after every transfer finished.
    pub fn listed_argvs(
        &self,
        transfer_list: Option<&Path>,
        delete_list: Option<(&Path, u64)>,
    ) -> Vec<Vec<OsString>> {
        let listed = |list: &Path| {
            let mut job = self.clone();
            job.files_from = None;
            job.delete = false;
            let mut a = job.run_argv(None);
            let n = a.len();
            // Before the two path arguments: no recursion (-a does not imply it with
            // --files-from): listed directories are updated, not walked.
            let mut f = OsString::from("--files-from=");
            f.push(list);
            a.splice(n - 2..n - 2, [OsString::from("--from0"), f]);
            a
        };
        let mut out: Vec<Vec<OsString>> = transfer_list.map(listed).into_iter().collect();
        if let Some((list, n)) = delete_list {
            let mut a = listed(list);
            a.splice(
                0..0,
                [
                    OsString::from("--delete-missing-args"),
                    OsString::from("--force"),
                    OsString::from(format!("--max-delete={n}")),
                ],
            );
            out.push(a);
        }
        out
    }

    /// Dry-run with the shared arguments and parse what rsync would do.
    pub fn plan(&self, cancel: &Cancel) -> Result<Plan, BackupError> {
        let out = self
            .cmd(self.plan_argv(), cancel)?
            .output()
            .map_err(map_process)?;
        let code = out.status.code().unwrap_or(-1);
        if code != 0 {
            return Err(BackupError::Rsync {
                outcome: RsyncOutcome::from_code(code),
                stage: "plan",
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(Plan::parse(&out.stdout))
    }

    /// The real run. `max_delete` caps deletions (rsync `--max-delete`); progress is reported as
    /// it arrives. Returns the items rsync actually reported and the outcome.
    pub fn run(
        &self,
        max_delete: Option<u64>,
        cancel: &Cancel,
        on_progress: impl FnMut(RunProgress),
    ) -> Result<RunReport, BackupError> {
        self.run_with(
            self.run_argv(max_delete),
            cancel,
            RunProgress::default(),
            on_progress,
        )
    }

    /// The real run restricted to a plan's paths (see [`RsyncJob::listed_argvs`]); the lists are
    /// written into `scratch`. Falls back to [`RsyncJob::run`] when the plan holds hard links
    /// (rsync can only link to files it is sent in the same run).
    pub fn run_planned(
        &self,
        plan: &Plan,
        scratch: &Path,
        cancel: &Cancel,
        mut on_progress: impl FnMut(RunProgress),
    ) -> Result<RunReport, BackupError> {
        if plan.items.iter().any(|i| i.change == Change::HardLink) {
            return self.run(Some(plan.deletes), cancel, on_progress);
        }
        let (transfer, delete) = plan.listed_paths();
        repoman_core::paths::ensure_dir(scratch)
            .map_err(|e| BackupError::io(scratch, std::io::Error::other(e.to_string())))?;
        let stem = format!(
            "sync-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
        let tlist = scratch.join(format!("{stem}.transfer"));
        let dlist = scratch.join(format!("{stem}.delete"));
        let result = (|| {
            let trans = if transfer.is_empty() {
                None
            } else {
                write_files_from(&tlist, &transfer).map_err(|e| BackupError::io(&tlist, e))?;
                Some(tlist.as_path())
            };
            let del = if self.delete && !delete.is_empty() {
                write_files_from(&dlist, &delete).map_err(|e| BackupError::io(&dlist, e))?;
                Some((dlist.as_path(), plan.deletes))
            } else {
                None
            };
            let mut report = RunReport {
                items: Vec::new(),
                outcome: RsyncOutcome::Complete,
                stderr: String::new(),
                bytes_done: 0,
            };
            let mut progress = RunProgress::default();
            for argv in self.listed_argvs(trans, del) {
                let r = self.run_with(argv, cancel, progress, &mut on_progress)?;
                progress.files_done +=
                    r.items.iter().filter(|i| i.transfers_content()).count() as u64;
                progress.bytes_done += r.bytes_done;
                report.items.extend(r.items);
                if r.outcome != RsyncOutcome::Complete {
                    report.outcome = r.outcome;
                }
                if !r.stderr.is_empty() {
                    if !report.stderr.is_empty() {
                        report.stderr.push('\n');
                    }
                    report.stderr.push_str(&r.stderr);
                }
            }
            Ok(report)
        })();
        let _ = std::fs::remove_file(&tlist);
        let _ = std::fs::remove_file(&dlist);
        result
    }

    fn run_with(
        &self,
        argv: Vec<OsString>,
        cancel: &Cancel,
        start: RunProgress,
        mut on_progress: impl FnMut(RunProgress),
    ) -> Result<RunReport, BackupError> {
        let mut items = Vec::new();
        let mut progress = start;
        let base_bytes = start.bytes_done;
        let res = self.cmd(argv, cancel)?.stream(|line| {
            if let Line::Stdout(l) = line {
                if let Some(item) = PlanItem::parse_line(l) {
                    if item.transfers_content() {
                        progress.files_done += 1;
                    }
                    items.push(item);
                    on_progress(progress);
                } else if let Some(b) = parse_progress2(l) {
                    progress.bytes_done = base_bytes + b;
                    on_progress(progress);
                }
            }
        });
        let out = match res {
            Ok(out) => out,
            Err(ProcessError::Cancelled { .. }) => return Err(BackupError::Cancelled),
            Err(e) => return Err(map_process(e)),
        };
        let code = out.status.code().unwrap_or(-1);
        let mut outcome = RsyncOutcome::from_code(code);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if outcome == RsyncOutcome::Complete && discarded_a_file(&stderr) {
            // rsync itemized the file and exits 0, but the backup keeps the old version.
            outcome = RsyncOutcome::PartialTransfer;
        }
        if !outcome.is_usable() {
            return Err(BackupError::Rsync {
                outcome,
                stage: "run",
                stderr,
            });
        }
        Ok(RunReport {
            items,
            outcome,
            stderr,
            bytes_done: progress.bytes_done - base_bytes,
        })
    }
}

/// Whether rsync threw away a file it had received. With `--delay-updates` a received file is
/// moved into the partial directory of its destination directory until the end of the run; when
/// that directory cannot be created (a read-only or full directory on the backup) rsync says
/// "Unable to create partial-dir for X -- discarding completed file." and still exits 0.
fn discarded_a_file(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.contains("Unable to create partial-dir for") && l.contains("-- discarding"))
}

fn map_process(e: ProcessError) -> BackupError {
    match e {
        ProcessError::Cancelled { .. } => BackupError::Cancelled,
        e => BackupError::Process(e),
    }
}

fn with_trailing_slash(p: &Path) -> OsString {
    let mut s = p.as_os_str().to_owned();
    if !s.as_bytes().ends_with(b"/") {
        s.push("/");
    }
    s
}

/// Progress of a running transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    /// Files whose content was transferred so far.
    pub files_done: u64,
    /// Bytes transferred so far (rsync's overall counter).
    pub bytes_done: u64,
}

/// What a finished real run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub items: Vec<PlanItem>,
    pub outcome: RsyncOutcome,
    pub stderr: String,
    /// Bytes rsync reported transferred.
    pub bytes_done: u64,
}

/// rsync's exit status, explained. Codes not listed are [`RsyncOutcome::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "code", rename_all = "kebab-case")]
pub enum RsyncOutcome {
    /// 0: everything transferred.
    Complete,
    /// 23: some files or attributes were not transferred (permissions, I/O errors).
    PartialTransfer,
    /// 24: source files vanished while rsync ran (the working copy was being edited).
    SourceVanished,
    /// 25: `--max-delete` stopped deletions (the backup changed between plan and run).
    MaxDeleteStopped,
    /// 30: no data moved for `--timeout` seconds (a stalled NFS server or disk).
    IoTimeout,
    /// 20: rsync was interrupted by a signal.
    Interrupted,
    /// Anything else.
    Failed(i32),
}

impl RsyncOutcome {
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => Self::Complete,
            23 => Self::PartialTransfer,
            24 => Self::SourceVanished,
            25 => Self::MaxDeleteStopped,
            30 => Self::IoTimeout,
            20 => Self::Interrupted,
            c => Self::Failed(c),
        }
    }

    /// The exit code rsync returned.
    pub fn code(self) -> i32 {
        match self {
            Self::Complete => 0,
            Self::PartialTransfer => 23,
            Self::SourceVanished => 24,
            Self::MaxDeleteStopped => 25,
            Self::IoTimeout => 30,
            Self::Interrupted => 20,
            Self::Failed(c) => c,
        }
    }

    /// Whether the backup is a complete mirror afterwards. Vanished source files (24) are files
    /// deleted from the working copy during the run; everything that still exists was copied.
    pub fn is_usable(self) -> bool {
        matches!(self, Self::Complete | Self::SourceVanished)
    }

    /// A sentence saying what happened and what to do.
    pub fn explain(self) -> String {
        match self {
            Self::Complete => "rsync completed".into(),
            Self::PartialTransfer => "rsync exit 23: some files or attributes could not be transferred (permission denied, I/O error, or a name the backup filesystem rejects); the backup holds the previous versions of those files. Fix the errors shown and sync again".into(),
            Self::SourceVanished => "rsync exit 24: files vanished from the working copy while syncing (something was editing it); everything still present was copied".into(),
            Self::MaxDeleteStopped => "rsync exit 25: deletions stopped at the planned count because the backup changed between the plan and the run; sync again to re-plan".into(),
            Self::IoTimeout => "rsync exit 30: no data moved within the I/O timeout; the backup server or disk stalled. Check the mount and sync again".into(),
            Self::Interrupted => "rsync exit 20: interrupted by a signal".into(),
            Self::Failed(c) => format!("rsync failed with exit {c}"),
        }
    }
}

/// The type of a file in an item line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    File,
    Dir,
    Symlink,
    Device,
    Special,
}

/// What rsync does to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// A new item on the destination.
    Create,
    /// Content (or a symlink target) changes.
    Update,
    /// Only attributes (mode, times, owner) change.
    Attributes,
    /// Removed from the destination.
    Delete,
    /// Created as a hard link to another item.
    HardLink,
}

/// One itemized change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    pub change: Change,
    /// `None` for deletions (rsync does not say).
    pub kind: Option<ItemKind>,
    /// Relative path as raw bytes (no trailing `/`); empty for the top directory.
    pub path: Vec<u8>,
    /// File length (symlinks: target length; directories: their size on disk).
    pub size: u64,
    /// The 11-character itemize string, e.g. `>f.st......`.
    pub flags: String,
}

impl PlanItem {
    /// Parse one line of rsync output; `None` for lines that are not item lines.
    pub fn parse_line(line: &[u8]) -> Option<Self> {
        let rest = line.strip_prefix(ITEM_PREFIX)?;
        // %i is padded to 11 characters ("*deleting  "), then a space, %l, a space, %n.
        if rest.len() < 13 {
            return None;
        }
        let (flags, rest) = rest.split_at(11);
        let rest = rest.strip_prefix(b" ")?;
        let sp = rest.iter().position(|&b| b == b' ')?;
        let size: u64 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        let mut path = unescape(&rest[sp + 1..]);
        if path.last() == Some(&b'/') {
            path.pop();
        }
        if path == b"." {
            path.clear();
        }
        let flags = String::from_utf8_lossy(flags).into_owned();
        let fb = flags.as_bytes();
        let kind = match fb[1] {
            b'f' => Some(ItemKind::File),
            b'd' => Some(ItemKind::Dir),
            b'L' => Some(ItemKind::Symlink),
            b'D' => Some(ItemKind::Device),
            b'S' => Some(ItemKind::Special),
            _ => None,
        };
        let change = if flags.starts_with("*deleting") {
            Change::Delete
        } else if fb[0] == b'h' {
            Change::HardLink
        } else if fb[2..].iter().all(|&b| b == b'+') {
            Change::Create
        } else if matches!(fb[0], b'<' | b'>') || (fb[0] == b'c' && kind == Some(ItemKind::Symlink))
        {
            Change::Update
        } else if fb[0] == b'*' {
            // Other messages (none are produced by our options); treat as attribute noise.
            Change::Attributes
        } else {
            Change::Attributes
        };
        Some(Self {
            change,
            kind,
            path,
            size,
            flags,
        })
    }

    /// A line of the doubled `--itemize-changes` for a path that does not differ: `.` then the
    /// type, then only spaces.
    pub fn is_unchanged(&self) -> bool {
        let fb = self.flags.as_bytes();
        fb.first() == Some(&b'.') && fb.len() > 2 && fb[2..].iter().all(|&b| b == b' ')
    }

    /// Whether this item moves file content (counts toward bytes).
    pub fn transfers_content(&self) -> bool {
        self.kind == Some(ItemKind::File) && matches!(self.change, Change::Create | Change::Update)
    }

    /// The path for display and JSON (percent-escaped where not UTF-8).
    pub fn display_path(&self) -> String {
        encode_path(&self.path)
    }
}

/// Decode rsync's `\#ooo` escapes.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 4 < s.len()
            && s[i + 1] == b'#'
            && s[i + 2..i + 5].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (s[i + 2] - b'0') as u32 * 64
                + (s[i + 3] - b'0') as u32 * 8
                + (s[i + 4] - b'0') as u32;
            out.push(v as u8);
            i += 5;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Parse a `--info=progress2` line into the overall byte counter.
pub fn parse_progress2(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    let bytes = words.next()?;
    let pct = words.next()?;
    if !pct.ends_with('%') {
        return None;
    }
    bytes.replace(',', "").parse().ok()
}

/// A typed plan: what the real run would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    #[serde(skip)]
    pub items: Vec<PlanItem>,
    /// Paths of the source rsync found equal on the destination (listed by the dry run's
    /// doubled `--itemize-changes`). With the items that are not deletions, every path of the
    /// source: an extended manifest is checked against this set (see
    /// [`Plan::source_paths`]), because a path missing on both sides shows in no item.
    #[serde(skip)]
    pub unchanged: Vec<Vec<u8>>,
    /// New files, directories, links on the backup.
    pub creates: u64,
    /// Items whose content changes.
    pub updates: u64,
    /// Items whose attributes only change.
    pub attribute_changes: u64,
    /// Items removed from the backup.
    pub deletes: u64,
    /// Bytes of file content to transfer (upper bound: rsync may send less with its delta).
    pub bytes: u64,
    /// Files whose content is transferred.
    pub files_to_transfer: u64,
}

impl Plan {
    /// Parse the whole stdout of a dry run.
    pub fn parse(stdout: &[u8]) -> Self {
        let mut plan = Plan::default();
        for line in stdout.split(|&b| b == b'\n') {
            if let Some(item) = PlanItem::parse_line(line) {
                if item.is_unchanged() {
                    plan.unchanged.push(item.path);
                } else {
                    plan.push(item);
                }
            }
        }
        plan
    }

    fn push(&mut self, item: PlanItem) {
        match item.change {
            Change::Create | Change::HardLink => self.creates += 1,
            Change::Update => self.updates += 1,
            Change::Attributes => {
                // The top directory's time is refreshed whenever anything inside changes; that alone
                // is not a change anyone cares about (its mode or owner changing is).
                if item.path.is_empty() && item.flags.trim_end() == ".d..t......" {
                    return;
                }
                self.attribute_changes += 1
            }
            Change::Delete => self.deletes += 1,
        }
        if item.transfers_content() {
            self.bytes += item.size;
            self.files_to_transfer += 1;
        }
        self.items.push(item);
    }

    /// Whether the run would change nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every path of the source as the dry run saw it (items that are not deletions, and the
    /// unchanged paths), sorted, without the top directory.
    pub fn source_paths(&self) -> Vec<&[u8]> {
        let mut all: Vec<&[u8]> = self
            .items
            .iter()
            .filter(|i| i.change != Change::Delete)
            .map(|i| i.path.as_slice())
            .chain(self.unchanged.iter().map(Vec::as_slice))
            .filter(|p| !p.is_empty())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Deleted paths.
    pub fn deletions(&self) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(|i| i.change == Change::Delete)
    }

    /// The `--files-from` lists of a run restricted to this plan: the paths to transfer (every
    /// item that is not a deletion; the top directory as `.`), and the top-most deleted paths
    /// (a deleted directory takes its contents with it; listing a path below a directory that
    /// no longer exists in the source would make rsync report it as vanished).
    pub fn listed_paths(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let transfer: Vec<Vec<u8>> = self
            .items
            .iter()
            .filter(|i| i.change != Change::Delete)
            .map(|i| {
                if i.path.is_empty() {
                    b".".to_vec()
                } else {
                    i.path.clone()
                }
            })
            .collect();
        let deleted: std::collections::HashSet<&[u8]> =
            self.deletions().map(|i| i.path.as_slice()).collect();
        let mut delete: Vec<Vec<u8>> = self
            .deletions()
            .filter(|i| {
                !i.path
                    .iter()
                    .enumerate()
                    .any(|(n, &b)| b == b'/' && deleted.contains(&i.path[..n]))
            })
            .map(|i| i.path.clone())
            .collect();
        delete.sort();
        delete.dedup();
        (transfer, delete)
    }
}

/// Write a NUL-separated list of relative paths for `--files-from --from0`.
pub fn write_files_from(path: &Path, rel_paths: &[Vec<u8>]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for p in rel_paths {
        buf.extend_from_slice(p);
        buf.push(0);
    }
    std::fs::write(path, buf)
}

/// The argv as text, for `--dry-run` display and logs.
pub fn display_argv(args: &[OsString]) -> String {
    std::iter::once(OsStr::new("rsync"))
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.contains(' ') {
                format!("'{s}'")
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_item_lines_with_odd_names() {
        let out = b"@rm >f+++++++++ 1 back\\#134#012slash\n\
                    @rm >f+++++++++ 1 bad\xff\n\
                    @rm cL+++++++++ 6 link\n\
                    @rm >f.st...... 10 new\\#012line\n\
                    @rm >f+++++++++ 1 with space\n\
                    @rm .d..t...... 4096 ./\n\
                    @rm cd+++++++++ 4096 sub dir/\n\
                    @rm .f...p..... 3 modeonly\n\
                    @rm *deleting   0 old/gone\n\
                    @rm *deleting   0 old/\n\
                    \n              1   0%    0.00kB/s    0:00:00 (xfr#1, to-chk=8/10)\n";
        let plan = Plan::parse(out);
        let paths: Vec<Vec<u8>> = plan.items.iter().map(|i| i.path.clone()).collect();
        assert_eq!(paths[0], b"back\\#012slash");
        assert_eq!(paths[1], b"bad\xff");
        assert_eq!(paths[3], b"new\nline");
        assert_eq!(paths[4], b"with space");
        assert_eq!(paths[5], b"sub dir");
        assert_eq!(paths[8], b"old");
        assert_eq!(plan.creates, 5);
        assert_eq!(plan.updates, 1);
        assert_eq!(
            plan.attribute_changes, 1,
            "the top directory is not counted"
        );
        assert_eq!(plan.deletes, 2);
        assert_eq!(plan.bytes, 1 + 1 + 10 + 1);
        assert_eq!(plan.files_to_transfer, 4);
        assert_eq!(plan.items[2].kind, Some(ItemKind::Symlink));
        assert_eq!(plan.items[6].change, Change::Attributes);
    }

    #[test]
    fn progress_lines_are_not_items() {
        assert_eq!(
            parse_progress2(b"     50,000,002  99%  277.23MB/s    0:00:00 (xfr#3, to-chk=6/10)"),
            Some(50_000_002)
        );
        assert_eq!(parse_progress2(b"@rm >f+++++++++ 1 x"), None);
        assert!(PlanItem::parse_line(b"     1   0%    0.00kB/s    0:00:00").is_none());
    }

    #[test]
    fn exit_codes_are_distinct_and_explained() {
        let outcomes: Vec<_> = [23, 24, 25, 30].map(RsyncOutcome::from_code).to_vec();
        assert_eq!(
            outcomes,
            [
                RsyncOutcome::PartialTransfer,
                RsyncOutcome::SourceVanished,
                RsyncOutcome::MaxDeleteStopped,
                RsyncOutcome::IoTimeout
            ]
        );
        for o in &outcomes {
            assert!(o.explain().starts_with(&format!("rsync exit {}", o.code())));
        }
        assert!(RsyncOutcome::SourceVanished.is_usable());
        assert!(!RsyncOutcome::PartialTransfer.is_usable());
    }
}
