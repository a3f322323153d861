//! The search tools: `Glob` (find files by pattern) and `Grep` (find lines by regex),
//! both confined to the working directory and never following symlinks out of it.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use serde_json::{json, Value};
use walkdir::WalkDir;

use super::files::{is_binary, MAX_FILE_BYTES};
use super::workdir::Access;
use super::{ToolClass, ToolOutcome, ToolSpec, Workdir};

pub const GLOB: &str = "Glob";
pub const GREP: &str = "Grep";

const MAX_GLOB_RESULTS: usize = 500;
const MAX_GREP_MATCHES: usize = 200;
/// Matched lines longer than this are clipped in Grep's output.
const MAX_MATCH_LINE_CHARS: usize = 500;
/// Directories never searched.
const SKIPPED_DIRS: &[&str] = &[".git"];

pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: GLOB,
            description: "Find files in the working directory by glob pattern, e.g. `**/*.rs` or `src/*.toml` \
                (`*` stays within one folder, `**` crosses folders). Returns matching file paths relative to the \
                working directory, sorted, at most 500.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "Glob pattern relative to the working directory."}
                },
                "required": ["pattern"]
            }),
            class: ToolClass::ReadOnly,
        },
        ToolSpec {
            name: GREP,
            description: "Search file contents with a regular expression (Rust regex syntax) under the working \
                directory. Prints `path:line:text` for each matching line, at most 200. Binary files and files \
                over 10 MiB are skipped.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "Regular expression, e.g. `fn\\s+main` or `(?i)todo`."},
                    "path": {"type": "string", "description": "File or folder to search (default: the whole working directory)."},
                    "glob": {"type": "string", "description": "Only search files matching this glob, e.g. `*.rs` (matched against the file name) or `src/**/*.rs` (matched against the relative path)."}
                },
                "required": ["pattern"]
            }),
            class: ToolClass::ReadOnly,
        },
    ]
}

pub async fn run(workdir: &Workdir, name: &str, input: &Value) -> ToolOutcome {
    let (name, input, workdir) = (name.to_string(), input.clone(), workdir.clone());
    super::off_thread("search tool", move || match name.as_str() {
        GLOB => glob(&workdir, &input),
        GREP => grep(&workdir, &input),
        other => Err(format!("{other} is not a search tool.")),
    })
    .await
}

fn glob(workdir: &Workdir, input: &Value) -> Result<String, String> {
    let pattern = input.get("pattern").and_then(Value::as_str).ok_or("Glob needs a string argument 'pattern'.")?;
    let pattern = relative_pattern(workdir, pattern)?;
    let matcher = compile_glob(&pattern)?;
    let mut found: Vec<String> = files_under(workdir, workdir.root())
        .map(|p| relative(workdir, &p))
        .filter(|rel| matcher.is_match(rel))
        .collect();
    found.sort();
    tracing::debug!(pattern = %pattern, matches = found.len(), "Glob");
    if found.is_empty() {
        return Ok(format!("No files match {pattern}."));
    }
    let total = found.len();
    found.truncate(MAX_GLOB_RESULTS);
    let mut out = found.join("\n");
    if total > MAX_GLOB_RESULTS {
        out.push_str(&format!("\n[… {} more files left off; use a narrower pattern]", total - MAX_GLOB_RESULTS));
    }
    Ok(out)
}

/// A pattern relative to the root: strips `./` and an absolute prefix naming the root.
fn relative_pattern(workdir: &Workdir, pattern: &str) -> Result<String, String> {
    let mut pattern = pattern.trim();
    if pattern.is_empty() {
        return Err("The pattern is empty; try e.g. **/*.rs.".into());
    }
    if pattern.starts_with('/') {
        let root = format!("{}/", workdir.root().display());
        pattern = pattern.strip_prefix(&root).ok_or_else(|| {
            format!("The pattern must be relative to the working directory {}, e.g. **/*.rs.", workdir.root().display())
        })?;
    }
    while let Some(rest) = pattern.strip_prefix("./") {
        pattern = rest;
    }
    Ok(pattern.to_string())
}

fn compile_glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("The glob pattern is invalid: {e}."))
}

