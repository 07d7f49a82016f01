//! Settings: the process configuration from flags, `LLMGATE_*` variables and the file's `[server]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::routing::HealthPolicy;
use crate::secret::Secret;

/// Parses a duration written like `250ms`, `10s`, `5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration ({e}); write it like 250ms, 10s or 5m"))
}

/// Everything `serve` needs to know, resolved once at start-up. Precedence: command-line flag,
/// then `LLMGATE_*` variable, then the config file's `[server]` table, then the default.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub config_path: Option<PathBuf>,
    pub demo: bool,
    /// Largest accepted request body (`LLMGATE_MAX_BODY_BYTES`, default 10 MiB).
    pub max_body_bytes: usize,
    pub upstream: UpstreamSettings,
    /// Deadline of one request when its model sets no `timeout` (`LLMGATE_REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// How long in-flight requests may finish after SIGTERM (`LLMGATE_SHUTDOWN_GRACE`).
    pub shutdown_grace: Duration,
    /// How often usage is written (`LLMGATE_USAGE_FLUSH_INTERVAL`).
    pub usage_flush_interval: Duration,
    /// Request log rows held between flushes before new ones are dropped and counted
    /// (`LLMGATE_USAGE_QUEUE`, default 65536). Usage counters are never dropped.
    pub usage_queue: usize,
    /// How long request log rows are kept (`LLMGATE_LOG_RETENTION`, default 30 days); daily
    /// usage rollups are kept forever.
    pub log_retention: Duration,
    /// How long stored responses of the Responses API are kept (`LLMGATE_RESPONSES_RETENTION`,
    /// default 30 days); past it they answer 404 and the retention task deletes them.
    pub responses_retention: Duration,
    /// How often the database is checked for changes made elsewhere (`LLMGATE_CHANGE_POLL_INTERVAL`).
    pub change_poll_interval: Duration,
    /// Base64 of the 32-byte key sealing upstream credentials (`LLMGATE_ENCRYPTION_KEY`).
    pub encryption_key: Option<Secret>,
    /// Share of successful requests that get a log line, 0 to 1 (`LLMGATE_LOG_SAMPLE`, default
    /// 1); failed requests are always logged.
    pub log_sample: f64,
    /// Circuit breakers and account cooldowns (`LLMGATE_CIRCUIT_*`, `LLMGATE_RATE_LIMIT_COOLDOWN`).
    pub health: HealthPolicy,
    /// The admin password (`LLMGATE_ADMIN_PASSWORD`, at least 12 characters). When absent, one
    /// is generated on first start, stored hashed, and printed once.
    pub admin_password: Option<Secret>,
    /// The secret signing admin tokens (`LLMGATE_JWT_SECRET`). When absent, one is generated
    /// and stored sealed in the database, so tokens survive restarts.
    pub jwt_secret: Option<Secret>,
    /// How long an admin token stays valid (`LLMGATE_ADMIN_TOKEN_TTL`, default 12h).
    pub admin_token_ttl: Duration,
    /// Redis shared by every replica (`LLMGATE_REDIS_URL`, or the file's `[server] redis`):
    /// rate limits, budgets, cooldowns, circuits and change notifications. None: per process.
    pub redis_url: Option<Secret>,
    /// Longest wait for Redis on a request's path before it falls back to per-process limits
    /// (`LLMGATE_REDIS_TIMEOUT`, default 50ms).
    pub redis_timeout: Duration,
}

