//! What the TUI shows, as plain data: the loader ([`crate::load`]) fills a [`Snapshot`] from the
//! domain crates, [`crate::render`] draws it. Nothing here talks to Incus, the file system or the
//! event log, so render tests build snapshots by hand.

/// Where the current data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// Nothing loaded yet.
    #[default]
    Empty,
    /// The registry and the event log's index only (the first frame: no Incus, no scan).
    Index,
    /// The index plus a live observation (Incus, the backup mount, tool manifests, realms).
    Live,
}

/// Everything the views show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub source: Source,
    /// When it was loaded (seconds since the epoch): ages are shown relative to it.
    pub now_secs: i64,
    /// The event log head (`seq`) the snapshot reflects.
    pub head_seq: u64,
    pub projects: Vec<ProjectRow>,
    pub backups: Vec<BackupRow>,
    pub tools: Vec<ToolRow>,
    pub realms: Vec<RealmRow>,
    pub events: Vec<EventRow>,
    /// Why Incus could not be asked (then states and IPv4 are not known).
    pub incus_error: Option<String>,
    /// The configured backup root and, when it does not answer as expected, why.
    pub backup_root: Option<String>,
    pub backup_error: Option<String>,
    /// Why the state (event log, index) could not be read.
    pub state_error: Option<String>,
    /// Why the registry could not be read.
    pub registry_error: Option<String>,
    /// Why tool manifests or the tool inventory could not be read.
    pub tools_error: Option<String>,
    /// Why realms could not be read.
    pub realm_error: Option<String>,
    /// Installed provers (name and version) found by the tool scan.
    pub provers: Vec<(String, String)>,
    /// Installed tools no project declares (the "ghosts").
    pub ghosts: Vec<String>,
}

/// One project (registered, or an orphan container).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectRow {
    pub name: String,
    pub registered: bool,
    /// Incus status (`Running`, `Stopped`), `missing`, `none` (no sandbox) or `?` (not observed).
    pub state: String,
    pub ipv4: Vec<String>,
    pub repo: String,
    pub repo_path: Option<String>,
    /// RFC 3339 time of the last sync.
    pub last_sync: Option<String>,
    /// Drift label: `missing`, `orphan`, `config`, `unknown`.
    pub drift: Option<String>,
    /// Pending conflicts.
    pub conflicts: usize,
    /// `.repoman.toml` is untrusted or changed since trusted.
    pub untrusted: Option<String>,
    /// Bind mounts, `source -> path`.
    pub mounts: Vec<String>,
    /// The `explain` answers for `project:NAME`, one line each.
    pub explain: Vec<String>,
}

/// One project's backup record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupRow {
    pub project: String,
    pub last_sync: Option<String>,
    pub last_verify: Option<String>,
    /// The result of the last verify (`ok`, `failed`, ...).
    pub verify_result: Option<String>,
    pub manifest_root: Option<String>,
}

/// One declared tool of one project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolRow {
    pub project: String,
    pub tool: String,
    /// The declared version(s).
    pub wants: String,
    /// `ok`, `missing`, `mismatch`, ...
    pub state: String,
    /// What is installed.
    pub found: String,
    /// `file:line` of the declaration.
    pub declared_in: String,
    /// The manifest file (absolute) and the project's directory, for pin/unpin.
    pub file: String,
    pub dir: String,
}

/// One realm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RealmRow {
    pub name: String,
    pub path: String,
    /// `domain: provider -> consumers`.
    pub domains: Vec<String>,
    /// `contract VERSION (owner)`.
    pub contracts: Vec<String>,
    /// `repo exports|imports contract ...`.
    pub bindings: Vec<String>,
    /// Imports resolved to an older version than the contract's current one.
    pub stale: Vec<String>,
    /// The last `contract.checked` verdicts, newest first.
    pub verdicts: Vec<String>,
}

/// One recorded event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRow {
    pub seq: u64,
    pub at: String,
    pub type_: String,
    pub object: String,
    pub actor: String,
    /// The event's data, pretty JSON.
    pub data: String,
    pub prev: String,
    pub hash: String,
}

impl ProjectRow {
    /// The text a filter matches against.
    pub fn haystack(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.name,
            self.state,
            self.repo,
            self.drift.as_deref().unwrap_or(""),
            self.ipv4.join(" ")
        )
    }
}

impl BackupRow {
    pub fn haystack(&self) -> String {
        format!(
            "{} {}",
            self.project,
            self.verify_result.as_deref().unwrap_or("")
        )
    }
}

impl ToolRow {
    pub fn haystack(&self) -> String {
        format!(
            "{} {} {} {}",
            self.project, self.tool, self.state, self.wants
        )
    }
}

impl RealmRow {
    pub fn haystack(&self) -> String {
        format!("{} {}", self.name, self.domains.join(" "))
    }
}

impl EventRow {
    pub fn haystack(&self) -> String {
        format!("{} {} {}", self.type_, self.object, self.actor)
    }
}