fn grep(workdir: &Workdir, input: &Value) -> Result<String, String> {
    let pattern = input.get("pattern").and_then(Value::as_str).ok_or("Grep needs a string argument 'pattern'.")?;
    let regex = Regex::new(pattern).map_err(|e| format!("The regular expression is invalid:\n{e}"))?;
    let start = match input.get("path") {
        None | Some(Value::Null) => workdir.root().to_path_buf(),
        Some(v) => workdir.resolve(v.as_str().ok_or("path must be a string.")?)?,
    };
    if !start.exists() {
        return Err(format!("There is no file or folder at {}. Use Glob to find it.", workdir.display(&start)));
    }
    let filter = match input.get("glob") {
        None | Some(Value::Null) => None,
        Some(v) => Some(FileFilter::new(v.as_str().ok_or("glob must be a string.")?)?),
    };
    let mut matches = Vec::new();
    let mut more = false;
    for file in files_under(workdir, &start) {
        let rel = relative(workdir, &file);
        if filter.as_ref().is_some_and(|f| !f.accepts(&rel)) {
            continue;
        }
        if !search_file(workdir, &file, &rel, &regex, &mut matches) {
            more = true;
            break;
        }
    }
    tracing::debug!(matches = matches.len(), "Grep");
    if matches.is_empty() {
        return Ok("No matches.".into());
    }
    let mut out = matches.join("\n");
    if more {
        out.push_str(&format!(
            "\n[stopped at {MAX_GREP_MATCHES} matches; more were left off. Narrow the pattern, path or glob]"
        ));
    }
    Ok(out)
}

/// Grep's `glob`: a pattern without `/` matches the file name, one with `/` the relative path.
struct FileFilter {
    matcher: GlobMatcher,
    on_name: bool,
}

impl FileFilter {
    fn new(pattern: &str) -> Result<FileFilter, String> {
        let pattern = pattern.trim().trim_start_matches("./");
        Ok(FileFilter { matcher: compile_glob(pattern)?, on_name: !pattern.contains('/') })
    }

    fn accepts(&self, rel: &str) -> bool {
        let subject = if self.on_name { rel.rsplit('/').next().unwrap_or(rel) } else { rel };
        self.matcher.is_match(subject)
    }
}

/// Appends the file's matching lines; returns false once the match cap is exceeded.
fn search_file(workdir: &Workdir, path: &Path, rel: &str, regex: &Regex, matches: &mut Vec<String>) -> bool {
    let Some(text) = read_text(workdir, path) else { return true };
    for (i, line) in text.lines().enumerate() {
        if !regex.is_match(line) {
            continue;
        }
        if matches.len() == MAX_GREP_MATCHES {
            return false;
        }
        matches.push(format!("{rel}:{}:{}", i + 1, clip(line)));
    }
    true
}

/// The file as text, or None for binary, oversized or unreadable files.
fn read_text(workdir: &Workdir, path: &Path) -> Option<String> {
    // A symlink inside the root may name its target absolutely, which an open
    // beneath the root refuses: open where it leads (checked again on opening).
    let file = workdir.open(&fs::canonicalize(path).ok()?, Access::Read).ok()?;
    if file.metadata().ok()?.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).ok()?;
    if is_binary(&bytes) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn clip(line: &str) -> String {
    let line = line.strip_suffix('\r').unwrap_or(line);
    match line.char_indices().nth(MAX_MATCH_LINE_CHARS) {
        None => line.to_string(),
        Some((cut, _)) => format!("{}[…]", &line[..cut]),
    }
}

/// Regular files under `start` (itself if it is a file), skipping `.git` and any symlink
/// that does not lead to a file inside the root. Symlinked directories are not entered.
fn files_under<'a>(workdir: &'a Workdir, start: &Path) -> impl Iterator<Item = PathBuf> + 'a {
    WalkDir::new(start)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && SKIPPED_DIRS.iter().any(|d| e.file_name() == *d)))
        .filter_map(Result::ok)
        .filter(move |e| {
            let kind = e.file_type();
            kind.is_file() || (kind.is_symlink() && links_to_file_inside(workdir, e.path()))
        })
        .map(walkdir::DirEntry::into_path)
}

fn links_to_file_inside(workdir: &Workdir, path: &Path) -> bool {
    fs::canonicalize(path).is_ok_and(|target| target.starts_with(workdir.root()) && target.is_file())
}

