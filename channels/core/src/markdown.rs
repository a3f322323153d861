//! The agent's Markdown, parsed once into blocks of styled text spans. Each adapter
//! renders blocks into its platform's format; because every rendering starts from
//! spans, any slice of blocks renders to balanced, valid markup on its own.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// One style a span of text has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Style {
    /// Strong emphasis (and headings).
    Bold,
    /// Emphasis.
    Italic,
    /// Strikethrough.
    Strike,
    /// Inline code.
    Code,
    /// A link to this address: only `http`, `https` or `mailto` (a link of any
    /// other scheme is shown as text with its address, never as a link).
    Link(String),
}

/// Text with the styles that apply to all of it, outermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The visible text.
    pub text: String,
    /// Its styles.
    pub styles: Vec<Style>,
}

/// A unit of a message that renders on its own; parts are cut between blocks first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// Paragraphs, headings (bold), list items (with their bullet) and table rows.
    Text(Vec<Span>),
    /// A quotation.
    Quote(Vec<Span>),
    /// A code block.
    Code {
        /// The language named after the opening fence.
        lang: Option<String>,
        /// The code, without the fences.
        text: String,
    },
}

impl Block {
    /// The text a reader sees (no markup), for measuring.
    pub fn visible(&self) -> String {
        match self {
            Block::Text(spans) | Block::Quote(spans) => spans.iter().map(|s| s.text.as_str()).collect(),
            Block::Code { text, .. } => text.clone(),
        }
    }
}

/// Parses Markdown. Anything the target cannot show (raw HTML, images) becomes text.
pub fn parse(markdown: &str) -> Vec<Block> {
    let mut b = Builder::default();
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    for event in Parser::new_ext(markdown, options) {
        b.event(event);
    }
    b.flush();
    b.blocks
}

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    spans: Vec<Span>,
    styles: Vec<Style>,
    quote_depth: usize,
    code: Option<(Option<String>, String)>,
    /// Ordered-list counters (None for bullets), innermost last.
    lists: Vec<Option<u64>>,
    in_table_cell: bool,
    /// Links being read: the address of one that is shown as text (`None` for a
    /// real link), and where its spans start.
    links: Vec<(Option<String>, usize)>,
}

/// The host a piece of text names when it reads as a web or mail address
/// (`https://a.example/x`, `www.a.example`, `a.example`, `me@a.example`), in
/// lower case without `www.`; `None` for other text.
fn address_host(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if lower.is_empty() || lower.contains(char::is_whitespace) {
        return None;
    }
    let rest = ["https://", "http://", "mailto:"].iter().find_map(|s| lower.strip_prefix(s)).unwrap_or(&lower);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host).trim_end_matches('.');
    let labels: Vec<&str> = host.split('.').collect();
    let looks_like_host = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'))
        && labels.last().is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
    looks_like_host.then(|| host.to_string())
}

/// Schemes a link may have: anything else (`javascript:`, `tg://`, `file:`) could
/// do something other than open a page behind innocent text.
fn safe_link(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme))
}

