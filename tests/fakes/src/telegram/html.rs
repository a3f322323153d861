//! `parse_mode: "HTML"`: Telegram's tag subset, parsed to plain text plus entities.

use std::cmp::Reverse;

use serde_json::{json, Value};

/// Text and entities (UTF-16 offsets) after parsing.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub text: String,
    pub entities: Vec<Value>,
}

/// A start tag waiting for its end tag.
struct Open {
    /// Lowercase tag name as written (`strong`, not `b`), for matching the end tag.
    name: String,
    /// Entity type and extra fields (`url`, `language`), or `None` for no entity.
    entity: Option<(&'static str, Option<(&'static str, String)>)>,
    start: usize,
    /// For `code` directly inside `pre`: the `language-x` class.
    language: Option<String>,
}

/// Parses Telegram-style HTML. The error is the reason after "can't parse entities: ".
pub fn parse(input: &str) -> Result<Parsed, String> {
    let mut parser = Parser { input, pos: 0, text: String::new(), units: 0, stack: Vec::new(), entities: Vec::new() };
    parser.run()?;
    // Outer entities first: by offset, then longest, then (same range) closed last.
    let mut numbered: Vec<(usize, Value)> = parser.entities.into_iter().enumerate().collect();
    numbered.sort_by_key(|(i, e)| (e["offset"].as_u64(), Reverse(e["length"].as_u64()), Reverse(*i)));
    Ok(Parsed { text: parser.text, entities: numbered.into_iter().map(|(_, e)| e).collect() })
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    text: String,
    /// UTF-16 length of `text`.
    units: usize,
    stack: Vec<Open>,
    entities: Vec<Value>,
}

