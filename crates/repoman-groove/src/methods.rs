//! The methods of the hard groove: one table ([`METHODS`]) that gives each method's parameter and
//! result schemas (served by `rpc.discover` as an OpenRPC document, printed by
//! `repoman groove schema`) and who may call it; and [`dispatch`], which runs a call.
//!
//! Reads are answered in-process from the state crate; the mutations and the reads whose
//! orchestration lives in the CLI run the CLI ([`crate::runner`]). Every agent call passes the
//! built-in agent policy ([`crate::agent::check`]) first and is recorded.

use std::sync::atomic::Ordering;

use repoman_core::ErrorKind;
use repoman_state::{EventQuery, NewEvent};
use serde_json::{Map, Value, json};

use crate::core::{Caller, Core};
use crate::rpc::{RpcError, named};
use crate::runner::{RunAs, run_check, run_cli};

/// The protocol version in the manifest and `rpc.discover`.
pub const GROOVE_VERSION: &str = "1.0";

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Host socket and agents (agents through [`crate::agent::check`]).
    Both,
    /// Host socket only.
    Host,
}

/// One method.
#[derive(Debug)]
pub struct Method {
    pub name: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub params: fn() -> Value,
    pub result: fn() -> Value,
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn event_ref() -> Value {
    json!({"$ref": "#/components/schemas/Event"})
}

fn strings_or_string() -> Value {
    json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
}

fn cli_output() -> Value {
    json!({"description": "the `--json` output of the CLI command", "type": ["object", "array"]})
}

fn projects_param() -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": "registered projects (default: all; an agent: its own)"})
}

