//! Shell command lines as the policy reads them: split into simple commands of
//! parsed words (quotes and escapes removed), with nested commands (`$(…)`,
//! backticks, `bash -c '…'`) found too, and a note of anything the shell would
//! expand or redirect. Deny rules match each simple command however it is spelled
//! or wrapped; allow rules match only a plain command that expands nothing.
//!
//! This is a reader for judging, not an interpreter: where the shell's reading is
//! in doubt it errs towards finding more commands and more expansions. What it
//! cannot see at all (a command named by a variable, `$'…'` text, a here-document,
//! an interpreter's program, a script's contents, a changed `PATH`) makes the line
//! *opaque*: no deny rule can vouch for it.

/// A command line, read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Every simple command, nested ones included, as its words.
    pub commands: Vec<Vec<String>>,
    /// Something the shell would expand: `$`, backticks, `<(`/`>(`, an unquoted
    /// glob or a leading `~`.
    pub expands: bool,
    /// More than one simple command, a pipe, a redirection or a subshell.
    pub compound: bool,
    /// Something runs that the words do not show: an expansion (`$…`, backticks,
    /// `$'…'`, a glob or brace in a program's name), a here-document or
    /// here-string, an interpreter or a shell reading a script or its input, a
    /// command that runs commands of its own syntax (`find -exec`, `git`, `make`,
    /// `eval`, …), a program outside the system's directories, or an assignment
    /// before a command (`PATH=…`, `LD_PRELOAD=…`).
    pub opaque: bool,
}

/// Wrappers that run the command that follows them, and how many leading
/// arguments of their own they may take before it.
const WRAPPERS: &[&str] = &[
    "env", "command", "exec", "nice", "timeout", "xargs", "nohup", "stdbuf", "time", "setsid", "sudo", "doas",
    "builtin",
];

/// Shells whose `-c` argument is a command line of its own.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "yash", "fish", "csh", "tcsh"];

/// Words the shell reads as syntax before a command (`if touch x`, `do touch x`).
const KEYWORDS: &[&str] = &[
    "{", "}", "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "!",
    "function", "select", "[[", "]]", "coproc",
];

/// Programs that run code the line does not show: interpreters, programs with
/// a command language of their own, and builtins that change what a name runs.
const RUNS_HIDDEN_CODE: &[&str] = &[
    "eval",
    "source",
    ".",
    "alias",
    "hash",
    "enable",
    "trap",
    "shopt",
    "busybox",
    "toybox",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "irb",
    "node",
    "nodejs",
    "deno",
    "bun",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "sed",
    "gsed",
    "ed",
    "ex",
    "vi",
    "vim",
    "nvim",
    "emacs",
    "less",
    "more",
    "man",
    "make",
    "gmake",
    "cmake",
    "ninja",
    "ssh",
    "su",
    "runuser",
    "login",
    "watch",
    "script",
    "parallel",
    "find",
    "git",
    "chroot",
    "flock",
    "unshare",
    "nsenter",
    "ionice",
    "chrt",
    "taskset",
    "setpriv",
    "capsh",
    "strace",
    "ltrace",
    "gdb",
    "expect",
    "tmux",
    "screen",
    "docker",
    "podman",
    "kubectl",
    "npm",
    "npx",
    "yarn",
    "pnpm",
    "pip",
    "pip3",
    "cargo",
    "go",
    "java",
    "dotnet",
    "Rscript",
    "R",
    "julia",
    "osascript",
    "systemd-run",
    "at",
    "batch",
    "crontab",
    "dbus-send",
];

/// Where the system's programs live: a program named by a path elsewhere is a
/// file the agent may have written.
const SYSTEM_DIRS: &[&str] = &["/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/"];

/// Reads `line`.
pub fn parse(line: &str) -> CommandLine {
    let mut out = CommandLine::default();
    read(line, &mut out, 0);
    out
}

/// How deeply nested commands are followed (a line nesting deeper is treated as
/// suspicious: compound and expanding).
const MAX_DEPTH: usize = 8;

