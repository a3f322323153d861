//! The file tools: `Read` (numbered lines), `Write` (whole file) and `Edit` (exact
//! string replacement), all confined to the working directory.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::{json, Value};

use super::workdir::Access;
use super::{ToolClass, ToolOutcome, ToolSpec, Workdir};

pub const READ: &str = "Read";
pub const WRITE: &str = "Write";
pub const EDIT: &str = "Edit";

const DEFAULT_LIMIT: usize = 2000;
const MAX_LINE_CHARS: usize = 2000;
/// Larger files are refused by Read and Edit.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// A NUL byte within this many leading bytes marks a file as binary.
pub const BINARY_SNIFF_BYTES: usize = 8 * 1024;

pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: READ,
            description: "Read a text file in the working directory. Lines come numbered like `cat -n` (number, tab, \
                line). Reads up to 2000 lines from `offset`; use offset and limit to page through longer files.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path, relative to the working directory."},
                    "offset": {"type": "integer", "description": "First line to read, 1-based (default 1)."},
                    "limit": {"type": "integer", "description": "How many lines to read (default 2000)."}
                },
                "required": ["path"]
            }),
            class: ToolClass::ReadOnly,
        },
        ToolSpec {
            name: WRITE,
            description: "Create or overwrite a file in the working directory with the given content. Missing \
                parent directories are created. To change part of an existing file, prefer Edit.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path, relative to the working directory."},
                    "content": {"type": "string", "description": "The file's whole new content."}
                },
                "required": ["path", "content"]
            }),
            class: ToolClass::Edit,
        },
        ToolSpec {
            name: EDIT,
            description: "Replace an exact piece of text in a file. old_string must occur exactly once (include \
                surrounding lines to make it unique) unless replace_all is true. Read the file first: match its \
                text exactly, without the line numbers Read adds.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path, relative to the working directory."},
                    "old_string": {"type": "string", "description": "The exact text to replace."},
                    "new_string": {"type": "string", "description": "The text to put in its place."},
                    "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)."}
                },
                "required": ["path", "old_string", "new_string"]
            }),
            class: ToolClass::Edit,
        },
    ]
}

pub async fn run(workdir: &Workdir, name: &str, input: &Value) -> ToolOutcome {
    let (name, input, workdir) = (name.to_string(), input.clone(), workdir.clone());
    super::off_thread("file tool", move || match name.as_str() {
        READ => read(&workdir, &input),
        WRITE => write(&workdir, &input),
        EDIT => edit(&workdir, &input),
        other => Err(format!("{other} is not a file tool.")),
    })
    .await
}

fn string_arg<'a>(input: &'a Value, key: &str, tool: &str) -> Result<&'a str, String> {
    input.get(key).and_then(Value::as_str).ok_or_else(|| format!("{tool} needs a string argument '{key}'."))
}

/// An optional positive integer argument.
fn count_arg(input: &Value, key: &str, default: usize) -> Result<usize, String> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(format!("{key} must be a positive whole number (it was {v}).")),
        },
    }
}

fn read(workdir: &Workdir, input: &Value) -> Result<String, String> {
    let path_arg = string_arg(input, "path", READ)?;
    let offset = count_arg(input, "offset", 1)?;
    let limit = count_arg(input, "limit", DEFAULT_LIMIT)?;
    let path = workdir.resolve(path_arg)?;
    let text = String::from_utf8_lossy(&load(workdir, &path)?).into_owned();
    tracing::debug!(path = %workdir.display(&path), offset, limit, "Read");
    Ok(number_lines(&text, offset, limit))
}

/// Reads a text file's bytes, refusing directories, missing files, binary and oversized files.
fn load(workdir: &Workdir, path: &Path) -> Result<Vec<u8>, String> {
    let shown = workdir.display(path);
    if path.is_dir() {
        return Err(format!("{shown} is a directory, not a file. Use Glob (e.g. pattern '{shown}/*') to list it."));
    }
    let file = workdir.open(path, Access::Read).map_err(|e| missing_or_io(&shown, &e))?;
    let meta = file.metadata().map_err(|e| missing_or_io(&shown, &e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is {} bytes, over the {} MiB limit. Use Bash (e.g. head, tail, grep) to look at parts of it.",
            meta.len(),
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| missing_or_io(&shown, &e))?;
    if is_binary(&bytes) {
        return Err(format!("{shown} looks like a binary file; Read shows text only. Use Bash (e.g. file, xxd)."));
    }
    Ok(bytes)
}

/// Writes the whole file, opened beneath the workdir.
fn store(workdir: &Workdir, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    workdir.open(path, Access::Write)?.write_all(bytes)
}

fn missing_or_io(shown: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("There is no file at {shown}. Use Glob to find the right path.")
    } else {
        format!("{shown} could not be read: {e}.")
    }
}