impl Parser<'_> {
    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            match c {
                '<' if self.input[self.pos + 1..].starts_with('/') => self.end_tag()?,
                '<' => self.start_tag()?,
                '&' => {
                    let decoded = self.entity()?;
                    self.push(decoded);
                }
                _ => {
                    self.pos += c.len_utf8();
                    self.push(c);
                }
            }
        }
        match self.stack.last() {
            Some(open) => Err(format!("Can't find end tag corresponding to start tag \"{}\"", open.name)),
            None => Ok(()),
        }
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn push(&mut self, c: char) {
        self.text.push(c);
        self.units += c.len_utf16();
    }

    fn skip_spaces(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    /// Advances over characters until `stop` matches one; returns them.
    fn take_until(&mut self, stop: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| !stop(c)) {
            self.pos += c.len_utf8();
        }
        &self.input[start..self.pos]
    }

    /// `&lt;` `&gt;` `&amp;` `&quot;` and numeric references; anything else is an error.
    fn entity(&mut self) -> Result<char, String> {
        let at = self.pos;
        let rest = &self.input[at + 1..];
        let end = rest.find(';').filter(|&end| end <= 10);
        let decoded = end.and_then(|end| match &rest[..end] {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            name => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (decoded, end) {
            (Some(c), Some(end)) => {
                self.pos = at + 1 + end + 1;
                Ok(c)
            }
            _ => Err(format!("Unsupported HTML entity at byte offset {at}; escape \"&\" as \"&amp;\"")),
        }
    }

    fn start_tag(&mut self) -> Result<(), String> {
        let at = self.pos;
        self.pos += 1;
        let name = self.take_until(|c| c.is_whitespace() || c == '>' || c == '/').to_ascii_lowercase();
        let kind = match name.as_str() {
            "b" | "strong" => "bold",
            "i" | "em" => "italic",
            "u" | "ins" => "underline",
            "s" | "strike" | "del" => "strikethrough",
            "tg-spoiler" | "span" => "spoiler",
            "code" => "code",
            "pre" => "pre",
            "a" => "text_link",
            "blockquote" => "blockquote",
            _ => return Err(format!("Unsupported start tag \"{name}\" at byte offset {at}")),
        };
        let attributes = self.attributes(at, &name)?;
        let attribute = |wanted: &str| attributes.iter().find(|(n, _)| n == wanted).map(|(_, v)| v.clone());
        let mut open = Open { name: name.clone(), entity: Some((kind, None)), start: self.units, language: None };
        match name.as_str() {
            "span" if attribute("class").as_deref() != Some("tg-spoiler") => {
                return Err("Tag \"span\" must have class \"tg-spoiler\"".to_owned());
            }
            "a" => open.entity = attribute("href").filter(|h| !h.is_empty()).map(|h| (kind, Some(("url", h)))),
            "blockquote" if attribute("expandable").is_some() => open.entity = Some(("expandable_blockquote", None)),
            "code" if self.stack.last().is_some_and(|p| p.name == "pre") => {
                open.language = attribute("class").and_then(|c| c.strip_prefix("language-").map(str::to_owned));
            }
            _ => {}
        }
        self.stack.push(open);
        Ok(())
    }

    /// Attributes up to and including the closing `>`. Values may be quoted or bare;
    /// an attribute without `=` (like `expandable`) gets an empty value.
    fn attributes(&mut self, at: usize, tag: &str) -> Result<Vec<(String, String)>, String> {
        let unclosed = || format!("Unclosed start tag at byte offset {at}");
        let mut attributes = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Err(unclosed()),
                Some('>') => {
                    self.pos += 1;
                    return Ok(attributes);
                }
                Some(_) => {}
            }
            let name = self.take_until(|c| c.is_whitespace() || c == '=' || c == '>').to_ascii_lowercase();
            if name.is_empty() || name.contains(['<', '/', '"', '\'']) {
                return Err(format!("Unexpected character in the tag \"{tag}\" at byte offset {}", self.pos));
            }
            self.skip_spaces();
            if self.peek() != Some('=') {
                attributes.push((name, String::new()));
                continue;
            }
            self.pos += 1;
            self.skip_spaces();
            let value = match self.peek() {
                None => return Err(unclosed()),
                Some(quote @ ('"' | '\'')) => {
                    self.pos += 1;
                    let raw = self.take_until(|c| c == quote).to_owned();
                    if self.peek().is_none() {
                        return Err(unclosed());
                    }
                    self.pos += 1;
                    decode_attribute(&raw)
                }
                Some(_) => decode_attribute(self.take_until(|c| c.is_whitespace() || c == '>')),
            };
            attributes.push((name, value));
        }
    }

    fn end_tag(&mut self) -> Result<(), String> {
        let at = self.pos;
        self.pos += 2;
        let name = self.take_until(|c| c.is_whitespace() || c == '>').to_ascii_lowercase();
        self.skip_spaces();
        if self.peek() != Some('>') {
            return Err(format!("Unclosed end tag at byte offset {at}"));
        }
        self.pos += 1;
        let Some(open) = self.stack.pop() else {
            return Err(format!("Unexpected end tag at byte offset {at}"));
        };
        if open.name != name {
            return Err(format!(
                "Unmatched end tag at byte offset {at}, expected \"</{}>\", found \"</{name}>\"",
                open.name
            ));
        }
        self.close(open);
        Ok(())
    }

    /// Emits the entity of a closed tag, as Telegram keeps it: nothing is kept
    /// inside code/pre, and `<pre><code class="language-x">` becomes one `pre`.
    fn close(&mut self, open: Open) {
        let length = self.units - open.start;
        if let Some(parent) = self.stack.last_mut().filter(|p| p.name == "pre" && open.name == "code") {
            if open.language.is_some() {
                parent.language = open.language;
            }
            return;
        }
        let inside_code = self.stack.iter().any(|p| p.name == "pre" || p.name == "code");
        let Some((kind, extra)) = open.entity.filter(|_| length > 0 && !inside_code) else { return };
        let mut entity = json!({"type": kind, "offset": open.start, "length": length});
        if let Some((field, value)) = extra {
            entity[field] = Value::String(value);
        }
        if let Some(language) = open.language.filter(|_| kind == "pre") {
            entity["language"] = Value::String(language);
        }
        self.entities.push(entity);
    }
}

/// Attribute values may contain the same character references as text; a
/// stray `&` there is kept as is.
fn decode_attribute(raw: &str) -> String {
    raw.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::parse;

    #[test]
    fn offsets_count_utf16_units_and_numeric_references_decode() {
        let parsed = parse("😀 <b>b&#x1F600;</b>&#33;").expect("valid");
        assert_eq!(parsed.text, "😀 b😀!");
        assert_eq!(parsed.entities, [json!({"type": "bold", "offset": 3, "length": 3})]);
    }

    #[test]
    fn nothing_is_kept_inside_code_and_unusual_spaces_are_fine() {
        let parsed = parse("<code>a<b>b</b></code> <i\u{a0}>x</i>").expect("valid");
        assert_eq!(parsed.text, "ab x");
        let kinds: Vec<&str> = parsed.entities.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(kinds, ["code", "italic"]);
    }

    #[test]
    fn tag_names_run_to_whitespace_like_telegram() {
        assert_eq!(parse("within <24h. please").unwrap_err(), "Unsupported start tag \"24h.\" at byte offset 7");
        assert_eq!(
            parse("<b>x</i>").unwrap_err(),
            "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\""
        );
    }
}
