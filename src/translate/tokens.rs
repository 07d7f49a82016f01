//! A local count of a Messages request's input tokens, for `POST /v1/messages/count_tokens`
//! when the model's provider is not Anthropic.
//!
//! Every text the model reads is counted (system prompt, message texts, tool inputs and
//! results, thinking, tool names, descriptions and schemas), plus 3 tokens per message for its
//! framing and 1600 per image or document (Anthropic's cost of an image of about 1.15
//! megapixels, its largest unresized size). [`count_message_tokens`] counts texts with OpenAI's
//! `o200k_base` tokenizer (through the usage module, which falls back to four bytes per token
//! if the tokenizer cannot be built). Claude's own tokenizer is not public, so for Claude
//! models the count is an estimate either way. [`count_message_tokens_with`] takes any other
//! text counter.

use bytes::Bytes;

use super::TranslateError;
use super::anthropic::{Block, MessagesRequest};
use super::json::TextOr;
use crate::usage::Encoding;

/// Tokens of framing per message.
const PER_MESSAGE: u64 = 3;
/// Tokens per image or document.
const PER_ATTACHMENT: u64 = 1600;

/// Counts the input tokens of an Anthropic `count_tokens` (or Messages) request body with
/// `o200k_base` (see the module docs).
pub fn count_message_tokens(body: &[u8]) -> Result<u64, TranslateError> {
    count_message_tokens_with(body, |text| Encoding::O200k.count(text))
}

/// Like [`count_message_tokens`], with `tokens` counting the tokens of each text (a real
/// tokenizer, when one is at hand).
pub fn count_message_tokens_with(
    body: &[u8],
    tokens: impl Fn(&str) -> u64,
) -> Result<u64, TranslateError> {
    let request: MessagesRequest<'_> =
        serde_json::from_slice(body).map_err(TranslateError::request("Anthropic Messages"))?;
    let mut count = Count {
        tokens: &tokens,
        total: 0,
    };
    match &request.system {
        Some(TextOr::Text(text)) => count.text(text),
        Some(TextOr::List(blocks)) => blocks.iter().for_each(|block| count.block(block)),
        None => {}
    }
    for message in &request.messages {
        count.total += PER_MESSAGE;
        match &message.content {
            TextOr::Text(text) => count.text(text),
            TextOr::List(blocks) => blocks.iter().for_each(|block| count.block(block)),
        }
    }
    for tool in request.tools.iter().flatten() {
        count.text(&tool.name);
        count.text(tool.description.as_deref().unwrap_or(""));
        count.text(tool.input_schema.map_or("", |schema| schema.get()));
    }
    Ok(count.total)
}

/// `{"input_tokens": N}`, the answer of `count_tokens`.
pub fn count_tokens_body(tokens: u64) -> Bytes {
    Bytes::from(format!("{{\"input_tokens\":{tokens}}}"))
}

struct Count<'f> {
    tokens: &'f dyn Fn(&str) -> u64,
    total: u64,
}

impl Count<'_> {
    fn text(&mut self, text: &str) {
        if !text.is_empty() {
            self.total += (self.tokens)(text);
        }
    }

    fn block(&mut self, block: &Block<'_>) {
        match block.kind.as_ref() {
            "image" | "document" => self.total += PER_ATTACHMENT,
            _ => {
                self.text(block.text.as_deref().unwrap_or(""));
                self.text(block.thinking.as_deref().unwrap_or(""));
                self.text(block.name.as_deref().unwrap_or(""));
                self.text(block.input.map_or("", |input| input.get()));
                match &block.content {
                    Some(TextOr::Text(text)) => self.text(text),
                    Some(TextOr::List(inner)) => inner.iter().for_each(|inner| self.block(inner)),
                    None => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four characters per token, rounded up: predictable numbers for the structure tests.
    fn quarter_chars(text: &str) -> u64 {
        (text.chars().count() as u64).div_ceil(4)
    }

    #[test]
    fn every_text_the_model_reads_is_counted() {
        let cases: &[(&str, u64)] = &[
            (r#"{"messages":[]}"#, 0),
            // 8 chars → 2 tokens, plus one message.
            (
                r#"{"messages":[{"role":"user","content":"abcdefgh"}]}"#,
                2 + 3,
            ),
            // 9 chars round up to 3 tokens.
            (
                r#"{"messages":[{"role":"user","content":"abcdefghi"}]}"#,
                3 + 3,
            ),
            (
                r#"{"system":[{"type":"text","text":"abcd"}],"messages":[{"role":"user","content":[
                    {"type":"text","text":"abcd"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
                    {"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"abcd"}]}
                ]},{"role":"assistant","content":[
                    {"type":"thinking","thinking":"abcd","signature":"s"},
                    {"type":"tool_use","id":"t","name":"abcd","input":{}}
                ]}],"tools":[{"name":"ab","description":"cd","input_schema":{}}]}"#,
                // system, text, result, thinking, tool name, input: 1 each; the tool's name,
                // description and schema: 1 each; two messages; one image.
                6 + 3 + 2 * 3 + 1600,
            ),
        ];
        for (body, expected) in cases {
            let counted = count_message_tokens_with(body.as_bytes(), quarter_chars).unwrap();
            assert_eq!(counted, *expected, "{body}");
        }
        assert!(count_message_tokens(b"{").unwrap_err().is_client_error());
        assert_eq!(&count_tokens_body(42)[..], br#"{"input_tokens":42}"#);
    }

    #[test]
    fn the_default_counter_is_o200k() {
        let body = br#"{"messages":[{"role":"user","content":"tiktoken is great!"}]}"#;
        assert_eq!(count_message_tokens(body).unwrap(), 6 + 3);
    }
}
