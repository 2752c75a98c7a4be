//! The daemon's lifecycle: one per user (a lock in the runtime dir), the host socket and the
//! agent endpoints, the tailer, the scheduler loop, signals, and a clean stop.
//!
//! Stop (SIGTERM, SIGINT, `daemon.stop`): the sockets are removed and nothing new is accepted;
//! CLI children get SIGTERM (the CLI's own clean-cancel path); requests in flight are waited
//! for; subscribers get `groove.dropped` with their resume point; the commit queue commits and
//! answers what it holds; `daemon.stopped` is recorded last. SIGHUP (`daemon.reload`) re-reads
//! `repoman.toml`: schedules and agent endpoints follow it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use repoman_core::fs::FileLock;
use repoman_core::{DomainError, ErrorKind, Paths};
use repoman_state::NewEvent;
use serde_json::{Value, json};

use crate::agent;
use crate::core::{self, Config, Core};
use crate::rpc::RpcError;
use crate::runner::{RunAs, run_cli};
use crate::schedule::{self, Job, JobKind};
use crate::stream::{Hub, Tailer};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("a repoman daemon is already running for this user (pid {pid}, lock {lock})")]
    AlreadyRunning { pid: String, lock: PathBuf },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

impl DomainError for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            DaemonError::AlreadyRunning { .. } => ErrorKind::Blocked,
            DaemonError::Io { .. } => ErrorKind::Unavailable,
            DaemonError::Setup(_) => ErrorKind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            DaemonError::AlreadyRunning { .. } => {
                Some("`repoman daemon status` shows it; `repoman daemon stop` stops it".into())
            }
            _ => None,
        }
    }
}

/// What the scheduler thread is asked to do.
#[derive(Debug)]
pub enum Control {
    Tick(Sender<Result<Value, RpcError>>),
    List(Sender<Result<Value, RpcError>>),
    Reload(Sender<Result<Value, RpcError>>),
    /// repoman.toml changed on disk: reload quietly (no `daemon.reloaded` event).
    Changed,
    Stop(Option<Sender<Result<Value, RpcError>>>),
}

/// Ask the scheduler thread (`schedule.*`, `daemon.reload`, `daemon.stop`).
pub fn control_call(core: &Core, name: &str) -> Result<Value, RpcError> {
    let tx = core
        .control
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .ok_or_else(|| RpcError::domain(ErrorKind::Interrupted, "the daemon is stopping", None))?;
    let (rtx, rrx) = mpsc::channel();
    let msg = match name {
        "schedule.tick" => Control::Tick(rtx),
        "schedule.list" => Control::List(rtx),
        "daemon.reload" => Control::Reload(rtx),
        _ => {
            let _ = tx.send(Control::Stop(None));
            return Ok(json!({"stopping": true}));
        }
    };
    tx.send(msg)
        .map_err(|_| RpcError::domain(ErrorKind::Interrupted, "the daemon is stopping", None))?;
    rrx.recv().unwrap_or_else(|_| {
        Err(RpcError::domain(
            ErrorKind::Interrupted,
            "the daemon is stopping",
            None,
        ))
    })
}

/// One listening socket.
#[derive(Debug)]
struct Listener {
    /// Shared so the accept loop can poll a snapshot without holding the list's lock (holding it
    /// across `poll` starved the scheduler thread, which must lock the list to open endpoints).
    sock: Arc<UnixListener>,
    path: PathBuf,
    /// `None`: the host socket; `Some(project)`: that sandbox's endpoint.
    project: Option<String>,
    expected_cgroup: String,
}

#[derive(Debug, Default)]
struct Listeners {
    list: Mutex<Vec<Listener>>,
}

