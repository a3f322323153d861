//! The `Bash` tool: runs a shell command in the working directory, in its own process
//! group, confined (see `sandbox`), with a timeout, bounded output and only the variables a shell needs.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::sandbox::Sandbox;
use super::{ToolClass, ToolOutcome, ToolSpec, Workdir};

pub const NAME: &str = "Bash";

const DEFAULT_TIMEOUT_MS: u64 = 120_000;
const MAX_TIMEOUT_MS: u64 = 600_000;
/// Characters kept from the start and from the end of the output.
const KEEP_CHARS: usize = 15_000;
/// Bytes kept per stream at each end: enough for `KEEP_CHARS` of any UTF-8.
const KEEP_BYTES: usize = 64 * 1024;
/// How long leftover background processes may hold the output open after the shell exits.
const EXIT_GRACE: Duration = Duration::from_secs(1);

pub fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME,
        description: "Run a shell command (bash -c) in the working directory. No input is available (stdin is \
            empty), so use non-interactive flags. Output is stdout then stderr, cut to the first and last 15000 \
            characters when longer; the exit code comes last. Each call is a fresh shell: cd and variables do not \
            carry over. Prefer Read, Glob, Grep, Write and Edit for files.",
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command line to run."},
                "timeout_ms": {
                    "type": "integer",
                    "description": "Kill the command after this many milliseconds (default 120000, at most 600000)."
                }
            },
            "required": ["command"]
        }),
        class: ToolClass::Execute,
    }
}

pub async fn run(workdir: &Workdir, sandbox: &Sandbox, input: &Value) -> ToolOutcome {
    let command = match input.get("command").and_then(Value::as_str) {
        Some(c) if !c.trim().is_empty() => c,
        _ => return ToolOutcome::error("Bash needs a non-empty string argument 'command'."),
    };
    let timeout_ms = match timeout_arg(input.get("timeout_ms")) {
        Ok(t) => t,
        Err(message) => return ToolOutcome::error(message),
    };
    tracing::debug!(command, timeout_ms, "running Bash");
    let started = Instant::now();
    let outcome = execute(workdir, sandbox, command, Duration::from_millis(timeout_ms)).await;
    tracing::info!(
        tool = NAME,
        elapsed_ms = started.elapsed().as_millis() as u64,
        is_error = outcome.is_error,
        output_bytes = outcome.content.len(),
        "Bash finished"
    );
    outcome
}

fn timeout_arg(value: Option<&Value>) -> Result<u64, String> {
    let ms = match value {
        None | Some(Value::Null) => return Ok(DEFAULT_TIMEOUT_MS),
        Some(v) => v.as_f64().ok_or("timeout_ms must be a number of milliseconds, e.g. 60000.")?,
    };
    if ms < 1.0 {
        return Err(format!("timeout_ms must be at least 1 (it was {ms}); omit it for the default of 120000."));
    }
    Ok((ms as u64).min(MAX_TIMEOUT_MS))
}

async fn execute(workdir: &Workdir, sandbox: &Sandbox, command: &str, timeout: Duration) -> ToolOutcome {
    let mut child = match spawn(workdir, sandbox, command) {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(error = %e, "could not start a shell");
            return ToolOutcome::error(format!("The shell could not be started: {e}."));
        }
    };
    let mut group = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    let stdout = Arc::new(Mutex::new(Capture::default()));
    let stderr = Arc::new(Mutex::new(Capture::default()));
    let readers = [
        child.stdout.take().map(|pipe| tokio::spawn(capture(pipe, stdout.clone()))),
        child.stderr.take().map(|pipe| tokio::spawn(capture(pipe, stderr.clone()))),
    ];
    let deadline = tokio::time::Instant::now() + timeout;

    let ending = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => {
            let closed = drain(readers, EXIT_GRACE).await;
            if closed {
                group.disarm();
            } else {
                group.kill();
            }
            Ending::Exited { status, leftovers_killed: !closed }
        }
        Ok(Err(e)) => {
            group.kill();
            drain(readers, EXIT_GRACE).await;
            return ToolOutcome::error(format!("Waiting for the command failed: {e}."));
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            drain(readers, EXIT_GRACE).await;
            Ending::TimedOut
        }
    };

    let output = render_output(&lock(&stdout), &lock(&stderr));
    match ending {
        Ending::TimedOut => ToolOutcome::error(format!(
            "The command timed out after {} ms and was killed with everything it started. Output so far:\n{output}",
            timeout.as_millis()
        )),
        Ending::Exited { status, leftovers_killed } => {
            let mut content = output;
            if leftovers_killed {
                content.push_str("\n[background processes still holding the output open were killed]");
            }
            if !content.ends_with('\n') {
                content.push('\n');
            }
            content.push_str(&describe_status(status));
            if status.success() {
                ToolOutcome::ok(content)
            } else {
                ToolOutcome::error(content)
            }
        }
    }
}

