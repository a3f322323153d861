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
    fn missing_nested_path_resolves_inside() {
        let (_root, _outside, w) = setup();
        let p = w.resolve("new/dir/file.txt").unwrap();
        assert_eq!(p, w.root().join("new/dir/file.txt"));
        assert!(!p.exists());
    }
}
