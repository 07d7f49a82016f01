//! Speaking each upstream's dialect: what one attempt sends to a provider of a given kind for a
//! request that arrived on a given endpoint, and how the answer goes back to the client in the
//! dialect it spoke.
//!
//! Each dialect is a type, in its own file: an [`Ingress`] (what a client speaks: `openai`'s
//! chat, `anthropic`'s Messages) and a [`Provider`] (what an upstream speaks: `openai`,
//! `anthropic`, `gemini`). Between two dialects the request, the answer, its error body and its
//! stream go through OpenAI chat, the one form every dialect translates to and from; a client
//! whose dialect the provider speaks natively ([`Ingress::native`], which may depend on how the
//! provider is declared, not only on its kind) is served byte for byte. [`ingress`] and
//! [`provider`] are the registry: adding a dialect adds a file and one line there.
//!
//! | client endpoint → provider kind | request | answer |
//! |---|---|---|
//! | OpenAI → openai, Messages → anthropic, Responses → openai with `responses = true` | `model` spliced in place, nothing else touched (but what is shaped, below) | forwarded as received |
//! | chat → anthropic / gemini | translated ([`crate::translate`]) | translated back |
//! | Messages → openai / gemini | translated | translated back |
//! | chat, Messages, Responses → bedrock | translated to Converse | translated back (ConverseStream's binary events too) |
//! | count_tokens → anthropic | forwarded to `/messages/count_tokens` | forwarded |
//! | count_tokens → openai / gemini | none: llmgate counts the tokens itself | `{"input_tokens": n}` |
//!
//! Completions and embeddings exist only in OpenAI's API: a route to another kind is skipped
//! for them, as if it were not there.
//!
//! Every attempt is shaped to its route's upstream model ([`crate::routing::Route::model_limits`]):
//! the request's head says, from the fields it read anyway, what the request asks beyond them
//! ([`RequestHead::shaping`]); translators take the limits and write within them, and a body
//! that passes through is edited in place only when the head says something must change. The
//! answer then carries `x-llmgate-shaped`, and a debug line is logged.

mod anthropic;
mod azure;
mod bedrock;
mod gemini;
mod openai;
mod responses;
mod vertex;

use bytes::Bytes;

use super::{RequestHead, Shaping, outcome};
use crate::error::ApiError;
use crate::pricing::ModelLimits;
use crate::providers::UpstreamUrl;
use crate::routing::Target;
use crate::secret::Secret;
use crate::translate::anthropic::{anthropic_error_body, anthropic_error_type_for};
use crate::translate::{Chain, StreamFailure, StreamTranslator, TranslateError};
use crate::usage::{self, EventForm, StreamUsage, Usage};
use crate::vocab::{Dialect, Endpoint, ProviderKind};

/// The dialect a client speaks.
fn ingress(dialect: Dialect) -> &'static dyn Ingress {
    match dialect {
        Dialect::OpenAi => &openai::Chat,
        Dialect::Anthropic => &anthropic::Messages,
        Dialect::Responses => &responses::Responses,
    }
}

/// The dialect an upstream speaks, for a route to `upstream_model` (Vertex AI serves two).
fn provider(kind: ProviderKind, upstream_model: &str) -> &'static dyn Provider {
    match kind {
        ProviderKind::OpenAi => &openai::OpenAi,
        ProviderKind::Anthropic => &anthropic::Anthropic,
        ProviderKind::Gemini => &gemini::Gemini,
        ProviderKind::Azure => &azure::Azure,
        ProviderKind::Vertex => vertex::publisher(upstream_model),
        ProviderKind::Bedrock => &bedrock::Bedrock,
    }
}

/// `text` as one segment of a URL path: anything but letters, digits and `-._~@` is
/// percent-encoded, so a model name cannot reach another path.
fn path_segment(text: &str) -> std::borrow::Cow<'_, str> {
    let keep = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@');
    if text.bytes().all(keep) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut encoded = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        if keep(byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    std::borrow::Cow::Owned(encoded)
}