enum Ending {
    Exited { status: ExitStatus, leftovers_killed: bool },
    TimedOut,
}

/// Starts `bash -c command` (or `sh -c` where there is no bash), confined.
fn spawn(workdir: &Workdir, sandbox: &Sandbox, command: &str) -> std::io::Result<Child> {
    match shell_command("bash", workdir, sandbox, command).spawn() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => shell_command("sh", workdir, sandbox, command).spawn(),
        other => other,
    }
}

fn shell_command(shell: &str, workdir: &Workdir, sandbox: &Sandbox, command: &str) -> Command {
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(command)
        .current_dir(workdir.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        // Nothing of the daemon's environment but what a shell needs.
        .env_clear()
        .envs(std::env::vars_os().filter(|(name, _)| passed_on(name.as_encoded_bytes())))
        .envs(GIT_GUARDS.iter().copied());
    sandbox.apply(&mut cmd);
    cmd
}

/// Git settings that outrank every repository's own: git only uses a bare
/// repository it is pointed at, so files the agent writes into the workdir
/// (`HEAD`, `config`, `objects/`, `refs/`) cannot become a repository whose
/// configuration (`core.fsmonitor`, hooks) an allowed `git status` would run;
/// and no file system monitor command runs at all.
const GIT_GUARDS: &[(&str, &str)] = &[
    ("GIT_CONFIG_COUNT", "2"),
    ("GIT_CONFIG_KEY_0", "safe.bareRepository"),
    ("GIT_CONFIG_VALUE_0", "explicit"),
    ("GIT_CONFIG_KEY_1", "core.fsmonitor"),
    ("GIT_CONFIG_VALUE_1", "false"),
];

/// Variables a command inherits: the locale, the path, who and where it is.
fn passed_on(name: &[u8]) -> bool {
    const KEPT: &[&[u8]] = &[b"PATH", b"HOME", b"USER", b"LOGNAME", b"LANG", b"TZ", b"TERM", b"SHELL"];
    KEPT.contains(&name) || name.starts_with(b"LC_")
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code: {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "exit status unknown".into(),
    }
}

/// Kills the command's whole process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: killpg has no memory-safety preconditions; a stale group only yields ESRCH.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to `grace` for both pipes to close; stops the readers either way.
/// Returns whether both closed in time.
async fn drain(readers: [Option<JoinHandle<()>>; 2], grace: Duration) -> bool {
    let mut closed = true;
    for handle in readers.into_iter().flatten() {
        let abort = handle.abort_handle();
        if tokio::time::timeout(grace, handle).await.is_err() {
            abort.abort();
            closed = false;
        }
    }
    closed
}

async fn capture(mut pipe: impl AsyncRead + Unpin, into: Arc<Mutex<Capture>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(&into).push(&buf[..n]),
        }
    }
}

fn lock(capture: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    capture.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One stream's output in bounded memory: its first and last `KEEP_BYTES` bytes and how
/// many characters fell between them.
#[derive(Default)]
struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped_chars: usize,
}