/// Every method, in the order `rpc.discover` lists them.
pub const METHODS: &[Method] = &[
    Method {
        name: "whoami",
        summary: "The actor repoman records for this connection: human:USER@HOST on the host socket, agent:PROJECT on a sandbox's",
        access: Access::Both,
        params: || obj(json!({}), &[]),
        result: || {
            obj(
                json!({
                    "actor": {"type": "string", "pattern": "^(human|agent):"},
                    "kind": {"enum": ["human", "agent", "ci", "daemon"]},
                    "endpoint": {"enum": ["host", "agent"]},
                    "project": {"type": "string"},
                    "cgroup": {"type": "string"},
                    "uid": {"type": "integer"},
                    "pid": {"type": "integer"}
                }),
                &["actor", "kind", "endpoint", "uid", "pid"],
            )
        },
    },
    Method {
        name: "rpc.discover",
        summary: "This OpenRPC document",
        access: Access::Both,
        params: || obj(json!({}), &[]),
        result: || json!({"type": "object", "required": ["openrpc", "info", "methods"]}),
    },
    Method {
        name: "groove.manifest",
        summary: "The Groove manifest: groove_version, service_id, capabilities, consumes, health",
        access: Access::Both,
        params: || obj(json!({}), &[]),
        result: manifest_schema,
    },
    Method {
        name: "log.head",
        summary: "The last committed event's seq and hash",
        access: Access::Both,
        params: || obj(json!({}), &[]),
        result: || {
            obj(
                json!({"seq": {"type": "integer", "minimum": 0}, "hash": {"type": "string"}}),
                &["seq", "hash"],
            )
        },
    },
    Method {
        name: "log.query",
        summary: "Recorded events, oldest first (as `repoman log --json`)",
        access: Access::Both,
        params: || {
            obj(
                json!({
                    "object": {"type": "string", "description": "an object id; a bare name means project:NAME"},
                    "project": {"type": "string", "description": "events about project:P, sandbox:P and backup:P"},
                    "type": {"type": "string", "description": "exact, or a prefix ending in *"},
                    "actor": {"type": "string", "description": "actor, actor kind, or prefix ending in *"},
                    "since": {"type": "string", "description": "RFC 3339 UTC"},
                    "after_seq": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 10000}
                }),
                &[],
            )
        },
        result: || {
            obj(
                json!({"events": {"type": "array", "items": event_ref()}, "head": {"type": "integer"}}),
                &["events", "head"],
            )
        },
    },
    Method {
        name: "explain",
        summary: "The state-integrity questions about one object (as `repoman explain --json`)",
        access: Access::Both,
        params: || obj(json!({"object": {"type": "string"}}), &["object"]),
        result: || json!({"type": "object", "required": ["object", "known", "sections"]}),
    },
    Method {
        name: "list",
        summary: "Projects and sandboxes: state, IPv4, repo, image, last sync, drift (`repoman list --json`)",
        access: Access::Host,
        params: || obj(json!({}), &[]),
        result: cli_output,
    },
    Method {
        name: "status",
        summary: "Sandbox health: mounts, drift, restrictions, backup root (`repoman status --json`; problems are in the result)",
        access: Access::Both,
        params: || obj(json!({"project": {"type": "string"}}), &[]),
        result: cli_output,
    },
    Method {
        name: "repair",
        summary: "Repair drift (`repoman status --repair --yes --json`): recreate missing sandboxes, adopt orphans, re-apply config; each repair through the policy gate",
        access: Access::Host,
        params: || {
            obj(
                json!({"project": {"type": "string"}, "dry_run": {"type": "boolean"}}),
                &[],
            )
        },
        result: cli_output,
    },
    Method {
        name: "verify.status",
        summary: "Each project's last backup sync and last verify, from the log",
        access: Access::Both,
        params: || obj(json!({"project": {"type": "string"}}), &[]),
        result: || {
            let rec = |extra: Value| {
                let mut props = json!({"seq": {"type": "integer"}, "at": {"type": "string"}});
                if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
                    p.extend(e.clone());
                }
                json!({"oneOf": [{"type": "null"}, {"type": "object", "properties": props, "required": ["seq", "at"]}]})
            };
            obj(
                json!({"projects": {"type": "array", "items": obj(json!({
                    "project": {"type": "string"},
                    "last_sync": rec(json!({"root": {"type": ["string", "null"]}})),
                    "last_verify": rec(json!({"clean": {"type": ["boolean", "null"]}, "mode": {}}))
                }), &["project", "last_sync", "last_verify"])}}),
                &["projects"],
            )
        },
    },
    Method {
        name: "tools.status",
        summary: "Declared vs installed tools of a project (`repoman tools status --json`)",
        access: Access::Both,
        params: || obj(json!({"project": {"type": "string"}}), &[]),
        result: cli_output,
    },
    Method {
        name: "realm.status",
        summary: "Realm status (`repoman realm status --json`), run in `dir`",
        access: Access::Host,
        params: || {
            obj(
                json!({"dir": {"type": "string", "description": "a realm member's working copy"}}),
                &["dir"],
            )
        },
        result: cli_output,
    },
    Method {
        name: "subscribe",
        summary: "Stream events as they are appended (notifications `groove.event`; `groove.dropped` ends a subscription that fell `buffer` events behind)",
        access: Access::Both,
        params: || {
            obj(
                json!({
                    "from_seq": {"type": "integer", "minimum": 1, "description": "first seq to send (default: the next event)"},
                    "types": strings_or_string(),
                    "objects": strings_or_string(),
                    "actors": strings_or_string(),
                    "buffer": {"type": "integer", "minimum": 1},
                    "project": {"type": "string"}
                }),
                &[],
            )
        },
        result: || {
            obj(
                json!({"subscription": {"type": "integer"}, "from_seq": {"type": "integer"}, "head": {"type": "integer"}, "buffer": {"type": "integer"}}),
                &["subscription", "from_seq", "head", "buffer"],
            )
        },
    },
    Method {
        name: "event.append",
        summary: "Append an event, answered once durable (group commit). Host: `note.*` and `ext.*` types; agents: `agent.*` about their project",
        access: Access::Both,
        params: || {
            obj(
                json!({"type": {"type": "string"}, "object": {"type": "string"}, "data": {"type": "object"}}),
                &["type"],
            )
        },
        result: || {
            obj(
                json!({"seq": {"type": "integer"}, "id": {"type": "string"}, "at": {"type": "string"}, "hash": {"type": "string"}, "actor": {"type": "string"}}),
                &["seq", "id", "at", "hash", "actor"],
            )
        },
    },
    Method {
        name: "sync",
        summary: "Mirror projects to the backup share (`repoman sync --json`)",
        access: Access::Both,
        params: || {
            obj(
                json!({"projects": projects_param(), "dry_run": {"type": "boolean"}}),
                &[],
            )
        },
        result: cli_output,
    },
    Method {
        name: "verify",
        summary: "Compare backup copies with their manifests (`repoman verify --json`; differences are in the result)",
        access: Access::Both,
        params: || {
            obj(
                json!({"projects": projects_param(), "full": {"type": "boolean"}}),
                &[],
            )
        },
        result: cli_output,
    },
    Method {
        name: "tools.pin",
        summary: "Pin a tool version in a project's manifest (`repoman tools pin --json`)",
        access: Access::Host,
        params: || {
            obj(
                json!({"tool": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}, "minItems": 1}, "project": {"type": "string"}, "dry_run": {"type": "boolean"}}),
                &["tool", "versions", "project"],
            )
        },
        result: cli_output,
    },
    Method {
        name: "schedule.list",
        summary: "Scheduled jobs and when they run next",
        access: Access::Host,
        params: || obj(json!({}), &[]),
        result: || {
            obj(
                json!({"now": {"type": "string"}, "pinned_clock": {"type": "boolean"}, "jobs": {"type": "array", "items": {"type": "object", "required": ["name", "kind", "every", "jitter", "next", "failures"]}}}),
                &["now", "jobs", "pinned_clock"],
            )
        },
    },
    Method {
        name: "schedule.tick",
        summary: "Run the jobs that are due now, and return what ran",
        access: Access::Host,
        params: || obj(json!({}), &[]),
        result: || {
            obj(
                json!({"now": {"type": "string"}, "ran": {"type": "array", "items": {"type": "object", "required": ["job", "outcome"]}}}),
                &["now", "ran"],
            )
        },
    },
    Method {
        name: "daemon.status",
        summary: "The daemon: pid, version, uptime, connections, subscribers, commit statistics",
        access: Access::Host,
        params: || obj(json!({}), &[]),
        result: || json!({"type": "object", "required": ["pid", "version", "started_at", "socket", "head", "subscribers", "connections", "commit"]}),
    },
    Method {
        name: "daemon.reload",
        summary: "Re-read repoman.toml (as SIGHUP does)",
        access: Access::Host,
        params: || obj(json!({}), &[]),
        result: || {
            obj(
                json!({"reloaded": {"type": "boolean"}, "error": {"type": ["string", "null"]}}),
                &["reloaded"],
            )
        },
    },
    Method {
        name: "daemon.stop",
        summary: "Stop the daemon cleanly (as SIGTERM does)",
        access: Access::Host,
        params: || obj(json!({}), &[]),
        result: || obj(json!({"stopping": {"const": true}}), &["stopping"]),
    },
];