/// The client's side of a dialect: its requests to and its answers from OpenAI chat.
trait Ingress: Sync {
    /// Whether `provider`, whose upstream speaks `wire`, speaks this dialect itself: a request
    /// to it passes through.
    fn native(&self, provider: &crate::routing::Provider, wire: ProviderKind) -> bool;

    /// The events of a stream in this dialect, as the usage scanner reads them when they pass
    /// through (chat chunks unless the dialect says otherwise).
    fn native_events(&self) -> EventForm {
        EventForm::Chat
    }

    /// The body for a provider of the native kind, and whether llmgate asked it for a usage
    /// chunk the client did not ask for (to drop from the stream): byte for byte but `model`
    /// (and what such upstreams refuse), and, when `shape` is given, the values shaped to
    /// those limits (given only for a request that asks beyond them); `history` as for
    /// [`Ingress::request_to_chat`].
    fn pass_through(
        &self,
        body: &Bytes,
        head: &RequestHead<'_>,
        upstream_model: &str,
        stream: bool,
        shape: Option<ModelLimits>,
        history: &[&[u8]],
    ) -> Result<(Bytes, bool), TranslateError>;

    /// What a request on `endpoint` that no translation serves does with a provider of another
    /// dialect (answered by llmgate, or passed over); `None` when it is translated.
    fn elsewhere(
        &self,
        endpoint: Endpoint,
        target: Target<'_>,
        body: &[u8],
    ) -> Option<Result<Call, Refused>>;

    /// The request in OpenAI chat form, naming `upstream_model` and shaped to its `limits`,
    /// and how its answer goes back; `history` is the stored turns a Responses request
    /// continues (`previous_response_id`), oldest first, and empty for every other dialect.
    fn request_to_chat(
        &self,
        body: &Bytes,
        upstream_model: &str,
        limits: ModelLimits,
        history: &[&[u8]],
    ) -> Result<(Bytes, Box<dyn Client>), TranslateError>;

    /// How the answer to a request that passed through goes back (for the error events
    /// llmgate itself writes).
    fn client(&self) -> Box<dyn Client>;
}

/// The client's side of one request: how a chat answer goes back in the client's dialect.
/// (Chat and Messages need nothing of the request: they are unit types, whose box allocates
/// nothing.)
trait Client: Send + Sync {
    /// A whole chat answer in this dialect.
    fn answer_from_chat(&self, chat: Bytes, public_model: &str) -> Result<Bytes, TranslateError>;

    /// A chat error body (a 4xx that is the client's own) in this dialect.
    fn error_from_chat(&self, status: u16, chat: Bytes) -> Bytes;

    /// The translator of a chat stream into this dialect's (none for chat itself), for a
    /// stream answering `request`.
    fn stream_from_chat(
        &self,
        public_model: &str,
        request: &[u8],
    ) -> Option<Box<dyn StreamTranslator>>;

    /// The event that ends a client's stream with `error`, written by `translator` when the
    /// client's events come out of one.
    fn error_event(
        &self,
        error: &ApiError,
        request_id: &str,
        translator: Option<&mut dyn StreamTranslator>,
    ) -> Bytes;

    /// Headers this dialect adds to the answer (none by default).
    fn headers(&self, _headers: &mut http::HeaderMap) {}
}

/// The upstream's side of a dialect: its requests from and its answers to OpenAI chat.
trait Provider: Sync {
    /// The dialect its requests and answers are written in, named by the kind that speaks it
    /// natively: a client of that dialect is served byte for byte (Azure speaks OpenAI's).
    fn wire(&self) -> ProviderKind;

