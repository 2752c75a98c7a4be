//! The daemon benchmark (issue 12), run by `scripts/bench/groove`: each figure is measured next to
//! its peer in the same run on the same estate.
//!
//! 1. Round trip of one read (`explain`, `log.head`) over the hard groove vs the same read as a
//!    `repoman --json` process.
//! 2. Event appends through the daemon (group commit) with 1, 10 and 100 concurrent writers vs the
//!    raw fsync rate of the same disk (write + fdatasync of one small record in a loop).
//! 3. Fan-out: events/s delivered to 10 subscribers while 10 writers append at the fsync-bound
//!    rate, and the lag from an append's acknowledgement to its delivery.
//! 4. The idle daemon with 50 sandboxed projects (50 agent endpoints): CPU and resident memory.
//!
//! env: `REPOMAN_BIN` (the repoman binary; the script builds a release one), `BENCH_SECS`
//! (seconds per timed phase, default 3). A timed call that fails stops the benchmark.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use repoman_groove::Client;
use serde_json::json;

struct Estate {
    dir: PathBuf,
    bin: PathBuf,
    daemon: Option<Child>,
}

impl Estate {
    fn new(bin: &Path, projects: usize, container: bool) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "repoman-groove-bench-{}-{projects}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home/.config/repoman")).unwrap();
        std::fs::create_dir_all(dir.join("local")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let mut reg = format!(
            "schema_version = 1\n[defaults]\nlocal_repos = {:?}\n",
            dir.join("local")
        );
        for p in 0..projects {
            std::fs::create_dir_all(dir.join(format!("local/p{p:02}"))).unwrap();
            reg.push_str(&format!(
                "[[project]]\nname = \"p{p:02}\"\nrepo = \"p{p:02}\"\ncontainer = {container}\n"
            ));
        }
        std::fs::write(dir.join("home/.config/repoman/repoman.toml"), reg).unwrap();
        Self {
            dir,
            bin: bin.to_path_buf(),
            daemon: None,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env("USER", "bench");
        c
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/repoman/groove.sock")
    }

    fn start(&mut self) {
        let mut c = self.cmd();
        c.args(["daemon", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.daemon = Some(c.spawn().unwrap());
        let t0 = Instant::now();
        while Client::connect(&self.socket())
            .and_then(|mut c| c.call("log.head", json!({})))
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket()).unwrap()
    }
}

impl Drop for Estate {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p) as usize]
}

fn rpc_rtt(c: &mut Client, method: &str, params: serde_json::Value, n: usize) -> f64 {
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            c.call(method, params.clone())
                .unwrap_or_else(|e| panic!("{method} failed: {e}"));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(v)
}

