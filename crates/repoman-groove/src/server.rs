//! Connections: reading request lines (bounded), rate limits, batches, notifications, agent
//! policy and recording, and the streaming side of `subscribe`.
//!
//! Each connection has one reader thread; responses and stream notifications are written whole
//! lines at a time under the connection's writer lock, so they never interleave mid-line.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use repoman_state::NewEvent;
use serde_json::{Value, json};

use crate::core::{Bucket, Caller, Core};
use crate::rpc::{self, Incoming, Request, RpcError};
use crate::stream::{self, Sub, SubQueue};

/// The writing half of a connection.
pub type Writer = Arc<Mutex<UnixStream>>;

fn write_line(w: &Writer, line: &str) -> std::io::Result<()> {
    let mut s = w
        .lock()
        .map_err(|_| std::io::Error::other("writer poisoned"))?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    s.write_all(&buf)
}

/// Read one line of at most `max` bytes. `Ok(None)` at end of stream; `Err(true)` when the line
/// is too long (the rest of the connection cannot be trusted to be framed).
fn read_line(
    r: &mut BufReader<UnixStream>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Option<()>, bool> {
    buf.clear();
    let n = r
        .by_ref()
        .take(max as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|_| false)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Some(()));
    }
    if buf.len() > max {
        return Err(true);
    }
    Ok(Some(())) // the last line, without a newline
}

