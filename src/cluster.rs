//! What replicas share through Redis (`LLMGATE_REDIS_URL`): one connection, the calls on a
//! request's path (bounded by a short timeout, skipped while Redis is down), the writes made
//! off it (settlements, shared health), and the notes replicas publish to each other.
//!
//! Redis being down never stops a request: a call that fails or times out marks it down (one
//! log line per transition), later calls fail at once without waiting, and the writer task
//! pings it until it answers again. Callers then fall back to their per-process state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The pub/sub channel every replica publishes its notes on and listens to.
const CHANNEL: &str = "llmgate:notes";
/// The prefix of the keys holding shared health (cooldowns, open circuits) until they expire.
const HEALTH_PREFIX: &str = "llmgate:health:";
/// Writes queued for the writer task; past this, a write is dropped (and counted in the log).
const QUEUE: usize = 65_536;
/// Writes kept while Redis is down, sent once it is back; the oldest are dropped past this.
const PENDING: usize = 65_536;
/// Background writes sent in one pipeline at most.
const BATCH: usize = 256;
/// How often the writer task checks whether a down Redis answers again.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long a background write or probe may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Calls on a request's path in a row that may miss `LLMGATE_REDIS_TIMEOUT` before Redis is
/// taken for down. One slow answer (a busy core, a pause of the Redis server) costs the request
/// that waited for it a per-process admission; taking Redis for down would give every key a
/// whole per-process allowance on this replica until the next ping, past the shared limits.
const SLOW_CALLS_BEFORE_DOWN: u32 = 3;

/// Redis could not answer in time (or is known to be down): use the per-process path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Redis is unavailable")]
pub struct Unavailable;

/// Why Redis could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
#[error("LLMGATE_REDIS_URL: {0}")]
pub struct BadUrl(String);

/// A note one replica publishes for the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The configuration or the keys changed in the database: check for changes now.
    Changed,
    /// Account `account_id` is skipped, whatever the model, until `until_unix_ms`.
    AccountCooldown { account_id: i64, until_unix_ms: i64 },
    /// Account `account_id` is skipped for `model` until `until_unix_ms`.
    ModelCooldown {
        account_id: i64,
        model: String,
        until_unix_ms: i64,
    },
    /// Route `route_id`'s circuit is open until `until_unix_ms`.
    CircuitOpen { route_id: i64, until_unix_ms: i64 },
    /// Route `route_id` answered again: its circuit is closed.
    CircuitClosed { route_id: i64 },
}

