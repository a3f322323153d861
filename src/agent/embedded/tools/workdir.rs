//! Confinement of the file and shell tools' paths to the agent's working directory.

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The directory the agent's file and shell tools work in, canonicalized.
#[derive(Debug, Clone)]
pub struct Workdir {
    root: PathBuf,
}

impl Workdir {
    /// Creates the directory if needed and remembers its canonical form.
    pub fn new(root: &Path) -> std::io::Result<Workdir> {
        fs::create_dir_all(root)?;
        Ok(Workdir { root: fs::canonicalize(root)? })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a tool's path argument (relative to the root, or absolute inside it) to an
    /// absolute path inside the root. Refuses `..` escapes, absolute paths outside and
    /// symlinks anywhere along the path that lead outside. The path need not exist yet:
    /// its longest existing ancestor is canonicalized and the rest appended.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        if path.trim().is_empty() {
            return Err("The path is empty. Give a path relative to the working directory, e.g. src/main.rs.".into());
        }
        if path.contains('\0') {
            return Err("The path contains a NUL character; give a plain path.".into());
        }
        let given = Path::new(path);
        let joined = if given.is_absolute() { given.to_path_buf() } else { self.root.join(given) };
        let normalized = normalize(&joined);
        if !normalized.starts_with(&self.root) {
            return Err(self.outside(path));
        }
        let (existing, rest) = split_existing(&normalized);
        let canonical = fs::canonicalize(&existing).map_err(|_| {
            format!("The path '{path}' goes through a broken symlink ({}); use another path.", self.display(&existing))
        })?;
        if !canonical.starts_with(&self.root) {
            return Err(self.outside(path));
        }
        Ok(rest.into_iter().rev().fold(canonical, |acc, name| acc.join(name)))
    }

    /// Opens a regular file at `path` (as [`Workdir::resolve`] gave it) so that the
    /// kernel checks, while opening, that every step stays beneath the root: a
    /// symlink swapped in after `resolve` (by a command running meanwhile) cannot
    /// lead the open outside. `Write` creates or truncates the file. Refuses
    /// anything but a regular file (a FIFO would hang the tool).
    pub fn open(&self, path: &Path, access: Access) -> std::io::Result<fs::File> {
        use std::io::{Error, ErrorKind};
        let outside = || Error::new(ErrorKind::PermissionDenied, "the path leads outside the working directory");
        let relative = path.strip_prefix(&self.root).map_err(|_| outside())?;
        let file = match open_beneath(&self.root, relative, access) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) || e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(outside())
            }
            // Kernels before 5.6 have no `openat2`: the check `resolve` made stands.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => access.options().open(path)?,
            other => other?,
        };
        if !file.metadata()?.is_file() {
            return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(file)
    }

    /// For display: the path relative to the root ("." for the root itself).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    fn outside(&self, path: &str) -> String {
        format!(
            "The path '{path}' is outside the working directory {}. Use a path inside it (relative paths start there).",
            self.root.display()
        )
    }
}

/// How a file tool opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Created if missing, emptied if not.
    Write,
}

impl Access {
    fn flags(self) -> libc::c_int {
        let base = libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        match self {
            Access::Read => base | libc::O_RDONLY,
            Access::Write => base | libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        }
    }

    fn options(self) -> fs::OpenOptions {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = fs::OpenOptions::new();
        match self {
            Access::Read => options.read(true),
            Access::Write => options.write(true).create(true).truncate(true),
        };
        options.custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK);
        options
    }
}