/// Tuning of the one shared upstream HTTP client.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `LLMGATE_UPSTREAM_CONNECT_TIMEOUT`, default 10s.
    pub connect_timeout: Duration,
    /// Longest silence between two upstream bytes (`LLMGATE_UPSTREAM_READ_TIMEOUT`, default 300s).
    pub read_timeout: Duration,
    /// How long an idle pooled connection is kept (`LLMGATE_UPSTREAM_POOL_IDLE_TIMEOUT`, 90s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host (`LLMGATE_UPSTREAM_POOL_MAX_IDLE`, default 512).
    pub pool_max_idle_per_host: usize,
    /// How long one pool of upstream connections takes new requests before a fresh one
    /// replaces it (`LLMGATE_UPSTREAM_POOL_MAX_AGE`, default 120s); see `upstream::Upstream`.
    pub pool_max_age: Duration,
    /// An HTTP(S) proxy for upstream traffic (`LLMGATE_UPSTREAM_PROXY`); none by default.
    pub proxy: Option<String>,
    /// Largest upstream answer read whole, and largest line or event of a streamed one
    /// (`LLMGATE_MAX_UPSTREAM_BODY_BYTES`, default 64 MiB); past it the attempt fails with 502.
    pub max_body_bytes: usize,
}

/// The default cap on a buffered upstream answer. Embeddings are the largest answers a
/// gateway buffers: a batch of 2,048 inputs (OpenAI's most) of 3,072-dimensional vectors is
/// about 6.3 M floats, some 40 MB as JSON text with full precision; 64 MiB fits it with room,
/// and stays far below what would strain the process.
pub const DEFAULT_MAX_UPSTREAM_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The default age at which the pool of upstream connections is replaced. Two minutes: in the
/// streams soak a connection's memory was still at its first size after 300 s of pooled life
/// (28 KiB) and more than doubled by 600 s (67 KiB), so two minutes bounds it with room to
/// spare, while one new handshake per connection every two minutes stays small beside answers
/// that take seconds (OPTIMIZATION.md, "Upstream connections retired by age").
pub const DEFAULT_POOL_MAX_AGE: Duration = Duration::from_secs(120);

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(300),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 512,
            pool_max_age: DEFAULT_POOL_MAX_AGE,
            proxy: None,
            max_body_bytes: DEFAULT_MAX_UPSTREAM_BODY_BYTES,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: crate::db::DEFAULT_URL.to_owned(),
            config_path: None,
            demo: false,
            max_body_bytes: 10 * 1024 * 1024,
            upstream: UpstreamSettings::default(),
            request_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            usage_flush_interval: Duration::from_secs(1),
            usage_queue: crate::usage::DEFAULT_QUEUE,
            log_retention: crate::usage::retention::DEFAULT_RETENTION,
            responses_retention: crate::usage::retention::DEFAULT_RESPONSES_RETENTION,
            change_poll_interval: Duration::from_millis(250),
            encryption_key: None,
            health: HealthPolicy::default(),
            log_sample: 1.0,
            admin_password: None,
            jwt_secret: None,
            admin_token_ttl: Duration::from_secs(12 * 3600),
            redis_url: None,
            redis_timeout: Duration::from_millis(50),
        }
    }
}

/// A setting that could not be read: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SettingError {
    pub name: String,
    pub message: String,
}

