//! Spawning the app and its mock upstream for a test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use llmgate::app::App;
use llmgate::auth::{NewKey, create_key};
use llmgate::config_file;
use llmgate::db::Db;
use llmgate::mock::{self, MockConfig, MockHandle};
use llmgate::settings::Settings;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The upstream credential the test config gives the mock provider's account.
pub const UPSTREAM_KEY: &str = "sk-upstream-account-secret-1";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub mock: MockHandle,
    /// A key allowed to use every model.
    pub key: String,
    pub db_url: String,
    pub db: Db,
    /// The app's usage recorder, to flush deterministically with `flush_usage`.
    pub usage: llmgate::usage::UsageRecorder,
    /// The admin password: the one the options set, else the one generated at start-up.
    pub admin_password: String,
    _dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// How to build a test app; `Default` gives one model `gpt-test` routed to the mock.
pub struct TestOptions {
    pub settings: Settings,
    /// Extra TOML appended to the default config (more providers, models, keys); `{mock}` and
    /// `{mock_gemini}` are replaced by the mock's OpenAI/Anthropic and Gemini base URLs.
    pub extra_config: String,
    pub mock: MockConfig,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            settings: Settings {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                change_poll_interval: Duration::from_millis(100),
                shutdown_grace: Duration::from_secs(5),
                ..Settings::default()
            },
            extra_config: String::new(),
            mock: MockConfig::default(),
        }
    }
}

pub fn config_text(mock_base_url: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_base_url}"

  [[providers.accounts]]
  name = "a1"
  api_key = "{UPSTREAM_KEY}"

[[models]]
name = "gpt-test"

  [[models.routes]]
  provider = "mock"
  model = "mock-model"

[[models]]
name = "other-model"

  [[models.routes]]
  provider = "mock"
  model = "mock-other"
{extra}
"#
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_with(TestOptions::default()).await
}

pub async fn spawn_with(options: TestOptions) -> TestApp {
    let mock = mock::spawn(bind().await, options.mock).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("llmgate.db").display());
    // `{mock}` and `{mock_gemini}` in the extra config stand for the mock's base URLs.
    let extra = options
        .extra_config
        .replace("{mock}", &mock.base_url())
        .replace("{mock_gemini}", &mock.gemini_base_url());
    let text = config_text(&mock.base_url(), &extra);
    let config = config_file::parse(&text, &|_| None).unwrap();

    let mut settings = options.settings;
    settings.database_url = db_url.clone();
    let chosen_password = settings.admin_password.clone();
    let app = App::build(settings, Some(&config)).await.unwrap();
    let admin_password = match (app.generated_admin_password(), chosen_password) {
        (Some(generated), _) => generated.expose().to_owned(),
        (None, Some(chosen)) => chosen.expose().to_owned(),
        (None, None) => panic!("a fresh database must get a generated admin password"),
    };
    let addr = app.local_addr().unwrap();
    let db = app.state().db.clone();
    let usage = app.state().usage.clone();
    let (key_row, key) = create_key(
        &db,
        NewKey {
            name: "test".into(),
            ..NewKey::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(key_row.name, "test");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        mock,
        key,
        db_url,
        db,
        usage,
        admin_password,
        _dir: dir,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A POST with the test key and a JSON body.
    pub fn post(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(&body)
    }

    pub fn chat(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.post("/v1/chat/completions", body)
    }

    /// Logs in as the admin and returns the token.
    pub async fn admin_token(&self) -> String {
        let response = self
            .client
            .post(self.url("/admin/login"))
            .json(&serde_json::json!({"password": self.admin_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "admin login");
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// An admin API request with `token`.
    pub fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Writes every recorded usage event now (what the writer task does every second).
    pub async fn flush_usage(&self) {
        llmgate::usage::UsageWriter::new(&self.usage, self.db.clone())
            .flush_now()
            .await
            .unwrap();
    }

    /// Usage totals of this key's day, grouped by model.
    pub async fn usage_by_model(&self) -> Vec<llmgate::db::UsageTotals> {
        self.db
            .usage_totals(&llmgate::db::UsageQuery {
                from: None,
                to: None,
                group_by: vec![llmgate::db::UsageGroup::Model],
            })
            .await
            .unwrap()
    }

    /// Creates another key with the given settings and returns its plaintext.
    pub async fn create_key(&self, new: NewKey) -> String {
        create_key(&self.db, new).await.unwrap().1
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the server like [`TestApp::stop`] but keeps its directory (database, key file)
    /// for the caller to inspect or serve again.
    pub async fn stop_keeping_files(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self._dir
    }

    /// Path to the llmgate binary built for these tests.
    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_llmgate")
    }
}

/// A chat request body for `model`.
pub fn chat_body(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns the time taken.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Asserts an OpenAI-shaped error body with this status and code.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error.get("type").is_some() && error.get("param").is_some(),
        "{body}"
    );
    body
}
