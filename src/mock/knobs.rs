//! The per-request `"mock"` knobs and the plan they make together with the live `MockConfig`.

use std::time::Duration;

use serde::Deserialize;

use super::MockConfig;

/// The optional `"mock"` object of a request body; every field overrides the live config.
///
/// Unknown fields are rejected so that a misspelt knob fails the test that uses it instead of
/// being silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Knobs {
    status: Option<u16>,
    retry_after: Option<u64>,
    latency_ms: Option<u64>,
    #[serde(default, deserialize_with = "at_most::<_, MAX_CHUNKS>")]
    chunks: Option<usize>,
    chunk_delay_ms: Option<u64>,
    #[serde(default)]
    hang: bool,
    cut_after: Option<usize>,
    /// Streams: the body stays open this long after its last event before it ends.
    end_delay_ms: Option<u64>,
    #[serde(default)]
    no_usage: bool,
    content: Option<String>,
    /// A status per upstream credential (the bearer token the request carries), to make one
    /// account of a pool fail while the others answer.
    #[serde(default)]
    status_for_key: std::collections::HashMap<String, u16>,
    /// When the request declares tools: answer with this many tool calls instead of text.
    #[serde(default, deserialize_with = "at_most::<_, MAX_TOOL_CALLS>")]
    tool_calls: Option<usize>,
    /// The answer is stopped by the safety filter: Gemini's `finishReason: SAFETY`, OpenAI's
    /// (Azure's) `finish_reason: content_filter`.
    #[serde(default)]
    safety_block: bool,
    /// The prompt is refused by Azure OpenAI's content filter: a 400 with code
    /// `content_filter`.
    #[serde(default)]
    content_filter: bool,
    /// Report this many of the prompt tokens as read from the provider's cache.
    cached_tokens: Option<u64>,
    /// Report this many more completion tokens, as reasoning tokens (chat and Responses).
    reasoning_tokens: Option<u64>,
    /// Answer with one call of this tool (chat, Messages and Responses), until the
    /// conversation ends with a tool's result: then answer text echoing that result. This is
    /// how a test has an agent (Codex) run one of its own tools and send the output back.
    call: Option<CallKnob>,
    /// Anthropic only: report this many of the prompt tokens (beyond the cached ones) as
    /// written to the cache (`cache_creation_input_tokens`).
    cache_write_tokens: Option<u64>,
    /// Bedrock only: end the stream with this exception message (`throttlingException`,
    /// `modelStreamErrorException`, …) where `messageStop` would come.
    exception: Option<String>,
}

/// The `call` knob: the tool to call and its arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallKnob {
    name: String,
    #[serde(default)]
    arguments: serde_json::Map<String, serde_json::Value>,
}

/// What starts a user's text that carries knobs (see [`Knobs::from_prompt`]).
const PROMPT_KNOBS: &str = "mock:";

impl Knobs {
    /// Knobs written in the prompt, for clients whose request body a test cannot shape (an
    /// agent such as Codex, an SDK): the last user text that starts with `mock:` followed by the
    /// knobs' JSON object, like `mock: {"call": {"name": "exec_command", "arguments":
    /// {"cmd": "echo hi"}}}`. `Ok(None)` when no text starts so.
    pub fn from_prompt<'a>(
        user_texts: impl DoubleEndedIterator<Item = &'a str>,
    ) -> serde_json::Result<Option<Self>> {
        user_texts
            .rev()
            .find_map(|text| text.trim_start().strip_prefix(PROMPT_KNOBS))
            .map(serde_json::from_str)
            .transpose()
    }
}

/// The most content pieces of one answer (the `chunks` knob, and the config's): the answer is
/// built whole before it is sent, so its size must not be the client's to choose.
pub(super) const MAX_CHUNKS: usize = 4096;

/// The most tool calls of one answer (the `tool_calls` knob); each is split into `chunks`
/// fragments, so together they bound an answer to `MAX_TOOL_CALLS × MAX_CHUNKS` frames.
pub(super) const MAX_TOOL_CALLS: usize = 16;

/// A count knob with an upper bound: a larger value makes the request body invalid (400)
/// rather than an allocation of any size.
fn at_most<'de, D, const MAX: usize>(deserializer: D) -> Result<Option<usize>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<usize>::deserialize(deserializer)? {
        Some(value) if value > MAX => Err(serde::de::Error::custom(format!(
            "a mock knob is at most {MAX}, got {value}"
        ))),
        value => Ok(value),
    }
}