fn manifest_schema() -> Value {
    obj(
        json!({
            "groove_version": {"type": "string"},
            "service_id": {"type": "string"},
            "name": {"const": "repoman"},
            "version": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string"}},
            "methods": {"type": "array", "items": {"type": "string"}},
            "notifications": {"type": "array", "items": {"type": "string"}},
            "consumes": {"type": "array", "items": {"type": "object", "required": ["kind", "what"]}},
            "socket": {"type": "string"},
            "health": {"type": "object", "required": ["status"]}
        }),
        &[
            "groove_version",
            "service_id",
            "name",
            "version",
            "capabilities",
            "methods",
            "consumes",
            "health",
        ],
    )
}

/// Look a method up.
pub fn method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// The OpenRPC document of every method.
pub fn openrpc(version: &str) -> Value {
    let event = repoman_state::schemas::get(repoman_state::event::EVENT_SCHEMA_ID)
        .map(|s| s.json)
        .unwrap_or_else(|| json!({"type": "object"}));
    let methods: Vec<Value> = METHODS
        .iter()
        .map(|m| {
            let params = (m.params)();
            let props = params["properties"].as_object().cloned().unwrap_or_default();
            let required: Vec<&str> = params["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            json!({
                "name": m.name,
                "summary": m.summary,
                "paramStructure": "by-name",
                "params": props.iter().map(|(k, s)| json!({"name": k, "required": required.contains(&k.as_str()), "schema": s})).collect::<Vec<_>>(),
                "result": {"name": "result", "schema": (m.result)()},
                "x-agents": m.access == Access::Both,
            })
        })
        .collect();
    json!({
        "openrpc": "1.2.6",
        "info": {"title": "repoman Groove", "version": version, "x-groove-version": GROOVE_VERSION,
                 "description": "JSON-RPC 2.0, one JSON message per line over a unix socket. Errors carry data.kind (failed, usage, blocked, unavailable, interrupted) and data.hint."},
        "methods": methods,
        "components": {"schemas": {"Event": event}},
        "x-notifications": [
            {"name": "groove.event", "params": {"subscription": "integer", "seq": "integer", "event": "Event"}},
            {"name": "groove.dropped", "params": {"subscription": "integer", "resume_from": "integer", "reason": "string"}}
        ],
        "x-error-codes": {
            "-32700": "parse error", "-32600": "invalid request", "-32601": "method not found",
            "-32602": "invalid params", "-32603": "internal error",
            "-32001": "failed", "-32002": "usage", "-32003": "blocked (policy)", "-32004": "unavailable",
            "-32005": "interrupted", "-32010": "request too large", "-32029": "rate limited"
        }
    })
}

