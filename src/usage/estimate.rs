//! Counting tokens locally when an upstream reports no usage: OpenAI's BPE tokenizers
//! (tiktoken-rs, whose vocabularies are compiled into the binary — nothing is downloaded), or
//! about four bytes per token when a tokenizer cannot be built.
//!
//! This is the fallback path, taken once per request at its end: it may parse the request into
//! a JSON tree. A vocabulary is loaded on first use (tens of milliseconds, tens of MiB) and
//! kept; call [`Encoding::warm_up`] from a blocking task to pay that at start-up instead.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::Tokenizer;

use super::Usage;

/// A tokenizer vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GPT-4 and GPT-3.5 models, the `text-embedding-3`/`ada-002` embeddings.
    Cl100k,
    /// GPT-4o, GPT-4.1, GPT-5, the o-series — and any model not known to use another.
    O200k,
}

/// Longest text tokenized in one call. The tokenizer's regex backtracks; bounded pieces keep
/// pathological inputs cheap. Longer texts are split at whitespace.
const PIECE: usize = 32 << 10;
/// Longest text tokenized at all; the rest is extrapolated from it.
const MAX_TOKENIZED: usize = 1 << 20;

impl Encoding {
    /// The encoding of `model` (an upstream or public name; a `vendor/` prefix is ignored).
    pub fn for_model(model: &str) -> Self {
        let name = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        // tiktoken-rs keeps OpenAI's own table of model names and prefixes. Only two
        // vocabularies are compiled in: the retired GPT-3-era encodings count closest to
        // `cl100k`, and names it does not know (other vendors' models) get `o200k`.
        match tiktoken_rs::tokenizer::get_tokenizer(&name) {
            Some(
                Tokenizer::Cl100kBase
                | Tokenizer::P50kBase
                | Tokenizer::P50kEdit
                | Tokenizer::R50kBase
                | Tokenizer::Gpt2,
            ) => Self::Cl100k,
            Some(Tokenizer::O200kBase | Tokenizer::O200kHarmony) | None => Self::O200k,
        }
    }

    /// Loads the vocabulary now rather than on first use.
    pub fn warm_up(self) {
        let _ = self.bpe();
    }

    fn bpe(self) -> Option<&'static CoreBPE> {
        static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
        static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
        let (cell, build): (_, fn() -> anyhow::Result<CoreBPE>) = match self {
            Self::Cl100k => (&CL100K, tiktoken_rs::cl100k_base),
            Self::O200k => (&O200K, tiktoken_rs::o200k_base),
        };
        cell.get_or_init(|| match build() {
            Ok(bpe) => Some(bpe),
            Err(error) => {
                tracing::error!(%error, encoding = ?self, "cannot build a tokenizer; estimating four bytes per token");
                None
            }
        })
        .as_ref()
    }

    /// The number of tokens of `text`.
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let Some(bpe) = self.bpe() else {
            return bytes_heuristic(text.len());
        };
        let counted = prefix(text, MAX_TOKENIZED);
        let mut tokens = 0u64;
        let mut rest = counted;
        while !rest.is_empty() {
            let piece = piece(rest);
            rest = &rest[piece.len()..];
            // The tokenizer panics when its regex gives up on a piece; count that piece roughly.
            tokens += catch_unwind(AssertUnwindSafe(|| bpe.encode_ordinary(piece).len() as u64))
                .unwrap_or_else(|_| bytes_heuristic(piece.len()));
        }
        if counted.len() < text.len() {
            // Extrapolate at the rate of the part counted.
            let rate = tokens as f64 / counted.len() as f64;
            tokens += (rate * (text.len() - counted.len()) as f64).ceil() as u64;
        }
        tokens
    }
}

fn bytes_heuristic(len: usize) -> u64 {
    (len as u64).div_ceil(4)
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// The next piece of `text` to tokenize: all of it when short, else up to the last whitespace
/// within `PIECE` bytes (so words are not split), else `PIECE` bytes.
fn piece(text: &str) -> &str {
    let head = prefix(text, PIECE);
    if head.len() == text.len() {
        return head;
    }
    match head.rfind(char::is_whitespace) {
        Some(space) if space > 0 => &head[..space],
        _ => head,
    }
}

/// The number of tokens of `text` for `model`.
pub fn count_tokens(model: &str, text: &str) -> u64 {
    Encoding::for_model(model).count(text)
}

/// Tokens added per chat message and to prime the reply (OpenAI's published accounting).
const PER_MESSAGE: u64 = 3;
const PER_NAME: u64 = 1;
const REPLY_PRIMING: u64 = 3;

#[derive(Deserialize)]
struct PromptFields {
    #[serde(default)]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    tools: Option<Value>,
}

/// The prompt tokens of a chat (`messages`), completions (`prompt`) or embeddings (`input`)
/// request: message text and names, content-part text, tool calls and tool definitions, plus
/// OpenAI's per-message overhead. Token-id prompts count their ids. Images and audio are not
/// counted.
pub fn estimate_prompt_tokens(model: &str, request: &[u8]) -> u64 {
    let encoding = Encoding::for_model(model);
    let Ok(fields) = serde_json::from_slice::<PromptFields>(request) else {
        return 0;
    };
    let mut tokens = 0;
    if let Some(messages) = &fields.messages {
        for message in messages {
            tokens += PER_MESSAGE;
            if let Some(role) = message.get("role").and_then(Value::as_str) {
                tokens += encoding.count(role);
            }
            if let Some(name) = message.get("name").and_then(Value::as_str) {
                tokens += PER_NAME + encoding.count(name);
            }
            if let Some(content) = message.get("content") {
                tokens += count_text(encoding, content);
            }
            if let Some(calls) = message.get("tool_calls") {
                tokens += count_strings(encoding, calls);
            }
        }
        tokens += REPLY_PRIMING;
    }
    if let Some(tools) = &fields.tools {
        tokens += count_strings(encoding, tools);
    }
    for prompt in [&fields.prompt, &fields.input].into_iter().flatten() {
        tokens += count_prompt(encoding, prompt);
    }
    tokens
}

/// Message content: a string, or parts whose `text` is counted.
fn count_text(encoding: Encoding, content: &Value) -> u64 {
    match content {
        Value::String(text) => encoding.count(text),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part {
                Value::String(text) => encoding.count(text),
                _ => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, |text| encoding.count(text)),
            })
            .sum(),
        _ => 0,
    }
}

