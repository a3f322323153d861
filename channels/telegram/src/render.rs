//! Rendering blocks as Telegram's HTML parse mode.

use switchboard_channel_core::markdown::{Block, Span, Style};

/// Blocks in Telegram's HTML parse mode: b, i, s, code, pre with a language, a, blockquote;
/// everything else escaped.
pub fn to_html(blocks: &[Block]) -> String {
    let rendered: Vec<String> = blocks
        .iter()
        .map(|block| match block {
            Block::Text(spans) => spans_html(spans),
            Block::Quote(spans) => format!("<blockquote>{}</blockquote>", spans_html(spans)),
            Block::Code { lang: Some(lang), text } => {
                format!("<pre><code class=\"language-{}\">{}</code></pre>", escape_html(lang), escape_html(text))
            }
            Block::Code { lang: None, text } => format!("<pre>{}</pre>", escape_html(text)),
        })
        .collect();
    rendered.join("\n\n")
}

fn spans_html(spans: &[Span]) -> String {
    let mut out = String::new();
    for span in spans {
        // Telegram allows no entities inside code: code wins over other styles.
        if span.styles.contains(&Style::Code) {
            out.push_str(&format!("<code>{}</code>", escape_html(&span.text)));
            continue;
        }
        let mut close = Vec::new();
        for style in &span.styles {
            let (open, end) = match style {
                Style::Bold => ("<b>".to_string(), "</b>"),
                Style::Italic => ("<i>".to_string(), "</i>"),
                Style::Strike => ("<s>".to_string(), "</s>"),
                Style::Link(url) => (format!("<a href=\"{}\">", escape_html(url)), "</a>"),
                Style::Code => continue,
            };
            out.push_str(&open);
            close.push(end);
        }
        out.push_str(&escape_html(&span.text));
        for end in close.iter().rev() {
            out.push_str(end);
        }
    }
    out
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel_core::markdown::parse;

    #[test]
    fn renders_the_telegram_subset_and_escapes_the_rest() {
        let md = "# Title\n\nSome **bold**, *it*, ~~gone~~, `x < y` and [a link](https://e.com/?a=1&b=2).\n\n```rust\nfn main() { println!(\"<hi>\"); }\n```\n\n> quoted\n> twice\n\n- one\n- two\n\n1. first\n2. second\n\n<script>alert(1)</script> & done";
        let html = to_html(&parse(md));
        assert_eq!(
            html,
            "<b>Title</b>\n\nSome <b>bold</b>, <i>it</i>, <s>gone</s>, <code>x &lt; y</code> and <a href=\"https://e.com/?a=1&amp;b=2\">a link</a>.\n\n<pre><code class=\"language-rust\">fn main() { println!(&quot;&lt;hi&gt;&quot;); }</code></pre>\n\n<blockquote>quoted\ntwice</blockquote>\n\n• one\n\n• two\n\n1. first\n\n2. second\n\n&lt;script&gt;alert(1)&lt;/script&gt; &amp; done"
        );
    }

    #[test]
    fn nested_styles_close_in_order() {
        let html = to_html(&parse("***both*** and **bold *inner***"));
        assert_eq!(html, "<i><b>both</b></i> and <b>bold </b><b><i>inner</i></b>");
    }
}
