//! Confinement of the commands a tool starts (Bash), so that whatever the agent
//! runs cannot reach the daemon: its environment, its configuration file, its data
//! directory (the store, and the operator's control socket in it), or the daemon
//! process itself.
//!
//! Why namespaces and Landlock: everything may run as root, where file modes and
//! same-uid checks protect nothing, so the confinement must come from the kernel.
//! Each command runs in new mount and PID namespaces (and a user namespace when the
//! daemon is not root): it sees a `/proc` of its own processes only (not the
//! daemon's `environ`), an empty directory in place of the data directory, an empty
//! file in place of the configuration file, and its processes all end when the
//! command's shell ends (no detached helper outlives it). Landlock, where the
//! kernel has it, then confines writes to the working directory, `/tmp` and `/dev`,
//! and (ABI 6 and later) keeps the command from signalling processes outside it.
//! Reading the rest of the machine stays possible, as for any program of the user.
//!
//! Everything the child does between `fork` and `exec` is a raw system call on
//! data prepared beforehand: nothing allocates there.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Landlock's write-like access rights (`linux/landlock.h`), by ABI version.
mod landlock {
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    pub const REFER: u64 = 1 << 13;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    pub const SCOPE_SIGNAL: u64 = 1 << 1;
    pub const RULE_PATH_BENEATH: libc::c_int = 1;
    pub const CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;

    #[repr(C)]
    pub struct RulesetAttr {
        pub handled_access_fs: u64,
        pub handled_access_net: u64,
        pub scoped: u64,
    }

    #[repr(C, packed)]
    pub struct PathBeneathAttr {
        pub allowed_access: u64,
        pub parent_fd: i32,
    }

    /// The write rights the kernel of Landlock ABI `abi` knows.
    pub fn write_rights(abi: i64) -> u64 {
        let mut rights = WRITE_FILE
            | REMOVE_DIR
            | REMOVE_FILE
            | MAKE_CHAR
            | MAKE_DIR
            | MAKE_REG
            | MAKE_SOCK
            | MAKE_FIFO
            | MAKE_BLOCK
            | MAKE_SYM;
        if abi >= 2 {
            rights |= REFER;
        }
        if abi >= 3 {
            rights |= TRUNCATE;
        }
        if abi >= 5 {
            rights |= IOCTL_DEV;
        }
        rights
    }
}

/// What a confined command may write beneath besides the working directory.
const SCRATCH: &[&str] = &["/tmp", "/dev"];

/// How commands are confined on this machine, decided once at start.
#[derive(Clone)]
pub struct Sandbox {
    plan: Option<Arc<Plan>>,
    /// Why commands run unconfined, when they do.
    unconfined: Option<String>,
}

/// Everything the child needs, prepared before `fork`.
struct Plan {
    /// `Some((uid_map, gid_map))` when a user namespace is needed (not root).
    user_maps: Option<(Vec<u8>, Vec<u8>)>,
    /// Directories covered by an empty tmpfs.
    hide_dirs: Vec<CString>,
    /// Files covered by `/dev/null`.
    hide_files: Vec<CString>,
    /// Where writes are allowed, with the rights to grant there.
    writable: Vec<CString>,
    /// The kernel's Landlock ABI version, 0 without Landlock.
    landlock_abi: i64,
}

impl Sandbox {
    /// Confinement for commands working in `workdir` that must not reach
    /// `hidden` (directories or files). Probes the kernel by running `true`
    /// confined; when that fails, commands run unconfined and [`Sandbox::unconfined`] says why.
    pub fn new(workdir: &Path, hidden: &[PathBuf]) -> Sandbox {
        let plan = match Plan::new(workdir, hidden) {
            Ok(plan) => Arc::new(plan),
            Err(e) => return Sandbox { plan: None, unconfined: Some(e) },
        };
        let sandbox = Sandbox { plan: Some(plan), unconfined: None };
        match sandbox.probe() {
            Ok(()) => sandbox,
            Err(e) => Sandbox { plan: None, unconfined: Some(e) },
        }
    }

    /// No confinement (for tests of the tools themselves).
    pub fn none() -> Sandbox {
        Sandbox { plan: None, unconfined: Some("confinement was not asked for".into()) }
    }

    /// Why commands run unconfined, or `None` when they are confined.
    pub fn unconfined(&self) -> Option<&str> {
        self.unconfined.as_deref()
    }

