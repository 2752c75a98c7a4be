//! The opening every sandbox command shares: load the registry, resolve settings, connect to
//! Incus, list repoman's project once and reconcile (read-only). Also the policy gate every
//! mutation passes through ([`authorize`], [`preview`]). Returns values; the faces print.

use repoman_core::ObjectId;
use repoman_core::registry::{PolicyRule, RegistryFile};
use repoman_incus::Incus;
use repoman_state::{Decision, GateMode, Operation, State};

use super::drift::Drift;
use super::error::SandboxError;
use super::estate::{self, Estate, Observed};

/// Registry + settings + Incus + one observation + its drift.
#[derive(Debug)]
pub struct Session {
    pub estate: Estate,
    pub incus: Incus,
    pub observed: Observed,
    pub drift: Vec<Drift>,
}

impl Session {
    /// Open a session (the read-only reconciliation).
    pub fn open(registry: RegistryFile, env: &repoman_core::Env) -> Result<Session, SandboxError> {
        let estate = Estate::new(registry, env);
        let incus = estate::connect(env)?;
        let observed = estate::observe(&incus, estate.incus_project())?;
        let drift = estate::reconcile(&estate, &observed);
        Ok(Session {
            estate,
            incus,
            observed,
            drift,
        })
    }

    /// Warning lines about drift, except for `skip` (the sandbox the command is about, whose
    /// state the command reports itself).
    pub fn drift_warnings(&self, skip: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = self
            .drift
            .iter()
            .filter(|d| Some(d.name()) != skip)
            .map(Drift::summary)
            .collect();
        if !self.observed.project_exists && !self.estate.file.registry.projects.is_empty() {
            out.insert(
                0,
                format!(
                    "the Incus project `{}` does not exist; run `repoman setup`",
                    self.estate.incus_project()
                ),
            );
        }
        out
    }

    /// The drift of one sandbox, if any.
    pub fn drift_of(&self, name: &str) -> Option<&Drift> {
        self.drift.iter().find(|d| d.name() == name)
    }

    /// Fail unless `name` is a registered project or a container in the Incus project.
    pub fn require_known(&self, name: &str) -> Result<(), SandboxError> {
        if self.estate.file.registry.project(name).is_none()
            && self.observed.instance(name).is_none()
        {
            return Err(SandboxError::UnknownProject(name.to_owned()));
        }
        Ok(())
    }

    /// Fail unless the Incus project exists.
    pub fn require_project(&self) -> Result<(), SandboxError> {
        if self.observed.project_exists {
            Ok(())
        } else {
            Err(SandboxError::NoIncusProject(
                self.estate.incus_project().to_owned(),
            ))
        }
    }
}

/// A mutation the policy gate let through and recorded. The functions that change a sandbox take
/// one, so no face can skip the gate; only [`authorize`] makes one.
#[derive(Debug)]
pub struct Approval {
    operation: Operation,
    decision: Decision,
}

impl Approval {
    /// The operation that was allowed.
    pub fn operation(&self) -> &Operation {
        &self.operation
    }

    /// The recorded decision (its `policy.decided` seq and the verdicts).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Fail unless this approval is for `name` on `object` (a programming error otherwise).
    pub(crate) fn check(&self, name: &str, object: &ObjectId) -> Result<(), SandboxError> {
        if self.operation.name == name && self.operation.object == object.to_string() {
            Ok(())
        } else {
            Err(SandboxError::Invalid(format!(
                "internal: approval for {} of {} used for {name} of {object}",
                self.operation.name, self.operation.object
            )))
        }
    }
}

/// Pass `op` through the one policy gate ([`repoman_state::gate`]) and record the decision
/// (`policy.decided`, and `<op>.plan.blocked` when blocked). A block is
/// [`SandboxError::Blocked`].
pub fn authorize(
    state: &State,
    op: Operation,
    rules: &[PolicyRule],
) -> Result<Approval, SandboxError> {
    let decision = repoman_state::gate(state, &op, Vec::new(), rules, GateMode::Record)?;
    Ok(Approval {
        operation: op,
        decision,
    })
}

/// What the gate would decide for `op` (`--dry-run`): nothing is recorded; a block is still
/// [`SandboxError::Blocked`].
pub fn preview(
    state: &State,
    op: &Operation,
    rules: &[PolicyRule],
) -> Result<Decision, SandboxError> {
    Ok(repoman_state::gate(
        state,
        op,
        Vec::new(),
        rules,
        GateMode::DryRun,
    )?)
}

