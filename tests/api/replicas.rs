//! Two llmgate replicas on one database sharing one real Redis (`LLMGATE_REDIS_URL`): rate
//! limits, budgets, cooldowns and change notifications hold across both; with Redis down they
//! keep serving on per-process limits, say so, and share again once it is back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use llmgate::secret::Secret;
use serde_json::{Value, json};

use crate::helpers::{
    RedisServer, Serve, TestApp, TestOptions, chat_body, chat_status, eventually, revoke_key_named,
    spawn_with,
};

/// A second provider with two accounts and a model routed to it, for cooldowns (also the
/// cluster test's).
pub const POOL: &str = r#"
[[providers]]
name = "pool"
kind = "openai"
base_url = "{mock}"
  [[providers.accounts]]
  name = "p1"
  api_key = "sk-pool-account-one-0001"
  [[providers.accounts]]
  name = "p2"
  api_key = "sk-pool-account-two-0002"

[[models]]
name = "pooled"
  [[models.routes]]
  provider = "pool"
  model = "pool-model"

[[models]]
name = "priced"
  [[models.routes]]
  provider = "mock"
  model = "priced-model"
  input_price = 100
  output_price = 100
  max_output_tokens = 64
"#;

pub const POOL_ONE: &str = "sk-pool-account-one-0001";

/// Two replicas on one SQLite file and one Redis, both routing to the first one's mock.
struct Replicas {
    redis: RedisServer,
    a: TestApp,
    b: TestApp,
}

async fn replicas(keys: &str, change_poll: Duration) -> Replicas {
    let redis = RedisServer::start();
    let options = || {
        let mut options = TestOptions {
            extra_config: format!("{POOL}\n{keys}"),
            ..TestOptions::default()
        };
        options.settings.redis_url = Some(Secret::new(redis.url()));
        options.settings.change_poll_interval = change_poll;
        options.settings.admin_password = Some(Secret::new("replicas-admin-password"));
        options
    };
    let a = spawn_with(options()).await;
    let b = spawn_with(TestOptions {
        database_url: Some(a.db_url.clone()),
        upstream_base_url: Some(a.mock.base_url()),
        ..options()
    })
    .await;
    Replicas { redis, a, b }
}

fn key_config(name: &str, key: &str, limits: &str) -> String {
    format!("[[keys]]\nname = \"{name}\"\nkey = \"{key}\"\n{limits}\n")
}

/// Sends `body` as `key` through `app`; the status.
async fn send(app: &TestApp, key: &str, body: &Value) -> u16 {
    chat_status(&app.client, &app.url("/v1/chat/completions"), key, body).await
}

/// Sends `count` requests alternating between the replicas; how many each accepted.
async fn alternate(r: &Replicas, key: &str, body: &Value, count: usize) -> (usize, usize) {
    let (mut a, mut b) = (0, 0);
    for i in 0..count {
        let (app, accepted) = if i % 2 == 0 {
            (&r.a, &mut a)
        } else {
            (&r.b, &mut b)
        };
        let status = send(app, key, body).await;
        assert!(status == 200 || status == 429, "status {status}");
        if status == 200 {
            *accepted += 1;
        }
    }
    (a, b)
}

async fn stop(r: Replicas) {
    r.a.stop().await;
    r.b.stop().await;
    drop(r.redis);
}

const RPM_KEY: &str = "sk-replicas-rpm-key-0000000000000001";

#[tokio::test]
async fn an_rpm_limit_holds_across_replicas() {
    let r = replicas(
        &key_config("rpm", RPM_KEY, "rpm = 6"),
        Duration::from_millis(100),
    )
    .await;
    let (a, b) = alternate(&r, RPM_KEY, &chat_body("gpt-test", "hi"), 16).await;
    // Per process, each replica would accept 6: 12 in all.
    assert_eq!(a + b, 6, "accepted {a} + {b}");
    assert!(a > 0 && b > 0, "both replicas served: {a} + {b}");
    stop(r).await;
}

/// The key's spend across both replicas, from the rollups: (tokens, nano-dollars).
async fn spent(r: &Replicas, name: &str) -> (i64, i64) {
    r.a.flush_usage().await;
    r.b.flush_usage().await;
    let rows =
        r.a.db
            .usage_totals(&llmgate::db::UsageQuery {
                from: None,
                to: None,
                group_by: vec![llmgate::db::UsageGroup::Key],
            })
            .await
            .unwrap();
    let row = rows
        .iter()
        .find(|row| row.key_name.as_deref() == Some(name))
        .expect("the key has usage");
    (
        row.counts.prompt_tokens + row.counts.completion_tokens,
        row.counts.cost_nanos,
    )
}

/// Which of a key's budgets a test spends.
#[derive(Clone, Copy)]
enum Unit {
    Tokens,
    Nanodollars,
}

