//! Test support for tests that need the real Incus daemon (this crate's and other crates').
//!
//! - [`TestLab::connect`] returns `None` (after a loud `SKIPPED:` line on stderr) when Incus is
//!   unreachable, unless `REPOMAN_TEST_INCUS=require` is set: then it panics, so CI cannot pass
//!   by skipping.
//! - [`TestProject`] is a uniquely named Incus project (`repoman-test-<prefix>-<pid>-<n>`) that
//!   shares the default project's images (`features.images=false`), has its own profiles
//!   (`features.profiles=true`) with a root disk on pool [`TEST_POOL`] in its `default` profile,
//!   and is force-deleted on drop, also when the test panicked.
//! - Projects left behind by a killed test process (its pid no longer running) are swept the first
//!   time a process connects.
//!
//! Not part of the stable API.
#![allow(
    clippy::print_stderr,
    reason = "test support reports skips and cleanup failures on stderr"
)]
#![allow(
    clippy::panic,
    reason = "test support fails the test loudly when the lab is required"
)]

use std::ops::Deref;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use repoman_core::Env;

use crate::api::ProfilePut;
use crate::spec::{DeviceSpec, ProjectSpec};
use crate::{Incus, ProjectScope};

/// Alias of the busybox test image imported by `scripts/incus-lab` into the default project.
pub const TEST_IMAGE_ALIAS: &str = "repoman-test-busybox";
/// Alias of the Debian 12 (minbase + git) test image `scripts/incus-lab` builds with debootstrap,
/// for the end-to-end test of a realistic sandbox.
pub const DEBIAN_IMAGE_ALIAS: &str = "repoman-test-debian";
/// Storage pool created by `scripts/incus-lab`.
pub const TEST_POOL: &str = "default";
/// Every test project's name starts with this.
pub const TEST_PROJECT_PREFIX: &str = "repoman-test-";

/// A connection to the lab daemon, verified to have the test image.
#[derive(Debug, Clone)]
pub struct TestLab {
    pub incus: Incus,
}

impl TestLab {
    /// Connect using the process environment (read once into an [`Env`]).
    pub fn connect() -> Option<TestLab> {
        Self::connect_with(&Env::capture())
    }

    /// Connect with an explicit environment. `None` means "skip this test".
    pub fn connect_with(env: &Env) -> Option<TestLab> {
        let required = env.get("REPOMAN_TEST_INCUS") == Some("require");
        let problem = match Incus::connect(env) {
            Ok(incus) => match incus
                .project("default")
                .resolve_image_alias(TEST_IMAGE_ALIAS)
            {
                Ok(_) => {
                    static SWEEP: Once = Once::new();
                    SWEEP.call_once(|| sweep_stale_projects(&incus));
                    return Some(TestLab { incus });
                }
                Err(e) => format!(
                    "the test image `{TEST_IMAGE_ALIAS}` is not in the default project ({e}); run scripts/incus-lab"
                ),
            },
            Err(e) => match e.hint() {
                Some(hint) => format!("{e} (hint: {hint})"),
                None => e.to_string(),
            },
        };
        if required {
            panic!("REPOMAN_TEST_INCUS=require but the Incus lab is not usable: {problem}");
        }
        eprintln!(
            "SKIPPED: Incus unreachable, real-Incus test not run: {problem} \
             (set REPOMAN_TEST_INCUS=require to make this a failure)"
        );
        None
    }

    /// A fresh test project (see [`TestProject::new`]).
    pub fn project(&self, prefix: &str) -> TestProject {
        TestProject::new(&self.incus, prefix)
    }
}

/// A uniquely named Incus project, deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct TestProject {
    scope: ProjectScope,
}

impl TestProject {
    /// Create `repoman-test-<prefix>-<pid>-<n>`; panics (failing the test) if Incus refuses.
    pub fn new(incus: &Incus, prefix: &str) -> TestProject {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TEST_PROJECT_PREFIX}{prefix}-{}-{n}", std::process::id());
        let spec = ProjectSpec::new(&name)
            .features_images(false)
            .features_profiles(true)
            .description("repoman test project (deleted when its test ends)");
        if let Err(e) = incus.create_project(&spec) {
            panic!("creating test project {name}: {e}");
        }
        // Construct the guard first: if the profile update fails, the project is still removed.
        let project = TestProject {
            scope: incus.project(&name),
        };
        let mut profile = ProfilePut {
            description: "repoman test default".into(),
            ..Default::default()
        };
        profile
            .devices
            .insert("root".into(), DeviceSpec::root_disk(TEST_POOL));
        if let Err(e) = project.scope.update_profile("default", &profile) {
            panic!("giving {name}'s default profile a root disk on pool {TEST_POOL}: {e}");
        }
        project
    }

    /// The project name.
    pub fn name(&self) -> &str {
        self.scope.name()
    }

    /// The scope for calls in this project.
    pub fn scope(&self) -> &ProjectScope {
        &self.scope
    }
}

impl Deref for TestProject {
    type Target = ProjectScope;
    fn deref(&self) -> &ProjectScope {
        &self.scope
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        // Use a generous deadline: cleanup must finish even after a test shortened its own.
        let incus = self
            .scope
            .client()
            .with_operation_timeout(std::time::Duration::from_secs(120));
        if let Err(e) = incus.delete_project_force(self.scope.name())
            && !e.is_not_found()
        {
            eprintln!(
                "WARNING: could not delete test project {}: {e}",
                self.scope.name()
            );
        }
    }
}

/// Delete `repoman-test-*-<pid>-<n>` projects whose process is gone (a test killed by a signal
/// cannot run its destructors).
pub fn sweep_stale_projects(incus: &Incus) {
    let Ok(projects) = incus.list_projects() else {
        return;
    };
    for project in projects {
        let Some(rest) = project.name.strip_prefix(TEST_PROJECT_PREFIX) else {
            continue;
        };
        let mut parts = rest.rsplit('-');
        let (Some(_n), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(e) = incus.delete_project_force(&project.name) {
            eprintln!(
                "WARNING: could not sweep stale test project {}: {e}",
                project.name
            );
        }
    }
}
