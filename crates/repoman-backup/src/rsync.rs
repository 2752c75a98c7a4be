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
use repoman_core::process::{Cmd, Line, ProcessError};
use serde::Serialize;

use crate::error::BackupError;
use crate::paths::encode_path;

/// Name of the destination marker, relative to the backup copy of a project.
pub const MARKER_FILE: &str = ".repoman-backup.json";
/// rsync's staging directory (inside each destination directory) for `--delay-updates` and for
/// partially transferred files after an interruption.
pub const PARTIAL_DIR: &str = ".repoman-partial";
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
        if self.delete {
            a.push("--delete".into());
            a.push("--delete-delay".into());
        }
        // Anchored: only the marker at the top of the copy. An exclude also protects the
        // destination's file from --delete (we never pass --delete-excluded).
        a.push(format!("--filter=- /{MARKER_FILE}").into());
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

    fn cmd(&self, args: Vec<OsString>, cancel: &Cancel) -> Cmd {
        let mut cmd = Cmd::new("rsync").args(args).cancel(cancel);
        if let Some(p) = &self.search_path {
            cmd = cmd.search_path(p);
        }
        cmd
    }

    /// The argv of the dry run, for display.
    pub fn plan_argv(&self) -> Vec<OsString> {
        let mut a = vec![OsString::from("--dry-run")];
        a.extend(self.args());
        a
    }

    /// The argv of the real run.
    pub fn run_argv(&self, max_delete: Option<u64>) -> Vec<OsString> {
        let mut a = vec![OsString::from("--info=progress2")];
        if let Some(n) = max_delete {
            a.push(format!("--max-delete={n}").into());
        }
        a.extend(self.args());
        a
    }

    /// Dry-run with the shared arguments and parse what rsync would do.
    pub fn plan(&self, cancel: &Cancel) -> Result<Plan, BackupError> {
        let out = self
            .cmd(self.plan_argv(), cancel)
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
        mut on_progress: impl FnMut(RunProgress),
    ) -> Result<RunReport, BackupError> {
        let mut items = Vec::new();
        let mut progress = RunProgress::default();
        let res = self.cmd(self.run_argv(max_delete), cancel).stream(|line| {
            if let Line::Stdout(l) = line {
                if let Some(item) = PlanItem::parse_line(l) {
                    if item.transfers_content() {
                        progress.files_done += 1;
                    }
                    items.push(item);
                    on_progress(progress);
                } else if let Some(b) = parse_progress2(l) {
                    progress.bytes_done = b;
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
        let outcome = RsyncOutcome::from_code(code);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
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
        })
    }
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
                plan.push(item);
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

    /// Deleted paths.
    pub fn deletions(&self) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(|i| i.change == Change::Delete)
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
