//! Several replicas (`make bench-cluster`, issue #20): three `llmgate serve` processes on one
//! database (PostgreSQL, or with `CLUSTER_DB=sqlite` one SQLite file) and one Redis, and one
//! load generator spreading requests round-robin across them as a load balancer would; beside
//! them, one plain SQLite node without Redis for the throughput comparison.
//!
//! PostgreSQL and Redis are Debian's binaries started by the bench on loopback ports with
//! throwaway data directories (`tests/support/postgres.rs`, as the tests start them), pinned
//! with the mock upstream and the load generator to the client core; every llmgate process runs
//! on the proxy core. The figures, each judged against its limit:
//!
//! - a key with `rpm = 600`: the requests accepted in `CLUSTER_RPM_SECONDS` (default 60) once
//!   its bucket is drained, offered four times faster than it refills: 600 per minute ± 2 %;
//! - a token budget and a dollar budget, spent by concurrent requests through all three: the
//!   spend passes the budget by at most one request's reservation;
//! - a key revoked through one replica: refused by the two others, the time measured (≤ 1 s);
//! - a 429 cooldown one replica met: known by the others (≤ 1 s), which then send that account
//!   nothing (no upstream retry while it is answered 429);
//! - Redis killed mid-load and started again: 0 failed requests, every replica ready and not
//!   degraded again within seconds, and one shared limit again;
//! - one replica killed (SIGKILL) mid-load: the only requests lost are those in flight on it;
//! - throughput of each replica alone under the same closed loop as the single SQLite node
//!   (`CLUSTER_SECONDS` per run, default 10, three rounds in turn), in the same run: ≥ 85 % of
//!   the node's in requests per CPU second of the serving process (the inverse of its CPU time
//!   per request: what one core of its own serves, which is what a replica machine has).
//!   Requests per second are printed beside it with how busy the serving core was; they are
//!   judged only when that core was the bottleneck, since on two cores the other one carries
//!   the load generator and the mock, and for the replicas Redis and PostgreSQL as well.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use serde_json::{Value, json};

use super::*;

const REPLICAS: usize = 3;
const REPLICA_NAMES: [&str; REPLICAS] = ["replica 1", "replica 2", "replica 3"];
const ADMIN_PASSWORD: &str = "bench-cluster-admin-password";
/// Base64 of 32 bytes: the key sealing upstream credentials, the same for every replica (on
/// PostgreSQL there is no key file beside the database for them to share).
const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The rate-limited key's `rpm`, and how much faster than its refill requests are offered.
const RPM: u64 = 600;
const OFFERED_FACTOR: f64 = 4.0;
const RPM_KEY: &str = "sk-bench-cluster-rpm-00000000000000001";
const TOKENS_KEY: &str = "sk-bench-cluster-tokens-0000000000001";
const DOLLARS_KEY: &str = "sk-bench-cluster-dollars-000000000001";
const REVOKED_KEY: &str = "sk-bench-cluster-revoked-000000000001";
const SHARED_AGAIN_KEY: &str = "sk-bench-cluster-again-00000000000001";
const TOKEN_BUDGET: u64 = 20_000;
/// The dollar budget, at this price per million tokens (input and output alike).
const DOLLAR_BUDGET: f64 = 0.02;
const PRICE_PER_MILLION: f64 = 1.0;
/// The `rpm` of the key that checks the limits are shared again after Redis came back.
const SHARED_AGAIN_RPM: usize = 9;
const POOL_ONE: &str = "sk-upstream-bench-pool-one";
/// Closed-loop connections of the throughput runs, and of the loads that run while something
/// is killed.
const CONNECTIONS: usize = 32;
/// Rounds of the throughput runs (the node, then each replica alone).
const THROUGHPUT_ROUNDS: usize = 3;
const KILL_LOAD_WORKERS: usize = 12;
/// The mock's delay before answering during the replica kill, so that requests are in flight.
const KILL_LATENCY_MS: u64 = 200;

/// Which store the replicas share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn from_env() -> Result<Self> {
        match std::env::var("CLUSTER_DB").as_deref() {
            Err(_) | Ok("postgres") => Ok(Self::Postgres),
            Ok("sqlite") => Ok(Self::Sqlite),
            Ok(other) => bail!("CLUSTER_DB={other}: say postgres or sqlite"),
        }
    }
}

/// One figure of the cluster bench: what was measured, its limit, and whether it is met.
#[derive(Debug, Serialize)]
struct Check {
    name: String,
    value: String,
    limit: String,
    pass: bool,
    /// Shown for what it says, not judged: the run could not measure what the limit is about.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    informational: bool,
}

#[derive(Debug, Serialize)]
struct ClusterReport {
    kind: &'static str,
    date: String,
    machine: Machine,
    command: String,
    backend: Backend,
    /// What the bench started, and where.
    servers: Vec<String>,
    rpm_window_seconds: f64,
    throughput_seconds: f64,
    /// The closed-loop runs of the single SQLite node, of each replica alone, and of the three
    /// at once.
    single_node_runs: Vec<Run>,
    replica_runs: Vec<Vec<Run>>,
    three_at_once: Run,
    load_average_before: f64,
    load_average_after: f64,
    figures: Vec<Check>,
    /// What explains a figure: how often the replicas fell back to per-process limits.
    notes: Vec<String>,
    pass: bool,
}

