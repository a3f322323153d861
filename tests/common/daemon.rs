//! `switchboard serve` as a child process against the fake Telegram Bot API and the
//! fake LLM: started, waited on until it polls, killed with SIGKILL, restarted.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_fakes::{FakeDiscord, FakeSlack, FakeTelegram};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::Harness;

pub struct Daemon {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl Harness {
    /// Settings that point the daemon at `telegram`.
    pub fn with_telegram(&mut self, telegram: &FakeTelegram) {
        self.set("SWITCHBOARD_TELEGRAM__TOKEN", &telegram.token());
        self.set("SWITCHBOARD_TELEGRAM__API_URL", &telegram.api_url());
    }

    /// Settings that point the daemon at `discord`.
    pub fn with_discord(&mut self, discord: &FakeDiscord) {
        self.set("SWITCHBOARD_DISCORD__TOKEN", &discord.token());
        self.set("SWITCHBOARD_DISCORD__API_URL", &discord.api_url());
    }

    /// Starts `switchboard serve` and waits until it long-polls the fake (or, in
    /// webhook mode, has set its webhook).
    pub async fn serve(&self, telegram: &FakeTelegram) -> Daemon {
        let ready = |t: &FakeTelegram| t.calls_of("getupdates").len() + t.calls_of("setwebhook").len();
        let polls_before = ready(telegram);
        self.serve_until("start polling", || ready(telegram) > polls_before).await
    }

    /// Starts `switchboard serve` and waits until it identified (or resumed) on
    /// the fake Discord gateway.
    pub async fn serve_discord(&self, discord: &FakeDiscord) -> Daemon {
        let sessions = |d: &FakeDiscord| {
            let (_, identifies, resumes) = d.sessions();
            identifies + resumes
        };
        let before = sessions(discord);
        self.serve_until("connect to the Discord gateway", || sessions(discord) > before).await
    }

    /// Settings that point the daemon at `slack` (Socket Mode).
    pub fn with_slack(&mut self, slack: &FakeSlack) {
        self.set("SWITCHBOARD_SLACK__BOT_TOKEN", switchboard_fakes::slack::BOT_TOKEN);
        self.set("SWITCHBOARD_SLACK__APP_TOKEN", switchboard_fakes::slack::APP_TOKEN);
        self.set("SWITCHBOARD_SLACK__API_URL", &slack.api_url());
    }

    /// Starts `switchboard serve` and waits until it opened a Socket Mode connection.
    pub async fn serve_slack(&self, slack: &FakeSlack) -> Daemon {
        let before = slack.connections();
        self.serve_until("open a Slack Socket Mode connection", || slack.connections() > before).await
    }

    /// Starts `switchboard serve` and waits until `ready` holds.
    pub async fn serve_until(&self, what: &str, ready: impl Fn() -> bool) -> Daemon {
        let daemon = self.spawn_serve(None);
        let started = tokio::time::Instant::now();
        while !ready() {
            if started.elapsed() > Duration::from_secs(30) {
                panic!("switchboard serve did not {what}; its log:\n{}", daemon.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon
    }

    /// Starts `switchboard serve` (in `data_dir` instead of the harness's, for a
    /// second replica) without waiting for anything.
    pub fn spawn_serve(&self, data_dir: Option<&std::path::Path>) -> Daemon {
        let mut cmd = self.command(std::path::Path::new(env!("CARGO_BIN_EXE_switchboard")));
        if let Some(dir) = data_dir {
            cmd.env("SWITCHBOARD_DATA_DIR", dir);
        }
        cmd.arg("serve")
            // SWITCHBOARD_TEST_LOG (a RUST_LOG filter) shows more when debugging a test.
            .env("RUST_LOG", std::env::var("SWITCHBOARD_TEST_LOG").unwrap_or_else(|_| "info,sled=off".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start switchboard serve");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon { child, log }
    }
}

impl Daemon {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle`.
    pub async fn wait_log(&self, needle: &str, within: Duration) {
        let started = tokio::time::Instant::now();
        while !self.log().contains(needle) {
            if started.elapsed() > within {
                panic!("switchboard serve did not log {needle:?} within {within:?}; its log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no cleanup, no flush, no goodbye.
    pub async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) -> i32 {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}
