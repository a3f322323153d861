//! Rendering blocks as Slack's mrkdwn: `*bold*`, `_italic_`, `~strike~`, code,
//! `<url|text>` links and `>` quotes. `&`, `<` and `>` in text are escaped, so
//! nothing the agent writes can become a mention (`<@U…>`, `<!channel>`,
//! `<!here>`, `<!everyone>`) or a link Slack did not get from a link span.

use switchboard_channel_core::markdown::{Block, Span, Style};
use switchboard_channel_core::{LengthUnit, PromptRendering};

/// Blocks as mrkdwn, joined by blank lines.
pub fn to_mrkdwn(blocks: &[Block]) -> String {
    let rendered: Vec<String> = blocks
        .iter()
        .map(|block| match block {
            Block::Text(spans) => spans_mrkdwn(spans),
            Block::Quote(spans) => spans_mrkdwn(spans).lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n"),
            // Slack's code blocks name no language, and a fence inside would end it.
            Block::Code { text, .. } => format!("```\n{}\n```", escape(text).replace("```", "`\u{200b}``")),
        })
        .collect();
    rendered.join("\n\n")
}

fn spans_mrkdwn(spans: &[Span]) -> String {
    spans.iter().map(span_mrkdwn).collect()
}

/// One span; its outer whitespace goes outside the markers (Slack ignores
/// markers that touch whitespace on the inside).
fn span_mrkdwn(span: &Span) -> String {
    let text = span.text.as_str();
    let core = text.trim();
    if core.is_empty() || span.styles.is_empty() {
        return escape(text);
    }
    let lead = &text[..text.len() - text.trim_start().len()];
    let trail = &text[text.trim_end().len()..];
    let mut inner = if span.styles.contains(&Style::Code) {
        format!("`{}`", escape(&core.replace('`', "'")))
    } else {
        escape(core)
    };
    if !span.styles.contains(&Style::Code) {
        for style in span.styles.iter().rev() {
            inner = match style {
                Style::Bold => format!("*{inner}*"),
                Style::Italic => format!("_{inner}_"),
                Style::Strike => format!("~{inner}~"),
                Style::Link(url) => format!("<{}|{}>", link_target(url), inner.replace('|', "¦")),
                Style::Code => inner,
            };
        }
    }
    format!("{lead}{inner}{trail}")
}

/// A link's address: the characters that would end `<url|text>` early encoded.
fn link_target(url: &str) -> String {
    url.replace('|', "%7C").replace('>', "%3E").replace('<', "%3C").replace(' ', "%20")
}

/// `&`, `<` and `>` as Slack requires them in text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The most characters of a section's text.
pub const MAX_SECTION: usize = 3000;

/// An approval prompt's text as a section's, escaped, cut with a marker when
/// that is too long, never silently (the end of a command is what it runs).
pub const PROMPT: PromptRendering = PromptRendering { max: MAX_SECTION, unit: LengthUnit::Chars, render: escape };

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel_core::markdown::parse;

    #[test]
    fn renders_mrkdwn_and_escapes_what_slack_would_read() {
        let md = "# Title\n\nSome **bold**, *it*, ~~gone~~, `x < y` and [a link](https://e.com/?a=1&b=2).\n\n```rust\nfn main() {}\n```\n\n> quoted\n\n- one\n\n<!channel> <@U123> & <!here|here>";
        assert_eq!(
            to_mrkdwn(&parse(md)),
            "*Title*\n\nSome *bold*, _it_, ~gone~, `x &lt; y` and <https://e.com/?a=1&b=2|a link>.\n\n```\nfn main() {}\n```\n\n> quoted\n\n• one\n\n&lt;!channel&gt; &lt;@U123&gt; &amp; &lt;!here|here&gt;"
        );
    }

    #[test]
    fn nothing_in_text_can_become_a_mention() {
        for attack in ["<!everyone>", "<@U0BOT>", "<!subteam^S1>", "<!here|here>"] {
            let out = to_mrkdwn(&parse(attack));
            assert!(!out.contains('<') && !out.contains('>'), "{attack} -> {out}");
        }
        // Read as an autolink: a link whose label is its whole address, not a
        // label hiding another target.
        let out = to_mrkdwn(&parse("<https://evil|innocent>"));
        assert_eq!(out, "<https://evil%7Cinnocent|https://evil¦innocent>");
    }
}