/// How the mock answers one request.
#[derive(Debug)]
pub(super) struct Plan {
    pub latency: Duration,
    /// Content pieces of a streamed answer and the completion token count; at least 1.
    pub chunks: usize,
    pub chunk_delay: Duration,
    pub failure: Option<Failure>,
    pub hang: bool,
    /// For streams: how many content pieces to send before breaking the connection.
    pub cut_after: Option<usize>,
    /// For streams: how long the body stays open after its last event.
    pub end_delay: Duration,
    /// Whether usage is reported at all.
    pub usage: bool,
    /// A fixed reply replacing the echo.
    pub content: Option<String>,
    /// Tool calls to answer with when the request declares tools (0: answer text).
    pub tool_calls: usize,
    pub safety_block: bool,
    /// Answer Azure's content-filter refusal instead.
    pub content_filter: bool,
    /// Prompt tokens reported as cached (at most the prompt's).
    pub cached_tokens: u64,
    /// Completion tokens reported as reasoning, on top of `chunks`.
    pub reasoning_tokens: u64,
    /// The one tool call to answer with until a tool's result comes back.
    pub call: Option<PlannedCall>,
    /// Prompt tokens an Anthropic answer reports as written to the cache (at most those of
    /// the prompt left after the cached ones).
    pub cache_write_tokens: u64,
    /// Bedrock's in-stream exception, by type.
    pub exception: Option<String>,
}

/// A tool call the `call` knob asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlannedCall {
    pub name: String,
    /// The arguments as a JSON object text.
    pub arguments: String,
}

/// A simulated upstream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failure {
    pub status: u16,
    pub retry_after: Option<u64>,
}

