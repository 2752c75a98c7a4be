//! Benchmark helper (`scripts/bench/backup.sh`): the manifest update after one changed file, as a
//! sync does it (extend the last manifest by rsync's itemized change, store the new tree objects),
//! against a full hash of the same tree; plus the walk-based update with the stat cache.
//!
//! usage: cargo run --release -p repoman-backup --example manifest_update -- DIR [FILES]
//! Creates DIR with FILES (default 100000) files of 2 KiB if it does not exist.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use repoman_backup::exclude::Excludes;
use repoman_backup::manifest::{self, BuildInput, StatCache};
use repoman_core::Cancel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(100_000);
    if !dir.exists() {
        for i in 0..n {
            let d = dir.join(format!("d{:02}/s{}", i % 100, i % 10));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("f{i}.txt")), vec![(i % 251) as u8; 2048]).unwrap();
        }
    }
    let work = tempfile_dir();
    let (ex, cancel, none) = (Excludes::default(), Cancel::new(), HashSet::new());
    let input = |cache| BuildInput {
        project: "bench",
        walk_root: dir,
        content_root: dir,
        excludes: &ex,
        cache,
        force: &none,
        cancel: &cancel,
        created_at: "t".into(),
    };

    let t = Instant::now();
    let b = manifest::build(&input(None)).unwrap();
    let (m, cache, s) = (b.manifest, b.cache, b.stats);
    let full_build = t.elapsed();
    let t = Instant::now();
    m.store(&work.join("m")).unwrap();
    let full_store = t.elapsed();
    let t = Instant::now();
    cache.save(&work.join("cache")).unwrap();
    let full_cache = t.elapsed();
    println!(
        "full: {} entries, {} hashed; build {:?}, store {:?}, cache save {:?}, total {:?}",
        s.entries,
        s.hashed,
        full_build,
        full_store,
        full_cache,
        full_build + full_store + full_cache
    );

    std::fs::write(
        dir.join("d07/s7/f7.txt"),
        format!("changed at {:?}", std::time::SystemTime::now()),
    )
    .unwrap();
    let t0 = Instant::now();
    let cache = StatCache::load(&work.join("cache"));
    let load = t0.elapsed();
    let t = Instant::now();
    let walked = manifest::walk(dir, &ex, &cancel).unwrap().len();
    let walk_only = t.elapsed();
    let t = Instant::now();
    let b = manifest::build(&input(Some(&cache))).unwrap();
    let (m2, cache2, s2) = (b.manifest, b.cache, b.stats);
    let build = t.elapsed();
    let t = Instant::now();
    m2.store(&work.join("m")).unwrap();
    let store = t.elapsed();
    let t = Instant::now();
    cache2.save(&work.join("cache")).unwrap();
    let save = t.elapsed();
    let update = load + build + store + save;
    let full = full_build + full_store + full_cache;
    println!(
        "update: {} hashed, {} reused; cache load {load:?}, (walk alone {walk_only:?}, {walked} entries), build {build:?}, store {store:?}, cache save {save:?}, total {update:?}",
        s2.hashed, s2.reused
    );
    println!(
        "walk-based update / full = {:.1}%",
        100.0 * update.as_secs_f64() / full.as_secs_f64()
    );

    // What a sync does: the last manifest (already loaded for the guards) plus rsync's items.
    std::fs::write(
        dir.join("d07/s7/f7.txt"),
        format!("changed again at {:?}", std::time::SystemTime::now()),
    )
    .unwrap();
    let line = format!(
        "@rm >f.st...... {} d07/s7/f7.txt",
        std::fs::metadata(dir.join("d07/s7/f7.txt")).unwrap().len()
    );
    let items = vec![repoman_backup::rsync::PlanItem::parse_line(line.as_bytes()).unwrap()];
    let t = Instant::now();
    let m3 = m2.apply(&items, dir, "t".into()).unwrap();
    let apply = t.elapsed();
    let t = Instant::now();
    m3.store(&work.join("m")).unwrap();
    let store3 = t.elapsed();
    let t = Instant::now();
    let loaded = repoman_backup::manifest::Manifest::load(&work.join("m"), &m3.root).unwrap();
    let load3 = t.elapsed();
    assert_eq!(loaded.root, m3.root);
    println!(
        "sync update: apply {apply:?}, store {store3:?}, total {:?} = {:.1}% of full; (loading a 100k manifest: {load3:?})",
        apply + store3,
        100.0 * (apply + store3).as_secs_f64() / full.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
}

fn tempfile_dir() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("repoman-manifest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}
