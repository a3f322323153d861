//! Durability: a child process writes in a loop, printing each key once the store has
//! acknowledged it; the parent kills it with SIGKILL mid-loop and checks that every
//! acknowledged write is there when the store is opened again.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchboard::store::{text_content, Entry, MessageBody, SledStore, SqliteStore, Store};

const CHILD_DIR_VAR: &str = "SWITCHBOARD_TEST_CRASH_CHILD_DIR";
const CHILD_KIND_VAR: &str = "SWITCHBOARD_TEST_CRASH_CHILD_KIND";
/// The embedded stores, each tested on its own directory.
const KINDS: [&str; 2] = ["sqlite", "sled"];

fn open(kind: &str, dir: &std::path::Path) -> Box<dyn Store> {
    match kind {
        "sqlite" => Box::new(SqliteStore::open(dir, 8).expect("the store must open after a SIGKILL")),
        _ => Box::new(SledStore::open(dir).expect("the store must open after a SIGKILL")),
    }
}
const MAX_WRITES: usize = 100_000;

/// The writer. Ignored in normal runs; the parent starts it in a child process.
#[test]
#[ignore]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else { return };
    let kind = std::env::var(CHILD_KIND_VAR).unwrap_or_default();
    let store = open(&kind, std::path::Path::new(&dir));
    let mut out = std::io::stdout().lock();
    let mut parent = None;
    for i in 0..MAX_WRITES {
        store.put_meta(&format!("key-{i}"), &i.to_string()).unwrap();
        let entry = Entry::new(parent.take(), MessageBody::User { content: text_content(format!("message {i}")) });
        store.append_entry("conv-crash", &entry).unwrap();
        parent = Some(entry.id().to_string());
        // Acknowledged: both writes returned, so both must survive.
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_write_loses_no_acknowledged_write() {
    for kind in KINDS {
        sigkill_rounds(kind);
    }
}

fn sigkill_rounds(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut total_acked = 0;
    for (round, kill_after) in [40usize, 150, 333].into_iter().enumerate() {
        let acked = run_child_until(kind, dir.path(), kill_after);
        assert!(acked >= kill_after, "{kind} round {round}: only {acked} acks before the deadline");
        total_acked += acked;

        let store = open(kind, dir.path());
        for i in 0..acked {
            assert_eq!(
                store.meta(&format!("key-{i}")).unwrap().as_deref(),
                Some(i.to_string().as_str()),
                "{kind} round {round}: key-{i} lost"
            );
        }
        // Every round rewrote keys 0.. and appended one entry per ack.
        let entries = store.entries("conv-crash").unwrap();
        assert!(entries.len() >= total_acked, "{kind} round {round}: {} entries for {total_acked} acks", entries.len());
    }
}

/// Runs the writer until it has acknowledged `kill_after` writes (or 60 s pass), kills
/// it with SIGKILL, and returns how many writes it acknowledged.
fn run_child_until(kind: &str, dir: &std::path::Path, kill_after: usize) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_KIND_VAR, kind)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = 0;
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("ack ") {
            acked = n.trim().parse::<usize>().unwrap() + 1;
        }
        if acked >= kill_after || Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    acked
}
