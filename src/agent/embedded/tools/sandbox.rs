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
//! file in place of the configuration file. It holds no capabilities at all, even
//! as root (none to regain by `exec`, no setuid programs), so it can neither undo
//! those mounts nor go around them (`open_by_handle_at`, raw devices, `ptrace`).
//! Landlock, where the kernel has it, then confines writes to the working
//! directory, `/tmp` and `/dev`, and (ABI 6 and later) keeps the command from
//! signalling processes outside it. Reading the rest of the machine stays
//! possible, as for any program of the user.
//!
//! Three processes, so that nothing the command does can outlive it:
//! - the *keeper*, forked by the daemon: makes the namespaces, then only waits
//!   (it is what the daemon sees, kills on timeout, and whose status it reads);
//! - the *init*, the first process of the new PID namespace, which dies with the
//!   keeper (`PR_SET_PDEATHSIG`, set before it can miss the keeper's end): makes
//!   the mounts, starts the command and waits for it. When the init ends, the
//!   kernel kills every process of the namespace, whatever session, process group
//!   or parent-death signal they chose;
//! - the *command*, which drops its capabilities and Landlocks itself before `exec`.
//!
//! Everything the children do between `fork` and `exec` is a raw system call on
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
#[derive(Clone)]
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

    /// The same confinement for commands working in `workdir` instead (the kernel
    /// was probed already); unconfined stays unconfined.
    pub fn with_workdir(&self, workdir: &Path) -> Sandbox {
        let Some(plan) = &self.plan else { return self.clone() };
        let writable = std::path::absolute(workdir)
            .map_err(|e| format!("the workdir cannot be resolved ({e})"))
            .and_then(|w| CString::new(w.as_os_str().as_bytes()).map_err(|_| "the workdir has a NUL byte".to_string()));
        match writable {
            Ok(workdir) => {
                let mut plan = Plan::clone(plan);
                plan.writable[0] = workdir;
                Sandbox { plan: Some(Arc::new(plan)), unconfined: None }
            }
            Err(why) => Sandbox { plan: None, unconfined: Some(why) },
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

/// Runs in the process the daemon forked (the keeper), before `exec`: new
/// namespaces, the init and the command (see the module's introduction). Only
/// the command returns from here, to `exec`.
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
    // Readable once the keeper has ended (the init cannot name it by pid).
    let keeper = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0u32) as libc::c_int;
    if keeper < 0 {
        return Err(last_error());
    }
    let init = libc::fork();
    if init < 0 {
        return Err(last_error());
    }
    if init > 0 {
        wait_and_pass_on(init, None);
    }
    // The init: it dies with the keeper, and the namespace with it. A keeper
    // killed before the line below is seen on its pidfd.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    let mut ended = libc::pollfd { fd: keeper, events: libc::POLLIN, revents: 0 };
    if libc::poll(&mut ended, 1, 0) != 0 {
        libc::_exit(137);
    }
    libc::close(keeper);
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
    let command = libc::fork();
    if command < 0 {
        return Err(last_error());
    }
    if command > 0 {
        // As the namespace's init it also reaps whatever the command left behind.
        wait_and_pass_on(command, Some(-1));
    }
    if plan.landlock_abi > 0 {
        restrict_writes(plan)?;
    }
    drop_capabilities()
}

