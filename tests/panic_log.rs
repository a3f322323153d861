//! A panic's message can quote the text it was handling; the daemon's panic hook
//! logs where it happened at error level and the message only at debug level.
//! (Its own test binary: the hook and the log's sink are process-wide.)

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every log line written, in order.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_logged_where_it_happened_and_its_message_only_at_debug_level() {
    let lines = Lines::default();
    let sink = lines.clone();
    tracing_subscriber::fmt().json().with_max_level(tracing::Level::DEBUG).with_writer(move || sink.clone()).init();
    switchboard::panics::log_panics();

    let secret = "what a stranger wrote: ünïcode";
    let panicked = std::thread::Builder::new()
        .name("turn".into())
        .spawn(move || {
            // The kind of bug whose message quotes the text it was slicing.
            let cut = secret.find('ü').unwrap() + 1;
            std::hint::black_box(&secret[..cut]);
        })
        .unwrap()
        .join();
    // The test's own assertions report as usual again.
    drop(std::panic::take_hook());
    assert!(panicked.is_err(), "the slice panics");

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |level: &str| events.iter().filter(move |e| e["level"] == level).collect::<Vec<_>>();
    let errors = of("ERROR");
    assert_eq!(errors.len(), 1, "one error event for the panic: {text}");
    let at = errors[0]["fields"]["at"].as_str().expect("where it panicked");
    assert!(at.contains("panic_log.rs"), "{at}");
    assert_eq!(errors[0]["fields"]["thread"], "turn");
    for e in events.iter().filter(|e| e["level"] != "DEBUG") {
        assert!(!e.to_string().contains("stranger"), "the text reached a log line above debug: {e}");
    }
    let debug = of("DEBUG");
    assert!(
        debug.iter().any(|e| e["fields"]["panic"].as_str().is_some_and(|p| p.contains("stranger"))),
        "the message is kept at debug level: {text}"
    );
}
