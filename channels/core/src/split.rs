//! Splitting a reply into parts that each fit a platform's limit: between blocks
//! first, then inside a block at a line break, then at a space, and only as a last
//! resort mid-word. Code blocks are cut between lines and each piece stays a code
//! block, so every part renders to valid markup on its own.

use crate::channel::LengthUnit;
use crate::markdown::{Block, Span};

/// How a length is measured inside this module.
type Measure = fn(&str) -> usize;

fn utf16_len(text: &str) -> usize {
    LengthUnit::Utf16.measure(text)
}

fn char_len(text: &str) -> usize {
    LengthUnit::Chars.measure(text)
}

/// Blocks are joined by a blank line when rendered.
const BLOCK_SEPARATOR: &str = "\n\n";

/// Groups `blocks` into parts whose visible text fits `limit` in `unit`s.
pub fn split(blocks: &[Block], limit: usize, unit: LengthUnit) -> Vec<Vec<Block>> {
    let measure: Measure = match unit {
        LengthUnit::Utf16 => utf16_len,
        LengthUnit::Chars => char_len,
    };
    let limit = limit.max(16);
    let separator = measure(BLOCK_SEPARATOR);
    let mut parts: Vec<Vec<Block>> = Vec::new();
    let mut current: Vec<Block> = Vec::new();
    let mut used = 0;
    for block in blocks {
        for piece in fit_block(block, limit, measure) {
            let size = measure(&piece.visible());
            let extra = if current.is_empty() { size } else { separator + size };
            if used + extra > limit && !current.is_empty() {
                parts.push(std::mem::take(&mut current));
                used = 0;
            }
            used += if current.is_empty() { size } else { separator + size };
            current.push(piece);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// A block as pieces that each fit `limit`.
fn fit_block(block: &Block, limit: usize, measure: Measure) -> Vec<Block> {
    if measure(&block.visible()) <= limit {
        return vec![block.clone()];
    }
    match block {
        Block::Code { lang, text } => {
            split_code(text, limit, measure).into_iter().map(|text| Block::Code { lang: lang.clone(), text }).collect()
        }
        Block::Text(spans) => split_spans(spans, limit, measure).into_iter().map(Block::Text).collect(),
        Block::Quote(spans) => split_spans(spans, limit, measure).into_iter().map(Block::Quote).collect(),
    }
}

fn split_code(text: &str, limit: usize, measure: Measure) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let mut line = line.to_string();
        // A single line longer than the limit is cut where it must be.
        while measure(&line) > limit {
            let cut = longest_prefix(&line, limit, measure);
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            pieces.push(line[..cut].to_string());
            line = line[cut..].to_string();
        }
        let candidate = if current.is_empty() { line.clone() } else { format!("{current}\n{line}") };
        if measure(&candidate) > limit {
            pieces.push(std::mem::replace(&mut current, line));
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn split_spans(spans: &[Span], limit: usize, measure: Measure) -> Vec<Vec<Span>> {
    let mut pieces = Vec::new();
    let mut rest: Vec<Span> = spans.to_vec();
    loop {
        let text: String = rest.iter().map(|s| s.text.as_str()).collect();
        if measure(&text) <= limit {
            if !text.trim().is_empty() {
                pieces.push(rest);
            }
            return pieces;
        }
        let hard = longest_prefix(&text, limit, measure);
        // Prefer a line break, then a space, in the allowed prefix (not at its start).
        let cut = text[..hard]
            .rfind('\n')
            .filter(|&i| i > 0)
            .or_else(|| text[..hard].rfind(' ').filter(|&i| i > 0))
            .unwrap_or(hard);
        let (head, tail) = cut_spans(&rest, cut);
        pieces.push(trim_spans(head));
        rest = trim_spans(tail);
    }
}

/// The byte length of the longest prefix of `text` within `limit` (at least one char).
fn longest_prefix(text: &str, limit: usize, measure: Measure) -> usize {
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let next = i + c.len_utf8();
        if measure(&text[..next]) > limit {
            break;
        }
        end = next;
    }
    if end == 0 {
        text.chars().next().map_or(0, char::len_utf8)
    } else {
        end
    }
}

/// Splits spans at a byte offset of their joined text.
fn cut_spans(spans: &[Span], at: usize) -> (Vec<Span>, Vec<Span>) {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut offset = 0;
    for span in spans {
        let end = offset + span.text.len();
        if end <= at {
            head.push(span.clone());
        } else if offset >= at {
            tail.push(span.clone());
        } else {
            let local = at - offset;
            head.push(Span { text: span.text[..local].to_string(), styles: span.styles.clone() });
            tail.push(Span { text: span.text[local..].to_string(), styles: span.styles.clone() });
        }
        offset = end;
    }
    (head, tail)
}

/// Drops the whitespace a cut leaves at either end.
fn trim_spans(mut spans: Vec<Span>) -> Vec<Span> {
    if let Some(first) = spans.first_mut() {
        first.text = first.text.trim_start().to_string();
    }
    if let Some(last) = spans.last_mut() {
        last.text = last.text.trim_end().to_string();
    }
    spans.retain(|s| !s.text.is_empty());
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::parse;
    use crate::markdown::Style;

    fn visible_len(part: &[Block]) -> usize {
        let texts: Vec<String> = part.iter().map(Block::visible).collect();
        utf16_len(&texts.join("\n\n"))
    }

    #[test]
    fn short_text_stays_whole() {
        let blocks = parse("hello **world**");
        assert_eq!(split(&blocks, 4096, LengthUnit::Utf16), vec![blocks]);
    }

    #[test]
    fn paragraphs_are_kept_together_when_they_fit() {
        let md = format!("{}\n\n{}\n\n{}", "a".repeat(30), "b".repeat(30), "c".repeat(30));
        let parts = split(&parse(&md), 70, LengthUnit::Utf16);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 2, "first two paragraphs share a part");
        assert!(parts.iter().all(|p| visible_len(p) <= 70));
    }

    #[test]
    fn a_long_paragraph_breaks_at_lines_then_words_and_keeps_styles_balanced() {
        let md = format!("**{}**\nsecond line", "word ".repeat(40).trim_end());
        let parts = split(&parse(&md), 50, LengthUnit::Utf16);
        assert!(parts.len() > 3);
        for part in &parts {
            assert!(visible_len(part) <= 50, "{part:?}");
            // Each piece keeps the style it had: the words stay bold in every part.
            for block in part {
                let Block::Text(spans) = block else { panic!("{block:?}") };
                for span in spans.iter().filter(|s| s.text.contains("word")) {
                    assert_eq!(span.styles, [Style::Bold], "{span:?}");
                }
            }
            let visible: String = part.iter().map(Block::visible).collect();
            assert!(!visible.starts_with(' ') && !visible.ends_with(' '));
            // Words are never cut: every piece of text is whole words.
            assert!(visible.split_whitespace().all(|w| w == "word" || w == "second" || w == "line"), "{visible}");
        }
    }

    #[test]
    fn code_blocks_split_between_lines_and_stay_code_blocks() {
        let code: Vec<String> = (0..100).map(|i| format!("let x{i} = {i};")).collect();
        let md = format!("```rust\n{}\n```", code.join("\n"));
        let parts = split(&parse(&md), 200, LengthUnit::Utf16);
        assert!(parts.len() > 5);
        let mut rejoined = Vec::new();
        for part in &parts {
            assert!(visible_len(part) <= 200);
            let [Block::Code { lang, text }] = part.as_slice() else { panic!("not one code block: {part:?}") };
            assert_eq!(lang.as_deref(), Some("rust"));
            rejoined.extend(text.lines().map(str::to_string));
        }
        assert_eq!(rejoined, code, "no line is lost or cut");
    }

    #[test]
    fn one_enormous_word_is_cut_as_a_last_resort() {
        let parts = split(&parse(&"x".repeat(1000)), 300, LengthUnit::Utf16);
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| visible_len(p) <= 300));
    }

    #[test]
    fn utf16_units_are_counted_as_such() {
        // Each emoji is two UTF-16 units.
        let parts = split(&parse(&"😀".repeat(100)), 50, LengthUnit::Utf16);
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| visible_len(p) <= 50));
    }
}