/// A waiter (the keeper or the init): closes everything it holds (so the spawner
/// sees only the command's own `exec` and output), waits for `pid` and exits as
/// it did. `reap` is what else to wait for meanwhile (`-1`: any child).
unsafe fn wait_and_pass_on(pid: libc::pid_t, reap: Option<libc::pid_t>) -> ! {
    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    let mut status = 0;
    loop {
        let r = libc::waitpid(reap.unwrap_or(pid), &mut status, 0);
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

/// Leaves the command no capability, now or after `exec`, even as root: the
/// bounding and ambient sets emptied, root's special treatment turned off for
/// good (locked secure bits), and nothing in the effective, permitted or
/// inheritable sets. `no_new_privs` keeps setuid programs and file capabilities
/// from giving any back.
unsafe fn drop_capabilities() -> io::Result<()> {
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return Err(last_error());
    }
    // SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_NO_CAP_AMBIENT_RAISE, each
    // locked, and SECBIT_KEEP_CAPS locked off.
    const SECURE_BITS: libc::c_ulong = 0b1110_1111;
    if libc::prctl(libc::PR_SET_SECUREBITS, SECURE_BITS, 0, 0, 0) != 0 {
        return Err(last_error());
    }
    for cap in 0..64 {
        // Past the kernel's last capability this fails harmlessly (EINVAL).
        libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 {
        return Err(last_error());
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header { version: VERSION_3, pid: 0 };
    let none =
        [Data { effective: 0, permitted: 0, inheritable: 0 }, Data { effective: 0, permitted: 0, inheritable: 0 }];
    if libc::syscall(libc::SYS_capset, &header as *const Header, none.as_ptr()) != 0 {
        return Err(last_error());
    }
    Ok(())
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
    // Landlock requires `no_new_privs` (or a capability the command will not keep).
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
        let (code, out) = run(
            &sandbox,
            &work,
            &format!(
                "ls -A {0} 2>&1 | grep -v denied; cat {0}/store {1} 2>&1 | grep -v denied; echo end",
                data.display(),
                config.display()
            ),
        )
        .await;
        assert_eq!((code, out.trim()), (0, "end"), "hidden: {out}");
        let (_, out) = run(&sandbox, &work, "ls /proc | grep -c '^[0-9]'").await;
        // The init, the shell, `ls` and `grep`.
        assert!(out.trim().parse::<u32>().unwrap() <= 4, "only its own processes: {out}");
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

    fn confined(work: &Path) -> Option<Sandbox> {
        let sandbox = Sandbox::new(work, &[]);
        match sandbox.unconfined() {
            Some(why) => {
                eprintln!("skipped: commands run unconfined here: {why}");
                None
            }
            None => Some(sandbox),
        }
    }

    #[tokio::test]
    async fn a_confined_command_holds_no_capability_even_after_exec() {
        let root = tempfile::tempdir().unwrap();
        let Some(sandbox) = confined(root.path()) else { return };
        let (code, out) = run(&sandbox, root.path(), "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status").await;
        assert_eq!(code, 0, "{out}");
        let sets: Vec<&str> = out.lines().collect();
        assert_eq!(sets.len(), 5, "{out}");
        for line in sets {
            assert!(line.ends_with("0000000000000000"), "a capability is left: {out}");
        }
        // Undoing a mount needs a capability; so does going around it.
        let (code, _) = run(&sandbox, root.path(), "umount /proc").await;
        assert_ne!(code, 0, "a confined command unmounted /proc");
    }

    #[tokio::test]
    async fn nothing_a_command_starts_outlives_it_whatever_it_detaches() {
        let root = tempfile::tempdir().unwrap();
        let Some(sandbox) = confined(root.path()) else { return };
        if !Path::new("/usr/bin/perl").exists() {
            eprintln!("skipped: no perl to clear the parent-death signal with");
            return;
        }
        // The command replaces its shell with a program that clears its
        // parent-death signal, starts a new session and writes later; then only
        // the keeper is killed (the daemon's own `kill_on_drop`).
        let marker = root.path().join("survived");
        let script = format!(
            "exec /usr/bin/perl -e 'syscall({}, 1, 0); use POSIX; POSIX::setsid(); sleep 2; open(F, \">{}\");'",
            libc::SYS_prctl,
            marker.display()
        );
        let mut command = tokio::process::Command::new("/bin/sh");
        command.arg("-c").arg(&script).current_dir(root.path());
        sandbox.apply(&mut command);
        let mut child = command.spawn().expect("spawn");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        child.start_kill().unwrap();
        let _ = child.wait().await;
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        assert!(!marker.exists(), "a detached process outlived its killed command");
    }
}
