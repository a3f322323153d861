//! systemd's service notifications for `Type=notify`: `READY=1` once serving,
//! `WATCHDOG=1` while the daemon makes progress, `STOPPING=1` on the way out.
//! Datagrams to the socket `$NOTIFY_SOCKET` names (a path, or `@name` for
//! Linux's abstract namespace); without it, every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, if anywhere.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Half of `$WATCHDOG_USEC`, when systemd watches this process.
    watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`). A socket that cannot be used is logged and ignored.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|name| match open(&name.to_string_lossy()) {
            Ok(target) => Some(target),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; systemd will not hear from us");
                None
            }
        });
        let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us && target.is_some())
            .map(|usec| Duration::from_micros(usec) / 2);
        Notifier { target, watchdog_every }
    }

    /// How often to send `WATCHDOG=1` (half the watchdog interval), if watched.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// The store is open and the channels started.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// Still making progress.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Not making progress: `STATUS=` says why (shown by `systemctl status`).
    pub fn status(&self, text: &str) {
        // One line, no secrets: the callers pass channel names and fixed words.
        self.send(&format!("STATUS={}", text.replace('\n', "; ")));
    }

    /// Stopping on request.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), address) {
                tracing::warn!(error = %e, "cannot notify systemd");
            }
        }
    }
}

fn open(name: &str) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let address = match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())?
        }
        None => SocketAddr::from_pathname(name)?,
    };
    Ok((UnixDatagram::unbound()?, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let (socket, address) = open(path.to_str().unwrap()).unwrap();
        let notifier = Notifier { target: Some((socket, address)), watchdog_every: None };
        notifier.ready();
        notifier.watchdog();
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=serving");
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"WATCHDOG=1");
    }

    #[test]
    fn no_socket_means_silence() {
        let notifier = Notifier { target: None, watchdog_every: None };
        notifier.ready();
        notifier.stopping();
        assert_eq!(notifier.watchdog_every(), None);
    }
}