impl Note {
    /// The note as published: its kind and fields separated by spaces, the model (which may
    /// hold anything but a newline) last.
    fn encode(&self) -> String {
        match self {
            Self::Changed => "changed".to_owned(),
            Self::AccountCooldown {
                account_id,
                until_unix_ms,
            } => format!("account {account_id} {until_unix_ms}"),
            Self::ModelCooldown {
                account_id,
                model,
                until_unix_ms,
            } => format!("model {account_id} {until_unix_ms} {model}"),
            Self::CircuitOpen {
                route_id,
                until_unix_ms,
            } => format!("open {route_id} {until_unix_ms}"),
            Self::CircuitClosed { route_id } => format!("closed {route_id}"),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(4, ' ');
        let kind = parts.next()?;
        let mut number = || parts.next()?.parse::<i64>().ok();
        Some(match kind {
            "changed" => Self::Changed,
            "account" => Self::AccountCooldown {
                account_id: number()?,
                until_unix_ms: number()?,
            },
            "model" => {
                let account_id = number()?;
                let until_unix_ms = number()?;
                Self::ModelCooldown {
                    account_id,
                    until_unix_ms,
                    model: parts.next()?.to_owned(),
                }
            }
            "open" => Self::CircuitOpen {
                route_id: number()?,
                until_unix_ms: number()?,
            },
            "closed" => Self::CircuitClosed {
                route_id: number()?,
            },
            _ => return None,
        })
    }

    /// The key that keeps a health note until it expires, so a replica that starts (or
    /// reconnects) later still honours it; `None` for notes that are only news.
    fn key(&self) -> Option<String> {
        match self {
            Self::Changed | Self::CircuitClosed { .. } => None,
            Self::AccountCooldown { account_id, .. } => {
                Some(format!("{HEALTH_PREFIX}account:{account_id}"))
            }
            Self::ModelCooldown {
                account_id, model, ..
            } => Some(format!("{HEALTH_PREFIX}model:{account_id}:{model}")),
            Self::CircuitOpen { route_id, .. } => Some(format!("{HEALTH_PREFIX}route:{route_id}")),
        }
    }

    fn until_unix_ms(&self) -> Option<i64> {
        match self {
            Self::AccountCooldown { until_unix_ms, .. }
            | Self::ModelCooldown { until_unix_ms, .. }
            | Self::CircuitOpen { until_unix_ms, .. } => Some(*until_unix_ms),
            Self::Changed | Self::CircuitClosed { .. } => None,
        }
    }
}

/// A call of a server-side script, its keys and arguments written straight into the one
/// `EVALSHA` command that carries them: no string per key or argument on a request's path.
#[derive(Debug, Clone)]
pub struct Invocation {
    script: &'static Script,
    command: redis::Cmd,
}

impl Invocation {
    /// A call of `script` with `keys` keys, to be given first with [`arg`](Self::arg), then
    /// its arguments.
    pub fn new(script: &'static Script, keys: usize) -> Self {
        let mut command = redis::Cmd::with_capacity(20, 256);
        command.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        Self { script, command }
    }

    /// Adds the next key or argument (integers are written without a string of their own).
    pub fn arg(&mut self, arg: impl redis::ToRedisArgs) -> &mut Self {
        self.command.arg(arg);
        self
    }

