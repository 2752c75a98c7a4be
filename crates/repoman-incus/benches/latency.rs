//! Latency of the Incus client against its peers, measured in one run on the real daemon:
//!
//! - `GET /1.0` through [`Incus`] (reqwest blocking over the unix socket, pooled connection);
//! - the same request hand-written over one `std::os::unix::net::UnixStream` (keep-alive): the
//!   floor any HTTP client on this socket can reach;
//! - `incus query /1.0`: the official CLI, one process per call (what shelling out would cost);
//! - running `true` in a container: recorded-output exec, websocket exec, and `incus exec`;
//! - listing N running containers: `recursion=1`, `recursion=2` (what `incus list` does), and
//!   `recursion=1` plus per-instance state fetched in parallel.
//!
//! Run: `cargo bench -p repoman-incus --bench latency` (needs the lab: `scripts/incus-lab`).
//! A number after `--` sets N (default 10). Numbers go to docs/performance.md.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use repoman_core::Env;
use repoman_core::process::Cmd;
use repoman_incus::testlab::{TEST_IMAGE_ALIAS, TestLab};
use repoman_incus::{ExecSpec, ImageSource, InstanceSpec, Terminal};

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let median = samples[n / 2];
    let p95 = samples[(n * 95 / 100).min(n - 1)];
    let mean = samples.iter().sum::<Duration>() / n as u32;
    println!(
        "{name:<52} n={n:<4} median {:>8.3} ms   p95 {:>8.3} ms   mean {:>8.3} ms",
        ms(median),
        ms(p95),
        ms(mean)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// One keep-alive HTTP/1.1 GET on an open stream; returns the body length.
fn raw_get(reader: &mut BufReader<UnixStream>, path: &str) -> usize {
    write!(
        reader.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: incus\r\nUser-Agent: bench\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if let Some(n) = length {
        let mut body = vec![0; n];
        reader.read_exact(&mut body).unwrap();
        return n;
    }
    assert!(chunked, "neither Content-Length nor chunked");
    let mut total = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        total += size;
        if size == 0 {
            return total;
        }
    }
}

fn main() {
    let env = Env::capture();
    let Some(lab) = TestLab::connect_with(&env) else {
        return;
    };
    let socket = lab.incus.socket().unwrap().path.clone();
    println!(
        "Incus {} via {} ({} API extensions)",
        lab.incus.server().environment.server_version,
        socket.display(),
        lab.incus.server().api_extensions.len()
    );

    // Cold: resolve, connect, GET /1.0, check extensions.
    let mut cold = Vec::new();
    for _ in 0..20 {
        let (d, incus) = time(|| repoman_incus::Incus::connect(&env).unwrap());
        drop(incus);
        cold.push(d);
    }
    stats("Incus::connect (new socket + GET /1.0)", cold);

    let incus = &lab.incus;
    incus.fetch_server().unwrap();
    let warm = (0..300)
        .map(|_| time(|| incus.fetch_server().unwrap()).0)
        .collect();
    stats("GET /1.0, reqwest blocking (pooled)", warm);

    let mut reader = BufReader::new(UnixStream::connect(&socket).unwrap());
    raw_get(&mut reader, "/1.0");
    let raw = (0..300)
        .map(|_| time(|| raw_get(&mut reader, "/1.0")).0)
        .collect();
    stats("GET /1.0, hand-written HTTP/1.1 on UnixStream", raw);

    let path = env.get_os("PATH").map(|p| p.to_owned()).unwrap_or_default();
    let cli = (0..20)
        .map(|_| {
            time(|| {
                Cmd::new("incus")
                    .args(["query", "/1.0"])
                    .search_path(&path)
                    .timeout(Duration::from_secs(30))
                    .run()
                    .unwrap()
            })
            .0
        })
        .collect();
    stats("`incus query /1.0` (official CLI, one process each)", cli);

    // Listing N running containers.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let project = lab.project("bench");
    let (d, ()) = time(|| {
        for i in 0..n {
            let spec = InstanceSpec::new(format!("b{i}"), ImageSource::alias(TEST_IMAGE_ALIAS))
                .start(true);
            project.create_instance(&spec).unwrap();
        }
    });
    println!(
        "created and started {n} containers in {:.0} ms ({:.0} ms each)",
        ms(d),
        ms(d) / n as f64
    );

    // Running `true` in a container: recorded output, websockets, and the official CLI.
    let exec_true = ExecSpec::new(["true"]);
    let recorded = (0..20)
        .map(|_| time(|| project.exec("b0", &exec_true).unwrap()).0)
        .collect();
    stats("exec `true`, record-output (3 requests)", recorded);
    let streamed = (0..20)
        .map(|_| time(|| project.exec_streaming("b0", &exec_true, |_, _| {}).unwrap()).0)
        .collect();
    stats("exec `true`, websockets (exec_streaming)", streamed);
    let cli_args = project.cli_exec_args("b0", &exec_true, Terminal::None);
    let cli_exec = (0..20)
        .map(|_| {
            time(|| {
                Cmd::new("incus")
                    .args(&cli_args)
                    .search_path(&path)
                    .timeout(Duration::from_secs(30))
                    .run()
                    .unwrap()
            })
            .0
        })
        .collect();
    stats("`incus exec ... -- true` (official CLI)", cli_exec);

    let one = (0..30)
        .map(|_| time(|| project.instance_state("b0").unwrap()).0)
        .collect();
    stats("GET /1.0/instances/b0/state (one running instance)", one);
    let r1 = (0..30)
        .map(|_| time(|| project.list_instances().unwrap()).0)
        .collect();
    stats(&format!("list {n} instances, recursion=1 (no state)"), r1);
    let r2 = (0..10)
        .map(|_| time(|| project.list_instances_with_state().unwrap()).0)
        .collect();
    stats(&format!("list {n} instances, recursion=2 (with state)"), r2);
    let par = (0..10)
        .map(|_| {
            time(|| {
                let list = project.list_instances().unwrap();
                let names: Vec<String> = list.into_iter().map(|i| i.name).collect();
                for (_, s) in project.instance_states(&names) {
                    s.unwrap();
                }
            })
            .0
        })
        .collect();
    stats(
        &format!("list {n} instances, recursion=1 + parallel state"),
        par,
    );
    let (d, ()) = time(|| drop(project));
    println!("force-deleted the bench project in {:.0} ms", ms(d));
}
