//! Exec with output streamed as it is produced, over Incus' exec websockets.
//!
//! `POST /1.0/instances/{name}/exec` with `wait-for-websocket: true` returns an operation whose
//! metadata holds one secret per channel: `0` (stdin), `1` (stdout), `2` (stderr) and `control`.
//! We open a websocket per channel on a fresh connection from the [`Transport`]
//! (`/1.0/operations/{id}/websocket?secret=...`); Incus starts the command once 0, 1 and 2 are
//! connected. stdin is closed at once (the command reads EOF), stdout and stderr are read on their
//! own threads until Incus closes them, and the control channel stays open so that on the deadline
//! or a cancel we can send `SIGKILL`: unlike [`ProjectScope::exec`], a command that outlives its
//! deadline is killed, not left running. The exit code comes from the finished operation.
//!
//! Closing the control channel also makes Incus kill the command, so it does not survive this call
//! even if the signal is lost.
//!
//! Invariants: the caller's callback runs on the calling thread, in arrival order per stream; no
//! thread outlives the call (readers stop on close, error, or a stop flag checked every 200 ms).
//!
//! [`Transport`]: crate::Transport

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::WebSocket;
use tungstenite::{Message, Utf8Bytes};

use crate::api::{InstanceExecPost, Operation};
use crate::client::decode;
use crate::error::{IncusError, Result};
use crate::scope::ProjectScope;
use crate::spec::ExecSpec;
use crate::transport::{Method, RawStream};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How long readers block before looking at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// After a kill, how long we keep draining output before giving up on the streams.
const KILL_GRACE: Duration = Duration::from_secs(10);

type Ws = WebSocket<Box<dyn RawStream>>;

enum Event {
    Chunk(OutputStream, Vec<u8>),
    Closed,
}

impl ProjectScope {
    /// Run a command without a terminal, handing its output to `on_output` as it arrives, and
    /// return its exit code. stdin is empty. When the deadline (`spec.timeout`, else the operation
    /// timeout) passes, or the scope's cancel token is set, the command is killed (`SIGKILL`) and
    /// the call fails with [`IncusError::ExecKilled`] or [`IncusError::Cancelled`].
    pub fn exec_streaming(
        &self,
        instance: &str,
        spec: &ExecSpec,
        mut on_output: impl FnMut(OutputStream, &[u8]),
    ) -> Result<i32> {
        if spec.command.is_empty() {
            return Err(IncusError::Invalid("exec needs a command".to_owned()));
        }
        if spec.uid != 0 || spec.gid != 0 || !spec.cwd.is_empty() {
            self.client().require_extension(
                "container_exec_user_group_cwd",
                "exec as a user or in a directory",
            )?;
        }
        let started = Instant::now();
        let timeout = spec.timeout.unwrap_or(self.client().timeouts().operation);
        let body = InstanceExecPost {
            command: spec.command.clone(),
            environment: spec.env.clone(),
            wait_for_websocket: true,
            interactive: false,
            record_output: false,
            user: spec.uid,
            group: spec.gid,
            cwd: spec.cwd.clone(),
        };
        let path = self.instance_url(instance, "/exec");
        let label = format!("POST {path}");
        let (envelope, _) =
            self.client()
                .json_request(Method::Post, &path, Some(&body), Vec::new())?;
        let op: Operation = decode(&label, envelope.metadata)?;
        let secret = |fd: &str| -> Result<String> {
            op.metadata
                .as_ref()
                .and_then(|m| m.pointer(&format!("/fds/{fd}")))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| IncusError::Protocol {
                    request: label.clone(),
                    message: format!("exec operation has no websocket secret for `{fd}`"),
                })
        };
        // Control first: once 0, 1 and 2 are connected the command starts, and the kill switch
        // must already be in place.
        let mut control = self.websocket(&op.id, &secret("control")?)?;
        let mut stdin = self.websocket(&op.id, &secret("0")?)?;
        let stdout = self.websocket(&op.id, &secret("1")?)?;
        let stderr = self.websocket(&op.id, &secret("2")?)?;
        // EOF on stdin; the server answers with its own close, which we need not wait for.
        let _ = stdin.close(None);
        let _ = stdin.flush();

        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let readers = [
            spawn_reader(stdout, OutputStream::Stdout, tx.clone(), Arc::clone(&stop)),
            spawn_reader(stderr, OutputStream::Stderr, tx, Arc::clone(&stop)),
        ];

