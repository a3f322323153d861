//! The operator's line into a running daemon. `serve` (or a background SDK
//! engine) holds the data directory, so `switchboard approvals …` and
//! `switchboard pairing …` reach it through a Unix socket in that directory
//! (owner-only): one JSON request, one JSON answer. An `engine` request is
//! answered the same way, then the connection carries an SDK session's lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

use crate::admin::AdminRequest;
use crate::console::{self, ConsoleTarget};
use crate::policy::approvals::Choice;
use crate::policy::summary::{describe_whole, one_line};
use crate::store::{format_time as time, ApprovalRecord, ApprovalState, AuditRecord, Grant};
use crate::wire::Engine;

const SOCKET: &str = "control.sock";
/// A request or answer is one line; the largest are a conversation's export or
/// import. Anything larger is not ours.
const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    ApprovalsList {
        all: bool,
    },
    ApprovalsAudit,
    /// One request, whole.
    ApprovalsShow {
        id: String,
    },
    ApprovalsDecide {
        id: String,
        choice: Choice,
        reason: Option<String>,
    },
    /// Grants in force, of one chat or all.
    GrantsList {
        chat: Option<String>,
    },
    GrantsRevoke {
        id: String,
    },
    /// One channel's pending requests, or every registered channel's.
    PairingList {
        channel: Option<String>,
    },
    PairingApprove {
        channel: String,
        code: String,
    },
    PairingReject {
        channel: String,
        code: String,
    },
    PairingRevoke {
        user: String,
    },
    /// The store's largest parts (for `check`).
    StoreSizes,
    /// What `/status` shows in chat, for the operator (`switchboard status`).
    Status,
    /// `switchboard agent …` and `switchboard conversation …`.
    Admin {
        request: AdminRequest,
    },
    /// A terminal session (`chat`, `prompt`): after a successful answer the
    /// connection carries its commands and events (see [`crate::console`]).
    Console {
        target: ConsoleTarget,
    },
    /// An SDK session (`wire`): the flags it was started with and its working
    /// directory. After a successful answer the connection carries its lines.
    Engine {
        args: Vec<String>,
        cwd: PathBuf,
        /// The configuration file the session's process read, kept out of its workspace too.
        #[serde(default)]
        config_file: Option<PathBuf>,
    },
}

/// What the command prints, and its exit status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Answer {
    pub fn ok(stdout: String) -> Answer {
        Answer { stdout, stderr: String::new(), code: 0 }
    }

    pub fn failed(message: String) -> Answer {
        Answer { stdout: String::new(), stderr: format!("error: {message}\n"), code: 1 }
    }
}

/// Who is on the other end of the socket, from the kernel (`SO_PEERCRED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    /// The peer as the audit records it: `uid 0, pid 1234 (switchboard)`.
    pub fn describe(&self) -> String {
        match self.pid {
            Some(pid) => {
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("uid {}, pid {pid} ({})", self.uid, name.trim())
            }
            None => format!("uid {}", self.uid),
        }
    }

    /// Whether the peer runs in another PID namespace than the daemon: that is
    /// what a tool's confined command does, and such a peer is never the operator.
    fn is_confined(&self) -> bool {
        let Some(pid) = self.pid else { return true };
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid"));
        let ours = std::fs::read_link("/proc/self/ns/pid");
        match (theirs, ours) {
            (Ok(theirs), Ok(ours)) => theirs != ours,
            // Unknown: assume the worst.
            _ => true,
        }
    }
}

#[async_trait::async_trait]
pub trait Handler: Send + Sync {
    /// Answers one request from `peer` (already checked not to be a confined command).
    async fn handle(&self, request: Request, peer: &Peer) -> Answer;
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Listens until the returned task is aborted. A stale socket file from a previous
/// run is replaced (the data directory lock proves no other daemon uses it).
/// `engine` runs the SDK sessions that connect; without it they are refused.
pub fn serve(
    data_dir: &Path,
    handler: Arc<dyn Handler>,
    engine: Option<Engine>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    // Owner-only from its first moment, whatever the umask.
    // SAFETY: umask has no memory-safety preconditions; it is restored at once.
    let before = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(&path);
    unsafe { libc::umask(before) };
    let listener = bound?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (handler, engine) = (handler.clone(), engine.clone());
            // From accept to close, so an idle engine never exits under a connection.
            let busy = engine.as_ref().map(Engine::busy);
            tokio::spawn(async move {
                let _busy = busy;
                if let Err(e) = answer(stream, &*handler, engine).await {
                    tracing::warn!(error = %e, "control request failed");
                }
            });
        }
    }))
}

