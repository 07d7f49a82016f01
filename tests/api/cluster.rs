//! Three real `llmgate serve` processes on one database and one Redis, in front of one mock
//! upstream, as a load balancer's replicas run: a key's rpm is one limit for all three, a key
//! revoked through one is refused by the others within a second, and a 429 cooldown one of them
//! met is honoured by the others.

use std::time::Duration;

use llmgate::mock::{self, MockConfig, MockHandle};
use serde_json::{Value, json};

use crate::helpers::{
    RedisServer, Serve, bind, chat_body, chat_status, config_text, eventually, revoke_key_named_at,
};
use crate::replicas::{POOL, POOL_ONE};

const ADMIN_PASSWORD: &str = "cluster-admin-password";
const RPM_KEY: &str = "sk-cluster-rpm-key-000000000000000001";
const REVOKED_KEY: &str = "sk-cluster-revoked-key-0000000000001";
const OPEN_KEY: &str = "sk-cluster-open-key-00000000000000001";

/// The keys; the pool of two accounts behind the `pooled` model, for the cooldown, is the
/// replicas test's `POOL`.
const KEYS: &str = r#"
[[keys]]
name = "rpm"
key = "sk-cluster-rpm-key-000000000000000001"
rpm = 6

[[keys]]
name = "revoked"
key = "sk-cluster-revoked-key-0000000000001"

[[keys]]
name = "open"
key = "sk-cluster-open-key-00000000000000001"
"#;

/// The database the replicas share: a `postgres://` database on the tests' throwaway cluster
/// for [`Backend::Postgres`], a SQLite file in `dir` for [`Backend::Sqlite`]. Running the
/// cluster on either is only a change of this URL.
async fn shared_database(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("cluster.db").display()),
        Backend::Postgres => crate::pg_cluster::fresh_database().await,
    }
}

/// Which store the replicas share.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Three replicas started one after the other on one database, each importing the same config
/// (on PostgreSQL, `Serve` gives each the same encryption key; on SQLite they share the key
/// file beside the database), and what they share.
struct Cluster {
    replicas: Vec<Serve>,
    mock: MockHandle,
    client: reqwest::Client,
    _redis: RedisServer,
    _dir: tempfile::TempDir,
}

async fn start_cluster(backend: Backend) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db_url = shared_database(backend, &dir).await;
    let mock = mock::spawn(bind().await, MockConfig::default())
        .await
        .unwrap();
    let redis = RedisServer::start();
    let config = dir.path().join("llmgate.toml");
    let extra = format!("{POOL}\n{KEYS}").replace("{mock}", &mock.base_url());
    let text = config_text(&mock.base_url(), &extra);
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let redis_url = redis.url();
    let replicas = (0..3)
        .map(|_| {
            Serve::start(
                &db_url,
                &["--config", &config],
                &[
                    ("LLMGATE_REDIS_URL", redis_url.as_str()),
                    ("LLMGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
                    // Polls far apart: a change reaches the others in time only through Redis.
                    ("LLMGATE_CHANGE_POLL_INTERVAL", "60s"),
                ],
            )
        })
        .collect();
    Cluster {
        replicas,
        mock,
        client: reqwest::Client::new(),
        _redis: redis,
        _dir: dir,
    }
}

impl Cluster {
    /// Sends `body` as `key` through replica `index`; the status.
    async fn send(&self, index: usize, key: &str, body: &Value) -> u16 {
        let url = self.replicas[index].url("/v1/chat/completions");
        chat_status(&self.client, &url, key, body).await
    }