impl Settings {
    /// Reads the tuning variables through `env` (a lookup, so tests need not touch the process
    /// environment). Listen address, database and config path are set by the caller.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<SettingError>> {
        let mut errors = Vec::new();
        let mut settings = Self::default();
        let mut duration = |name: &str, target: &mut Duration| {
            if let Some(value) = env(name) {
                match parse_duration(&value) {
                    Ok(d) if !d.is_zero() => *target = d,
                    Ok(_) => errors.push(SettingError {
                        name: name.into(),
                        message: "must be greater than zero".into(),
                    }),
                    Err(message) => errors.push(SettingError {
                        name: name.into(),
                        message,
                    }),
                }
            }
        };
        duration(
            "LLMGATE_UPSTREAM_CONNECT_TIMEOUT",
            &mut settings.upstream.connect_timeout,
        );
        duration(
            "LLMGATE_UPSTREAM_READ_TIMEOUT",
            &mut settings.upstream.read_timeout,
        );
        duration(
            "LLMGATE_UPSTREAM_POOL_IDLE_TIMEOUT",
            &mut settings.upstream.pool_idle_timeout,
        );
        duration(
            "LLMGATE_UPSTREAM_POOL_MAX_AGE",
            &mut settings.upstream.pool_max_age,
        );
        duration("LLMGATE_REQUEST_TIMEOUT", &mut settings.request_timeout);
        duration("LLMGATE_SHUTDOWN_GRACE", &mut settings.shutdown_grace);
        duration(
            "LLMGATE_USAGE_FLUSH_INTERVAL",
            &mut settings.usage_flush_interval,
        );
        duration("LLMGATE_LOG_RETENTION", &mut settings.log_retention);
        duration(
            "LLMGATE_RESPONSES_RETENTION",
            &mut settings.responses_retention,
        );
        duration(
            "LLMGATE_CHANGE_POLL_INTERVAL",
            &mut settings.change_poll_interval,
        );
        duration(
            "LLMGATE_CIRCUIT_WINDOW",
            &mut settings.health.failure_window,
        );
        duration(
            "LLMGATE_CIRCUIT_COOLDOWN",
            &mut settings.health.circuit_cooldown,
        );
        duration(
            "LLMGATE_RATE_LIMIT_COOLDOWN",
            &mut settings.health.default_cooldown,
        );
        duration("LLMGATE_ADMIN_TOKEN_TTL", &mut settings.admin_token_ttl);
        duration("LLMGATE_REDIS_TIMEOUT", &mut settings.redis_timeout);
        let mut count = |name: &str, target: &mut usize| {
            if let Some(value) = env(name) {
                match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => *target = n,
                    _ => errors.push(SettingError {
                        name: name.into(),
                        message: format!("'{value}' is not a positive whole number"),
                    }),
                }
            }
        };
        count("LLMGATE_MAX_BODY_BYTES", &mut settings.max_body_bytes);
        count("LLMGATE_USAGE_QUEUE", &mut settings.usage_queue);
        count(
            "LLMGATE_MAX_UPSTREAM_BODY_BYTES",
            &mut settings.upstream.max_body_bytes,
        );
        let mut failures = settings.health.circuit_failures as usize;
        count("LLMGATE_CIRCUIT_FAILURES", &mut failures);
        settings.health.circuit_failures = u32::try_from(failures).unwrap_or(u32::MAX);
        count(
            "LLMGATE_UPSTREAM_POOL_MAX_IDLE",
            &mut settings.upstream.pool_max_idle_per_host,
        );
        if let Some(value) = env("LLMGATE_LOG_SAMPLE") {
            match value.trim().parse::<f64>() {
                Ok(share) if (0.0..=1.0).contains(&share) => settings.log_sample = share,
                _ => errors.push(SettingError {
                    name: "LLMGATE_LOG_SAMPLE".into(),
                    message: format!("'{value}' is not a share between 0 and 1, like 0.1"),
                }),
            }
        }
        settings.upstream.proxy = env("LLMGATE_UPSTREAM_PROXY").filter(|p| !p.is_empty());
        settings.encryption_key = env("LLMGATE_ENCRYPTION_KEY")
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        settings.admin_password = env("LLMGATE_ADMIN_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        settings.redis_url = env("LLMGATE_REDIS_URL")
            .filter(|url| !url.is_empty())
            .map(Secret::new);
        settings.jwt_secret = env("LLMGATE_JWT_SECRET")
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }
}