fn process_rtt(e: &Estate, args: &[&str], n: usize) -> f64 {
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let out = e.cmd().args(args).output().unwrap();
            assert!(
                out.status.success(),
                "repoman {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(v)
}

/// write + fdatasync of a ~300-byte record, in a loop: the disk's raw fsync rate.
fn raw_fsync_rate(dir: &Path, secs: f64) -> f64 {
    let path = dir.join("raw-fsync.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let rec = [b'x'; 300];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        f.write_all(&rec).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let _ = std::fs::remove_file(&path);
    n as f64 / t.elapsed().as_secs_f64()
}

fn appends(socket: &Path, writers: usize, secs: f64) -> (f64, Vec<(u64, Instant)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..writers)
        .map(|w| {
            let (socket, stop) = (socket.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket).unwrap();
                let mut acks = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let v = c
                        .call("event.append", json!({"type": "note.bench", "object": "project:p00", "data": {"w": w}}))
                        .unwrap_or_else(|e| panic!("event.append failed: {e}"));
                    acks.push((v["seq"].as_u64().unwrap(), Instant::now()));
                }
                acks
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let acks: Vec<(u64, Instant)> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    (acks.len() as f64 / t.elapsed().as_secs_f64(), acks)
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let bin =
        PathBuf::from(std::env::var("REPOMAN_BIN").expect("REPOMAN_BIN names the repoman binary"));
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);

    // 1. Round trips.
    let mut e = Estate::new(&bin, 5, false);
    e.start();
    let mut c = e.client();
    for i in 0..20 {
        c.call(
            "event.append",
            json!({"type": "note.bench", "object": "project:p00", "data": {"i": i}}),
        )
        .unwrap();
    }
    let rpc_explain = rpc_rtt(&mut c, "explain", json!({"object": "project:p00"}), 300);
    let proc_explain = process_rtt(&e, &["--json", "explain", "p00"], 30);
    let rpc_head = rpc_rtt(&mut c, "log.head", json!({}), 1000);
    let proc_log = process_rtt(&e, &["--json", "log", "--limit", "1"], 30);
    println!(
        "round trip: explain p00  groove {rpc_explain:.0} us  process {proc_explain:.0} us  ratio {:.3}",
        rpc_explain / proc_explain
    );
    println!(
        "round trip: log head     groove {rpc_head:.0} us  process (log --limit 1) {proc_log:.0} us  ratio {:.3}",
        rpc_head / proc_log
    );

    // 2. Appends vs raw fsync, same disk (the state directory's).
    let state = e.dir.join("home/.local/state/repoman");
    let raw = raw_fsync_rate(&state, secs);
    println!("raw fsync (write 300 B + fdatasync): {raw:.0}/s");
    for writers in [1, 10, 100] {
        let (rate, _) = appends(&e.socket(), writers, secs);
        println!(
            "daemon appends, {writers:>3} writers: {rate:.0} events/s  = {:.2} x raw fsync",
            rate / raw
        );
    }
    let st = c.call("daemon.status", json!({})).unwrap();
    println!(
        "commit: {} events in {} batches",
        st["commit"]["events"], st["commit"]["batches"]
    );

    // 3. Fan-out to 10 subscribers while 10 writers append.
    let head = c.call("log.head", json!({})).unwrap()["seq"]
        .as_u64()
        .unwrap();
    let subs: Vec<_> = (0..10)
        .map(|_| {
            let mut s = e.client();
            s.call("subscribe", json!({"from_seq": head + 1, "types": "note."}))
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            std::thread::spawn(move || {
                let mut got: Vec<(u64, Instant)> = Vec::new();
                while let Ok(n) = s.next_notification() {
                    assert_eq!(n["method"], "groove.event", "subscriber dropped: {n}");
                    got.push((n["params"]["seq"].as_u64().unwrap(), Instant::now()));
                }
                got
            })
        })
        .collect();
    let t = Instant::now();
    let (rate, acks) = appends(&e.socket(), 10, secs);
    let acked: std::collections::HashMap<u64, Instant> = acks.into_iter().collect();
    let mut delivered = 0usize;
    let mut lags = Vec::new();
    for s in subs {
        let got = s.join().unwrap();
        delivered += got.len();
        for (seq, at) in got {
            if let Some(a) = acked.get(&seq) {
                lags.push(at.saturating_duration_since(*a).as_secs_f64() * 1e3);
            }
        }
    }
    let wall = t.elapsed().as_secs_f64() - 5.0; // the subscribers' final read timeout
    assert_eq!(
        delivered,
        acked.len() * 10,
        "every subscriber got every event"
    );
    println!(
        "fan-out: {rate:.0} events/s appended, {:.0} events/s delivered to 10 subscribers; lag after ack p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        delivered as f64 / wall.max(secs),
        pct(lags.clone(), 0.5),
        pct(lags.clone(), 0.99),
        pct(lags, 1.0)
    );
    drop(c);
    drop(e);

    // 4. Idle with 50 sandboxed projects.
    let mut e = Estate::new(&bin, 50, true);
    e.start();
    let pid = e.daemon.as_ref().unwrap().id();
    std::thread::sleep(Duration::from_secs(2));
    let tick = 100.0; // USER_HZ on Linux
    let (c0, t0) = (proc_cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs.max(10.0) * 2.0));
    let cpu = (proc_cpu_ticks(pid) - c0) as f64 / tick / t0.elapsed().as_secs_f64() * 100.0;
    let endpoints = std::fs::read_dir(e.dir.join("run/repoman/agents"))
        .unwrap()
        .count();
    println!(
        "idle, 50 projects ({endpoints} agent endpoints): {cpu:.2} % of a core, {} MiB resident",
        rss_kib(pid) / 1024
    );
}
