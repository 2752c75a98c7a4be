//! The engine against real rsync on real directories: the typed plan decodes every name exactly,
//! the run matches the plan, manifests describe the destination, conflicts are found without a
//! walk of the backup, and resolution keeps both sides' bytes.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use repoman_backup::conflict::{self, Case, Keep, ResolveInput};
use repoman_backup::exclude::Excludes;
use repoman_backup::manifest::{self, BuildInput, StatCache};
use repoman_backup::rsync::{Change, RsyncJob, RsyncOutcome};
use repoman_backup::verify::{self, Mode, Scope};
use repoman_core::Cancel;

fn write(p: &Path, b: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b).unwrap();
}

const ODD: &[&[u8]] = &[
    b"with space",
    b"new\nline",
    b"tab\there",
    b"bad\xff\xfe",
    b"back\\#012slash",
    b"100%",
    b"cr\rname",
    b"caf\xc3\xa9",
];

#[test]
fn plan_decodes_odd_names_exactly_and_the_run_does_what_it_planned() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    for n in ODD {
        write(&src.join("sub").join(OsStr::from_bytes(n)), n);
    }
    write(&dst.join("stale/old.txt"), b"old");
    let cancel = Cancel::new();
    let job = RsyncJob::new(&src, &dst);
    let plan = job.plan(&cancel).unwrap();
    let created: HashSet<Vec<u8>> = plan
        .items
        .iter()
        .filter(|i| i.change == Change::Create)
        .map(|i| i.path.clone())
        .collect();
    for n in ODD {
        let mut p = b"sub/".to_vec();
        p.extend_from_slice(n);
        assert!(
            created.contains(&p),
            "{:?} not decoded; plan: {:?}",
            String::from_utf8_lossy(&p),
            plan.items
        );
    }
    assert_eq!(plan.deletes, 2, "stale/old.txt and stale/");
    assert_eq!(plan.files_to_transfer, ODD.len() as u64);
    assert_eq!(plan.bytes, ODD.iter().map(|n| n.len() as u64).sum::<u64>());
    assert!(!dst.join("sub").exists(), "a dry run changes nothing");

    let mut seen = 0;
    let report = job.run(Some(plan.deletes), &cancel, |_| seen += 1).unwrap();
    assert_eq!(report.outcome, RsyncOutcome::Complete);
    assert!(seen > 0, "progress was reported");
    let ran: HashSet<Vec<u8>> = report.items.iter().map(|i| i.path.clone()).collect();
    let planned: HashSet<Vec<u8>> = plan.items.iter().map(|i| i.path.clone()).collect();
    assert_eq!(
        ran.difference(&planned).count(),
        0,
        "the run did something the plan did not say"
    );
    for n in ODD {
        assert_eq!(
            std::fs::read(dst.join("sub").join(OsStr::from_bytes(n))).unwrap(),
            *n
        );
    }
    assert!(!dst.join("stale").exists());
    // Nothing left to do.
    assert!(job.plan(&cancel).unwrap().is_empty());
}

#[test]
fn max_delete_in_the_run_stops_unplanned_deletions_with_exit_25() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    write(&src.join("keep"), b"k");
    write(&dst.join("a"), b"a");
    let cancel = Cancel::new();
    let job = RsyncJob::new(&src, &dst);
    let plan = job.plan(&cancel).unwrap();
    assert_eq!(plan.deletes, 1);
    // The backup changes between plan and run: two more files to delete than approved.
    write(&dst.join("b"), b"b");
    write(&dst.join("c"), b"c");
    let e = job
        .run(Some(plan.deletes), &cancel, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rsync exit 25"), "{e}");
}

