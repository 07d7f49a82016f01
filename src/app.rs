//! `App`: builds the state from `Settings`, owns the background tasks, serves until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{Admin, SetupError};
use crate::auth::{KeyCache, KeyHash, display_prefix, generate_key};
use crate::clock::Clock;
use crate::cluster::{Cluster, Note};
use crate::config_file::ConfigFile;
use crate::db::{ChangeWatcher, Db, DbError};
use crate::gateway::{Gateway, GatewayParts, ResponseStore};
use crate::limits::{BudgetSeed, Limits};
use crate::mock::{self, MockConfig, MockHandle};
use crate::routing::{Catalog, Health, SharedCatalog, rebuild_catalog};
use crate::secret::{KeyFileError, Secret, SecretCipher, load_cipher};
use crate::settings::Settings;
use crate::state::{AppState, Shared};
use crate::telemetry::metrics::Metrics;
use crate::usage::retention::Retention;
use crate::usage::{UsageRecorder, UsageWriter};

/// Why `serve` could not start. `Invalid` is the operator's to fix (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<DbError> for StartError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::InvalidUrl { .. } | DbError::Conflict(_) | DbError::NotFound(_) => {
                Self::Invalid(error.to_string())
            }
            other => Self::Failed(other.into()),
        }
    }
}

/// A built gateway, bound to its listener and ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
    catalog: SharedCatalog,
    cipher: SecretCipher,
    settings: Settings,
    demo: Option<Demo>,
    /// The admin password generated at this start, to be shown once.
    generated_admin_password: Option<Secret>,
}

/// The demo upstream and the key printed for it.
pub struct Demo {
    pub key: String,
    _mock: MockHandle,
}

impl App {
    /// Opens the database, imports `config`, loads the catalog and binds the listener.
    pub async fn build(
        settings: Settings,
        config: Option<&ConfigFile>,
    ) -> Result<Self, StartError> {
        Self::build_with_clock(settings, config, Clock::System).await
    }

