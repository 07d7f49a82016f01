//! Micro-benchmarks of the per-request work on the gateway's hot path: the client-key lookup on
//! a cache hit, the route and account pick, reading the request head and rewriting `model`, and
//! forwarding SSE frames through the relay's stream stack (without sockets).
//!
//! Run with `cargo bench --bench gateway`; `make bench` measures the whole process under load.
#![expect(clippy::unwrap_used, reason = "benchmark set-up fails loudly")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;

use llmgate::auth::{KeyCache, NewKey, create_key};
use llmgate::db::Db;
use llmgate::gateway::RequestHead;
use llmgate::routing::{
    Account, Catalog, EndpointUrls, Health, HealthPolicy, Model, Provider, Route, Tried,
};
use llmgate::secret::Secret;
use llmgate::usage::StreamUsage;
use llmgate::vocab::{ProviderKind, Strategy};

/// The request the load bench sends.
const SMALL_BODY: &[u8] = br#"{"model":"bench-model","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarise the benchmark in one short sentence, please."}],"temperature":0.2,"max_tokens":64}"#;

/// One content chunk of a streamed chat answer, as OpenAI sends it.
const FRAME: &[u8] = b"data: {\"id\":\"chatcmpl-ad27388a13935858\",\"object\":\"chat.completion.chunk\",\"created\":1795431462,\"model\":\"mock-a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn key_lookup(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (cache, plaintext) = rt.block_on(async {
        let db = Db::open(&url).await.unwrap();
        let (_, plaintext) = create_key(
            &db,
            NewKey {
                name: "bench".into(),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
        let cache = KeyCache::new(db);
        // The first lookup reads the database and fills the cache.
        cache.authenticate(&plaintext, 0).await.unwrap();
        (cache, plaintext)
    });
    c.bench_function("auth/key_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(cache.authenticate(black_box(&plaintext), 0).await.unwrap());
        });
    });
}

/// A model like the load bench's: two routes of weight 1 to one provider; `accounts` accounts.
fn model(health: &Health, accounts: i64, strategy: Strategy) -> Model {
    let provider = Arc::new(Provider {
        id: 1,
        name: "mock".into(),
        kind: ProviderKind::OpenAi,
        base_url: "http://127.0.0.1:9090/v1".into(),
        responses: false,
        accounts: (1..=accounts)
            .map(|id| Account {
                id,
                name: format!("a{id}"),
                api_key: Secret::new(format!("sk-upstream-{id}")),
                weight: 1,
                rpm: None,
                health: health.account(id, 0),
            })
            .collect(),
        urls: EndpointUrls::default(),
        options: Default::default(),
    });
    Model {
        id: 1,
        name: "bench-model".into(),
        strategy,
        max_attempts: 3,
        timeout: None,
        created_at: 0,
        routes: (1..=2)
            .map(|id| Route {
                id,
                provider: Arc::clone(&provider),
                upstream_model: format!("mock-{id}"),
                weight: 1,
                priority: 0,
                health: health.route(id),
                account_cooldowns: provider
                    .accounts
                    .iter()
                    .map(|account| health.model_cooldown(account.id, &format!("mock-{id}")))
                    .collect(),
                model_limits: llmgate::pricing::ModelLimits::UNKNOWN,
                terms: llmgate::pricing::RouteTerms::default(),
            })
            .collect(),
    }
}

fn route_pick(c: &mut Criterion) {
    let health = Health::new(HealthPolicy::default());
    let policy = *health.policy();
    let mut group = c.benchmark_group("routing");
    for (label, accounts, strategy) in [
        (
            "next_target/weighted_2routes_1account",
            1,
            Strategy::Weighted,
        ),
        (
            "next_target/weighted_2routes_4accounts",
            4,
            Strategy::Weighted,
        ),
        (
            "next_target/least_busy_2routes_1account",
            1,
            Strategy::LeastBusy,
        ),
        ("next_target/latency_2routes_1account", 1, Strategy::Latency),
    ] {
        let model = model(&health, accounts, strategy);
        group.bench_function(label, |b| {
            b.iter(|| {
                let tried = Tried::default();
                let now = health.now_ms();
                let target = model.next_target(now, &policy, &tried, None).unwrap();
                black_box(target.route.id);
            });
        });
    }
    // What a request does before the pick: find its model in the current snapshot.
    let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::new(vec![model(
        &health,
        1,
        Strategy::Weighted,
    )])));
    group.bench_function("catalog_lookup_and_pick", |b| {
        b.iter(|| {
            let snapshot = catalog.load();
            let model = snapshot.model(black_box("bench-model")).unwrap();
            let target = model
                .next_target(health.now_ms(), &policy, &Tried::default(), None)
                .unwrap();
            black_box(target.route.id);
        });
    });
    group.finish();
}

fn request_head(c: &mut Criterion) {
    // A longer conversation: about 6 KiB of messages after `model`.
    let mut long = String::from(r#"{"model":"bench-model","messages":["#);
    for i in 0..40 {
        if i > 0 {
            long.push(',');
        }
        long.push_str(&format!(
            r#"{{"role":"user","content":"Message number {i}: the quick brown fox jumps over the lazy dog, twice over, with \"quotes\" and ünïcödé."}}"#
        ));
    }
    long.push_str(r#"],"stream":true}"#);
    let long = long.into_bytes();

    let mut group = c.benchmark_group("request_head");
    for (label, body) in [("small", SMALL_BODY), ("6KiB", long.as_slice())] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("parse/{label}"), |b| {
            b.iter(|| {
                let head = RequestHead::parse(black_box(body)).unwrap();
                black_box((head.stream, head.model.len()));
            });
        });
        group.bench_function(format!("parse_and_rewrite_model/{label}"), |b| {
            b.iter(|| {
                let head = RequestHead::parse(black_box(body)).unwrap();
                black_box(head.rewrite_model(body, "mock-a"));
            });
        });
    }
    group.finish();
}

/// Frames per relayed stream in the SSE benchmarks.
const FRAMES: usize = 64;

/// A streamed upstream answer of `FRAMES` frames, one per chunk, as reqwest hands it over.
fn upstream_response() -> reqwest::Response {
    let chunks = (0..FRAMES).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(FRAME)));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    reqwest::Response::from(http::Response::new(body))
}

/// Forwards frames the way the relay does: upstream body stream, boxed, into an axum body read
/// by the server; optionally scanned for usage on the way (what usage accounting adds).
async fn relay(response: reqwest::Response, scan: bool) -> usize {
    let mut usage = scan.then(StreamUsage::filtering);
    let chunks = response.bytes_stream().boxed().map(move |chunk| {
        let chunk = chunk.unwrap();
        Ok::<_, std::convert::Infallible>(match usage.as_mut() {
            Some(usage) => usage.forward(chunk),
            None => chunk,
        })
    });
    let mut body = axum::body::Body::from_stream(chunks).into_data_stream();
    let mut bytes = 0;
    while let Some(chunk) = body.next().await {
        bytes += chunk.unwrap().len();
    }
    bytes
}

fn sse_frame(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("sse_frame");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for (label, scan) in [("relay", false), ("relay_with_usage_scan", true)] {
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_batched(
                upstream_response,
                |response| async move { black_box(relay(response, scan).await) },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = key_lookup, route_pick, request_head, sse_frame
}
criterion_main!(benches);