fn read(line: &str, out: &mut CommandLine, depth: usize) {
    if depth > MAX_DEPTH {
        out.compound = true;
        out.expands = true;
        out.opaque = true;
        return;
    }
    let chars: Vec<char> = line.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut skip_next_word = false; // a redirection's target
    let mut i = 0;
    let end_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>, skip: &mut bool| {
        if *in_word {
            if *skip {
                *skip = false;
            } else {
                words.push(std::mem::take(word));
            }
            word.clear();
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                in_word = true;
                if let Some(&next) = chars.get(i + 1) {
                    if next != '\n' {
                        word.push(next);
                    }
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    match chars[i] {
                        '\\' if matches!(chars.get(i + 1), Some('$' | '`' | '"' | '\\' | '\n')) => {
                            word.push(chars[i + 1]);
                            i += 1;
                        }
                        '$' | '`' => {
                            out.expands = true;
                            out.opaque = true;
                            i = nested(&chars, i, out, depth);
                            continue;
                        }
                        other => word.push(other),
                    }
                    i += 1;
                }
            }
            '$' | '`' => {
                out.expands = true;
                out.opaque = true;
                in_word = true;
                i = nested(&chars, i, out, depth);
                continue;
            }
            '<' | '>' if chars.get(i + 1) == Some(&'(') => {
                out.expands = true;
                out.compound = true;
                out.opaque = true;
                i = nested(&chars, i + 1, out, depth);
                continue;
            }
            '<' | '>' => {
                out.compound = true;
                // A here-document or here-string feeds text the line does not run
                // visibly (`bash <<< 'touch x'`).
                if c == '<' && chars.get(i + 1) == Some(&'<') {
                    out.opaque = true;
                }
                // `2>` and `>&` belong to the operator; the target word follows.
                if word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                end_word(&mut word, &mut in_word, &mut words, &mut skip_next_word);
                while matches!(chars.get(i + 1), Some('>' | '<' | '&' | '|')) {
                    i += 1;
                }
                skip_next_word = true;
            }
            ';' | '&' | '|' | '\n' | '\r' | '(' | ')' => {
                end_word(&mut word, &mut in_word, &mut words, &mut skip_next_word);
                finish(&mut words, out, depth);
                out.compound = true;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut words, &mut skip_next_word),
            '*' | '?' | '[' => {
                out.expands = true;
                in_word = true;
                word.push(c);
            }
            '~' if !in_word => {
                out.expands = true;
                in_word = true;
                word.push(c);
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
        i += 1;
    }
    end_word(&mut word, &mut in_word, &mut words, &mut skip_next_word);
    finish(&mut words, out, depth);
}

/// At `$` or a backtick (or the `(` of `<(`): reads a nested command line, if it
/// is one, into `out`, and returns the index after it.
fn nested(chars: &[char], at: usize, out: &mut CommandLine, depth: usize) -> usize {
    let (open, close, start) = match (chars[at], chars.get(at + 1)) {
        ('`', _) => ('`', '`', at + 1),
        ('$', Some('(')) => ('(', ')', at + 2),
        ('(', _) => ('(', ')', at + 1),
        ('$', Some('{')) => {
            // ${…}: a parameter expansion; its words are not commands.
            let end = (at + 2..chars.len()).find(|&j| chars[j] == '}').unwrap_or(chars.len());
            return end + 1;
        }
        _ => {
            // $NAME, $1, $? …: a parameter.
            let mut j = at + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            return j.max(at + 1);
        }
    };
    let mut level = 1;
    let mut j = start;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 1,
            c if c == close && (open == close || level == 1) => {
                level = 0;
                break;
            }
            c if c == close => level -= 1,
            c if c == open && open != close => level += 1,
            _ => {}
        }
        j += 1;
    }
    let inner: String = chars[start..j.min(chars.len())].iter().collect();
    read(&inner, out, depth + 1);
    if level != 0 {
        // Unclosed: the rest is in doubt.
        out.compound = true;
    }
    (j + 1).min(chars.len())
}

