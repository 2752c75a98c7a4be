use std::panic::{AssertUnwindSafe, catch_unwind};

use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TEST_POOL, TestProject};
use repoman_incus::{DeviceSpec, IncusError, ProfilePut, ProjectSpec};

use crate::{busybox, lab};

fn unique(prefix: &str) -> String {
    format!("repoman-test-{prefix}-{}-x", std::process::id())
}

#[test]
fn project_create_get_list_delete() {
    let lab = lab!();
    let incus = &lab.incus;
    let name = unique("crud");
    let spec = ProjectSpec::new(&name)
        .features_images(false)
        .features_profiles(true)
        .config("user.repoman.test", "yes")
        .description("crud test");
    incus.create_project(&spec).unwrap();
    let guard = scopeguard(&lab.incus, &name);

    let project = incus.get_project(&name).unwrap();
    assert_eq!(project.name, name);
    assert_eq!(project.description, "crud test");
    assert_eq!(
        project.config.get("features.images").map(String::as_str),
        Some("false")
    );
    assert_eq!(
        project.config.get("features.profiles").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        project.config.get("user.repoman.test").map(String::as_str),
        Some("yes")
    );

    let all = incus.list_projects().unwrap();
    assert!(all.iter().any(|p| p.name == name));
    assert!(all.iter().any(|p| p.name == "default"));

    // Creating it again is a typed duplicate.
    let err = incus.create_project(&spec).unwrap_err();
    assert!(matches!(err, IncusError::AlreadyExists { .. }), "{err:?}");

    incus.delete_project(&name).unwrap();
    std::mem::forget(guard);
    let err = incus.get_project(&name).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert!(incus.find_project(&name).unwrap().is_none());
    assert!(incus.find_project("default").unwrap().is_some());
}

#[test]
fn force_delete_removes_instances_and_profiles_but_not_shared_images() {
    let lab = lab!();
    let incus = &lab.incus;
    let name = unique("force");
    incus
        .create_project(
            &ProjectSpec::new(&name)
                .features_images(false)
                .features_profiles(true),
        )
        .unwrap();
    let guard = scopeguard(incus, &name);
    let scope = incus.project(&name);
    let mut root = ProfilePut::default();
    root.devices
        .insert("root".into(), DeviceSpec::root_disk(TEST_POOL));
    scope.update_profile("default", &root).unwrap();
    scope
        .create_profile("extra", &ProfilePut::default())
        .unwrap();
    scope
        .create_instance(
            &busybox("running")
                .profile("default")
                .profile("extra")
                .start(true),
        )
        .unwrap();
    scope.create_instance(&busybox("stopped")).unwrap();

    // Not empty: a plain delete is refused and nothing is lost.
    let err = incus.delete_project(&name).unwrap_err();
    assert!(err.status().is_some(), "{err:?}");
    assert_eq!(scope.list_instances().unwrap().len(), 2);

    incus.delete_project_force(&name).unwrap();
    std::mem::forget(guard);
    assert!(incus.get_project(&name).unwrap_err().is_not_found());
    // The shared image of the default project survived.
    incus
        .project("default")
        .resolve_image_alias(TEST_IMAGE_ALIAS)
        .unwrap();
}

#[test]
fn test_project_is_deleted_on_drop_even_when_the_test_panics() {
    let lab = lab!();
    let mut name = String::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let project = TestProject::new(&lab.incus, "panics");
        name = project.name().to_owned();
        project.create_instance(&busybox("c1").start(true)).unwrap();
        panic!("simulated test failure");
    }));
    assert!(result.is_err());
    assert!(name.starts_with("repoman-test-panics-"), "{name}");
    let err = lab.incus.get_project(&name).unwrap_err();
    assert!(err.is_not_found(), "project {name} must be gone: {err:?}");
    assert!(
        !lab.incus
            .list_projects()
            .unwrap()
            .iter()
            .any(|p| p.name == name)
    );
}

#[test]
fn test_project_has_a_root_disk_and_shares_images() {
    let lab = lab!();
    let project = lab.project("shape");
    let info = lab.incus.get_project(project.name()).unwrap();
    assert_eq!(
        info.config.get("features.images").map(String::as_str),
        Some("false")
    );
    let default = project.get_profile("default").unwrap();
    assert_eq!(default.devices["root"]["pool"], TEST_POOL);
    assert_eq!(default.devices["root"]["path"], "/");
    // Aliases resolve through the default project's image store.
    let here = project.resolve_image_alias(TEST_IMAGE_ALIAS).unwrap();
    let there = lab
        .incus
        .project("default")
        .resolve_image_alias(TEST_IMAGE_ALIAS)
        .unwrap();
    assert_eq!(here, there);
    assert_eq!(here.len(), 64, "a full sha256 fingerprint: {here}");
}

/// Force-delete `name` if a test fails before deleting it itself.
struct Guard<'a>(&'a repoman_incus::Incus, String);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete_project_force(&self.1);
    }
}
fn scopeguard<'a>(incus: &'a repoman_incus::Incus, name: &str) -> Guard<'a> {
    Guard(incus, name.to_owned())
}

#[test]
fn stale_test_projects_of_dead_processes_are_swept() {
    let lab = lab!();
    // A pid that certainly ran and is now gone: a child we started and reaped.
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("exit 0")
        .spawn()
        .unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("repoman-test-stale-{dead}-0");
    let alive = format!("repoman-test-alive-{}-999", std::process::id());
    for name in [&stale, &alive] {
        lab.incus.create_project(&ProjectSpec::new(name)).unwrap();
    }
    let guard = scopeguard(&lab.incus, &alive);
    repoman_incus::testlab::sweep_stale_projects(&lab.incus);
    assert!(
        lab.incus.find_project(&stale).unwrap().is_none(),
        "{stale} was swept"
    );
    assert!(
        lab.incus.find_project(&alive).unwrap().is_some(),
        "{alive} belongs to a live test"
    );
    drop(guard);
    assert!(lab.incus.find_project(&alive).unwrap().is_none());
}
