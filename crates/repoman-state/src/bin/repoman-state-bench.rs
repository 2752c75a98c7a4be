//! A driver for the state crate's benchmarks and multi-process tests (not part of the CLI).
//!
//! - `append STATE_DIR COUNT [TAG]`: append COUNT events one at a time (each fsynced), as a
//!   separate process; the concurrency test runs two of these at once.
//! - `rebuild STATE_DIR`: time one index rebuild of an existing log (for profiling).
//! - `bench DIR [EVENTS]`: the benchmarks of issue 3, each against its physical peer measured in
//!   the same run (raw fsync rate; bare SQLite INSERT in one transaction). Prints Markdown.
//!
//! Printing is this program's purpose, hence the allowance below.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use repoman_core::{Clock, Env, Paths};
use repoman_state::event::{Event, GENESIS_PREV, canonical_json};
use repoman_state::log::{EventLog, Head};
use repoman_state::{NewEvent, State};
use serde_json::json;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("append") if args.len() >= 3 => append(
            Path::new(&args[1]),
            args[2].parse().unwrap_or(0),
            args.get(3).cloned().unwrap_or_default(),
        ),
        Some("rebuild") if args.len() >= 2 => rebuild(Path::new(&args[1]), args.get(2).map(String::as_str) != Some("serial")),
        Some("bench") if args.len() >= 2 => bench(
            Path::new(&args[1]),
            args.get(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000),
        ),
        _ => Err(
            "usage: repoman-state-bench append STATE_DIR COUNT [TAG] | bench DIR [EVENTS] | rebuild STATE_DIR"
                .to_owned(),
        ),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn env_for(state_dir: &Path) -> (Env, Paths) {
    let env = Env::from_pairs([
        ("HOME", state_dir.join("home")),
        ("USER", PathBuf::from("bench")),
        ("REPOMAN_STATE_DIR", state_dir.to_path_buf()),
        ("REPOMAN_RUNTIME_DIR", state_dir.join("run")),
    ]);
    // HOME and an absolute REPOMAN_STATE_DIR are set, so resolving cannot fail.
    let paths = Paths::resolve(&env).expect("paths resolve with HOME set");
    (env, paths)
}