/// Ends a simple command: keeps its words, and reads the command line of a
/// `sh -c` inside it.
fn finish(words: &mut Vec<String>, out: &mut CommandLine, depth: usize) {
    if words.is_empty() {
        return;
    }
    let command = std::mem::take(words);
    if !out.commands.is_empty() {
        out.compound = true;
    }
    if hides_code(&command) {
        out.opaque = true;
    }
    let effective = unwrap(&command);
    if let Some(first) = effective.first() {
        if SHELLS.contains(&program(first)) {
            match shell_command_line(&effective) {
                Some(inner) => read(inner, out, depth + 1),
                // A script file or its input: nothing the line shows.
                None => out.opaque = true,
            }
        }
    }
    out.commands.push(command);
}

/// The command line a shell's `-c` runs: its first argument that is not an
/// option (`bash -c -- 'x'`, `bash -ec 'x'`, `bash -c -o errexit 'x'`).
fn shell_command_line(words: &[String]) -> Option<&str> {
    let at = words.iter().position(|w| w.starts_with('-') && !w.starts_with("--") && w.contains('c'))?;
    let mut rest = words[at + 1..].iter();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "--" => return rest.next().map(String::as_str),
            "-o" | "+o" | "-O" | "+O" => {
                rest.next();
            }
            w if w.starts_with(['-', '+']) && w.len() > 1 => {}
            w => return Some(w),
        }
    }
    None
}

/// Whether running these words runs code they do not show.
fn hides_code(words: &[String]) -> bool {
    // An assignment before the command changes what runs or how (`PATH=`,
    // `LD_PRELOAD=`, `BASH_ENV=`), and `env -S` splits a string into a command.
    let assigns = words.first().is_some_and(|w| is_assignment(w));
    let env_at = words.iter().position(|w| program(w) == "env");
    let splits =
        env_at.is_some_and(|at| words[at + 1..].iter().any(|w| w.starts_with("-S") || w.starts_with("--split-string")));
    let Some(typed) = skip_wrappers(words).first() else { return assigns || splits };
    let typed = typed.trim_start_matches('\\');
    let elsewhere = typed.contains('/')
        && !SYSTEM_DIRS.iter().any(|dir| typed.starts_with(dir) && !typed[dir.len()..].contains('/'));
    let name = program(typed);
    assigns
        || splits
        || elsewhere
        || RUNS_HIDDEN_CODE.contains(&name)
        || name.contains(['*', '?', '[', '{', '}', ','])
        || words.iter().any(|w| w.starts_with("-exec") || w.starts_with("-ok"))
}

/// The program's name as typed: `/usr/bin/touch` and `\touch` are `touch`.
pub fn program(word: &str) -> &str {
    let word = word.trim_start_matches('\\');
    word.rsplit('/').next().unwrap_or(word)
}

/// The words of the command that actually runs: leading `NAME=value`
/// assignments dropped, wrappers (`env`, `nice -n 5`, `timeout 10`, …) with their
/// own options dropped, and the program named by its base name.
pub fn unwrap(words: &[String]) -> Vec<String> {
    let rest = skip_wrappers(words);
    let Some(first) = rest.first() else { return Vec::new() };
    let mut out = vec![program(first).to_string()];
    out.extend(rest[1..].iter().cloned());
    out
}