/// Starts everything, runs each figure's phase, prints the table, writes
/// `target/bench/cluster-<UTC>.json`; whether every figure met its limit.
pub(super) async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let backend = Backend::from_env()?;
    let rpm_window = env_seconds("CLUSTER_RPM_SECONDS", 60.0)?;
    let seconds = env_seconds("CLUSTER_SECONDS", 10.0)?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let load_before = load_average();
    let mut stack = ClusterStack::start(&settings, backend).await?;
    eprintln!("bench: {}", stack.servers.join("; "));
    let ops = Ops::new()?;
    let mut figures = Vec::new();

    eprintln!("bench: throughput, the single SQLite node and each replica alone");
    let throughput = measure_throughput(&mut stack, seconds).await?;
    figures.extend(throughput.checks());
    eprintln!(
        "bench: rpm = {RPM}, {} s once its bucket is drained",
        rpm_window.as_secs()
    );
    figures.push(rpm_figure(&stack, rpm_window).await?);
    eprintln!("bench: token and dollar budgets");
    figures.push(budget_figure(&stack, &ops, Budget::Tokens).await?);
    figures.push(budget_figure(&stack, &ops, Budget::Dollars).await?);
    eprintln!("bench: a revocation");
    figures.push(revocation_figure(&stack, &ops).await?);
    eprintln!("bench: a 429 cooldown");
    figures.extend(cooldown_figures(&stack, &ops).await?);
    let fallbacks = stack.redis_fallbacks();
    let mut notes = vec![format!(
        "before Redis was killed, the replicas fell back to per-process limits {} times ({} per replica): each time a Redis call took longer than LLMGATE_REDIS_TIMEOUT (50 ms) or failed, until Redis answered again",
        fallbacks.iter().sum::<usize>(),
        fallbacks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" + ")
    )];
    eprintln!("bench: Redis killed mid-load");
    figures.extend(redis_kill_figures(&mut stack, &ops).await?);
    eprintln!("bench: a replica killed mid-load");
    figures.push(replica_kill_figure(&mut stack).await?);

    let pass = figures.iter().all(|figure| figure.pass);
    let report = ClusterReport {
        kind: "cluster",
        date: date.to_rfc3339(),
        machine,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        backend,
        servers: stack.servers.clone(),
        rpm_window_seconds: rpm_window.as_secs_f64(),
        throughput_seconds: seconds.as_secs_f64(),
        single_node_runs: throughput.single.clone(),
        replica_runs: throughput.replicas.clone(),
        three_at_once: throughput.together,
        load_average_before: load_before,
        load_average_after: load_average(),
        figures,
        notes: std::mem::take(&mut notes),
        pass,
    };
    drop(stack);
    print_cluster(&report);
    let path = write_json(&settings.out_dir, "cluster", &date, &report)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(pass)
}

// ---------------------------------------------------------------------------------------------
// What the bench starts

/// The processes of the bench; each is stopped when dropped (PostgreSQL by its watchdog once
/// the bench has exited).
struct ClusterStack {
    _mock: Proc,
    redis: Redis,
    replicas: Vec<Option<Proc>>,
    replica_addrs: Vec<SocketAddr>,
    single: Option<Proc>,
    single_addr: SocketAddr,
    servers: Vec<String>,
    /// Logs, the config and the SQLite files: removed once the processes are stopped (fields
    /// drop in order).
    dir: tempfile::TempDir,
}

impl ClusterStack {
    async fn start(settings: &Settings, backend: Backend) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("llmgate-cluster-")
            .tempdir()?;
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mock_addr = loopback(free_port()?);
        let mut mock = Proc::spawn(
            "mock upstream",
            CLIENT_CORE,
            &settings.bin,
            &strings(&["mock-upstream", "--listen", &mock_addr.to_string()]),
            &[],
            dir.path().join("mock.log"),
        )?;
        let redis = Redis::start(dir.path())?;
        let mut servers = vec![format!(
            "redis-server ({}) started by the bench on 127.0.0.1:{}, no persistence, data in a throwaway directory, on core {CLIENT_CORE}",
            command_output("redis-server", &["--version"])
                .and_then(|v| v.split_whitespace().nth(2).map(str::to_owned))
                .unwrap_or_default(),
            redis.port
        )];
        let db_url = match backend {
            Backend::Postgres => {
                let cluster = crate::pg_cluster::cluster();
                let url = crate::pg_cluster::fresh_database().await;
                let port = url
                    .rsplit_once(':')
                    .and_then(|(_, rest)| rest.split('/').next())
                    .and_then(|port| port.parse::<u16>().ok())
                    .ok_or_else(|| anyhow!("no port in {}", cluster.url("")))?;
                pin_postgres(port)?;
                servers.push(format!(
                    "PostgreSQL ({}) started by the bench from Debian's binaries on 127.0.0.1:{port}, initdb in a throwaway directory, fsync and synchronous_commit off (tests/support/postgres.rs), on core {CLIENT_CORE}",
                    command_output("psql", &["--version"]).unwrap_or_default()
                ));
                url
            }
            Backend::Sqlite => {
                servers.push(
                    "the replicas share one SQLite file (CLUSTER_DB=sqlite), not PostgreSQL".into(),
                );
                format!("sqlite://{}", dir.path().join("cluster.db").display())
            }
        };
        let config = dir.path().join("llmgate.toml");
        fs::write(&config, cluster_config(mock_addr))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        wait_answering(&Target::direct(mock_addr, false), &mut mock, deadline).await?;

        let single_addr = loopback(free_port()?);
        let single_db = format!("sqlite://{}", dir.path().join("single.db").display());
        let mut single = spawn_serve(
            settings,
            "single SQLite node",
            &config,
            single_addr,
            &single_db,
            None,
            dir.path().join("single.log"),
        )?;
        wait_answering(&Target::llmgate(single_addr, false), &mut single, deadline).await?;
        servers.push(format!(
            "a single llmgate node on its own SQLite file without Redis at {single_addr}, on core {PROXY_CORE}"
        ));

