//! The agent's door: one endpoint per sandbox, and the built-in policy for what an agent may ask.
//!
//! **Endpoints.** Each sandbox gets a host directory `<runtime>/agents/<project>/` holding only
//! that project's socket, `groove.sock`; the sandbox mounts the directory (an Incus `disk` device,
//! `readonly=true`) at [`AGENT_MOUNT`]. The directory, not the socket file, is mounted, so the
//! socket the daemon re-creates on restart is the one the container sees. The identity of a
//! connection is *which listener accepted it* (only that container has that directory), checked
//! at accept time against the peer's cgroup ([`crate::peer`]); nothing in a request can change it.
//!
//! **Policy** ([`check`]): built in, not overridable by `[[policy.rule]]`s (those can only add
//! restrictions, in the CLI's gate, for the operations an agent may request). An agent may read
//! its own project's state (log, explain, backup and verify status, tools status), request a sync
//! or verify of its own project, subscribe to its own project's events and append `agent.*`
//! events about its project. Everything else is refused: other projects, removal, repair, trust,
//! policy changes, conflict or review resolution, daemon control. Every agent call, allowed or
//! refused, is recorded as an event with the agent as actor before it is answered.

use serde_json::{Map, Value, json};

use crate::stream::object_of_project;

pub use repoman_core::agent_door::{
    AGENT_DEVICE, AGENT_MOUNT, AGENT_SOCKET, agent_device, agent_dir, ensure_agent_dir,
};

/// Why the agent policy refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub reason: String,
}

fn refuse(rule: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        rule,
        reason: reason.into(),
    }
}

/// Event types the daemon writes about agents; an agent cannot append them itself.
const RESERVED: &[&str] = &["agent.called", "agent.throttled"];