    /// Where a translated request goes.
    fn url(&self, target: Target<'_>, stream: bool) -> UpstreamUrl;

    /// Where a request in the provider's own dialect (passed through) on `endpoint` goes.
    fn passthrough_url(
        &self,
        target: Target<'_>,
        endpoint: Endpoint,
        _stream: bool,
    ) -> UpstreamUrl {
        UpstreamUrl::of(target, endpoint)
    }

    /// A passed-through body for `endpoint` as this upstream takes it (unchanged but for a
    /// provider that addresses the model otherwise).
    fn adapt_passthrough(&self, body: Bytes, _endpoint: Endpoint) -> Result<Bytes, TranslateError> {
        Ok(body)
    }

    /// A chat request in this dialect, shaped to the upstream model's `limits`, and whether
    /// the client asked for the usage chunk.
    fn request_from_chat(
        &self,
        chat: Bytes,
        upstream_model: &str,
        limits: ModelLimits,
    ) -> Result<(Bytes, bool), TranslateError>;

    /// A whole answer in chat form.
    fn answer_to_chat(&self, body: Bytes, public_model: &str) -> Result<Bytes, TranslateError>;

    /// An error body in chat form.
    fn error_to_chat(&self, status: u16, body: Bytes) -> Bytes;

    /// The translator of this dialect's stream into chat chunks (none for chat itself).
    fn stream_to_chat(
        &self,
        public_model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn StreamTranslator>>;
}

/// What one attempt does with a target.
pub(super) enum Call {
    /// Send `body` to `url`; `answer` says how the reply reaches the client.
    Upstream {
        url: UpstreamUrl,
        body: Bytes,
        answer: Answer,
        /// llmgate asked the upstream for the usage chunk the client did not ask for: drop it.
        filter_usage: bool,
    },
    /// llmgate answers itself, with this JSON body.
    Local(Bytes),
}

/// Why a target cannot take the request.
pub(super) enum Refused {
    /// This kind of provider has no such endpoint: the route is skipped.
    Endpoint(String),
    /// The request cannot be expressed for this provider: the client's error.
    Request(TranslateError),
}

impl From<TranslateError> for Refused {
    fn from(error: TranslateError) -> Self {
        Self::Request(error)
    }
}

/// How the upstream's answer becomes the client's.
pub(super) struct Answer {
    client: Box<dyn Client>,
    provider: &'static dyn Provider,
    /// The provider speaks the client's dialect: its answer is forwarded as received.
    passthrough: bool,
    /// The provider's answer is OpenAI's (its usage is read from the body itself).
    openai: bool,
    /// The client asked for the usage chunk.
    include_usage: bool,
    /// How the request was shaped for the route that answers.
    shaping: Shaping,
    /// The form of the events the usage scanner reads: the client's, when they pass through.
    events: EventForm,
}

/// The answer header saying how the request was shaped for the route that answered.
const SHAPED: http::HeaderName = http::HeaderName::from_static("x-llmgate-shaped");

/// The call for `target`, for a request on `endpoint` whose head is `head` (and, for a
/// Responses request that continues a stored one, whose earlier turns are `history`).
pub(super) fn prepare(
    target: Target<'_>,
    endpoint: Endpoint,
    body: &Bytes,
    head: &RequestHead<'_>,
    history: &[&[u8]],
    stream: bool,
) -> Result<Call, Refused> {
    let kind = target.route.provider.kind;
    let upstream_model = target.route.upstream_model.as_str();
    let (ingress, provider) = (ingress(endpoint.dialect()), provider(kind, upstream_model));
    let openai = provider.wire() == ProviderKind::OpenAi;
    let limits = target.route.model_limits;
    let shaping = head.shaping(endpoint, limits);
    if !shaping.is_empty() {
        tracing::debug!(
            route_id = target.route.id,
            upstream_model,
            shaped = %shaping,
            "shaped the request to what the route's upstream model takes"
        );
    }
    if ingress.native(&target.route.provider, provider.wire()) {
        let shape = (!shaping.is_empty()).then_some(limits);
        let (body, filter_usage) =
            ingress.pass_through(body, head, upstream_model, stream, shape, history)?;
        let body = provider.adapt_passthrough(body, endpoint)?;
        let answer = Answer {
            client: ingress.client(),
            provider,
            passthrough: true,
            openai,
            include_usage: true,
            shaping,
            events: ingress.native_events(),
        };
        return Ok(Call::Upstream {
            url: provider.passthrough_url(target, endpoint, stream),
            body,
            answer,
            filter_usage,
        });
    }
    if let Some(call) = ingress.elsewhere(endpoint, target, body) {
        return call;
    }
    let (chat, client) = ingress.request_to_chat(body, upstream_model, limits, history)?;
    let (body, include_usage) = provider.request_from_chat(chat, upstream_model, limits)?;
    let answer = Answer {
        client,
        provider,
        passthrough: false,
        openai,
        include_usage,
        shaping,
        events: EventForm::Chat,
    };
    Ok(Call::Upstream {
        url: provider.url(target, stream),
        body,
        answer,
        filter_usage: false,
    })
}

impl Answer {
    /// Adds the client dialect's own headers to the answer's, and `x-llmgate-shaped` when
    /// the request was shaped for the route that answered.
    pub(super) fn headers(&self, headers: &mut http::HeaderMap) {
        self.client.headers(headers);
        if !self.shaping.is_empty()
            && let Ok(value) = http::HeaderValue::from_str(&self.shaping.to_string())
        {
            headers.insert(SHAPED, value);
        }
    }

    /// Whether the client gets the upstream's bytes unchanged.
    pub(super) fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    /// Whether the upstream's answer reaches the client as it is and in OpenAI's form, so its
    /// usage is read from the body itself.
    pub(super) fn is_openai_passthrough(&self) -> bool {
        self.passthrough && self.openai
    }

    /// A whole successful answer for the client, and the answer in OpenAI's chat form for
    /// reading its usage (none for an Anthropic answer that is not a message, such as a token
    /// count).
    pub(super) fn complete(
        &self,
        body: Bytes,
        public_model: &str,
    ) -> Result<(Bytes, Option<Bytes>), TranslateError> {
        if self.passthrough {
            let chat = self
                .provider
                .answer_to_chat(body.clone(), public_model)
                .ok();
            return Ok((body, chat));
        }
        let chat = self.provider.answer_to_chat(body, public_model)?;
        let answer = self.client.answer_from_chat(chat.clone(), public_model)?;
        Ok((answer, Some(chat)))
    }

    /// An upstream error body (a 4xx that is the client's own) in the client's dialect.
    pub(super) fn error(&self, status: u16, body: Bytes) -> Bytes {
        if self.passthrough {
            return body;
        }
        let chat = self.provider.error_to_chat(status, body);
        self.client.error_from_chat(status, chat)
    }

    /// The relay of a streamed answer to `request`.
    pub(super) fn stream(
        self,
        public_model: &str,
        filter_usage: bool,
        request: &[u8],
    ) -> StreamShape {
        let mut scanner = StreamUsage::of(self.events);
        let (translator, watch) = if self.passthrough {
            // The upstream's events are the client's; when they are not chat, a translator
            // reads them aside, for their usage and their text.
            let watch = self.provider.stream_to_chat(public_model, true);
            if watch.is_none() && filter_usage {
                scanner = StreamUsage::filtering();
            }
            (watch, Watch::Output)
        } else {
            let upstream = self
                .provider
                .stream_to_chat(public_model, self.include_usage);
            match (
                upstream,
                self.client.stream_from_chat(public_model, request),
            ) {
                (Some(upstream), None) => (Some(upstream), Watch::Output),
                (None, Some(client)) => (Some(client), Watch::Input),
                // No scanner on the chat in the middle: it would parse every frame a third
                // time.
                (Some(first), Some(second)) => {
                    let chain: Box<dyn StreamTranslator> = Box::new(Chain { first, second });
                    (Some(chain), Watch::Nothing)
                }
                (None, None) => (None, Watch::Output),
            }
        };
        StreamShape {
            client: self.client,
            translator,
            scanner,
            watch,
            forwarded: self.passthrough,
            credential: None,
        }
    }
}

/// Which side of the translator is chat, watched by the [`StreamUsage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// The upstream's events.
    Input,
    /// The translator's output.
    Output,
    /// Neither (two translators in a row).
    Nothing,
}

/// A streamed answer on its way to the client: forwarded or translated frame by frame, with
/// its usage read as it passes. Where a translator sits, a [`StreamUsage`] watches whichever
/// side is in OpenAI's form, for the generated text an estimate needs when the stream is cut.
pub(super) struct StreamShape {
    client: Box<dyn Client>,
    /// `None`: the upstream's events are chat, and the scanner alone reads them.
    translator: Option<Box<dyn StreamTranslator>>,
    scanner: StreamUsage,
    watch: Watch,
    /// The upstream's events are forwarded as received: the translator's output is not sent,
    /// only read: its usage, and its text for an estimate when the stream breaks.
    forwarded: bool,
    /// The credential of the account that answers, hidden (with anything shaped like one) in
    /// an error event the upstream sends mid-stream.
    credential: Option<Secret>,
}

/// The start of an error frame's object, searched for in every forwarded chunk: built once, as
/// `memmem::find` built its searcher again for every chunk (a tenth of a frame's relay).
static ERROR_FRAME: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#"{"error""#));

impl StreamShape {
    /// Hides `credential` in the upstream's error events (see [`outcome::hidden`]).
    pub(super) fn hiding(mut self, credential: Option<Secret>) -> Self {
        self.credential = credential;
        self
    }