/// The Groove manifest.
pub fn manifest(core: &Core) -> Value {
    let reg = core.registry();
    let host = repoman_core::identity::host_name();
    let service = match &reg.estate_id {
        Some(id) => format!("repoman:{id}@{host}"),
        None => format!("repoman:{}@{host}", core.host_identity.device),
    };
    let mut health = core
        .health
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| json!({}));
    if let Some(h) = health.as_object_mut() {
        h.insert("head".into(), json!(core.hub.published()));
        h.insert("subscribers".into(), json!(core.hub.subscriber_count()));
        h.insert("started_at".into(), json!(core.started_at));
        h.entry("status").or_insert(json!("ok"));
    }
    json!({
        "groove_version": GROOVE_VERSION,
        "service_id": service,
        "name": "repoman",
        "version": core.cfg.version,
        "capabilities": ["hard-groove", "soft-groove", "batch", "group-commit", "schedules", "agent-endpoints", "openrpc"],
        "methods": METHODS.iter().map(|m| m.name).collect::<Vec<_>>(),
        "notifications": ["groove.event", "groove.dropped"],
        "consumes": [
            {"kind": "event-log", "what": "repoman.event/v1", "path": core.cfg.paths.state_dir.join("events").display().to_string()},
            {"kind": "registry", "what": "repoman.toml/v1", "path": core.cfg.paths.config_file.display().to_string()},
            {"kind": "incus", "what": "Incus REST API /1.0 over its unix socket"},
            {"kind": "program", "what": "rsync"},
            {"kind": "program", "what": "repoman", "path": core.cfg.exe.display().to_string()}
        ],
        "socket": core.cfg.socket_path().display().to_string(),
        "health": health,
    })
}

fn str_param<'a>(p: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, RpcError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RpcError::invalid_params(format!(
            "`{key}` must be a string"
        ))),
    }
}

fn u64_param(p: &Map<String, Value>, key: &str) -> Result<Option<u64>, RpcError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            RpcError::invalid_params(format!("`{key}` must be a non-negative integer"))
        }),
    }
}

fn bool_param(p: &Map<String, Value>, key: &str) -> Result<bool, RpcError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RpcError::invalid_params(format!(
            "`{key}` must be a boolean"
        ))),
    }
}

fn strings_param(p: &Map<String, Value>, key: &str) -> Result<Vec<String>, RpcError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    RpcError::invalid_params(format!("`{key}` must be a list of strings"))
                })
            })
            .collect(),
        Some(_) => Err(RpcError::invalid_params(format!(
            "`{key}` must be a list of strings"
        ))),
    }
}