/// The root-relative path with `/` separators.
fn relative(workdir: &Workdir, path: &Path) -> String {
    let rel = path.strip_prefix(workdir.root()).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with nested files, a .git folder and symlinks out of the root.
    fn tree() -> (tempfile::TempDir, tempfile::TempDir, Workdir) {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let w = Workdir::new(dir.path()).unwrap();
        let put = |rel: &str, text: &str| {
            let p = w.root().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        put("Cargo.toml", "[package]\nname = \"demo\"\n");
        put("src/main.rs", "fn main() {\n    helper();\n}\n");
        put("src/deep/helper.rs", "pub fn helper() {}\n// TODO: more\n");
        put("docs/notes.md", "fn in markdown\n");
        put(".git/config", "fn hidden\n");
        fs::write(w.root().join("blob.bin"), b"fn\0binary").unwrap();
        fs::write(outside.path().join("secret.rs"), "fn secret() {}\n").unwrap();
        symlink(outside.path(), w.root().join("escape")).unwrap();
        symlink(outside.path().join("secret.rs"), w.root().join("src/link.rs")).unwrap();
        (dir, outside, w)
    }

    #[tokio::test]
    async fn glob_finds_nested_files_and_ignores_outside() {
        let (_dir, _outside, w) = tree();
        let out = run(&w, GLOB, &json!({"pattern": "**/*.rs"})).await;
        assert!(!out.is_error, "{}", out.content);
        assert_eq!(out.content, "src/deep/helper.rs\nsrc/main.rs");
        let top = run(&w, GLOB, &json!({"pattern": "*.toml"})).await;
        assert_eq!(top.content, "Cargo.toml");
        let one_level = run(&w, GLOB, &json!({"pattern": "./src/*.rs"})).await;
        assert_eq!(one_level.content, "src/main.rs");
        let all = run(&w, GLOB, &json!({"pattern": "**"})).await;
        assert!(!all.content.contains(".git") && !all.content.contains("secret"), "{}", all.content);
        let none = run(&w, GLOB, &json!({"pattern": "**/*.py"})).await;
        assert!(!none.is_error && none.content.starts_with("No files"));
        assert!(run(&w, GLOB, &json!({"pattern": "/etc/*"})).await.is_error);
        assert!(run(&w, GLOB, &json!({"pattern": "a[b"})).await.is_error);
    }

    #[tokio::test]
    async fn glob_includes_symlinks_to_files_inside() {
        let (_dir, _outside, w) = tree();
        symlink(w.root().join("src/main.rs"), w.root().join("alias.rs")).unwrap();
        let out = run(&w, GLOB, &json!({"pattern": "*.rs"})).await;
        assert_eq!(out.content, "alias.rs");
    }

    #[tokio::test]
    async fn glob_caps_results() {
        let dir = tempfile::tempdir().unwrap();
        let w = Workdir::new(dir.path()).unwrap();
        for i in 0..510 {
            fs::write(w.root().join(format!("f{i:03}.txt")), "").unwrap();
        }
        let out = run(&w, GLOB, &json!({"pattern": "*.txt"})).await;
        assert_eq!(out.content.lines().count(), 501);
        assert!(out.content.ends_with("[… 10 more files left off; use a narrower pattern]"));
    }

    #[tokio::test]
    async fn grep_finds_matches_with_file_and_line() {
        let (_dir, _outside, w) = tree();
        let out = run(&w, GREP, &json!({"pattern": "fn \\w+\\("})).await;
        assert!(!out.is_error, "{}", out.content);
        let mut lines: Vec<&str> = out.content.lines().collect();
        lines.sort();
        assert_eq!(lines, ["src/deep/helper.rs:1:pub fn helper() {}", "src/main.rs:1:fn main() {"]);
        let todo = run(&w, GREP, &json!({"pattern": "(?i)todo", "path": "src"})).await;
        assert_eq!(todo.content, "src/deep/helper.rs:2:// TODO: more");
        for skipped in ["zzz", "binary", "hidden", "secret"] {
            let none = run(&w, GREP, &json!({"pattern": skipped})).await;
            assert_eq!(none.content, "No matches.", "{skipped}");
        }
    }

    #[tokio::test]
    async fn grep_glob_filter_and_path() {
        let (_dir, _outside, w) = tree();
        let md = run(&w, GREP, &json!({"pattern": "^fn", "glob": "*.md"})).await;
        assert_eq!(md.content, "docs/notes.md:1:fn in markdown");
        let by_path = run(&w, GREP, &json!({"pattern": "helper", "glob": "src/deep/*.rs"})).await;
        assert_eq!(by_path.content, "src/deep/helper.rs:1:pub fn helper() {}");
        let file = run(&w, GREP, &json!({"pattern": "helper", "path": "src/main.rs"})).await;
        assert_eq!(file.content, "src/main.rs:2:    helper();");
        assert!(run(&w, GREP, &json!({"pattern": "x", "path": "../"})).await.is_error);
        assert!(run(&w, GREP, &json!({"pattern": "x", "path": "escape"})).await.is_error);
        assert!(run(&w, GREP, &json!({"pattern": "x", "path": "missing"})).await.is_error);
    }

    #[tokio::test]
    async fn grep_bad_regex_is_an_error() {
        let (_dir, _outside, w) = tree();
        let out = run(&w, GREP, &json!({"pattern": "fn ("})).await;
        assert!(out.is_error);
        assert!(out.content.contains("invalid") && out.content.contains("unclosed"), "{}", out.content);
    }

    #[tokio::test]
    async fn grep_caps_matches() {
        let dir = tempfile::tempdir().unwrap();
        let w = Workdir::new(dir.path()).unwrap();
        fs::write(w.root().join("many.txt"), "hit\n".repeat(300)).unwrap();
        let out = run(&w, GREP, &json!({"pattern": "hit"})).await;
        assert_eq!(out.content.lines().count(), MAX_GREP_MATCHES + 1);
        assert!(out.content.contains("stopped at 200 matches"));
    }
}