    /// What to send the client for one chunk of the upstream's body (possibly nothing yet).
    pub(super) fn push(&mut self, chunk: Bytes) -> Bytes {
        let Some(translator) = self.translator.as_mut() else {
            // OpenAI events, forwarded (the usage-only chunk possibly held back). An error
            // frame, `data: {"error": …}`, is the upstream's error answer, and so is a
            // Responses `error` or `response.failed` event: their credentials are hidden.
            // Inside generated text the quotes are escaped, so text never matches.
            let failed_before = self.scanner.saw_failure();
            let out = self.scanner.forward(chunk);
            if ERROR_FRAME.find(&out).is_some() || (!failed_before && self.scanner.saw_failure()) {
                return self.hide(out);
            }
            return out;
        };
        let failed_before = translator.failure().is_some();
        if self.watch == Watch::Input {
            self.scanner.observe(&chunk);
        }
        let out = translator.push(&chunk);
        if self.watch == Watch::Output {
            self.scanner.observe(&out);
        }
        // The chunk that carried the upstream's error event, as sent or as translated.
        let failed_now = !failed_before && translator.failure().is_some();
        let out = if self.forwarded { chunk } else { out };
        if failed_now { self.hide(out) } else { out }
    }

    fn hide(&self, out: Bytes) -> Bytes {
        outcome::hidden(out, self.credential.as_ref().map(Secret::expose))
    }

