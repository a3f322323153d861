//! Method parameters from a query string plus a JSON, urlencoded or multipart body.

use serde_json::{Map, Value};

use super::wire::ApiError;

/// All parameters of one call. Values from query strings, forms and multipart
/// bodies are strings (objects/arrays as JSON text).
#[derive(Clone, Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Query parameters first; body parameters override them.
    pub fn parse(query: Option<&str>, content_type: &str, body: &[u8]) -> Result<Params, ApiError> {
        let mut params = Params::default();
        if let Some(query) = query {
            params.insert_pairs(query.as_bytes());
        }
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let body_is_blank = body.iter().all(u8::is_ascii_whitespace);
        match mime.as_str() {
            _ if body_is_blank => {}
            "application/x-www-form-urlencoded" => params.insert_pairs(body),
            "multipart/form-data" => {
                let boundary = boundary(content_type).ok_or_else(|| ApiError::bad_request("invalid multipart body"))?;
                for (name, value) in multipart_fields(body, &boundary) {
                    params.insert_text(name, &value);
                }
            }
            // JSON is the default: teloxide always labels it, curl users often do not.
            _ => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => params.0.extend(map),
                _ => return Err(ApiError::bad_request("can't parse JSON object")),
            },
        }
        Ok(params)
    }

    /// Parameters nested in an object parameter (like `reply_parameters`).
    pub fn from_value(value: &Value) -> Params {
        Params(value.as_object().cloned().unwrap_or_default())
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    fn insert_pairs(&mut self, raw: &[u8]) {
        for (name, value) in form_urlencoded::parse(raw) {
            self.insert_text(name.into_owned(), &value);
        }
    }

    /// Form values stay text; [`Params::json`] parses them on demand, so a
    /// message text that happens to look like JSON is not mangled.
    fn insert_text(&mut self, name: String, value: &str) {
        self.0.insert(name, Value::String(value.to_owned()));
    }

    /// A present, non-null value.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// Integers may arrive as JSON numbers or as decimal text.
    pub fn i64(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Strings; numbers and booleans are rendered as text.
    pub fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `true`, `"true"` or `"1"`.
    pub fn flag(&self, key: &str) -> bool {
        match self.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true" || s == "1",
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// Objects and arrays, also when sent as JSON text.
    pub fn json(&self, key: &str) -> Option<Value> {
        match self.get(key)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        }
    }

    /// `chat_id`: a number or numeric text. `@username` targets are unknown to the fake.
    pub fn chat_id(&self) -> Result<i64, ApiError> {
        match self.get("chat_id") {
            None => Err(ApiError::bad_request("chat_id is empty")),
            Some(_) => self.i64("chat_id").ok_or_else(|| ApiError::bad_request("chat not found")),
        }
    }

    pub fn message_id(&self) -> Result<i64, ApiError> {
        self.i64("message_id").ok_or_else(|| ApiError::bad_request("message identifier is not specified"))
    }
}

fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|part| {
        let (name, value) = part.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("boundary")).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// `(name, text)` of every part; file parts yield their file name.
fn multipart_fields(body: &[u8], boundary: &str) -> Vec<(String, String)> {
    let delimiter = format!("--{boundary}");
    let mut fields = Vec::new();
    for section in split_bytes(body, delimiter.as_bytes()).into_iter().skip(1) {
        if section.starts_with(b"--") {
            break;
        }
        let section = section.strip_prefix(b"\r\n").unwrap_or(section);
        let Some(head_end) = find(section, b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&section[..head_end]);
        let mut content = &section[head_end + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition"));
        let Some(name) = disposition.and_then(|d| quoted_attr(d, "name")) else { continue };
        let value = match disposition.and_then(|d| quoted_attr(d, "filename")) {
            Some(file) => file,
            None => String::from_utf8_lossy(content).into_owned(),
        };
        fields.push((name, value));
    }
    fields
}

/// `name="value"` inside a header line.
fn quoted_attr(line: &str, attr: &str) -> Option<String> {
    line.split(';').find_map(|part| {
        let (name, value) = part.split_once('=')?;
        (name.trim() == attr).then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn split_bytes<'a>(mut haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    while let Some(at) = find(haystack, needle) {
        pieces.push(&haystack[..at]);
        haystack = &haystack[at + needle.len()..];
    }
    pieces.push(haystack);
    pieces
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