    /// Whether writes are confined too (Landlock), besides what is hidden.
    pub fn confines_writes(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.landlock_abi > 0)
    }

    /// One line for `serve` and `check`: how commands run here.
    pub fn describe(&self) -> String {
        match (&self.plan, &self.unconfined) {
            (Some(plan), _) if plan.landlock_abi > 0 => format!(
                "the agent's commands run confined: own namespaces (the daemon's files, environment and processes out of sight), writes only in the workdir, /tmp and /dev (Landlock ABI {})",
                plan.landlock_abi
            ),
            (Some(_), _) => "the agent's commands run in their own namespaces (the daemon's files, environment and processes out of sight), but this kernel has no Landlock: their writes are not limited to the workdir".into(),
            (None, why) => format!(
                "WARNING: the agent's commands run unconfined ({}): an allowed command can read the data directory, the configuration and the daemon's environment",
                why.as_deref().unwrap_or("unknown reason")
            ),
        }
    }

    /// Makes `command` run confined (a no-op when unconfined).
    pub fn apply(&self, command: &mut tokio::process::Command) {
        if let Some(plan) = self.plan.clone() {
            // SAFETY: `enter` only makes async-signal-safe system calls on data
            // prepared before the fork, as `pre_exec` requires.
            unsafe {
                command.pre_exec(move || enter(&plan));
            }
        }
    }

    fn probe(&self) -> Result<(), String> {
        let Some(plan) = self.plan.clone() else { return Ok(()) };
        let mut command = std::process::Command::new("/bin/sh");
        command.arg("-c").arg("true").stdin(std::process::Stdio::null());
        // SAFETY: as in `apply`.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || enter(&plan));
        }
        match command.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("a confined test command failed ({status})")),
            Err(e) => Err(format!("the kernel refused to confine a command ({e})")),
        }
    }
}

impl Plan {
    fn new(workdir: &Path, hidden: &[PathBuf]) -> Result<Plan, String> {
        let c =
            |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} has a NUL byte", p.display()));
        let mut hide_dirs = Vec::new();
        let mut hide_files = Vec::new();
        for path in hidden {
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => hide_dirs.push(c(path)?),
                Ok(_) => hide_files.push(c(path)?),
                Err(_) => {} // Nothing there to hide.
            }
        }
        let workdir = std::path::absolute(workdir).map_err(|e| format!("the workdir cannot be resolved ({e})"))?;
        let mut writable = vec![c(&workdir)?];
        for scratch in SCRATCH {
            writable.push(c(Path::new(scratch))?);
        }
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let user_maps =
            (uid != 0).then(|| (format!("{uid} {uid} 1\n").into_bytes(), format!("{gid} {gid} 1\n").into_bytes()));
        Ok(Plan { user_maps, hide_dirs, hide_files, writable, landlock_abi: landlock_abi() })
    }
}

/// The kernel's Landlock ABI version; 0 when it has none.
fn landlock_abi() -> i64 {
    // SAFETY: asking for the version passes no memory to the kernel.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<landlock::RulesetAttr>(),
            0usize,
            landlock::CREATE_RULESET_VERSION,
        )
    };
    abi.max(0)
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Writes `data` to the file at `path` (in the child: raw calls only).
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(last_error());
    }
    let written = libc::write(fd, data.as_ptr().cast(), data.len());
    libc::close(fd);
    if written != data.len() as isize {
        return Err(last_error());
    }
    Ok(())
}

/// Runs in the forked child before `exec`: new namespaces, a second fork so the
/// command is the first process of its PID namespace (its parent only waits and
/// passes the exit status on), then what the command may see and write.
unsafe fn enter(plan: &Plan) -> io::Result<()> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if plan.user_maps.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    if libc::unshare(flags) != 0 {
        return Err(last_error());
    }
    if let Some((uid_map, gid_map)) = &plan.user_maps {
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", uid_map)?;
        write_file(c"/proc/self/gid_map", gid_map)?;
    }
    let pid = libc::fork();
    if pid < 0 {
        return Err(last_error());
    }
    if pid > 0 {
        wait_and_pass_on(pid);
    }
    // The first process of the new PID namespace: it dies with its waiter.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    let none = std::ptr::null::<libc::c_char>();
    if libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
        return Err(last_error());
    }
    let quiet = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if libc::mount(c"proc".as_ptr(), c"/proc".as_ptr(), c"proc".as_ptr(), quiet, std::ptr::null()) != 0 {
        return Err(last_error());
    }
    for dir in &plan.hide_dirs {
        let options = c"size=4k,mode=000";
        if libc::mount(c"tmpfs".as_ptr(), dir.as_ptr(), c"tmpfs".as_ptr(), quiet, options.as_ptr().cast()) != 0 {
            return Err(last_error());
        }
    }
    for file in &plan.hide_files {
        if libc::mount(c"/dev/null".as_ptr(), file.as_ptr(), none, libc::MS_BIND, std::ptr::null()) != 0 {
            return Err(last_error());
        }
    }
    if plan.landlock_abi > 0 {
        restrict_writes(plan)?;
    }
    Ok(())
}