/// Reject unknown parameters (the schemas say `additionalProperties: false`).
fn known_params(m: &Method, p: &Map<String, Value>) -> Result<(), RpcError> {
    let schema = (m.params)();
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(k) = p.keys().find(|k| !props.contains_key(*k)) {
        return Err(RpcError::invalid_params(format!(
            "`{}` takes no parameter `{k}` (it takes: {})",
            m.name,
            props.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    for req in schema["required"].as_array().into_iter().flatten() {
        if let Some(r) = req.as_str()
            && !p.contains_key(r)
        {
            return Err(RpcError::invalid_params(format!(
                "`{}` needs the parameter `{r}`",
                m.name
            )));
        }
    }
    Ok(())
}

fn state_err(e: repoman_state::StateError) -> RpcError {
    crate::rpc::from_state(&e)
}

/// Run one call (not `subscribe`, which the connection handles). Agents must have passed the
/// agent policy already; `params` are the checked ones.
pub fn dispatch(
    core: &Core,
    caller: &Caller,
    name: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let Some(m) = method(name) else {
        return Err(
            RpcError::new(crate::rpc::METHOD_NOT_FOUND, format!("no method `{name}`"))
                .with_data(json!({"kind": "usage", "hint": "`rpc.discover` lists the methods"})),
        );
    };
    if m.access == Access::Host && caller.is_agent() {
        return Err(RpcError::blocked(
            format!("`{name}` is not open to agents"),
            None,
        ));
    }
    let p = named(params)?;
    known_params(m, p)?;
    match name {
        "whoami" => Ok(serde_json::to_value(caller).unwrap_or_default()),
        "rpc.discover" => Ok(openrpc(&core.cfg.version)),
        "groove.manifest" => Ok(manifest(core)),
        "log.head" => {
            let h = core.reader().head().map_err(state_err)?;
            Ok(json!({"seq": h.seq, "hash": h.hash}))
        }
        "log.query" => log_query(core, p),
        "explain" => {
            let object = str_param(p, "object")?.unwrap_or_default();
            let ex = repoman_state::explain::explain(core.reader(), object).map_err(state_err)?;
            Ok(serde_json::to_value(ex).unwrap_or_default())
        }
        "verify.status" => verify_status(core, str_param(p, "project")?),
        "list" => run_cli(core, &RunAs::of(caller), &["list".to_owned()]),
        "status" | "repair" => {
            let mut args = vec!["status".to_owned()];
            if let Some(proj) = str_param(p, "project")? {
                if proj.starts_with('-') {
                    return Err(RpcError::invalid_params(format!(
                        "{proj:?} is not a project name"
                    )));
                }
                args.push(proj.to_owned());
            }
            if name == "repair" {
                args.extend(["--repair".to_owned(), "--yes".to_owned()]);
                if bool_param(p, "dry_run")? {
                    args.push("--dry-run".into());
                }
            }
            // Problems found (or left) are an answer: the result lists them.
            run_check(core, &RunAs::of(caller), &args)
        }
        "tools.status" => {
            let mut args = vec!["tools".to_owned(), "status".to_owned()];
            match str_param(p, "project")? {
                Some(proj) => args.push(proj.to_owned()),
                None => args.push("--all".to_owned()),
            }
            run_check(core, &RunAs::of(caller), &args)
        }
        "realm.status" => {
            let dir = str_param(p, "dir")?.unwrap_or_default();
            // `realm status` works on the current directory's realm: run it there.
            let args = ["realm".to_owned(), "status".to_owned()];
            run_cli_in(core, caller, &args, dir)
        }
        "event.append" => event_append(core, caller, p),
        "sync" | "verify" => {
            let mut args = vec![name.to_owned()];
            let projects = strings_param(p, "projects")?;
            if projects.is_empty() {
                args.push("--all".into());
            }
            for proj in projects {
                if proj.starts_with('-') {
                    return Err(RpcError::invalid_params(format!(
                        "{proj:?} is not a project name"
                    )));
                }
                args.push(proj);
            }
            if name == "sync" && bool_param(p, "dry_run")? {
                args.push("--dry-run".into());
            }
            if name == "verify" && bool_param(p, "full")? {
                args.push("--full".into());
            }
            if name == "verify" {
                // Differences found are an answer (each project's report says which).
                return run_check(core, &RunAs::of(caller), &args);
            }
            run_cli(core, &RunAs::of(caller), &args)
        }
        "tools.pin" => {
            let tool = str_param(p, "tool")?.unwrap_or_default();
            let project = str_param(p, "project")?.unwrap_or_default();
            let versions = strings_param(p, "versions")?;
            if tool.starts_with('-')
                || project.starts_with('-')
                || versions.iter().any(|v| v.starts_with('-'))
            {
                return Err(RpcError::invalid_params(
                    "tool, versions and project may not start with `-`",
                ));
            }
            let mut args = vec!["tools".to_owned(), "pin".to_owned(), tool.to_owned()];
            args.extend(versions);
            args.extend(["--project".to_owned(), project.to_owned()]);
            if bool_param(p, "dry_run")? {
                args.push("--dry-run".into());
            }
            run_cli(core, &RunAs::of(caller), &args)
        }
        "schedule.list" | "schedule.tick" | "daemon.reload" | "daemon.stop" => {
            crate::daemon::control_call(core, name)
        }
        "daemon.status" => Ok(daemon_status(core)),
        other => Err(RpcError::new(
            crate::rpc::METHOD_NOT_FOUND,
            format!("no method `{other}`"),
        )),
    }
}

fn run_cli_in(core: &Core, caller: &Caller, args: &[String], dir: &str) -> Result<Value, RpcError> {
    let path = std::path::Path::new(dir);
    if !path.is_absolute() || !path.is_dir() {
        return Err(RpcError::invalid_params(format!(
            "`dir` must be an existing absolute directory, got {dir:?}"
        )));
    }
    core.check_running()?;
    let mut cmd = repoman_core::process::Cmd::new(&core.cfg.exe)
        .args(["--json", "--no-input", "--no-progress", "--color", "never"])
        .args(args)
        .current_dir(path)
        .cancel(&core.cancel);
    if let RunAs::Agent(p) = RunAs::of(caller) {
        cmd = cmd.env("REPOMAN_ACTOR", format!("agent:{p}"));
    }
    let out = cmd.output().map_err(|e| crate::rpc::from_process(&e))?;
    let v: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    match (out.status.code(), v) {
        (Some(0 | 1), Some(v)) => Ok(v),
        (code, v) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let msg = stderr
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("the command failed")
                .to_owned();
            let kind = match code {
                Some(2) => ErrorKind::Usage,
                Some(3) => ErrorKind::Blocked,
                Some(4) => ErrorKind::Unavailable,
                _ => ErrorKind::Failed,
            };
            let mut e = RpcError::domain(kind, msg, None);
            if let (Some(Value::Object(d)), Some(v)) = (e.data.as_mut(), v) {
                d.insert("output".into(), v);
            }
            Err(e)
        }
    }
}

fn log_query(core: &Core, p: &Map<String, Value>) -> Result<Value, RpcError> {
    let limit = u64_param(p, "limit")?.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return Err(RpcError::invalid_params(
            "`limit` must be between 1 and 10000",
        ));
    }
    let base = EventQuery {
        object: str_param(p, "object")?.map(repoman_state::explain::normalize_object),
        type_: str_param(p, "type")?.map(str::to_owned),
        actor: str_param(p, "actor")?.map(str::to_owned),
        since: str_param(p, "since")?.map(str::to_owned),
        after_seq: u64_param(p, "after_seq")?,
        limit: Some(limit),
    };
    let state = core.reader();
    let mut events = match str_param(p, "project")? {
        Some(project) if base.object.is_none() => {
            let mut all = Vec::new();
            for kind in ["project", "sandbox", "backup"] {
                let q = EventQuery {
                    object: Some(format!("{kind}:{project}")),
                    ..base.clone()
                };
                all.extend(state.events(&q).map_err(state_err)?);
            }
            all.sort_by_key(|e| e.seq);
            let n = all.len().saturating_sub(limit as usize);
            all.split_off(n)
        }
        _ => state.events(&base).map_err(state_err)?,
    };
    events.dedup_by_key(|e| e.seq);
    let head = state.head().map_err(state_err)?.seq;
    Ok(json!({"events": events, "head": head}))
}

fn verify_status(core: &Core, only: Option<&str>) -> Result<Value, RpcError> {
    let reg = core.registry();
    let state = core.reader();
    let mut out = Vec::new();
    for p in &reg.projects {
        let name = p.name.as_str();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let object = repoman_core::ObjectId::backup(name).to_string();
        let sync = state
            .last_event(&object, "backup.synced")
            .map_err(state_err)?;
        let verify = state
            .last_event(&object, "backup.verified")
            .map_err(state_err)?;
        out.push(json!({
            "project": name,
            "last_sync": sync.map(|e| json!({"seq": e.seq, "at": e.at, "root": e.data.get("root").cloned().unwrap_or(Value::Null)})),
            "last_verify": verify.map(|e| json!({"seq": e.seq, "at": e.at, "clean": e.data.get("clean").cloned().unwrap_or(Value::Null), "mode": e.data.get("mode").cloned().unwrap_or(Value::Null)})),
        }));
    }
    if let Some(o) = only
        && out.is_empty()
    {
        return Err(RpcError::domain(
            ErrorKind::Usage,
            format!("project `{o}` is not registered"),
            Some("`repoman list` shows the registered projects".into()),
        ));
    }
    Ok(json!({"projects": out}))
}

fn event_append(core: &Core, caller: &Caller, p: &Map<String, Value>) -> Result<Value, RpcError> {
    core.check_running()?;
    let ty = str_param(p, "type")?.unwrap_or_default().to_owned();
    if !(caller.is_agent() || ty.starts_with("note.") || ty.starts_with("ext.")) {
        return Err(RpcError::blocked(
            format!(
                "`event.append` records `note.*` and `ext.*` events; `{ty}` is written by repoman itself"
            ),
            Some("use a `note.` or `ext.` prefix for events of your own".into()),
        ));
    }
    let object = match str_param(p, "object")? {
        Some(o) => o.to_owned(),
        None => return Err(RpcError::invalid_params("`event.append` needs `object`")),
    };
    let data = match p.get("data") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(RpcError::invalid_params("`data` must be an object")),
    };
    let ev = core.record(caller.actor_request(), NewEvent::new(ty, object, data))?;
    Ok(json!({"seq": ev.seq, "id": ev.id, "at": ev.at, "hash": ev.hash, "actor": ev.actor}))
}

fn daemon_status(core: &Core) -> Value {
    let (batches, events) = core.committer.stats();
    let c = &core.counters;
    json!({
        "pid": std::process::id(),
        "version": core.cfg.version,
        "started_at": core.started_at,
        "socket": core.cfg.socket_path().display().to_string(),
        "head": core.hub.published(),
        "subscribers": core.hub.subscriber_count(),
        "delivered": core.hub.delivered.load(Ordering::Relaxed),
        "dropped_subscribers": core.hub.dropped_total.load(Ordering::Relaxed),
        "connections": c.connections.load(Ordering::Relaxed),
        "requests": c.requests.load(Ordering::Relaxed),
        "refused": c.refused.load(Ordering::Relaxed),
        "rate_limited": c.rate_limited.load(Ordering::Relaxed),
        "commit": {"batches": batches, "events": events},
        "registry_error": core.snapshot.read().ok().and_then(|s| s.error.clone()),
        "agents": crate::daemon::agent_endpoints(core),
        "resident_kib": resident_kib(),
    })
}

/// Resident memory of this process (`VmRSS`), for `daemon.status` and the benchmark.
pub fn resident_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_object_schemas_and_a_unique_name() {
        let mut names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
        for m in METHODS {
            assert_eq!((m.params)()["type"], "object", "{}", m.name);
            assert!((m.result)().is_object(), "{}", m.name);
        }
        let doc = openrpc("test");
        assert_eq!(doc["methods"].as_array().unwrap().len(), METHODS.len());
    }
}