/// Check `method` with `params` for the agent of `project`; on success, the params to run with
/// (scoped to the project where the agent left them open).
pub fn check(
    method: &str,
    params: &Map<String, Value>,
    project: &str,
) -> Result<Map<String, Value>, Refusal> {
    let mut p = params.clone();
    let own = |obj: &str| object_of_project(obj, project);
    let other = |what: &str| {
        refuse(
            "agent.own-project",
            format!("an agent may only {what} its own project ({project})"),
        )
    };
    let one_project = |p: &mut Map<String, Value>, key: &str, what: &str| -> Result<(), Refusal> {
        match p.get(key) {
            None | Some(Value::Null) => {
                p.insert(key.into(), json!(project));
                Ok(())
            }
            Some(Value::String(s)) if s == project => Ok(()),
            _ => Err(other(what)),
        }
    };
    let project_list = |p: &mut Map<String, Value>, what: &str| -> Result<(), Refusal> {
        match p.get("projects") {
            None | Some(Value::Null) => {
                p.insert("projects".into(), json!([project]));
                Ok(())
            }
            Some(Value::Array(a)) if a.len() == 1 && a[0] == json!(project) => Ok(()),
            _ => Err(other(what)),
        }
    };
    match method {
        "whoami" | "rpc.discover" | "groove.manifest" | "log.head" => Ok(p),
        "log.query" => {
            match p.get("object") {
                None | Some(Value::Null) => {
                    p.insert("project".into(), json!(project));
                }
                Some(Value::String(o)) if own(&repoman_state::explain::normalize_object(o)) => {}
                _ => return Err(other("read the events of")),
            }
            Ok(p)
        }
        "explain" => match p.get("object") {
            Some(Value::String(o)) if own(&repoman_state::explain::normalize_object(o)) => Ok(p),
            None => {
                p.insert(
                    "object".into(),
                    json!(repoman_core::ObjectId::project(project).to_string()),
                );
                Ok(p)
            }
            _ => Err(other("explain objects of")),
        },
        "verify.status" => {
            one_project(&mut p, "project", "read the backup status of")?;
            Ok(p)
        }
        "tools.status" => {
            one_project(&mut p, "project", "read the tools of")?;
            Ok(p)
        }
        "subscribe" => {
            p.insert("project".into(), json!(project));
            Ok(p)
        }
        "event.append" => {
            let ty = p.get("type").and_then(Value::as_str).unwrap_or_default();
            if !ty.starts_with("agent.") || RESERVED.contains(&ty) {
                return Err(refuse(
                    "agent.events",
                    format!(
                        "an agent may only append its own `agent.*` events (e.g. agent.note), not `{ty}`"
                    ),
                ));
            }
            match p.get("object") {
                None | Some(Value::Null) => {
                    p.insert(
                        "object".into(),
                        json!(repoman_core::ObjectId::project(project).to_string()),
                    );
                }
                Some(Value::String(o)) if own(o) => {}
                _ => return Err(other("append events about")),
            }
            Ok(p)
        }
        "status" => {
            one_project(&mut p, "project", "see the status of")?;
            Ok(p)
        }
        "sync" => {
            project_list(&mut p, "request a sync of")?;
            Ok(p)
        }
        "verify" => {
            project_list(&mut p, "request a verify of")?;
            Ok(p)
        }
        m if m.contains("remove") || m.contains("destroy") => Err(refuse(
            "agent.no-remove",
            "an agent may not remove anything",
        )),
        m if m.contains("repair") => Err(refuse("agent.no-repair", "an agent may not repair")),
        m if m.contains("trust") => Err(refuse(
            "agent.no-trust",
            "an agent may not trust configuration",
        )),
        m if m.starts_with("policy") || m.contains("rule") => {
            Err(refuse("agent.no-policy", "an agent may not change policy"))
        }
        m if m.contains("resolve") || m.contains("review") || m.starts_with("conflicts") => {
            Err(refuse(
                "agent.no-review",
                "an agent may not resolve conflicts or anything waiting for review",
            ))
        }
        m => Err(refuse(
            "agent.not-allowed",
            format!("`{m}` is not open to agents"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn own_project_reads_and_requests_are_scoped() {
        let p = check("log.query", &params(json!({})), "alpha").unwrap();
        assert_eq!(p["project"], "alpha");
        check(
            "log.query",
            &params(json!({"object": "backup:alpha"})),
            "alpha",
        )
        .unwrap();
        check("log.query", &params(json!({"object": "alpha"})), "alpha").unwrap();
        let e = check(
            "log.query",
            &params(json!({"object": "backup:beta"})),
            "alpha",
        )
        .unwrap_err();
        assert_eq!(e.rule, "agent.own-project");
        assert!(check("explain", &params(json!({"object": "beta"})), "alpha").is_err());
        assert!(
            check(
                "explain",
                &params(json!({"object": "store:index"})),
                "alpha"
            )
            .is_err()
        );
        let p = check("sync", &params(json!({})), "alpha").unwrap();
        assert_eq!(p["projects"], json!(["alpha"]));
        assert!(
            check(
                "sync",
                &params(json!({"projects": ["alpha", "beta"]})),
                "alpha"
            )
            .is_err()
        );
        assert!(check("verify", &params(json!({"projects": ["beta"]})), "alpha").is_err());
        assert!(
            check(
                "verify.status",
                &params(json!({"project": "beta"})),
                "alpha"
            )
            .is_err()
        );
        let p = check("subscribe", &params(json!({"project": "beta"})), "alpha").unwrap();
        assert_eq!(
            p["project"], "alpha",
            "the subscription is forced to the agent's project"
        );
    }

    #[test]
    fn agents_append_only_their_own_agent_events() {
        let p = check(
            "event.append",
            &params(json!({"type": "agent.note", "data": {}})),
            "alpha",
        )
        .unwrap();
        assert_eq!(p["object"], "project:alpha");
        for bad in [
            json!({"type": "backup.synced", "object": "backup:alpha"}),
            json!({"type": "agent.called"}),
            json!({"type": "agent.note", "object": "project:beta"}),
            json!({"type": "agent.note", "object": "store:index"}),
        ] {
            assert!(
                check("event.append", &params(bad.clone()), "alpha").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_forbidden_list() {
        for (m, rule) in [
            ("sandbox.remove", "agent.no-remove"),
            ("remove", "agent.no-remove"),
            ("repair", "agent.no-repair"),
            ("trust", "agent.no-trust"),
            ("policy.set", "agent.no-policy"),
            ("conflicts.resolve", "agent.no-review"),
            ("review.resolve", "agent.no-review"),
            ("daemon.stop", "agent.not-allowed"),
            ("schedule.tick", "agent.not-allowed"),
            ("tools.pin", "agent.not-allowed"),
            ("realm.status", "agent.not-allowed"),
        ] {
            assert_eq!(
                check(m, &Map::new(), "alpha").unwrap_err().rule,
                rule,
                "{m}"
            );
        }
    }
}
