//! The shipped catalog's validity, name matching, and cost arithmetic with hand-computed figures.

use super::*;

fn shipped() -> &'static Catalog {
    catalog().unwrap()
}

#[test]
fn the_shipped_catalog_parses_and_every_entry_is_sourced_and_sane() {
    let catalog = shipped();
    assert!(catalog.entries().len() >= 50, "{}", catalog.entries().len());
    for entry in catalog.entries() {
        let name = &entry.name;
        assert!(
            entry.source.starts_with("https://"),
            "{name}: {}",
            entry.source
        );
        assert!(
            entry.read_on >= chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
                && entry.read_on <= chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            "{name}: read on {}",
            entry.read_on
        );
        let prices = entry.prices;
        if let Some(cached) = prices.cached_input {
            assert!(cached <= prices.input, "{name}: cached above input");
        }
        if let Some(write) = prices.cache_write {
            assert!(write >= prices.input, "{name}: cache write below input");
        }
        assert!(entry.max_output_tokens <= entry.context_window, "{name}");
        if entry.max_output_tokens == 0 {
            assert_eq!(
                prices.output,
                Price(0),
                "{name}: an embedding model has no output"
            );
        } else {
            assert!(
                prices.output >= prices.input,
                "{name}: output cheaper than input"
            );
        }
        // Every name and alias finds its own entry, exactly.
        for known in std::iter::once(name).chain(&entry.aliases) {
            let found = catalog.lookup(known).unwrap();
            assert_eq!(found.entry.name, *name);
            assert!(found.exact);
        }
        // Only Anthropic publishes a separate cache-write price.
        assert_eq!(
            prices.cache_write.is_some(),
            entry.provider == "anthropic",
            "{name}"
        );
    }
}