/// `openat2(root, relative, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn open_beneath(root: &Path, relative: &Path, access: Access) -> std::io::Result<fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_BENEATH: u64 = 0x08;
    let dir = fs::File::open(root)?;
    let name = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
    let name = std::ffi::CString::new(name.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    let mode = if access == Access::Write { 0o666 } else { 0 };
    let how = OpenHow { flags: access.flags() as u64, mode, resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    // SAFETY: every pointer is to a live value of the layout the kernel expects.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), name.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>())
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, owned by nothing else.
    Ok(unsafe { fs::File::from_raw_fd(fd as libc::c_int) })
}

/// Removes `.` and resolves `..` lexically (an absolute path cannot climb above `/`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(p) => out.push(p.as_os_str()),
            Component::RootDir => out.push(Component::RootDir.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// Splits an absolute, normalized path into its longest ancestor that exists (as a
/// directory entry, so a dangling symlink counts as existing) and the missing names
/// after it, innermost first.
fn split_existing(path: &Path) -> (PathBuf, Vec<OsString>) {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while fs::symlink_metadata(&existing).is_err() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_os_string()),
            None => break,
        }
        if !existing.pop() {
            break;
        }
    }
    (existing, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Workdir) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let workdir = Workdir::new(root.path()).unwrap();
        (root, outside, workdir)
    }

    #[test]
    fn new_creates_and_canonicalizes() {
        let base = tempfile::tempdir().unwrap();
        let nested = base.path().join("a/b/../c");
        let w = Workdir::new(&nested).unwrap();
        assert!(w.root().is_dir());
        assert_eq!(w.root(), fs::canonicalize(base.path().join("a/c")).unwrap());
    }

    #[test]
    fn relative_paths_resolve_inside() {
        let (_root, _outside, w) = setup();
        fs::write(w.root().join("file.txt"), "x").unwrap();
        assert_eq!(w.resolve("file.txt").unwrap(), w.root().join("file.txt"));
        assert_eq!(w.resolve("./a/../file.txt").unwrap(), w.root().join("file.txt"));
        assert_eq!(w.resolve(".").unwrap(), w.root());
        assert_eq!(w.display(&w.root().join("a/b")), "a/b");
        assert_eq!(w.display(w.root()), ".");
    }

    #[test]
    fn absolute_inside_is_accepted() {
        let (_root, _outside, w) = setup();
        let abs = w.root().join("x.txt");
        assert_eq!(w.resolve(abs.to_str().unwrap()).unwrap(), abs);
    }

    #[test]
    fn parent_escape_is_refused() {
        let (_root, _outside, w) = setup();
        let err = w.resolve("../x").unwrap_err();
        assert!(err.contains("outside the working directory"), "{err}");
        assert!(w.resolve("a/../../x").is_err());
        assert!(w.resolve("..").is_err());
        assert!(w.resolve("").is_err());
    }

    #[test]
    fn absolute_outside_is_refused() {
        let (_root, outside, w) = setup();
        assert!(w.resolve("/etc/passwd").is_err());
        assert!(w.resolve(outside.path().join("f").to_str().unwrap()).is_err());
        // Root itself and a sibling whose name merely starts with the root's name.
        let sibling = format!("{}-evil/f", w.root().display());
        assert!(w.resolve(&sibling).is_err());
    }

    #[test]
    fn symlinked_file_pointing_outside_is_refused() {
        let (_root, outside, w) = setup();
        let secret = outside.path().join("secret.txt");
        fs::write(&secret, "secret").unwrap();
        symlink(&secret, w.root().join("link.txt")).unwrap();
        assert!(w.resolve("link.txt").is_err());
    }

    #[test]
    fn writing_through_a_symlinked_dir_is_refused() {
        let (_root, outside, w) = setup();
        symlink(outside.path(), w.root().join("out")).unwrap();
        let err = w.resolve("out/new/deeper.txt").unwrap_err();
        assert!(err.contains("outside"), "{err}");
        assert!(w.resolve("out").is_err());
    }

    #[test]
    fn dangling_symlink_is_refused() {
        let (_root, outside, w) = setup();
        symlink(outside.path().join("not-yet"), w.root().join("dangling")).unwrap();
        assert!(w.resolve("dangling").is_err());
    }

    #[test]
    fn symlink_inside_the_root_is_followed() {
        let (_root, _outside, w) = setup();
        fs::create_dir(w.root().join("real")).unwrap();
        symlink(w.root().join("real"), w.root().join("alias")).unwrap();
        assert_eq!(w.resolve("alias/f.txt").unwrap(), w.root().join("real/f.txt"));
    }

    #[test]
    fn an_open_checks_again_so_a_symlink_swapped_in_after_resolving_cannot_lead_out() {
        let (_root, outside, w) = setup();
        fs::write(outside.path().join("secret"), "secret").unwrap();
        fs::create_dir(w.root().join("dir")).unwrap();
        fs::write(w.root().join("dir/secret"), "inside").unwrap();
        let resolved = w.resolve("dir/secret").unwrap();
        // A command running meanwhile swaps the directory for a link out.
        fs::remove_dir_all(w.root().join("dir")).unwrap();
        symlink(outside.path(), w.root().join("dir")).unwrap();
        let err = w.open(&resolved, Access::Read).unwrap_err();
        assert!(err.to_string().contains("outside the working directory"), "{err}");
        let err = w.open(&resolved, Access::Write).unwrap_err();
        assert!(err.to_string().contains("outside the working directory"), "{err}");
        assert_eq!(fs::read_to_string(outside.path().join("secret")).unwrap(), "secret", "not truncated");
    }

    #[test]
    fn an_open_refuses_what_is_not_a_regular_file() {
        let (_root, _outside, w) = setup();
        let fifo = w.root().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        assert!(w.open(&fifo, Access::Read).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "opening a FIFO hung");
        assert!(w.open(w.root(), Access::Read).is_err(), "a directory");
        fs::write(w.root().join("f"), "x").unwrap();
        assert!(w.open(&w.root().join("f"), Access::Read).is_ok());
    }

    #[test]
    fn missing_nested_path_resolves_inside() {
        let (_root, _outside, w) = setup();
        let p = w.resolve("new/dir/file.txt").unwrap();
        assert_eq!(p, w.root().join("new/dir/file.txt"));
        assert!(!p.exists());
    }
}
