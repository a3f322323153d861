//! How fast this machine is at the moment of a run. The shared machine's speed
//! varies by the hour (the same build's burst has measured from under 1,000 to
//! over 2,500 messages a second), so every run prints reference figures that do
//! not depend on switchboard: a fixed piece of CPU and allocator work like the
//! daemon's (strings, a hash map, JSON out and back), the time a 4 KiB write and
//! its `fdatasync` take in a temporary directory, and the kernel's part of a
//! message's path: a thread waking another and being woken back, and a byte
//! there and back over a loopback TCP connection. Figures of two runs compare
//! only when these are close.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Round trips timed in one attempt of the wake-up and loopback figures.
const ROUND_TRIPS: u32 = 2_000;

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

/// Mean time for one thread to wake another and be woken back (two context
/// switches and two futex wake-ups, as a hand-off to the store's thread costs).
fn wake_round_trip() -> Duration {
    let (to_other, other_gets) = mpsc::channel::<u32>();
    let (to_back, back_gets) = mpsc::channel::<u32>();
    let other = std::thread::spawn(move || {
        while let Ok(n) = other_gets.recv() {
            if to_back.send(n).is_err() {
                break;
            }
        }
    });
    let took = median(5, || {
        for n in 0..ROUND_TRIPS {
            to_other.send(n).expect("the other thread runs");
            assert_eq!(back_gets.recv().expect("woken back"), n);
        }
    });
    drop(to_other);
    other.join().expect("the other thread ends");
    took / ROUND_TRIPS
}

/// Mean time for one byte to go to another thread over loopback TCP and back
/// (what each HTTP call between the daemon and a fake costs the kernel).
fn loopback_round_trip() -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let mut near = TcpStream::connect(listener.local_addr().expect("bound")).expect("connected");
    let (mut far, _) = listener.accept().expect("accepted");
    near.set_nodelay(true).expect("no delay");
    far.set_nodelay(true).expect("no delay");
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while far.read_exact(&mut byte).is_ok() {
            if far.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let mut byte = [0u8; 1];
    let took = median(5, || {
        for _ in 0..ROUND_TRIPS {
            near.write_all(&[1]).expect("sent");
            near.read_exact(&mut byte).expect("echoed");
        }
    });
    drop(near);
    echo.join().expect("the echo thread ends");
    took / ROUND_TRIPS
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
        "  this machine now: reference CPU work {:.0} ms, a 4 KiB write and fdatasync {:.2} ms (median), \
         a thread wake-up round trip {:.1} µs, a loopback TCP round trip {:.1} µs",
        cpu.as_secs_f64() * 1000.0,
        sync.as_secs_f64() * 1000.0,
        wake_round_trip().as_secs_f64() * 1e6,
        loopback_round_trip().as_secs_f64() * 1e6
    );
}