/// Spends a budget of `budget` (in `unit`, declared by `limit` in the key's config) through
/// both replicas in turn, `count` requests for `model`, and checks that together they spent
/// it without passing it: every request reserves more than it uses, so the budget is never
/// passed, while per process each replica would spend the whole budget on its own.
async fn budget_is_shared(unit: Unit, limit: &str, budget: i64, model: &str, count: usize) {
    let key = "sk-replicas-budget-key-000000000001";
    let r = replicas(
        &key_config("budgeted", key, limit),
        Duration::from_millis(100),
    )
    .await;
    let mut body = chat_body(model, "hi");
    body["max_tokens"] = json!(16);
    let (a, b) = alternate(&r, key, &body, count).await;
    assert!(a > 0 && b > 0, "both replicas served: {a} + {b}");
    let (tokens, cost) = spent(&r, "budgeted").await;
    let spent = match unit {
        Unit::Tokens => tokens,
        Unit::Nanodollars => cost,
    };
    assert!(
        spent <= budget && spent > budget / 2,
        "spent {spent} of {budget} over {a} + {b} requests"
    );
    stop(r).await;
}

#[tokio::test]
async fn a_token_budget_is_shared_by_replicas() {
    budget_is_shared(Unit::Tokens, "budget_tokens = 400", 400, "gpt-test", 60).await;
}

#[tokio::test]
async fn a_dollar_budget_is_shared_by_replicas() {
    // $0.10 at $100 per million tokens: 1000 tokens' worth, in nano-dollars.
    budget_is_shared(
        Unit::Nanodollars,
        "budget_usd = 0.10",
        100_000_000,
        "priced",
        120,
    )
    .await;
}

/// How many of the requests the shared mock received after the first `since` went to the
/// first pool account.
fn sent_to_first_account(r: &Replicas, since: usize) -> usize {
    r.a.mock.requests()[since..]
        .iter()
        .filter(|request| {
            request.headers["authorization"].to_str().unwrap() == format!("Bearer {POOL_ONE}")
        })
        .count()
}

/// Has replica A meet a 429 on the first pool account (for 30 s), failing over to the second.
async fn cool_first_account(r: &Replicas) {
    let mut limited = chat_body("pooled", "hi");
    limited["mock"] = json!({"status_for_key": {POOL_ONE: 429}, "retry_after": 30});
    let since = r.a.mock.requests().len();
    for _ in 0..20 {
        assert_eq!(send(&r.a, &r.a.key, &limited).await, 200);
        if sent_to_first_account(r, since) > 0 {
            return;
        }
    }
    panic!("replica A never picked the first account");
}

/// Whether replica B learns of the first pool account's cooldown within `limit`.
async fn b_knows_the_cooldown(r: &Replicas, limit: Duration) -> bool {
    let token = r.b.admin_token().await;
    let cooling = || async {
        let upstreams = r.b.admin_json("/admin/upstreams", &token).await;
        upstreams["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|account| {
                account["name"] == "p1"
                    && !account["model_cooldowns"].as_array().unwrap().is_empty()
            })
    };
    eventually(limit, cooling).await.is_some()
}

#[tokio::test]
async fn a_cooldown_seen_by_one_replica_is_honoured_by_the_other() {
    let r = replicas("", Duration::from_millis(100)).await;
    cool_first_account(&r).await;
    // Replica B learns of it within a second, and skips that account.
    assert!(
        b_knows_the_cooldown(&r, Duration::from_secs(1)).await,
        "replica B does not know of the cooldown"
    );
    let before = r.a.mock.requests().len();
    for _ in 0..10 {
        assert_eq!(send(&r.b, &r.b.key, &chat_body("pooled", "hi")).await, 200);
    }
    assert_eq!(
        sent_to_first_account(&r, before),
        0,
        "replica B sent to the cooling account"
    );
    stop(r).await;
}

