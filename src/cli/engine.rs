//! The process the Letta Code SDK starts (`switchboard --output-format stream-json
//! --input-format stream-json …`): it carries its session's lines between its own
//! stdio and the process that holds the data directory, over the control socket.
//! That process is `serve` when it runs; otherwise the first SDK process starts a
//! background engine (`switchboard engine-host`), which every later one shares and
//! which exits once it has had no session for `[engine] idle_secs`.
//!
//! Why a background engine rather than the first SDK process serving the rest:
//! the SDK sends SIGTERM to each process as soon as its session ends, and may kill
//! it outright, so no SDK process can be trusted to outlive its own session.

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard::config::{self, ConfigSource, Settings};
use switchboard::control::{self, Answer, Connection, Request};
use tokio::io::AsyncWriteExt;

use super::EXIT_FAILURE;

/// How long to wait for an engine to answer before giving up.
const CONNECT_DEADLINE: Duration = Duration::from_secs(20);
/// How often a missing engine is started again while waiting.
const RESPAWN_EVERY: Duration = Duration::from_secs(3);

/// Runs one SDK session; returns the exit status.
pub async fn run(raw_args: Vec<String>) -> i32 {
    match session(raw_args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_FAILURE
        }
    }
}

async fn session(raw_args: Vec<String>) -> Result<i32, String> {
    // Bad flags fail here, before anything is started.
    let args = switchboard::wire::args::parse(&raw_args)?;
    let settings = load(args.config.as_deref())?;
    if settings.data_dir.is_relative() {
        return Err(format!(
            "the data directory {} is relative, so every working directory would get its own store; set SWITCHBOARD_DATA_DIR (or data_dir in the configuration) to an absolute directory outside your projects",
            settings.data_dir.display()
        ));
    }
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the working directory ({e})"))?;
    let request = Request::Engine { args: raw_args, cwd, config_file: settings.config_file.clone() };
    let (stream, answer) = connect(&settings, args.config.as_deref(), &request).await?;
    eprint!("{}", answer.stderr);
    if answer.code != 0 {
        return Ok(answer.code);
    }
    Ok(if splice(stream).await { 0 } else { EXIT_FAILURE })
}

fn load(config_path: Option<&Path>) -> Result<Settings, String> {
    config::load(&ConfigSource::from_process(config_path)).map(|l| l.settings).map_err(|e| format!("{e:#}"))
}

/// Connects to the engine and sends the request, starting a background engine
/// while none answers. A connection that closes before its answer (an engine
/// that was just exiting) is tried again.
async fn connect(
    settings: &Settings,
    config_path: Option<&Path>,
    request: &Request,
) -> Result<(Connection, Answer), String> {
    let data_dir = std::path::absolute(&settings.data_dir).unwrap_or_else(|_| settings.data_dir.clone());
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let mut started: Option<Instant> = None;
    loop {
        // Setting a session up creates what it asks for; that is quick, but give a
        // busy store time.
        if let Ok(reply) = control::open(&data_dir, request, Duration::from_secs(60)).await {
            return Ok(reply);
        }
        if started.is_none_or(|at| at.elapsed() >= RESPAWN_EVERY) {
            start_engine(&data_dir, config_path)?;
            started = Some(Instant::now());
        }
        if Instant::now() >= deadline {
            let holder = std::fs::read_to_string(data_dir.join("LOCK")).unwrap_or_default();
            let holder = holder.trim();
            return Err(format!(
                "no switchboard engine answered on {} within {}s{}; see {}",
                control::socket_path(&data_dir).display(),
                CONNECT_DEADLINE.as_secs(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (the data directory is held by pid {holder}, which does not serve SDK sessions: stop that switchboard command)")
                },
                data_dir.join(ENGINE_LOG).display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the background engine writes its log.
pub const ENGINE_LOG: &str = "engine.log";

/// Starts `switchboard engine-host` in the background, detached from this
/// process's terminal and signals. When another process holds the data
/// directory it exits at once; that is fine.
fn start_engine(data_dir: &Path, config_path: Option<&Path>) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    use std::os::unix::process::CommandExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| format!("cannot create the data directory {} ({e})", data_dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(data_dir.join(ENGINE_LOG))
        .map_err(|e| format!("cannot open {} ({e})", data_dir.join(ENGINE_LOG).display()))?;
    let program = std::env::current_exe().map_err(|e| format!("cannot find the switchboard program ({e})"))?;
    let mut command = std::process::Command::new(program);
    if let Some(path) = config_path {
        command.arg("--config").arg(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    }
    command
        .arg("engine-host")
        // The same store whatever directory the next session starts in.
        .env("SWITCHBOARD_DATA_DIR", data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0);
    let mut child = command.spawn().map_err(|e| format!("cannot start the switchboard engine ({e})"))?;
    // Reap it if it exits while this process still runs.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Carries stdin to the engine and the engine's lines to stdout until the engine
/// closes the session. When stdin ends, the engine is told (its queued turns
/// finish). Returns whether the session ended that way, not cut off by the engine.
async fn splice(connection: Connection) -> bool {
    let Connection { reader, writer: mut write } = connection;
    let buffered = reader.buffer().to_vec();
    let read = reader.into_inner();
    let upstream = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut write).await;
        let _ = write.shutdown().await;
    });
    let mut stdout = tokio::io::stdout();
    if stdout.write_all(&buffered).await.is_ok() {
        let mut read = read;
        let _ = tokio::io::copy(&mut read, &mut stdout).await;
    }
    let _ = stdout.flush().await;
    // After a normal end the input has ended already (or is just being closed).
    let stop = upstream.abort_handle();
    let input_ended = tokio::time::timeout(Duration::from_millis(200), upstream).await.is_ok();
    stop.abort();
    if !input_ended {
        eprintln!("error: the switchboard holding the data directory ended this session");
    }
    input_ended
}
