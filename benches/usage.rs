//! Micro-benchmarks of the per-request costs of usage accounting and limits: recording an
//! event, reading usage from a body, scanning one SSE frame, admitting and settling a request.
//!
//! Run with `cargo bench --bench usage`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

use llmgate::auth::ClientKey;
use llmgate::db::Db;
use llmgate::limits::{Limits, estimate_request_tokens};
use llmgate::usage::{self, StreamUsage, Usage, UsageEvent, UsageRecorder, UsageWriter};

const BODY: &[u8] = br#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"The image shows a wooden boardwalk path running through a lush green field or meadow.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;

const USAGE_CHUNK: &[u8] = br#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

const FRAME: &[u8] = b"data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";

fn event(i: u64) -> UsageEvent {
    UsageEvent {
        at_ms: usage::now_ms(),
        request_id: format!("01JNZ3{i:020}"),
        key_id: 1 + (i % 8) as i64,
        model: "gpt-4o-mini".into(),
        model_configured: true,
        endpoint: "chat_completions",
        stream: true,
        provider: Some("openai".into()),
        route_id: Some(1),
        account_id: Some(1 + (i % 3) as i64),
        status: 200,
        attempts: 1,
        latency_ms: 120,
        ttfb_ms: Some(30),
        usage: Usage {
            prompt_tokens: 9,
            completion_tokens: 12,
            total_tokens: 21,
            ..Usage::default()
        },
        cost: llmgate::pricing::Nanodollars(9_000),
    }
}

fn record(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let db = runtime
        .block_on(Db::open("sqlite::memory:"))
        .unwrap_or_else(|e| panic!("database: {e}"));
    let recorder = UsageRecorder::new(usage::DEFAULT_QUEUE);
    let writer = UsageWriter::new(&recorder, db);
    c.bench_function("UsageRecorder::record", |b| {
        b.iter_custom(|iters| {
            // Events are built and flushes run outside the timed part, as in the gateway,
            // where the writer task flushes on its own.
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let batch = (iters - done).min(10_000);
                let events: Vec<UsageEvent> = (0..batch).map(event).collect();
                let start = Instant::now();
                for e in events {
                    recorder.record(e);
                }
                total += start.elapsed();
                done += batch;
                runtime
                    .block_on(writer.flush_now())
                    .unwrap_or_else(|e| panic!("flush: {e}"));
            }
            total
        });
    });
    assert_eq!(recorder.dropped_rows(), 0);
}

fn extract(c: &mut Criterion) {
    c.bench_function("usage::from_body (chat completion)", |b| {
        b.iter(|| usage::from_body(black_box(BODY)));
    });
    c.bench_function("usage::from_body (final usage chunk)", |b| {
        b.iter(|| usage::from_body(black_box(USAGE_CHUNK)));
    });
    c.bench_function("StreamUsage::forward (one content frame, filtering)", |b| {
        let mut scanner = StreamUsage::filtering();
        let frame = Bytes::from_static(FRAME);
        b.iter(|| scanner.forward(black_box(frame.clone())));
    });
    c.bench_function("StreamUsage::observe (one content frame)", |b| {
        let mut scanner = StreamUsage::new();
        b.iter(|| scanner.observe(black_box(FRAME)));
    });
}

fn limits(c: &mut Criterion) {
    let limits = Limits::new();
    let key = ClientKey {
        id: 1,
        name: "bench".into(),
        models: None,
        rpm: Some(u32::MAX),
        tpm: Some(u32::MAX),
        budget_tokens: Some(u64::MAX / 2),
        budget_usd: None,
        budget_window: None,
        expires_at: None,
    };
    c.bench_function("limits::estimate_request_tokens", |b| {
        let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the world in five languages."}],"max_tokens":256,"stream":true}"#;
        b.iter(|| estimate_request_tokens(black_box(body)));
    });
    c.bench_function("Limits::admit + settle (rpm, tpm, budget)", |b| {
        b.iter(|| {
            if let Ok(admission) = limits.admit(black_box(&key), 300) {
                admission.settle(black_box(21));
            }
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = record, extract, limits
}
criterion_main!(benches);