    /// The upstream's body ended: what is left to send, and the failure the client's stream
    /// ended with, if it did (an error the upstream sent, or an answer left unfinished), so the
    /// request is recorded with the outcome the client saw.
    pub(super) fn finish(&mut self, request_id: &str) -> (Bytes, Option<ApiError>) {
        let Some(translator) = self.translator.as_mut() else {
            let mut out = self.scanner.finish();
            // A Responses stream forwarded as is: the upstream's own failure was forwarded,
            // one that just stopped gets its `response.failed`, never a silent cut.
            let failure = if self.scanner.saw_failure() {
                Some(StreamFailure::Upstream)
            } else if self.scanner.unfinished() {
                let error = failure_error(StreamFailure::Unfinished);
                let event = self.client.error_event(&error, request_id, None);
                out = [out, event].concat().into();
                Some(StreamFailure::Unfinished)
            } else {
                None
            };
            return (out, failure.map(failure_error));
        };
        let mut out = translator.finish();
        if self.watch == Watch::Output {
            self.scanner.observe(&out);
        }
        let failure = translator.failure();
        if self.forwarded {
            // The upstream's own error event was forwarded; a stream that just stopped gets
            // one, never a silent cut.
            out = match failure {
                Some(StreamFailure::Unfinished) => self.client.error_event(
                    &failure_error(StreamFailure::Unfinished),
                    request_id,
                    None,
                ),
                _ => Bytes::new(),
            };
        }
        (out, failure.map(failure_error))
    }