/// The agent endpoints currently served, for `daemon.status`.
pub fn agent_endpoints(core: &Core) -> Value {
    let reg = core.registry();
    let names: Vec<String> = reg
        .projects
        .iter()
        .filter(|p| p.container)
        .map(|p| p.name.as_str().to_owned())
        .collect();
    json!(
        names
            .iter()
            .map(|n| {
                let dir = agent::agent_dir(&core.cfg.paths, n);
                json!({"project": n, "socket": dir.join(agent::AGENT_SOCKET).display().to_string(),
                       "listening": dir.join(agent::AGENT_SOCKET).exists()})
            })
            .collect::<Vec<_>>()
    )
}

fn bind(path: &Path, mode: u32) -> Result<UnixListener, DaemonError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| DaemonError::Io { what, path, source }
    };
    // The lock is held: a socket file left here is stale.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot remove the stale socket")(e)),
    }
    let l = UnixListener::bind(path).map_err(io("cannot listen on"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("cannot set the mode of"))?;
    l.set_nonblocking(true).map_err(io("cannot configure"))?;
    Ok(l)
}

/// Run the daemon until it is stopped. Blocks.
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let paths = cfg.paths.clone();
    paths
        .ensure_runtime_dir()
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    let lock_path = core::lock_path(&paths);
    let pid_path = paths.runtime_dir.join("daemon.pid");
    let lock = match FileLock::acquire(&lock_path, "the daemon lock", Some(Duration::ZERO), || {}) {
        Ok(l) => l,
        Err(_) => {
            let pid = std::fs::read_to_string(&pid_path).unwrap_or_else(|_| "?".into());
            return Err(DaemonError::AlreadyRunning {
                pid: pid.trim().to_owned(),
                lock: lock_path,
            });
        }
    };
    repoman_core::fs::write_atomic(
        &pid_path,
        format!("{}\n", std::process::id()).as_bytes(),
        Some(0o600),
    )
    .map_err(|e| DaemonError::Setup(e.to_string()))?;
    crate::register_schemas();

    let log = repoman_state::log::EventLog::new(paths.state_dir.join("events"));
    std::fs::create_dir_all(log.dir()).map_err(|source| DaemonError::Io {
        what: "cannot create the event log directory",
        path: log.dir().to_path_buf(),
        source,
    })?;
    let head = log.tail().map(|t| t.head.seq).unwrap_or(0);
    let hub = Arc::new(Hub::new(head));
    let tailer_stop = Arc::new(AtomicBool::new(false));
    let tailer = {
        let t = Tailer::new(log.clone(), hub.clone());
        let stop = tailer_stop.clone();
        std::thread::Builder::new()
            .name("groove-tail".into())
            .spawn(move || t.run(stop, Duration::from_millis(250)))
            .map_err(|e| DaemonError::Setup(e.to_string()))?
    };
    let core = Arc::new(Core::new(cfg, hub).map_err(|e| DaemonError::Setup(e.message))?);
    let (ctl_tx, ctl_rx) = mpsc::channel::<Control>();
    if let Ok(mut c) = core.control.lock() {
        *c = Some(ctl_tx.clone());
    }

    let listeners = Arc::new(Listeners::default());
    let host = bind(&core.cfg.socket_path(), 0o600)?;
    if let Ok(mut l) = listeners.list.lock() {
        l.push(Listener {
            sock: Arc::new(host),
            path: core.cfg.socket_path(),
            project: None,
            expected_cgroup: String::new(),
        });
    }
    let fresh = sync_agent_listeners(&core, &listeners);
    spawn_mount_refresh(&core, fresh);

    let started = core.record_daemon(NewEvent::new(
        "daemon.started",
        daemon_object(),
        json!({"pid": std::process::id(), "version": core.cfg.version, "socket": core.cfg.socket_path().display().to_string()}),
    ));
    if let Err(e) = started {
        tracing::warn!(error = %e, "could not record daemon.started");
    }
    write_manifest(&core);

    // The schedule exists before the first request is answered: a caller that moves a pinned
    // clock right after the daemon answers must not race the jobs' first due times.
    let mut sched = Scheduler::new(&core);
    let accept_stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let (core, listeners, stop) = (core.clone(), listeners.clone(), accept_stop.clone());
        std::thread::Builder::new()
            .name("groove-accept".into())
            .spawn(move || accept_loop(&core, &listeners, &stop))
            .map_err(|e| DaemonError::Setup(e.to_string()))?
    };
    let signals = spawn_signal_thread(ctl_tx.clone())?;

    scheduler_loop(&core, &listeners, &mut sched, &ctl_rx);

    // Stop.
    core.stopping.store(true, Ordering::SeqCst);
    accept_stop.store(true, Ordering::SeqCst);
    let _ = acceptor.join();
    if let Ok(mut l) = listeners.list.lock() {
        for lst in l.drain(..) {
            let _ = std::fs::remove_file(&lst.path);
        }
    }
    core.cancel.cancel();
    let deadline = Instant::now() + Duration::from_secs(60);
    while core.counters.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the tailer publish what was committed, then end the subscriptions with a resume point.
    std::thread::sleep(Duration::from_millis(50));
    core.hub.close_all();
    if let Ok(mut c) = core.control.lock() {
        *c = None;
    }
    core.committer.shutdown();
    let stopped = core.writer.append_batch_as(vec![(
        repoman_state::ActorRequest::Daemon,
        NewEvent::new(
            "daemon.stopped",
            daemon_object(),
            json!({"pid": std::process::id(), "reason": "stop requested"}),
        ),
    )]);
    if let Err(e) = stopped {
        tracing::warn!(error = %e, "could not record daemon.stopped");
    }
    tailer_stop.store(true, Ordering::SeqCst);
    let _ = tailer.join();
    signals.close();
    let _ = std::fs::remove_file(core::manifest_path(&paths));
    let _ = std::fs::remove_file(&pid_path);
    drop(lock);
    Ok(())
}

