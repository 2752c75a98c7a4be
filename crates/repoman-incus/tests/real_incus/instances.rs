use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TEST_POOL};
use repoman_incus::{DeviceSpec, ImageSource, IncusError, InstanceSpec, ProfilePut};

use crate::{busybox, lab};

#[test]
fn profiles_create_get_update_list_delete() {
    let lab = lab!();
    let project = lab.project("profiles");
    let mut put = ProfilePut {
        description: "sandbox".into(),
        ..Default::default()
    };
    put.config
        .insert("user.repoman.role".into(), "sandbox".into());
    project.create_profile("sandbox", &put).unwrap();

    let got = project.get_profile("sandbox").unwrap();
    assert_eq!(got.description, "sandbox");
    assert_eq!(got.config["user.repoman.role"], "sandbox");
    assert!(got.devices.is_empty());

    let host = tempfile::tempdir().unwrap();
    project
        .set_profile_device(
            "sandbox",
            "repo",
            DeviceSpec::disk(host.path(), "/work").into(),
        )
        .unwrap();
    let got = project.get_profile("sandbox").unwrap();
    assert_eq!(got.devices["repo"]["source"], host.path().to_str().unwrap());
    assert_eq!(got.devices["repo"]["path"], "/work");

    put.config.insert("limits.processes".into(), "100".into());
    put.devices.clear();
    project.update_profile("sandbox", &put).unwrap();
    let got = project.get_profile("sandbox").unwrap();
    assert_eq!(got.config["limits.processes"], "100");
    assert!(
        got.devices.is_empty(),
        "PUT replaces the devices: {:?}",
        got.devices
    );

    let names: Vec<_> = project
        .list_profiles()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.contains(&"default".to_owned()) && names.contains(&"sandbox".to_owned()));

    let err = project.create_profile("sandbox", &put).unwrap_err();
    assert!(matches!(err, IncusError::AlreadyExists { .. }), "{err:?}");

    project.delete_profile("sandbox").unwrap();
    assert!(project.get_profile("sandbox").unwrap_err().is_not_found());
    assert!(project.find_profile("sandbox").unwrap().is_none());
    assert!(project.find_profile("default").unwrap().is_some());
}

