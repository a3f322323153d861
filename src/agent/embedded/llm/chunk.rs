//! The parts of a streamed `chat.completion.chunk` that a reply is built from,
//! read two ways: straight from the event's text into borrowed fields (the usual
//! shape, without a tree of JSON values), or leniently from such a tree (any
//! other shape). The fast read takes only what the lenient one would read the
//! same: a field of another type (an array where an object belongs too), a key
//! given twice, a `null` or missing `choices` or an `error` fail it, and the
//! event is read as a tree instead. One difference is left: the fields the fast
//! read skips are checked for their syntax only, so a lone surrogate escape, a
//! number out of range or nesting deeper than 128 there pass, where the tree
//! refuses the whole event as not JSON.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::agent::Usage;

/// A chunk's choices (the first is used) and usage.
#[derive(Deserialize)]
pub struct Chunk<'a> {
    #[serde(borrow)]
    pub choices: Option<Vec<Object<Choice<'a>>>>,
    pub usage: Option<Object<Counts>>,
    /// Only whether there is one (a reported error is read from the tree).
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub struct Choice<'a> {
    #[serde(borrow)]
    pub delta: Option<Object<Delta<'a>>>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Delta<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub content: Option<Cow<'a, str>>,
    /// DeepSeek, vLLM and llama.cpp name the reasoning so ...
    #[serde(borrow, default, deserialize_with = "text")]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// ... OpenRouter and Ollama so.
    #[serde(borrow, default, deserialize_with = "text")]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<Object<Call<'a>>>>,
}

/// A piece of a tool call: its place, and any of its id, name and arguments.
#[derive(Deserialize)]
pub struct Call<'a> {
    pub index: Option<u64>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub function: Option<Object<Function<'a>>>,
}

#[derive(Deserialize)]
pub struct Function<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
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
        let Object(chunk) = serde_json::from_str::<Object<Chunk<'a>>>(payload).ok()?;
        Some(chunk).filter(|chunk| chunk.choices.is_some() && chunk.error.is_none())
    }

    /// The chunk read from a tree: a field of another type counts as missing,
    /// and only the first choice is kept.
    pub fn lenient(chunk: &'a Value) -> Chunk<'a> {
        let choices = chunk.get("choices").and_then(Value::as_array);
        Chunk {
            choices: choices.map(|all| all.iter().take(1).map(|c| Object(Choice::lenient(c))).collect()),
            usage: chunk.get("usage").filter(|u| u.is_object()).map(|u| Object(Counts::lenient(u))),
            error: None,
        }
    }
}

impl<'a> Choice<'a> {
    fn lenient(choice: &'a Value) -> Choice<'a> {
        Choice {
            delta: choice.get("delta").map(|d| Object(Delta::lenient(d))),
            finish_reason: text_of(choice, "finish_reason"),
        }
    }
}

impl<'a> Delta<'a> {
    fn lenient(delta: &'a Value) -> Delta<'a> {
        Delta {
            content: text_of(delta, "content"),
            reasoning_content: text_of(delta, "reasoning_content"),
            reasoning: text_of(delta, "reasoning"),
            tool_calls: delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .map(|calls| calls.iter().map(|c| Object(Call::lenient(c))).collect()),
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
            id: text_of(call, "id"),
            function: call
                .get("function")
                .map(|f| Object(Function { name: text_of(f, "name"), arguments: text_of(f, "arguments") })),
        }
    }
}

/// Field `name` of `value` when it is a string.
fn text_of<'a>(value: &'a Value, name: &str) -> Option<Cow<'a, str>> {
    value.get(name).and_then(Value::as_str).map(Cow::Borrowed)
}

/// A part read from a JSON object only: serde's derived structs would also take
/// an array of their fields, which the tree's lookups by name never find.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Object<T>, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Fields(PhantomData))
    }
}

impl<T> std::ops::Deref for Object<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A string field, borrowed from the event's text unless it holds escapes
/// (serde's own `Option<Cow<str>>` always copies); `null` is none.
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
        fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }
        fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text)))
        }
    }
    deserializer.deserialize_option(Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string without escapes is borrowed from the event's text, not copied.
    #[test]
    fn plain_strings_are_borrowed_and_escaped_ones_copied() {
        let chunk = Chunk::fast(r#"{"choices":[{"delta":{"content":"plain","reasoning":"a\nb"}}]}"#).expect("fast");
        let Object(choice) = chunk.choices.unwrap().into_iter().next().unwrap();
        let Object(delta) = choice.delta.unwrap();
        assert!(matches!(delta.content, Some(Cow::Borrowed("plain"))));
        assert!(matches!(delta.reasoning, Some(Cow::Owned(ref text)) if text == "a\nb"));
        assert!(delta.reasoning_content.is_none() && delta.tool_calls.is_none());
    }
}