pub fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0)
}

/// `cat -n` style numbering of lines `offset..offset+limit`, with a note when more remain.
fn number_lines(text: &str, offset: usize, limit: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return "(the file is empty)".into();
    }
    let lines: Vec<&str> = body.split('\n').collect();
    if offset > lines.len() {
        return format!("The file has only {} lines; offset {offset} is past its end.", lines.len());
    }
    let end = offset.saturating_add(limit).saturating_sub(1).min(lines.len());
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate().take(end).skip(offset - 1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(&format!("{:>6}\t{}\n", i + 1, clip_line(line)));
    }
    if end < lines.len() {
        out.push_str(&format!("[… {} more lines; continue with offset={}]\n", lines.len() - end, end + 1));
    }
    out
}

fn clip_line(line: &str) -> String {
    match line.char_indices().nth(MAX_LINE_CHARS) {
        None => line.to_string(),
        Some((cut, _)) => format!("{}[… line cut; {} characters in all]", &line[..cut], line.chars().count()),
    }
}

fn write(workdir: &Workdir, input: &Value) -> Result<String, String> {
    let path_arg = string_arg(input, "path", WRITE)?;
    let content = string_arg(input, "content", WRITE)?;
    let path = workdir.resolve(path_arg)?;
    let shown = workdir.display(&path);
    if path.is_dir() {
        return Err(format!("{shown} is a directory; give a file path inside it."));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("The folders for {shown} could not be created: {e}."))?;
    }
    store(workdir, &path, content.as_bytes()).map_err(|e| format!("{shown} could not be written: {e}."))?;
    tracing::info!(path = %shown, bytes = content.len(), "Write");
    Ok(format!("Wrote {} bytes to {shown}.", content.len()))
}

fn edit(workdir: &Workdir, input: &Value) -> Result<String, String> {
    let path_arg = string_arg(input, "path", EDIT)?;
    let old = string_arg(input, "old_string", EDIT)?;
    let new = string_arg(input, "new_string", EDIT)?;
    let replace_all = match input.get("replace_all") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or("replace_all must be true or false.")?,
    };
    if old.is_empty() {
        return Err("old_string must not be empty. To create or overwrite a whole file, use Write.".into());
    }
    if old == new {
        return Err("old_string and new_string are the same, so there is nothing to change.".into());
    }
    let path = workdir.resolve(path_arg)?;
    let shown = workdir.display(&path);
    let text = String::from_utf8(load(workdir, &path)?)
        .map_err(|_| format!("{shown} is not valid UTF-8 text, so Edit cannot change it safely. Use Write or Bash."))?;
    let count = text.matches(old).count();
    match count {
        0 => return Err(not_found(&text, &shown)),
        n if n > 1 && !replace_all => {
            return Err(format!(
                "old_string occurs {n} times in {shown}. Add surrounding lines to make it unique, or set \
                 replace_all to true to change every occurrence."
            ))
        }
        _ => {}
    }
    let updated = if replace_all { text.replace(old, new) } else { text.replacen(old, new, 1) };
    store(workdir, &path, updated.as_bytes()).map_err(|e| format!("{shown} could not be written: {e}."))?;
    tracing::info!(path = %shown, replacements = count, "Edit");
    let plural = if count == 1 { "" } else { "s" };
    Ok(format!("Made {count} replacement{plural} in {shown}."))
}

