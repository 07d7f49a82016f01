use std::time::Duration;

use super::{ConfigError, ConfigFile, ConfigProblem, load, parse};
use crate::vocab::BudgetWindow;
use crate::vocab::{ProviderKind, Strategy};

const OPENAI_KEY: &str = "sk-test-openai-secret-0001";
const CI_KEY: &str = "llmgate-ci-key-secret-0123456789";

fn env(name: &str) -> Option<String> {
    let value = match name {
        "OPENAI_API_KEY" => OPENAI_KEY,
        "LLMGATE_CI_KEY" => CI_KEY,
        "MODEL" => "gpt-4o-mini",
        "HOST" => "api.example.com",
        "PORT" => "9090",
        "EMPTY" => "",
        _ => return None,
    };
    Some(value.to_owned())
}

/// Strips the leading newline and the common indentation, so inputs can be written indented
/// and their line 1 is their first written line.
fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_text(input: &str) -> Result<ConfigFile, Vec<ConfigProblem>> {
    parse(&dedent(input), &env)
}

/// "ok", or one line per problem.
fn render(input: &str) -> String {
    match parse_text(input) {
        Ok(_) => "ok".to_owned(),
        Err(problems) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn check(input: &str, expected: &str) {
    let actual = render(input);
    let expected = dedent(expected);
    assert!(
        actual == expected.trim(),
        "\ninput:\n{}\n\nexpected:\n{}\n\nactual:\n{actual}\n",
        dedent(input),
        expected.trim()
    );
}

fn parsed(input: &str) -> ConfigFile {
    match parse_text(input) {
        Ok(config) => config,
        Err(problems) => panic!("unexpected problems: {problems:#?}"),
    }
}

const CONTRACT_EXAMPLE: &str = r#"
    [server]                       # every key optional; env vars override these
    listen = "127.0.0.1:8080"
    database = "sqlite://llmgate.db"

    [[providers]]
    name = "openai"
    kind = "openai"                # openai (any OpenAI-compatible API) | anthropic | gemini | …
    base_url = "https://api.openai.com/v1"   # includes the API version; endpoint paths are appended:
                                   # anthropic: https://api.anthropic.com/v1 (+ /messages)
                                   # gemini: https://generativelanguage.googleapis.com/v1beta (+ /models/…)

      [[providers.accounts]]       # the pool of upstream credentials for this provider
      name = "team-a"
      api_key = "${OPENAI_API_KEY}"
      weight = 1                   # optional, default 1
      rpm = 500                    # optional upstream limit to respect

    [[models]]
    name = "gpt-4o-mini"           # the name clients send
    strategy = "weighted"          # optional: weighted | least_busy | latency
    max_attempts = 3               # optional: upstream attempts per request, failover included
    timeout = "120s"               # optional: overall deadline for one request

      [[models.routes]]            # where requests for this model may go
      provider = "openai"
      model = "gpt-4o-mini"        # the upstream's own name for it
      weight = 1                   # share among routes of the same priority
      priority = 0                 # 0 is tried first; higher numbers are fallbacks

    [[keys]]                       # optional: client keys declared in the file
    name = "ci"
    key = "${LLMGATE_CI_KEY}"      # plaintext given here is stored only as a hash
    models = ["gpt-4o-mini"]       # optional allow-list; absent = all models
    rpm = 600                      # optional
    tpm = 200000                   # optional
    budget_tokens = 5000000        # optional token budget…
    budget_window = "monthly"      # …reset daily | weekly | monthly (absent: never resets)
    expires_at = "2027-01-01T00:00:00Z"  # optional
"#;

#[test]
fn the_contract_example_parses() {
    let config = parsed(CONTRACT_EXAMPLE);

    assert_eq!(
        config.server.listen,
        Some("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(
        config.server.database.as_deref(),
        Some("sqlite://llmgate.db")
    );

    let [provider] = config.providers.as_slice() else {
        panic!("one provider expected");
    };
    assert_eq!(provider.name, "openai");
    assert_eq!(provider.kind, ProviderKind::OpenAi);
    assert_eq!(provider.base_url, "https://api.openai.com/v1");
    let [account] = provider.accounts.as_slice() else {
        panic!("one account expected");
    };
    assert_eq!(account.name, "team-a");
    assert_eq!(account.api_key.expose(), OPENAI_KEY);
    assert_eq!((account.weight, account.rpm), (1, Some(500)));

    let [model] = config.models.as_slice() else {
        panic!("one model expected");
    };
    assert_eq!(model.name, "gpt-4o-mini");
    assert_eq!(model.strategy, Strategy::Weighted);
    assert_eq!(model.max_attempts, 3);
    assert_eq!(model.timeout, Some(Duration::from_secs(120)));
    let [route] = model.routes.as_slice() else {
        panic!("one route expected");
    };
    assert_eq!(
        (
            route.provider.as_str(),
            route.model.as_str(),
            route.weight,
            route.priority
        ),
        ("openai", "gpt-4o-mini", 1, 0)
    );

    let [key] = config.keys.as_slice() else {
        panic!("one key expected");
    };
    assert_eq!(key.name, "ci");
    assert_eq!(key.key.expose(), CI_KEY);
    assert_eq!(key.models, Some(vec!["gpt-4o-mini".to_owned()]));
    assert_eq!((key.rpm, key.tpm), (Some(600), Some(200_000)));
    assert_eq!(key.budget_tokens, Some(5_000_000));
    assert_eq!(key.budget_window, Some(BudgetWindow::Monthly));
    assert_eq!(
        key.expires_at.map(|t| t.to_rfc3339()),
        Some("2027-01-01T00:00:00+00:00".to_owned())
    );

    let debug = format!("{config:?}");
    assert!(
        !debug.contains(OPENAI_KEY) && !debug.contains(CI_KEY),
        "{debug}"
    );
}

#[test]
fn the_server_table_may_name_redis() {
    let config = parsed("[server]\nredis = \"redis://127.0.0.1:6379/\"\n");
    assert_eq!(
        config.server.redis.as_deref(),
        Some("redis://127.0.0.1:6379/")
    );
    assert!(parse_text("[server]\nredis = \" \"\n").is_err());
}

#[test]
fn empty_documents_are_valid() {
    for input in [
        "",
        "\n\n",
        "# nothing configured yet\n",
        "providers = []\nmodels = []\nkeys = []",
        "[server]",
    ] {
        let config = parsed(input);
        assert!(config.providers.is_empty() && config.models.is_empty() && config.keys.is_empty());
        assert_eq!((config.server.listen, config.server.database), (None, None));
    }
}

#[test]
fn optional_values_take_their_defaults() {
    let config = parsed(
        r#"
        [[providers]]
        name = "local"
        kind = "openai"
        base_url = "http://localhost:11434/v1///"

        [[models]]
        name = "llama"
          [[models.routes]]
          provider = "local"
          model = "llama3"

        [[keys]]
        name = "dev"
        key = "0123456789abcdef0123456789abcdef"
        "#,
    );
    let provider = &config.providers[0];
    assert_eq!(provider.base_url, "http://localhost:11434/v1");
    assert!(provider.accounts.is_empty());
    let model = &config.models[0];
    assert_eq!(model.strategy, Strategy::Weighted);
    assert_eq!((model.max_attempts, model.timeout), (3, None));
    assert_eq!((model.routes[0].weight, model.routes[0].priority), (1, 0));
    let key = &config.keys[0];
    assert_eq!(key.key.expose(), "0123456789abcdef0123456789abcdef");
    assert!(key.models.is_none() && key.rpm.is_none() && key.tpm.is_none());
    assert!(key.budget_tokens.is_none() && key.budget_window.is_none() && key.expires_at.is_none());
}

#[test]
fn every_setting_is_read() {
    let config = parsed(
        r#"
        [[providers]]
        name = "a"
        kind = "openai"
        base_url = "https://a.example.com/v1/"
        accounts = [
          { name = "one", api_key = "k1", weight = 3 },
          { name = "two", api_key = "k2", rpm = 60 },
        ]

        [[providers]]
        name = "b"
        kind = "openai"
        base_url = "https://b.example.com"

        [[models]]
        name = "m"
        strategy = "least_busy"
        max_attempts = 10
        timeout = "1m 30s"
          [[models.routes]]
          provider = "a"
          model = "x"
          weight = 5
          [[models.routes]]
          provider = "b"
          model = "x"
          priority = 2
          [[models.routes]]
          provider = "a"
          model = "y"

        [[models]]
        name = "fast"
        strategy = "latency"
        max_attempts = 1
        routes = [{ provider = "b", model = "z" }]

        [[keys]]
        name = "k"
        key = "0123456789abcdef0123456789abcdef"
        models = []
        budget_tokens = 1
        budget_window = "daily"
        expires_at = 2030-06-01T12:00:00+02:00
        "#,
    );
    let [a, b] = config.providers.as_slice() else {
        panic!("two providers expected");
    };
    assert_eq!(
        (a.base_url.as_str(), b.base_url.as_str()),
        ("https://a.example.com/v1", "https://b.example.com")
    );
    let accounts: Vec<_> = a
        .accounts
        .iter()
        .map(|x| (x.name.as_str(), x.api_key.expose(), x.weight, x.rpm))
        .collect();
    assert_eq!(
        accounts,
        [("one", "k1", 3, None), ("two", "k2", 1, Some(60))]
    );

    let [m, fast] = config.models.as_slice() else {
        panic!("two models expected");
    };
    assert_eq!(
        (m.strategy, m.max_attempts, m.timeout),
        (Strategy::LeastBusy, 10, Some(Duration::from_secs(90)))
    );
    let routes: Vec<_> = m
        .routes
        .iter()
        .map(|r| (r.provider.as_str(), r.model.as_str(), r.weight, r.priority))
        .collect();
    assert_eq!(
        routes,
        [("a", "x", 5, 0), ("b", "x", 1, 2), ("a", "y", 1, 0)]
    );
    assert_eq!(
        (fast.strategy, fast.max_attempts, fast.routes.len()),
        (Strategy::Latency, 1, 1)
    );

    let key = &config.keys[0];
    assert_eq!(key.models, Some(Vec::new()));
    assert_eq!(
        (key.budget_tokens, key.budget_window),
        (Some(1), Some(BudgetWindow::Daily))
    );
    assert_eq!(
        key.expires_at.map(|t| t.to_rfc3339()),
        Some("2030-06-01T10:00:00+00:00".to_owned())
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    check(
        r#"
        [server]
        listen = "127.0.0.1:8080
        "#,
        r#"line 2, column 25: invalid basic string, expected `"`"#,
    );
    check(
        r#"
        [[models]]
        name = "a"
        routes = [1,,2]
        "#,
        "line 3, column 13: extra comma in array, expected value",
    );
    check(
        r#"
        [server]
        listen = "127.0.0.1:8080"
        listen = "127.0.0.1:9090"
        "#,
        "line 3, column 1: duplicate key `listen`",
    );
    check(
        r#"
        [server]
        [server]
        "#,
        "line 2, column 2: duplicate key `server`",
    );
    check(
        "[[providers]]\nkind = openai",
        "line 2, column 8: string values must be quoted, expected literal string",
    );
    check(
        "# é\nk = \"ü\" x",
        "line 2, column 9: unexpected key or value, expected newline, `#`",
    );
}

#[test]
fn type_errors_point_at_the_value() {
    check(
        r#"
        [[providers]]
        name = "openai"
        kind = 1
        base_url = ["https://api.openai.com/v1"]

          [[providers.accounts]]
          name = "a"
          api_key = true
          weight = "2"
          rpm = 1.5
        "#,
        r#"
        providers[0] "openai" .kind (line 3): expected a string, found an integer
        providers[0] "openai" .base_url (line 4): expected a string, found an array
        providers[0] "openai" .accounts[0] "a" .api_key (line 8): expected a string, found a boolean
        providers[0] "openai" .accounts[0] "a" .weight (line 9): expected an integer, found a string
        providers[0] "openai" .accounts[0] "a" .rpm (line 10): expected an integer, found a float
        "#,
    );
    check(
        r#"
        server = "127.0.0.1:8080"
        [providers]
        name = "openai"
        [models.gpt]
        [[keys]]
        name = 7
        key = "0123456789abcdef0123456789abcdef"
        models = "gpt-4o"
        expires_at = 2027-01-01
        "#,
        r#"
        server (line 1): expected a table, found a string
        providers (line 2): expected an array of tables ([[providers]]), found a table
        models (line 4): expected an array of tables ([[models]]), found a table
        keys[0].name (line 6): expected a string, found an integer
        keys[0].models (line 8): expected an array of strings, found a string
        keys[0].expires_at (line 9): "2027-01-01" is not an RFC 3339 time with a time zone; write it like 2027-01-01T00:00:00Z
        "#,
    );
    check(
        r#"
        providers = [1, "x"]
        models = [{ name = "m", routes = [{ provider = "p", model = 5 }, []] }]
        "#,
        r#"
        providers[0] (line 1): expected a table, found an integer
        providers[1] (line 1): expected a table, found a string
        models[0] "m" .routes[0].provider (line 2): unknown provider "p"; the file declares no providers
        models[0] "m" .routes[0].model (line 2): expected a string, found an integer
        models[0] "m" .routes[1] (line 2): expected a table, found an array
        "#,
    );
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    check(
        r#"
        verbose = true
        [server]
        port = 8080
        [[providers]]
        name = "openai"
        kind = "openai"
        bsae_url = "https://api.openai.com/v1"
          [[providers.accounts]]
          name = "a"
          api_key = "k"
          "rate limit" = 5
        [[models]]
        name = "m"
        fallback = "x"
          [[models.routes]]
          provider = "openai"
          model = "m"
          wieght = 2
        [[keys]]
        name = "k"
        key = "0123456789abcdef0123456789abcdef"
        budget = 5
        "#,
        r#"
        line 1: unknown key "verbose"; expected one of: server, providers, models, keys
        server (line 3): unknown key "port"; expected one of: listen, database, redis
        providers[0] "openai" (line 4): missing key "base_url"
        providers[0] "openai" (line 7): unknown key "bsae_url"; expected one of: name, kind, base_url, responses, accounts, headers, api_version, project, region
        providers[0] "openai" .accounts[0] "a" (line 11): unknown key "rate limit"; expected one of: name, api_key, service_account_json, aws_access_key_id, aws_secret_access_key, aws_session_token, weight, rpm
        models[0] "m" (line 14): unknown key "fallback"; expected one of: name, strategy, max_attempts, timeout, routes
        models[0] "m" .routes[0] (line 18): unknown key "wieght"; expected one of: provider, model, weight, priority, input_price, output_price, cached_input_price, cache_write_price, max_output_tokens, context_window
        keys[0] "k" (line 22): unknown key "budget"; expected one of: name, key, models, rpm, tpm, budget_tokens, budget_usd, budget_window, expires_at
        "#,
    );
}

#[test]
fn provider_rules() {
    check(
        r#"
        [[providers]]
        kind = "openai"
        base_url = "https://a.example.com"

        [[providers]]
        name = " "
        kind = "azura"
        base_url = "api.openai.com/v1"

        [[providers]]
        name = "dup"
        kind = "openai"
        base_url = "ftp://files.example.com"

        [[providers]]
        name = "dup"
        kind = "openai"
        base_url = "https://a.example.com/v1?key=1"

        [[providers]]
        name = "nokind"
        base_url = "http://"
        "#,
        r#"
        providers[0] (line 1): missing key "name"
        providers[1].name (line 6): must not be empty
        providers[1].kind (line 7): unknown provider kind "azura"; expected one of: openai, anthropic, gemini, azure, vertex, bedrock
        providers[1].base_url (line 8): "api.openai.com/v1" is not an absolute URL (relative URL without a base); write it like https://api.openai.com/v1
        providers[2] "dup" .base_url (line 13): "ftp://files.example.com" is not an http or https URL; write it like https://api.openai.com/v1
        providers[3] "dup" .name (line 16): duplicate provider name "dup"; the first is at line 11
        providers[3] "dup" .base_url (line 18): "https://a.example.com/v1?key=1" must not have a query or fragment: endpoint paths are appended to it
        providers[4] "nokind" (line 20): missing key "kind"
        providers[4] "nokind" .base_url (line 22): "http://" is not an absolute URL (empty host); write it like https://api.openai.com/v1
        "#,
    );
}

#[test]
fn responses_is_a_flag_of_openai_compatible_providers_only() {
    let config = parsed(
        r#"
        [[providers]]
        name = "openai"
        kind = "openai"
        base_url = "https://api.openai.com/v1"
        responses = true

        [[providers]]
        name = "vllm"
        kind = "openai"
        base_url = "http://localhost:8000/v1"
        responses = false

        [[providers]]
        name = "claude"
        kind = "anthropic"
        base_url = "https://api.anthropic.com/v1"
        "#,
    );
    let flags: Vec<bool> = config.providers.iter().map(|p| p.responses).collect();
    assert_eq!(flags, [true, false, false]);
    check(
        r#"
        [[providers]]
        name = "claude"
        kind = "anthropic"
        base_url = "https://api.anthropic.com/v1"
        responses = true

        [[providers]]
        name = "gem"
        kind = "gemini"
        base_url = "https://generativelanguage.googleapis.com/v1beta"
        responses = false

        [[providers]]
        name = "odd"
        kind = "openai"
        base_url = "https://api.openai.com/v1"
        responses = "yes"
        "#,
        r#"
        providers[0] "claude" .responses (line 5): 'responses = true' is only for OpenAI-compatible providers (kind openai): a provider of kind anthropic does not serve OpenAI's Responses API, and llmgate translates /v1/responses for it anyway; remove the setting
        providers[2] "odd" .responses (line 17): expected true or false, found a string
        "#,
    );
}

#[test]
fn account_rules() {
    check(
        r#"
        [[providers]]
        name = "p"
        kind = "openai"
        base_url = "https://a.example.com"
          [[providers.accounts]]
          name = "a"
          api_key = ""
          weight = 0
          rpm = -5
          [[providers.accounts]]
          name = "a"
          api_key = "k"
          weight = 4294967296
          rpm = 0
          [[providers.accounts]]
          api_key = "k"
          [[providers.accounts]]
          name = ""

        [[providers]]
        name = "q"
        kind = "openai"
        base_url = "https://b.example.com"
          [[providers.accounts]]
          name = "a"
          api_key = "k"
        "#,
        r#"
        providers[0] "p" .accounts[0] "a" .api_key (line 7): must not be empty
        providers[0] "p" .accounts[0] "a" .weight (line 8): must be at least 1
        providers[0] "p" .accounts[0] "a" .rpm (line 9): must be at least 1
        providers[0] "p" .accounts[1] "a" .name (line 11): duplicate account name "a"; the first is at line 6
        providers[0] "p" .accounts[1] "a" .weight (line 13): must be at most 4294967295
        providers[0] "p" .accounts[1] "a" .rpm (line 14): must be at least 1
        providers[0] "p" .accounts[2] (line 15): missing key "name"
        providers[0] "p" .accounts[3] (line 17): missing key "api_key"
        providers[0] "p" .accounts[3].name (line 18): must not be empty
        "#,
    );
}

const ONE_PROVIDER: &str = r#"
    [[providers]]
    name = "openai"
    kind = "openai"
    base_url = "https://api.openai.com/v1"
    [[providers]]
    name = "backup"
    kind = "openai"
    base_url = "https://backup.example.com/v1"
"#;

/// `ONE_PROVIDER` (lines 1 to 8) followed by `rest`, which starts at line 9.
fn with_providers(rest: &str) -> String {
    format!("{}\n{}", dedent(ONE_PROVIDER), dedent(rest))
}

#[test]
fn model_rules() {
    check(
        &with_providers(
            r#"
            [[models]]
            name = "a"
            strategy = "round_robin"
            max_attempts = 0
            timeout = "soon"
              [[models.routes]]
              provider = "openai"
              model = "a"

            [[models]]
            name = "a"
            max_attempts = 11
            timeout = "0s"
            routes = []

            [[models]]
            name = ""

            [[models]]
            name = "c"
            "#,
        ),
        r#"
        models[0] "a" .strategy (line 11): unknown strategy "round_robin"; expected one of: weighted, least_busy, latency
        models[0] "a" .max_attempts (line 12): must be at least 1
        models[0] "a" .timeout (line 13): 'soon' is not a duration (expected number at 0); write it like 250ms, 10s or 5m
        models[1] "a" (line 18): has no routes; add at least one [[models.routes]]
        models[1] "a" .name (line 19): duplicate model name "a"; the first is at line 10
        models[1] "a" .max_attempts (line 20): must be at most 10
        models[1] "a" .timeout (line 21): must be greater than zero
        models[2] (line 24): has no routes; add at least one [[models.routes]]
        models[2].name (line 25): must not be empty
        models[3] "c" (line 27): has no routes; add at least one [[models.routes]]
        "#,
    );
}

#[test]
fn route_rules() {
    check(
        &with_providers(
            r#"
            [[models]]
            name = "m"
              [[models.routes]]
              provider = "opnai"
              model = "x"
              [[models.routes]]
              provider = ""
              model = ""
              [[models.routes]]
              provider = "openai"
              model = "x"
              weight = 0
              priority = -1
              [[models.routes]]
              provider = "openai"
              model = "x"
              [[models.routes]]
              provider = "backup"
              model = "x"
              [[models.routes]]
              model = "y"
            "#,
        ),
        r#"
        models[0] "m" .routes[0].provider (line 12): unknown provider "opnai"; declared providers: openai, backup
        models[0] "m" .routes[1].provider (line 15): must not be empty
        models[0] "m" .routes[1].model (line 16): must not be empty
        models[0] "m" .routes[2].weight (line 20): must be at least 1
        models[0] "m" .routes[2].priority (line 21): must be at least 0
        models[0] "m" .routes[3] (line 22): another route of this model already goes to provider "openai", model "x" (line 17)
        models[0] "m" .routes[5] (line 28): missing key "provider"
        "#,
    );
    // The same target in two different models is fine, and so is a provider declared later.
    check(
        r#"
        [[models]]
        name = "a"
        routes = [{ provider = "late", model = "x" }]
        [[models]]
        name = "b"
        routes = [{ provider = "late", model = "x" }, { provider = "late", model = "y" }]
        [[providers]]
        name = "late"
        kind = "openai"
        base_url = "https://late.example.com"
        "#,
        "ok",
    );
}

#[test]
fn route_prices_and_limits_are_read_exactly_or_refused_where_written() {
    let config = parsed(&with_providers(
        r#"
        [[models]]
        name = "m"
          [[models.routes]]
          provider = "openai"
          model = "my-finetune"
          input_price = 0.15
          output_price = 2
          cached_input_price = 0.075
          cache_write_price = 0.1875
          max_output_tokens = 16_384
          context_window = 128_000
          [[models.routes]]
          provider = "backup"
          model = "gpt-4o"
        "#,
    ));
    let usd = |text: f64| crate::pricing::Price::from_usd(text).unwrap();
    let routes = &config.models[0].routes;
    assert_eq!(
        routes[0].overrides,
        crate::pricing::RouteOverrides {
            input: Some(usd(0.15)),
            output: Some(usd(2.0)),
            cached_input: Some(usd(0.075)),
            cache_write: Some(usd(0.1875)),
            max_output_tokens: Some(16_384),
            context_window: Some(128_000),
        }
    );
    assert_eq!(
        routes[1].overrides,
        crate::pricing::RouteOverrides::default(),
        "absent: the built-in catalog decides"
    );
    check(
        &with_providers(
            r#"
            [[models]]
            name = "m"
              [[models.routes]]
              provider = "openai"
              model = "x"
              input_price = -1
              output_price = "cheap"
              cached_input_price = 0.0000001
              max_output_tokens = 200_000
              context_window = 100_000
            "#,
        ),
        r#"
        models[0] "m" .routes[0].input_price (line 14): -1 is not a price (a non-negative number)
        models[0] "m" .routes[0].output_price (line 15): expected a number, found a string
        models[0] "m" .routes[0].cached_input_price (line 16): 0.0000001 has more than six decimal places
        models[0] "m" .routes[0].max_output_tokens (line 17): is larger than context_window (100000); the completion must fit in the window
        "#,
    );
}

#[test]
fn a_key_budget_in_usd_is_read_to_the_nano_dollar() {
    let config = parsed(
        r#"
        [[keys]]
        name = "team"
        key = "0123456789abcdef0123456789abcdef"
        budget_usd = 250.5
        budget_window = "monthly"
        [[keys]]
        name = "small"
        key = "0123456789abcdef0123456789abcdeg"
        budget_usd = 3
        "#,
    );
    assert_eq!(
        config.keys[0].budget_usd,
        Some(crate::pricing::Nanodollars(250_500_000_000))
    );
    assert_eq!(config.keys[0].budget_window, Some(BudgetWindow::Monthly));
    assert_eq!(
        config.keys[1].budget_usd,
        Some(crate::pricing::Nanodollars(3_000_000_000))
    );
    check(
        r#"
        [[keys]]
        name = "a"
        key = "0123456789abcdef0123456789abcdef"
        budget_usd = 0
        [[keys]]
        name = "b"
        key = "0123456789abcdef0123456789abcdeg"
        budget_usd = -5.0
        "#,
        r#"
        keys[0] "a" .budget_usd (line 4): must be more than 0; omit it for no spending budget
        keys[1] "b" .budget_usd (line 8): -5 is not an amount of USD (a non-negative number)
        "#,
    );
}

#[test]
fn key_rules() {
    check(
        r#"
        [[keys]]
        name = "a"
        key = "too-short"
        models = ["gpt-4o", "", "${EMPTY}"]
        rpm = 0
        tpm = 0
        budget_tokens = 0
        expires_at = "next year"

        [[keys]]
        name = "a"
        key = "0123456789abcdef0123456789abcdef"
        budget_window = "hourly"
        expires_at = 2027-01-01T00:00:00

        [[keys]]
        name = "b"
        key = "0123456789abcdef0123456789abcdef"
        budget_window = "weekly"

        [[keys]]
        key = "0123456789abcdef0123456789abcdef"
        [[keys]]
        name = "c"
        "#,
        r#"
        keys[0] "a" .key (line 3): must be at least 32 characters long; generate one with `openssl rand -base64 32`
        keys[0] "a" .models[1] (line 4): must not be empty
        keys[0] "a" .models[2] (line 4): must not be empty
        keys[0] "a" .rpm (line 5): must be at least 1
        keys[0] "a" .tpm (line 6): must be at least 1
        keys[0] "a" .budget_tokens (line 7): must be at least 1
        keys[0] "a" .expires_at (line 8): "next year" is not an RFC 3339 time with a time zone; write it like 2027-01-01T00:00:00Z
        keys[1] "a" .name (line 11): duplicate key name "a"; the first is at line 2
        keys[1] "a" .budget_window (line 13): unknown budget window "hourly"; expected one of: daily, weekly, monthly
        keys[1] "a" .expires_at (line 14): "2027-01-01T00:00:00" is not an RFC 3339 time with a time zone; write it like 2027-01-01T00:00:00Z
        keys[2] "b" .budget_window (line 19): needs budget_tokens or budget_usd: the window says when that budget resets
        keys[3] (line 21): missing key "name"
        keys[4] "c" (line 23): missing key "key"
        "#,
    );
    // A key of exactly 32 characters is long enough, counted in characters, not bytes.
    check(
        r#"
        [[keys]]
        name = "k"
        key = "ééééééééééééééééééééééééééééééé"
        "#,
        r#"keys[0] "k" .key (line 3): must be at least 32 characters long; generate one with `openssl rand -base64 32`"#,
    );
    check(
        r#"
        [[keys]]
        name = "k"
        key = "éééééééééééééééééééééééééééééééé"
        "#,
        "ok",
    );
}

#[test]
fn server_rules() {
    check(
        r#"
        [server]
        listen = "localhost:8080"
        database = ""
        "#,
        r#"
        server.listen (line 2): "localhost:8080" is not a socket address; write it like 127.0.0.1:8080
        server.database (line 3): must not be empty
        "#,
    );
    let config = parsed(
        r#"
        [server]
        listen = "[::1]:${PORT}"
        database = "sqlite://${HOST}.db"
        "#,
    );
    assert_eq!(config.server.listen, Some("[::1]:9090".parse().unwrap()));
    assert_eq!(
        config.server.database.as_deref(),
        Some("sqlite://api.example.com.db")
    );
}

#[test]
fn interpolation_applies_to_every_string() {
    let config = parsed(
        r#"
        [[providers]]
        name = "${MODEL}-upstream"
        kind = "openai"
        base_url = "https://${HOST}/v1/"
          [[providers.accounts]]
          name = "a"
          api_key = "Bearer ${OPENAI_API_KEY}-${MODEL}"
        [[models]]
        name = "${MODEL}"
        routes = [{ provider = "gpt-4o-mini-upstream", model = "${MODEL}" }]
        [[keys]]
        name = "ci"
        key = "${LLMGATE_CI_KEY}"
        models = ["${MODEL}", "plain", "cost $5 {not a reference}"]
        "#,
    );
    let provider = &config.providers[0];
    assert_eq!(provider.name, "gpt-4o-mini-upstream");
    assert_eq!(provider.base_url, "https://api.example.com/v1");
    assert_eq!(
        provider.accounts[0].api_key.expose(),
        format!("Bearer {OPENAI_KEY}-gpt-4o-mini")
    );
    assert_eq!(config.models[0].name, "gpt-4o-mini");
    assert_eq!(config.models[0].routes[0].model, "gpt-4o-mini");
    assert_eq!(
        config.keys[0].models,
        Some(vec![
            "gpt-4o-mini".to_owned(),
            "plain".to_owned(),
            "cost $5 {not a reference}".to_owned()
        ])
    );
}

#[test]
fn interpolation_problems_are_reported_where_they_occur() {
    check(
        r#"
        [server]
        database = "${DB_URL}"
        [[providers]]
        name = "p"
        kind = "openai"
        base_url = "https://${HOST}:${PROXY_PORT}/${API_VERSION}"
          [[providers.accounts]]
          name = "a"
          api_key = "${OPENAI_API_KEY"
        [[models]]
        name = "${MISSING_NAME}"
        max_attempts = "${ATTEMPTS}"
        routes = [{ provider = "p", model = "${}" }]
        [[keys]]
        name = "k"
        key = "${LLMGATE_CI_KEY}"
        models = ["ok", "${ALLOWED_MODEL}"]
        "#,
        r#"
        server.database (line 2): environment variable DB_URL is not set
        providers[0] "p" .base_url (line 6): environment variable PROXY_PORT is not set
        providers[0] "p" .base_url (line 6): environment variable API_VERSION is not set
        providers[0] "p" .accounts[0] "a" .api_key (line 9): unterminated "${"; a reference is written ${NAME}
        models[0].name (line 11): environment variable MISSING_NAME is not set
        models[0].max_attempts (line 12): expected an integer, found a string
        models[0].routes[0].model (line 13): invalid reference: a variable name is letters, digits and _, like ${API_KEY}
        keys[0] "k" .models[1] (line 17): environment variable ALLOWED_MODEL is not set
        "#,
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let input = with_providers(
        r#"
        [[models]]
        name = "m"
        max_attempts = 99
          [[models.routes]]
          provider = "nowhere"
          model = "x"

        [[keys]]
        name = "k"
        key = "short"
        "#,
    );
    // A problem in the provider section comes after one declared before it in the text.
    let input = format!("[server]\nlisten = \"nope\"\n{input}\n[[providers]]\nname = \"openai\"\n");
    check(
        &input,
        r#"
        server.listen (line 2): "nope" is not a socket address; write it like 127.0.0.1:8080
        models[0] "m" .max_attempts (line 13): must be at most 10
        models[0] "m" .routes[0].provider (line 15): unknown provider "nowhere"; declared providers: openai, backup
        keys[0] "k" .key (line 20): must be at least 32 characters long; generate one with `openssl rand -base64 32`
        providers[2] "openai" (line 22): missing key "kind"
        providers[2] "openai" (line 22): missing key "base_url"
        providers[2] "openai" .name (line 23): duplicate provider name "openai"; the first is at line 4
        "#,
    );
}

#[test]
fn secrets_never_appear_in_problems() {
    let secrets = ["sk-live-abcdefghijklmnop", "short-secret"];
    let input = r#"
        [[providers]]
        name = "p"
        kind = "nope"
        base_url = "https://a.example.com"
          [[providers.accounts]]
          name = "a"
          api_key = "sk-live-abcdefghijklmnop"
          api-key = "sk-live-abcdefghijklmnop"
          weight = 0
          [[providers.accounts]]
          name = "b"
          api_key = "sk-live-abcdefghijklmnop ${UNSET}"
          [[providers.accounts]]
          name = "c"
          api_key = "sk-live-abcdefghijklmnop ${"
        [[keys]]
        name = "k"
        key = "short-secret"
        [[keys]]
        name = "j"
        key = "short-secret${sk-live-abcdefghijklmnop}"
    "#;
    let output = render(input);
    assert!(output.lines().count() >= 7, "{output}");
    for secret in secrets {
        assert!(!output.contains(secret), "{secret} leaked:\n{output}");
    }
}

#[test]
fn config_error_lists_one_problem_per_line() {
    let error = ConfigError {
        file: "/etc/llmgate.toml".into(),
        problems: vec![
            ConfigProblem {
                location: "line 1, column 5".into(),
                message: "bad".into(),
            },
            ConfigProblem {
                location: "server.listen (line 2)".into(),
                message: "worse".into(),
            },
        ],
    };
    assert_eq!(
        error.to_string(),
        "/etc/llmgate.toml: line 1, column 5: bad\n/etc/llmgate.toml: server.listen (line 2): worse"
    );
}

#[test]
fn load_reads_the_file_or_reports_it_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let error = load(&missing).unwrap_err();
    assert_eq!(error.file, missing);
    assert_eq!(error.problems.len(), 1);
    assert_eq!(error.problems[0].location, "file");
    assert!(
        error.problems[0].message.starts_with("cannot be read: "),
        "{error}"
    );

    let path = dir.path().join("llmgate.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    assert_eq!(
        load(&path).unwrap().server.listen,
        Some("127.0.0.1:8080".parse().unwrap())
    );

    std::fs::write(&path, "[server]\nlisten = 8080\n").unwrap();
    assert_eq!(
        load(&path).unwrap_err().to_string(),
        format!(
            "{}: server.listen (line 2): expected a string, found an integer",
            path.display()
        )
    );
}

#[test]
fn names_follow_the_one_rule_for_names() {
    // TOML escapes keep the invisible characters visible in this file.
    check(
        r#"
        [[providers]]
        name = "\u200B"
        kind = "openai"
        base_url = "http://127.0.0.1:1/v1"
          [[providers.accounts]]
          name = "a\u202Eb"
          api_key = "k"

        [[models]]
        name = " padded "
          [[models.routes]]
          provider = "\u2066p\u2069"
          model = "x\ny"

        [[keys]]
        name = "\uFEFF\u200E"
        key = "0123456789abcdef0123456789abcdef"
        models = ["ok", "\u200D"]
        "#,
        r#"
        providers[0].name (line 2): must contain a visible character; this name is only invisible formatting characters (like U+200B ZERO WIDTH SPACE)
        providers[0].accounts[0].name (line 6): must not contain bidirectional override or isolate characters (found U+202E): they make a name display in another order than it is stored
        models[0] "padded" .routes[0].provider (line 12): must not contain bidirectional override or isolate characters (found U+2066): they make a name display in another order than it is stored
        models[0] "padded" .routes[0].model (line 13): must not contain control characters (found U+000A); use a single line of text
        keys[0].name (line 16): must contain a visible character; this name is only invisible formatting characters (like U+200B ZERO WIDTH SPACE)
        keys[0].models[1] (line 18): must contain a visible character; this name is only invisible formatting characters (like U+200B ZERO WIDTH SPACE)
        "#,
    );
}

#[test]
fn the_clouds_settings_are_read_and_checked() {
    let key_file = serde_json::json!({
        "client_email": "sa@p.iam.gserviceaccount.com",
        "private_key": include_str!("../../tests/fixtures/vertex-sa-TEST-ONLY.key.pem"),
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    let config = parsed(&format!(
        r#"
        [[providers]]
        name = "azure-east"
        kind = "azure"
        base_url = "https://my-resource.openai.azure.com/openai"
        api_version = "2024-10-21"
        headers = {{ "x-team" = "search" }}
          [[providers.accounts]]
          name = "k"
          api_key = "azure-key"

        [[providers]]
        name = "vertex"
        kind = "vertex"
        project = "my-project"
        region = "us-central1"
          [[providers.accounts]]
          name = "sa"
          service_account_json = '{key_file}'
        "#
    ));
    let azure = &config.providers[0];
    assert_eq!(azure.kind, ProviderKind::Azure);
    assert_eq!(azure.cloud.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(azure.cloud.headers, r#"{"x-team":"search"}"#);
    let vertex = &config.providers[1];
    assert_eq!(
        vertex.base_url,
        "https://us-central1-aiplatform.googleapis.com/v1"
    );
    assert_eq!(vertex.cloud.project.as_deref(), Some("my-project"));
    assert_eq!(vertex.accounts[0].api_key.expose(), key_file);

    let problems = render(
        r#"
        [[providers]]
        name = "a"
        kind = "azure"
        base_url = "https://r.openai.azure.com/openai"
        "#,
    );
    assert!(problems.contains("api_version"), "{problems}");
    let problems = render(
        r#"
        [[providers]]
        name = "h"
        kind = "openai"
        base_url = "https://api.openai.com/v1"
        headers = { "Authorization" = "Bearer x" }
        "#,
    );
    assert!(problems.contains("set by llmgate itself"), "{problems}");
    let problems = render(
        r#"
        [[providers]]
        name = "v"
        kind = "vertex"
        project = "p"
        region = "r"
          [[providers.accounts]]
          name = "sa"
          api_key = "k"
          service_account_json = '{"client_email": "x"}'
        "#,
    );
    assert!(problems.contains("not both"), "{problems}");
    let problems = render(
        r#"
        [[providers]]
        name = "v"
        kind = "vertex"
        project = "p"
        region = "r"
          [[providers.accounts]]
          name = "sa"
          service_account_json = '{"client_email": "x", "private_key": "not a key"}'
        "#,
    );
    assert!(problems.contains("not an RSA private key"), "{problems}");
    assert!(
        !problems.contains("not a key"),
        "the key is not echoed: {problems}"
    );
}

#[test]
fn a_bedrock_provider_takes_its_region_and_an_account_s_aws_keys_sealed_together() {
    let config = parsed(
        r#"
        [[providers]]
        name = "bedrock"
        kind = "bedrock"
        region = "eu-west-1"
          [[providers.accounts]]
          name = "aws"
          aws_access_key_id = "AKIDEXAMPLE"
          aws_secret_access_key = "secret/key+1"
          aws_session_token = "token"
        "#,
    );
    let bedrock = &config.providers[0];
    assert_eq!(bedrock.kind, ProviderKind::Bedrock);
    assert_eq!(
        bedrock.base_url,
        "https://bedrock-runtime.eu-west-1.amazonaws.com"
    );
    assert_eq!(bedrock.cloud.region.as_deref(), Some("eu-west-1"));
    let credential = bedrock.accounts[0].api_key.expose();
    assert_eq!(
        crate::providers::aws_access_key_id(credential).as_deref(),
        Some("AKIDEXAMPLE")
    );
    assert!(credential.contains("secret/key+1") && credential.contains("token"));

    for (account, says) in [
        ("aws_access_key_id = \"AKID\"", "aws_secret_access_key"),
        (
            "api_key = \"k\"\n          aws_access_key_id = \"AKID\"\n          aws_secret_access_key = \"s\"",
            "not both",
        ),
        (
            "aws_access_key_id = \"AKID\"\n          aws_secret_access_key = \"with space\"",
            "printable ASCII",
        ),
    ] {
        let problems = render(&format!(
            r#"
        [[providers]]
        name = "bedrock"
        kind = "bedrock"
        region = "us-east-1"
          [[providers.accounts]]
          name = "aws"
          {account}
        "#
        ));
        assert!(problems.contains(says), "{problems}");
        assert!(!problems.contains("with space"), "not echoed: {problems}");
    }
    let problems = render(
        r#"
        [[providers]]
        name = "bedrock"
        kind = "bedrock"
        "#,
    );
    assert!(problems.contains("needs region"), "{problems}");
}