fn daemon_object() -> String {
    format!("daemon:{}", repoman_core::identity::host_name())
}

struct SignalHandle(signal_hook::iterator::Handle);

impl SignalHandle {
    fn close(self) {
        self.0.close();
    }
}

fn spawn_signal_thread(tx: Sender<Control>) -> Result<SignalHandle, DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| DaemonError::Setup(format!("cannot install signal handlers: {e}")))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("groove-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let msg = if sig == SIGHUP {
                    let (rtx, _rrx) = mpsc::channel();
                    Control::Reload(rtx)
                } else {
                    Control::Stop(None)
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    Ok(SignalHandle(handle))
}

/// Bind the endpoints of registered sandboxes that have none; close those of removed ones.
fn sync_agent_listeners(core: &Core, listeners: &Listeners) -> Vec<String> {
    let mut opened = Vec::new();
    if !core.cfg.agents {
        return opened;
    }
    let reg = core.registry();
    let incus_project = reg.incus_project().to_owned();
    let wanted: Vec<String> = reg
        .projects
        .iter()
        .filter(|p| p.container)
        .map(|p| p.name.as_str().to_owned())
        .collect();
    let Ok(mut list) = listeners.list.lock() else {
        return opened;
    };
    list.retain(|l| match &l.project {
        Some(p) if !wanted.contains(p) => {
            let _ = std::fs::remove_file(&l.path);
            false
        }
        _ => true,
    });
    for name in wanted {
        if list
            .iter()
            .any(|l| l.project.as_deref() == Some(name.as_str()))
        {
            continue;
        }
        let dir = match agent::ensure_agent_dir(&core.cfg.paths, &name) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(project = %name, error = %e, "cannot create the agent endpoint directory");
                continue;
            }
        };
        let path = dir.join(agent::AGENT_SOCKET);
        // 0666: any user of that sandbox may connect; the mount makes it that sandbox's alone.
        match bind(&path, 0o666) {
            Ok(sock) => {
                list.push(Listener {
                    sock: Arc::new(sock),
                    path,
                    project: Some(name.clone()),
                    expected_cgroup: crate::peer::expected_payload(&incus_project, &name),
                });
                opened.push(name);
            }
            Err(e) => tracing::warn!(project = %name, error = %e, "cannot open the agent endpoint"),
        }
    }
    opened
}

