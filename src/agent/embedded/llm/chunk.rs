//! The parts of a streamed `chat.completion.chunk` that a reply is built from,
//! read two ways: straight from the event's text into borrowed fields (the usual
//! shape, without a tree of JSON values), or leniently from such a tree (any
//! other shape). The fast read takes only what the lenient one would read the
//! same: a field of another type, a key given twice, a `null` or missing
//! `choices` or an `error` fail it, and the event is read as a tree instead.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::agent::Usage;

/// A chunk's choices (the first is used) and usage.
#[derive(Deserialize)]
pub struct Chunk<'a> {
    #[serde(borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
    pub usage: Option<Counts>,
    /// Only whether there is one (a reported error is read from the tree).
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub struct Choice<'a> {
    #[serde(borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Delta<'a> {
    #[serde(borrow)]
    pub content: Option<Cow<'a, str>>,
    /// DeepSeek, vLLM and llama.cpp name the reasoning so ...
    #[serde(borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// ... OpenRouter and Ollama so.
    #[serde(borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<Call<'a>>>,
}

/// A piece of a tool call: its place, and any of its id, name and arguments.
#[derive(Deserialize)]
pub struct Call<'a> {
    pub index: Option<u64>,
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub function: Option<Function<'a>>,
}

#[derive(Deserialize)]
pub struct Function<'a> {
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

/// Token counts as reported (a missing one counts 0; the total defaults to the sum).
#[derive(Deserialize)]
pub struct Counts {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl Counts {
    pub fn usage(&self) -> Usage {
        let (prompt, completion) = (self.prompt_tokens.unwrap_or(0), self.completion_tokens.unwrap_or(0));
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self.total_tokens.unwrap_or(prompt + completion),
        }
    }

    fn lenient(usage: &Value) -> Counts {
        let field = |name: &str| usage.get(name).and_then(Value::as_u64);
        Counts {
            prompt_tokens: field("prompt_tokens"),
            completion_tokens: field("completion_tokens"),
            total_tokens: field("total_tokens"),
        }
    }
}

impl<'a> Chunk<'a> {
    /// The event read straight from its text, when it has the usual shape:
    /// choices and no error, every field read of its expected type.
    pub fn fast(payload: &'a str) -> Option<Chunk<'a>> {
        serde_json::from_str::<Chunk<'a>>(payload).ok().filter(|chunk| chunk.choices.is_some() && chunk.error.is_none())
    }

    /// The chunk read from a tree: a field of another type counts as missing,
    /// and only the first choice is kept.
    pub fn lenient(chunk: &'a Value) -> Chunk<'a> {
        let choices = chunk.get("choices").and_then(Value::as_array);
        Chunk {
            choices: choices.map(|all| all.iter().take(1).map(Choice::lenient).collect()),
            usage: chunk.get("usage").filter(|u| u.is_object()).map(Counts::lenient),
            error: None,
        }
    }
}

impl<'a> Choice<'a> {
    fn lenient(choice: &'a Value) -> Choice<'a> {
        Choice { delta: choice.get("delta").map(Delta::lenient), finish_reason: text(choice, "finish_reason") }
    }
}

impl<'a> Delta<'a> {
    fn lenient(delta: &'a Value) -> Delta<'a> {
        Delta {
            content: text(delta, "content"),
            reasoning_content: text(delta, "reasoning_content"),
            reasoning: text(delta, "reasoning"),
            tool_calls: delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .map(|calls| calls.iter().map(Call::lenient).collect()),
        }
    }

    /// The reasoning under either name (`reasoning_content` first).
    pub fn reasoning(&mut self) -> Option<Cow<'a, str>> {
        self.reasoning_content.take().or_else(|| self.reasoning.take())
    }
}

impl<'a> Call<'a> {
    fn lenient(call: &'a Value) -> Call<'a> {
        Call {
            index: call.get("index").and_then(Value::as_u64),
            id: text(call, "id"),
            function: call.get("function").map(|f| Function { name: text(f, "name"), arguments: text(f, "arguments") }),
        }
    }
}

/// Field `name` of `value` when it is a string.
fn text<'a>(value: &'a Value, name: &str) -> Option<Cow<'a, str>> {
    value.get(name).and_then(Value::as_str).map(Cow::Borrowed)
}