#[test]
fn manifest_after_sync_describes_the_destination_and_the_cache_skips_unchanged_files() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    for i in 0..50 {
        write(
            &src.join(format!("d{}/f{i}", i % 5)),
            format!("{i}").as_bytes(),
        );
    }
    let cancel = Cancel::new();
    let job = RsyncJob::new(&src, &dst);
    job.run(None, &cancel, |_| {}).unwrap();
    let ex = Excludes::default();
    let none = HashSet::new();
    let build = |cache: Option<&StatCache>, force: &HashSet<Vec<u8>>| {
        manifest::build(&BuildInput {
            project: "p",
            walk_root: &src,
            content_root: &dst,
            excludes: &ex,
            cache,
            force,
            cancel: &cancel,
            created_at: "t".into(),
        })
        .unwrap()
    };
    let b = build(None, &none);
    let (m1, cache, s1) = (b.manifest, b.cache, b.stats);
    assert_eq!(s1.hashed, s1.entries);
    let full_dst = manifest::build_full("p", &dst, &ex, &cancel, "t".into()).unwrap();
    assert_eq!(
        m1.root, full_dst.root,
        "manifest equals an independent hash of the destination"
    );
    let b = build(Some(&cache), &none);
    let (m2, s2) = (b.manifest, b.stats);
    assert_eq!((m2.root.as_str(), s2.hashed), (m1.root.as_str(), 0));
    // A file rsync transferred is re-read even if its local stat looks cached.
    let force: HashSet<Vec<u8>> = [b"d0/f0".to_vec()].into();
    let s3 = build(Some(&cache), &force).stats;
    assert_eq!(s3.hashed, 1);
    assert!(
        verify::verify(&dst, &m1, &ex, Mode::Full, Scope::All, &cancel)
            .unwrap()
            .is_clean()
    );

    // Rot on the backup (same size and mtime) with no cache: the manifest takes the working
    // copy's bytes, never the rotten ones, so verify --full reports the rot.
    let victim = dst.join("d1/f1");
    let mtime = std::fs::metadata(&victim).unwrap().modified().unwrap();
    std::fs::write(&victim, b"X").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let rebuilt = build(None, &none);
    assert!(rebuilt.unsettled.is_empty(), "{:?}", rebuilt.unsettled);
    assert_eq!(rebuilt.manifest.root, m1.root, "the working copy's bytes");
    let r = verify::verify(
        &dst,
        &rebuilt.manifest,
        &ex,
        Mode::Full,
        Scope::All,
        &cancel,
    )
    .unwrap();
    assert_eq!(r.changed.len(), 1, "{r:?}");
    assert_eq!(r.changed[0].what, ["content"]);

    // A working-copy file that changed after rsync ran cannot be proven: it is unsettled.
    write(&src.join("d2/f2"), b"changed after the run, longer");
    let b = build(Some(&cache), &none);
    assert_eq!(b.unsettled, [b"d2/f2".to_vec()]);
    assert!(b.manifest.get(b"d2/f2").is_none());
}

