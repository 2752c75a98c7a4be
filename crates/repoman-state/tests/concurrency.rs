//! Two processes appending 5,000 events each at the same time produce 10,000 events in one
//! unbroken chain, with each writer's events in its own order.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use repoman_state::log::{ChainVerifier, EventLog, Head};

#[test]
fn two_processes_appending_5000_each_form_one_chain_of_10000() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let bin = env!("CARGO_BIN_EXE_repoman-state-bench");
    let spawn = |tag: &str| {
        Command::new(bin)
            .args(["append", state_dir.to_str().unwrap(), "5000", tag])
            .env_clear()
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn("a"), spawn("b"));
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());

    let log = EventLog::new(state_dir.join("events"));
    let mut v = ChainVerifier::new(Head::empty());
    let (mut next_a, mut next_b) = (0u64, 0u64);
    let mut interleaved = 0u64;
    let mut last_writer = String::new();
    for l in log.read_from(1).unwrap().located() {
        let l = l.unwrap();
        v.check(&l).unwrap();
        let writer = l.event.data["writer"].as_str().unwrap().to_owned();
        let i = l.event.data["i"].as_u64().unwrap();
        let next = if writer == "a" {
            &mut next_a
        } else {
            &mut next_b
        };
        assert_eq!(
            i, *next,
            "writer {writer} out of order at seq {}",
            l.event.seq
        );
        *next += 1;
        if !last_writer.is_empty() && writer != last_writer {
            interleaved += 1;
        }
        last_writer = writer;
    }
    assert_eq!(v.head().seq, 10_000);
    assert_eq!((next_a, next_b), (5000, 5000));
    // Not a proof of overlap, but a sign of it: the writers took turns at least once.
    assert!(interleaved >= 1);
    // The index each writer kept up to date agrees with the log.
    let conn = rusqlite::Connection::open(state_dir.join("index.db")).unwrap();
    let (n, head): (i64, String) = conn
        .query_row("SELECT (SELECT COUNT(*) FROM events), (SELECT value FROM meta WHERE key = 'head_hash')", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, head), (10_000, v.head().hash.clone()));
}
