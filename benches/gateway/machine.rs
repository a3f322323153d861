//! How fast this machine is at the moment of a run. The shared machine's speed
//! varies by the hour (the same build's burst has measured from under 1,000 to
//! over 2,500 messages a second), so every run prints two reference figures that
//! do not depend on switchboard: a fixed piece of CPU and allocator work like the
//! daemon's (strings, a hash map, JSON out and back), and the time a 4 KiB write
//! and its `fdatasync` take in a temporary directory. Figures of two runs compare
//! only when these are close.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Times each attempt of `work`, `times` times; the median.
fn median(times: usize, mut work: impl FnMut()) -> Duration {
    let mut took: Vec<Duration> = (0..times)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    took.sort();
    took[took.len() / 2]
}

/// The fixed work: 100,000 small records made, indexed, written as JSON and read back.
fn cpu_work() {
    let records: Vec<(String, u64)> =
        (0..100_000u64).map(|i| (format!("chat-{i}"), i.wrapping_mul(2_654_435_761))).collect();
    let index: HashMap<&str, u64> = records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let text = serde_json::to_string(&index).expect("a map of strings and numbers");
    let back: HashMap<String, u64> = serde_json::from_str(&text).expect("read back");
    assert_eq!(back.len(), records.len());
}

/// Prints the reference figures for this run.
pub fn print_reference() {
    let cpu = median(5, cpu_work);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut file = std::fs::File::create(dir.path().join("sync")).expect("a file to sync");
    let page = [7u8; 4096];
    let sync = median(50, || {
        file.write_all(&page).expect("written");
        file.sync_data().expect("synced");
    });
    println!(
        "  this machine now: reference CPU work {:.0} ms, a 4 KiB write and fdatasync {:.2} ms (median)",
        cpu.as_secs_f64() * 1000.0,
        sync.as_secs_f64() * 1000.0
    );
}