    /// As [`build`](Self::build), with limits and health measured on `clock` (a manual one in
    /// tests, which then advance it instead of sleeping through a cooldown).
    pub async fn build_with_clock(
        settings: Settings,
        config: Option<&ConfigFile>,
        clock: Clock,
    ) -> Result<Self, StartError> {
        let db = Db::open(&settings.database_url).await?;
        let cipher = load_cipher(settings.encryption_key.as_ref(), &db)
            .await
            .map_err(|error| match error {
                KeyFileError::Invalid(why) => StartError::Invalid(why),
                KeyFileError::Store(error) => StartError::from(error),
                KeyFileError::Failed(why) => StartError::Failed(anyhow::anyhow!(why)),
            })?;
        if let Some(config) = config {
            let report = crate::config_file::import(&db, config, &cipher).await?;
            tracing::info!(?report, "imported the config file");
        }
        let demo = if settings.demo {
            Some(start_demo(&db).await?)
        } else {
            None
        };

        let cluster = match &settings.redis_url {
            Some(url) => Some(
                Cluster::connect(url.expose(), settings.redis_timeout)
                    .await
                    .map_err(|error| StartError::Invalid(error.to_string()))?,
            ),
            None => None,
        };
        let catalog: SharedCatalog = Arc::new(ArcSwap::from_pointee(Catalog::default()));
        let health = Health::shared(settings.health, clock.clone(), cluster.clone());
        let metrics = Metrics::new().map_err(|e| anyhow::anyhow!("cannot define metrics: {e}"))?;
        rebuild_catalog(&db, &catalog, &cipher, &health).await?;
        let upstream = crate::upstream::UpstreamClient::new(&settings.upstream, clock.clone())
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            StartError::Invalid(format!("cannot listen on {}: {e}", settings.listen))
        })?;
        // Last of the steps that can fail: a password generated here must reach the operator.
        let (admin_auth, generated_admin_password) = crate::admin::setup(&settings, &db, &cipher)
            .await
            .map_err(|error| match error {
                SetupError::Invalid(why) => StartError::Invalid(why),
                SetupError::Store(error) => StartError::from(error),
                SetupError::Failed(why) => StartError::Failed(anyhow::anyhow!(why)),
            })?;
        let config_changed = Arc::new(tokio::sync::Notify::new());
        let admin = Admin::new(
            db.clone(),
            cipher.clone(),
            config_changed.clone(),
            admin_auth,
        );
        // Budgets survive restarts: what each key spent in its window is read back once.
        let seed = BudgetSeed::load(&db, clock.now()).await?;
        let limits = match &cluster {
            Some(cluster) => Limits::shared(clock.clone(), cluster.clone()),
            None => Limits::with_clock(clock.clone()),
        };
        limits.seed_budgets(seed);
        let usage = UsageRecorder::new(settings.usage_queue);
        let responses = ResponseStore::new(
            usage.clone(),
            db.clone(),
            clock.clone(),
            settings.responses_retention,
        )
        .shared_by_replicas(settings.usage_flush_interval);
        let tokens = crate::providers::AccessTokens::new(upstream.current(), clock.clone());
        let state = AppState::new(Shared {
            keys: KeyCache::new(db.clone()),
            gateway: Gateway::new(GatewayParts {
                catalog: catalog.clone(),
                health: health.clone(),
                upstream,
                request_timeout: settings.request_timeout,
                metrics: metrics.clone(),
                log_sample: settings.log_sample,
                limits,
                usage: usage.clone(),
                max_upstream_body: settings.upstream.max_body_bytes,
                responses,
                tokens,
            }),
            usage,
            health,
            metrics,
            db,
            max_body_bytes: settings.max_body_bytes,
            config_changed,
            admin,
            clock,
            cluster,
        });
        Ok(Self {
            listener,
            state,
            catalog,
            cipher,
            settings,
            demo,
            generated_admin_password,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn demo(&self) -> Option<&Demo> {
        self.demo.as_ref()
    }

    /// The admin password generated at this start (none was set or stored), to show once.
    pub fn generated_admin_password(&self) -> Option<&Secret> {
        self.generated_admin_password.as_ref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// within the grace period, ends those still open with an error event (recording them),
    /// stops the background tasks, drains the usage writer and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            catalog,
            cipher,
            settings,
            demo,
            ..
        } = self;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();

        // The usage writer drains on stop: it is stopped only after the server has finished
        // every in-flight request, so nothing recorded is lost.
        let usage_stop = CancellationToken::new();
        #[expect(
            clippy::disallowed_methods,
            reason = "the usage writer outlives the TaskTracker: it drains after the tracked tasks stop, and is awaited below"
        )]
        let usage_writer = tokio::spawn(
            UsageWriter::new(&state.usage, state.db.clone())
                .with_metrics(state.metrics.clone())
                .run(settings.usage_flush_interval, usage_stop.clone()),
        );
        tasks.spawn(crate::usage::retention::run(
            state.db.clone(),
            Retention {
                log: settings.log_retention,
                responses: settings.responses_retention,
            },
            state.clock.clone(),
            stop.clone(),
        ));
        // Redis carries what replicas tell each other: a change to check for now, cooldowns
        // and circuits. Its writer sends settlements and notes off the request path.
        let remote_change = Arc::new(tokio::sync::Notify::new());
        // The writer stops only once every request has finished, so the settlements of the
        // last requests reach Redis (else their reservations would stay counted).
        let writer_stop = CancellationToken::new();
        if let Some(cluster) = &state.cluster {
            tasks.spawn(cluster.clone().run_writer(writer_stop.clone()));
            let health = state.health.clone();
            let wake = remote_change.clone();
            tasks.spawn(cluster.clone().run_listener(stop.clone(), move |note| {
                if note == Note::Changed {
                    wake.notify_one();
                } else {
                    health.apply(&note);
                }
            }));
        }
        let watcher = state.db.change_watcher().await?;
        tasks.spawn(watch_changes(
            watcher,
            remote_change,
            state.clone(),
            catalog,
            cipher,
            settings.change_poll_interval,
            stop.clone(),
        ));

        let trigger = stop.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "the task that starts the shutdown cannot be one the shutdown drains; it holds no data"
        )]
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });

        let db = state.db.clone();
        let streams = state.gateway.open_streams().clone();
        let server = crate::http::serve(listener, state, stop.clone());
        let grace = settings.shutdown_grace;
        let grace_expired = {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                tracing::info!(grace = ?grace, "shutting down: no new connections; waiting for in-flight requests");
                tokio::time::sleep(grace).await;
            }
        };
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => served?,
            () = grace_expired => {
                // Every stream still open gets its final error event and records its usage
                // (estimated where the upstream reported none) before the writer drains: a
                // request cut without a record would be lost from usage and budgets.
                tracing::warn!("shutdown grace period expired; ending the remaining streams with an error");
                streams.end_all();
                if tokio::time::timeout(END_STREAMS_WAIT, streams.ended()).await.is_err() {
                    tracing::error!("some streams did not end in time; their usage may be lost");
                }
                // Let the connections send those last events; what is still open after that
                // is closed.
                match tokio::time::timeout(END_STREAMS_WAIT, &mut server).await {
                    Ok(served) => served?,
                    Err(_) => tracing::warn!("closing the connections that are still open"),
                }
            }
        }
        stop.cancel();
        writer_stop.cancel();
        tasks.close();
        tasks.wait().await;
        usage_stop.cancel();
        if let Err(error) = usage_writer.await {
            tracing::error!(%error, "the usage writer did not stop cleanly");
        }
        db.close().await;
        drop(demo);
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long the shutdown waits, once the grace is over, for the streams it ended to record
/// their requests, and then for their connections to send the last event.
const END_STREAMS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Polls the database for changes made by this or any other process, and applies them: a new
/// catalog snapshot, or stale key-cache entries. A change made through this process is
/// published to the other replicas (with Redis), and one they publish (`remote_change`) is
/// checked for at once; the poll stays as the fallback.
async fn watch_changes(
    mut watcher: ChangeWatcher,
    remote_change: Arc<tokio::sync::Notify>,
    state: AppState,
    catalog: SharedCatalog,
    cipher: SecretCipher,
    every: std::time::Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
            () = remote_change.notified() => {}
            () = watcher.notice() => {}
            () = state.config_changed.notified() => {
                if let Some(cluster) = &state.cluster {
                    cluster.publish(Note::Changed);
                }
            }
        }
        let versions = match watcher.poll().await {
            Ok(Some(versions)) => versions,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "cannot check the database for changes; will retry");
                continue;
            }
        };
        // Entries loaded before this version was seen are stale; `fetch_max` keeps this cheap
        // and idempotent, so it runs on every observation, the first included.
        state.keys.keys_changed(versions.keys);
        state.admin.auth().tokens_changed(versions.admin_tokens);
        // The first observation also rebuilds: something may have changed between start-up
        // and the first poll.
        if seen.is_none_or(|applied: crate::db::ChangeVersions| applied.catalog != versions.catalog)
        {
            match rebuild_catalog(&state.db, &catalog, &cipher, &state.health).await {
                Ok(()) => {
                    if seen.is_some() {
                        tracing::info!("configuration changed; routing catalog rebuilt");
                    }
                    seen = Some(versions);
                }
                // Keep serving the previous snapshot; the next tick tries again.
                Err(error) => tracing::error!(
                    %error,
                    "cannot rebuild the routing catalog; keeping the previous one"
                ),
            }
        }
    }
}

/// Starts the in-process mock upstream and registers the demo provider, model and key.
async fn start_demo(db: &Db) -> Result<Demo, StartError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the demo upstream: {e}"))?;
    let handle = mock::spawn(
        listener,
        MockConfig {
            record: false,
            ..MockConfig::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the demo upstream: {e}"))?;
    let key = generate_key();
    db.register_demo(
        &handle.base_url(),
        &KeyHash::of(&key).to_hex(),
        &display_prefix(&key),
    )
    .await?;
    Ok(Demo { key, _mock: handle })
}