/// Parses a listen address like `127.0.0.1:8080` or `[::1]:8080`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a socket address; write it like 127.0.0.1:8080"))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_defaults_and_bad_values_are_all_reported() {
        let env = |name: &str| match name {
            "LLMGATE_UPSTREAM_READ_TIMEOUT" => Some("2s".to_owned()),
            "LLMGATE_MAX_BODY_BYTES" => Some("1024".to_owned()),
            _ => None,
        };
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.upstream.read_timeout, Duration::from_secs(2));
        assert_eq!(settings.max_body_bytes, 1024);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(30));
        assert_eq!(settings.usage_queue, 65_536);
        assert_eq!(settings.log_retention, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(
            settings.responses_retention,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(settings.upstream.max_body_bytes, 64 * 1024 * 1024);
        assert_eq!(settings.upstream.pool_max_age, Duration::from_secs(120));
        let usage = |name: &str| match name {
            "LLMGATE_USAGE_QUEUE" => Some("1000".to_owned()),
            "LLMGATE_LOG_RETENTION" => Some("7d".to_owned()),
            "LLMGATE_RESPONSES_RETENTION" => Some("12h".to_owned()),
            "LLMGATE_MAX_UPSTREAM_BODY_BYTES" => Some("1048576".to_owned()),
            "LLMGATE_UPSTREAM_POOL_MAX_AGE" => Some("5m".to_owned()),
            _ => None,
        };
        let settings = Settings::from_env(&usage).unwrap();
        assert_eq!(settings.upstream.max_body_bytes, 1 << 20);
        assert_eq!(settings.upstream.pool_max_age, Duration::from_secs(300));
        assert_eq!(settings.usage_queue, 1000);
        assert_eq!(settings.log_retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(settings.responses_retention, Duration::from_secs(12 * 3600));

        let bad = |name: &str| match name {
            "LLMGATE_SHUTDOWN_GRACE" => Some("soon".to_owned()),
            "LLMGATE_MAX_BODY_BYTES" => Some("-1".to_owned()),
            _ => None,
        };
        let errors = Settings::from_env(&bad).unwrap_err();
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["LLMGATE_SHUTDOWN_GRACE", "LLMGATE_MAX_BODY_BYTES"]);
    }

    #[test]
    fn admin_settings_come_from_their_variables() {
        let settings = Settings::from_env(&|_| None).unwrap();
        assert!(settings.admin_password.is_none() && settings.jwt_secret.is_none());
        assert_eq!(settings.admin_token_ttl, Duration::from_secs(12 * 3600));
        let env = |name: &str| match name {
            "LLMGATE_ADMIN_PASSWORD" => Some("a-long-admin-password".to_owned()),
            "LLMGATE_JWT_SECRET" => Some(String::new()),
            "LLMGATE_ADMIN_TOKEN_TTL" => Some("30m".to_owned()),
            _ => None,
        };
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(
            settings
                .admin_password
                .as_ref()
                .map(|p| p.expose().to_owned()),
            Some("a-long-admin-password".to_owned())
        );
        assert!(settings.jwt_secret.is_none(), "empty means unset");
        assert_eq!(settings.admin_token_ttl, Duration::from_secs(1800));
        assert!(format!("{settings:?}").contains("[redacted]"));
    }

    #[test]
    fn redis_comes_from_its_variables() {
        let settings = Settings::from_env(&|_| None).unwrap();
        assert!(settings.redis_url.is_none());
        assert_eq!(settings.redis_timeout, Duration::from_millis(50));
        let env = |name: &str| match name {
            "LLMGATE_REDIS_URL" => Some("redis://:pw@127.0.0.1:6379/".to_owned()),
            "LLMGATE_REDIS_TIMEOUT" => Some("20ms".to_owned()),
            _ => None,
        };
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(
            settings.redis_url.as_ref().map(Secret::expose),
            Some("redis://:pw@127.0.0.1:6379/")
        );
        assert_eq!(settings.redis_timeout, Duration::from_millis(20));
        assert!(!format!("{settings:?}").contains("pw@"));
    }

    #[test]
    fn listen_addresses_parse() {
        assert!(parse_listen("127.0.0.1:0").is_ok());
        assert!(parse_listen("[::1]:8080").is_ok());
        assert!(parse_listen("localhost").is_err());
    }

    #[test]
    fn durations_parse_in_the_contract_format() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("ten").is_err());
    }
}