fn append(state_dir: &Path, count: u64, tag: String) -> Result<(), String> {
    let (env, paths) = env_for(state_dir);
    let state = State::open(&paths, &env, Clock::system()).map_err(|e| e.to_string())?;
    for i in 0..count {
        state
            .append(NewEvent::new(
                "test.appended",
                format!("test:{tag}"),
                json!({"writer": tag, "i": i}),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Time one index rebuild of an existing state directory (for profiling).
fn rebuild(state_dir: &Path, pipelined: bool) -> Result<(), String> {
    let log = EventLog::new(state_dir.join("events"));
    let path = state_dir.join("index.db");
    let _ = std::fs::remove_file(&path);
    let (t, c) = (Instant::now(), cpu());
    let head = repoman_state::replay::rebuild_index_with(&log, &path, pipelined)
        .map_err(|e| e.to_string())?;
    println!(
        "rebuilt ({}) {} events in {:.2} s wall, {:.2} s CPU ({:.0} events/s)",
        if pipelined { "pipelined" } else { "serial" },
        head.seq,
        t.elapsed().as_secs_f64(),
        (cpu() - c).as_secs_f64(),
        rate(head.seq, t.elapsed())
    );
    Ok(())
}

/// CPU time used by this process so far (all threads).
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn bench(dir: &Path, events: u64) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    let st = |e: repoman_state::StateError| e.to_string();

    // 1. Raw fsync rate of this disk: 300-byte appends, each followed by fdatasync.
    let raw_n = 300u64;
    let raw_path = dir.join("raw-fsync.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&raw_path)
        .map_err(io)?;
    let line = [b'x'; 300];
    let t = Instant::now();
    for _ in 0..raw_n {
        f.write_all(&line).map_err(io)?;
        f.sync_data().map_err(io)?;
    }
    let raw = rate(raw_n, t.elapsed());
    drop(f);
    let _ = std::fs::remove_file(&raw_path);

    // 2. Single appends (each locked, chained, fsynced, indexed).
    let single_dir = dir.join("single");
    let _ = std::fs::remove_dir_all(&single_dir);
    let (env, paths) = env_for(&single_dir);
    let state = State::open(&paths, &env, Clock::system()).map_err(st)?;
    let single_n = 300u64;
    let t = Instant::now();
    for i in 0..single_n {
        state
            .append(NewEvent::new(
                "bench.single",
                "test:single",
                json!({"i": i}),
            ))
            .map_err(st)?;
    }
    let single = rate(single_n, t.elapsed());

    // 3. Batches of 1,000 (one fsync per batch).
    let batches = 20u64;
    let t = Instant::now();
    for b in 0..batches {
        let evs = (0..1000)
            .map(|i| {
                NewEvent::new(
                    "bench.batch",
                    format!("test:b{}", i % 50),
                    json!({"b": b, "i": i}),
                )
            })
            .collect();
        state.append_batch(evs).map_err(st)?;
    }
    let batch = rate(batches * 1000, t.elapsed());
    drop(state);

    // 4. A log of `events` events (~300 bytes each), written straight to segments.
    let big = dir.join("big");
    let _ = std::fs::remove_dir_all(&big);
    let log = EventLog::new(big.join("events"));
    let t = Instant::now();
    let mut head = Head::empty();
    let clock = Clock::pinned(
        "2026-01-01T00:00:00Z"
            .parse()
            .map_err(|e: jiff::Error| e.to_string())?,
    );
    let mut written = 0u64;
    while written < events {
        let n = (events - written).min(10_000);
        let mut batch = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let seq = head.seq + 1;
            let p = seq % 1000;
            let (type_, object) = match seq % 5 {
                0 => ("backup.synced", format!("backup:proj-{p}")),
                1 => ("sandbox.started", format!("sandbox:proj-{p}")),
                2 => ("policy.decided", format!("backup:proj-{p}")),
                3 => ("tool.discovered", format!("tool:t{}", seq % 300)),
                _ => ("project.updated", format!("project:proj-{p}")),
            };
            let data = if type_ == "policy.decided" {
                json!({"operation": "sync", "project": format!("proj-{p}"), "effect": "allow", "reasons": []})
            } else {
                json!({"files": seq % 977, "bytes": seq * 31, "manifest": format!("{:016x}", seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)), "note": "benchmark event with a typical payload"})
            };
            let mut e = Event {
                seq,
                id: clock.new_id(),
                at: clock.now_rfc3339(),
                type_: type_.into(),
                object,
                actor: format!("human:bench@host{}", seq % 3),
                device: "0190a0b0-0000-7000-8000-000000000001".into(),
                profile: "default".into(),
                data,
                prev: head.hash.clone(),
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            head = Head {
                seq,
                hash: e.hash.clone(),
            };
            batch.push(e);
        }
        let tail = log.tail().map_err(st)?;
        log.write_events(&tail, &batch).map_err(st)?;
        written += n;
    }
    let gen_time = t.elapsed();
    let log_bytes = log.size().map_err(st)?;

    // 5 and 6, interleaved three times (best of three of each, against the noise of a shared
    // machine): rebuild the index from the log (read, verify the chain, apply, build indexes),
    // and the limit: the same rows, already in memory, INSERTed in one transaction.
    let index_path = big.join("index.db");
    let rows: Vec<Event> = log
        .read_from(1)
        .map_err(st)?
        .collect::<Result<_, _>>()
        .map_err(st)?;
    let data_json: Vec<String> = rows.iter().map(|e| canonical_json(&e.data)).collect();
    let bare_path = big.join("bare.db");
    let mut rebuild_time = Duration::MAX;
    let mut bare_time = Duration::MAX;
    let mut rebuild_cpu = Duration::MAX;
    let mut bare_cpu = Duration::MAX;
    for _ in 0..3 {
        let _ = std::fs::remove_file(&index_path);
        let (t, c) = (Instant::now(), cpu());
        let rebuilt = repoman_state::state::rebuild_index(&log, &index_path).map_err(st)?;
        rebuild_time = rebuild_time.min(t.elapsed());
        rebuild_cpu = rebuild_cpu.min(cpu() - c);
        if rebuilt.seq != events {
            return Err(format!(
                "rebuild reached seq {}, expected {events}",
                rebuilt.seq
            ));
        }
        let _ = std::fs::remove_file(&bare_path);
        let mut conn = rusqlite::Connection::open(&bare_path).map_err(|e| e.to_string())?;
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; CREATE TABLE events(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL, object TEXT NOT NULL, actor TEXT NOT NULL, device TEXT NOT NULL, profile TEXT NOT NULL, data TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);")
            .map_err(|e| e.to_string())?;
        let (t, c) = (Instant::now(), cpu());
        {
            let tx = conn.transaction().map_err(|e| e.to_string())?;
            {
                let mut stmt = tx
                    .prepare(
                        "INSERT INTO events VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(|e| e.to_string())?;
                for (e, d) in rows.iter().zip(&data_json) {
                    stmt.execute(rusqlite::params![
                        e.seq as i64,
                        e.id.to_string(),
                        e.at,
                        e.type_,
                        e.object,
                        e.actor,
                        e.device,
                        e.profile,
                        d,
                        e.prev,
                        e.hash
                    ])
                    .map_err(|e| e.to_string())?;
                }
            }
            tx.commit().map_err(|e| e.to_string())?;
        }
        bare_time = bare_time.min(t.elapsed());
        bare_cpu = bare_cpu.min(cpu() - c);
        drop(conn);
        let _ = std::fs::remove_file(&bare_path);
    }
    drop(rows);
    drop(data_json);

    // 7. explain on the big log, warm: a fresh handle per call (as a new CLI process would open
    //    it), after one call to warm the page cache.
    let (env, paths) = env_for(&big);
    let explain_once = || -> Result<Duration, String> {
        let t = Instant::now();
        let s = State::open_read_only(&paths, &env, Clock::system()).map_err(st)?;
        let x = repoman_state::explain::explain(&s, "project:proj-7").map_err(st)?;
        if !x.known {
            return Err("explain did not find project:proj-7".into());
        }
        Ok(t.elapsed())
    };
    explain_once()?;
    let mut times: Vec<Duration> = (0..20).map(|_| explain_once()).collect::<Result<_, _>>()?;
    times.sort();
    let median = times[times.len() / 2];
    let index_bytes = std::fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0);

    println!("| measurement | result | peer (same run) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| append, one event per fsync | {single:.0} events/s | raw fsync: {raw:.0} writes/s | {:.0}% |",
        100.0 * single / raw
    );
    println!(
        "| append, batches of 1,000 | {batch:.0} events/s | raw fsync: {raw:.0} writes/s | {:.0}x |",
        batch / raw
    );
    println!(
        "| index rebuild from {events} events ({:.0} MB log), best of 3 | {:.0} events/s ({:.1} s wall, {:.1} s CPU) | bare INSERT in one transaction, best of 3: {:.0} rows/s ({:.1} s wall, {:.1} s CPU) | {:.0}% (wall), {:.0}% (CPU) |",
        log_bytes as f64 / 1e6,
        rate(events, rebuild_time),
        rebuild_time.as_secs_f64(),
        rebuild_cpu.as_secs_f64(),
        rate(events, bare_time),
        bare_time.as_secs_f64(),
        bare_cpu.as_secs_f64(),
        100.0 * bare_time.as_secs_f64() / rebuild_time.as_secs_f64(),
        100.0 * bare_cpu.as_secs_f64() / rebuild_cpu.as_secs_f64()
    );
    println!(
        "| explain on the {events}-event log, warm (open + answer, median of 20) | {:.1} ms | goal < 50 ms | index {:.0} MB |",
        median.as_secs_f64() * 1e3,
        index_bytes as f64 / 1e6
    );
    println!(
        "\n(log generated in {:.1} s; prev of the first event {}…)",
        gen_time.as_secs_f64(),
        &GENESIS_PREV[..8]
    );
    Ok(())
}