/// A running sandbox that started while its endpoint directory was missing (after a reboot
/// emptied the runtime dir, before any daemon ran) has no `/repoman` mount: the device is
/// `required=false` so that the sandbox could start at all. Re-adding the device mounts it into
/// the running sandbox. Off the main thread; with Incus away the mounts wait for a restart.
fn spawn_mount_refresh(core: &Arc<Core>, projects: Vec<String>) {
    if projects.is_empty() {
        return;
    }
    let core = core.clone();
    let _ = std::thread::Builder::new()
        .name("groove-mounts".into())
        .spawn(move || {
            let Ok(incus) = repoman_incus::Incus::connect(&core.cfg.env) else {
                return;
            };
            let scope = incus.project(core.registry().incus_project());
            for name in projects {
                let Ok(Some(inst)) = scope.find_instance(&name) else {
                    continue;
                };
                let Some(dev) = inst.devices.get(agent::AGENT_DEVICE).cloned() else {
                    continue;
                };
                if inst.status != "Running" {
                    continue;
                }
                let again = scope
                    .remove_device(&name, agent::AGENT_DEVICE)
                    .and_then(|()| scope.add_device(&name, agent::AGENT_DEVICE, dev));
                if let Err(e) = again {
                    tracing::warn!(project = %name, error = %e, "cannot refresh the agent mount");
                }
            }
        });
}

fn accept_loop(core: &Arc<Core>, listeners: &Listeners, stop: &AtomicBool) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let my_uid = rustix::process::getuid().as_raw();
    while !stop.load(Ordering::Relaxed) {
        // A snapshot of the listeners, taken and released at once: poll and accept never hold
        // the lock, so `sync_agent_listeners` (the scheduler thread) is never starved.
        let snapshot: Vec<(Arc<UnixListener>, Option<String>, String)> = {
            let Ok(list) = listeners.list.lock() else {
                return;
            };
            list.iter()
                .map(|l| {
                    (
                        Arc::clone(&l.sock),
                        l.project.clone(),
                        l.expected_cgroup.clone(),
                    )
                })
                .collect()
        };
        let accepted: Vec<(UnixStream, Option<String>, String)> = {
            let mut fds: Vec<PollFd> = snapshot
                .iter()
                .map(|(sock, _, _)| PollFd::new(sock.as_ref(), PollFlags::IN))
                .collect();
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            match poll(&mut fds, Some(&ts)) {
                Ok(n) if n > 0 => {}
                _ => continue,
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            let mut out = Vec::new();
            for ((sock, project, cgroup), r) in snapshot.iter().zip(ready) {
                if !r {
                    continue;
                }
                while let Ok((s, _)) = sock.accept() {
                    out.push((s, project.clone(), cgroup.clone()));
                }
            }
            out
        };
        for (s, project, expected) in accepted {
            let _ = s.set_nonblocking(false);
            if core.counters.connections.load(Ordering::Relaxed) >= core.cfg.limits.max_connections
            {
                continue; // dropped: over the connection limit
            }
            let cred = match crate::peer::peer_cred(s.as_fd()) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let caller = match &project {
                None => {
                    if cred.uid != my_uid {
                        // Only the daemon's own user (the socket is 0600; root could still try).
                        let e = RpcError::blocked(
                            format!(
                                "uid {} may not use this daemon (it serves uid {my_uid})",
                                cred.uid
                            ),
                            None,
                        );
                        let _ = (&s).write_all(
                            format!("{}\n", crate::rpc::failure(&Value::Null, &e)).as_bytes(),
                        );
                        continue;
                    }
                    core.host_caller(cred.uid, cred.pid)
                }
                Some(p) => {
                    match crate::peer::check_peer_cgroup(s.as_fd(), &expected) {
                        Ok(_) if !core.open_agent_connection(p) => {
                            let e = RpcError::new(
                            crate::rpc::RATE_LIMITED,
                            format!("too many open connections from sandbox {p} (at most {})", core.cfg.limits.max_agent_connections),
                        )
                        .with_data(json!({"kind": "unavailable", "hint": "close a connection and retry"}));
                            let _ = (&s).write_all(
                                format!("{}\n", crate::rpc::failure(&Value::Null, &e)).as_bytes(),
                            );
                            continue;
                        }
                        Ok(cg) => core.agent_caller(p, cg, cred.uid, cred.pid),
                        Err(why) => {
                            refuse_agent_connection(core, p, &why.to_string(), cred);
                            let e = RpcError::blocked(format!("connection refused: {why}"), None);
                            let _ = (&s).write_all(
                                format!("{}\n", crate::rpc::failure(&Value::Null, &e)).as_bytes(),
                            );
                            continue;
                        }
                    }
                }
            };
            let project = caller.project().map(str::to_owned);
            let core2 = core.clone();
            let spawned = std::thread::Builder::new()
                .name("groove-conn".into())
                .spawn(move || crate::server::serve(core2, s, caller));
            if spawned.is_err()
                && let Some(p) = project
            {
                core.close_agent_connection(&p);
            }
        }
    }
}