    /// The command as sent, in Redis's protocol.
    #[cfg(test)]
    pub fn packed(&self) -> Vec<u8> {
        self.command.get_packed_command()
    }
}

/// A write made off the request path.
#[derive(Debug)]
enum Write {
    Eval(Invocation),
    Publish(Note),
}

/// What Redis answered to one background write.
enum Answer {
    Done,
    /// The script is not in Redis's cache (it restarted since it was loaded).
    NoScript(&'static Script),
    /// Redis answered with an error.
    Refused(String),
}

/// The shared connection to Redis; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: ConnectionManager,
    timeout: Duration,
    up: AtomicBool,
    /// Calls on a request's path that missed the timeout since the last one answered in time.
    slow_calls: AtomicU32,
    /// Identifies this process in what it publishes, so it ignores its own notes.
    node: String,
    writes: mpsc::Sender<Write>,
    queued: Mutex<Option<mpsc::Receiver<Write>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password; only the state is shown.
        f.debug_struct("Cluster")
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A connection to the Redis at `url`, made lazily: llmgate starts whether or not Redis
    /// answers, and checks it once here so the first requests know. Calls on a request's path
    /// wait at most `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, BadUrl> {
        let client = redis::Client::open(url).map_err(|error| BadUrl(error.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(WRITE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|error| BadUrl(error.to_string()))?;
        let (writes, queued) = mpsc::channel(QUEUE);
        let cluster = Self {
            inner: Arc::new(Inner {
                client,
                connection,
                timeout,
                up: AtomicBool::new(false),
                slow_calls: AtomicU32::new(0),
                node: format!("{:016x}", rand::random::<u64>()),
                writes,
                queued: Mutex::new(Some(queued)),
            }),
        };
        if cluster.ping().await {
            cluster.inner.up.store(true, Ordering::Release);
            tracing::info!(
                "Redis reachable: limits, cooldowns and circuits are shared by every replica"
            );
        } else {
            tracing::warn!(
                "Redis unreachable at start-up: limits are per process until it answers"
            );
        }
        Ok(cluster)
    }

    /// Whether Redis answered the last call (limits are then shared).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    fn mark_down(&self, why: &str) {
        if self.inner.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                reason = why,
                "Redis unreachable: limits, cooldowns and circuits are per process until it is back"
            );
        }
    }

    fn mark_up(&self) {
        if !self.inner.up.swap(true, Ordering::AcqRel) {
            tracing::info!("Redis reachable again: limits are shared by every replica again");
        }
    }

    async fn ping(&self) -> bool {
        let mut connection = self.inner.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(WRITE_TIMEOUT, ping).await, Ok(Ok(_)))
    }

    /// Runs `invocation` on a request's path: one round trip (two more the first time a
    /// Redis sees the script), bounded by the timeout. Fails at once while Redis is known to be
    /// down.
    pub async fn eval(&self, invocation: &Invocation) -> Result<Vec<i64>, Unavailable> {
        if !self.is_up() {
            return Err(Unavailable);
        }
        let call = async {
            let mut connection = self.inner.connection.clone();
            match invocation
                .command
                .query_async::<Vec<i64>>(&mut connection)
                .await
            {
                Err(error)
                    if error.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    invocation.script.load_async(&mut connection).await?;
                    invocation.command.query_async(&mut connection).await
                }
                answer => answer,
            }
        };
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(answer)) => {
                if self.inner.slow_calls.load(Ordering::Relaxed) != 0 {
                    self.inner.slow_calls.store(0, Ordering::Relaxed);
                }
                Ok(answer)
            }
            Ok(Err(error)) => {
                self.mark_down(&error.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                let slow = self.inner.slow_calls.fetch_add(1, Ordering::Relaxed) + 1;
                if slow >= SLOW_CALLS_BEFORE_DOWN {
                    self.inner.slow_calls.store(0, Ordering::Relaxed);
                    self.mark_down(
                        "no answer within LLMGATE_REDIS_TIMEOUT, several times in a row",
                    );
                } else {
                    tracing::debug!(
                        "Redis answered too slowly; this request was admitted per process"
                    );
                }
                Err(Unavailable)
            }
        }
    }

    /// Runs `script` later, off the request path (kept while Redis is down, sent once back).
    pub fn eval_later(&self, invocation: Invocation) {
        self.queue(Write::Eval(invocation));
    }

    /// Publishes `note` to the other replicas (and keeps a health note until it expires).
    pub fn publish(&self, note: Note) {
        self.queue(Write::Publish(note));
    }

    fn queue(&self, write: Write) {
        if self.inner.writes.try_send(write).is_err() {
            tracing::warn!("too many Redis writes queued; one was dropped");
        }
    }

    /// The writer task (owned by `App`): sends queued writes, keeps them while Redis is down,
    /// and probes a down Redis until it answers. Stops on `stop`, after sending what it can.
    pub async fn run_writer(self, stop: CancellationToken) {
        let taken = self
            .inner
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut queued) = taken else { return };
        let mut pending: VecDeque<Write> = VecDeque::new();
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                write = queued.recv() => match write {
                    Some(write) => {
                        pending.push_back(write);
                        if pending.len() > PENDING {
                            pending.pop_front();
                        }
                    }
                    None => break,
                },
                _ = probe.tick() => {
                    if !self.is_up() && self.ping().await {
                        self.mark_up();
                    }
                }
            }
            self.send_pending(&mut pending).await;
        }
        while let Ok(write) = queued.try_recv() {
            pending.push_back(write);
        }
        self.send_pending(&mut pending).await;
    }

    /// Sends what is pending, up to [`BATCH`] writes per round trip (one pipeline), while Redis
    /// answers. Under load the settlements of many requests go out together: one write and one
    /// read for the lot instead of a round trip, and two task wake-ups, for each.
    async fn send_pending(&self, pending: &mut VecDeque<Write>) {
        while self.is_up() && !pending.is_empty() {
            let count = pending.len().min(BATCH);
            let batch = &pending.make_contiguous()[..count];
            match self.send(batch).await {
                Ok(answers) => {
                    let mut again = Vec::new();
                    let mut unloaded: Vec<&'static Script> = Vec::new();
                    for (write, answer) in pending.drain(..count).zip(answers) {
                        match answer {
                            Answer::Done => {}
                            // Redis forgot its scripts (it restarted): load it, send again.
                            Answer::NoScript(script) => {
                                if !unloaded.iter().any(|s| std::ptr::eq(*s, script)) {
                                    unloaded.push(script);
                                }
                                again.push(write);
                            }
                            // Redis refused it: sending it again would fail again.
                            Answer::Refused(error) => {
                                tracing::warn!(%error, "Redis refused a write; it is dropped");
                            }
                        }
                    }
                    for write in again.into_iter().rev() {
                        pending.push_front(write);
                    }
                    for script in unloaded {
                        if let Err(error) = self.load(script).await {
                            self.mark_down(&error);
                        }
                    }
                }
                Err(error) => self.mark_down(&error),
            }
        }
    }

    /// Loads `script` into Redis's script cache.
    async fn load(&self, script: &Script) -> Result<(), String> {
        let mut connection = self.inner.connection.clone();
        match tokio::time::timeout(WRITE_TIMEOUT, script.load_async(&mut connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("loading a script timed out".to_owned()),
        }
    }

    /// Sends `writes` in one pipeline; one answer per write, or why Redis did not answer (then
    /// all of them are kept for when it is back).
    async fn send(&self, writes: &[Write]) -> Result<Vec<Answer>, String> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // The pipeline's commands of each write: a publication may be two.
        let mut commands = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                Write::Eval(invocation) => {
                    // Cloned: the write is kept until Redis has answered it.
                    pipe.add_command(invocation.command.clone());
                    commands.push(1);
                }
                Write::Publish(note) => {
                    let mut count = 1;
                    if let (Some(key), Some(until)) = (note.key(), note.until_unix_ms()) {
                        let now = chrono::Utc::now().timestamp_millis();
                        let ttl = u64::try_from(until - now).unwrap_or(0);
                        if ttl > 0 {
                            pipe.cmd("SET")
                                .arg(key)
                                .arg(note.encode())
                                .arg("PX")
                                .arg(ttl);
                            count += 1;
                        }
                    }
                    pipe.cmd("PUBLISH").arg(CHANNEL).arg(format!(
                        "{} {}",
                        self.inner.node,
                        note.encode()
                    ));
                    commands.push(count);
                }
            }
        }
        let mut connection = self.inner.connection.clone();
        let values = match tokio::time::timeout(
            WRITE_TIMEOUT,
            pipe.query_async::<Vec<redis::Value>>(&mut connection),
        )
        .await
        {
            Ok(Ok(values)) => values,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("a background write timed out".to_owned()),
        };
        let mut values = values.into_iter();
        let answers = writes
            .iter()
            .zip(commands)
            .map(|(write, count)| {
                let mut answer = Answer::Done;
                for value in values.by_ref().take(count) {
                    if let redis::Value::ServerError(error) = value {
                        answer = match write {
                            Write::Eval(invocation)
                                if error.kind() == Some(redis::ServerErrorKind::NoScript) =>
                            {
                                Answer::NoScript(invocation.script)
                            }
                            _ => Answer::Refused(error.to_string()),
                        };
                    }
                }
                answer
            })
            .collect();
        Ok(answers)
    }

    /// The listener task (owned by `App`): hands every note another replica publishes to
    /// `apply`, and on each (re)connection the health notes still kept in Redis first.
    /// Reconnects by itself after Redis comes back.
    pub async fn run_listener(self, stop: CancellationToken, apply: impl Fn(Note) + Send) {
        loop {
            let listened = tokio::select! {
                () = stop.cancelled() => return,
                listened = self.listen(&apply) => listened,
            };
            if let Err(error) = listened {
                tracing::debug!(%error, "Redis subscription lost; reconnecting");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }

    async fn listen(&self, apply: &impl Fn(Note)) -> redis::RedisResult<()> {
        let connect = self.inner.client.get_async_pubsub();
        let mut pubsub = tokio::time::timeout(WRITE_TIMEOUT, connect)
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
        pubsub.subscribe(CHANNEL).await?;
        // Notes published while this replica was away: what is still kept, and a change check.
        for note in self.kept_health().await? {
            apply(note);
        }
        apply(Note::Changed);
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(text) = message.get_payload::<String>() else {
                continue;
            };
            let Some((node, note)) = text.split_once(' ') else {
                continue;
            };
            if node == self.inner.node {
                continue;
            }
            if let Some(note) = Note::decode(note) {
                apply(note);
            }
        }
        Ok(())
    }

    /// The health notes Redis still keeps (cooldowns and open circuits that have not expired).
    async fn kept_health(&self) -> redis::RedisResult<Vec<Note>> {
        let mut connection = self.inner.connection.clone();
        let mut keys: Vec<String> = Vec::new();
        {
            let mut scan = connection
                .scan_match::<_, String>(format!("{HEALTH_PREFIX}*"))
                .await?;
            while let Some(key) = scan.next().await {
                keys.push(key?);
            }
        }
        let mut notes = Vec::with_capacity(keys.len());
        for key in keys {
            let text: Option<String> = connection.get(&key).await?;
            if let Some(note) = text.as_deref().and_then(Note::decode) {
                notes.push(note);
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    /// A server that answers `PING` as Redis does and never answers anything else: Redis too
    /// slow for the request path.
    #[expect(
        clippy::disallowed_methods,
        reason = "a test's fake server, ended with the test's runtime"
    )]
    async fn slow_redis() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    while let Ok(read) = socket.read(&mut buffer).await {
                        if read == 0 {
                            return;
                        }
                        // The client names itself first (`CLIENT SETINFO`, twice).
                        let count = |word: &[u8]| {
                            buffer[..read]
                                .windows(word.len())
                                .filter(|w| *w == word)
                                .count()
                        };
                        for _ in 0..count(b"SETINFO") {
                            let _ = socket.write_all(b"+OK\r\n").await;
                        }
                        if count(b"PING") > 0 {
                            let _ = socket.write_all(b"+PONG\r\n").await;
                        }
                    }
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn a_slow_answer_is_not_taken_for_redis_down_until_it_repeats() {
        let url = slow_redis().await;
        let cluster = Cluster::connect(&url, Duration::from_millis(20))
            .await
            .unwrap();
        assert!(cluster.is_up(), "PING answered");
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new("return {1}"));
        let call = Invocation::new(&SCRIPT, 0);
        for count in 1..SLOW_CALLS_BEFORE_DOWN {
            assert!(cluster.eval(&call).await.is_err());
            assert!(cluster.is_up(), "down after {count} slow answer(s)");
        }
        assert!(cluster.eval(&call).await.is_err());
        assert!(!cluster.is_up(), "down once slow answers repeat");
    }

    #[test]
    fn notes_read_back_as_written() {
        for note in [
            Note::Changed,
            Note::AccountCooldown {
                account_id: 3,
                until_unix_ms: 1_700_000_000_000,
            },
            Note::ModelCooldown {
                account_id: 4,
                model: "gpt 4o mini".to_owned(),
                until_unix_ms: 5,
            },
            Note::CircuitOpen {
                route_id: 9,
                until_unix_ms: 10,
            },
            Note::CircuitClosed { route_id: 9 },
        ] {
            assert_eq!(Note::decode(&note.encode()), Some(note));
        }
        assert_eq!(Note::decode("open x 1"), None);
        assert_eq!(Note::decode("unknown 1"), None);
    }
}