impl Capture {
    fn push(&mut self, mut data: &[u8]) {
        let room = KEEP_BYTES - self.head.len();
        if room > 0 {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        self.tail.extend(data);
        let excess = self.tail.len().saturating_sub(KEEP_BYTES);
        if excess > 0 {
            self.dropped_chars += self.tail.drain(..excess).filter(|b| !is_continuation(*b)).count();
        }
    }

    fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    /// The stream as text pieces with the gap (if any) between them.
    fn segments(&self) -> Vec<Segment> {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if self.dropped_chars == 0 {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return vec![Segment::Text(String::from_utf8_lossy(&all).into_owned())];
        }
        vec![
            Segment::Text(String::from_utf8_lossy(&self.head).into_owned()),
            Segment::Gap(self.dropped_chars),
            Segment::Text(String::from_utf8_lossy(&tail).into_owned()),
        ]
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

enum Segment {
    Text(String),
    /// Characters that were not kept.
    Gap(usize),
}

impl Segment {
    fn chars(&self) -> usize {
        match self {
            Segment::Text(t) => t.chars().count(),
            Segment::Gap(n) => *n,
        }
    }
}

/// Stdout, then stderr under a `stderr:` line, cut to the first and last `KEEP_CHARS`.
fn render_output(stdout: &Capture, stderr: &Capture) -> String {
    let mut segments = stdout.segments();
    if !stderr.is_empty() {
        let mut label = String::from("stderr:\n");
        if !stdout.is_empty() && !ends_with_newline(&segments) {
            label.insert(0, '\n');
        }
        segments.push(Segment::Text(label));
        segments.extend(stderr.segments());
    }
    let total: usize = segments.iter().map(Segment::chars).sum();
    if total == 0 {
        return "(no output)".into();
    }
    if total <= 2 * KEEP_CHARS && !segments.iter().any(|s| matches!(s, Segment::Gap(_))) {
        return segments.iter().map(|s| if let Segment::Text(t) = s { t.as_str() } else { "" }).collect();
    }
    let head = take_chars(segments.iter(), KEEP_CHARS, false);
    let tail = take_chars(segments.iter().rev(), KEEP_CHARS, true);
    let cut = total - head.chars().count() - tail.chars().count();
    format!("{head}\n[… {cut} characters cut …]\n{tail}")
}

fn ends_with_newline(segments: &[Segment]) -> bool {
    matches!(segments.last(), Some(Segment::Text(t)) if t.ends_with('\n'))
}

/// Up to `limit` characters of text from the segments in the iterator's order, stopping at a gap.
/// `from_end` means the iterator runs backwards and so does each text.
fn take_chars<'a>(segments: impl Iterator<Item = &'a Segment>, limit: usize, from_end: bool) -> String {
    let mut pieces: Vec<String> = Vec::new();
    let mut left = limit;
    for segment in segments {
        let Segment::Text(text) = segment else { break };
        if left == 0 {
            break;
        }
        let piece: String = if from_end {
            let chars: Vec<char> = text.chars().rev().take(left).collect();
            chars.into_iter().rev().collect()
        } else {
            text.chars().take(left).collect()
        };
        left -= piece.chars().count();
        pieces.push(piece);
    }
    if from_end {
        pieces.reverse();
    }
    pieces.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workdir() -> (tempfile::TempDir, Workdir) {
        let dir = tempfile::tempdir().unwrap();
        let w = Workdir::new(dir.path()).unwrap();
        (dir, w)
    }

    async fn bash(w: &Workdir, input: Value) -> ToolOutcome {
        run(w, &Sandbox::none(), &input).await
    }

    #[tokio::test]
    async fn runs_in_the_root() {
        let (_dir, w) = workdir();
        let out = bash(&w, json!({"command": "pwd -P"})).await;
        assert!(!out.is_error, "{}", out.content);
        assert!(out.content.starts_with(&format!("{}\n", w.root().display())), "{}", out.content);
        assert!(out.content.ends_with("exit code: 0"), "{}", out.content);
    }

    #[tokio::test]
    async fn stdin_is_empty() {
        let (_dir, w) = workdir();
        let started = Instant::now();
        let out = bash(&w, json!({"command": "cat", "timeout_ms": 10_000})).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!out.is_error, "{}", out.content);
        assert_eq!(out.content, "(no output)\nexit code: 0");
    }

    #[tokio::test]
    async fn non_zero_exit_is_an_error_with_code_and_stderr() {
        let (_dir, w) = workdir();
        let out = bash(&w, json!({"command": "echo out; echo oops >&2; exit 3"})).await;
        assert!(out.is_error);
        assert_eq!(out.content, "out\nstderr:\noops\nexit code: 3");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let (_dir, w) = workdir();
        let marker = w.root().join("survived");
        let command = format!("(sleep 3; touch {}) & sleep 30 & echo started; wait", marker.display());
        let started = Instant::now();
        let out = bash(&w, json!({"command": command, "timeout_ms": 500})).await;
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert!(out.is_error);
        assert!(out.content.contains("timed out after 500 ms"), "{}", out.content);
        assert!(out.content.contains("started"), "{}", out.content);
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert!(!marker.exists(), "a child of the timed-out command kept running");
    }

    #[tokio::test]
    async fn leftover_background_processes_do_not_hang_the_call() {
        let (_dir, w) = workdir();
        let started = Instant::now();
        let out = bash(&w, json!({"command": "sleep 30 & echo bye", "timeout_ms": 20_000})).await;
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert!(!out.is_error, "{}", out.content);
        assert!(out.content.starts_with("bye\n"), "{}", out.content);
    }

    #[tokio::test]
    async fn timeout_argument_is_checked() {
        let (_dir, w) = workdir();
        assert!(bash(&w, json!({"command": "true", "timeout_ms": 0})).await.is_error);
        assert!(bash(&w, json!({"command": "true", "timeout_ms": "soon"})).await.is_error);
        assert!(bash(&w, json!({"timeout_ms": 10})).await.is_error);
        assert_eq!(timeout_arg(Some(&json!(10_000_000))), Ok(MAX_TIMEOUT_MS));
        assert_eq!(timeout_arg(None), Ok(DEFAULT_TIMEOUT_MS));
    }

    #[tokio::test]
    async fn long_output_keeps_head_and_tail() {
        let (_dir, w) = workdir();
        let command = "printf 'START'; head -c 100000 /dev/zero | tr '\\0' x; printf 'END'";
        let out = bash(&w, json!({"command": command})).await;
        assert!(!out.is_error, "{}", out.content);
        assert!(out.content.starts_with("START"), "{}", &out.content[..50]);
        assert!(out.content.contains("\n[… 70008 characters cut …]\n"), "{}", &out.content[14_990..15_050]);
        assert!(out.content.ends_with("END\nexit code: 0"));
        assert!(out.content.chars().count() < 30_100);
    }

    #[tokio::test]
    async fn huge_output_is_bounded_and_counted() {
        let (_dir, w) = workdir();
        let command = "printf 'START'; head -c 5000000 /dev/zero | tr '\\0' y; echo oops >&2";
        let out = bash(&w, json!({"command": command})).await;
        assert!(out.content.starts_with("START"));
        let expected_cut = 5_000_005 + "\nstderr:\noops\n".len() - 2 * KEEP_CHARS;
        assert!(out.content.contains(&format!("[… {expected_cut} characters cut …]")), "{}", &out.content[..100]);
        assert!(
            out.content.ends_with("yyy\nstderr:\noops\nexit code: 0"),
            "{}",
            &out.content[out.content.len() - 50..]
        );
    }

    #[tokio::test]
    async fn only_what_a_shell_needs_of_the_environment_is_passed_on() {
        let (_dir, w) = workdir();
        std::env::set_var("SWITCHBOARD_TEST_SECRET", "hunter2");
        std::env::set_var("TOOLS_TEST_AWS_SECRET", "also-secret");
        let out = bash(&w, json!({"command": "env"})).await;
        assert!(!out.is_error, "{}", out.content);
        assert!(!out.content.contains("SWITCHBOARD_"), "a SWITCHBOARD_ variable leaked");
        assert!(!out.content.contains("hunter2") && !out.content.contains("also-secret"));
        assert!(out.content.contains("PATH="), "{}", out.content);
    }

    #[tokio::test]
    async fn files_written_into_the_workdir_cannot_become_a_repository_git_runs() {
        if std::process::Command::new("git").arg("--version").output().is_err() {
            eprintln!("skipped: no git here");
            return;
        }
        let (_dir, w) = workdir();
        // What Write could put there: a bare repository whose configuration
        // runs a command on `git status`.
        let repo = w.root().join("sub");
        std::fs::create_dir_all(repo.join("objects")).unwrap();
        std::fs::create_dir_all(repo.join("refs/heads")).unwrap();
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let pwned = w.root().join("PWNED");
        let config = format!(
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = {}\n\tfsmonitor = \"touch {}; false\"\n",
            w.root().display(),
            pwned.display()
        );
        std::fs::write(repo.join("config"), config).unwrap();
        let out = bash(&w, json!({"command": "cd sub && git status"})).await;
        assert!(!pwned.exists(), "git ran the written configuration: {}", out.content);
        assert!(out.content.contains("safe.bareRepository"), "{}", out.content);
    }

    #[test]
    fn capture_counts_dropped_characters() {
        let mut c = Capture::default();
        c.push(&vec![b'a'; KEEP_BYTES]);
        c.push("é".repeat(KEEP_BYTES).as_bytes());
        assert_eq!(c.head.len(), KEEP_BYTES);
        assert_eq!(c.tail.len(), KEEP_BYTES);
        assert_eq!(c.dropped_chars, KEEP_BYTES / 2);
    }
}
