//! The daemon's shared state: configuration, the registry snapshot, state handles, the commit
//! queue, the event hub, and who a caller is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use repoman_core::registry::{Registry, RegistryFile};
use repoman_core::settings::Settings;
use repoman_core::{Cancel, Clock, Env, ErrorKind, Paths, ProjectName};
use repoman_state::{ActorKind, ActorRequest, Identity, NewEvent, State, StateOptions};
use serde::Serialize;
use serde_json::Value;

use crate::commit::Committer;
use crate::rpc::RpcError;
use crate::schedule::SchedClock;
use crate::stream::Hub;

/// Limits on what one caller may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest request line accepted (bytes, without the newline).
    pub max_request_bytes: usize,
    /// The most requests in one batch.
    pub max_batch: usize,
    /// Requests per second per host connection (a token bucket with `burst`).
    pub host_rate: f64,
    pub host_burst: f64,
    /// Requests per second per sandbox (all of its connections together).
    pub agent_rate: f64,
    pub agent_burst: f64,
    /// Default and largest subscriber queue (events).
    pub sub_buffer: usize,
    pub sub_buffer_max: usize,
    /// A subscriber whose socket accepts nothing for this long is disconnected.
    pub sub_write_timeout: Duration,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Most concurrent connections from one sandbox (so one cannot use up the others' share).
    pub max_agent_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_batch: 256,
            host_rate: 20_000.0,
            host_burst: 2_000.0,
            agent_rate: 200.0,
            agent_burst: 200.0,
            sub_buffer: 16_384,
            sub_buffer_max: 65_536,
            sub_write_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_agent_connections: 16,
        }
    }
}

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Paths,
    pub env: Env,
    /// The `repoman` binary, for the methods that run a CLI command.
    pub exe: PathBuf,
    pub version: String,
    pub limits: Limits,
    pub clock: SchedClock,
    /// How often the scheduler looks for due work (ignored with a pinned clock: tests tick).
    pub tick_every: Duration,
    /// Serve the per-sandbox agent endpoints.
    pub agents: bool,
    /// Only these kinds of scheduled jobs (`sync`, `reconcile`, `tool-scan`); `None`: all.
    pub jobs: Option<Vec<String>>,
}

impl Config {
    pub fn new(paths: Paths, env: Env, exe: PathBuf, version: impl Into<String>) -> Self {
        Self {
            paths,
            env,
            exe,
            version: version.into(),
            limits: Limits::default(),
            clock: SchedClock::System,
            tick_every: Duration::from_secs(30),
            agents: true,
            jobs: None,
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.paths)
    }
}

/// The host socket: `<runtime>/groove.sock`.
pub fn socket_path(paths: &Paths) -> PathBuf {
    paths.runtime_dir.join("groove.sock")
}

/// The daemon lock: `<runtime>/daemon.lock` (holds the pid).
pub fn lock_path(paths: &Paths) -> PathBuf {
    paths.runtime_dir.join("daemon.lock")
}

/// The manifest file: `<runtime>/.well-known/groove/manifest.json`.
pub fn manifest_path(paths: &Paths) -> PathBuf {
    paths
        .runtime_dir
        .join(".well-known")
        .join("groove")
        .join("manifest.json")
}

/// The registry as last loaded (at start and on SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub registry: Registry,
    pub settings: Option<Settings>,
    pub error: Option<String>,
    pub loaded_at: String,
}

/// Which endpoint a connection came in on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "endpoint")]
pub enum Endpoint {
    Host,
    Agent { project: String, cgroup: String },
}

/// Who is calling: decided at accept time from the endpoint and the peer's credentials, never
/// from anything in a request.
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    pub actor: String,
    pub kind: ActorKind,
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub uid: u32,
    pub pid: i32,
}

impl Caller {
    pub fn project(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::Agent { project, .. } => Some(project),
            Endpoint::Host => None,
        }
    }

    pub fn actor_request(&self) -> ActorRequest {
        match self.project().and_then(|p| ProjectName::parse(p).ok()) {
            Some(p) => ActorRequest::Agent(p),
            None => ActorRequest::Derived,
        }
    }

    pub fn is_agent(&self) -> bool {
        self.kind == ActorKind::Agent
    }
}

/// A token bucket.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            at: std::time::Instant::now(),
        }
    }

    /// How long until `n` tokens are there again.
    pub fn wait_for(&self, n: f64) -> std::time::Duration {
        if self.rate <= 0.0 {
            return std::time::Duration::from_millis(50);
        }
        std::time::Duration::from_secs_f64(((n - self.tokens).max(0.0) / self.rate).min(1.0))
    }

    /// Take `n` tokens if there are enough.
    pub fn take(&mut self, n: f64) -> bool {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// Counters shown by `daemon.status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicUsize,
    pub requests: AtomicU64,
    pub refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub inflight: AtomicUsize,
}

