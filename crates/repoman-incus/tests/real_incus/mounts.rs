use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use repoman_incus::{DeviceSpec, ExecSpec};

use crate::{busybox, lab};

#[test]
fn shifted_bind_mount_round_trips_uid_1000() {
    let lab = lab!();
    let project = lab.project("shift");
    let host = tempfile::tempdir().unwrap();
    // uid 1000 in the container must be able to write here: owner-independent permissions.
    fs::set_permissions(host.path(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(host.path().join("from-host.txt"), b"written on the host\n").unwrap();
    fs::set_permissions(
        host.path().join("from-host.txt"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let spec = busybox("m1")
        .device("repo", DeviceSpec::disk(host.path(), "/work").shift(true))
        .start(true);
    project.create_instance(&spec).unwrap();

    let dev = |cmd: &str| {
        let out = project
            .exec(
                "m1",
                &ExecSpec::new(["sh", "-c", cmd])
                    .user(1000, 1000)
                    .cwd("/work"),
            )
            .unwrap();
        assert!(out.success(), "{cmd}: {out:?}");
        out.stdout_text()
    };
    dev("echo 'written in the container' > /work/from-container.txt");
    let meta = fs::metadata(host.path().join("from-container.txt")).unwrap();
    assert_eq!(
        meta.uid(),
        1000,
        "shift=true maps container uid 1000 to host uid 1000"
    );
    assert_eq!(meta.gid(), 1000);
    assert_eq!(
        fs::read_to_string(host.path().join("from-container.txt")).unwrap(),
        "written in the container\n"
    );

    assert_eq!(dev("cat /work/from-host.txt"), "written on the host\n");
    // Host ownership is visible unshifted inside: root-owned host file is root's in the container.
    let host_uid = fs::metadata(host.path().join("from-host.txt"))
        .unwrap()
        .uid();
    assert_eq!(
        dev("stat -c %u /work/from-host.txt"),
        format!("{host_uid}\n")
    );
}