/// The operation value for an action on the sandbox of `project` (`sandbox.create`,
/// `sandbox.start`, ..., object `sandbox:NAME`).
pub fn op(name: &str, project: &str) -> Operation {
    Operation {
        name: name.to_owned(),
        object: ObjectId::sandbox(project).to_string(),
        project: Some(project.to_owned()),
    }
}

/// A registered sandbox ready for `shell`/`exec`/lifecycle commands.
#[derive(Debug)]
pub struct Target {
    pub desired: super::desired::Desired,
    pub status: String,
}

impl Session {
    /// The login shell of `uid` in the container `name`'s /etc/passwd, else /bin/sh (what
    /// `repoman shell` and the TUI start).
    pub fn login_shell(&self, name: &str, uid: u32) -> String {
        let passwd = self.observed.scope.pull_file(name, "/etc/passwd").ok();
        passwd
            .and_then(|f| {
                String::from_utf8_lossy(&f.content).lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid))
                        .then(|| f.get(6).map(|s| s.to_string()))
                        .flatten()
                        .filter(|s| !s.is_empty())
                })
            })
            .unwrap_or_else(|| "/bin/sh".to_owned())
    }

    /// The registered sandbox `name` with its current Incus status; errors for unregistered,
    /// `--no-container` and missing sandboxes.
    pub fn target(&self, name: &str) -> Result<Target, SandboxError> {
        let entry = self.estate.entry(name)?;
        if !entry.container {
            return Err(SandboxError::NoContainer(name.to_owned()));
        }
        self.require_project()?;
        let inst = self
            .observed
            .instance(name)
            .ok_or_else(|| SandboxError::Missing {
                name: name.to_owned(),
                project: self.estate.incus_project().to_owned(),
            })?;
        let desired = self.estate.desired(entry, None)?;
        Ok(Target {
            desired,
            status: inst.status.clone(),
        })
    }
}

/// The argv of `incus exec` running `command` as the sandbox's user in its repo directory.
pub fn incus_exec_argv(t: &Target, interactive: bool, command: &[String]) -> Vec<String> {
    let d = &t.desired;
    let mut argv = vec![
        "--project".to_owned(),
        d.incus_project.clone(),
        "exec".to_owned(),
        d.name.clone(),
    ];
    // Interactive: let `incus` pick a terminal when there is one (as `incus exec` does).
    if !interactive {
        argv.extend(["--mode".to_owned(), "non-interactive".to_owned()]);
    }
    argv.extend([
        "--user".to_owned(),
        d.uid.to_string(),
        "--group".to_owned(),
        d.gid.to_string(),
        "--cwd".to_owned(),
        d.mount_path.clone(),
        "--env".to_owned(),
        format!("HOME={}", d.home),
        "--env".to_owned(),
        format!("USER={}", d.user),
        "--".to_owned(),
    ]);
    argv.extend(command.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Desired, ImageOrigin};

    fn target() -> Target {
        Target {
            desired: Desired {
                name: "app".into(),
                incus_project: "repoman".into(),
                repo_dir: "app".into(),
                repo_path: "/r/app".into(),
                mount_path: "/home/dev/app".into(),
                home: "/home/dev".into(),
                uid: 1000,
                gid: 1001,
                user: "dev".into(),
                image: "img".into(),
                image_origin: ImageOrigin::Defaults,
                profiles: vec!["default".into()],
                devices: Default::default(),
                config: Default::default(),
                mount_sources: vec![],
            },
            status: "Running".into(),
        }
    }

    #[test]
    fn exec_argv_runs_as_the_user_in_the_repo_and_never_through_a_shell() {
        let cmd = vec!["echo".to_owned(), "a b; rm -rf /".to_owned()];
        let argv = incus_exec_argv(&target(), false, &cmd);
        let joined = argv.join(" ");
        assert!(joined.starts_with("--project repoman exec app --mode non-interactive --user 1000 --group 1001 --cwd /home/dev/app --env HOME=/home/dev --env USER=dev -- "), "{joined}");
        // The command stays two argv elements after `--`, whatever it contains.
        assert_eq!(argv[argv.len() - 2..], cmd[..]);
        let interactive = incus_exec_argv(&target(), true, &cmd);
        assert!(!interactive.contains(&"--mode".to_owned()));
    }
}