#[test]
fn conflicts_are_detected_per_case_and_resolution_keeps_both_sides() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst, root) = (
        d.path().join("b/src"),
        d.path().join("b/dst"),
        d.path().join("b"),
    );
    for n in ["same", "backup-edit", "both-edit", "local-deleted"] {
        write(&src.join(n), format!("{n} v1").as_bytes());
    }
    let cancel = Cancel::new();
    let job = RsyncJob::new(&src, &dst);
    job.run(None, &cancel, |_| {}).unwrap();
    let m = manifest::build_full("p", &dst, &Excludes::default(), &cancel, "t".into()).unwrap();

    write(&dst.join("backup-edit"), b"changed on the backup");
    write(&dst.join("both-edit"), b"changed on the backup too");
    write(&src.join("both-edit"), b"changed locally as well, longer");
    write(&dst.join("local-deleted"), b"edited on backup");
    std::fs::remove_file(src.join("local-deleted")).unwrap();
    write(&dst.join("created-on-backup"), b"new on backup");
    write(&src.join("local-only-new"), b"fine");

    let plan = job.plan(&cancel).unwrap();
    let found = conflict::detect(&plan, &m, &src, &dst).unwrap();
    let cases: Vec<(String, Case)> = found
        .iter()
        .map(|f| (String::from_utf8_lossy(&f.path).into_owned(), f.case))
        .collect();
    let mut cases = cases;
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        cases,
        [
            ("backup-edit".to_string(), Case::BackupChanged),
            ("both-edit".to_string(), Case::BothChanged),
            ("created-on-backup".to_string(), Case::BackupCreated),
            ("local-deleted".to_string(), Case::LocalDeletedBackupChanged),
        ]
    );

    let paths: Vec<Vec<u8>> = found.iter().map(|f| f.path.clone()).collect();
    let input = ResolveInput {
        src: &src,
        dst: &dst,
        backup_root: &root,
        repo: "dst",
        timestamp: "T1",
        paths: &paths,
        scratch: &d.path().join("scratch"),
        search_path: None,
        cancel: &cancel,
    };
    let r = conflict::resolve(&input, Keep::Local).unwrap();
    let saved = root.join(".repoman-conflicts/dst/T1/backup");
    assert_eq!(r.saved_to, saved);
    assert_eq!(
        std::fs::read(saved.join("backup-edit")).unwrap(),
        b"changed on the backup"
    );
    assert_eq!(
        std::fs::read(saved.join("created-on-backup")).unwrap(),
        b"new on backup"
    );
    assert_eq!(
        std::fs::read(saved.join("local-deleted")).unwrap(),
        b"edited on backup"
    );
    assert_eq!(
        std::fs::read(dst.join("backup-edit")).unwrap(),
        b"backup-edit v1"
    );
    assert_eq!(
        std::fs::read(dst.join("both-edit")).unwrap(),
        b"changed locally as well, longer"
    );
    assert!(!dst.join("created-on-backup").exists() && !dst.join("local-deleted").exists());

    // The patched manifest describes the backup now, so nothing diverges any more.
    let patched = conflict::patch_manifest(&m, &dst, &paths, "t2".into()).unwrap();
    let plan = job.plan(&cancel).unwrap();
    assert!(
        conflict::detect(&plan, &patched, &src, &dst)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn keep_backup_copies_into_the_working_copy_after_saving_it() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst, root) = (
        d.path().join("b/src"),
        d.path().join("b/dst"),
        d.path().join("b"),
    );
    write(&src.join("x/f"), b"local version");
    write(&dst.join("x/f"), b"backup version!");
    let cancel = Cancel::new();
    let paths = vec![b"x/f".to_vec()];
    let input = ResolveInput {
        src: &src,
        dst: &dst,
        backup_root: &root,
        repo: "r",
        timestamp: "T",
        paths: &paths,
        scratch: &d.path().join("s"),
        search_path: None,
        cancel: &cancel,
    };
    conflict::resolve(&input, Keep::Backup).unwrap();
    assert_eq!(std::fs::read(src.join("x/f")).unwrap(), b"backup version!");
    assert_eq!(
        std::fs::read(root.join(".repoman-conflicts/r/T/local/x/f")).unwrap(),
        b"local version"
    );
    assert_eq!(std::fs::read(dst.join("x/f")).unwrap(), b"backup version!");
}

#[test]
fn extending_a_manifest_by_the_run_items_equals_hashing_the_backup_from_scratch() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    for i in 0..30 {
        write(
            &src.join(format!("d{}/e{}/f{i}", i % 3, i % 2)),
            format!("v1 {i}").as_bytes(),
        );
    }
    std::os::unix::fs::symlink("d0", src.join("link")).unwrap();
    write(&src.join("becomes-dir"), b"file first");
    let cancel = Cancel::new();
    let ex = Excludes::default();
    let job = RsyncJob::new(&src, &dst);
    job.run(None, &cancel, |_| {}).unwrap();
    let mut last = manifest::build_full("p", &dst, &ex, &cancel, "t".into()).unwrap();

    let rounds: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {
            write(&src.join("d0/e0/f0"), b"changed content, longer");
            write(&src.join("new/deep/file"), b"new");
            std::fs::remove_dir_all(src.join("d1/e1")).unwrap();
            std::fs::set_permissions(src.join("d2/e0/f2"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }),
        Box::new(|| {
            std::fs::remove_file(src.join("link")).unwrap();
            std::os::unix::fs::symlink("d2", src.join("link")).unwrap();
            std::fs::remove_file(src.join("becomes-dir")).unwrap();
            write(&src.join("becomes-dir/inner"), b"now a directory");
            std::fs::set_permissions(src.join("d0"), std::fs::Permissions::from_mode(0o750))
                .unwrap();
            std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o700)).unwrap();
        }),
        Box::new(|| {
            std::fs::remove_dir_all(src.join("d0")).unwrap();
        }),
    ];
    for (n, change) in rounds.iter().enumerate() {
        change();
        let report = job.run(None, &cancel, |_| {}).unwrap();
        let extended = last.apply(&report.items, &dst, "t".into()).unwrap();
        let scratch = manifest::build_full("p", &dst, &ex, &cancel, "t".into()).unwrap();
        assert_eq!(extended.entries, scratch.entries, "round {n}");
        assert_eq!(extended.root, scratch.root, "round {n}");
        last = extended;
    }
}