impl Builder {
    fn event(&mut self, event: Event) {
        if let Some((_, code)) = &mut self.code {
            match event {
                Event::Text(t) => code.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let (lang, text) = self.code.take().unwrap_or_default();
                    self.blocks.push(Block::Code { lang, text: text.trim_end_matches('\n').to_string() });
                }
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(end) => self.end(end),
            Event::Text(t) => self.text(&t),
            Event::Code(t) => self.styled_text(&t, Style::Code),
            Event::Html(t) | Event::InlineHtml(t) => self.text(&t),
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.flush();
                self.blocks.push(Block::Text(vec![Span { text: "———".into(), styles: vec![] }]));
            }
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(t) => self.text(&format!("[{t}]")),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Paragraph => {}
            Tag::Heading { .. } => {
                self.flush();
                self.styles.push(Style::Bold);
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote_depth += 1;
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().map(str::to_string),
                    CodeBlockKind::Indented => None,
                };
                self.code = Some((lang.filter(|l| !l.is_empty()), String::new()));
            }
            Tag::List(start) => {
                self.flush();
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let depth = self.lists.len().saturating_sub(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "• ".to_string(),
                };
                self.text(&format!("{}{bullet}", "  ".repeat(depth)));
            }
            Tag::Emphasis => self.styles.push(Style::Italic),
            Tag::Strong => self.styles.push(Style::Bold),
            Tag::Strikethrough => self.styles.push(Style::Strike),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } if safe_link(&dest_url) => {
                self.styles.push(Style::Link(dest_url.to_string()));
                self.links.push((None, self.spans.len()));
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push((Some(dest_url.to_string()), self.spans.len()))
            }
            Tag::TableCell => {
                if self.in_table_cell {
                    self.text(" | ");
                }
                self.in_table_cell = true;
            }
            Tag::TableRow | Tag::TableHead => {
                self.flush();
                self.in_table_cell = false;
            }
            _ => {}
        }
    }

    fn end(&mut self, end: TagEnd) {
        match end {
            TagEnd::Paragraph | TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead => self.flush(),
            TagEnd::Heading(_) => {
                self.styles.pop();
                self.flush();
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote_depth = self.quote_depth.saturating_sub(1);
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
            }
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.styles.pop();
            }
            TagEnd::Link | TagEnd::Image => match self.links.pop() {
                Some((None, start)) => {
                    let url = match self.styles.pop() {
                        Some(Style::Link(url)) => url,
                        _ => return,
                    };
                    self.unmask_if_deceptive(start, &url);
                }
                Some((Some(url), _)) => self.text(&format!(" ({url})")),
                None => {}
            },
            _ => {}
        }
    }

    /// A link whose text is itself an address of another site
    /// (`[https://bank.com](https://evil.example)`) would show one place and open
    /// another: its text stays, unlinked, followed by where it really goes.
    fn unmask_if_deceptive(&mut self, start: usize, url: &str) {
        let shown: String = self.spans.get(start..).unwrap_or_default().iter().map(|s| s.text.as_str()).collect();
        let Some(shown_host) = address_host(shown.trim()) else { return };
        if address_host(url).is_some_and(|host| host == shown_host) {
            return;
        }
        for span in self.spans.iter_mut().skip(start) {
            span.styles.retain(|s| !matches!(s, Style::Link(_)));
        }
        self.text(&format!(" ({url})"));
    }

    fn text(&mut self, text: &str) {
        let styles = self.styles.clone();
        self.push_span(text, styles);
    }

    fn styled_text(&mut self, text: &str, style: Style) {
        let mut styles = self.styles.clone();
        styles.push(style);
        self.push_span(text, styles);
    }

    fn push_span(&mut self, text: &str, styles: Vec<Style>) {
        if text.is_empty() {
            return;
        }
        match self.spans.last_mut() {
            Some(last) if last.styles == styles => last.text.push_str(text),
            _ => self.spans.push(Span { text: text.to_string(), styles }),
        }
    }

    /// Ends the current block of text, if any.
    fn flush(&mut self) {
        let spans = std::mem::take(&mut self.spans);
        if spans.iter().all(|s| s.text.trim().is_empty()) {
            return;
        }
        // Quote lines of one quote become one block.
        match (self.quote_depth > 0, self.blocks.last_mut()) {
            (true, Some(Block::Quote(previous))) => {
                previous.push(Span { text: "\n".into(), styles: vec![] });
                previous.extend(spans);
            }
            (true, _) => self.blocks.push(Block::Quote(spans)),
            (false, _) => self.blocks.push(Block::Text(spans)),
        }
    }
}

/// Plain text, for channels without formatting and as a fallback when a platform
/// rejects the formatted version. Links keep their address.
pub fn to_plain(blocks: &[Block]) -> String {
    let rendered: Vec<String> = blocks
        .iter()
        .map(|block| match block {
            Block::Text(spans) | Block::Quote(spans) => spans
                .iter()
                .map(|s| match s.styles.iter().find_map(|st| if let Style::Link(u) = st { Some(u) } else { None }) {
                    Some(url) if *url != s.text => format!("{} ({url})", s.text),
                    _ => s.text.clone(),
                })
                .collect(),
            Block::Code { text, .. } => text.clone(),
        })
        .collect();
    rendered.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_whose_text_names_another_site_shows_where_it_goes() {
        let spans = |md: &str| match parse(md).remove(0) {
            Block::Text(spans) => spans,
            other => panic!("{other:?}"),
        };
        let deceptive = spans("[https://bank.example](https://evil.example/login)");
        assert!(deceptive.iter().all(|s| s.styles.is_empty()), "not a link any more: {deceptive:?}");
        assert_eq!(
            to_plain(&parse("[https://bank.example](https://evil.example/login)")),
            "https://bank.example (https://evil.example/login)"
        );
        for honest in [
            "[bank.example](https://www.bank.example/login)",
            "[the docs](https://evil.example)",
            "<https://a.example>",
        ] {
            assert!(
                spans(honest).iter().any(|s| matches!(s.styles.last(), Some(Style::Link(_)))),
                "{honest} stays a link"
            );
        }
    }

    #[test]
    fn links_of_other_schemes_are_text_showing_their_address() {
        let blocks =
            parse("[docs](https://d.io), [mail](mailto:a@b.c), [click me](javascript:alert(1)), [you](tg://user?id=7)");
        let Block::Text(spans) = &blocks[0] else { panic!("{blocks:?}") };
        let links: Vec<&Style> = spans.iter().flat_map(|s| &s.styles).collect();
        assert_eq!(links, [&Style::Link("https://d.io".into()), &Style::Link("mailto:a@b.c".into())]);
        assert_eq!(
            to_plain(&blocks),
            "docs (https://d.io), mail (mailto:a@b.c), click me (javascript:alert(1)), you (tg://user?id=7)"
        );
    }

    #[test]
    fn plain_keeps_link_addresses_and_code() {
        let blocks = parse("See [docs](https://d.io) and `code`.\n\n```\nraw <b>\n```");
        assert_eq!(to_plain(&blocks), "See docs (https://d.io) and code.\n\nraw <b>");
    }
}