/// The words from the program that actually runs on, as typed.
fn skip_wrappers(words: &[String]) -> &[String] {
    let mut rest: &[String] = words;
    loop {
        while rest.first().is_some_and(|w| is_assignment(w) || KEYWORDS.contains(&w.as_str())) {
            rest = &rest[1..];
        }
        let Some(first) = rest.first() else { return rest };
        let name = program(first);
        if !WRAPPERS.contains(&name) {
            return rest;
        }
        rest = &rest[1..];
        // The wrapper's own options and arguments, up to the command.
        while let Some(word) = rest.first() {
            let numeric = word.chars().next().is_some_and(|c| c.is_ascii_digit());
            let option_value = matches!(name, "nice" | "timeout" | "stdbuf" | "xargs" | "sudo") && numeric;
            if word.starts_with('-') || is_assignment(word) || option_value {
                // `-n 5`, `-u user`: an option's separate value goes too.
                let takes_value = matches!(
                    word.as_str(),
                    "-n" | "-u"
                        | "-g"
                        | "-s"
                        | "-k"
                        | "-i"
                        | "-o"
                        | "-e"
                        | "-I"
                        | "-L"
                        | "-P"
                        | "-d"
                        | "-a"
                        | "-C"
                        | "-E"
                        | "-S"
                );
                rest = &rest[1..];
                if takes_value && !rest.is_empty() {
                    rest = &rest[1..];
                }
            } else {
                break;
            }
        }
    }
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        parse(line).commands.iter().map(|c| unwrap(c).join(" ")).collect()
    }

    #[test]
    fn quotes_and_escapes_are_read_as_the_shell_reads_them() {
        assert_eq!(parse("echo 'a b' \"c d\" e\\ f").commands, [["echo", "a b", "c d", "e f"]]);
        assert_eq!(words("git status --short"), ["git status --short"]);
        let plain = parse("git status");
        assert!(!plain.expands && !plain.compound);
    }

    #[test]
    fn every_spelling_and_wrapper_comes_down_to_the_command() {
        for line in [
            "touch x",
            "\\touch x",
            "/usr/bin/touch x",
            "env touch x",
            "env -i A=1 touch x",
            "command touch x",
            "exec touch x",
            "nice touch x",
            "nice -n 5 touch x",
            "timeout 5 touch x",
            "timeout -k 1 5 touch x",
            "xargs touch x",
            "FOO=1 touch x",
            "t'o'uch x",
            "nohup nice -n 1 /bin/touch x",
        ] {
            assert!(words(line).contains(&"touch x".to_string()), "{line:?} -> {:?}", words(line));
        }
    }

    #[test]
    fn nested_command_lines_are_found() {
        for line in [
            "bash -c 'touch x'",
            "sh -c \"touch x\"",
            "echo $(touch x)",
            "echo `touch x`",
            "cat <(touch x)",
            "sh -ec 'true; touch x'",
        ] {
            assert!(words(line).contains(&"touch x".to_string()), "{line:?} -> {:?}", words(line));
        }
        assert_eq!(words("a; b && c | d"), ["a", "b", "c", "d"]);
        assert!(words("bash -c -- 'touch x'").contains(&"touch x".to_string()));
        assert!(words("bash -c -o errexit 'touch x'").contains(&"touch x".to_string()));
        assert!(words("if touch x; then true; fi").contains(&"touch x".to_string()));
        assert!(words("while true; do touch x; done").contains(&"touch x".to_string()));
        assert!(words("exec -a name touch x").contains(&"touch x".to_string()));
    }

    #[test]
    fn expansions_and_redirections_are_noted() {
        for line in [
            "git status $HOME",
            "git status ${x}",
            "git status $(id)",
            "git status `id`",
            "git status *",
            "ls ~",
            "echo \"$x\"",
        ] {
            assert!(parse(line).expands, "{line:?}");
        }
        for line in ["git status > x", "git status 2>&1", "a | b", "a; b", "(a)"] {
            assert!(parse(line).compound, "{line:?}");
        }
        assert!(!parse("echo '$HOME *'").expands, "single quotes expand nothing");
        for hidden in [
            "$c x",
            "echo \"$(id)\"",
            "$'\\x74ouch' x",
            "cat <<EOF",
            "bash <<< 'touch x'",
            "bash",
            "bash script.sh",
            "python3 -c 'print(1)'",
            "eval \"touch x\"",
            ". ./env.sh",
            "find . -exec touch x ;",
            "env -S 'touch x'",
            "/usr/bin/env --split-string='touch x'",
            "./run.sh",
            "/tmp/x/touch y",
            "PATH=/tmp ls",
            "LD_PRELOAD=/tmp/x.so ls",
            "/usr/bin/tou?h x",
            "{touch,x}",
            "git status",
        ] {
            assert!(parse(hidden).opaque, "{hidden:?} reads as plain");
        }
        for plain in ["ls -la", "/usr/bin/touch x", "cat a | grep b", "ls -S", "bash -c 'ls'", "if true; then ls; fi"] {
            assert!(!parse(plain).opaque, "{plain:?} reads as opaque");
        }
        assert_eq!(parse("echo x > /etc/passwd").commands, [["echo", "x"]], "a redirection's target is no word");
    }
}
