//! A real PostgreSQL server for tests (not a fake): the machine's own binaries,
//! one cluster per test process started on first use (about a second), one fresh
//! database per caller. It listens only on a Unix socket in a private directory
//! (no TCP port: nothing to race for between test processes, nothing reachable
//! from elsewhere) and trusts connections there. The server dies with the test
//! process (a parent-death signal), so nothing is left running.
//!
//! As root (as in CI), PostgreSQL refuses to run; it is run as the `postgres`
//! system user instead, in a directory that user owns.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running cluster.
struct Cluster {
    bin: PathBuf,
    /// Holds the data directory, the socket and the server's log.
    dir: PathBuf,
    port: u16,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
/// A second cluster whose commits reach the disk, for benchmarks.
static DURABLE: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// Connection settings (`host=<socket dir> port=… user=… dbname=t_N`) for a new,
/// empty database.
/// The cluster does not sync to disk (`fsync=off`): for tests, not for timing.
/// Panics with the reason when no PostgreSQL can be started here.
pub fn database() -> String {
    create(&CLUSTER, false)
}

/// As [`database`], on a cluster that syncs every commit to disk as a production
/// server does (for benchmarks).
pub fn durable_database() -> String {
    create(&DURABLE, true)
}

fn create(cell: &OnceLock<Result<Cluster, String>>, durable: bool) -> String {
    let cluster = match cell.get_or_init(|| Cluster::start(durable)) {
        Ok(cluster) => cluster,
        Err(e) => panic!("cannot start PostgreSQL for the tests: {e}"),
    };
    let name = format!("t_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
    cluster.client("createdb").arg(&name).output_ok().unwrap_or_else(|e| panic!("createdb {name}: {e}"));
    cluster.url(&name)
}

/// A URL where nothing listens (for "cannot reach the database" tests).
pub fn unreachable_url() -> String {
    let port = crate::free_port();
    format!("postgres://switchboard@127.0.0.1:{port}/nothing")
}

impl Cluster {
    fn start(durable: bool) -> Result<Cluster, String> {
        let bin = binaries()?;
        remove_stale();
        let name = format!("{DIR_PREFIX}{}{}", std::process::id(), if durable { "-durable" } else { "" });
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let owner = server_user()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| format!("chown: {e}"))?;
        }
        let data = dir.join("data");
        as_server_user(owner, &bin.join("initdb"))
            .args(["-D", &data.display().to_string()])
            .args(["-U", "switchboard", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .output_ok()?;
        // Only names the socket file (`.s.PGSQL.5432`) in the private directory.
        let port = 5432;
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let mut server = as_server_user(owner, &bin.join("postgres"));
        server
            .args(["-D", &data.display().to_string(), "-p", &port.to_string(), "-k", &dir.display().to_string()])
            .args(["-c", "listen_addresses=", "-c", "max_connections=300"])
            .args(["-c", if durable { "fsync=on" } else { "fsync=off" }])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if owner.is_none() {
            // Not root: the parent-death signal is set here (setpriv sets it as root).
            unsafe {
                server.pre_exec(|| {
                    if libc_prctl_pdeathsig() != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // The thread that starts the server lives as long as the process, so the
        // parent-death signal fires only when the whole test process ends.
        let (started, result) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres-owner".into())
            .spawn(move || match server.spawn() {
                Ok(mut child) => {
                    let _ = started.send(Ok(()));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = started.send(Err(e.to_string()));
                }
            })
            .map_err(|e| e.to_string())?;
        result.recv().map_err(|e| e.to_string())??;
        let cluster = Cluster { bin, dir, port };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let began = Instant::now();
        loop {
            if self.client("pg_isready").output_ok().is_ok() {
                return Ok(());
            }
            if began.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(format!("the server did not start within 30 s; its log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client program of the cluster's, connecting through the private socket.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.args(["-h", &self.dir.display().to_string(), "-p", &self.port.to_string(), "-U", "switchboard"]);
        command
    }

    fn url(&self, database: &str) -> String {
        format!("host={} port={} user=switchboard dbname={database}", self.dir.display(), self.port)
    }
}

/// Each test process's cluster lives in `<temp>/switchboard-pg-<pid>`.
const DIR_PREFIX: &str = "switchboard-pg-";

/// Removes the clusters of test processes that have ended (their servers died
/// with them; their files stay).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else { continue };
        let pid = rest.trim_end_matches("-durable");
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The newest `/usr/lib/postgresql/N/bin` (or `SWITCHBOARD_TEST_PG_BIN`).
fn binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| "no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)".to_string())?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| "no PostgreSQL server binaries found".into())
}

/// The `postgres` user's uid and gid when running as root (PostgreSQL refuses
/// root); `None` otherwise.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    let me = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .ok_or("running as root and there is no `postgres` user to run PostgreSQL as")?;
    let fields: Vec<&str> = line.split(':').collect();
    let id = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).ok_or("a malformed /etc/passwd line");
    Ok(Some((id(2)?, id(3)?)))
}

/// `program`, run as the server's user (through setpriv, which also makes it
/// die with this process) when we are root.
fn as_server_user(owner: Option<(u32, u32)>, program: &Path) -> Command {
    match owner {
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "--pdeathsig=KILL", "--"])
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`, without a libc crate.
fn libc_prctl_pdeathsig() -> i32 {
    extern "C" {
        fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    }
    const PR_SET_PDEATHSIG: i32 = 1;
    const SIGKILL: u64 = 9;
    unsafe { prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) }
}

trait OutputOk {
    /// Runs it; an error with its output unless it exits 0.
    fn output_ok(&mut self) -> Result<(), String>;
}

impl OutputOk for Command {
    fn output_ok(&mut self) -> Result<(), String> {
        let out = self.output().map_err(|e| format!("{:?}: {e}", self.get_program()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{:?} failed: {}{}",
                self.get_program(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}