        // One after the other: the first creates the schema and imports the config, the others
        // find it there.
        let redis_url = redis.url();
        let mut replicas = Vec::new();
        let mut replica_addrs = Vec::new();
        for (index, name) in REPLICA_NAMES.iter().enumerate() {
            let addr = loopback(free_port()?);
            let mut replica = spawn_serve(
                settings,
                name,
                &config,
                addr,
                &db_url,
                Some(&redis_url),
                dir.path().join(format!("replica-{}.log", index + 1)),
            )?;
            wait_answering(&Target::llmgate(addr, false), &mut replica, deadline).await?;
            replicas.push(Some(replica));
            replica_addrs.push(addr);
        }
        servers.push(format!(
            "{REPLICAS} llmgate replicas at {} on core {PROXY_CORE}; the load generator and the mock upstream on core {CLIENT_CORE}",
            replica_addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(Self {
            _mock: mock,
            redis,
            replicas,
            replica_addrs,
            single: Some(single),
            single_addr,
            servers,
            dir,
        })
    }

    /// How often each replica has logged that Redis was unreachable (and its limits per
    /// process) so far.
    fn redis_fallbacks(&self) -> Vec<usize> {
        (1..=REPLICAS)
            .map(|index| {
                fs::read_to_string(self.dir.path().join(format!("replica-{index}.log")))
                    .map(|log| {
                        log.lines()
                            .filter(|line| {
                                line.contains("Redis unreachable: limits, cooldowns and circuits")
                            })
                            .count()
                    })
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The replicas still running.
    fn alive(&self) -> Vec<usize> {
        (0..REPLICAS)
            .filter(|index| self.replicas[*index].is_some())
            .collect()
    }
}

/// Starts `llmgate serve` on the proxy core with `config`, on `db_url`, sharing `redis_url`.
fn spawn_serve(
    settings: &Settings,
    name: &'static str,
    config: &Path,
    addr: SocketAddr,
    db_url: &str,
    redis_url: Option<&str>,
    log: PathBuf,
) -> Result<Proc> {
    let mut env = vec![
        ("LLMGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("LLMGATE_ENCRYPTION_KEY", ENCRYPTION_KEY),
        ("LLMGATE_SHUTDOWN_GRACE", "5s"),
    ];
    if let Some(url) = redis_url {
        env.push(("LLMGATE_REDIS_URL", url));
    }
    Proc::spawn(
        name,
        PROXY_CORE,
        &settings.bin,
        &strings(&[
            "serve",
            "--config",
            &config.display().to_string(),
            "--listen",
            &addr.to_string(),
            "--database",
            db_url,
        ]),
        &env,
        log,
    )
}

/// Pins the PostgreSQL server listening on `port` (its postmaster and the processes it has
/// started; the backends it starts later inherit the pinning) to the client core.
fn pin_postgres(port: u16) -> Result<()> {
    let wanted = format!("\0-p\0{port}\0");
    let postmaster = fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let text = String::from_utf8_lossy(&cmdline);
                text.split('\0')
                    .next()
                    .is_some_and(|program| program.ends_with("postgres"))
                    && text.contains(&wanted)
            })
        })
        .ok_or_else(|| anyhow!("no PostgreSQL server process listens on port {port}"))?;
    pin(postmaster, CLIENT_CORE)?;
    for child in child_pids(postmaster) {
        pin(child, CLIENT_CORE)?;
    }
    Ok(())
}

/// A throwaway `redis-server` on the client core, which the bench kills and starts again.
struct Redis {
    proc: Option<Proc>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(parent: &Path) -> Result<Self> {
        let dir = parent.join("redis");
        fs::create_dir(&dir)?;
        let mut redis = Self {
            proc: None,
            port: free_port()?,
            dir,
        };
        redis.restart()?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again, empty, on the same port) and waits until it accepts connections.
    fn restart(&mut self) -> Result<()> {
        let program = Path::new("redis-server");
        let proc = Proc::spawn(
            "redis-server",
            CLIENT_CORE,
            program,
            &strings(&[
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &self.dir.display().to_string(),
            ]),
            &[],
            self.dir.join("redis.log"),
        )
        .context("redis-server (Debian's package; tests/setup.sh installs it)")?;
        self.proc = Some(proc);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(proc) = &mut self.proc {
                proc.check_alive()?;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "redis-server does not listen on port {} after 10 s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kills it with SIGKILL, as a crash would.
    fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

/// The replicas' config: the mock behind `bench-model` (the readiness check's model), a pool
/// of two accounts behind `pooled`, a priced model, and a key per figure.
fn cluster_config(mock: SocketAddr) -> String {
    format!(
        r#"
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://{mock}/v1"

  [[providers.accounts]]
  name = "a1"
  api_key = "{UPSTREAM_KEY}-1"

[[providers]]
name = "pool"
kind = "openai"
base_url = "http://{mock}/v1"

  [[providers.accounts]]
  name = "p1"
  api_key = "{POOL_ONE}"

  [[providers.accounts]]
  name = "p2"
  api_key = "sk-upstream-bench-pool-two"

[[models]]
name = "bench-model"

  [[models.routes]]
  provider = "mock"
  model = "mock-a"

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
  input_price = {PRICE_PER_MILLION}
  output_price = {PRICE_PER_MILLION}

[[keys]]
name = "bench"
key = "{KEY}"
rpm = {max}
tpm = {max}

[[keys]]
name = "rpm"
key = "{RPM_KEY}"
rpm = {RPM}

[[keys]]
name = "tokens"
key = "{TOKENS_KEY}"
budget_tokens = {TOKEN_BUDGET}

[[keys]]
name = "dollars"
key = "{DOLLARS_KEY}"
budget_usd = {DOLLAR_BUDGET}

[[keys]]
name = "revoked"
key = "{REVOKED_KEY}"

[[keys]]
name = "again"
key = "{SHARED_AGAIN_KEY}"
rpm = {SHARED_AGAIN_RPM}
"#,
        max = u32::MAX
    )
}

// ---------------------------------------------------------------------------------------------
// The load generator: round-robin over the replicas, as a load balancer spreads requests

/// A chat request for `model` with `max_tokens = 32`, and `knobs` for the mock when given.
fn chat_request(model: &str, knobs: Option<Value>) -> Bytes {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Summarise the cluster bench in one sentence."}],
        "max_tokens": 32,
    });
    if let Some(knobs) = knobs {
        body["mock"] = knobs;
    }
    Bytes::from(body.to_string())
}

/// What one phase's load sends, and to which replicas.
struct Load {
    /// Indexes into `addrs` the load spreads over.
    replicas: Vec<usize>,
    addrs: Vec<SocketAddr>,
    key: &'static str,
    body: Bytes,
    workers: usize,
    /// Requests per second offered in all (open loop); a closed loop when `None`.
    rate: Option<f64>,
    duration: Duration,
    /// When to stop before `duration` is over.
    stop: Stop,
}

/// When a load stops before its time is over.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Never,
    /// At the first refusal (429): a bucket is drained.
    AtFirstRefusal,
    /// Once every request was refused for this long: a budget is spent (a refusal may come
    /// earlier, while the settlements of requests just answered are on their way to Redis).
    WhenRefusedFor(Duration),
}

/// One request the load sent.
struct Sent {
    replica: usize,
    started: Instant,
    status: Option<u16>,
}

/// What the workers of a load share: the round-robin position, the open loop's tickets, which
/// replicas refused a connection (the load balancer's view), requests in flight per replica.
struct Shared {
    next: AtomicUsize,
    ticket: AtomicU64,
    down: Vec<AtomicBool>,
    in_flight: Vec<AtomicUsize>,
    stop: AtomicBool,
    /// When a request was last accepted, in milliseconds since the load started.
    last_accepted_ms: AtomicU64,
}

impl Shared {
    fn new(replicas: usize) -> Arc<Self> {
        Arc::new(Self {
            next: AtomicUsize::new(0),
            ticket: AtomicU64::new(0),
            down: (0..replicas).map(|_| AtomicBool::new(false)).collect(),
            in_flight: (0..replicas).map(|_| AtomicUsize::new(0)).collect(),
            stop: AtomicBool::new(false),
            last_accepted_ms: AtomicU64::new(0),
        })
    }
}

/// Runs `load` to its end; every request sent, in no particular order.
async fn drive(load: Load, shared: Arc<Shared>) -> Result<Vec<Sent>> {
    let load = Arc::new(load);
    let started = Instant::now();
    let end = started + load.duration;
    let tasks: Vec<_> = (0..load.workers)
        .map(|_| tokio::spawn(worker(Arc::clone(&load), Arc::clone(&shared), started, end)))
        .collect();
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await?);
    }
    Ok(sent)
}