/// Every string anywhere in `value` (tool calls and definitions).
fn count_strings(encoding: Encoding, value: &Value) -> u64 {
    match value {
        Value::String(text) => encoding.count(text),
        Value::Array(items) => items.iter().map(|v| count_strings(encoding, v)).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| encoding.count(key) + count_strings(encoding, v))
            .sum(),
        _ => 0,
    }
}

/// A completions `prompt` or embeddings `input`: a string, strings, token ids, or lists of ids.
fn count_prompt(encoding: Encoding, prompt: &Value) -> u64 {
    match prompt {
        Value::String(text) => encoding.count(text),
        Value::Number(_) => 1,
        Value::Array(items) => items.iter().map(|v| count_prompt(encoding, v)).sum(),
        _ => 0,
    }
}

/// Usage counted locally, marked `estimated`: prompt tokens from the request, completion
/// tokens from the generated text.
pub fn estimate_usage(model: &str, request: &[u8], generated: &str) -> Usage {
    let prompt_tokens = estimate_prompt_tokens(model, request);
    let completion_tokens = count_tokens(model, generated);
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        cached_tokens: 0,
        cache_creation_tokens: 0,
        reasoning_tokens: 0,
        estimated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_their_encoding() {
        let check = |model: &str, expected: Encoding| {
            assert_eq!(Encoding::for_model(model), expected, "{model}");
        };
        check("gpt-4o-mini", Encoding::O200k);
        check("GPT-4.1", Encoding::O200k);
        check("o3-mini", Encoding::O200k);
        check("openai/gpt-5", Encoding::O200k);
        check("gpt-4-turbo", Encoding::Cl100k);
        check("gpt-3.5-turbo", Encoding::Cl100k);
        check("azure/gpt-35-turbo", Encoding::Cl100k);
        check("text-embedding-3-small", Encoding::Cl100k);
        check("gpt-4o-2024-08-06", Encoding::O200k);
        check("ft:gpt-3.5-turbo:acme::abc", Encoding::Cl100k);
        check("gpt-oss-120b", Encoding::O200k);
        check("llama-3-70b", Encoding::O200k);
        check("", Encoding::O200k);
    }

    #[test]
    fn tokens_are_counted_with_the_real_vocabularies() {
        // Known counts from OpenAI's tokenizer.
        assert_eq!(count_tokens("gpt-4", "hello world"), 2);
        assert_eq!(count_tokens("gpt-4o", "hello world"), 2);
        assert_eq!(count_tokens("gpt-4", "tiktoken is great!"), 6);
        assert_eq!(count_tokens("gpt-4o", "tiktoken is great!"), 6);
        assert_eq!(count_tokens("gpt-4o", ""), 0);
        // Unicode counts without panicking.
        assert!(count_tokens("gpt-4o", "héllo 🎉 世界") > 0);
    }

    #[test]
    fn long_and_pathological_texts_are_counted_in_pieces() {
        let words = "lorem ipsum dolor sit amet ".repeat(5000);
        assert!(words.len() > PIECE * 4);
        let pieces = count_tokens("gpt-4o", &words);
        // Splitting at whitespace keeps the count within a token per piece of exact.
        let exact = Encoding::O200k.bpe().unwrap().encode_ordinary(&words).len() as u64;
        assert!(pieces.abs_diff(exact) <= 5, "{pieces} vs {exact}");
        let spaces = " ".repeat(200_000);
        assert!(count_tokens("gpt-4o", &spaces) > 0);
        let huge = "a".repeat(MAX_TOKENIZED * 2);
        let tokens = count_tokens("gpt-4o", &huge);
        assert!(tokens > 0);
    }

    #[test]
    fn prompts_of_each_endpoint_are_estimated() {
        let check = |body: &str, expected: u64| {
            assert_eq!(
                estimate_prompt_tokens("gpt-4", body.as_bytes()),
                expected,
                "{body}"
            );
        };
        // OpenAI's cookbook example accounting: 3 per message, role and content, 3 to prime.
        check(
            r#"{"model":"gpt-4","messages":[{"role":"user","content":"hello world"}]}"#,
            3 + 1 + 2 + 3,
        );
        check(
            r#"{"messages":[{"role":"user","name":"bob","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"data:"}}]}]}"#,
            3 + 1 + (1 + 1) + 2 + 3,
        );
        check(r#"{"prompt":"hello world"}"#, 2);
        check(r#"{"prompt":["hello world","hello world"]}"#, 4);
        check(r#"{"input":[[1,2,3],[4]]}"#, 4);
        check(r#"{"input":"hello world"}"#, 2);
        check("not json", 0);
    }

    #[test]
    fn estimated_usage_is_marked() {
        let usage = estimate_usage("gpt-4", br#"{"prompt":"hello world"}"#, "hello world");
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 2,
                completion_tokens: 2,
                total_tokens: 4,
                cached_tokens: 0,
                cache_creation_tokens: 0,
                reasoning_tokens: 0,
                estimated: true,
            }
        );
    }
}