fn refuse_agent_connection(core: &Core, project: &str, why: &str, cred: crate::peer::PeerCred) {
    // Bounded by the sandbox's rate limit, so a flood of bad connections cannot flood the log.
    let ok = core
        .agent_buckets
        .lock()
        .map(|mut b| {
            b.entry(project.to_owned())
                .or_insert_with(|| {
                    crate::core::Bucket::new(
                        core.cfg.limits.agent_rate,
                        core.cfg.limits.agent_burst,
                    )
                })
                .take(1.0)
        })
        .unwrap_or(false);
    if ok {
        let _ = core.record_daemon(NewEvent::new(
            "agent.rejected",
            repoman_core::ObjectId::project(project).to_string(),
            json!({"reason": why, "pid": cred.pid, "uid": cred.uid}),
        ));
    }
}

fn write_manifest(core: &Core) {
    let path = core::manifest_path(&core.cfg.paths);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let body = serde_json::to_vec_pretty(&crate::methods::manifest(core)).unwrap_or_default();
    if let Err(e) = repoman_core::fs::write_atomic(&path, &body, Some(0o600)) {
        tracing::warn!(error = %e, "cannot write the groove manifest");
    }
}

/// When and how big repoman.toml was last written.
fn registry_stamp(core: &Core) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(&core.cfg.paths.config_file).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn scheduler_loop(
    core: &Arc<Core>,
    listeners: &Listeners,
    sched: &mut Scheduler,
    rx: &Receiver<Control>,
) {
    let pinned = core.cfg.clock.is_pinned();
    let mut stamp = registry_stamp(core);
    let mut next_tick = Instant::now() + core.cfg.tick_every;
    loop {
        // Wake every 2 s to notice an edited repoman.toml (`repoman new` registering a sandbox,
        // a hand edit): it is reloaded as on SIGHUP, so a new sandbox's endpoint opens by itself.
        let msg = match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if registry_stamp(core) != stamp {
                    Some(Control::Changed)
                } else {
                    if !pinned && Instant::now() >= next_tick {
                        sched.tick(core);
                        next_tick = Instant::now() + core.cfg.tick_every;
                    }
                    continue;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        };
        if matches!(msg, Some(Control::Reload(_) | Control::Changed)) {
            stamp = registry_stamp(core);
        }
        match msg {
            None => return,
            Some(Control::Tick(reply)) => {
                let _ = reply.send(Ok(sched.tick(core)));
            }
            Some(Control::List(reply)) => {
                let _ = reply.send(Ok(sched.list(core)));
            }
            Some(Control::Reload(reply)) => {
                let err = core.reload();
                sched.rebuild(core);
                let fresh = sync_agent_listeners(core, listeners);
                spawn_mount_refresh(core, fresh);
                write_manifest(core);
                let _ = core.record_daemon(NewEvent::new(
                    "daemon.reloaded",
                    daemon_object(),
                    json!({"projects": core.registry().projects.len(), "error": err}),
                ));
                let _ = reply.send(Ok(json!({"reloaded": err.is_none(), "error": err})));
            }
            Some(Control::Changed) => {
                core.reload();
                sched.rebuild(core);
                let fresh = sync_agent_listeners(core, listeners);
                spawn_mount_refresh(core, fresh);
            }
            Some(Control::Stop(reply)) => {
                if let Some(r) = reply {
                    let _ = r.send(Ok(json!({"stopping": true})));
                }
                return;
            }
        }
    }
}