/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn answer(stream: UnixStream, handler: &dyn Handler, engine: Option<Engine>) -> std::io::Result<()> {
    let credentials = stream.peer_cred()?;
    let peer = Peer { uid: credentials.uid(), pid: credentials.pid() };
    let (read, mut write) = stream.into_split();
    // Refused before anything is read: a confined command (the agent's), or
    // another user (the socket is owner-only; this is the second lock).
    // SAFETY: getuid cannot fail.
    let ours = unsafe { libc::getuid() };
    if peer.is_confined() || (peer.uid != ours && peer.uid != 0) {
        tracing::warn!(peer = %peer.describe(), "a control connection from a confined command or another user was refused");
        return write_answer(&mut write, &Answer::failed("requests from the agent's commands are refused".into()))
            .await;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    let mut limited = (&mut reader).take(MAX_LINE as u64);
    if tokio::time::timeout(REQUEST_TIMEOUT, limited.read_line(&mut line)).await.is_err() {
        return Ok(());
    }
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Engine { args, cwd, config_file }) => match engine {
            Some(engine) => match engine.start(&args, &cwd, config_file.as_slice()).await {
                Ok(started) => {
                    let notes: String = started.notes.iter().map(|n| format!("switchboard: {n}\n")).collect();
                    let accepted = Answer { stdout: String::new(), stderr: notes, code: 0 };
                    write_answer(&mut write, &accepted).await?;
                    // The reader keeps what the client sent after its request.
                    engine.run(started, reader, write).await;
                    return Ok(());
                }
                Err(message) => Answer { stdout: String::new(), stderr: format!("{message}\n"), code: 1 },
            },
            None => Answer::failed("this switchboard process does not run SDK sessions".into()),
        },
        Ok(Request::Console { target }) => match engine {
            Some(engine) => match console::open(&*engine.backend, &target).await {
                Ok(session) => {
                    write_answer(&mut write, &Answer::ok(String::new())).await?;
                    let via = format!("command line over the control socket: {}", peer.describe());
                    console::serve(engine.backend.clone(), session, via, reader, write).await;
                    return Ok(());
                }
                Err(e) => Answer::failed(crate::admin::hinted(e)),
            },
            None => Answer::failed("this switchboard process does not run terminal sessions".into()),
        },
        Ok(request) => handler.handle(request, &peer).await,
        // Nothing is done for a request that is not understood exactly.
        Err(e) => Answer::failed(format!("the daemon did not understand the request ({e})")),
    };
    write_answer(&mut write, &answer).await
}

async fn write_answer(write: &mut (impl AsyncWriteExt + Unpin), answer: &Answer) -> std::io::Result<()> {
    let mut out = serde_json::to_string(answer).unwrap_or_default();
    out.push('\n');
    write.write_all(out.as_bytes()).await
}

/// Sends `request` to the switchboard holding `data_dir` and returns its answer.
pub async fn call(data_dir: &Path, request: &Request) -> std::io::Result<Answer> {
    // Deciding an approval finishes its turn; an import can be large.
    open(data_dir, request, std::time::Duration::from_secs(300)).await.map(|(_, answer)| answer)
}

/// A connection to the holder after its answer: what a session carries next.
pub struct Connection {
    /// Holds whatever the holder sent after its answer.
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

/// Connects to the switchboard holding `data_dir`, sends `request` and reads its
/// answer within `timeout`; the connection stays open for a session.
pub async fn open(
    data_dir: &Path,
    request: &Request,
    timeout: std::time::Duration,
) -> std::io::Result<(Connection, Answer)> {
    let stream = UnixStream::connect(socket_path(data_dir)).await?;
    let (read, mut writer) = stream.into_split();
    let mut text = serde_json::to_string(request).unwrap_or_default();
    text.push('\n');
    writer.write_all(text.as_bytes()).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    let mut limited = (&mut reader).take(MAX_LINE as u64);
    tokio::time::timeout(timeout, limited.read_line(&mut line)).await.map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "the switchboard holding the data directory did not answer")
    })??;
    let answer = serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((Connection { reader, writer }, answer))
}

