//! The gateway's vocabulary: the small closed sets of names every layer speaks of (endpoints,
//! dialects, provider kinds, routing strategies, budget windows). It imports nothing of the
//! crate, so any module may use it without an arrow pointing up.

/// An enum of named values, with the name as written in config files, the admin API and
/// metrics: `ALL`, `as_str`, `parse` and `names` (the accepted names, for error messages).
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$( $name::$variant, )+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == name)
            }

            /// The accepted names, comma-separated, for error messages.
            pub fn names() -> String {
                Self::ALL
                    .iter()
                    .map(|value| value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    };
}

named! {
    /// The dialect an upstream speaks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ProviderKind {
        /// OpenAI's API, or any API compatible with it (vLLM, Ollama, Together, Groq, …).
        OpenAi = "openai",
        /// Anthropic's Messages API (`{base_url}/messages`, `x-api-key`).
        Anthropic = "anthropic",
        /// Google's Gemini API (`{base_url}/models/{model}:generateContent`, `x-goog-api-key`).
        Gemini = "gemini",
        /// Azure OpenAI (`{base_url}/deployments/{model}/…?api-version=…`, `api-key`): OpenAI's
        /// dialect, with the route's model naming a deployment.
        Azure = "azure",
        /// Google Vertex AI: Gemini models (`:generateContent`) and Anthropic models
        /// (`:rawPredict`), with OAuth access tokens minted from a service account.
        Vertex = "vertex",
        /// AWS Bedrock's Converse API (`/model/{model}/converse`), every request signed with
        /// AWS Signature Version 4 from the account's access key.
        Bedrock = "bedrock",
    }
}

impl ProviderKind {
    /// Whether an upstream of this kind may serve OpenAI's Responses API itself (a provider
    /// declared with `responses = true`): only OpenAI-compatible APIs have it.
    pub fn may_serve_responses(self) -> bool {
        self == Self::OpenAi
    }

    /// Why a provider of this kind cannot be declared with `responses = true`, for the config
    /// file and the admin API alike; `None` when it can.
    pub fn responses_refusal(self) -> Option<String> {
        (!self.may_serve_responses()).then(|| {
            format!(
                "'responses = true' is only for OpenAI-compatible providers (kind openai): a \
                 provider of kind {} does not serve OpenAI's Responses API, and llmgate \
                 translates /v1/responses for it anyway; remove the setting",
                self.as_str()
            )
        })
    }
}

named! {
    /// How a model spreads requests over the routes of one priority tier.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum Strategy {
        #[default]
        Weighted = "weighted",
        LeastBusy = "least_busy",
        Latency = "latency",
    }
}

named! {
    /// When a key's token budget starts again from zero.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum BudgetWindow {
        Daily = "daily",
        Weekly = "weekly",
        Monthly = "monthly",
    }
}

/// The client API endpoints the gateway proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    /// Anthropic's `POST /v1/messages`.
    Messages,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI's Responses API, `POST /v1/responses`.
    Responses,
}

// Every endpoint has a slot in `Endpoint::COUNT`-sized tables.
const _: () = assert!(Endpoint::Responses as usize + 1 == Endpoint::COUNT);

/// The API a client speaks, which decides the shape of its answers and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    /// OpenAI's Responses API: OpenAI's error shape, its own answers and events.
    Responses,
}

impl ProviderKind {
    /// Whether the account's credential is exchanged for short-lived access tokens (Vertex
    /// AI's service accounts) rather than sent as it is.
    pub fn mints_access_tokens(self) -> bool {
        self == Self::Vertex
    }
}

impl Endpoint {
    /// How many endpoints there are (slots of a provider's cached URLs).
    pub const COUNT: usize = 6;

    /// The path appended to a provider's base URL for this endpoint (OpenAI's paths; Anthropic's
    /// for `Messages` and `CountTokens`).
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
            Self::Messages => "/messages",
            Self::CountTokens => "/messages/count_tokens",
            Self::Responses => "/responses",
        }
    }

    /// The path clients call, for messages.
    pub fn public_path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Messages => "/v1/messages",
            Self::CountTokens => "/v1/messages/count_tokens",
            Self::Responses => "/v1/responses",
        }
    }

    /// A short name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
            Self::Responses => "responses",
        }
    }

    /// Whether the endpoint can answer with a stream of server-sent events.
    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::Messages | Self::Responses
        )
    }

    /// The API a client of this endpoint speaks.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::ChatCompletions | Self::Completions | Self::Embeddings => Dialect::OpenAi,
            Self::Responses => Dialect::Responses,
        }
    }

    /// Whether the endpoint generates tokens that are reserved, limited and accounted
    /// (a token count does not).
    pub fn generates(self) -> bool {
        self != Self::CountTokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_value_round_trips_through_its_name() {
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Some(*kind));
        }
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::parse(strategy.as_str()), Some(*strategy));
        }
        for window in BudgetWindow::ALL {
            assert_eq!(BudgetWindow::parse(window.as_str()), Some(*window));
        }
        assert_eq!(ProviderKind::parse("azure"), Some(ProviderKind::Azure));
        assert_eq!(ProviderKind::parse("Azure"), None);
        assert!(ProviderKind::OpenAi.responses_refusal().is_none());
        for kind in [ProviderKind::Anthropic, ProviderKind::Gemini] {
            let refusal = kind.responses_refusal().unwrap();
            assert!(refusal.contains(kind.as_str()), "{refusal}");
        }
        assert_eq!(Strategy::names(), "weighted, least_busy, latency");
    }
}