    /// The answer's final object in the client's dialect once its last event has passed,
    /// where that event carries one: a Responses stream's `response`, from the translator that
    /// wrote it or, forwarded, from the upstream's event as the scanner read it.
    pub(super) fn final_response(&self) -> Option<&Bytes> {
        match &self.translator {
            Some(translator) if !self.forwarded => translator.final_response(),
            _ => self.scanner.final_response(),
        }
    }

    /// Whether the client's stream is complete and whole: its dialect's last event has passed
    /// (translated, or forwarded and read aside) with the upstream's usage before it. A client
    /// may hang up from here on without cutting its answer short (Codex closes a Responses
    /// stream on `response.completed`, before the upstream's body has ended).
    pub(super) fn answered(&self) -> bool {
        match &self.translator {
            Some(translator) => translator.ended() && translator.failure().is_none(),
            // Forwarded chat streams are not held to their `[DONE]` (see
            // `StreamUsage::unfinished`): their end is the body's.
            None => self.scanner.final_response().is_some() && !self.scanner.saw_failure(),
        }
    }

    /// The stream failed mid-way (the upstream broke, or the gateway is stopping): the error
    /// event that ends the client's stream, in its dialect.
    pub(super) fn fail(&mut self, error: &ApiError, request_id: &str) -> Bytes {
        let translator = match self.translator.as_mut() {
            Some(translator) if !self.forwarded => Some(translator.as_mut() as _),
            _ => None,
        };
        self.client.error_event(error, request_id, translator)
    }