#[test]
fn the_shipped_catalog_holds_the_well_known_models() {
    let required = [
        ("gpt-5", "openai"),
        ("gpt-5-mini", "openai"),
        ("gpt-5-nano", "openai"),
        ("gpt-4.1", "openai"),
        ("gpt-4.1-mini", "openai"),
        ("gpt-4.1-nano", "openai"),
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("o1", "openai"),
        ("o3", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini", "openai"),
        ("gpt-5-codex", "openai"),
        ("text-embedding-3-small", "openai"),
        ("text-embedding-3-large", "openai"),
        ("text-embedding-ada-002", "openai"),
        ("claude-opus-4-5", "anthropic"),
        ("claude-sonnet-4-5", "anthropic"),
        ("claude-haiku-4-5", "anthropic"),
        ("claude-3-5-haiku", "anthropic"),
        ("gemini-2.5-pro", "gemini"),
        ("gemini-2.5-flash", "gemini"),
        ("gemini-2.5-flash-lite", "gemini"),
        ("gemini-2.0-flash", "gemini"),
        ("gpt-oss-120b", "groq"),
    ];
    for (name, provider) in required {
        let found = lookup(name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(found.entry.provider, provider, "{name}");
    }
    // The figures the issue itself relies on: gpt-4o's output limit and no reasoning.
    let gpt_4o = lookup("gpt-4o").unwrap().entry;
    assert_eq!(gpt_4o.max_output_tokens, 16_384);
    assert!(!gpt_4o.capabilities.reasoning);
    assert_eq!(gpt_4o.prices.input, Price(2_500_000));
    // Tiered prices record the base tier and say so.
    let pro = lookup("gemini-2.5-pro").unwrap().entry;
    assert_eq!(pro.prices.input, Price(1_250_000));
    assert!(pro.note.as_deref().unwrap().contains("200k"));
}

/// Looks `name` up in the shipped catalog: `expected` is the entry's name, with `~` in front
/// when the match is a snapshot or version rather than exact, or `-` for no match.
fn check(name: &str, expected: &str) {
    let got = match lookup(name) {
        None => "-".to_owned(),
        Some(found) if found.exact => found.entry.name.clone(),
        Some(found) => format!("~{}", found.entry.name),
    };
    assert_eq!(got, expected, "lookup({name:?})");
}

#[test]
fn exact_names_match_in_any_case_and_behind_a_vendor_prefix() {
    check("gpt-4o", "gpt-4o");
    check("GPT-4o", "gpt-4o");
    check("openai/gpt-4o", "gpt-4o");
    check("models/gemini-2.5-pro", "gemini-2.5-pro");
    check("openai/gpt-oss-120b", "gpt-oss-120b");
    check("accounts/fireworks/models/gpt-oss-20b", "gpt-oss-20b");
    check(" gpt-4o-mini ", "gpt-4o-mini");
    check("claude-opus-4-0", "claude-opus-4");
    check("claude-sonnet-4-0", "claude-sonnet-4");
    check("gpt-5.1-codex-max", "gpt-5.1-codex-max");
    check("gemini-3-flash-preview", "gemini-3-flash-preview");
}

#[test]
fn dated_snapshots_fall_back_to_their_family() {
    check("gpt-4o-2024-08-06", "~gpt-4o");
    check("gpt-4o-2024-05-13", "~gpt-4o");
    check("openai/GPT-4o-2024-11-20", "~gpt-4o");
    check("gpt-4o-mini-2024-07-18", "~gpt-4o-mini");
    check("gpt-4.1-nano-2025-04-14", "~gpt-4.1-nano");
    check("gpt-5-2025-08-07", "~gpt-5");
    check("gpt-5-mini-2025-08-07", "~gpt-5-mini");
    check("gpt-5.4-mini-2026-03-17", "~gpt-5.4-mini");
    check("o3-2025-04-16", "~o3");
    check("o3-mini-2025-01-31", "~o3-mini");
    check("claude-sonnet-4-5-20250929", "~claude-sonnet-4-5");
    check("claude-sonnet-4-20250514", "~claude-sonnet-4");
    check("claude-opus-4-20250514", "~claude-opus-4");
    check("claude-haiku-4-5-20251001", "~claude-haiku-4-5");
    check("claude-3-5-haiku-20241022", "~claude-3-5-haiku");
    check("claude-3-5-haiku-latest", "~claude-3-5-haiku");
    check("gemini-2.5-flash-preview-05-20", "~gemini-2.5-flash");
    check(
        "gemini-2.5-flash-lite-preview-06-17",
        "~gemini-2.5-flash-lite",
    );
    check("models/gemini-2.5-pro-preview-06-05", "~gemini-2.5-pro");
    check("gemini-2.0-flash-001", "~gemini-2.0-flash");
    check("gemini-2.0-flash-exp-0827", "~gemini-2.0-flash");
}

#[test]
fn a_different_model_is_never_taken_for_a_known_one() {
    // A sibling whose name extends a known one with a word or a bare digit.
    check("gpt-4o-audio-preview", "-");
    check("gpt-4o-mini-audio-preview-2024-12-17", "-");
    check("gpt-4o-search-preview-2025-03-11", "-");
    check("gpt-5-chat-latest", "-");
    check("gpt-5.1-chat-latest", "-");
    check("gpt-4.1-turbo", "-");
    check("claude-opus-4-9", "-");
    check("claude-sonnet-4-7-20260101", "-");
    check("gemini-2.0-flash-lite", "-");
    check("gemini-2.5-pro-preview", "-");
    check("o1-preview", "-");
    check("o1-mini", "-");
    check("o3-deep-research", "-");
    // Unknown families, prefixes and junk.
    check("gpt-4", "-");
    check("gpt", "-");
    check("llama-3.3-70b-versatile", "-");
    check("meta-llama/llama-4-scout", "-");
    check("", "-");
    check("-", "-");
    check("gpt-4o-", "-");
    check("gpt-4o--2024-08-06", "-");
    check("gpt-4o-2024-8-6", "-");
    check("gpt-4o-123456789", "-");
    check("openai/", "-");
}

#[test]
fn version_suffixes_are_dates_snapshots_or_latest() {
    for yes in [
        "2024-08-06",
        "20250929",
        "0613",
        "001",
        "latest",
        "preview-05-20",
        "exp-0827",
        "preview-2025-03-11",
    ] {
        assert!(is_version_suffix(yes), "{yes}");
    }
    for no in [
        "",
        "5",
        "10",
        "mini",
        "preview",
        "exp",
        "audio-preview",
        "2024-08",
        "20250929-mini",
        "v2",
        "12345",
    ] {
        assert!(!is_version_suffix(no), "{no}");
    }
}

#[test]
fn prices_are_read_exactly_and_shown_as_written() {
    let cases = [
        (2.5, 2_500_000, "2.50"),
        (0.0375, 37_500, "0.0375"),
        (0.075, 75_000, "0.075"),
        (0.1, 100_000, "0.10"),
        (0.0, 0, "0.00"),
        (120.0, 120_000_000, "120.00"),
        (0.000001, 1, "0.000001"),
    ];
    for (usd, micros, shown) in cases {
        let price = Price::from_usd(usd).unwrap();
        assert_eq!(price, Price(micros), "{usd}");
        assert_eq!(price.to_string(), shown);
    }
    assert!(Price::from_usd(-0.01).is_err());
    assert!(Price::from_usd(0.0000001).is_err());
    assert!(Price::from_usd(f64::NAN).is_err());
    assert!(Price::from_usd(f64::INFINITY).is_err());
}

const ONE: &str = r#"
[[model]]
name = "m"
provider = "p"
input = 1.0
cached_input = 0.5
output = 2.0
context_window = 1000
max_output_tokens = 100
capabilities = ["tools"]
source = "https://example.com/pricing"
read_on = "2026-12-07"
"#;

#[test]
fn a_bad_catalog_is_refused_with_the_entry_and_field() {
    assert!(Catalog::parse(ONE).is_ok());
    let cases = [
        (
            "cached_input = 0.5",
            "cached_input = 1.5",
            "cached_input is dearer",
        ),
        ("input = 1.0", "input = -1.0", "input"),
        ("input = 1.0", "input = 1.00000001", "six decimal places"),
        (
            "source = \"https://example.com/pricing\"",
            "source = \"\"",
            "source",
        ),
        ("read_on = \"2026-12-07\"", "read_on = \"today\"", "read_on"),
        ("read_on = \"2026-12-07\"", "", "read_on"),
        ("[\"tools\"]", "[\"telepathy\"]", "telepathy"),
        (
            "max_output_tokens = 100",
            "max_output_tokens = 5000",
            "max_output_tokens",
        ),
        ("name = \"m\"", "name = \"Vendor/M\"", "lower case"),
        (
            "output = 2.0",
            "output = 2.0\nprice_per_call = 1",
            "price_per_call",
        ),
        (
            "cached_input = 0.5",
            "cached_input = 0.5\ncache_write = 0.9",
            "cache_write is cheaper",
        ),
    ];
    for (from, to, says) in cases {
        let text = ONE.replace(from, to);
        let error = Catalog::parse(&text).unwrap_err().to_string();
        assert!(error.contains(says), "{to}: {error}");
    }
    let twice = format!("{ONE}{ONE}");
    assert!(
        Catalog::parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("'m' is listed twice")
    );
    let alias_clash = format!(
        "{ONE}{}",
        ONE.replace("name = \"m\"", "name = \"n\"\naliases = [\"m\"]")
    );
    assert!(Catalog::parse(&alias_clash).is_err());
}

fn prices_of(name: &str) -> Prices {
    lookup(name).unwrap().entry.prices
}

#[test]
fn cost_charges_each_kind_of_token_at_its_price() {
    // gpt-4o: 600 fresh × $2.50/M + 400 cached × $1.25/M + 200 output × $10/M
    //   = $0.0015 + $0.0005 + $0.002 = $0.004.
    let tokens = BilledTokens {
        prompt_tokens: 1_000,
        cached_tokens: 400,
        cache_write_tokens: 0,
        completion_tokens: 200,
    };
    assert_eq!(
        cost_usd(&prices_of("gpt-4o"), tokens),
        Nanodollars(4_000_000)
    );

    // claude-sonnet-4-5: a 10,000-token prompt of which 6,000 read from the cache and 2,000
    // written to it, 500 output tokens (thinking included):
    //   2,000 × $3/M + 6,000 × $0.30/M + 2,000 × $3.75/M + 500 × $15/M
    //   = $0.006 + $0.0018 + $0.0075 + $0.0075 = $0.0228.
    let tokens = BilledTokens {
        prompt_tokens: 10_000,
        cached_tokens: 6_000,
        cache_write_tokens: 2_000,
        completion_tokens: 500,
    };
    let cost = cost_usd(&prices_of("claude-sonnet-4-5-20250929"), tokens);
    assert_eq!(cost, Nanodollars(22_800_000));
    assert!((cost.usd() - 0.0228).abs() < 1e-12);

    // gpt-5-mini, reasoning-heavy: 1,200 prompt, 3,000 completion of which most reasoning:
    //   1,200 × $0.25/M + 3,000 × $2/M = $0.0003 + $0.006 = $0.0063.
    let tokens = BilledTokens {
        prompt_tokens: 1_200,
        completion_tokens: 3_000,
        ..BilledTokens::default()
    };
    assert_eq!(
        cost_usd(&prices_of("gpt-5-mini"), tokens),
        Nanodollars(6_300_000)
    );

    // An embedding: 8,000 input tokens × $0.02/M = $0.00016.
    let tokens = BilledTokens {
        prompt_tokens: 8_000,
        ..BilledTokens::default()
    };
    let cost = cost_usd(&prices_of("text-embedding-3-small"), tokens);
    assert_eq!(cost, Nanodollars(160_000));
}

#[test]
fn tokens_without_a_published_price_are_charged_as_input() {
    // o3-pro publishes no cached price: 100 cached tokens × $20/M = $0.002.
    let tokens = BilledTokens {
        prompt_tokens: 100,
        cached_tokens: 100,
        ..BilledTokens::default()
    };
    assert_eq!(
        cost_usd(&prices_of("o3-pro"), tokens),
        Nanodollars(2_000_000)
    );
    // OpenAI charges no cache write: 100 written tokens on gpt-4o are plain input, $0.00025.
    let tokens = BilledTokens {
        prompt_tokens: 100,
        cache_write_tokens: 100,
        ..BilledTokens::default()
    };
    assert_eq!(cost_usd(&prices_of("gpt-4o"), tokens), Nanodollars(250_000));
}

#[test]
fn cost_rounds_once_half_up_and_sums_without_drift() {
    // gpt-oss-20b's cached price is $0.0375/M: one cached token is 37.5 nano-dollars.
    let prices = prices_of("gpt-oss-20b");
    let one = |count| BilledTokens {
        prompt_tokens: count,
        cached_tokens: count,
        ..BilledTokens::default()
    };
    assert_eq!(cost_usd(&prices, one(1)), Nanodollars(38));
    assert_eq!(cost_usd(&prices, one(2)), Nanodollars(75));
    assert_eq!(cost_usd(&prices, one(3)), Nanodollars(113));
    // A million one-token requests on gpt-4o-mini ($0.15/M) add up to exactly $0.15.
    let single = cost_usd(
        &prices_of("gpt-4o-mini"),
        BilledTokens {
            prompt_tokens: 1,
            ..BilledTokens::default()
        },
    );
    let total = (0..1_000_000).fold(Nanodollars::default(), |sum, _| sum.saturating_add(single));
    assert_eq!(total, Nanodollars(150_000_000));
}

#[test]
fn inconsistent_or_huge_counts_are_clamped_never_negative_or_overflowing() {
    let prices = prices_of("claude-opus-4-5");
    // More cached than prompt tokens: the whole prompt is cached, nothing more.
    let tokens = BilledTokens {
        prompt_tokens: 100,
        cached_tokens: 500,
        cache_write_tokens: 50,
        completion_tokens: 0,
    };
    // 100 × $0.50/M = $0.00005.
    assert_eq!(cost_usd(&prices, tokens), Nanodollars(50_000));
    let huge = BilledTokens {
        prompt_tokens: u64::MAX,
        cached_tokens: 0,
        cache_write_tokens: 0,
        completion_tokens: u64::MAX,
    };
    assert_eq!(cost_usd(&prices, huge), Nanodollars(u64::MAX));
    assert_eq!(cost_usd(&prices, BilledTokens::default()), Nanodollars(0));
}

#[test]
fn model_limits_come_from_the_catalog_and_are_never_guessed() {
    let gpt_4o = ModelLimits::of("gpt-4o-2024-08-06");
    assert_eq!(
        gpt_4o,
        ModelLimits {
            max_output_tokens: Some(16_384),
            reasoning: Some(false),
        }
    );
    assert_eq!(gpt_4o.output_cap(32_000), 16_384);
    assert_eq!(gpt_4o.output_cap(100), 100);
    assert!(gpt_4o.lowers(16_385) && !gpt_4o.lowers(16_384));
    assert!(!gpt_4o.takes_reasoning());
    assert!(ModelLimits::of("claude-sonnet-4-5-20250929").takes_reasoning());
    // An unknown model is never shaped; an embedding model's 0 is no cap.
    let unknown = ModelLimits::of("my-finetune");
    assert_eq!(unknown, ModelLimits::UNKNOWN);
    assert_eq!(unknown.output_cap(1_000_000), 1_000_000);
    assert!(unknown.takes_reasoning());
    assert_eq!(
        ModelLimits::of("text-embedding-3-small").max_output_tokens,
        None
    );
}

#[test]
fn a_route_takes_each_figure_from_its_override_else_the_catalog_else_none() {
    let usd = |text: f64| Price::from_usd(text).unwrap();
    // Known model, no override: the catalog's figures (a dated snapshot falls back).
    let terms = RouteTerms::resolve("gpt-4o-2024-08-06", &RouteOverrides::default());
    assert_eq!(terms.prices, Some(prices_of("gpt-4o")));
    assert_eq!(terms.max_output_tokens, Some(16_384));
    assert_eq!(terms.context_window, Some(128_000));
    // Known model, some figures overridden: those win, the rest stay the catalog's.
    let overrides = RouteOverrides {
        input: Some(usd(2.0)),
        max_output_tokens: Some(4096),
        ..RouteOverrides::default()
    };
    let terms = RouteTerms::resolve("gpt-4o", &overrides);
    let prices = terms.prices.unwrap();
    assert_eq!(prices.input, usd(2.0));
    assert_eq!(prices.output, usd(10.0));
    assert_eq!(prices.cached_input, Some(usd(1.25)));
    assert_eq!(terms.max_output_tokens, Some(4096));
    assert_eq!(terms.context_window, Some(128_000));
    // Unknown model: priced only by its overrides, and only when both main prices are given.
    let unknown = "my-finetune-7b";
    assert_eq!(
        RouteTerms::resolve(unknown, &RouteOverrides::default()),
        RouteTerms::default()
    );
    let half = RouteOverrides {
        input: Some(usd(1.0)),
        ..RouteOverrides::default()
    };
    assert_eq!(RouteTerms::resolve(unknown, &half).prices, None);
    let full = RouteOverrides {
        output: Some(usd(3.0)),
        ..half
    };
    assert_eq!(
        RouteTerms::resolve(unknown, &full).prices,
        Some(Prices {
            input: usd(1.0),
            cached_input: None,
            cache_write: None,
            output: usd(3.0),
        })
    );
}

#[test]
fn the_worst_case_charges_the_prompt_at_its_dearest_price_and_the_whole_cap() {
    // claude-sonnet-4-5: input 3.00, cache write 3.75, output 15.00 USD per million tokens.
    let terms = RouteTerms::resolve("claude-sonnet-4-5", &RouteOverrides::default());
    // 1000 × 3.75 + 2000 × 15 = 33 750 micro-dollars per million → 0.03375 USD.
    assert_eq!(terms.worst_case(1000, 2000), Nanodollars(33_750_000));
    // gpt-4o has no cache-write price: the prompt at 2.50, 100 × 2.5 + 10 × 10 = 350 μ$/M.
    let terms = RouteTerms::resolve("gpt-4o", &RouteOverrides::default());
    assert_eq!(terms.worst_case(100, 10), Nanodollars(350_000));
    assert_eq!(
        RouteTerms::default().worst_case(1_000_000, 1_000_000),
        Nanodollars(0),
        "an unpriced route costs nothing"
    );
}

#[test]
fn a_bedrock_model_id_is_read_as_the_model_it_names() {
    let catalog = shipped();
    for id in [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "global.anthropic.claude-3-5-haiku-20241022-v1:0",
    ] {
        let found = catalog.lookup(id).unwrap_or_else(|| panic!("{id}"));
        assert_eq!(found.entry.name, "claude-3-5-haiku", "{id}");
    }
    assert_eq!(
        catalog
            .lookup("anthropic.claude-sonnet-4-5-20250929-v1:0")
            .map(|found| found.entry.name.as_str()),
        Some("claude-sonnet-4-5")
    );
    // Not a Bedrock id: a vendor the lookup does not know, or no vendor at all.
    assert!(
        catalog
            .lookup("example.claude-3-5-haiku-20241022-v1:0")
            .is_none()
    );
    assert_eq!(bedrock_model("gpt-4.1"), None);
    assert_eq!(
        bedrock_model("meta.llama3-8b-instruct-v1:0"),
        Some("llama3-8b-instruct")
    );
}