/// The waiter: closes everything it holds (so the spawner sees the command's own
/// `exec`), waits for the command and exits as it did.
unsafe fn wait_and_pass_on(pid: libc::pid_t) -> ! {
    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    let mut status = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid || (r < 0 && *libc::__errno_location() != libc::EINTR) {
            break;
        }
    }
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        libc::_exit(128 + libc::WTERMSIG(status));
    }
    libc::_exit(1)
}

/// Landlock: writes only beneath the writable paths; no signals out (ABI 6+).
unsafe fn restrict_writes(plan: &Plan) -> io::Result<()> {
    let rights = landlock::write_rights(plan.landlock_abi);
    let scoped = if plan.landlock_abi >= 6 { landlock::SCOPE_ABSTRACT_UNIX_SOCKET | landlock::SCOPE_SIGNAL } else { 0 };
    let attr = landlock::RulesetAttr { handled_access_fs: rights, handled_access_net: 0, scoped };
    // Older kernels take the shorter structure without `scoped`.
    let size = if plan.landlock_abi >= 6 { 24usize } else { 16usize };
    let ruleset = libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const _, size, 0u32) as libc::c_int;
    if ruleset < 0 {
        return Err(last_error());
    }
    for path in &plan.writable {
        let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        if fd < 0 {
            continue; // A scratch directory this machine lacks.
        }
        let rule = landlock::PathBeneathAttr { allowed_access: rights, parent_fd: fd };
        let added =
            libc::syscall(libc::SYS_landlock_add_rule, ruleset, landlock::RULE_PATH_BENEATH, &rule as *const _, 0u32);
        libc::close(fd);
        if added != 0 {
            libc::close(ruleset);
            return Err(last_error());
        }
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return Err(last_error());
    }
    let restricted = libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32);
    libc::close(ruleset);
    if restricted != 0 {
        return Err(last_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sandbox: &Sandbox, dir: &Path, script: &str) -> (i32, String) {
        let mut command = tokio::process::Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        sandbox.apply(&mut command);
        let out = command.output().await.expect("spawn");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    #[tokio::test]
    async fn a_confined_command_cannot_see_hidden_paths_other_processes_or_write_outside() {
        let root = tempfile::tempdir().unwrap();
        let (work, data, config) = (root.path().join("work"), root.path().join("data"), root.path().join("sb.toml"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("store"), "the store").unwrap();
        std::fs::write(&config, "secret = 1").unwrap();
        let sandbox = Sandbox::new(&work, &[data.clone(), config.clone()]);
        if let Some(why) = sandbox.unconfined() {
            // Reported by `serve` and `check`; nothing to test on such a kernel.
            eprintln!("skipped: commands run unconfined here: {why}");
            return;
        }
        let (code, out) =
            run(&sandbox, &work, &format!("ls -A {}; cat {}; echo end", data.display(), config.display())).await;
        assert_eq!((code, out.trim()), (0, "end"), "hidden: {out}");
        let (_, out) = run(&sandbox, &work, "ls /proc | grep -c '^[0-9]'").await;
        assert!(out.trim().parse::<u32>().unwrap() <= 3, "only its own processes: {out}");
        let (code, _) = run(&sandbox, &work, "echo x > inside.txt").await;
        assert_eq!(code, 0);
        assert!(work.join("inside.txt").exists());
        if sandbox.confines_writes() {
            // Outside the workdir and the scratch directories (/tmp, /dev).
            let outside = PathBuf::from(format!("/var/tmp/switchboard-sandbox-test-{}", std::process::id()));
            let (code, _) = run(&sandbox, &work, &format!("echo x > {}", outside.display())).await;
            let written = outside.exists();
            let _ = std::fs::remove_file(&outside);
            assert!(code != 0 && !written, "a write outside the workdir was allowed");
        }
        assert_eq!(std::fs::read_to_string(data.join("store")).unwrap(), "the store", "the real data is untouched");
    }
}