#[test]
fn image_alias_resolution() {
    let lab = lab!();
    let project = lab.project("alias");
    let alias = project.get_image_alias(TEST_IMAGE_ALIAS).unwrap();
    assert_eq!(alias.name, TEST_IMAGE_ALIAS);
    assert_eq!(alias.target.len(), 64);
    let err = project
        .get_image_alias("repoman-no-such-alias")
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[test]
fn instance_lifecycle_with_tags_and_config() {
    let lab = lab!();
    let project = lab.project("life");
    let spec = busybox("c1")
        .description("lifecycle")
        .tag("repoman.project", "api")
        .config("limits.processes", 200)
        .config("boot.autostart", false);
    let created = project.create_instance(&spec).unwrap();
    assert_eq!(created.name, "c1");
    assert_eq!(created.status, "Stopped");
    assert_eq!(created.user_config("repoman.project"), Some("api"));
    assert_eq!(created.config["limits.processes"], "200");
    assert_eq!(created.profiles, vec!["default".to_owned()]);
    assert_eq!(created.expanded_devices["root"]["pool"], TEST_POOL);

    project.start("c1").unwrap();
    let running = project.get_instance("c1").unwrap();
    assert!(running.is_running(), "{}", running.status);
    let state = project.instance_state("c1").unwrap();
    assert_eq!(state.status, "Running");
    assert!(state.pid > 0);

    project.restart("c1", false).unwrap();
    let after = project.instance_state("c1").unwrap();
    assert_eq!(after.status, "Running");
    assert_ne!(after.pid, state.pid, "a restart gives a new init process");

    // A clean stop: the test image's init exits on SIGPWR.
    project.stop("c1", false).unwrap();
    assert_eq!(project.get_instance("c1").unwrap().status, "Stopped");

    project.start("c1").unwrap();
    project.stop("c1", true).unwrap();
    assert_eq!(project.get_instance("c1").unwrap().status, "Stopped");

    project.delete_instance("c1").unwrap();
    assert!(project.find_instance("c1").unwrap().is_none());
}

#[test]
fn create_from_fingerprint_and_list_with_state() {
    let lab = lab!();
    let project = lab.project("list");
    let fingerprint = project.resolve_image_alias(TEST_IMAGE_ALIAS).unwrap();
    for name in ["a1", "a2"] {
        let spec = InstanceSpec::new(name, ImageSource::fingerprint(&fingerprint))
            .tag("repoman.project", name)
            .start(true);
        let inst = project.create_instance(&spec).unwrap();
        assert!(inst.is_running(), "{name}: {}", inst.status);
    }
    project.create_instance(&busybox("stopped")).unwrap();

    let mut fast = project.list_instances().unwrap();
    fast.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = fast.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a1", "a2", "stopped"]);
    assert!(
        fast.iter().all(|i| i.state.is_none()),
        "recursion=1 carries no state"
    );
    assert_eq!(fast[0].user_config("repoman.project"), Some("a1"));

    let full = project.list_instances_with_state().unwrap();
    assert_eq!(full.len(), 3);
    for inst in &full {
        let state = inst.state.as_ref().expect("recursion=2 carries state");
        assert_eq!(state.status, inst.status);
    }

    let wanted: Vec<String> = fast
        .iter()
        .filter(|i| i.is_running())
        .map(|i| i.name.clone())
        .collect();
    let states = project.instance_states(&wanted);
    assert_eq!(states.len(), 2);
    for (name, state) in states {
        let state = state.unwrap();
        assert_eq!(state.status, "Running", "{name}");
        assert!(state.pid > 0);
    }
    let states = project.instance_states(&["nope".to_owned()]);
    assert!(states[0].1.as_ref().unwrap_err().is_not_found());
}

#[test]
fn create_from_remote_source_reaches_the_server_and_reports_its_failure() {
    let lab = lab!();
    let project = lab.project("remote");
    // A remote image server on loopback that refuses connections: the request is well formed
    // (Incus accepts it and tries to download), and the failure comes back typed.
    let source = ImageSource::remote("https://127.0.0.1:9", "simplestreams", "busybox/test");
    let err = project
        .create_instance(&InstanceSpec::new("r1", source))
        .unwrap_err();
    match &err {
        IncusError::OperationFailed { message, .. } | IncusError::Api { message, .. } => {
            assert!(message.contains("127.0.0.1"), "{message}");
        }
        other => panic!("expected a failure from the server, got {other:?}"),
    }
    assert!(project.find_instance("r1").unwrap().is_none());
    let parsed = ImageSource::parse("images:debian/12").unwrap();
    assert!(
        matches!(parsed, ImageSource::Remote { ref protocol, .. } if protocol == "simplestreams")
    );
}

#[test]
fn add_update_remove_device() {
    let lab = lab!();
    let project = lab.project("devices");
    project.create_instance(&busybox("d1")).unwrap();
    let host = tempfile::tempdir().unwrap();

    project
        .add_device("d1", "repo", DeviceSpec::disk(host.path(), "/work").into())
        .unwrap();
    let inst = project.get_instance("d1").unwrap();
    assert_eq!(inst.devices["repo"]["path"], "/work");
    assert_eq!(inst.devices["repo"]["type"], "disk");

    let err = project
        .add_device("d1", "repo", DeviceSpec::disk(host.path(), "/other").into())
        .unwrap_err();
    assert!(matches!(err, IncusError::AlreadyExists { .. }), "{err:?}");

    project
        .update_device(
            "d1",
            "repo",
            DeviceSpec::disk(host.path(), "/work").readonly(true).into(),
        )
        .unwrap();
    assert_eq!(
        project.get_instance("d1").unwrap().devices["repo"]["readonly"],
        "true"
    );

    // Incus validates devices: an unknown device type is refused with its own message, and the
    // instance keeps its previous device.
    let mut bad = repoman_incus::Device::new();
    bad.insert("type".into(), "no-such-device-type".into());
    let err = project.update_device("d1", "repo", bad).unwrap_err();
    assert!(err.incus_message().is_some(), "{err:?}");
    assert_eq!(
        project.get_instance("d1").unwrap().devices["repo"]["readonly"],
        "true"
    );

    project.remove_device("d1", "repo").unwrap();
    assert!(
        !project
            .get_instance("d1")
            .unwrap()
            .devices
            .contains_key("repo")
    );
    assert!(
        project
            .remove_device("d1", "repo")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        project
            .update_device("d1", "repo", Default::default())
            .unwrap_err()
            .is_not_found()
    );
    // The profile's root disk is not the instance's own device.
    assert!(
        project
            .remove_device("d1", "root")
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn concurrent_device_edit_is_a_conflict_and_writes_nothing() {
    let lab = lab!();
    let project = lab.project("etag");
    project.create_instance(&busybox("e1")).unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let err = project
        .edit_devices("e1", |devices| {
            // Someone else changes the instance between our read and our write.
            project.add_device("e1", "theirs", DeviceSpec::disk(b.path(), "/b").into())?;
            devices.insert("ours".into(), DeviceSpec::disk(a.path(), "/a").into());
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, IncusError::Conflict { .. }), "{err:?}");
    assert_eq!(err.status(), Some(412));
    let devices = project.get_instance("e1").unwrap().devices;
    assert!(devices.contains_key("theirs"), "their change stays");
    assert!(
        !devices.contains_key("ours"),
        "ours was not written over theirs"
    );

    // Several devices in one edit.
    project
        .edit_devices("e1", |devices| {
            devices.remove("theirs");
            devices.insert("ours".into(), DeviceSpec::disk(a.path(), "/a").into());
            Ok(())
        })
        .unwrap();
    let devices = project.get_instance("e1").unwrap().devices;
    assert_eq!(devices.keys().collect::<Vec<_>>(), ["ours"]);
}

#[test]
fn invalid_device_in_create_reports_the_cause_and_creates_nothing() {
    let lab = lab!();
    let project = lab.project("badstart");
    let gone = tempfile::tempdir().unwrap().path().join("missing");
    let spec = busybox("b1")
        .device("repo", DeviceSpec::disk(&gone, "/work"))
        .start(true);
    let err = project.create_instance(&spec).unwrap_err();
    let message = err.incus_message().unwrap_or_default().to_owned();
    assert!(
        message.contains(gone.to_str().unwrap()),
        "the message names the source: {err:?}"
    );
    assert!(
        project.find_instance("b1").unwrap().is_none(),
        "nothing half-created"
    );
}

#[test]
fn edit_instance_changes_config_profiles_and_devices_together() {
    let lab = lab!();
    let project = lab.project("edit");
    project
        .create_profile("extra", &ProfilePut::default())
        .unwrap();
    project
        .create_instance(&busybox("e1").tag("repoman.state", "new"))
        .unwrap();
    let host = tempfile::tempdir().unwrap();
    project
        .edit_instance("e1", |i| {
            i.config.insert("user.repoman.state".into(), "ready".into());
            i.profiles.push("extra".into());
            i.description = "edited".into();
            i.devices
                .insert("repo".into(), DeviceSpec::disk(host.path(), "/work").into());
            Ok(())
        })
        .unwrap();
    let inst = project.get_instance("e1").unwrap();
    assert_eq!(inst.user_config("repoman.state"), Some("ready"));
    assert_eq!(inst.profiles, ["default", "extra"]);
    assert_eq!(inst.description, "edited");
    assert!(inst.devices.contains_key("repo"));
    // Volatile keys Incus keeps in config survive the round trip.
    assert!(
        inst.config.keys().any(|k| k.starts_with("volatile.")),
        "{:?}",
        inst.config
    );

    // An error from the closure writes nothing.
    let err = project
        .edit_instance("e1", |i| {
            i.config.clear();
            Err(IncusError::Invalid("changed my mind".into()))
        })
        .unwrap_err();
    assert!(matches!(err, IncusError::Invalid(_)));
    assert_eq!(
        project
            .get_instance("e1")
            .unwrap()
            .user_config("repoman.state"),
        Some("ready")
    );
}

#[test]
fn list_all_instances_spans_projects() {
    let lab = lab!();
    let one = lab.project("allone");
    let two = lab.project("alltwo");
    one.create_instance(&busybox("x1")).unwrap();
    two.create_instance(&busybox("x2")).unwrap();
    let all = lab.incus.list_all_instances().unwrap();
    let find = |p: &str, n: &str| all.iter().any(|i| i.project == p && i.name == n);
    assert!(find(one.name(), "x1") && find(two.name(), "x2"), "{all:?}");
    assert!(!find(one.name(), "x2"));
}

#[test]
fn storage_pool_existence() {
    let lab = lab!();
    assert!(lab.incus.storage_pool_exists(TEST_POOL).unwrap());
    assert!(
        !lab.incus
            .storage_pool_exists("repoman-test-no-such-pool")
            .unwrap()
    );
}

#[test]
fn rebuild_replaces_the_root_filesystem_and_keeps_config() {
    use repoman_incus::FileMode;
    let lab = lab!();
    let project = lab.project("rebuild");
    project
        .create_instance(&busybox("r1").tag("repoman.kept", "yes").start(true))
        .unwrap();
    project
        .push_file("r1", "/root/marker", b"x", FileMode::new(0, 0, 0o600))
        .unwrap();
    // A running instance is refused by Incus, and nothing changes.
    let err = project
        .rebuild_instance("r1", &ImageSource::alias(TEST_IMAGE_ALIAS))
        .unwrap_err();
    assert!(err.incus_message().is_some(), "{err:?}");
    assert!(project.pull_file("r1", "/root/marker").is_ok());

    project.stop("r1", true).unwrap();
    project
        .rebuild_instance("r1", &ImageSource::alias(TEST_IMAGE_ALIAS))
        .unwrap();
    project.start("r1").unwrap();
    assert!(
        project
            .pull_file("r1", "/root/marker")
            .unwrap_err()
            .is_not_found(),
        "the old root filesystem is gone"
    );
    let inst = project.get_instance("r1").unwrap();
    assert_eq!(inst.user_config("repoman.kept"), Some("yes"));

    // An alias that does not exist is an error from Incus, not a silent success.
    project.stop("r1", true).unwrap();
    assert!(
        project
            .rebuild_instance("r1", &ImageSource::alias("repoman-test-no-such-image"))
            .is_err()
    );
}