        let deadline = started + timeout;
        let mut open = 2;
        let mut killed: Option<Instant> = None;
        let mut cancelled = false;
        while open > 0 {
            match rx.recv_timeout(POLL) {
                // Incus marks the end of a stream with an empty message before closing it.
                Ok(Event::Chunk(_, bytes)) if bytes.is_empty() => {}
                Ok(Event::Chunk(stream, bytes)) => on_output(stream, &bytes),
                Ok(Event::Closed) => open -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            match killed {
                None => {
                    let cancel = self.client().cancel_requested();
                    if cancel || Instant::now() >= deadline {
                        cancelled = cancel;
                        send_signal(&mut control, 9);
                        killed = Some(Instant::now());
                    }
                }
                Some(at) if at.elapsed() > KILL_GRACE => break,
                Some(_) => {}
            }
        }
        stop.store(true, Ordering::SeqCst);
        for reader in readers {
            let _ = reader.join();
        }
        // Deliver anything that arrived while we were stopping.
        while let Ok(event) = rx.try_recv() {
            if let Event::Chunk(stream, bytes) = event
                && !bytes.is_empty()
            {
                on_output(stream, &bytes);
            }
        }

        if killed.is_some() {
            // Closing the control channel makes Incus kill the command too, should the signal
            // have been lost; give the operation a moment to record the end.
            let _ = control.close(None);
            let _ = control.flush();
            let _ = self
                .client()
                .without_cancel()
                .wait_operation(&op, KILL_GRACE);
            return Err(if cancelled {
                IncusError::Cancelled {
                    id: op.id,
                    description: op.description,
                    cancelled_on_server: true,
                }
            } else {
                IncusError::ExecKilled {
                    command: spec.command.join(" "),
                    waited: started.elapsed(),
                }
            });
        }
        // The exit code is in the finished operation (a moment after the streams close). Keep
        // the control channel open until then: closing it early would kill the command.
        let finished = self.client().without_cancel().wait_operation(
            &op,
            KILL_GRACE.max(deadline.saturating_duration_since(Instant::now())),
        );
        let _ = control.close(None);
        let _ = control.flush();
        exit_code(&label, &finished?)
    }

    /// Open the websocket for one exec channel.
    fn websocket(&self, op_id: &str, secret: &str) -> Result<Ws> {
        let path = format!(
            "/1.0/operations/{}/websocket?secret={}",
            crate::client::enc(op_id),
            crate::client::enc(secret)
        );
        let stream = self.client().connect_raw()?;
        let (ws, _) = tungstenite::client(format!("ws://incus{path}"), stream).map_err(|e| {
            IncusError::Protocol {
                request: format!("GET {path} (websocket)"),
                message: format!("websocket handshake failed: {e}"),
            }
        })?;
        ws.get_ref()
            .set_read_timeout(Some(POLL))
            .map_err(|e| IncusError::Transport {
                request: format!("GET {path} (websocket)"),
                cause: e.to_string(),
            })?;
        Ok(ws)
    }
}

fn spawn_reader(
    mut ws: Ws,
    stream: OutputStream,
    tx: mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            match ws.read() {
                Ok(Message::Binary(bytes)) => {
                    if tx.send(Event::Chunk(stream, bytes.to_vec())).is_err() {
                        break;
                    }
                }
                Ok(Message::Text(text)) => {
                    if tx
                        .send(Event::Chunk(stream, text.as_bytes().to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => {} // ping/pong: tungstenite answers pings itself
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(Event::Closed);
    })
}

fn send_signal(control: &mut Ws, signal: i32) {
    let message = serde_json::json!({ "command": "signal", "signal": signal }).to_string();
    if let Err(e) = control.send(Message::Text(Utf8Bytes::from(message))) {
        tracing::debug!(error = %e, "could not send a signal over the exec control websocket");
    }
}

fn exit_code(label: &str, op: &Operation) -> Result<i32> {
    op.metadata
        .as_ref()
        .and_then(|m| m.get("return"))
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok())
        .ok_or_else(|| IncusError::Protocol {
            request: label.to_owned(),
            message: "exec operation has no exit code".to_owned(),
        })
}