/// Whether `app` reports the `pooled` model's route healthy (its circuit closed).
async fn pooled_route_healthy(app: &TestApp, token: &str) -> bool {
    let upstreams = app.admin_json("/admin/upstreams", token).await;
    upstreams["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["model"] == "pooled")
        .unwrap()["healthy"]
        == true
}

#[tokio::test]
async fn a_circuit_opened_by_one_replica_is_open_on_the_other() {
    let r = replicas("", Duration::from_millis(100)).await;
    let (token_a, token_b) = (r.a.admin_token().await, r.b.admin_token().await);
    let mut failing = chat_body("pooled", "hi");
    failing["mock"] = json!({"status": 500});
    for _ in 0..10 {
        if !pooled_route_healthy(&r.a, &token_a).await {
            break;
        }
        send(&r.a, &r.a.key, &failing).await;
    }
    assert!(
        !pooled_route_healthy(&r.a, &token_a).await,
        "replica A's circuit never opened"
    );
    let opened = eventually(Duration::from_secs(1), || async {
        !pooled_route_healthy(&r.b, &token_b).await
    })
    .await;
    assert!(
        opened.is_some(),
        "replica B does not know the circuit is open"
    );
    stop(r).await;
}

const REVOKED_KEY: &str = "sk-replicas-revoked-key-000000000001";

#[tokio::test]
async fn a_key_revoked_through_one_replica_is_refused_by_the_other_within_a_second() {
    // Polls far apart: only the Redis notification can tell replica B in time.
    let r = replicas(
        &key_config("revoked", REVOKED_KEY, ""),
        Duration::from_secs(60),
    )
    .await;
    let body = chat_body("gpt-test", "hi");
    // Replica B caches the key after its change watcher's first look at the database (an
    // entry cached before it is read again anyway).
    assert_eq!(send(&r.b, REVOKED_KEY, &body).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(&r.b, REVOKED_KEY, &body).await, 200);
    assert_eq!(send(&r.b, REVOKED_KEY, &body).await, 200);
    revoke_key_named(&r.a, "revoked").await;
    let refused = eventually(Duration::from_secs(1), || async {
        send(&r.b, REVOKED_KEY, &body).await == 401
    })
    .await;
    assert!(refused.is_some(), "replica B still accepts the revoked key");
    stop(r).await;
}

const DEGRADED_KEY: &str = "sk-replicas-degraded-key-00000000001";

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn redis_up(app: &TestApp) -> Option<String> {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("llmgate_redis_up "))
        .map(str::to_owned)
}

#[tokio::test]
async fn with_redis_down_replicas_serve_on_their_own_limits_and_share_again_when_it_is_back() {
    let mut r = replicas(
        &key_config("degraded", DEGRADED_KEY, "rpm = 3"),
        Duration::from_millis(100),
    )
    .await;
    let body = chat_body("gpt-test", "hi");
    assert_eq!(readyz(&r.a).await, (200, json!({"status": "ready"})));
    assert_eq!(redis_up(&r.a).await.as_deref(), Some("1"));
    r.redis.kill();

    // Both keep serving, each on its own limit of 3.
    let (a, b) = alternate(&r, DEGRADED_KEY, &body, 10).await;
    assert_eq!((a, b), (3, 3), "per-process limits while Redis is down");
    for app in [&r.a, &r.b] {
        let (status, ready) = readyz(app).await;
        assert_eq!(status, 200, "{ready}");
        assert!(
            ready["degraded"].as_str().unwrap().contains("per process"),
            "{ready}"
        );
        assert_eq!(redis_up(app).await.as_deref(), Some("0"));
    }
    // Unlimited keys do not touch Redis at all: still served.
    assert_eq!(send(&r.a, &r.a.key, &body).await, 200);

    // Redis back (empty): both find it again by themselves and share one limit again.
    r.redis.restart();
    for app in [&r.a, &r.b] {
        let back = eventually(Duration::from_secs(5), || async {
            readyz(app).await == (200, json!({"status": "ready"}))
        })
        .await;
        assert!(back.is_some(), "replica never saw Redis come back");
        assert_eq!(redis_up(app).await.as_deref(), Some("1"));
    }
    let (a, b) = alternate(&r, DEGRADED_KEY, &body, 10).await;
    assert_eq!(a + b, 3, "shared again: accepted {a} + {b}");
    // And the replicas hear each other again.
    cool_first_account(&r).await;
    assert!(
        b_knows_the_cooldown(&r, Duration::from_secs(2)).await,
        "replica B does not hear replica A since Redis came back"
    );
    stop(r).await;
}

#[tokio::test]
async fn serve_reads_the_redis_url_and_says_whether_limits_are_shared() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("serve.db").display());
    let serve = Serve::start(&db_url, &[], &[("LLMGATE_REDIS_URL", &redis.url())]);
    assert!(
        serve.wait_for("Redis reachable").is_some(),
        "{}",
        serve.output()
    );
    serve.stop();
    redis.kill();
    let serve = Serve::start(&db_url, &[], &[("LLMGATE_REDIS_URL", &redis.url())]);
    assert!(
        serve
            .wait_for("Redis unreachable at start-up: limits are per process")
            .is_some(),
        "{}",
        serve.output()
    );
    let ready = reqwest::get(serve.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    serve.stop();
}

#[test]
fn serve_on_postgres_without_redis_warns_that_limits_are_per_process() {
    // Nothing listens on port 1: whatever happens after the warning, it comes first.
    let mut child = Command::new(TestApp::bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--database", "postgres://llmgate@127.0.0.1:1/llmgate"])
        .env("LLMGATE_LOG_FORMAT", "json")
        .env_remove("LLMGATE_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut warned = false;
    while let Ok(line) = received.recv_timeout(Duration::from_secs(10)) {
        if line.contains("no Redis configured") && line.contains("per process") {
            warned = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "serve did not warn about per-process limits");
}