/// `approvals list`: one line per request.
pub fn render_approvals(approvals: &[ApprovalRecord], all: bool) -> String {
    let shown: Vec<&ApprovalRecord> = approvals.iter().filter(|a| all || a.state == ApprovalState::Pending).collect();
    if shown.is_empty() {
        return if all { "No approval requests.\n" } else { "No pending approval requests.\n" }.into();
    }
    shown
        .iter()
        .map(|a| {
            format!(
                "{}  {}  {}  chat={}  requester={}  expires={}  conversation={}\n",
                a.id,
                a.state.as_str(),
                one_line(&a.summary, 120),
                a.chat.as_deref().unwrap_or("-"),
                a.requester.as_deref().unwrap_or("-"),
                time(a.expires_at),
                a.conversation_id
            )
        })
        .collect()
}

/// `approvals show ID`: one request with its whole call (configured secrets masked).
pub fn render_approval(a: &ApprovalRecord, known_secrets: &[String]) -> String {
    format!(
        "{}  {}\nchat: {}\nrequester: {} ({})\nexpires: {}\nconversation: {}\n\n{}\n",
        a.id,
        a.state.as_str(),
        a.chat.as_deref().unwrap_or("-"),
        a.requester.as_deref().unwrap_or("-"),
        a.requester_tier.map_or("unknown tier", |t| t.as_str()),
        time(a.expires_at),
        a.conversation_id,
        describe_whole(&a.tool, &a.input, known_secrets)
    )
}

/// `grants list`: one line per grant in force.
pub fn render_grants(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "No grants in force.\n".into();
    }
    grants
        .iter()
        .map(|g| {
            format!(
                "{}  {}: {}  chat={}  for={} and above  by={}  until={}\n",
                g.id,
                g.tool,
                one_line(&g.subject, 120),
                g.chat,
                g.tier.as_str(),
                g.granted_by,
                time(g.expires_at)
            )
        })
        .collect()
}

/// `approvals audit`: every decision, expiry and refused attempt, oldest first.
pub fn render_audit(records: &[AuditRecord]) -> String {
    records
        .iter()
        .map(|r| {
            format!(
                "{}  {}  {}  by={}{}  chat={}  {}{}\n",
                time(r.at),
                r.outcome,
                one_line(&r.summary, 120),
                r.actor.as_deref().unwrap_or("-"),
                r.via.as_ref().map(|v| format!(" ({v})")).unwrap_or_default(),
                r.chat.as_deref().unwrap_or("-"),
                r.approval_id,
                r.reason.as_ref().map(|why| format!("  reason: {why}")).unwrap_or_default()
            )
        })
        .collect()
}

/// `pairing list`: codes waiting for an admin.
pub fn render_pairing(pending: &[crate::gateway::PairingRequest], channel: &str) -> String {
    if pending.is_empty() {
        return format!("No pending pairing requests on {channel}.\n");
    }
    pending.iter().map(|r| format!("{}  {}  {}  requested={}\n", r.code, r.user, r.name, time(r.created_at))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    #[async_trait::async_trait]
    impl Handler for Echo {
        async fn handle(&self, request: Request, _peer: &Peer) -> Answer {
            Answer::ok(format!("{request:?}"))
        }
    }

    #[tokio::test]
    async fn a_request_round_trips_through_an_owner_only_socket() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(socket_path(dir.path()), "stale").unwrap();
        let task = serve(dir.path(), Arc::new(Echo), None).unwrap();
        let mode = std::fs::metadata(socket_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let answer = call(dir.path(), &Request::PairingList { channel: Some("fake".into()) }).await.unwrap();
        assert_eq!(answer, Answer::ok("PairingList { channel: Some(\"fake\") }".into()));
        task.abort();
    }

    #[tokio::test]
    async fn an_unknown_approval_choice_is_an_error_never_a_deny() {
        let dir = tempfile::tempdir().unwrap();
        let task = serve(dir.path(), Arc::new(Echo), None).unwrap();
        let stream = UnixStream::connect(socket_path(dir.path())).await.unwrap();
        let (read, mut write) = stream.into_split();
        let line = r#"{"command":"approvals_decide","id":"apr-1","choice":"alwyas","reason":null}"#;
        write.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(read).read_line(&mut answer).await.unwrap();
        let answer: Answer = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer.code, 1);
        assert!(answer.stderr.contains("did not understand") && answer.stderr.contains("alwyas"), "{answer:?}");
        task.abort();
    }
}