async fn worker(load: Arc<Load>, shared: Arc<Shared>, started: Instant, end: Instant) -> Vec<Sent> {
    let targets: Vec<Target> = load
        .addrs
        .iter()
        .map(|addr| Target {
            authorization: HeaderValue::from_str(&format!("Bearer {}", load.key))
                .unwrap_or(HeaderValue::from_static("")),
            body: load.body.clone(),
            ..Target::llmgate(*addr, false)
        })
        .collect();
    let mut senders: Vec<Option<Sender>> = load.addrs.iter().map(|_| None).collect();
    let mut sent = Vec::new();
    loop {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= end {
            break;
        }
        if let Some(rate) = load.rate {
            let ticket = shared.ticket.fetch_add(1, Ordering::Relaxed);
            let at = started + Duration::from_secs_f64(ticket as f64 / rate);
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at).await;
        }
        // The next replica in turn that accepts a connection; one that refuses is down for
        // the rest of the load, as a load balancer's check would mark it.
        let mut chosen = None;
        for _ in 0..load.replicas.len() {
            let position = shared.next.fetch_add(1, Ordering::Relaxed) % load.replicas.len();
            let replica = load.replicas[position];
            if shared.down[replica].load(Ordering::Relaxed) {
                continue;
            }
            if let Some(mut sender) = senders[replica].take()
                && sender.ready().await.is_ok()
            {
                chosen = Some((replica, sender));
                break;
            }
            match connect(load.addrs[replica]).await {
                Ok(sender) => {
                    chosen = Some((replica, sender));
                    break;
                }
                Err(_) => shared.down[replica].store(true, Ordering::Relaxed),
            }
        }
        let Some((replica, mut sender)) = chosen else {
            break;
        };
        shared.in_flight[replica].fetch_add(1, Ordering::SeqCst);
        let begun = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            exchange(&mut sender, &targets[replica]),
        )
        .await;
        shared.in_flight[replica].fetch_sub(1, Ordering::SeqCst);
        let status = match answer {
            Ok(Ok(outcome)) => {
                senders[replica] = Some(sender);
                Some(outcome.status.as_u16())
            }
            _ => None,
        };
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match (status, load.stop) {
            (Some(200), _) => shared.last_accepted_ms.store(now_ms, Ordering::Relaxed),
            (Some(429), Stop::AtFirstRefusal) => shared.stop.store(true, Ordering::Relaxed),
            (Some(429), Stop::WhenRefusedFor(refused)) => {
                let last = shared.last_accepted_ms.load(Ordering::Relaxed);
                if now_ms.saturating_sub(last) > u64::try_from(refused.as_millis()).unwrap_or(0) {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                // Refusals come fast: no need to flood the replicas with them.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ => {}
        }
        sent.push(Sent {
            replica,
            started: begun,
            status,
        });
    }
    sent
}

/// Answered 200, among `sent`.
fn accepted(sent: &[Sent]) -> usize {
    sent.iter().filter(|s| s.status == Some(200)).count()
}