fn not_found(text: &str, shown: &str) -> String {
    let mut message = format!(
        "old_string was not found in {shown}. Read the file again and copy the text exactly (spaces, indentation \
         and line breaks), without Read's line numbers."
    );
    if text.contains("\r\n") {
        message.push_str(" Note: this file uses CRLF (\\r\\n) line endings.");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workdir() -> (tempfile::TempDir, Workdir) {
        let dir = tempfile::tempdir().unwrap();
        let w = Workdir::new(dir.path()).unwrap();
        (dir, w)
    }

    #[tokio::test]
    async fn read_numbers_lines_with_offset_and_limit() {
        let (_dir, w) = workdir();
        let text: String = (1..=12).map(|i| format!("line {i}\n")).collect();
        fs::write(w.root().join("a.txt"), text).unwrap();
        let all = run(&w, READ, &json!({"path": "a.txt"})).await;
        assert!(!all.is_error, "{}", all.content);
        assert!(all.content.starts_with("     1\tline 1\n     2\tline 2\n"));
        assert!(all.content.ends_with("    12\tline 12\n"));
        let page = run(&w, READ, &json!({"path": "a.txt", "offset": 3, "limit": 2})).await;
        assert_eq!(page.content, "     3\tline 3\n     4\tline 4\n[… 8 more lines; continue with offset=5]\n");
        let past = run(&w, READ, &json!({"path": "a.txt", "offset": 40})).await;
        assert!(past.content.contains("only 12 lines"));
        assert!(run(&w, READ, &json!({"path": "a.txt", "offset": 0})).await.is_error);
    }

    #[tokio::test]
    async fn read_clips_long_lines() {
        let (_dir, w) = workdir();
        fs::write(w.root().join("long.txt"), "x".repeat(5000)).unwrap();
        let out = run(&w, READ, &json!({"path": "long.txt"})).await;
        assert!(out.content.contains("[… line cut; 5000 characters in all]"));
        assert!(out.content.len() < 2100);
    }

    #[tokio::test]
    async fn read_refuses_binary_directories_and_missing_files() {
        let (_dir, w) = workdir();
        fs::write(w.root().join("bin.dat"), [0x7f, b'E', b'L', b'F', 0, 1, 2]).unwrap();
        fs::create_dir(w.root().join("sub")).unwrap();
        let bin = run(&w, READ, &json!({"path": "bin.dat"})).await;
        assert!(bin.is_error && bin.content.contains("binary"), "{}", bin.content);
        let dir = run(&w, READ, &json!({"path": "sub"})).await;
        assert!(dir.is_error && dir.content.contains("Glob"), "{}", dir.content);
        let missing = run(&w, READ, &json!({"path": "nope.txt"})).await;
        assert!(missing.is_error && missing.content.contains("no file"), "{}", missing.content);
        let outside = run(&w, READ, &json!({"path": "../etc/passwd"})).await;
        assert!(outside.is_error && outside.content.contains("outside"));
    }

    #[tokio::test]
    async fn write_creates_directories_and_overwrites() {
        let (_dir, w) = workdir();
        let out = run(&w, WRITE, &json!({"path": "a/b/c.txt", "content": "hello"})).await;
        assert!(!out.is_error, "{}", out.content);
        assert_eq!(out.content, "Wrote 5 bytes to a/b/c.txt.");
        assert_eq!(fs::read_to_string(w.root().join("a/b/c.txt")).unwrap(), "hello");
        run(&w, WRITE, &json!({"path": "a/b/c.txt", "content": "bye"})).await;
        assert_eq!(fs::read_to_string(w.root().join("a/b/c.txt")).unwrap(), "bye");
        assert!(run(&w, WRITE, &json!({"path": "a/b", "content": "x"})).await.is_error);
        assert!(run(&w, WRITE, &json!({"path": "../escape.txt", "content": "x"})).await.is_error);
    }

    #[tokio::test]
    async fn edit_replaces_exactly_once() {
        let (_dir, w) = workdir();
        let f = w.root().join("e.txt");
        fs::write(&f, "alpha beta gamma").unwrap();
        let out = run(&w, EDIT, &json!({"path": "e.txt", "old_string": "beta", "new_string": "BETA"})).await;
        assert!(!out.is_error, "{}", out.content);
        assert_eq!(out.content, "Made 1 replacement in e.txt.");
        assert_eq!(fs::read_to_string(&f).unwrap(), "alpha BETA gamma");
    }

    #[tokio::test]
    async fn edit_refuses_ambiguous_missing_and_no_op() {
        let (_dir, w) = workdir();
        let f = w.root().join("e.txt");
        fs::write(&f, "x y x z x").unwrap();
        let many = run(&w, EDIT, &json!({"path": "e.txt", "old_string": "x", "new_string": "q"})).await;
        assert!(many.is_error && many.content.contains("occurs 3 times"), "{}", many.content);
        let missing = run(&w, EDIT, &json!({"path": "e.txt", "old_string": "w", "new_string": "q"})).await;
        assert!(missing.is_error && missing.content.contains("not found"));
        let same = run(&w, EDIT, &json!({"path": "e.txt", "old_string": "y", "new_string": "y"})).await;
        assert!(same.is_error);
        let empty = run(&w, EDIT, &json!({"path": "e.txt", "old_string": "", "new_string": "y"})).await;
        assert!(empty.is_error);
        assert_eq!(fs::read_to_string(&f).unwrap(), "x y x z x");
    }

    #[tokio::test]
    async fn edit_replace_all() {
        let (_dir, w) = workdir();
        let f = w.root().join("e.txt");
        fs::write(&f, "x y x z x").unwrap();
        let input = json!({"path": "e.txt", "old_string": "x", "new_string": "q", "replace_all": true});
        let out = run(&w, EDIT, &input).await;
        assert!(!out.is_error, "{}", out.content);
        assert_eq!(out.content, "Made 3 replacements in e.txt.");
        assert_eq!(fs::read_to_string(&f).unwrap(), "q y q z q");
    }
}
