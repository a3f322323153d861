//! What a panic leaves in the log: where it happened, as one log event, and its
//! message only at debug level. The default hook prints the message to stderr
//! outside the log's format, and a message can quote the text it was handling
//! (a string sliced mid-character quotes the string), which no log may hold at
//! info level.

use std::panic::PanicHookInfo;

/// Why a task ended without its answer, without its panic's message (a
/// `JoinError` shows it): for logs and errors, which must not hold it.
pub fn task_failure(e: &tokio::task::JoinError) -> &'static str {
    match e.is_panic() {
        true => "it panicked",
        false => "it was cancelled",
    }
}

/// Replaces the process's panic hook with one that logs through `tracing`.
pub fn log_panics() {
    std::panic::set_hook(Box::new(report));
}

fn report(info: &PanicHookInfo<'_>) {
    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_else(|| "unknown".into());
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    tracing::error!(at, thread, "a bug: switchboard panicked (the message is logged at debug level only)");
    if tracing::enabled!(tracing::Level::DEBUG) {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not text)");
        // Captured only when RUST_BACKTRACE (or RUST_LIB_BACKTRACE) asks for it.
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::debug!(at, panic = message, %backtrace, "the panic's message");
    }
}