/// Failed: no answer, or an answer other than 200 and 429.
fn failed(sent: &[Sent]) -> usize {
    sent.iter()
        .filter(|s| !matches!(s.status, Some(200 | 429)))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Admin and operations requests

struct Ops {
    client: reqwest::Client,
}

impl Ops {
    fn new() -> Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    async fn login(&self, addr: SocketAddr) -> Result<String> {
        let answer: Value = self
            .client
            .post(format!("http://{addr}/admin/login"))
            .json(&json!({"password": ADMIN_PASSWORD}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token in the login answer: {answer}"))
    }

    async fn get(&self, addr: SocketAddr, path: &str, token: &str) -> Result<Value> {
        Ok(self
            .client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Sends a chat request as `key`; the status of the answer (read to its end).
    async fn chat(&self, addr: SocketAddr, key: &str, body: &Bytes) -> Result<u16> {
        let response = self
            .client
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok(status)
    }

    /// Whether `/readyz` answers 200, not degraded.
    async fn ready_and_shared(&self, addr: SocketAddr) -> bool {
        let Ok(response) = self
            .client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
        else {
            return false;
        };
        response.status() == StatusCode::OK
            && response
                .json::<Value>()
                .await
                .is_ok_and(|body| body.get("degraded").is_none())
    }

    /// The sum of a metric's series.
    async fn metric(&self, addr: SocketAddr, name: &str) -> Result<f64> {
        let text = self
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Whether `addr` knows that pool account `p1` is cooling down.
    async fn first_account_cooling(&self, addr: SocketAddr, token: &str) -> Result<bool> {
        let upstreams = self.get(addr, "/admin/upstreams", token).await?;
        Ok(upstreams["accounts"].as_array().is_some_and(|accounts| {
            accounts.iter().any(|account| {
                account["name"] == "p1"
                    && account["model_cooldowns"]
                        .as_array()
                        .is_some_and(|cooldowns| !cooldowns.is_empty())
            })
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// The figures

/// One closed-loop run: requests per second answered, and the server's CPU time per request.
#[derive(Debug, Clone, Copy, Serialize)]
struct Run {
    rps: f64,
    cpu_us_per_request: f64,
}

impl Run {
    /// The serving processes' CPU seconds per second: 1.0 is one core kept busy.
    fn busy(&self) -> f64 {
        self.rps * self.cpu_us_per_request / 1e6
    }
}

struct Throughput {
    single: Vec<Run>,
    replicas: Vec<Vec<Run>>,
    together: Run,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

fn joined(runs: &[Run]) -> String {
    runs.iter()
        .map(|run| format!("{:.0}", run.rps))
        .collect::<Vec<_>>()
        .join("/")
}

impl Throughput {
    fn checks(&self) -> Vec<Check> {
        let single = median(self.single.iter().map(|run| run.rps));
        let worst = self
            .replicas
            .iter()
            .map(|runs| median(runs.iter().map(|run| run.rps)))
            .fold(f64::INFINITY, f64::min);
        let share = ratio(worst, single);
        let single_cpu = median(self.single.iter().map(|run| run.cpu_us_per_request));
        let replica_cpu = median(
            self.replicas
                .iter()
                .flatten()
                .map(|run| run.cpu_us_per_request),
        );
        // What one core delivers when only the process's own work counts: the inverse of its
        // CPU time per request, steady whatever else the shared machine runs.
        let capacity = ratio(single_cpu, replica_cpu);
        // How busy the serving core was: a request rate says what a replica can serve only
        // when its core was the bottleneck. On two cores the second one carries the load
        // generator and the mock, and for the replicas Redis and PostgreSQL too, so a replica's
        // rate here can be set by that core while its own sits partly idle.
        let busy = |runs: &mut dyn Iterator<Item = &Run>| median(runs.map(Run::busy));
        let replica_busy = busy(&mut self.replicas.iter().flatten());
        let single_busy = busy(&mut self.single.iter());
        let saturated = replica_busy >= SATURATED;
        vec![
            Check {
                name: "throughput per replica vs a single SQLite node, per CPU second".into(),
                value: format!(
                    "{:.0}% (CPU per request {replica_cpu:.1} µs vs {single_cpu:.1} µs: a core serves {:.0} vs {:.0} req/s)",
                    capacity * 100.0,
                    1e6 / replica_cpu,
                    1e6 / single_cpu,
                ),
                limit: "≥ 85%".into(),
                pass: capacity >= 0.85,
                informational: false,
            },
            Check {
                name: "… in requests per second of this run".into(),
                value: format!(
                    "{:.0}% (slowest replica's median; req/s of replicas {}, node {}, three at once {:.0}; llmgate's core busy {:.0}% serving a replica, {:.0}% the node{})",
                    share * 100.0,
                    self.replicas
                        .iter()
                        .map(|runs| joined(runs))
                        .collect::<Vec<_>>()
                        .join(", "),
                    joined(&self.single),
                    self.together.rps,
                    replica_busy * 100.0,
                    single_busy * 100.0,
                    if saturated {
                        ""
                    } else {
                        ": the rate was set by the other core, not by the replica"
                    },
                ),
                limit: format!(
                    "≥ 85% when the replica's core is the bottleneck (busy ≥ {:.0}%)",
                    SATURATED * 100.0
                ),
                pass: !saturated || share >= 0.85,
                informational: !saturated,
            },
        ]
    }
}

/// The share of its core a serving process must use for its request rate to be what it can
/// serve, rather than what the rest of the machine let through.
const SATURATED: f64 = 0.9;

/// A closed loop of `CONNECTIONS` on `replicas` (of `addrs`), served by the processes `pids`:
/// requests per second answered 200 and started after the warm-up, and the processes' CPU
/// time per answered request over the whole run; an error if any request failed.
async fn closed_loop(
    addrs: &[SocketAddr],
    replicas: Vec<usize>,
    pids: &[u32],
    seconds: Duration,
) -> Result<Run> {
    let shared = Shared::new(addrs.len());
    let counted = Instant::now() + WARM_UP;
    let cpu_before = cpu_ticks(pids);
    let sent = drive(
        Load {
            replicas,
            addrs: addrs.to_vec(),
            key: KEY,
            body: chat_request("bench-model", None),
            workers: CONNECTIONS,
            rate: None,
            duration: WARM_UP + seconds,
            stop: Stop::Never,
        },
        shared,
    )
    .await?;
    let cpu_us = cpu_ticks(pids).saturating_sub(cpu_before) as f64 * 1e6 / clock_ticks() as f64;
    let bad = failed(&sent);
    if bad > 0 {
        bail!("{bad} requests failed in a throughput run");
    }
    let warm = sent
        .iter()
        .filter(|s| s.started >= counted && s.status == Some(200))
        .count();
    Ok(Run {
        rps: warm as f64 / seconds.as_secs_f64(),
        cpu_us_per_request: cpu_us / accepted(&sent).max(1) as f64,
    })
}

/// The single node and each replica alone, `THROUGHPUT_ROUNDS` rounds, each round in another
/// order (the machine is shared and its load drifts: no process always comes first), after a
/// first uncounted load on each; then the three replicas at once.
async fn measure_throughput(stack: &mut ClusterStack, seconds: Duration) -> Result<Throughput> {
    let single_pid = stack
        .single
        .as_ref()
        .map(Proc::pid)
        .ok_or_else(|| anyhow!("the single node is not running"))?;
    let replica_pids: Vec<u32> = stack.replicas.iter().flatten().map(Proc::pid).collect();
    let single = [stack.single_addr];
    // Who runs at each position: `None` is the single node.
    let mut order: Vec<Option<usize>> = std::iter::once(None)
        .chain((0..REPLICAS).map(Some))
        .collect();
    for who in &order {
        match who {
            None => closed_loop(&single, vec![0], &[single_pid], WARM_UP).await?,
            Some(index) => {
                let pids = [replica_pids[*index]];
                closed_loop(&stack.replica_addrs, vec![*index], &pids, WARM_UP).await?
            }
        };
    }
    let mut result = Throughput {
        single: Vec::new(),
        replicas: vec![Vec::new(); REPLICAS],
        together: Run {
            rps: 0.0,
            cpu_us_per_request: 0.0,
        },
    };
    for _ in 0..THROUGHPUT_ROUNDS {
        for who in &order {
            match who {
                None => result
                    .single
                    .push(closed_loop(&single, vec![0], &[single_pid], seconds).await?),
                Some(index) => {
                    let pids = [replica_pids[*index]];
                    let run =
                        closed_loop(&stack.replica_addrs, vec![*index], &pids, seconds).await?;
                    result.replicas[*index].push(run);
                }
            }
        }
        order.rotate_left(1);
    }
    result.together = closed_loop(
        &stack.replica_addrs,
        (0..REPLICAS).collect(),
        &replica_pids,
        seconds,
    )
    .await?;
    if let Some(mut single) = stack.single.take() {
        single.stop(Duration::from_secs(10));
    }
    Ok(result)
}

/// Drains the rpm key's bucket with a burst, then offers `OFFERED_FACTOR` times its refill rate
/// round-robin for `window` and counts what is accepted.
async fn rpm_figure(stack: &ClusterStack, window: Duration) -> Result<Check> {
    let all: Vec<usize> = (0..REPLICAS).collect();
    let load = |workers, rate, duration, stop| Load {
        replicas: all.clone(),
        addrs: stack.replica_addrs.clone(),
        key: RPM_KEY,
        body: chat_request("bench-model", None),
        workers,
        rate,
        duration,
        stop,
    };
    let burst = drive(
        load(16, None, Duration::from_secs(30), Stop::AtFirstRefusal),
        Shared::new(REPLICAS),
    )
    .await?;
    let drained = accepted(&burst);
    let rate = RPM as f64 / 60.0 * OFFERED_FACTOR;
    let sent = drive(
        load(16, Some(rate), window, Stop::Never),
        Shared::new(REPLICAS),
    )
    .await?;
    let expected = RPM as f64 * window.as_secs_f64() / 60.0;
    let got = accepted(&sent);
    let by_replica: Vec<usize> = (0..REPLICAS)
        .map(|replica| {
            sent.iter()
                .filter(|s| s.replica == replica && s.status == Some(200))
                .count()
        })
        .collect();
    let bad = failed(&sent) + failed(&burst);
    Ok(Check {
        name: format!(
            "rpm = {RPM}: accepted in {:.0} s across the replicas",
            window.as_secs_f64()
        ),
        value: format!(
            "{got} of {} offered ({} per replica; {drained} in the first burst; {bad} failed)",
            sent.len(),
            by_replica
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + ")
        ),
        limit: format!("{expected:.0} ± 2%"),
        pass: bad == 0 && (got as f64 - expected).abs() <= expected * 0.02,
        informational: false,
    })
}

#[derive(Clone, Copy)]
enum Budget {
    Tokens,
    Dollars,
}

/// Spends the key's budget with concurrent requests through every replica until every request
/// has been refused for 2 s, and compares what the rollups say was spent with the budget.
async fn budget_figure(stack: &ClusterStack, ops: &Ops, budget: Budget) -> Result<Check> {
    let (name, key, model, limit) = match budget {
        Budget::Tokens => ("tokens", TOKENS_KEY, "bench-model", TOKEN_BUDGET as f64),
        Budget::Dollars => ("dollars", DOLLARS_KEY, "priced", DOLLAR_BUDGET),
    };
    let body = chat_request(model, None);
    // What one request reserves: its prompt estimated from its size, and its `max_tokens`
    // (at the route's price, for dollars).
    let tokens = llmgate::limits::estimate_request_tokens(&body) as f64;
    let reservation = match budget {
        Budget::Tokens => tokens,
        Budget::Dollars => tokens * PRICE_PER_MILLION / 1e6,
    };
    let sent = drive(
        Load {
            replicas: (0..REPLICAS).collect(),
            addrs: stack.replica_addrs.clone(),
            key,
            body,
            workers: 12,
            rate: None,
            duration: Duration::from_secs(60),
            stop: Stop::WhenRefusedFor(Duration::from_secs(2)),
        },
        Shared::new(REPLICAS),
    )
    .await?;
    // Each replica writes its usage about once a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let addr = stack.replica_addrs[0];
    let token = ops.login(addr).await?;
    let usage = ops.get(addr, "/admin/usage?group_by=key", &token).await?;
    let line = usage["data"]
        .as_array()
        .and_then(|lines| lines.iter().find(|line| line["key"] == name))
        .ok_or_else(|| anyhow!("no usage for key {name}: {usage}"))?;
    let spent = match budget {
        Budget::Tokens => {
            line["prompt_tokens"].as_f64().unwrap_or(0.0)
                + line["completion_tokens"].as_f64().unwrap_or(0.0)
        }
        Budget::Dollars => line["cost_usd"].as_f64().unwrap_or(0.0),
    };
    let over = spent - limit;
    let show = |amount: f64| match budget {
        Budget::Tokens => format!("{amount:.0}"),
        Budget::Dollars => format!("${amount:.6}"),
    };
    let bad = failed(&sent);
    Ok(Check {
        name: format!("{name} budget: spend past the budget"),
        value: format!(
            "{} (spent {} of {} in {} requests; {bad} failed)",
            show(over.max(0.0)),
            show(spent),
            show(limit),
            accepted(&sent)
        ),
        limit: format!("≤ {} (one reservation)", show(reservation)),
        pass: bad == 0 && over <= reservation,
        informational: false,
    })
}

/// Revokes a key every replica has cached through the first; the time until both others
/// refuse it.
async fn revocation_figure(stack: &ClusterStack, ops: &Ops) -> Result<Check> {
    let addrs = &stack.replica_addrs;
    let body = chat_request("bench-model", None);
    let status = |addr: SocketAddr| ops.chat(addr, REVOKED_KEY, &body);
    // Cached by every replica after its change watcher first looked at the database.
    for _ in 0..2 {
        for addr in addrs {
            let answered = status(*addr).await?;
            if answered != 200 {
                bail!("the key to revoke was answered {answered} before its revocation");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let token = ops.login(addrs[0]).await?;
    let keys = ops.get(addrs[0], "/admin/keys?limit=1000", &token).await?;
    let id = keys["data"]
        .as_array()
        .and_then(|keys| keys.iter().find(|key| key["name"] == "revoked"))
        .and_then(|key| key["id"].as_i64())
        .ok_or_else(|| anyhow!("no key named revoked: {keys}"))?;
    let revoked_at = Instant::now();
    ops.client
        .post(format!("http://{}/admin/keys/{id}/revoke", addrs[0]))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?;
    let mut slowest = Duration::ZERO;
    for addr in &addrs[1..] {
        let refused = loop {
            if status(*addr).await? == 401 {
                break Some(revoked_at.elapsed());
            }
            if revoked_at.elapsed() > Duration::from_secs(10) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        slowest = slowest.max(refused.unwrap_or(Duration::MAX));
    }
    Ok(Check {
        name: "a key revoked through replica 1: refused by 2 and 3".into(),
        value: if slowest == Duration::MAX {
            "still accepted after 10 s".into()
        } else {
            format!("after {:.0} ms", slowest.as_secs_f64() * 1000.0)
        },
        limit: "≤ 1000 ms".into(),
        pass: slowest <= Duration::from_secs(1),
        informational: false,
    })
}

/// Replica 1 meets a 429 on pool account `p1`; how soon replicas 2 and 3 know, and whether they
/// then send it anything (an upstream retry would show they did: `p1` answers 429 throughout).
async fn cooldown_figures(stack: &ClusterStack, ops: &Ops) -> Result<Vec<Check>> {
    let addrs = &stack.replica_addrs;
    let limited = chat_request(
        "pooled",
        Some(json!({"status_for_key": {POOL_ONE: 429}, "retry_after": 60})),
    );
    let send = |addr: SocketAddr| ops.chat(addr, KEY, &limited);
    let tokens: Vec<String> = {
        let mut tokens = Vec::new();
        for addr in addrs {
            tokens.push(ops.login(*addr).await?);
        }
        tokens
    };
    let mut met = false;
    for _ in 0..40 {
        if send(addrs[0]).await? != 200 {
            bail!("replica 1 did not fail over from the limited account");
        }
        if ops.first_account_cooling(addrs[0], &tokens[0]).await? {
            met = true;
            break;
        }
    }
    if !met {
        bail!("replica 1 never picked the limited account in 40 requests");
    }
    let seen_at = Instant::now();
    let mut slowest = Duration::ZERO;
    for index in 1..REPLICAS {
        let known = loop {
            if ops
                .first_account_cooling(addrs[index], &tokens[index])
                .await?
            {
                break Some(seen_at.elapsed());
            }
            if seen_at.elapsed() > Duration::from_secs(10) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        slowest = slowest.max(known.unwrap_or(Duration::MAX));
    }
    let retries = |index: usize| ops.metric(addrs[index], "llmgate_upstream_retries_total");
    let before = retries(1).await? + retries(2).await?;
    let mut answered = 0;
    let requests = 30;
    for i in 0..requests {
        answered += usize::from(send(addrs[1 + i % 2]).await? == 200);
    }
    let tried = retries(1).await? + retries(2).await? - before;
    Ok(vec![
        Check {
            name: "a 429 cooldown met by replica 1: known by 2 and 3".into(),
            value: if slowest == Duration::MAX {
                "not known after 10 s".into()
            } else {
                format!("after {:.0} ms", slowest.as_secs_f64() * 1000.0)
            },
            limit: "≤ 1000 ms".into(),
            pass: slowest <= Duration::from_secs(1),
            informational: false,
        },
        Check {
            name: "… then honoured: requests 2 and 3 sent to that account".into(),
            value: format!("{tried:.0} (of {requests}; {answered} answered 200)"),
            limit: "0".into(),
            pass: tried == 0.0 && answered == requests,
            informational: false,
        },
    ])
}

/// A closed loop on every replica; Redis killed after 3 s and started again (empty) 3 s later.
/// Failed requests over the whole load, the time from Redis's return until every replica is
/// ready and not degraded, and whether a key's rpm is one limit again afterwards.
async fn redis_kill_figures(stack: &mut ClusterStack, ops: &Ops) -> Result<Vec<Check>> {
    let shared = Shared::new(REPLICAS);
    let load = tokio::spawn(drive(
        Load {
            replicas: (0..REPLICAS).collect(),
            addrs: stack.replica_addrs.clone(),
            key: KEY,
            body: chat_request("bench-model", None),
            workers: KILL_LOAD_WORKERS,
            rate: None,
            duration: Duration::from_secs(14),
            stop: Stop::Never,
        },
        Arc::clone(&shared),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.redis.kill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.redis.restart()?;
    let back_at = Instant::now();
    let mut recovered = None;
    while back_at.elapsed() < Duration::from_secs(10) {
        let mut all = true;
        for addr in &stack.replica_addrs {
            all &= ops.ready_and_shared(*addr).await;
        }
        if all {
            recovered = Some(back_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = load.await??;
    let while_down = sent
        .iter()
        .filter(|s| s.started >= killed_at && s.started < back_at && s.status == Some(200))
        .count();
    let bad = failed(&sent);
    // Shared again: 3 × rpm requests round-robin, one rpm accepted in all.
    let body = chat_request("bench-model", None);
    let mut again = Vec::new();
    for i in 0..REPLICAS * SHARED_AGAIN_RPM {
        let addr = stack.replica_addrs[i % REPLICAS];
        again.push(ops.chat(addr, SHARED_AGAIN_KEY, &body).await?);
    }
    let again_accepted = again.iter().filter(|status| **status == 200).count();
    Ok(vec![
        Check {
            name: "Redis killed mid-load: failed requests".into(),
            value: format!(
                "{bad} of {} ({while_down} served while it was down)",
                sent.len()
            ),
            limit: "0".into(),
            pass: bad == 0 && while_down > 0,
            informational: false,
        },
        Check {
            name: "… Redis back: every replica shares limits again".into(),
            value: match recovered {
                Some(after) => format!(
                    "after {:.2} s; rpm {SHARED_AGAIN_RPM} key: {again_accepted} of {} accepted",
                    after.as_secs_f64(),
                    again.len()
                ),
                None => "still degraded after 10 s".into(),
            },
            limit: format!("≤ 5 s, {SHARED_AGAIN_RPM} accepted"),
            pass: recovered.is_some_and(|after| after <= Duration::from_secs(5))
                && again_accepted == SHARED_AGAIN_RPM,
            informational: false,
        },
    ])
}

/// A closed loop of slow requests (the mock waits before answering) on every replica; replica
/// 3 killed with SIGKILL halfway. The requests lost, against those in flight on it then.
async fn replica_kill_figure(stack: &mut ClusterStack) -> Result<Check> {
    let shared = Shared::new(REPLICAS);
    let load = tokio::spawn(drive(
        Load {
            replicas: stack.alive(),
            addrs: stack.replica_addrs.clone(),
            key: KEY,
            body: chat_request("bench-model", Some(json!({"latency_ms": KILL_LATENCY_MS}))),
            workers: KILL_LOAD_WORKERS,
            rate: None,
            duration: Duration::from_secs(6),
            stop: Stop::Never,
        },
        Arc::clone(&shared),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = REPLICAS - 1;
    let in_flight = shared.in_flight[victim].load(Ordering::SeqCst);
    let killed_at = Instant::now();
    if let Some(mut proc) = stack.replicas[victim].take() {
        let _ = proc.child.kill();
        let _ = proc.child.wait();
    }
    let sent = load.await??;
    let lost: Vec<&Sent> = sent.iter().filter(|s| s.status != Some(200)).collect();
    let lost_in_flight = lost
        .iter()
        .filter(|s| s.replica == victim && s.started < killed_at)
        .count();
    let lost_otherwise = lost.len() - lost_in_flight;
    let served_after = sent
        .iter()
        .filter(|s| s.started >= killed_at && s.status == Some(200))
        .count();
    Ok(Check {
        name: "replica 3 killed mid-load: requests lost".into(),
        value: format!(
            "{} ({lost_in_flight} in flight on it, {lost_otherwise} otherwise; {served_after} served by 1 and 2 after)",
            lost.len()
        ),
        limit: format!("= its {in_flight} in flight"),
        pass: lost_otherwise == 0 && lost_in_flight == in_flight && served_after > 0,
        informational: false,
    })
}

fn print_cluster(report: &ClusterReport) {
    println!(
        "\nSeveral replicas (#20), {}: {REPLICAS} llmgate replicas on {} + Redis, one load generator round-robin across them",
        report.date,
        match report.backend {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "one SQLite file",
        }
    );
    for server in &report.servers {
        println!("  {server}");
    }
    println!(
        "  load average {:.2} before, {:.2} after (a shared machine)",
        report.load_average_before, report.load_average_after
    );
    for note in &report.notes {
        println!("  {note}");
    }
    println!();
    for figure in &report.figures {
        println!(
            "  {:<8} {:<56} {}  (limit {})",
            if figure.informational {
                "info"
            } else if figure.pass {
                "met"
            } else {
                "NOT MET"
            },
            figure.name,
            figure.value,
            figure.limit
        );
    }
}
