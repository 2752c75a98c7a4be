//! `update`: bring an existing sandbox to its desired state, re-applying profiles, devices and
//! managed config, and rebuilding its root filesystem when asked and the image differs. A
//! running container whose `raw.idmap` or guest API changes is restarted (the security-drift
//! migration takes effect only then), through the pre-start hardening check.

use std::sync::Arc;

use repoman_core::{ObjectId, Progress};
use repoman_incus::{IMAGE_OPERATION_TIMEOUT, ProgressReporter};
use repoman_state::{Operation, State};
use serde::Serialize;

use crate::desired::{Desired, TAG_IMAGE};
use crate::drift::{self, Change};
use crate::error::SandboxError;
use crate::repair;
use crate::session::{self, Approval, Session};

/// What `update` would change.
#[derive(Debug, Clone, Serialize)]
pub struct UpdatePlan {
    pub name: String,
    /// Every difference, re-applicable or not.
    pub changes: Vec<Change>,
    /// The image differs and a rebuild was asked for.
    pub rebuild: bool,
    #[serde(skip)]
    pub desired: Desired,
    /// The image the container was built from (its tag), if known.
    #[serde(skip)]
    pub from_image: Option<String>,
    #[serde(skip)]
    pub was_running: bool,
    /// The container runs and a change takes effect only at start (`raw.idmap`,
    /// `security.guestapi`): it is restarted after the change (through the pre-start check).
    pub restart: bool,
    #[serde(skip)]
    pub allowed: crate::hardening::Allowed,
}

impl UpdatePlan {
    /// How many changes re-applying makes.
    pub fn reapplicable(&self) -> usize {
        self.changes.iter().filter(|c| c.reapplicable()).count()
    }

    /// Whether the image differs (only a rebuild changes it).
    pub fn image_differs(&self) -> bool {
        self.changes.iter().any(|c| !c.reapplicable())
    }

    /// Nothing would be done (maybe the image differs, but no rebuild was asked for).
    pub fn is_noop(&self) -> bool {
        self.reapplicable() == 0 && !self.rebuild
    }

    /// `sandbox.rebuild` or `sandbox.update`.
    pub fn operation(&self) -> Operation {
        session::op(
            if self.rebuild {
                "sandbox.rebuild"
            } else {
                "sandbox.update"
            },
            &self.name,
        )
    }
}

/// Diff the registered sandbox `name` against its desired state.
pub fn plan_update(s: &Session, name: &str, rebuild: bool) -> Result<UpdatePlan, SandboxError> {
    let t = s.target(name)?;
    let inst = s
        .observed
        .instance(name)
        .ok_or_else(|| SandboxError::Missing {
            name: name.to_owned(),
            project: s.estate.incus_project().to_owned(),
        })?;
    let changes = drift::diff(&t.desired, inst);
    let image_differs = changes.iter().any(|c| !c.reapplicable());
    let rebuild = rebuild && image_differs;
    Ok(UpdatePlan {
        name: name.to_owned(),
        rebuild,
        restart: !rebuild && repair::needs_restart(&changes, inst.is_running()),
        allowed: crate::hardening::Allowed::for_sandbox(
            &s.estate.file.registry.defaults,
            &t.desired,
        ),
        changes,
        from_image: inst.user_config(TAG_IMAGE).map(str::to_owned),
        was_running: inst.is_running(),
        desired: t.desired,
    })
}

/// Apply the plan and record `sandbox.updated` or `sandbox.rebuilt`.
pub fn execute_update(
    s: &Session,
    plan: &UpdatePlan,
    state: &State,
    approval: Approval,
    progress: Arc<dyn Progress>,
) -> Result<(), SandboxError> {
    approval.check(&plan.operation().name, &ObjectId::sandbox(&plan.name))?;
    let event = if plan.rebuild {
        progress.step(&format!(
            "rebuilding `{}` from `{}`",
            plan.name, plan.desired.image
        ));
        let scope = s
            .observed
            .scope
            .with_reporter(ProgressReporter::new(progress))
            .with_operation_timeout(IMAGE_OPERATION_TIMEOUT);
        repair::rebuild(
            &scope,
            &plan.desired,
            plan.was_running,
            plan.from_image.as_deref(),
            &plan.allowed,
        )?
    } else {
        let event = repair::reapply(&s.observed.scope, &plan.desired, &plan.changes)?;
        if plan.restart {
            progress.step(&format!(
                "restarting `{}` (raw.idmap and the guest API apply at start)",
                plan.name
            ));
            repair::restart_if_needed(
                &s.observed.scope,
                &plan.desired,
                &plan.changes,
                plan.was_running,
                &plan.allowed,
            )?;
        }
        event
    };
    state.append(event.into())?;
    Ok(())
}