/// Everything the connection threads, the scheduler and the methods share.
#[derive(Debug)]
pub struct Core {
    pub cfg: Config,
    pub started_at: String,
    pub clock: Clock,
    pub host_identity: Identity,
    /// The handle the committer writes with (its own actor is the human the daemon runs for).
    pub writer: Arc<State>,
    readers: Vec<State>,
    next_reader: AtomicUsize,
    pub committer: Committer,
    pub hub: Arc<Hub>,
    pub snapshot: RwLock<Snapshot>,
    /// Set when the daemon stops: children are cancelled, new work refused.
    pub cancel: Cancel,
    pub stopping: AtomicBool,
    pub counters: Counters,
    /// Per-sandbox rate limits.
    pub agent_buckets: Mutex<std::collections::HashMap<String, Bucket>>,
    /// Open connections per sandbox.
    pub agent_connections: Mutex<std::collections::HashMap<String, usize>>,
    /// Requests the scheduler thread should handle (`schedule.tick`, reloads, stop).
    pub control: Mutex<Option<std::sync::mpsc::Sender<crate::daemon::Control>>>,
    /// Incus/backup reachability from the last reconcile, for the manifest's `health`.
    pub health: Mutex<Value>,
}

impl Core {
    /// Open the state handles and start the committer. The event log directory is created.
    pub fn new(cfg: Config, hub: Arc<Hub>) -> Result<Self, RpcError> {
        let clock = Clock::system();
        let open = |actor: ActorRequest| {
            State::open_with(
                &cfg.paths,
                &cfg.env,
                clock.clone(),
                StateOptions {
                    actor,
                    ..StateOptions::default()
                },
            )
            .map_err(|e| crate::rpc::from_state(&e))
        };
        let writer = Arc::new(open(ActorRequest::Derived)?);
        let host_identity = writer.identity().clone();
        let readers = (0..2)
            .map(|_| open(ActorRequest::Derived))
            .collect::<Result<Vec<_>, _>>()?;
        let committer = Committer::start(writer.clone());
        let core = Self {
            started_at: clock.now_rfc3339(),
            clock,
            host_identity,
            writer,
            readers,
            next_reader: AtomicUsize::new(0),
            committer,
            hub,
            snapshot: RwLock::new(Snapshot::default()),
            cancel: Cancel::new(),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            agent_buckets: Mutex::new(Default::default()),
            agent_connections: Mutex::new(Default::default()),
            control: Mutex::new(None),
            health: Mutex::new(serde_json::json!({"status": "starting"})),
            cfg,
        };
        core.reload();
        Ok(core)
    }

    /// A state handle for reads (round robin, so two slow queries do not queue behind each other).
    pub fn reader(&self) -> &State {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        &self.readers[i]
    }

    /// Re-read the registry. A broken file keeps the previous snapshot and reports the error.
    pub fn reload(&self) -> Option<String> {
        let at = self.clock.now_rfc3339();
        let loaded = RegistryFile::load(&self.cfg.paths.config_file)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                if f.exists() {
                    repoman_state::schemas::validate_registry_file(&self.cfg.paths.config_file)
                        .map_err(|e| e.to_string())?;
                }
                Ok(f.registry)
            });
        let mut snap = match self.snapshot.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match loaded {
            Ok(registry) => {
                snap.settings = Some(Settings::resolve(&registry, &self.cfg.env));
                snap.registry = registry;
                snap.error = None;
                snap.loaded_at = at;
                None
            }
            Err(e) => {
                snap.error = Some(e.clone());
                Some(e)
            }
        }
    }

    pub fn registry(&self) -> Registry {
        self.snapshot
            .read()
            .map(|s| s.registry.clone())
            .unwrap_or_default()
    }

    /// The caller on the host socket: the daemon's own user.
    pub fn host_caller(&self, uid: u32, pid: i32) -> Caller {
        Caller {
            actor: self.host_identity.actor.clone(),
            kind: self.host_identity.actor_kind,
            endpoint: Endpoint::Host,
            uid,
            pid,
        }
    }

    /// An agent caller on a sandbox's endpoint.
    pub fn agent_caller(&self, project: &str, cgroup: String, uid: u32, pid: i32) -> Caller {
        Caller {
            actor: format!("agent:{project}"),
            kind: ActorKind::Agent,
            endpoint: Endpoint::Agent {
                project: project.to_owned(),
                cgroup,
            },
            uid,
            pid,
        }
    }

    /// Append an event as `who` through the group commit (durable when this returns).
    pub fn record(
        &self,
        who: ActorRequest,
        ev: NewEvent,
    ) -> Result<repoman_state::Event, RpcError> {
        self.committer.append(who, ev)
    }

    /// Count a new connection from `project`'s sandbox; `false` when it has too many open.
    pub fn open_agent_connection(&self, project: &str) -> bool {
        let Ok(mut m) = self.agent_connections.lock() else {
            return false;
        };
        let n = m.entry(project.to_owned()).or_insert(0);
        if *n >= self.cfg.limits.max_agent_connections {
            return false;
        }
        *n += 1;
        true
    }

    pub fn close_agent_connection(&self, project: &str) {
        if let Ok(mut m) = self.agent_connections.lock()
            && let Some(n) = m.get_mut(project)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Record as the daemon itself.
    pub fn record_daemon(&self, ev: NewEvent) -> Result<repoman_state::Event, RpcError> {
        self.committer.append(ActorRequest::Daemon, ev)
    }

    /// Refuse new work once stopping.
    pub fn check_running(&self) -> Result<(), RpcError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(RpcError::domain(
                ErrorKind::Interrupted,
                "the daemon is stopping",
                Some("retry once it runs again (`repoman daemon status`)".into()),
            ));
        }
        Ok(())
    }
}
