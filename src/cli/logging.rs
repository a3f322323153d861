//! The log's sink: stderr, as text lines (the default) or one JSON object a
//! line with the same fields (`log.format = "json"`), switched once the
//! configuration is read. Message text and secrets are never logged at info.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use switchboard::config::LogFormat;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

type Sink = Box<dyn Layer<Registry> + Send + Sync>;

static SINK: OnceLock<reload::Handle<Sink, Registry>> = OnceLock::new();
/// Whether the log is JSON now (so a last error goes into it as an object too).
static JSON: AtomicBool = AtomicBool::new(false);

fn sink(format: LogFormat) -> Sink {
    match format {
        LogFormat::Text => fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    }
}

/// Logs what `filter` lets through to stderr, as text until [`set_format`].
pub fn init(filter: EnvFilter) {
    let (layer, handle) = reload::Layer::new(sink(LogFormat::Text));
    tracing_subscriber::registry().with(layer).with(filter).init();
    let _ = SINK.set(handle);
}

/// Writes every later line in `format`.
pub fn set_format(format: LogFormat) {
    if format == LogFormat::Text {
        return;
    }
    if let Some(handle) = SINK.get() {
        match handle.reload(sink(format)) {
            Ok(()) => JSON.store(format == LogFormat::Json, Ordering::SeqCst),
            Err(e) => eprintln!("warning: cannot switch the log format: {e}"),
        }
    }
}

/// Whether log lines are JSON objects now.
pub fn is_json() -> bool {
    JSON.load(Ordering::SeqCst)
}
