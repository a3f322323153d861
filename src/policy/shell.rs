//! Shell command lines as the policy reads them: split into simple commands of
//! parsed words (quotes and escapes removed), with nested commands (`$(…)`,
//! backticks, `bash -c '…'`) found too, and a note of anything the shell would
//! expand or redirect. Deny rules match each simple command however it is spelled
//! or wrapped; allow rules match only a plain command that expands nothing.
//!
//! This is a reader for judging, not an interpreter: where the shell's reading is
//! in doubt it errs towards finding more commands and more expansions.

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
}

/// Wrappers that run the command that follows them, and how many leading
/// arguments of their own they may take before it.
const WRAPPERS: &[&str] = &[
    "env", "command", "exec", "nice", "timeout", "xargs", "nohup", "stdbuf", "time", "setsid", "sudo", "doas",
    "builtin",
];

/// Shells whose `-c` argument is a command line of its own.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "busybox"];

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
                in_word = true;
                i = nested(&chars, i, out, depth);
                continue;
            }
            '<' | '>' if chars.get(i + 1) == Some(&'(') => {
                out.expands = true;
                out.compound = true;
                i = nested(&chars, i + 1, out, depth);
                continue;
            }
            '<' | '>' => {
                out.compound = true;
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
    let effective = unwrap(&command);
    if let Some(first) = effective.first() {
        if SHELLS.contains(&program(first)) {
            if let Some(at) = effective
                .iter()
                .position(|w| w == "-c" || (w.starts_with('-') && !w.starts_with("--") && w.contains('c')))
            {
                if let Some(inner) = effective.get(at + 1) {
                    read(inner, out, depth + 1);
                }
            }
        }
    }
    out.commands.push(command);
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
    let mut rest: &[String] = words;
    loop {
        while rest.first().is_some_and(|w| is_assignment(w)) {
            rest = &rest[1..];
        }
        let Some(first) = rest.first() else { return Vec::new() };
        let name = program(first);
        if !WRAPPERS.contains(&name) {
            let mut out = vec![name.to_string()];
            out.extend(rest[1..].iter().cloned());
            return out;
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
                    "-n" | "-u" | "-g" | "-s" | "-k" | "-i" | "-o" | "-e" | "-I" | "-L" | "-P" | "-d"
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
        assert_eq!(parse("echo x > /etc/passwd").commands, [["echo", "x"]], "a redirection's target is no word");
    }
}