    /// The usage of the stream: as reported when it ran to its end; otherwise what was reported
    /// so far, with the completion estimated from the text generated so far when that is more.
    pub(super) fn usage(&self, model: &str, request: &[u8], completed: bool) -> Usage {
        let Some(translator) = self.translator.as_ref() else {
            return self.scanner.usage_or_estimate(model, request);
        };
        let generated = match self.watch {
            Watch::Nothing => "",
            Watch::Input | Watch::Output => self.scanner.generated_text(),
        };
        match translator.usage() {
            Some(usage) if completed => usage,
            Some(mut usage) => {
                let estimate = usage::count_tokens(model, generated);
                if estimate > usage.completion_tokens {
                    usage.completion_tokens = estimate;
                    usage.total_tokens = usage.prompt_tokens + estimate;
                    usage.estimated = true;
                }
                usage
            }
            None => usage::estimate_usage(model, request, generated),
        }
    }
}

/// The error a stream that ended with `failure` is recorded with.
fn failure_error(failure: StreamFailure) -> ApiError {
    let detail = match failure {
        StreamFailure::Upstream => "the upstream sent an error mid-stream",
        StreamFailure::Unfinished => "the upstream ended the stream before the answer was complete",
    };
    ApiError::UpstreamFailed {
        detail: detail.to_owned(),
    }
}

/// Anthropic's `error` event, for a client of `/v1/messages` whose stream broke.
pub(super) fn anthropic_error_event(error: &ApiError, request_id: &str) -> Bytes {
    let (status, kind, code) = error.status_type_code();
    let body = anthropic_error_body(
        anthropic_error_type_for(kind, Some(code), status.as_u16()),
        &error.client_message(Some(request_id)),
    );
    let mut event = String::with_capacity(body.len() + 24);
    // A frame may have been cut mid-line: start on a fresh line so the event parses.
    event.push_str("\n\nevent: error\ndata: ");
    event.push_str(&body);
    event.push_str("\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Answer {
        /// The answer of a provider of `kind` to a client of `dialect`, as `prepare` makes it.
        fn new(dialect: Dialect, kind: ProviderKind) -> Self {
            let ingress = ingress(dialect);
            let provider = provider(kind, "");
            let passthrough = match dialect {
                Dialect::OpenAi => provider.wire() == ProviderKind::OpenAi,
                Dialect::Anthropic => provider.wire() == ProviderKind::Anthropic,
                Dialect::Responses => false,
            };
            Self {
                client: ingress.client(),
                provider,
                passthrough,
                openai: provider.wire() == ProviderKind::OpenAi,
                include_usage: true,
                shaping: Shaping::default(),
                events: EventForm::Chat,
            }
        }
    }

    /// What the pass-through of `dialect` sends for `body`, shaped to `shape` when given.
    fn passed(dialect: Dialect, body: &str, shape: Option<ModelLimits>) -> String {
        let body = Bytes::from(body.to_owned());
        let head = RequestHead::parse(&body).unwrap();
        let (out, _) = ingress(dialect)
            .pass_through(&body, &head, "up", false, shape, &[])
            .unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn a_pass_through_is_byte_for_byte_unless_it_is_shaped() {
        let gpt_4o = ModelLimits::of("gpt-4o");
        let chat = "{\"model\": \"pub\", \"max_tokens\": 32000,\n \"reasoning_effort\":\"high\", \"top_p\": 1.0}";
        assert_eq!(
            passed(Dialect::OpenAi, chat, None),
            "{\"model\": \"up\", \"max_tokens\": 32000,\n \"reasoning_effort\":\"high\", \"top_p\": 1.0}"
        );
        assert_eq!(
            passed(Dialect::OpenAi, chat, Some(gpt_4o)),
            "{\"model\": \"up\", \"max_tokens\": 16384, \"top_p\": 1.0}"
        );
        let haiku_3_5 = ModelLimits::of("claude-3-5-haiku-20241022");
        let messages = r#"{"model":"pub","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"messages":[{"role":"user","content":"hi"},{"role":"system","content":"agents"}]}"#;
        assert_eq!(
            passed(Dialect::Anthropic, messages, Some(haiku_3_5)),
            r#"{"system":[{"type":"text","text":"agents"}],"model":"up","max_tokens":8192,"messages":[{"role":"user","content":"hi"}]}"#
        );
    }

    impl Answer {
        /// The answer of a provider declared with `responses = true` to a Responses client.
        fn forwarded_responses() -> Self {
            Self {
                events: ingress(Dialect::Responses).native_events(),
                passthrough: true,
                ..Self::new(Dialect::Responses, ProviderKind::OpenAi)
            }
        }
    }

    const RESPONSE_STARTED: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_up\",\"status\":\"in_progress\",\"usage\":null}}\n\n\
        event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"some words\"}\n\n";

    #[test]
    fn a_forwarded_responses_stream_passes_as_is_and_ends_once() {
        // Complete: forwarded unchanged, its usage read from `response.completed`.
        let mut shape = Answer::forwarded_responses().stream("m", false, b"{}");
        let completed = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_up\",\"status\":\"completed\",\
            \"usage\":{\"input_tokens\":4,\"output_tokens\":2,\"output_tokens_details\":{\"reasoning_tokens\":1}}}}\n\n";
        let all = format!("{RESPONSE_STARTED}{completed}");
        assert_eq!(shape.push(Bytes::from(all.clone())), all.as_bytes());
        let (tail, failure) = shape.finish("req_1");
        assert!(tail.is_empty() && failure.is_none());
        let usage = shape.usage("m", b"{}", true);
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.reasoning_tokens
            ),
            (4, 2, 1)
        );
        assert!(!usage.estimated);

        // The upstream's own error event: forwarded with the credential hidden, a failure.
        let mut shape = Answer::forwarded_responses()
            .stream("m", false, b"{}")
            .hiding(Some(Secret::new("sk-upstream-secret-0123456789")));
        shape.push(Bytes::from(RESPONSE_STARTED));
        let error = "event: error\ndata: {\"type\":\"error\",\"code\":\"invalid_api_key\",\"message\":\"bad key sk-upstream-secret-0123456789\"}\n\n";
        let out = shape.push(Bytes::from(error));
        let out = std::str::from_utf8(&out).unwrap();
        assert!(
            out.contains("event: error") && !out.contains("0123456789"),
            "{out}"
        );
        let (tail, failure) = shape.finish("req_1");
        assert!(tail.is_empty());
        assert_eq!(failure.map(|e| e.status().as_u16()), Some(502));

        // Stopped before its last event: `response.failed` follows, and it is a failure.
        let mut shape = Answer::forwarded_responses().stream("m", false, b"{}");
        shape.push(Bytes::from(RESPONSE_STARTED));
        let (tail, failure) = shape.finish("req_1");
        let tail = std::str::from_utf8(&tail).unwrap();
        assert!(
            tail.contains("event: response.failed\n") && tail.contains("req_1"),
            "{tail}"
        );
        assert!(failure.is_some());
        assert!(shape.usage("m", b"{}", false).estimated);
    }