/// The jobs and their timing.
#[derive(Debug)]
pub struct Scheduler {
    jobs: Vec<Job>,
    /// The last reconcile's findings, to record what changed.
    last_reconcile: Option<Value>,
}

fn parse_ts(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

impl Scheduler {
    fn new(core: &Core) -> Self {
        let mut s = Self {
            jobs: Vec::new(),
            last_reconcile: None,
        };
        s.rebuild(core);
        s
    }

    /// The last run of `job` recorded in the log (and, for syncs, the last `backup.synced`).
    fn last_run(core: &Core, job: &str, kind: &JobKind) -> Option<Timestamp> {
        let state = core.reader();
        let mut last = state
            .last_event(&format!("schedule:{job}"), "schedule.ran")
            .ok()
            .flatten()
            .and_then(|e| {
                e.data["finished_at"]
                    .as_str()
                    .and_then(parse_ts)
                    .or_else(|| parse_ts(&e.at))
            });
        if let JobKind::Sync { project } = kind
            && let Some(e) = state
                .last_event(
                    &repoman_core::ObjectId::backup(project).to_string(),
                    "backup.synced",
                )
                .ok()
                .flatten()
            && let Some(t) = parse_ts(&e.at)
        {
            last = Some(last.map_or(t, |l| l.max(t)));
        }
        last
    }

    fn rebuild(&mut self, core: &Core) {
        let now = core.cfg.clock.now();
        let reg = core.registry();
        let d = &reg.defaults;
        let default_every = d
            .sync_every
            .as_deref()
            .and_then(|s| schedule::parse_duration(s).ok());
        let default_jitter = d
            .sync_jitter
            .as_deref()
            .and_then(|s| schedule::parse_duration(s).ok());
        let mut wanted: Vec<(String, JobKind, Duration, Duration)> = Vec::new();
        for p in &reg.projects {
            if let Some(every) = p.sync_period(default_every) {
                let jitter = default_jitter.unwrap_or(every / 10).min(every);
                let name = p.name.as_str().to_owned();
                wanted.push((
                    format!("sync:{name}"),
                    JobKind::Sync { project: name },
                    every,
                    jitter,
                ));
            }
        }
        wanted.push((
            "reconcile".into(),
            JobKind::Reconcile,
            schedule::RECONCILE_EVERY,
            Duration::from_secs(60),
        ));
        wanted.push((
            "tool-scan".into(),
            JobKind::ToolScan,
            schedule::TOOL_SCAN_EVERY,
            Duration::from_secs(600),
        ));
        if let Some(only) = &core.cfg.jobs {
            wanted.retain(|(_, kind, _, _)| {
                let k = match kind {
                    JobKind::Sync { .. } => "sync",
                    JobKind::Reconcile => "reconcile",
                    JobKind::ToolScan => "tool-scan",
                };
                only.iter().any(|o| o == k)
            });
        }
        let old: BTreeMap<String, Job> = self.jobs.drain(..).map(|j| (j.name.clone(), j)).collect();
        for (name, kind, every, jitter) in wanted {
            let job = match old.get(&name) {
                Some(j) if j.every == every && j.jitter == jitter => j.clone(),
                _ => {
                    let last = Self::last_run(core, &name, &kind);
                    Job::new(name, kind, every, jitter, last, now)
                }
            };
            self.jobs.push(job);
        }
    }

    fn list(&self, core: &Core) -> Value {
        json!({
            "now": repoman_core::clock::format_rfc3339(core.cfg.clock.now()),
            "pinned_clock": core.cfg.clock.is_pinned(),
            "jobs": self.jobs.iter().map(|j| {
                let mut v = serde_json::to_value(j).unwrap_or_default();
                v["next"] = json!(repoman_core::clock::format_rfc3339(j.next));
                v["last"] = json!(j.last.map(repoman_core::clock::format_rfc3339));
                v
            }).collect::<Vec<_>>(),
        })
    }

    /// Run every due job once, record each run, and return what ran.
    fn tick(&mut self, core: &Core) -> Value {
        let now = core.cfg.clock.now();
        let mut ran = Vec::new();
        for i in 0..self.jobs.len() {
            if core.stopping.load(Ordering::Relaxed) || core.cancel.is_cancelled() {
                break;
            }
            if !self.jobs[i].is_due(now) {
                continue;
            }
            let due_at = self.jobs[i].next;
            let started = Instant::now();
            let kind = self.jobs[i].kind.clone();
            let result = match &kind {
                JobKind::Sync { project } => {
                    run_cli(core, &RunAs::Daemon, &["sync".into(), project.clone()])
                        .map(|v| json!({"sync": v}))
                }
                JobKind::ToolScan => {
                    run_cli(core, &RunAs::Daemon, &["tools".into(), "scan".into()])
                        .map(|_| json!({}))
                }
                JobKind::Reconcile => self.reconcile(core),
            };
            let finished = core.cfg.clock.now().max(now);
            let outcome_kind = result.as_ref().err().and_then(|e| {
                e.data
                    .as_ref()
                    .and_then(|d| d["kind"].as_str())
                    .and_then(|k| ErrorKind::ALL.into_iter().find(|x| x.as_str() == k))
                    .or(Some(ErrorKind::Failed))
            });
            if outcome_kind == Some(ErrorKind::Interrupted) {
                break; // stopping: not a run; it runs again after the restart
            }
            let job = &mut self.jobs[i];
            job.finished(finished, outcome_kind);
            let outcome = outcome_kind.map(|k| k.as_str()).unwrap_or("ok");
            let mut data = json!({
                "job": job.name,
                "kind": kind,
                "outcome": outcome,
                "due_at": repoman_core::clock::format_rfc3339(due_at),
                "finished_at": repoman_core::clock::format_rfc3339(finished),
                "next_at": repoman_core::clock::format_rfc3339(job.next),
                "failures": job.failures,
                "duration_ms": started.elapsed().as_millis() as u64,
            });
            if let Err(e) = &result {
                data["error"] = json!(e.message);
                if let Some(h) = e.data.as_ref().and_then(|d| d["hint"].as_str()) {
                    data["hint"] = json!(h);
                }
            }
            let _ = core.record_daemon(NewEvent::new(
                "schedule.ran",
                format!("schedule:{}", job.name),
                data.clone(),
            ));
            ran.push(data);
        }
        json!({"now": repoman_core::clock::format_rfc3339(now), "ran": ran})
    }

    /// Incus and backup reachability, recorded with what changed since the last reconcile.
    fn reconcile(&mut self, core: &Core) -> Result<Value, RpcError> {
        let reg = core.registry();
        let incus = match repoman_incus::Incus::connect(&core.cfg.env) {
            Ok(c) => json!({"reachable": true, "endpoint": c.endpoint().display().to_string()}),
            Err(e) => json!({"reachable": false, "error": e.to_string()}),
        };
        let settings = core.snapshot.read().ok().and_then(|s| s.settings.clone());
        let mut backup = json!({"configured": false});
        // The same mount guard as `sync` and `status`: the same verdict everywhere.
        if let Some(guard) = settings
            .as_ref()
            .and_then(repoman_backup::mount::MountGuard::from_settings)
        {
            let root = guard.root().display().to_string();
            backup = match guard.check() {
                Ok(_) => json!({"configured": true, "reachable": true, "root": root}),
                Err(e) => {
                    json!({"configured": true, "reachable": false, "root": root, "error": e.to_string()})
                }
            };
        }
        let needs_incus = reg.projects.iter().any(|p| p.container);
        let findings = json!({"incus": incus, "backup": backup, "needs_incus": needs_incus});
        let previous = self.last_reconcile.clone().or_else(|| {
            core.reader()
                .last_event("schedule:reconcile", "reconcile.ran")
                .ok()
                .flatten()
                .map(|e| e.data)
        });
        let mut changed = Vec::new();
        for part in ["incus", "backup"] {
            let now_ok = findings[part]["reachable"].as_bool();
            let was_ok = previous
                .as_ref()
                .and_then(|p| p[part]["reachable"].as_bool());
            if now_ok != was_ok && now_ok.is_some() {
                changed.push(format!(
                    "{part}: {}",
                    if now_ok == Some(true) {
                        "reachable"
                    } else {
                        "unreachable"
                    }
                ));
            }
        }
        let mut record = findings.clone();
        record["changed"] = json!(changed);
        core.record_daemon(NewEvent::new(
            "reconcile.ran",
            "schedule:reconcile",
            record.clone(),
        ))?;
        self.last_reconcile = Some(findings.clone());
        let degraded = (needs_incus && incus["reachable"] == json!(false))
            || backup["reachable"] == json!(false);
        if let Ok(mut h) = core.health.lock() {
            *h = json!({"status": if degraded { "degraded" } else { "ok" }, "incus": incus, "backup": backup,
                        "checked_at": repoman_core::clock::format_rfc3339(core.cfg.clock.now())});
        }
        write_manifest(core);
        if degraded {
            let what = if needs_incus && incus["reachable"] == json!(false) {
                "Incus"
            } else {
                "the backup share"
            };
            return Err(RpcError::domain(
                ErrorKind::Unavailable,
                format!("{what} is not reachable; retrying with backoff"),
                Some(format!("check {what}; the daemon retries by itself")),
            ));
        }
        Ok(record)
    }
}

/// The systemd user unit that runs the daemon.
pub fn systemd_unit(exe: &Path, paths: &Paths) -> String {
    format!(
        "# Written by `repoman daemon install`.\n\
         [Unit]\n\
         Description=repoman daemon (Groove protocol, scheduled syncs, agent endpoints)\n\
         Documentation=man:repoman-daemon(1)\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exe} daemon run\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=90\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         # The same directories as the CLI: {state}\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exe = exe.display(),
        state = paths.state_dir.display(),
    )
}

/// Where `install` writes the unit: `$XDG_CONFIG_HOME/systemd/user/repoman.service`.
pub fn unit_path(env: &repoman_core::Env) -> Option<PathBuf> {
    let base = env
        .get_path("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env.get_path("HOME").map(|h| h.join(".config")))?;
    Some(base.join("systemd").join("user").join("repoman.service"))
}

/// Whether a daemon holds the lock (without connecting).
pub fn lock_held(paths: &Paths) -> bool {
    let p = core::lock_path(paths);
    if !p.exists() {
        return false;
    }
    FileLock::acquire(&p, "the daemon lock", Some(Duration::ZERO), || {}).is_err()
}

/// The pid in the runtime dir, if a daemon wrote one.
pub fn pid(paths: &Paths) -> Option<i32> {
    std::fs::read_to_string(paths.runtime_dir.join("daemon.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_this_binary_and_reloads_with_hup() {
        let env = repoman_core::Env::from_pairs([("HOME", "/home/u")]);
        let paths = Paths::resolve(&env).unwrap();
        let u = systemd_unit(Path::new("/usr/bin/repoman"), &paths);
        assert!(u.contains("ExecStart=/usr/bin/repoman daemon run\n"));
        assert!(u.contains("ExecReload=/bin/kill -HUP $MAINPID"));
        assert_eq!(
            unit_path(&env).unwrap(),
            PathBuf::from("/home/u/.config/systemd/user/repoman.service")
        );
    }
}