impl Plan {
    /// The plan for a request that carried `knobs` and the credential `credential` (the bearer
    /// token, `x-api-key` or `x-goog-api-key`, by dialect).
    pub fn new(config: &MockConfig, knobs: Option<Knobs>, credential: Option<&str>) -> Self {
        let knobs = knobs.unwrap_or_default();
        let for_key = credential.and_then(|key| knobs.status_for_key.get(key).copied());
        // A 2xx status in the knobs means "succeed", which lets one request escape a failing config.
        let status = for_key
            .or(knobs.status)
            .or(config.fail_status)
            .filter(|status| !(200..300).contains(status));
        let failure = status.map(|status| Failure {
            status,
            retry_after: knobs.retry_after.or((status == 429).then_some(1)),
        });
        Self {
            latency: knobs
                .latency_ms
                .map_or(config.latency, Duration::from_millis),
            chunks: knobs.chunks.unwrap_or(config.chunks).clamp(1, MAX_CHUNKS),
            chunk_delay: knobs
                .chunk_delay_ms
                .map_or(config.chunk_delay, Duration::from_millis),
            failure,
            hang: knobs.hang,
            cut_after: knobs.cut_after,
            end_delay: Duration::from_millis(knobs.end_delay_ms.unwrap_or(0)),
            usage: !knobs.no_usage,
            content: knobs.content,
            tool_calls: knobs.tool_calls.unwrap_or(0),
            safety_block: knobs.safety_block,
            content_filter: knobs.content_filter,
            cached_tokens: knobs.cached_tokens.unwrap_or(0),
            reasoning_tokens: knobs.reasoning_tokens.unwrap_or(0),
            call: knobs.call.map(|call| PlannedCall {
                name: call.name,
                arguments: serde_json::Value::Object(call.arguments).to_string(),
            }),
            cache_write_tokens: knobs.cache_write_tokens.unwrap_or(0),
            exception: knobs.exception,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(config: &MockConfig, knobs: &str) -> Plan {
        Plan::new(
            config,
            Some(serde_json::from_str(knobs).unwrap()),
            Some("sk-a"),
        )
    }

    #[test]
    fn knobs_override_the_config() {
        let config = MockConfig {
            chunks: 4,
            latency: Duration::from_millis(7),
            ..MockConfig::default()
        };
        let plain = Plan::new(&config, None, None);
        assert_eq!(
            (plain.chunks, plain.latency, plain.usage),
            (4, Duration::from_millis(7), true)
        );
        assert_eq!(plain.failure, None);

        let steered = plan(
            &config,
            r#"{"chunks": 0, "latency_ms": 3, "chunk_delay_ms": 2, "no_usage": true}"#,
        );
        assert_eq!(steered.chunks, 1, "chunks never drop below one");
        assert_eq!(steered.latency, Duration::from_millis(3));
        assert_eq!(steered.chunk_delay, Duration::from_millis(2));
        assert!(!steered.usage);
    }

    #[test]
    fn failures_come_from_the_config_or_the_knobs() {
        let failing = MockConfig {
            fail_status: Some(429),
            ..MockConfig::default()
        };
        let limited = Failure {
            status: 429,
            retry_after: Some(1),
        };
        assert_eq!(Plan::new(&failing, None, None).failure, Some(limited));
        assert_eq!(plan(&failing, r#"{"status": 200}"#).failure, None);
        assert_eq!(
            plan(
                &MockConfig::default(),
                r#"{"status": 503, "retry_after": 4}"#
            )
            .failure,
            Some(Failure {
                status: 503,
                retry_after: Some(4)
            })
        );
        assert_eq!(
            plan(&MockConfig::default(), r#"{"status": 500}"#).failure,
            Some(Failure {
                status: 500,
                retry_after: None
            })
        );
    }

    #[test]
    fn a_status_can_target_one_credential() {
        let knobs = r#"{"status_for_key": {"sk-a": 429}}"#;
        assert_eq!(
            plan(&MockConfig::default(), knobs)
                .failure
                .map(|f| f.status),
            Some(429)
        );
        let other = Plan::new(
            &MockConfig::default(),
            Some(serde_json::from_str(knobs).unwrap()),
            Some("sk-b"),
        );
        assert_eq!(other.failure, None);
    }

    #[test]
    fn tool_safety_and_cache_knobs_default_to_off() {
        let plain = Plan::new(&MockConfig::default(), None, None);
        assert_eq!(
            (plain.tool_calls, plain.safety_block, plain.cached_tokens),
            (0, false, 0)
        );
        let steered = plan(
            &MockConfig::default(),
            r#"{"tool_calls": 3, "safety_block": true, "cached_tokens": 5}"#,
        );
        assert_eq!(
            (
                steered.tool_calls,
                steered.safety_block,
                steered.cached_tokens
            ),
            (3, true, 5)
        );
    }

    #[test]
    fn counts_that_size_the_answer_are_bounded() {
        let parse = |knobs: &str| serde_json::from_str::<Knobs>(knobs);
        assert!(parse(&format!(r#"{{"chunks": {MAX_CHUNKS}}}"#)).is_ok());
        assert!(parse(&format!(r#"{{"tool_calls": {MAX_TOOL_CALLS}}}"#)).is_ok());
        for knobs in [
            format!(r#"{{"chunks": {}}}"#, MAX_CHUNKS + 1),
            format!(r#"{{"tool_calls": {}}}"#, MAX_TOOL_CALLS + 1),
            r#"{"tool_calls": 18446744073709551615}"#.to_owned(),
        ] {
            let error = parse(&knobs).unwrap_err();
            assert!(error.to_string().contains("at most"), "{knobs}: {error}");
        }
        let config = MockConfig {
            chunks: usize::MAX,
            ..MockConfig::default()
        };
        assert_eq!(Plan::new(&config, None, None).chunks, MAX_CHUNKS);
    }

    #[test]
    fn knobs_can_be_written_in_the_prompt() {
        let texts = [
            "<environment_context>…</environment_context>",
            r#"  mock: {"call": {"name": "exec_command", "arguments": {"cmd": "echo ok"}}, "reasoning_tokens": 2}"#,
            "an earlier text is not read: mock: {\"status\": 500}",
        ];
        let knobs = Knobs::from_prompt(texts.iter().copied()).unwrap().unwrap();
        let plan = Plan::new(&MockConfig::default(), Some(knobs), None);
        assert_eq!(
            plan.call,
            Some(PlannedCall {
                name: "exec_command".into(),
                arguments: r#"{"cmd":"echo ok"}"#.into()
            })
        );
        assert_eq!((plan.reasoning_tokens, plan.failure), (2, None));
        assert!(Knobs::from_prompt(["hello"].into_iter()).unwrap().is_none());
        assert!(Knobs::from_prompt(["mock: {\"nope\": 1}"].into_iter()).is_err());
    }

    #[test]
    fn unknown_knobs_are_rejected() {
        assert!(serde_json::from_str::<Knobs>(r#"{"chunk": 3}"#).is_err());
    }
}