    #[test]
    fn an_anthropic_error_event_carries_the_request_id_and_the_matching_type() {
        let error = ApiError::UpstreamTimeout {
            detail: "silent".into(),
        };
        let event = anthropic_error_event(&error, "req_1");
        let text = std::str::from_utf8(&event).unwrap();
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(data).unwrap();
        assert!(text.contains("event: error\n"));
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "timeout_error");
        assert!(json["error"]["message"].as_str().unwrap().contains("req_1"));
    }

    #[test]
    fn a_cut_translated_stream_estimates_the_completion_from_what_was_generated() {
        let mut shape =
            Answer::new(Dialect::Anthropic, ProviderKind::OpenAi).stream("m", false, b"{}");
        let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
                     \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hello there, general\"}}]}\n\n";
        let out = shape.push(Bytes::from(chunk));
        assert!(std::str::from_utf8(&out).unwrap().contains("text_delta"));
        let usage = shape.usage("gpt-4o", br#"{"messages":[]}"#, false);
        assert!(usage.estimated);
        assert!(usage.completion_tokens >= 3, "{usage:?}");
    }

    const MESSAGE_START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"several words of an answer\"}}\n\n";

    #[test]
    fn a_forwarded_anthropic_stream_that_stops_short_ends_with_an_error_and_is_a_failure() {
        // Stopped mid-answer: the client gets an error event, never a silent cut.
        let mut shape =
            Answer::new(Dialect::Anthropic, ProviderKind::Anthropic).stream("m", false, b"{}");
        assert_eq!(shape.push(Bytes::from(MESSAGE_START)), MESSAGE_START);
        let (tail, failure) = shape.finish("req_1");
        let tail = std::str::from_utf8(&tail).unwrap();
        assert!(
            tail.contains("event: error\n") && tail.contains("req_1"),
            "{tail}"
        );
        assert_eq!(failure.map(|e| e.status().as_u16()), Some(502));
        // The completion is estimated from the text so far, not the 1 of `message_start`.
        let usage = shape.usage("m", b"{}", false);
        assert!(usage.estimated && usage.completion_tokens > 1, "{usage:?}");

        // The upstream's own error event was forwarded: nothing more, but still a failure.
        let mut shape =
            Answer::new(Dialect::Anthropic, ProviderKind::Anthropic).stream("m", false, b"{}");
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";
        shape.push(Bytes::from(format!("{MESSAGE_START}{error}")));
        let (tail, failure) = shape.finish("req_1");
        assert!(tail.is_empty());
        assert!(failure.is_some());

        // A complete stream is no failure.
        let mut shape =
            Answer::new(Dialect::Anthropic, ProviderKind::Anthropic).stream("m", false, b"{}");
        shape.push(Bytes::from(format!(
            "{MESSAGE_START}event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":4}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        )));
        let (tail, failure) = shape.finish("req_1");
        assert!(tail.is_empty() && failure.is_none());
        assert_eq!(shape.usage("m", b"{}", true).completion_tokens, 4);
    }

    #[test]
    fn a_translated_stream_left_unfinished_is_recorded_as_a_failure() {
        let mut shape =
            Answer::new(Dialect::Anthropic, ProviderKind::OpenAi).stream("m", false, b"{}");
        let chunk =
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        shape.push(Bytes::from(chunk));
        let (tail, failure) = shape.finish("req_1");
        assert!(std::str::from_utf8(&tail).unwrap().contains("event: error"));
        assert!(failure.is_some());
    }
}
