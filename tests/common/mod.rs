//! Shared harness for end-to-end tests: the real `switchboard` binary, a fresh data
//! directory, a scrubbed environment and the fake LLM on 127.0.0.1.
#![allow(dead_code)]

mod daemon;
#[allow(unused_imports)]
pub use daemon::Daemon;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use switchboard_fakes::FakeLlm;
use tokio::io::AsyncWriteExt;

pub const MODEL: &str = "fake-model";

/// The seed of a run's random kill times: `SWITCHBOARD_CHAOS_SEED`, or the clock.
pub fn chaos_seed() -> u64 {
    std::env::var("SWITCHBOARD_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

/// A small deterministic generator, so a seed repeats a run's kill times.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Harness {
    pub llm: FakeLlm,
    pub dir: tempfile::TempDir,
    /// Extra `SWITCHBOARD_*` settings for every command.
    pub env: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
            .collect()
    }

    /// The conversation id announced by a stream-json `init` line.
    pub fn conversation_id(&self) -> String {
        let lines = self.json_lines();
        let init = lines.first().expect("no output lines");
        assert_eq!(init["type"], "init", "first line must be init: {init}");
        init["conversation_id"].as_str().unwrap().to_string()
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

impl Harness {
    pub async fn new() -> Harness {
        Harness { llm: FakeLlm::start().await, dir: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Forgets every value set for `key`.
    pub fn unset(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// The value last set for `key`.
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs the binary in the test's directory (so no stray ./switchboard.toml is read)
    /// with only the settings the harness gives it.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command(std::path::Path::new(env!("CARGO_BIN_EXE_switchboard")));
        cmd.args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start switchboard");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("switchboard {args:?} did not finish within {COMMAND_TIMEOUT:?}"))
            .unwrap();
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!output.stderr.contains("panicked"), "switchboard panicked: {}", output.stderr);
        output
    }

    /// `program` with the harness's directory and settings, and no other
    /// `SWITCHBOARD_*` variables.
    pub fn command(&self, program: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.current_dir(self.dir.path()).kill_on_drop(true);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD_") || k == "RUST_LOG") {
            cmd.env_remove(key);
        }
        cmd.env("SWITCHBOARD_DATA_DIR", self.data_dir())
            .env("SWITCHBOARD_LLM__BASE_URL", self.llm.base_url())
            .env("SWITCHBOARD_LLM__MODEL", MODEL)
            .env("SWITCHBOARD_LLM__REQUEST_TIMEOUT_SECS", "20")
            .env("SWITCHBOARD_AGENT__WORKDIR", self.workdir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn workdir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `prompt --output-format stream-json`, asserting success; returns the output.
    pub async fn prompt_json(&self, extra: &[&str], text: &str) -> Output {
        let mut args = vec!["prompt", "--output-format", "stream-json"];
        args.extend_from_slice(extra);
        args.push(text);
        let out = self.run(&args).await;
        out.assert_ok();
        out
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

impl Harness {
    /// Runs with another data directory.
    pub async fn run_with_env_data_dir(&self, data_dir: &Path, args: &[&str]) -> Output {
        let mut other = Harness { llm: self.llm.clone(), dir: tempfile::tempdir().unwrap(), env: self.env.clone() };
        other.env.push(("SWITCHBOARD_DATA_DIR".into(), data_dir.display().to_string()));
        other.run(args).await
    }
}

/// A Telegram call's text as the person reads it (the fake decodes Telegram's HTML).
pub fn sent_text(call: &switchboard_fakes::Call) -> String {
    let text = call.params.get("text").and_then(|v| v.as_str()).unwrap_or_default();
    text.replace("&gt;", ">").replace("&lt;", "<").replace("&quot;", "\"").replace("&amp;", "&")
}

/// Whether the first message sent to Telegram `chat` that shows `needle` went
/// out within `window` before one of `kills`: a reply the platform accepted that
/// the daemon may not have marked sent yet (Telegram's send-to-record window).
pub fn first_sent_just_before(
    telegram: &switchboard_fakes::FakeTelegram,
    chat: i64,
    needle: &str,
    kills: &[std::time::Instant],
    window: Duration,
) -> bool {
    let first = telegram
        .calls_of("sendmessage")
        .into_iter()
        .filter(|c| c.params.get("chat_id").and_then(|v| v.as_i64()) == Some(chat))
        .find(|c| sent_text(c).contains(needle));
    first.is_some_and(|c| kills.iter().any(|k| *k >= c.at && *k - c.at <= window))
}
