//! What a message costs in work that does not depend on the hour: the daemon run
//! under valgrind's callgrind, which counts the instructions its own code (and
//! the libraries in its process) executes, whatever else the shared machine is
//! doing. The same Telegram shape as the burst: messages one at a time from new
//! chats, then a thousand chats at once, then one at a time again in chats that
//! have a conversation by then (most of a deployment's traffic: no conversation
//! to make, but its history to read); callgrind's counters are zeroed before each phase and
//! dumped after its last reply (`callgrind_control`), so start-up, the pauses
//! between and the shutdown are not counted. The kernel's work on the daemon's
//! behalf (system calls, waking threads) is not in it: the burst run prints that
//! part as CPU time and as context switches.
//!
//! The daemon runs about thirty times slower under callgrind, so its timers see
//! a slow machine: the figures are for comparing builds, not a forecast. One at
//! a time is the steadier figure (runs of one build agree to a fraction of a per
//! cent); the burst's spreads by a few per cent and carries work only the
//! slowdown makes (a turn takes seconds, so some replies stream a preview first).

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard_fakes::{FakeLlm, FakeTelegram};

use super::{answer_burst, latency_samples_of, start_under, CHATS};

/// Messages timed one at a time (fewer than the burst run's: each takes tens of
/// milliseconds under callgrind).
const ONE_AT_A_TIME: i64 = 100;

/// Runs the three phases and prints instructions per message; says why not when
/// valgrind is not installed.
pub async fn run(llm: &FakeLlm) {
    if !on_path("valgrind") || !on_path("callgrind_control") {
        println!("  instructions: valgrind is not installed (Debian's package valgrind has callgrind)");
        return;
    }
    let telegram = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("callgrind");
    std::fs::create_dir_all(&out).unwrap();
    let valgrind = [
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}/counts.%p", out.display()),
        "--dump-instr=no".into(),
        "--collect-jumps=no".into(),
    ];
    let mut daemon = start_under(llm, &telegram, dir.path(), &valgrind, &[]).await;
    let pid = daemon.id().expect("running");

    zero(pid).await;
    latency_samples_of(&telegram, 1..=ONE_AT_A_TIME).await;
    let one_at_a_time = dumped(pid, &out, "one at a time").await as f64 / ONE_AT_A_TIME as f64;
    tokio::time::sleep(super::PACE_PASSED).await;
    zero(pid).await;
    let took = answer_burst(&telegram, 1..=CHATS).await;
    let burst = dumped(pid, &out, "burst").await as f64 / CHATS as f64;
    tokio::time::sleep(super::PACE_PASSED).await;
    zero(pid).await;
    latency_samples_of(&telegram, 1..=ONE_AT_A_TIME).await;
    let known_chats = dumped(pid, &out, "known chats").await as f64 / ONE_AT_A_TIME as f64;
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    println!(
        "  instructions a message (the daemon's process, callgrind): one at a time {:.3} M, in a burst of {CHATS} {:.3} M ({:.0} s under callgrind); one at a time in chats with a conversation {:.3} M",
        one_at_a_time / 1e6,
        burst / 1e6,
        took.as_secs_f64(),
        known_chats / 1e6
    );
}

/// Whether `program` is found on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Runs `callgrind_control` with `args` against the daemon; panics if it fails
/// (a figure from counters that were not reset would be wrong, not rough).
async fn control(pid: u32, args: &[&str]) {
    let output = tokio::process::Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .await
        .expect("cannot run callgrind_control");
    assert!(
        output.status.success(),
        "callgrind_control {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Zeroes the daemon's counters.
async fn zero(pid: u32) {
    control(pid, &["-z"]).await;
}

/// Dumps the daemon's counters (and zeroes them); the instructions counted since
/// they were last zeroed, read from the newest dump.
async fn dumped(pid: u32, out: &Path, phase: &str) -> u64 {
    let before = dumps(out, pid);
    control(pid, &["-d"]).await;
    // callgrind writes the dump from the daemon's own thread: wait for the file.
    for _ in 0..200 {
        let now = dumps(out, pid);
        if let Some(new) = now.iter().find(|f| !before.contains(f)) {
            if let Some(total) = totals(new) {
                return total;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("callgrind wrote no dump for the {phase} phase within 10 s");
}

/// The dump files of `pid` in `out`.
fn dumps(out: &Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("counts.{pid}.");
    std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
                .collect()
        })
        .unwrap_or_default()
}

/// The `totals:` line of a complete dump (callgrind writes it last).
fn totals(dump: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dump).ok()?;
    text.lines().find_map(|l| l.strip_prefix("totals:")).and_then(|v| v.trim().parse().ok())
}