/// Serve one accepted connection until it closes.
pub fn serve(core: Arc<Core>, stream: UnixStream, caller: Caller) {
    core.counters.connections.fetch_add(1, Ordering::Relaxed);
    let _guard = ConnGuard(core.clone(), caller.project().map(str::to_owned));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let writer: Writer = Arc::new(Mutex::new(write_half));
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let limits = core.cfg.limits.clone();
    let mut bucket = Bucket::new(limits.host_rate, limits.host_burst);
    let mut buf = Vec::with_capacity(4096);
    let mut subs: Vec<Arc<Sub>> = Vec::new();
    loop {
        match read_line(&mut reader, &mut buf, limits.max_request_bytes) {
            Ok(None) | Err(false) => break,
            Err(true) => {
                let e = RpcError::new(
                    rpc::TOO_LARGE,
                    format!(
                        "request larger than {} bytes; the connection is closed",
                        limits.max_request_bytes
                    ),
                )
                .with_data(json!({"kind": "usage", "limit": limits.max_request_bytes}));
                let _ = write_line(&writer, &rpc::failure(&Value::Null, &e));
                break;
            }
            Ok(Some(())) => {}
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        core.counters.requests.fetch_add(1, Ordering::Relaxed);
        let cost = 1.0;
        let allowed = if caller.is_agent() {
            match agent_bucket_take(&core, &caller, cost) {
                Ok(()) => true,
                Err(wait) => {
                    // A sandbox over its rate is slowed down, not just refused: answering
                    // refusals as fast as it sends would let it burn the daemon's CPU instead.
                    std::thread::sleep(wait.min(Duration::from_millis(50)));
                    false
                }
            }
        } else {
            bucket.take(cost)
        };
        let incoming = rpc::parse_line(&buf);
        if !allowed {
            core.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let e = RpcError::new(rpc::RATE_LIMITED, "too many requests; slow down")
                .with_data(json!({"kind": "unavailable", "hint": "retry after a short pause"}));
            // Answer each request (not notifications) with the refusal.
            let ids: Vec<Value> = match &incoming {
                Incoming::Single(Ok(r)) => r.id.clone().into_iter().collect(),
                Incoming::Batch(items) => items
                    .iter()
                    .filter_map(|r| r.as_ref().ok().and_then(|r| r.id.clone()))
                    .collect(),
                _ => vec![Value::Null],
            };
            for id in ids {
                if write_line(&writer, &rpc::failure(&id, &e)).is_err() {
                    break;
                }
            }
            continue;
        }
        let out = match incoming {
            Incoming::Invalid(e) => Some(rpc::failure(&Value::Null, &e)),
            Incoming::Single(Err((id, e))) => Some(rpc::failure(&id, &e)),
            Incoming::Single(Ok(req)) if req.method == "subscribe" => {
                match start_subscription(&core, &caller, &req, &writer) {
                    Ok(sub) => {
                        subs.push(sub);
                        None
                    }
                    Err(e) => req.id.as_ref().map(|id| rpc::failure(id, &e)),
                }
            }
            Incoming::Single(Ok(req)) => handle(&core, &caller, &req),
            Incoming::Batch(items) if items.len() > limits.max_batch => Some(rpc::failure(
                &Value::Null,
                &RpcError::invalid_request(format!(
                    "a batch of {} requests; at most {} are accepted",
                    items.len(),
                    limits.max_batch
                )),
            )),
            Incoming::Batch(items) => {
                let answers: Vec<String> = items
                    .into_iter()
                    .filter_map(|item| match item {
                        Err((id, e)) => Some(rpc::failure(&id, &e)),
                        Ok(req) if req.method == "subscribe" => req.id.as_ref().map(|id| {
                            rpc::failure(
                                id,
                                &RpcError::invalid_request("`subscribe` cannot be part of a batch"),
                            )
                        }),
                        Ok(req) => handle(&core, &caller, &req),
                    })
                    .collect();
                (!answers.is_empty()).then(|| format!("[{}]", answers.join(",")))
            }
        };
        if let Some(line) = out
            && write_line(&writer, &line).is_err()
        {
            break;
        }
    }
    for s in subs {
        s.close();
    }
    if let Ok(w) = writer.lock() {
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
}

/// Counts the connection while it lives (and, for a sandbox's, against its own cap, which the
/// accept loop took).
struct ConnGuard(Arc<Core>, Option<String>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.counters.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(p) = &self.1 {
            self.0.close_agent_connection(p);
        }
    }
}

/// Take from the sandbox's bucket; `Err(how long until a token is back)` when it is empty.
fn agent_bucket_take(core: &Core, caller: &Caller, cost: f64) -> Result<(), Duration> {
    let Some(project) = caller.project() else {
        return Ok(());
    };
    let limits = &core.cfg.limits;
    let Ok(mut buckets) = core.agent_buckets.lock() else {
        return Err(Duration::from_millis(50));
    };
    let b = buckets
        .entry(project.to_owned())
        .or_insert_with(|| Bucket::new(limits.agent_rate, limits.agent_burst));
    if b.take(cost) {
        Ok(())
    } else {
        Err(b.wait_for(cost))
    }
}

/// Run one request; the response line, or `None` for a notification.
fn handle(core: &Core, caller: &Caller, req: &Request) -> Option<String> {
    core.counters.inflight.fetch_add(1, Ordering::Relaxed);
    let result = call(core, caller, req);
    core.counters.inflight.fetch_sub(1, Ordering::Relaxed);
    let id = req.id.as_ref()?;
    Some(match result {
        Ok(v) => rpc::success(id, &v),
        Err(e) => rpc::failure(id, &e),
    })
}

/// The agent policy, the call, and (for agents) its record.
fn call(core: &Core, caller: &Caller, req: &Request) -> Result<Value, RpcError> {
    if core.stopping.load(Ordering::Relaxed) && req.method != "daemon.status" {
        core.check_running()?;
    }
    let Some(project) = caller.project() else {
        return crate::methods::dispatch(core, caller, &req.method, &req.params);
    };
    let params = match rpc::named(&req.params) {
        Ok(p) => p.clone(),
        Err(e) => {
            record_agent_call(core, caller, &req.method, "error", Some(&e), None)?;
            return Err(e);
        }
    };
    let checked = match crate::agent::check(&req.method, &params, project) {
        Ok(p) => p,
        Err(refusal) => {
            core.counters.refused.fetch_add(1, Ordering::Relaxed);
            let e = RpcError::blocked(
                format!("refused by the agent policy: {}", refusal.reason),
                Some("agents may read their own project, request its sync or verify, and append agent.* events".into()),
            )
            .with_data(json!({"kind": "blocked", "rule": refusal.rule, "reason": refusal.reason,
                              "hint": "agents may read their own project, request its sync or verify, and append agent.* events"}));
            // The refusal is on record before the agent hears about it.
            record_agent_call(
                core,
                caller,
                &req.method,
                "refused",
                Some(&e),
                Some(refusal.rule),
            )?;
            return Err(e);
        }
    };
    let result = crate::methods::dispatch(core, caller, &req.method, &Value::Object(checked));
    let appended_itself = req.method == "event.append" && result.is_ok();
    if !appended_itself {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        record_agent_call(
            core,
            caller,
            &req.method,
            outcome,
            result.as_ref().err(),
            None,
        )?;
    }
    result
}

fn record_agent_call(
    core: &Core,
    caller: &Caller,
    method: &str,
    outcome: &str,
    err: Option<&RpcError>,
    rule: Option<&str>,
) -> Result<(), RpcError> {
    let project = caller.project().unwrap_or_default();
    let mut data = json!({"method": method, "outcome": outcome, "pid": caller.pid});
    if let Some(e) = err {
        data["code"] = json!(e.code);
        data["message"] = json!(e.message);
    }
    if let Some(r) = rule {
        data["rule"] = json!(r);
    }
    core.record(
        caller.actor_request(),
        NewEvent::new(
            "agent.called",
            repoman_core::ObjectId::project(project).to_string(),
            data,
        ),
    )
    .map(|_| ())
}

/// Answer `subscribe`, then stream on a thread of its own.
fn start_subscription(
    core: &Arc<Core>,
    caller: &Caller,
    req: &Request,
    writer: &Writer,
) -> Result<Arc<Sub>, RpcError> {
    core.check_running()?;
    let mut params = rpc::named(&req.params)?.clone();
    if let Some(project) = caller.project() {
        params = match crate::agent::check("subscribe", &params, project) {
            Ok(p) => p,
            Err(r) => return Err(RpcError::blocked(r.reason, None)),
        };
        record_agent_call(core, caller, "subscribe", "ok", None, None)?;
    }
    if let Some(m) = crate::methods::method("subscribe") {
        let schema = (m.params)();
        if let Some(k) = params
            .keys()
            .find(|k| schema["properties"].get(k.as_str()).is_none())
        {
            return Err(RpcError::invalid_params(format!(
                "`subscribe` takes no parameter `{k}`"
            )));
        }
    }
    let mut filter = stream::filter_from_params(&params).map_err(RpcError::invalid_params)?;
    filter.project = params
        .get("project")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let limits = &core.cfg.limits;
    let buffer = match params.get("buffer") {
        None | Some(Value::Null) => limits.sub_buffer,
        Some(v) => v
            .as_u64()
            .filter(|b| *b >= 1)
            .map(|b| (b as usize).min(limits.sub_buffer_max))
            .ok_or_else(|| RpcError::invalid_params("`buffer` must be a positive integer"))?,
    };
    let head = core.hub.published();
    let from_seq = match params.get("from_seq") {
        None | Some(Value::Null) => head + 1,
        Some(v) => v
            .as_u64()
            .filter(|s| *s >= 1)
            .ok_or_else(|| RpcError::invalid_params("`from_seq` must be a positive integer"))?,
    };
    let sub = Arc::new(Sub {
        id: core.hub.new_id(),
        filter,
        buffer,
        queue: Mutex::new(SubQueue {
            items: Default::default(),
            dropped: None,
            closed: false,
        }),
        cv: Default::default(),
    });
    if let Some(id) = &req.id {
        let line = rpc::success(
            id,
            &json!({"subscription": sub.id, "from_seq": from_seq, "head": head, "buffer": buffer}),
        );
        write_line(writer, &line).map_err(|e| RpcError::new(rpc::INTERNAL_ERROR, e.to_string()))?;
    }
    if let Ok(w) = writer.lock() {
        let _ = w.set_write_timeout(Some(limits.sub_write_timeout));
    }
    let (core2, sub2, w2) = (core.clone(), sub.clone(), writer.clone());
    std::thread::Builder::new()
        .name(format!("groove-sub-{}", sub.id))
        .spawn(move || stream_to(&core2, &sub2, &w2, from_seq))
        .map_err(|e| RpcError::new(rpc::INTERNAL_ERROR, e.to_string()))?;
    Ok(sub)
}

/// Catch up from the log, join the live stream, and write until closed or dropped.
fn stream_to(core: &Core, sub: &Arc<Sub>, writer: &Writer, from_seq: u64) {
    let log = core.writer.log().clone();
    let mut cursor = from_seq;
    let mut pending = String::new();
    // Catch up from the segments until the live stream can take over at exactly `cursor`.
    loop {
        if sub.queue.lock().map(|q| q.closed).unwrap_or(true) {
            return;
        }
        match core.hub.join(sub, cursor) {
            Ok(()) => break,
            Err(upto) => {
                let mut failed = false;
                let res = stream::read_range(&log, cursor, Some(upto), |item| {
                    cursor = item.meta.seq + 1;
                    if sub.filter.matches(&item.meta) {
                        pending.push_str(&stream::event_line(sub.id, &item));
                        core.hub.delivered.fetch_add(1, Ordering::Relaxed);
                        if pending.len() >= 256 * 1024 {
                            if write_raw(writer, &pending).is_err() {
                                failed = true;
                                return false;
                            }
                            pending.clear();
                        }
                    }
                    true
                });
                if failed || res.is_err() || write_raw(writer, &pending).is_err() {
                    sub.close();
                    return;
                }
                pending.clear();
                cursor = cursor.max(upto + 1);
            }
        }
    }
    // Live.
    loop {
        let (batch, dropped, closed) = {
            let Ok(mut q) = sub.queue.lock() else { return };
            while q.items.is_empty() && q.dropped.is_none() && !q.closed {
                q = match sub.cv.wait_timeout(q, Duration::from_secs(5)) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                };
            }
            let n = q.items.len().min(1024);
            (q.items.drain(..n).collect::<Vec<_>>(), q.dropped, q.closed)
        };
        if !batch.is_empty() {
            pending.clear();
            for item in &batch {
                pending.push_str(&stream::event_line(sub.id, item));
            }
            if write_raw(writer, &pending).is_err() {
                sub.close();
                shutdown(writer);
                return;
            }
            if let Some(last) = batch.last() {
                cursor = last.meta.seq + 1;
            }
            core.hub
                .delivered
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            continue; // drain everything queued before acting on a drop
        }
        if let Some(resume_from) = dropped {
            let _ = write_raw(
                writer,
                &stream::dropped_line(
                    sub.id,
                    resume_from,
                    "the subscriber fell `buffer` events behind; resubscribe with from_seq = resume_from",
                ),
            );
            shutdown(writer);
            return;
        }
        if closed {
            if core.stopping.load(Ordering::Relaxed) {
                let _ = write_raw(
                    writer,
                    &stream::dropped_line(sub.id, cursor, "the daemon is stopping"),
                );
                shutdown(writer);
            }
            return;
        }
    }
}

fn write_raw(w: &Writer, s: &str) -> std::io::Result<()> {
    if s.is_empty() {
        return Ok(());
    }
    let mut g = w
        .lock()
        .map_err(|_| std::io::Error::other("writer poisoned"))?;
    g.write_all(s.as_bytes())
}

fn shutdown(w: &Writer) {
    if let Ok(g) = w.lock() {
        let _ = g.shutdown(std::net::Shutdown::Both);
    }
}
