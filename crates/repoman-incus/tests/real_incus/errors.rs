use std::time::Duration;

use repoman_incus::{ExecSpec, IncusError};

use crate::{busybox, lab};

#[test]
fn unknown_instance_is_a_typed_404() {
    let lab = lab!();
    let project = lab.project("404");
    let err = project.get_instance("does-not-exist").unwrap_err();
    assert!(matches!(err, IncusError::NotFound { .. }), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string().contains("does-not-exist"),
        "the request names the object: {err}"
    );
    assert!(project.find_instance("does-not-exist").unwrap().is_none());
    assert!(project.start("does-not-exist").unwrap_err().is_not_found());
    assert!(
        project
            .delete_instance("does-not-exist")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        lab.incus
            .get_project("repoman-no-such-project")
            .unwrap_err()
            .is_not_found()
    );
    let other = lab.incus.project("repoman-no-such-project");
    assert!(other.get_instance("x").unwrap_err().is_not_found());
}

#[test]
fn duplicate_instance_name_is_already_exists() {
    let lab = lab!();
    let project = lab.project("dup");
    project.create_instance(&busybox("same")).unwrap();
    let err = project.create_instance(&busybox("same")).unwrap_err();
    assert!(matches!(err, IncusError::AlreadyExists { .. }), "{err:?}");
    let message = err.incus_message().unwrap().to_lowercase();
    assert!(
        message.contains("unique") || message.contains("already exists"),
        "{err}"
    );
    assert_eq!(project.list_instances().unwrap().len(), 1);
}

#[test]
fn deleting_a_running_instance_is_refused() {
    let lab = lab!();
    let project = lab.project("delrun");
    project
        .create_instance(&busybox("busy").start(true))
        .unwrap();
    let err = project.delete_instance("busy").unwrap_err();
    assert_eq!(err.status(), Some(400), "{err:?}");
    assert!(
        err.incus_message()
            .unwrap()
            .to_lowercase()
            .contains("running"),
        "{err}"
    );
    assert!(
        project.get_instance("busy").unwrap().is_running(),
        "nothing was lost"
    );
}

#[test]
fn operation_still_running_at_the_deadline_is_a_timeout() {
    let lab = lab!();
    let project = lab.project("timeout");
    project
        .create_instance(&busybox("slow").start(true))
        .unwrap();

    // A zero deadline: the wait returns at once and the operation is still running.
    let err = project
        .exec(
            "slow",
            &ExecSpec::new(["sleep", "30"]).timeout(Duration::ZERO),
        )
        .unwrap_err();
    match &err {
        IncusError::OperationTimeout {
            id, description, ..
        } => {
            assert!(!id.is_empty());
            assert!(!description.is_empty());
        }
        other => panic!("expected OperationTimeout, got {other:?}"),
    }
    assert!(err.hint().unwrap().contains("incus operation list"));

    // A one-second deadline through the client-wide setting, on a state change this time: a clean
    // stop of a container whose init ignores nothing but takes longer than the deadline is hard to
    // arrange, so use exec again via the scope's deadline.
    let short = project.with_operation_timeout(Duration::from_secs(1));
    let err = short
        .exec("slow", &ExecSpec::new(["sleep", "30"]))
        .unwrap_err();
    match err {
        IncusError::OperationTimeout { waited, .. } => assert!(waited >= Duration::from_secs(1)),
        other => panic!("expected OperationTimeout, got {other:?}"),
    }
    // The short deadline did not leak into the original scope.
    let out = project.exec("slow", &ExecSpec::new(["true"])).unwrap();
    assert!(out.success());
}

#[test]
fn cancel_token_interrupts_an_operation_wait() {
    let lab = lab!();
    let project = lab.project("cancel");
    project.create_instance(&busybox("c1").start(true)).unwrap();
    let cancel = repoman_core::Cancel::new();
    let scope = project.with_cancel(&cancel);
    let err = std::thread::scope(|s| {
        let waiter = s.spawn(|| scope.exec("c1", &ExecSpec::new(["sleep", "60"])));
        // Cancel once the operation is under way (the exec's own deadline is 120 s).
        std::thread::sleep(Duration::from_millis(300));
        cancel.cancel();
        waiter.join().unwrap()
    })
    .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    // A cancelled token fails further waits at once; the scope without it still works.
    let err = scope.exec("c1", &ExecSpec::new(["true"])).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(
        project
            .exec("c1", &ExecSpec::new(["true"]))
            .unwrap()
            .success()
    );
}

#[test]
fn reporter_sees_a_running_operation() {
    #[derive(Debug, Default)]
    struct Seen(std::sync::Mutex<Vec<String>>);
    impl repoman_incus::Reporter for Seen {
        fn operation_running(&self, op: &repoman_incus::Operation) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", op.description, op.status));
        }
    }
    let lab = lab!();
    let project = lab.project("report");
    project.create_instance(&busybox("r1").start(true)).unwrap();
    let seen = std::sync::Arc::new(Seen::default());
    let scope = project.with_reporter(seen.clone());
    // Waits are sliced into one-second waits when a reporter listens: a 3 s command is seen
    // running at least twice.
    let out = scope.exec("r1", &ExecSpec::new(["sleep", "3"])).unwrap();
    assert!(out.success());
    let seen = seen.0.lock().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.ends_with("Running")), "{seen:?}");
}
