//! Short terminal renderings shared by the commands.

use serde_json::Value;

/// `name(key=value, …)` on one line, values clipped.
pub fn tool_call_line(name: &str, input: &Value) -> String {
    let args = match input {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(s) => format!("{:?}", clip(s, 40)),
                    other => clip(&other.to_string(), 40),
                };
                format!("{k}={shown}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => clip(&other.to_string(), 60),
    };
    clip(&format!("{name}({args})"), 120)
}

pub fn clip(text: &str, max_chars: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max_chars {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max_chars).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_lines_are_short_and_single_line() {
        let line = tool_call_line("memory_insert", &serde_json::json!({"label": "human", "new_str": "a\nb"}));
        assert_eq!(line, "memory_insert(label=\"human\", new_str=\"a b\")");
        let long = tool_call_line("x", &serde_json::json!({"v": "y".repeat(500)}));
        assert!(long.chars().count() <= 121);
    }
}
