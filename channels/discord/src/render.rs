//! Rendering blocks as Discord's Markdown: bold, italics, strikethrough, code,
//! masked links, quotes and fenced code; every other character Discord would read
//! as markup is escaped, so the agent's text shows as written.

use switchboard_channel_core::markdown::{to_plain, Block, Span, Style};
use switchboard_channel_core::{LengthUnit, PromptRendering};

/// Discord refuses message content longer than this (characters).
pub const MAX_CONTENT: usize = 2000;

/// The content to send for one part: its Markdown rendering when that fits
/// Discord's limit, else its plain text, cut to the limit as a last resort (a part
/// is split to fit well below it, so only a reply made almost entirely of
/// characters that need escaping gets there).
pub fn content(blocks: &[Block]) -> String {
    let rendered = to_markdown(blocks);
    if rendered.chars().count() <= MAX_CONTENT {
        return rendered;
    }
    let plain = to_plain(blocks);
    match plain.char_indices().nth(MAX_CONTENT) {
        None => plain,
        Some((cut, _)) => plain[..cut].to_string(),
    }
}

/// An approval prompt's text as content, every markup character escaped, cut
/// with a marker when that is too long, never unescaped (a `||` would hide
/// what follows it as a spoiler).
pub const PROMPT: PromptRendering = PromptRendering { max: MAX_CONTENT, unit: LengthUnit::Chars, render: literal };

/// `text` as Markdown that shows it as written.
fn literal(text: &str) -> String {
    to_markdown(&switchboard_channel_core::plain_blocks(text))
}

/// Blocks as Discord Markdown, joined by blank lines.
pub fn to_markdown(blocks: &[Block]) -> String {
    let rendered: Vec<String> = blocks
        .iter()
        .map(|block| match block {
            Block::Text(spans) => spans_markdown(spans),
            Block::Quote(spans) => {
                spans_markdown(spans).lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
            }
            Block::Code { lang, text } => {
                let lang: String = lang
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "+-#_".contains(*c))
                    .collect();
                // A fence inside the code would end the block early.
                format!("```{lang}\n{}\n```", text.replace("```", "`\u{200b}``"))
            }
        })
        .collect();
    rendered.join("\n\n")
}

fn spans_markdown(spans: &[Span]) -> String {
    let mut out = String::new();
    for span in spans {
        out.push_str(&span_markdown(span, out.is_empty() || out.ends_with('\n')));
    }
    out
}

/// One span. Discord ignores emphasis whose markers touch whitespace on the
/// inside, so a span's outer whitespace goes outside its markers.
fn span_markdown(span: &Span, line_start: bool) -> String {
    let text = span.text.as_str();
    let core = text.trim();
    if core.is_empty() || span.styles.is_empty() {
        return escape(text, line_start);
    }
    let lead = &text[..text.len() - text.trim_start().len()];
    let trail = &text[text.trim_end().len()..];
    let inner = if span.styles.contains(&Style::Code) {
        code_span(core)
    } else {
        let mut inner = escape(core, line_start && lead.is_empty());
        for style in span.styles.iter().rev() {
            inner = match style {
                Style::Bold => format!("**{inner}**"),
                Style::Italic => format!("*{inner}*"),
                Style::Strike => format!("~~{inner}~~"),
                Style::Link(url) => format!("[{inner}]({})", link_target(url)),
                Style::Code => inner,
            };
        }
        inner
    };
    format!("{lead}{inner}{trail}")
}

/// Inline code: backticks inside are fenced by a longer run.
fn code_span(text: &str) -> String {
    if !text.contains('`') {
        return format!("`{text}`");
    }
    if !text.contains("``") {
        return format!("`` {text} ``");
    }
    escape(text, false)
}

/// A link's address with the characters that would end it early encoded.
fn link_target(url: &str) -> String {
    url.replace('(', "%28").replace(')', "%29").replace(' ', "%20").replace('<', "%3C").replace('>', "%3E")
}

/// Plain text with Discord's markup characters escaped. Web addresses are left
/// as they are (Discord links them and does not read markup inside them).
pub fn escape(text: &str, line_start: bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut at_line_start = line_start;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let starts_word = out.is_empty() || out.ends_with(char::is_whitespace);
        if starts_word && (rest.starts_with("https://") || rest.starts_with("http://")) {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            at_line_start = false;
            continue;
        }
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' => out.push('\\'),
            '>' | '#' | '-' | '+' if at_line_start => out.push('\\'),
            _ => {}
        }
        out.push(c);
        if c == '\n' {
            at_line_start = true;
        } else if !(at_line_start && c == ' ') {
            at_line_start = false;
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel_core::markdown::parse;

    #[test]
    fn renders_discords_subset_and_escapes_the_rest() {
        let md = "# Title\n\nSome **bold**, *it*, ~~gone~~, `x < y` and [a link](https://e.com/?a=(1)).\n\n```rust\nfn main() {}\n```\n\n> quoted\n> twice\n\n- one\n\nA_b *c* <@123> | x [y] https://e.com/a_b_c";
        assert_eq!(
            to_markdown(&parse(md)),
            "**Title**\n\nSome **bold**, *it*, ~~gone~~, `x < y` and [a link](https://e.com/?a=%281%29).\n\n```rust\nfn main() {}\n```\n\n> quoted\n> twice\n\n• one\n\nA\\_b *c* \\<@123> \\| x \\[y\\] https://e.com/a_b_c"
        );
    }

    #[test]
    fn line_starts_that_discord_reads_as_blocks_are_escaped() {
        assert_eq!(
            escape("> not a quote\n# not a heading\n-# nor subtext", true),
            "\\> not a quote\n\\# not a heading\n\\-# nor subtext"
        );
        assert_eq!(escape("a > b # c - d", true), "a > b # c - d");
    }

    #[test]
    fn code_keeps_its_text_and_cannot_end_its_fence() {
        let md = "```\nlet s = \"```\";\n```\n\nand `a`b`";
        let out = to_markdown(&parse(md));
        assert!(out.starts_with("```\nlet s = \"`\u{200b}``\";\n```"), "{out}");
    }

    #[test]
    fn emphasis_never_touches_whitespace_inside_its_markers() {
        let spans = vec![
            Span { text: " bold ".into(), styles: vec![Style::Bold] },
            Span { text: "and".into(), styles: Vec::new() },
        ];
        assert_eq!(to_markdown(&[Block::Text(spans)]), " **bold** and");
    }

    #[test]
    fn content_falls_back_to_plain_then_cuts_to_the_limit() {
        let text = "*".repeat(1500);
        let blocks = vec![Block::Text(vec![Span { text: text.clone(), styles: Vec::new() }])];
        assert_eq!(content(&blocks), text, "3000 escaped characters do not fit; 1500 plain ones do");
        let long = vec![Block::Text(vec![Span { text: "a".repeat(2100), styles: Vec::new() }])];
        assert_eq!(content(&long).chars().count(), MAX_CONTENT);
    }
}