    async fn admin_token(&self, index: usize) -> String {
        let response = self
            .client
            .post(self.replicas[index].url("/admin/login"))
            .json(&json!({"password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "admin login");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn admin_json(&self, index: usize, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(self.replicas[index].url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Requests the mock received with the first pool account's credential, after the first
    /// `since`.
    fn sent_to_first_account(&self, since: usize) -> usize {
        self.mock.requests()[since..]
            .iter()
            .filter(|request| {
                request.headers["authorization"].to_str().unwrap() == format!("Bearer {POOL_ONE}")
            })
            .count()
    }

    fn stop(self) {
        for replica in self.replicas {
            replica.stop();
        }
    }
}

/// 18 requests spread over three replicas with `rpm = 6`: 6 accepted in all (18 per process).
async fn rpm_is_one_limit(cluster: &Cluster) {
    let body = chat_body("gpt-test", "hi");
    let mut accepted = [0; 3];
    for i in 0..18 {
        let status = cluster.send(i % 3, RPM_KEY, &body).await;
        assert!(status == 200 || status == 429, "status {status}");
        accepted[i % 3] += usize::from(status == 200);
    }
    assert_eq!(accepted.iter().sum::<usize>(), 6, "accepted {accepted:?}");
    assert!(
        accepted.iter().filter(|n| **n > 0).count() >= 2,
        "the replicas took turns: {accepted:?}"
    );
}

/// A key every replica has cached, revoked through the first: the others refuse it within 1 s.
async fn revocation_reaches_every_replica(cluster: &Cluster) {
    let body = chat_body("gpt-test", "hi");
    // Cached after each replica's change watcher first looked at the database (an entry cached
    // before that is read again anyway).
    for index in 0..3 {
        assert_eq!(cluster.send(index, REVOKED_KEY, &body).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for index in 0..3 {
        assert_eq!(cluster.send(index, REVOKED_KEY, &body).await, 200);
    }
    let token = cluster.admin_token(0).await;
    revoke_key_named_at(
        &cluster.client,
        &cluster.replicas[0].url(""),
        &token,
        "revoked",
    )
    .await;
    let refused = eventually(Duration::from_secs(1), || async {
        cluster.send(1, REVOKED_KEY, &body).await == 401
            && cluster.send(2, REVOKED_KEY, &body).await == 401
    })
    .await;
    assert!(refused.is_some(), "a replica still accepts the revoked key");
}

/// The first replica meets a 429 on the first pool account; the others learn of the cooldown
/// within 1 s and send it nothing.
async fn cooldown_is_honoured_by_every_replica(cluster: &Cluster) {
    let mut limited = chat_body("pooled", "hi");
    limited["mock"] = json!({"status_for_key": {POOL_ONE: 429}, "retry_after": 30});
    let since = cluster.mock.requests().len();
    let mut met = false;
    for _ in 0..20 {
        assert_eq!(cluster.send(0, OPEN_KEY, &limited).await, 200);
        if cluster.sent_to_first_account(since) > 0 {
            met = true;
            break;
        }
    }
    assert!(met, "the first replica never picked the first account");
    for index in [1, 2] {
        let token = cluster.admin_token(index).await;
        let cooling = eventually(Duration::from_secs(1), || async {
            let upstreams = cluster.admin_json(index, "/admin/upstreams", &token).await;
            upstreams["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|account| {
                    account["name"] == "p1"
                        && !account["model_cooldowns"].as_array().unwrap().is_empty()
                })
        })
        .await;
        assert!(
            cooling.is_some(),
            "replica {index} does not know the cooldown"
        );
    }
    let before = cluster.mock.requests().len();
    let body = chat_body("pooled", "hi");
    for i in 0..12 {
        assert_eq!(cluster.send(1 + i % 2, OPEN_KEY, &body).await, 200);
    }
    assert_eq!(
        cluster.sent_to_first_account(before),
        0,
        "a replica sent to the cooling account"
    );
}

async fn three_replicas_share_limits_revocations_and_cooldowns(backend: Backend) {
    let cluster = start_cluster(backend).await;
    rpm_is_one_limit(&cluster).await;
    revocation_reaches_every_replica(&cluster).await;
    cooldown_is_honoured_by_every_replica(&cluster).await;
    cluster.stop();
}

#[tokio::test]
async fn three_replicas_on_postgresql_share_limits_revocations_and_cooldowns() {
    three_replicas_share_limits_revocations_and_cooldowns(Backend::Postgres).await;
}

#[tokio::test]
async fn three_replicas_on_one_sqlite_file_share_limits_revocations_and_cooldowns() {
    three_replicas_share_limits_revocations_and_cooldowns(Backend::Sqlite).await;
}
