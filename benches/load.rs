//! The load bench behind `make bench` (and `make soak`): llmgate against a plain nginx reverse
//! proxy and against the mock upstream directly, measured in the same run on the same machine.
//!
//! It starts two `llmgate mock-upstream` processes (one fast, one paced for streams), the gateway
//! with a bench config (auth, limits, two routes, usage accounting: everything on), and nginx as a
//! reverse proxy to the same mocks, and three bare floor proxies (see `load/floor.rs`) in front of
//! each mock. The gateway, nginx and the floors are pinned to core 0; the mocks and this
//! program, the load generator, to core 1. Each phase is a closed loop of N keep-alive
//! connections for a fixed time; every latency is kept, so percentiles are exact.
//!
//! Run it with `cargo bench --bench load`: every phase, then the streams at scale of
//! `load/streams.rs`, then the budget table of `load/budget.rs` (`-- --chat` without the
//! streams at scale, `-- --streams` for those alone, `-- --latency` for the c=1 phases in
//! rounds, a second gateway binary beside the first with `LLMGATE_BIN_B`, `-- --soak` for the
//! soak, `-- --soak-streams` for the soak with streams of `load/soak_streams.rs`, `-- --cluster`
//! for the replicas of `load/cluster.rs`). Without `--bench` on its command line (as `cargo test --all-targets`
//! runs bench targets) it only checks the budget table's judgement on made-up figures
//! (`budget::self_check`), starting nothing.
//! Settings come from the environment: `BENCH_SECONDS` (per phase, default 10), `SOAK_SECONDS`
//! (default 600), `SOAK_RPS` (default: half of llmgate's c=64 throughput in the last bench run),
//! `LLMGATE_BIN` (default: the release binary), `NGINX` (default: `nginx` on the PATH or in
//! /usr/sbin), `BENCH_ENFORCE=1` (exit 3 when a figure misses the budget),
//! `BENCH_QUICK_CONNECTIONS` (the connections of `--quick`, default 64); for `--cluster`,
//! `CLUSTER_DB` (`postgres`, the default, or `sqlite`), `CLUSTER_RPM_SECONDS` (default 60) and
//! `CLUSTER_SECONDS` (each throughput run, default 10). `LLMGATE_*` variables reach the gateway
//! unchanged.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(
    clippy::disallowed_methods,
    reason = "the load generator is a client with tasks of its own, not part of llmgate"
)]
#![expect(
    clippy::print_stderr,
    reason = "a benchmark reports its progress on stderr"
)]

#[path = "load/budget.rs"]
mod budget;
#[path = "load/cluster.rs"]
mod cluster;
#[path = "load/floor.rs"]
mod floor;
/// The throwaway PostgreSQL server of the tests, which the cluster bench starts the same way.
#[path = "../tests/support/postgres.rs"]
#[expect(
    clippy::expect_used,
    reason = "the tests' helper panics with what to install when PostgreSQL is missing"
)]
mod pg_cluster;
#[path = "load/soak_streams.rs"]
mod soak_streams;
#[path = "load/streams.rs"]
mod streams;

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::time::Instant;

use budget::BudgetLine;
use floor::Floor;

/// The allocator llmgate uses, so the floors compare like with like.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The gateway and nginx run here; the mocks and the load generator on `CLIENT_CORE`.
const PROXY_CORE: usize = 0;
const CLIENT_CORE: usize = 1;
/// Connections of each non-streaming and streaming level.
const CHAT_LEVELS: [usize; 3] = [1, 64, 256];
const STREAM_LEVELS: [usize; 2] = [1, 256];
/// Levels at which the floor proxies are measured too (the chat levels, and the stream levels
/// through the floors in front of the paced mock): every one, so each line of the budget has
/// the floors' figure beside llmgate's.
const FLOOR_LEVELS: [usize; 3] = [1, 64, 256];
/// The paced mock: content chunks per stream and the delay before each.
const STREAM_CHUNKS: usize = 32;
const CHUNK_DELAY_MS: u64 = 10;
/// `data:` frames a client must see: role, the content chunks, finish, `[DONE]`.
const EXPECTED_FRAMES: usize = STREAM_CHUNKS + 3;
/// A silence between two chunks of a paced stream longer than this is a stall.
const STALL: Duration = Duration::from_millis(100);
/// Requests started during the warm-up of a phase are not counted.
const WARM_UP: Duration = Duration::from_secs(1);
/// How often the gateway's RSS is sampled during the bench, and during the soak.
const RSS_EVERY: Duration = Duration::from_millis(100);
const SOAK_RSS_EVERY: Duration = Duration::from_secs(5);
const KEY: &str = "sk-bench-0123456789abcdef0123456789";
const UPSTREAM_KEY: &str = "sk-upstream-bench-account";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--floor-proxy") {
        return match floor::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("floor proxy: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`: only the check of
        // the budget table's judgement, which starts nothing and times nothing.
        return match budget::self_check().and_then(|()| floor::contract_self_check()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("budget table check: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mode = if args.iter().any(|a| a == "--soak-streams") {
        Mode::SoakStreams
    } else if args.iter().any(|a| a == "--soak") {
        Mode::Soak
    } else if args.iter().any(|a| a == "--profile") {
        Mode::Profile
    } else if args.iter().any(|a| a == "--quick") {
        Mode::Quick
    } else if args.iter().any(|a| a == "--latency") {
        Mode::Latency
    } else if args.iter().any(|a| a == "--streams") {
        Mode::Streams
    } else if args.iter().any(|a| a == "--cluster") {
        Mode::Cluster
    } else if args.iter().any(|a| a == "--chat") {
        Mode::Chat
    } else {
        Mode::Bench
    };
    match run(mode) {
        Ok(true) => ExitCode::SUCCESS,
        // The bench ran but some figure is over budget; the report says which. It fails the
        // command only when asked to (`BENCH_ENFORCE=1`), as a gate would.
        Ok(false) if std::env::var("BENCH_ENFORCE").is_ok_and(|v| v == "1") => ExitCode::from(3),
        Ok(false) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Every phase, the streams at scale included, then the budget table.
    Bench,
    /// The chat and c=1/c=256 stream phases only, then the budget lines they measure.
    Chat,
    Soak,
    /// 2,000 concurrent paced streams, each renewed as it ends (see `soak_streams`).
    SoakStreams,
    /// The gateway under the c=64 chat load, sampled by `perf record`.
    Profile,
    /// Only the c=64 chat phase, llmgate, nginx and the floor proxies in turn for
    /// `BENCH_ROUNDS` rounds: the quick loop of optimisation work.
    Quick,
    /// Only the c=1 chat and stream phases, llmgate (and a second llmgate binary,
    /// `LLMGATE_BIN_B`, when set), nginx, the mock and the floors in turn for `BENCH_ROUNDS`
    /// rounds: the quick loop of latency work, before and after binaries in the same run.
    Latency,
    /// 1,000 and 10,000 concurrent long streams (see `streams`).
    Streams,
    /// Three replicas on PostgreSQL and Redis (see `cluster`).
    Cluster,
}

fn run(mode: Mode) -> Result<bool> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        bail!(
            "the bench needs two cores (the proxy on one, load generator and mock on the other); this process may use {cores}"
        );
    }
    // Pin this process before the runtime starts, so every thread it makes stays on the core.
    pin(std::process::id(), CLIENT_CORE)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let work = async {
            match mode {
                Mode::Bench => bench_run(true).await,
                Mode::Chat => bench_run(false).await,
                Mode::Soak => soak_run().await,
                Mode::SoakStreams => soak_streams::run().await,
                Mode::Profile => profile_run().await,
                Mode::Quick => quick_run().await,
                Mode::Latency => latency_run().await,
                Mode::Streams => streams::run().await,
                Mode::Cluster => cluster::run().await,
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Dropping `work` drops every `Proc`, which stops its process.
        tokio::select! {
            result = work => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; child processes stopped")),
            _ = term.recv() => Err(anyhow!("terminated; child processes stopped")),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Settings and the machine

struct Settings {
    seconds: Duration,
    bin: PathBuf,
    out_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let seconds = env_seconds("BENCH_SECONDS", 10.0)?;
        let bin = match std::env::var_os("LLMGATE_BIN") {
            Some(path) => PathBuf::from(path),
            None => option_env!("CARGO_BIN_EXE_llmgate")
                .map_or_else(|| target_dir().join("release/llmgate"), PathBuf::from),
        };
        if !bin.is_file() {
            bail!(
                "{} does not exist; build it with `cargo build --release` (or run `make bench`)",
                bin.display()
            );
        }
        Ok(Self {
            seconds,
            bin,
            out_dir: target_dir().join("bench"),
        })
    }
}

fn env_seconds(name: &str, default: f64) -> Result<Duration> {
    let seconds = match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .with_context(|| format!("{name}={text} is not a number of seconds"))?,
        Err(_) => default,
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        bail!("{name} must be between 0 and 86400 seconds");
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    )
}

#[derive(Debug, Clone, Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
    hostname: String,
    clock_ticks_per_second: u64,
    commit: String,
}

impl Machine {
    fn read() -> Self {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, name)| name.trim().to_owned())
            })
            .unwrap_or_default();
        let commit = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
        let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|text| !text.is_empty());
        Self {
            cores: cpu_count(),
            cpu,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
            clock_ticks_per_second: clock_ticks(),
            commit: if dirty {
                format!("{commit}+dirty")
            } else {
                commit
            },
        }
    }
}

/// Online CPUs of the machine (not of this process, which is pinned to one).
fn cpu_count() -> usize {
    fs::read_to_string("/proc/cpuinfo")
        .map(|text| text.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn clock_ticks() -> u64 {
    command_output("getconf", &["CLK_TCK"])
        .and_then(|text| text.parse().ok())
        .unwrap_or(100)
}

fn pin(pid: u32, core: usize) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("taskset (util-linux) is needed to pin processes to cores")?;
    if !status.success() {
        bail!("taskset could not pin process {pid} to core {core}");
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process that is stopped when dropped: on success, on error, on Ctrl-C alike.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Runs `program args` pinned to `core`, its output into `log`.
    fn spawn(
        name: &'static str,
        core: usize,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Result<Self> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        Ok(Self { name, child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the process's log when it has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log)
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`; returns whether it exited on the SIGTERM.
    fn stop(&mut self, grace: Duration) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        signal(self.pid(), "TERM");
        let until = std::time::Instant::now() + grace;
        while std::time::Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let children = child_pids(self.pid());
        self.stop(Duration::from_secs(3));
        // nginx's worker outlives a master killed with SIGKILL.
        for pid in children {
            signal(pid, "KILL");
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The fields of `/proc/PID/stat` after the command name: index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_fields(*pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(parent))
        .collect()
}

/// utime + stime of the processes, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    let (user, system) = cpu_ticks_split(pids);
    user + system
}

/// utime and stime of the processes, apart, in clock ticks.
fn cpu_ticks_split(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .filter_map(|pid| {
            let fields = stat_fields(*pid)?;
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime, stime))
        })
        .fold((0, 0), |(u, s), (du, ds)| (u + du, s + ds))
}

/// Busy and total clock ticks of each core so far, from `/proc/stat`.
fn core_ticks() -> Vec<(u64, u64)> {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|line| {
            // user nice system idle iowait irq softirq steal …
            let values: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: u64 = values.iter().take(8).sum();
            let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// The share of each core that was busy between two `core_ticks` readings.
fn busy_between(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((busy0, total0), (busy1, total1))| {
            let total = total1.saturating_sub(*total0);
            if total == 0 {
                0.0
            } else {
                busy1.saturating_sub(*busy0) as f64 / total as f64
            }
        })
        .collect()
}

/// The 1-minute load average.
fn load_average() -> f64 {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Resident set size of the processes, in KiB.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| status_kib(*pid, "VmRSS:"))
        .sum()
}

/// A figure in KiB of `/proc/PID/status` (`VmRSS:`, `RssFile:`, …).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok()
}

/// Everything the bench started, with what it needs to reach each.
struct Stack {
    dir: tempfile::TempDir,
    mock: Proc,
    paced: Proc,
    gateway: Proc,
    nginx: Option<Proc>,
    mock_addr: SocketAddr,
    paced_addr: SocketAddr,
    gateway_addr: SocketAddr,
    /// nginx in front of the fast mock, and in front of the paced mock.
    nginx_addrs: Option<(SocketAddr, SocketAddr)>,
    /// The floors in front of the fast mock (started with nginx).
    floors: Vec<FloorProc>,
    /// The same floors in front of the paced mock, for the stream phases (started with nginx):
    /// a floor forwards to one upstream, as nginx's two servers do.
    paced_floors: Vec<FloorProc>,
    /// Requests the gateway answered while the bench waited for it to be ready.
    gateway_answered: u64,
}

impl Stack {
    async fn start(settings: &Settings, with_nginx: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("llmgate-bench-")
            .tempdir()?;
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mock_addr = loopback(free_port()?);
        let paced_addr = loopback(free_port()?);
        let gateway_addr = loopback(free_port()?);

        let mock = Proc::spawn(
            "mock upstream",
            CLIENT_CORE,
            &settings.bin,
            &strings(&["mock-upstream", "--listen", &mock_addr.to_string()]),
            &[],
            dir.path().join("mock.log"),
        )?;
        let paced = Proc::spawn(
            "paced mock upstream",
            CLIENT_CORE,
            &settings.bin,
            &strings(&[
                "mock-upstream",
                "--listen",
                &paced_addr.to_string(),
                "--chunks",
                &STREAM_CHUNKS.to_string(),
                "--chunk-delay",
                &format!("{CHUNK_DELAY_MS}ms"),
            ]),
            &[],
            dir.path().join("paced.log"),
        )?;

        let db = dir.path().join("db");
        fs::create_dir(&db)?;
        let gateway = spawn_gateway(
            settings,
            dir.path(),
            &gateway_config(mock_addr, paced_addr),
            gateway_addr,
            &db.join("llmgate.db"),
        )?;

        let (nginx, nginx_addrs) = if with_nginx {
            let front = loopback(free_port()?);
            let paced_front = loopback(free_port()?);
            let prefix = dir.path().join("nginx");
            fs::create_dir(&prefix)?;
            let conf = prefix.join("nginx.conf");
            fs::write(
                &conf,
                nginx_config(&prefix, [(front, mock_addr), (paced_front, paced_addr)]),
            )?;
            let nginx = spawn_nginx(&prefix, &conf)?;
            (Some(nginx), Some((front, paced_front)))
        } else {
            (None, None)
        };
        let (floors, paced_floors) = if with_nginx {
            (
                spawn_floors(dir.path(), "", |_| mock_addr)?,
                spawn_floors(dir.path(), "paced-", |_| paced_addr)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };

        let mut stack = Self {
            dir,
            mock,
            paced,
            gateway,
            nginx,
            mock_addr,
            paced_addr,
            gateway_addr,
            nginx_addrs,
            floors,
            paced_floors,
            gateway_answered: 0,
        };
        stack.wait_ready().await?;
        Ok(stack)
    }

    /// Waits until every server answers a real request correctly.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let direct = Target::direct(self.mock_addr, false);
        wait_answering(&direct, &mut self.mock, deadline).await?;
        let paced = Target::direct(self.paced_addr, true);
        wait_answering(&paced, &mut self.paced, deadline).await?;
        for stream in [false, true] {
            let target = Target::llmgate(self.gateway_addr, stream);
            self.gateway_answered += wait_answering(&target, &mut self.gateway, deadline).await?;
        }
        if let (Some((front, paced_front)), Some(nginx)) = (self.nginx_addrs, &mut self.nginx) {
            wait_answering(&Target::nginx(front, false), nginx, deadline).await?;
            wait_answering(&Target::nginx(paced_front, true), nginx, deadline).await?;
        }
        for (floors, stream) in [(&mut self.floors, false), (&mut self.paced_floors, true)] {
            for floor in floors {
                let target = Target::new(Via::floor(floor.floor), floor.addr, stream);
                wait_answering(&target, &mut floor.proc, deadline).await?;
            }
        }
        Ok(())
    }

    fn nginx_pids(&self) -> Vec<u32> {
        self.nginx.as_ref().map_or_else(Vec::new, |nginx| {
            let mut pids = vec![nginx.pid()];
            pids.extend(child_pids(nginx.pid()));
            pids
        })
    }
}

/// A floor proxy the bench started, and where it listens.
struct FloorProc {
    floor: Floor,
    proc: Proc,
    addr: SocketAddr,
}

/// Starts the floor proxies on the proxy core, each in front of `upstream(floor)`, their logs in
/// `dir` (named after `prefix`), each keeping idle upstream connections as long as llmgate does.
fn spawn_floors(
    dir: &Path,
    prefix: &str,
    upstream: impl Fn(Floor) -> SocketAddr,
) -> Result<Vec<FloorProc>> {
    let exe = std::env::current_exe()?;
    let pool_idle = pool_idle_timeout()?;
    let mut floors = Vec::new();
    for (floor, name) in [
        (Floor::AxumReqwest, "floor proxy (axum + reqwest)"),
        (Floor::AxumHyper, "floor proxy (axum + hyper-util)"),
        (Floor::Hyper, "floor proxy (hyper)"),
        (
            Floor::Contract,
            "floor proxy (the contract's work on axum + reqwest)",
        ),
    ] {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut args = strings(&[
            "--floor-proxy",
            floor.arg(),
            &addr.to_string(),
            &upstream(floor).to_string(),
            &pool_idle.as_millis().to_string(),
        ]);
        if floor == Floor::Contract {
            let database = dir.join(format!("{prefix}floor-contract.db"));
            args.push(database.display().to_string());
        }
        let proc = Proc::spawn(
            name,
            PROXY_CORE,
            &exe,
            &args,
            &[],
            dir.join(format!("{prefix}floor-{}.log", floor.arg())),
        )?;
        floors.push(FloorProc { floor, proc, addr });
    }
    Ok(floors)
}

/// How long after its last request an upstream pool has surely closed its idle connections:
/// hyper-util's pool (under reqwest, and the floors') sweeps them on a timer of the idle
/// timeout itself, closing at each sweep those idle longer than the timeout, so one may live
/// up to twice the timeout (`client/legacy/pool.rs`, `IdleTask::run`, hyper-util 0.1.21).
fn pool_expiry(pool_idle: Duration) -> Duration {
    pool_idle * 2 + AFTER_MARGIN
}

/// How long llmgate keeps an idle upstream connection: `LLMGATE_UPSTREAM_POOL_IDLE_TIMEOUT`
/// as the gateway reads it (it inherits this process's environment), else its default, 90 s.
fn pool_idle_timeout() -> Result<Duration> {
    match std::env::var("LLMGATE_UPSTREAM_POOL_IDLE_TIMEOUT") {
        Ok(text) => humantime::parse_duration(text.trim()).with_context(|| {
            format!("LLMGATE_UPSTREAM_POOL_IDLE_TIMEOUT={text} is not a duration (e.g. 90s)")
        }),
        Err(_) => Ok(Duration::from_secs(90)),
    }
}

/// Sends `target`'s request until `process` answers it correctly; returns the answers it gave
/// (any status), failing with the end of its log if it exits or is not ready by `deadline`.
async fn wait_answering(target: &Target, process: &mut Proc, deadline: Instant) -> Result<u64> {
    let mut answered = 0;
    loop {
        let answer = one_request(target).await;
        answered += u64::from(answer.is_ok());
        let error = match answer {
            Ok(outcome) if outcome.status == StatusCode::OK && outcome.frames_ok => {
                return Ok(answered);
            }
            Ok(outcome) => anyhow!(
                "answered {} ({} data frames, {EXPECTED_FRAMES} expected)",
                outcome.status,
                outcome.frames
            ),
            Err(error) => error,
        };
        process.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} at {} is not ready after 30 s: {error:#}; the end of its log ({}):\n{}",
                process.name,
                target.addr,
                process.log.display(),
                log_tail(&process.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Starts `llmgate serve` on core 0 with `config` (written into `dir`), listening on `addr`,
/// its database at `db`; `LLMGATE_SHUTDOWN_GRACE` defaults to 5 s.
fn spawn_gateway(
    settings: &Settings,
    dir: &Path,
    config: &str,
    addr: SocketAddr,
    db: &Path,
) -> Result<Proc> {
    let config_path = dir.join("llmgate.toml");
    fs::write(&config_path, config)?;
    let grace = std::env::var("LLMGATE_SHUTDOWN_GRACE").unwrap_or_else(|_| "5s".into());
    Proc::spawn(
        "llmgate",
        PROXY_CORE,
        &settings.bin,
        &strings(&[
            "serve",
            "--config",
            &config_path.display().to_string(),
            "--listen",
            &addr.to_string(),
            "--database",
            &format!("sqlite://{}", db.display()),
        ]),
        &[("LLMGATE_SHUTDOWN_GRACE", &grace)],
        dir.join("llmgate.log"),
    )
}

/// Starts nginx on core 0 with the configuration file `conf`, its files under `prefix`.
fn spawn_nginx(prefix: &Path, conf: &Path) -> Result<Proc> {
    Proc::spawn(
        "nginx",
        PROXY_CORE,
        &nginx_binary()?,
        &strings(&[
            "-p",
            &prefix.display().to_string(),
            "-c",
            &conf.display().to_string(),
            "-e",
            &prefix.join("error.log").display().to_string(),
        ]),
        &[],
        prefix.join("stderr.log"),
    )
}

fn nginx_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("NGINX") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|path| path.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .ok_or_else(|| anyhow!("nginx is not installed; `bash benches/setup.sh` installs it"))
}

/// The gateway's config: a provider per mock, a model with two routes on each, a key whose
/// limits never refuse. Usage accounting and the request log are on by default.
fn gateway_config(mock: SocketAddr, paced: SocketAddr) -> String {
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
name = "mock-paced"
kind = "openai"
base_url = "http://{paced}/v1"

  [[providers.accounts]]
  name = "p1"
  api_key = "{UPSTREAM_KEY}-2"

[[models]]
name = "bench-model"

  [[models.routes]]
  provider = "mock"
  model = "mock-a"

  [[models.routes]]
  provider = "mock"
  model = "mock-b"

[[models]]
name = "bench-stream"

  [[models.routes]]
  provider = "mock-paced"
  model = "paced-a"

  [[models.routes]]
  provider = "mock-paced"
  model = "paced-b"

[[keys]]
name = "bench"
key = "{KEY}"
rpm = {max}
tpm = {max}
"#,
        max = u32::MAX
    )
}

/// A plain reverse proxy: one worker, keep-alive to the upstream, no buffering, no access log.
fn nginx_config(prefix: &Path, servers: [(SocketAddr, SocketAddr); 2]) -> String {
    let p = prefix.display();
    // A master started as root hands the worker to `user`; root keeps the temp dirs writable.
    let is_root = fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    });
    let mut text = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\n{}pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/client_body;\n  \
         proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  \
         scgi_temp_path {p}/scgi;\n  keepalive_requests 1000000;\n  keepalive_timeout 75s;\n",
        if is_root { "user root;\n" } else { "" }
    );
    for (index, (listen, upstream)) in servers.iter().enumerate() {
        let _ = write!(
            text,
            "  upstream mock{index} {{\n    server {upstream};\n    keepalive 512;\n    \
             keepalive_requests 1000000;\n  }}\n  server {{\n    listen {listen};\n    \
             location / {{\n      proxy_pass http://mock{index};\n      proxy_http_version 1.1;\n      \
             proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n"
        );
    }
    text.push_str("}\n");
    text
}

// ---------------------------------------------------------------------------------------------
// The load generator

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Via {
    Llmgate,
    Nginx,
    Direct,
    /// The floors (see `floor`): a bare proxy on axum + reqwest, and on hyper alone.
    #[serde(rename = "floor-axum-reqwest")]
    FloorAxumReqwest,
    #[serde(rename = "floor-axum-hyper")]
    FloorAxumHyper,
    #[serde(rename = "floor-hyper")]
    FloorHyper,
    /// The contract floor: the axum + reqwest floor doing the contract's least work.
    #[serde(rename = "floor-contract")]
    FloorContract,
}

// `ALL` lists every server in the enum's order, which `streams` indexes by.
const _: () = {
    let mut i = 0;
    while i < Via::ALL.len() {
        assert!(
            Via::ALL[i] as usize == i,
            "Via::ALL is out of the enum's order"
        );
        i += 1;
    }
};

impl Via {
    /// Every server a phase can go to, in the enum's order (`ALL[via as usize] == via`).
    const ALL: [Self; 7] = [
        Self::Llmgate,
        Self::Nginx,
        Self::Direct,
        Self::FloorAxumReqwest,
        Self::FloorAxumHyper,
        Self::FloorHyper,
        Self::FloorContract,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Llmgate => "llmgate",
            Self::Nginx => "nginx",
            Self::Direct => "direct",
            Self::FloorAxumReqwest => "axum+reqwest",
            Self::FloorAxumHyper => "axum+hyper",
            Self::FloorHyper => "hyper",
            Self::FloorContract => "contract",
        }
    }

    fn floor(floor: Floor) -> Self {
        match floor {
            Floor::AxumReqwest => Self::FloorAxumReqwest,
            Floor::AxumHyper => Self::FloorAxumHyper,
            Floor::Hyper => Self::FloorHyper,
            Floor::Contract => Self::FloorContract,
        }
    }
}

/// Where the requests of a phase go, and the request they send.
#[derive(Clone)]
struct Target {
    via: Via,
    addr: SocketAddr,
    stream: bool,
    host: HeaderValue,
    authorization: HeaderValue,
    body: Bytes,
}

impl Target {
    fn new(via: Via, addr: SocketAddr, stream: bool) -> Self {
        let model = if stream {
            "bench-stream"
        } else {
            "bench-model"
        };
        // A small but typical chat request; the mock echoes the last user message.
        let body = format!(
            r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a concise assistant."}},{{"role":"user","content":"Summarise the benchmark in one short sentence, please."}}],"temperature":0.2,"max_tokens":64{}}}"#,
            if stream { r#","stream":true"# } else { "" }
        );
        Self {
            via,
            addr,
            stream,
            host: HeaderValue::from_str(&addr.to_string())
                .unwrap_or(HeaderValue::from_static("localhost")),
            authorization: HeaderValue::from_str(&format!("Bearer {KEY}"))
                .unwrap_or(HeaderValue::from_static("")),
            body: Bytes::from(body),
        }
    }

    fn llmgate(addr: SocketAddr, stream: bool) -> Self {
        Self::new(Via::Llmgate, addr, stream)
    }

    fn nginx(addr: SocketAddr, stream: bool) -> Self {
        Self::new(Via::Nginx, addr, stream)
    }

    fn direct(addr: SocketAddr, stream: bool) -> Self {
        Self::new(Via::Direct, addr, stream)
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/v1/chat/completions");
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        headers.insert(header::AUTHORIZATION, self.authorization.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One answered request.
struct Outcome {
    status: StatusCode,
    latency: Duration,
    /// To the first body bytes.
    ttfb: Duration,
    frames: usize,
    /// A stream carried exactly the expected frames and ended with `[DONE]` (true when not a
    /// stream).
    frames_ok: bool,
    stalls: u32,
    max_gap: Duration,
}

async fn exchange(sender: &mut Sender, target: &Target) -> Result<Outcome> {
    let request = target.request();
    let started = Instant::now();
    let response = sender.send_request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut stalls = 0;
    let mut max_gap = Duration::ZERO;
    let mut text: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let now = Instant::now();
        first.get_or_insert(now);
        if let Some(previous) = last {
            let gap = now - previous;
            max_gap = max_gap.max(gap);
            if gap > STALL {
                stalls += 1;
            }
        }
        last = Some(now);
        if target.stream {
            text.extend_from_slice(&data);
        }
    }
    let done = Instant::now();
    let (frames, frames_ok) = if target.stream {
        let data: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|line| line.starts_with(b"data:"))
            .collect();
        let ends = data
            .last()
            .is_some_and(|l| l.trim_ascii_end() == b"data: [DONE]");
        (data.len(), ends && data.len() == EXPECTED_FRAMES)
    } else {
        (0, true)
    };
    Ok(Outcome {
        status,
        latency: done - started,
        ttfb: first.unwrap_or(done) - started,
        frames,
        frames_ok,
        stalls,
        max_gap,
    })
}

async fn one_request(target: &Target) -> Result<Outcome> {
    let mut sender = connect(target.addr).await?;
    tokio::time::timeout(Duration::from_secs(10), exchange(&mut sender, target))
        .await
        .map_err(|_| anyhow!("no answer within 10 s"))?
}

/// What the connections of one phase saw.
#[derive(Default)]
struct Tally {
    /// Latencies and times to first byte of counted requests, in nanoseconds.
    latencies: Vec<u64>,
    ttfbs: Vec<u64>,
    /// Answers of any status, counted or not (warm-up included): what the gateway served.
    answered: u64,
    /// Counted requests that failed: transport errors, non-200 answers, broken streams.
    errors: u64,
    bad_streams: u64,
    stalls: u64,
    max_gap: Duration,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.ttfbs.extend(other.ttfbs);
        self.answered += other.answered;
        self.errors += other.errors;
        self.bad_streams += other.bad_streams;
        self.stalls += other.stalls;
        self.max_gap = self.max_gap.max(other.max_gap);
        self.last_done = self.last_done.max(other.last_done);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn failed(&mut self, why: String) {
        self.errors += 1;
        self.first_error.get_or_insert(why);
    }
}

/// One closed-loop connection: send, wait for the whole answer, send again, until `end`. With
/// `pace`, requests start no more often than that (the soak's fixed rate).
async fn connection(
    target: Arc<Target>,
    warm_until: Instant,
    end: Instant,
    pace: Option<Duration>,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<Sender> = None;
    let mut next = Instant::now();
    loop {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next).await;
            next = (next + pace).max(Instant::now());
        }
        if Instant::now() >= end {
            break;
        }
        let mut current = match sender.take() {
            Some(current) => current,
            None => match connect(target.addr).await {
                Ok(current) => current,
                Err(error) => {
                    tally.failed(format!("connect: {error:#}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        // A connection the server closed between requests is replaced, not counted.
        if current.ready().await.is_err() {
            continue;
        }
        let started = Instant::now();
        let counted = started >= warm_until;
        match exchange(&mut current, &target).await {
            Ok(outcome) => {
                tally.answered += 1;
                tally.last_done = Some(Instant::now());
                sender = Some(current);
                if !counted {
                    continue;
                }
                if outcome.status != StatusCode::OK {
                    tally.failed(format!("status {}", outcome.status));
                    continue;
                }
                if !outcome.frames_ok {
                    tally.bad_streams += 1;
                    tally.failed(format!(
                        "a stream had {} data frames, {EXPECTED_FRAMES} expected",
                        outcome.frames
                    ));
                }
                tally.stalls += u64::from(outcome.stalls);
                tally.max_gap = tally.max_gap.max(outcome.max_gap);
                tally.latencies.push(nanos(outcome.latency));
                tally.ttfbs.push(nanos(outcome.ttfb));
            }
            Err(error) => {
                tally.last_done = Some(Instant::now());
                if counted {
                    tally.failed(format!("request: {error:#}"));
                }
            }
        }
    }
    tally
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The `q` quantile (0–1) of sorted samples, in microseconds.
fn quantile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Phases

#[derive(Debug, Clone, Serialize)]
struct Phase {
    via: Via,
    stream: bool,
    concurrency: usize,
    /// Counted requests that succeeded, and the time they took, warm-up excluded.
    requests: u64,
    seconds: f64,
    rps: f64,
    errors: u64,
    first_error: Option<String>,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    ttfb_p50_us: f64,
    ttfb_p99_us: f64,
    /// Streams that did not carry exactly the expected frames.
    bad_streams: u64,
    stalls: u64,
    max_gap_ms: f64,
    /// CPU time (utime + stime) of the server the client talks to, per counted request.
    server_cpu_us_per_request: f64,
    /// The user-space part of it.
    server_user_us_per_request: f64,
    /// The kernel part of it.
    server_system_us_per_request: f64,
    /// Peak RSS of that server during the phase, in MiB.
    server_peak_rss_mib: f64,
    /// Answers of any status including the warm-up.
    answered: u64,
    /// Busy share of each core during the measured part of the phase.
    core_busy: Vec<f64>,
    /// The proxy core's busy share that was not the server's own CPU time: other processes,
    /// interrupts. Zero on a quiet machine; above a few percent, the phase was disturbed.
    proxy_core_foreign: f64,
}

/// The stack with nginx in front of the mocks, RSS sampled from the start, and llmgate's RSS
/// once it answered its readiness requests and was left alone for a second.
struct Compared {
    stack: Stack,
    /// nginx in front of the fast mock.
    front: SocketAddr,
    /// nginx in front of the paced mock.
    paced_front: SocketAddr,
    gateway_pid: u32,
    nginx_pids: Vec<u32>,
    rss: RssLog,
    sampler: tokio::task::JoinHandle<()>,
    /// llmgate's idle RSS, in KiB.
    idle: u64,
    /// Of it, the pages of mapped files (its executable's code, mostly), in KiB.
    idle_files: u64,
}

impl Compared {
    async fn start(settings: &Settings) -> Result<Self> {
        let stack = Stack::start(settings, true).await?;
        let (front, paced_front) = stack
            .nginx_addrs
            .ok_or_else(|| anyhow!("nginx did not start"))?;
        let gateway_pid = stack.gateway.pid();
        let nginx_pids = stack.nginx_pids();
        let (rss, sampler) = RssLog::start(vec![gateway_pid], nginx_pids.clone(), RSS_EVERY);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = rss_kib(&[gateway_pid]);
        let idle_files = status_kib(gateway_pid, "RssFile:").unwrap_or(0);
        Ok(Self {
            stack,
            front,
            paced_front,
            gateway_pid,
            nginx_pids,
            rss,
            sampler,
            idle,
            idle_files,
        })
    }
}

/// Samples RSS of the gateway (or any server) and nginx in the background.
#[derive(Clone, Default)]
struct RssLog {
    samples: Arc<Mutex<Vec<(Instant, u64, u64)>>>,
}

impl RssLog {
    fn start(
        gateway: Vec<u32>,
        nginx: Vec<u32>,
        every: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let log = Self::default();
        let samples = Arc::clone(&log.samples);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let sample = (Instant::now(), rss_kib(&gateway), rss_kib(&nginx));
                samples
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sample);
            }
        });
        (log, task)
    }

    /// Peak RSS (KiB) of the gateway and of nginx between `from` and `to`.
    fn peak(&self, from: Instant, to: Instant) -> (u64, u64) {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples
            .iter()
            .filter(|(at, _, _)| *at >= from && *at <= to)
            .fold((0, 0), |(g, n), (_, gateway, nginx)| {
                (g.max(*gateway), n.max(*nginx))
            })
    }

    fn all(&self) -> Vec<(Instant, u64, u64)> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs `concurrency` connections against `target` for the warm-up and then `seconds`.
async fn measure(
    target: &Target,
    concurrency: usize,
    seconds: Duration,
    server_pids: &[u32],
    ticks_per_second: u64,
) -> Result<Phase> {
    eprintln!(
        "bench: {:<7} {} c={concurrency:<3} for {:.0} s",
        target.via.name(),
        if target.stream { "stream" } else { "chat  " },
        (WARM_UP + seconds).as_secs_f64()
    );
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let warm_until = start + WARM_UP;
    let end = warm_until + seconds;
    // The server's peak RSS over the phase, sampled here so every server (the floors too) is
    // measured the same way.
    let (rss, sampler) = RssLog::start(server_pids.to_vec(), Vec::new(), RSS_EVERY);
    let pids = server_pids.to_vec();
    let cpu_before = tokio::spawn(async move {
        tokio::time::sleep_until(warm_until).await;
        (cpu_ticks_split(&pids), core_ticks())
    });
    let connections: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(connection(Arc::clone(&target), warm_until, end, None)))
        .collect();
    let mut tally = Tally::default();
    for connection in connections {
        tally.merge(connection.await?);
    }
    let cpu_after = cpu_ticks_split(server_pids);
    let cores_after = core_ticks();
    let (cpu_before, cores_before) = cpu_before.await?;
    let core_busy = busy_between(&cores_before, &cores_after);
    let finished = tally.last_done.unwrap_or(end).max(warm_until);
    let seconds = (finished - warm_until).as_secs_f64().max(1e-9);
    tally.latencies.sort_unstable();
    tally.ttfbs.sort_unstable();
    let requests = tally.latencies.len() as u64;
    let tick_us = 1e6 / ticks_per_second as f64;
    let user_us = cpu_after.0.saturating_sub(cpu_before.0) as f64 * tick_us;
    let system_us = cpu_after.1.saturating_sub(cpu_before.1) as f64 * tick_us;
    let cpu_us = user_us + system_us;
    let per_request = |us: f64| {
        if requests == 0 {
            0.0
        } else {
            us / requests as f64
        }
    };
    sampler.abort();
    let (peak, _) = rss.peak(start, Instant::now());
    let peak = peak.max(rss_kib(server_pids));
    Ok(Phase {
        via: target.via,
        stream: target.stream,
        concurrency,
        requests,
        seconds,
        rps: requests as f64 / seconds,
        errors: tally.errors,
        first_error: tally.first_error,
        p50_us: quantile_us(&tally.latencies, 0.50),
        p99_us: quantile_us(&tally.latencies, 0.99),
        p999_us: quantile_us(&tally.latencies, 0.999),
        max_us: quantile_us(&tally.latencies, 1.0),
        ttfb_p50_us: quantile_us(&tally.ttfbs, 0.50),
        ttfb_p99_us: quantile_us(&tally.ttfbs, 0.99),
        bad_streams: tally.bad_streams,
        stalls: tally.stalls,
        max_gap_ms: tally.max_gap.as_secs_f64() * 1000.0,
        server_cpu_us_per_request: per_request(cpu_us),
        server_user_us_per_request: per_request(user_us),
        server_system_us_per_request: per_request(system_us),
        server_peak_rss_mib: mib(peak),
        answered: tally.answered,
        proxy_core_foreign: if target.via == Via::Direct {
            core_busy.get(PROXY_CORE).copied().unwrap_or(0.0)
        } else {
            (core_busy.get(PROXY_CORE).copied().unwrap_or(0.0) - cpu_us / 1e6 / seconds).max(0.0)
        },
        core_busy,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// The bench

#[derive(Debug, Serialize)]
struct Memory {
    idle_mib: f64,
    /// Of the idle RSS, the pages of mapped files: the executable's code, mapped as start-up
    /// touches it (clean, shared, in the page cache either way), so it moves with where the
    /// linker placed the code (OPTIMIZATION.md, "The whole bench after this night's changes").
    idle_files_mib: f64,
    peak_mib: f64,
    peak_c256_mib: f64,
    after_mib: f64,
    /// Seconds between the end of the last llmgate phase and the `after` sample.
    after_delay_s: f64,
    /// How long llmgate and the floors keep an idle upstream connection; `after` is sampled
    /// once twice that (and `AFTER_MARGIN`) has passed since their last phase (`pool_expiry`).
    pool_idle_timeout_s: f64,
    /// The same figures for each floor proxy (its peak from its chat c=256 phase).
    floors: Vec<FloorMemory>,
}

#[derive(Debug, Serialize)]
struct FloorMemory {
    via: Via,
    idle_mib: f64,
    peak_c256_mib: f64,
    after_mib: f64,
}

#[derive(Debug, Serialize)]
struct Accounting {
    /// Answers llmgate gave (any status, warm-up and readiness checks included).
    served: u64,
    request_log_rows: Option<i64>,
    usage_daily_requests: Option<i64>,
    /// Whether llmgate stopped within its grace period when asked (usage drained).
    clean_shutdown: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    kind: &'static str,
    date: String,
    machine: Machine,
    seconds_per_phase: f64,
    warm_up_seconds: f64,
    load_average_before: f64,
    load_average_after: f64,
    command: String,
    gateway_env: Vec<(String, String)>,
    phases: Vec<Phase>,
    memory: Memory,
    accounting: Accounting,
    /// The budget table of this run (with the streams lines when the streams phase ran).
    budget: Vec<BudgetLine>,
    pass: bool,
}

/// Time past the pool's last sweep before RSS is read "after the load" (`pool_expiry`): a few
/// seconds for the closed connections' buffers to be freed.
const AFTER_MARGIN: Duration = Duration::from_secs(5);

/// The chat and c=1/c=256 stream phases against llmgate, nginx, the mock and the floors; with
/// `with_streams`, then the streams at scale (`streams`) while this stack idles; then RSS after
/// the upstream pools' idle timeout, the accounting, and the budget table of every line.
async fn bench_run(with_streams: bool) -> Result<bool> {
    let settings = Settings::from_env()?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let pool_idle = pool_idle_timeout()?;
    eprintln!(
        "bench: llmgate {} vs nginx vs the mock vs the floors; {} s per phase after {} s of warm-up",
        settings.bin.display(),
        settings.seconds.as_secs_f64(),
        WARM_UP.as_secs()
    );
    let load_before = load_average();
    if load_before > 0.5 {
        eprintln!(
            "bench: warning: the load average is {load_before:.2}; other work on this machine disturbs the figures"
        );
    }
    let Compared {
        mut stack,
        front,
        paced_front,
        gateway_pid,
        nginx_pids,
        rss,
        sampler,
        idle,
        idle_files,
    } = Compared::start(&settings).await?;
    // The floors answered their readiness request and idled as long as llmgate did.
    let floors_idle: Vec<u64> = stack
        .floors
        .iter()
        .map(|floor| rss_kib(&[floor.proc.pid()]))
        .collect();

    let ticks = machine.clock_ticks_per_second;
    let mut phases = Vec::new();
    let mut last_llmgate_end = Instant::now();
    let mut last_floor_end = Instant::now();
    for stream in [false, true] {
        let levels: &[usize] = if stream { &STREAM_LEVELS } else { &CHAT_LEVELS };
        for &concurrency in levels {
            let mut targets = if stream {
                vec![
                    (Target::llmgate(stack.gateway_addr, true), vec![gateway_pid]),
                    (Target::nginx(paced_front, true), nginx_pids.clone()),
                    (
                        Target::direct(stack.paced_addr, true),
                        vec![stack.paced.pid()],
                    ),
                ]
            } else {
                vec![
                    (
                        Target::llmgate(stack.gateway_addr, false),
                        vec![gateway_pid],
                    ),
                    (Target::nginx(front, false), nginx_pids.clone()),
                    (
                        Target::direct(stack.mock_addr, false),
                        vec![stack.mock.pid()],
                    ),
                ]
            };
            // The floors where the budget compares CPU, latency and memory: what the libraries
            // alone cost, beside what llmgate costs; the stream phases through the floors in
            // front of the paced mock.
            let floors = if stream {
                &stack.paced_floors
            } else {
                &stack.floors
            };
            if FLOOR_LEVELS.contains(&concurrency) {
                targets.extend(floors.iter().map(|floor| {
                    (
                        Target::new(Via::floor(floor.floor), floor.addr, stream),
                        vec![floor.proc.pid()],
                    )
                }));
            }
            for (target, pids) in targets {
                let phase = measure(&target, concurrency, settings.seconds, &pids, ticks).await?;
                match target.via {
                    Via::Llmgate => last_llmgate_end = Instant::now(),
                    Via::FloorAxumReqwest
                    | Via::FloorAxumHyper
                    | Via::FloorHyper
                    | Via::FloorContract => {
                        last_floor_end = Instant::now();
                    }
                    Via::Nginx | Via::Direct => {}
                }
                stack.gateway.check_alive()?;
                phases.push(phase);
            }
        }
    }

    // The streams at scale run on a stack of their own while this one idles, which also lets
    // the upstream pools' idle connections expire before RSS is read "after the load".
    let streams = if with_streams {
        Some(streams::measure(&settings, &machine).await?)
    } else {
        None
    };
    let after_at = last_llmgate_end.max(last_floor_end) + pool_expiry(pool_idle);
    if Instant::now() < after_at {
        eprintln!(
            "bench: waiting {:.0} s for the upstream pools to close their idle connections (idle timeout {:.0} s, swept every as long) before reading RSS after the load",
            (after_at - Instant::now()).as_secs_f64(),
            pool_idle.as_secs_f64()
        );
        tokio::time::sleep_until(after_at).await;
    }
    let after = rss_kib(&[gateway_pid]);
    let after_delay = last_llmgate_end.elapsed();
    let floors_after: Vec<u64> = stack
        .floors
        .iter()
        .map(|floor| rss_kib(&[floor.proc.pid()]))
        .collect();
    let peak = rss
        .all()
        .iter()
        .map(|(_, gateway, _)| *gateway)
        .max()
        .unwrap_or(0);
    let peak_c256 = phases
        .iter()
        .filter(|p| p.via == Via::Llmgate && p.concurrency == 256)
        .map(|p| p.server_peak_rss_mib)
        .fold(0.0, f64::max);
    sampler.abort();
    let floors_memory = stack
        .floors
        .iter()
        .zip(floors_idle.iter().zip(&floors_after))
        .map(|(floor, (idle, after))| {
            let via = Via::floor(floor.floor);
            FloorMemory {
                via,
                idle_mib: mib(*idle),
                peak_c256_mib: find(&phases, via, false, 256)
                    .map_or(0.0, |phase| phase.server_peak_rss_mib),
                after_mib: mib(*after),
            }
        })
        .collect();

    // Stop the gateway as an operator would, so the usage writer drains, then count its rows.
    let clean_shutdown = stack.gateway.stop(Duration::from_secs(15));
    let served = phases
        .iter()
        .filter(|p| p.via == Via::Llmgate)
        .map(|p| p.answered)
        .sum::<u64>()
        + stack.gateway_answered;
    let (request_log_rows, usage_daily_requests) =
        count_usage(&stack.dir.path().join("db/llmgate.db")).await;
    let accounting = Accounting {
        served,
        request_log_rows,
        usage_daily_requests,
        clean_shutdown,
    };
    let memory = Memory {
        idle_mib: mib(idle),
        idle_files_mib: mib(idle_files),
        peak_mib: mib(peak),
        peak_c256_mib: peak_c256,
        after_mib: mib(after),
        after_delay_s: after_delay.as_secs_f64(),
        pool_idle_timeout_s: pool_idle.as_secs_f64(),
        floors: floors_memory,
    };
    let mut report = Report {
        kind: "bench",
        date: date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        seconds_per_phase: settings.seconds.as_secs_f64(),
        warm_up_seconds: WARM_UP.as_secs_f64(),
        load_average_before: load_before,
        load_average_after: load_average(),
        command: format!(
            "make bench (cargo bench --bench load{})",
            if with_streams { "" } else { " -- --chat" }
        ),
        gateway_env: std::env::vars()
            .filter(|(name, _)| name.starts_with("LLMGATE_") && !name.contains("KEY"))
            .collect(),
        phases,
        memory,
        accounting,
        budget: Vec::new(),
        pass: false,
    };
    report.budget = budget::lines(Some(&report), streams.as_ref());
    report.pass = report.budget.iter().all(|line| line.met);
    print_report(&report);
    let path = write_json(&settings.out_dir, "bench", &date, &report)?;
    println!("\nwritten: {}", path.display());
    if let Some(streams) = &streams {
        streams::print_table(streams);
        let path = streams::write(&settings, streams)?;
        println!("\nwritten: {}", path.display());
    }
    drop(stack);
    budget::finish(&settings, &report.machine, &date, &report.budget)
}

/// Rows the usage writer stored, when the schema has usage tables.
async fn count_usage(db: &Path) -> (Option<i64>, Option<i64>) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let Ok(pool) = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
    else {
        return (None, None);
    };
    let rows = sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM request_log")
        .fetch_one(&pool)
        .await
        .ok()
        .map(|(n,)| n);
    let daily = sqlx::query_as::<_, (Option<i64>,)>("SELECT SUM(requests) FROM usage_daily")
        .fetch_one(&pool)
        .await
        .ok()
        .map(|(n,)| n.unwrap_or(0));
    pool.close().await;
    (rows, daily)
}

fn find(phases: &[Phase], via: Via, stream: bool, concurrency: usize) -> Option<&Phase> {
    phases
        .iter()
        .find(|p| p.via == via && p.stream == stream && p.concurrency == concurrency)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::INFINITY }
}

fn print_report(report: &Report) {
    let m = &report.machine;
    println!(
        "\nllmgate load bench · {} · {} cores ({}) · kernel {} · commit {}",
        report.date, m.cores, m.cpu, m.kernel, m.commit
    );
    println!(
        "{} s per phase after {} s warm-up; llmgate, nginx and the floors on core {PROXY_CORE}, mock and load generator on core {CLIENT_CORE}\n\
         floors: bare pass-through proxies (no auth, limits, routing, JSON, accounting or log) on axum + reqwest, axum + hyper-util, hyper alone;\n\
         contract: the axum + reqwest floor doing the least work the contract asks (key by hash, one JSON pass each way, limits and their headers, the request log)\n",
        report.seconds_per_phase, report.warm_up_seconds
    );
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>13} {:>12} {:>12} {:>12}",
        "", "llmgate", "nginx", "direct", "axum+reqwest", "axum+hyper", "hyper", "contract"
    );
    let row = |label: &str, stream: bool, c: usize, value: &dyn Fn(&Phase) -> String| {
        let cell = |via| find(&report.phases, via, stream, c).map_or("–".into(), value);
        println!(
            "{label:<22} {:>12} {:>12} {:>12} {:>13} {:>12} {:>12} {:>12}",
            cell(Via::Llmgate),
            cell(Via::Nginx),
            cell(Via::Direct),
            cell(Via::FloorAxumReqwest),
            cell(Via::FloorAxumHyper),
            cell(Via::FloorHyper),
            cell(Via::FloorContract),
        );
    };
    let us = |v: f64| format!("{v:.0}");
    row("chat c=1 p50 µs", false, 1, &|p| us(p.p50_us));
    row("chat c=1 p99 µs", false, 1, &|p| us(p.p99_us));
    row("chat c=1 p99.9 µs", false, 1, &|p| us(p.p999_us));
    row("chat c=1 req/s", false, 1, &|p| format!("{:.0}", p.rps));
    row("chat c=1 CPU µs/req", false, 1, &|p| {
        format!("{:.1}", p.server_cpu_us_per_request)
    });
    for c in [64, 256] {
        row(&format!("chat c={c} req/s"), false, c, &|p| {
            format!("{:.0}", p.rps)
        });
        row(&format!("chat c={c} p50 µs"), false, c, &|p| us(p.p50_us));
        row(&format!("chat c={c} p99 µs"), false, c, &|p| us(p.p99_us));
        row(&format!("chat c={c} CPU µs/req"), false, c, &|p| {
            format!("{:.1}", p.server_cpu_us_per_request)
        });
        row("  of which kernel", false, c, &|p| {
            format!("{:.1}", p.server_system_us_per_request)
        });
    }
    for c in STREAM_LEVELS {
        row(&format!("stream c={c} TTFB p50 µs"), true, c, &|p| {
            us(p.ttfb_p50_us)
        });
        row(&format!("stream c={c} TTFB p99 µs"), true, c, &|p| {
            us(p.ttfb_p99_us)
        });
        row(&format!("stream c={c} streams/s"), true, c, &|p| {
            format!("{:.0}", p.rps)
        });
        row(&format!("stream c={c} bad/stalls"), true, c, &|p| {
            format!("{}/{}", p.bad_streams, p.stalls)
        });
        row(&format!("stream c={c} max gap ms"), true, c, &|p| {
            format!("{:.1}", p.max_gap_ms)
        });
    }
    row("errors (all levels)", false, 1, &|p| {
        let via = p.via;
        report
            .phases
            .iter()
            .filter(|q| q.via == via)
            .map(|q| q.errors)
            .sum::<u64>()
            .to_string()
    });
    row("peak RSS MiB (c=256)", false, 256, &|p| {
        format!("{:.1}", p.server_peak_rss_mib)
    });
    let disturbed = report
        .phases
        .iter()
        .map(|p| p.proxy_core_foreign)
        .fold(0.0, f64::max);
    println!(
        "\nload average {:.2} before, {:.2} after; most foreign load on the proxy core in a phase: {:.0} %{}",
        report.load_average_before,
        report.load_average_after,
        disturbed * 100.0,
        if disturbed > 0.05 {
            " (other processes shared the core: the figures are disturbed)"
        } else {
            ""
        }
    );
    let mem = &report.memory;
    println!(
        "llmgate RSS: idle {:.1} MiB (of which mapped files' pages, its code mostly, {:.1} MiB), peak {:.1} MiB (c=256: {:.1}), after {:.1} MiB ({:.0} s after its last phase; pool idle timeout {:.0} s)",
        mem.idle_mib,
        mem.idle_files_mib,
        mem.peak_mib,
        mem.peak_c256_mib,
        mem.after_mib,
        mem.after_delay_s,
        mem.pool_idle_timeout_s
    );
    for floor in &mem.floors {
        println!(
            "floor {:<12} RSS: idle {:.1} MiB, peak at c=256 {:.1} MiB, after {:.1} MiB",
            floor.via.name(),
            floor.idle_mib,
            floor.peak_c256_mib,
            floor.after_mib
        );
    }
    let acc = &report.accounting;
    println!(
        "usage: {} requests served; request_log rows {}; usage_daily requests {}; clean shutdown {}",
        acc.served,
        acc.request_log_rows.map_or("n/a".into(), |n| n.to_string()),
        acc.usage_daily_requests
            .map_or("n/a".into(), |n| n.to_string()),
        acc.clean_shutdown
    );
    for phase in &report.phases {
        if let Some(error) = &phase.first_error {
            println!(
                "first error, {} {} c={}: {error}",
                phase.via.name(),
                if phase.stream { "stream" } else { "chat" },
                phase.concurrency
            );
        }
    }
    // The budget table (printed last) compares with the axum + reqwest floor; this line puts
    // every floor beside nginx, which says how much of the gap is the stack's.
    let cpu64 = |via| find(&report.phases, via, false, 64).map(|p| p.server_cpu_us_per_request);
    if let Some(nginx) = cpu64(Via::Nginx) {
        let mut line = String::from("\nc=64 CPU/request ÷ nginx's:");
        for via in [
            Via::Llmgate,
            Via::FloorAxumReqwest,
            Via::FloorAxumHyper,
            Via::FloorHyper,
            Via::FloorContract,
        ] {
            if let Some(cpu) = cpu64(via) {
                let _ = write!(line, " {} {:.2}×,", via.name(), cpu / nginx);
            }
        }
        if let (Some(gate), Some(floor)) = (cpu64(Via::Llmgate), cpu64(Via::FloorAxumReqwest)) {
            let _ = write!(
                line,
                " llmgate ÷ the axum+reqwest floor {:.2}×",
                gate / floor
            );
        }
        println!("{}", line.trim_end_matches(','));
    }
}

fn write_json(
    dir: &Path,
    kind: &str,
    date: &chrono::DateTime<chrono::Utc>,
    report: &impl Serialize,
) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(report)?;
    let path = dir.join(format!("{kind}-{}.json", date.format("%Y%m%dT%H%M%SZ")));
    fs::write(&path, &text)?;
    let latest = if kind == "bench" {
        "latest.json".to_owned()
    } else {
        format!("{kind}-latest.json")
    };
    fs::write(dir.join(latest), &text)?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// The soak

#[derive(Debug, Serialize)]
struct SoakReport {
    kind: &'static str,
    date: String,
    machine: Machine,
    seconds: f64,
    target_rps: f64,
    rps_source: String,
    connections: usize,
    requests: u64,
    achieved_rps: f64,
    errors: u64,
    first_error: Option<String>,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_request: f64,
    /// (seconds since the start, RSS MiB) every few seconds.
    rss_samples: Vec<(f64, f64)>,
    window_s: f64,
    first_window_mib: f64,
    last_window_mib: f64,
    growth_mib: f64,
    slope_mib_per_hour: f64,
    pass: bool,
}

const SOAK_CONNECTIONS: usize = 64;

async fn soak_run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let seconds = env_seconds("SOAK_SECONDS", 600.0)?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let stack = Stack::start(&settings, false).await?;
    let gateway_pid = stack.gateway.pid();
    let target = Target::llmgate(stack.gateway_addr, false);
    let (rate, source) = soak_rate(&settings, &target, gateway_pid, &machine).await?;
    eprintln!(
        "soak: {:.0} requests/s ({source}) over {SOAK_CONNECTIONS} connections for {:.0} s; RSS every {} s",
        rate,
        seconds.as_secs_f64(),
        SOAK_RSS_EVERY.as_secs()
    );

    let target = Arc::new(target);
    let start = Instant::now();
    let end = start + seconds;
    let pace = Duration::from_secs_f64(SOAK_CONNECTIONS as f64 / rate);
    let cpu_before = cpu_ticks(&[gateway_pid]);
    let connections: Vec<_> = (0..SOAK_CONNECTIONS)
        .map(|i| {
            let target = Arc::clone(&target);
            // Spread the connections' starts over one interval so the rate is smooth.
            let offset = pace.mul_f64(i as f64 / SOAK_CONNECTIONS as f64);
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                connection(target, start, end, Some(pace)).await
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SOAK_RSS_EVERY);
    while Instant::now() < end {
        tick.tick().await;
        let at = start.elapsed().as_secs_f64();
        let rss = mib(rss_kib(&[gateway_pid]));
        samples.push((at, rss));
        if samples.len() % 12 == 1 {
            eprintln!("soak: {at:>5.0} s  RSS {rss:.1} MiB");
        }
    }
    let mut tally = Tally::default();
    for connection in connections {
        tally.merge(connection.await?);
    }
    let cpu_after = cpu_ticks(&[gateway_pid]);
    tally.latencies.sort_unstable();
    let requests = tally.latencies.len() as u64;
    let elapsed = tally.last_done.unwrap_or(end).max(start) - start;

    let total = seconds.as_secs_f64();
    let window = 60.0_f64.min(total / 4.0);
    let mean = |from: f64, to: f64| {
        let inside: Vec<f64> = samples
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, rss)| *rss)
            .collect();
        if inside.is_empty() {
            0.0
        } else {
            inside.iter().sum::<f64>() / inside.len() as f64
        }
    };
    let first = mean(0.0, window);
    let last = mean(total - window, total + 1.0);
    let slope = slope_per_second(&samples) * 3600.0;
    let growth = last - first;
    // No upward trend: the last window within 10 % (and 2 MiB) of the first.
    let pass = growth <= (first * 0.10).max(2.0) && tally.errors == 0;
    let ticks = machine.clock_ticks_per_second as f64;
    let report = SoakReport {
        kind: "soak",
        date: date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        seconds: total,
        target_rps: rate,
        rps_source: source,
        connections: SOAK_CONNECTIONS,
        requests,
        achieved_rps: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        errors: tally.errors,
        first_error: tally.first_error,
        p50_us: quantile_us(&tally.latencies, 0.5),
        p99_us: quantile_us(&tally.latencies, 0.99),
        cpu_us_per_request: if requests == 0 {
            0.0
        } else {
            cpu_after.saturating_sub(cpu_before) as f64 * 1e6 / ticks / requests as f64
        },
        rss_samples: samples,
        window_s: window,
        first_window_mib: first,
        last_window_mib: last,
        growth_mib: growth,
        slope_mib_per_hour: slope,
        pass,
    };
    println!(
        "\nllmgate soak · {} · {} cores · commit {}",
        report.date, report.machine.cores, report.machine.commit
    );
    println!(
        "{:.0} s at {:.0} req/s target ({}), achieved {:.0} req/s, {} requests, {} errors",
        report.seconds,
        report.target_rps,
        report.rps_source,
        report.achieved_rps,
        report.requests,
        report.errors
    );
    println!(
        "latency p50 {:.0} µs, p99 {:.0} µs; CPU {:.1} µs/request",
        report.p50_us, report.p99_us, report.cpu_us_per_request
    );
    println!(
        "RSS: first {:.0} s mean {:.2} MiB, last {:.0} s mean {:.2} MiB, growth {:+.2} MiB, linear fit {:+.2} MiB/hour",
        window, first, window, last, growth, slope
    );
    println!(
        "result: {} (growth ≤ max(10 % of the first window, 2 MiB) and no errors)",
        if pass { "PASS" } else { "FAIL" }
    );
    let path = write_json(&settings.out_dir, "soak", &date, &report)?;
    println!("written: {}", path.display());
    drop(stack);
    Ok(pass)
}

/// Half of llmgate's c=64 throughput: from `SOAK_RPS`, else the last bench's JSON, else a
/// short measurement now.
async fn soak_rate(
    settings: &Settings,
    target: &Target,
    gateway_pid: u32,
    machine: &Machine,
) -> Result<(f64, String)> {
    if let Ok(text) = std::env::var("SOAK_RPS") {
        let rate: f64 = text
            .trim()
            .parse()
            .with_context(|| format!("SOAK_RPS={text} is not a number"))?;
        if rate.is_finite() && rate > 0.0 {
            return Ok((rate, "SOAK_RPS".into()));
        }
        bail!("SOAK_RPS must be positive");
    }
    let latest = settings.out_dir.join("latest.json");
    if let Ok(text) = fs::read_to_string(&latest) {
        let json: serde_json::Value = serde_json::from_str(&text)?;
        let rps = json["phases"].as_array().and_then(|phases| {
            phases.iter().find_map(|p| {
                (p["via"] == "llmgate" && p["stream"] == false && p["concurrency"] == 64)
                    .then(|| p["rps"].as_f64())
                    .flatten()
            })
        });
        if let Some(rps) = rps.filter(|r| *r > 0.0) {
            return Ok((
                rps / 2.0,
                format!("half of c=64 {rps:.0} req/s in {}", latest.display()),
            ));
        }
    }
    let phase = measure(
        target,
        64,
        Duration::from_secs(5),
        &[gateway_pid],
        machine.clock_ticks_per_second,
    )
    .await?;
    Ok((
        phase.rps / 2.0,
        format!("half of c=64 {:.0} req/s measured now", phase.rps),
    ))
}

/// Least-squares slope of (x, y) points, in y per unit of x.
fn slope_per_second(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if var > 0.0 { cov / var } else { 0.0 }
}

// ---------------------------------------------------------------------------------------------
// The quick comparison

/// c=64 chat (`BENCH_QUICK_CONNECTIONS` connections when set) through llmgate, nginx and the
/// floors in turn, `BENCH_ROUNDS` times (default 3); prints each round, the medians of CPU per
/// request and throughput, and llmgate's idle and peak RSS (sampled; beside them `VmHWM`, the
/// kernel's own peak since start, start-up included).
async fn quick_run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let machine = Machine::read();
    let rounds = bench_rounds()?;
    let connections: usize = match std::env::var("BENCH_QUICK_CONNECTIONS") {
        Ok(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow!("BENCH_QUICK_CONNECTIONS: '{v}' is not a positive whole number")
        })?,
        Err(_) => 64,
    };
    let Compared {
        stack,
        front,
        gateway_pid,
        nginx_pids,
        rss,
        sampler,
        idle,
        ..
    } = Compared::start(&settings).await?;
    let started = Instant::now();
    let ticks = machine.clock_ticks_per_second;
    let mut gate = Vec::new();
    let mut nginx = Vec::new();
    let mut floors: Vec<Vec<Phase>> = vec![Vec::new(); stack.floors.len()];
    for round in 1..=rounds {
        let g = measure(
            &Target::llmgate(stack.gateway_addr, false),
            connections,
            settings.seconds,
            &[gateway_pid],
            ticks,
        )
        .await?;
        let n = measure(
            &Target::nginx(front, false),
            connections,
            settings.seconds,
            &nginx_pids,
            ticks,
        )
        .await?;
        let mut line = format!("round {round}:");
        for phase in [&g, &n] {
            let _ = write!(line, " {} · ", quick_summary(phase));
        }
        for (floor, phases) in stack.floors.iter().zip(&mut floors) {
            let phase = measure(
                &Target::new(Via::floor(floor.floor), floor.addr, false),
                connections,
                settings.seconds,
                &[floor.proc.pid()],
                ticks,
            )
            .await?;
            let _ = write!(line, " {} · ", quick_summary(&phase));
            phases.push(phase);
        }
        println!("{}", line.trim_end_matches([' ', '·']));
        gate.push(g);
        nginx.push(n);
    }
    let (peak, _) = rss.peak(started, Instant::now());
    sampler.abort();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = rss_kib(&[gateway_pid]);
    let parts = fs::read_to_string(format!("/proc/{gateway_pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Rss") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "llmgate RSS: idle {:.1} MiB, peak {:.1} MiB, 10 s after the load {:.1} MiB ({parts})",
        mib(idle),
        mib(peak),
        mib(after)
    );
    let cpu = |p: &Phase| p.server_cpu_us_per_request;
    let rps = |p: &Phase| p.rps;
    println!(
        "median of {rounds} at c={connections} (commit {}): llmgate {:.1} µs CPU/req, {:.0} req/s · nginx {:.1} µs CPU/req, {:.0} req/s · CPU ratio {:.2}× · throughput ratio {:.2}×",
        machine.commit,
        median(&gate, cpu),
        median(&gate, rps),
        median(&nginx, cpu),
        median(&nginx, rps),
        median(&gate, cpu) / median(&nginx, cpu),
        median(&gate, rps) / median(&nginx, rps),
    );
    for phases in &floors {
        if let Some(first) = phases.first() {
            println!(
                "floor {:<13} median {:.1} µs CPU/req, {:.0} req/s · llmgate/floor CPU {:.2}× · floor/nginx CPU {:.2}×",
                first.via.name(),
                median(phases, cpu),
                median(phases, rps),
                median(&gate, cpu) / median(phases, cpu),
                median(phases, cpu) / median(&nginx, cpu),
            );
        }
    }
    Ok(gate
        .iter()
        .chain(&nginx)
        .chain(floors.iter().flatten())
        .all(|p| p.errors == 0))
}

/// `BENCH_ROUNDS`, default 3.
fn bench_rounds() -> Result<usize> {
    match std::env::var("BENCH_ROUNDS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("BENCH_ROUNDS: '{v}' is not a positive whole number")),
        Err(_) => Ok(3),
    }
}

/// The c=1 chat and stream phases in rounds, every server in turn within a round, so a before
/// and an after binary (`LLMGATE_BIN` and `LLMGATE_BIN_B`) see the same disturbances; prints
/// each round and the medians, each beside nginx's.
async fn latency_run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let machine = Machine::read();
    let rounds = bench_rounds()?;
    let Compared {
        mut stack,
        front,
        paced_front,
        gateway_pid,
        nginx_pids,
        sampler,
        ..
    } = Compared::start(&settings).await?;
    sampler.abort();
    // The second binary: its own config, database and log beside the first's.
    let second = match std::env::var_os("LLMGATE_BIN_B") {
        Some(bin) => {
            let b_settings = Settings {
                bin: PathBuf::from(bin),
                ..Settings::from_env()?
            };
            let dir = stack.dir.path().join("b");
            fs::create_dir_all(dir.join("db"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut proc = spawn_gateway(
                &b_settings,
                &dir,
                &gateway_config(stack.mock_addr, stack.paced_addr),
                addr,
                &dir.join("db/llmgate.db"),
            )?;
            let deadline = Instant::now() + Duration::from_secs(30);
            for stream in [false, true] {
                wait_answering(&Target::llmgate(addr, stream), &mut proc, deadline).await?;
            }
            println!("llmgate-B: {}", b_settings.bin.display());
            Some((proc, addr))
        }
        None => None,
    };
    println!("llmgate:   {}", settings.bin.display());
    let ticks = machine.clock_ticks_per_second;
    // (label, stream) -> one phase per round.
    let mut results: Vec<(String, bool, Vec<Phase>)> = Vec::new();
    for round in 1..=rounds {
        for stream in [false, true] {
            let (nginx_addr, direct_addr, floors) = if stream {
                (paced_front, stack.paced_addr, &stack.paced_floors)
            } else {
                (front, stack.mock_addr, &stack.floors)
            };
            let mut targets = vec![(
                "llmgate".to_owned(),
                Target::llmgate(stack.gateway_addr, stream),
                vec![gateway_pid],
            )];
            if let Some((proc, addr)) = &second {
                targets.push((
                    "llmgate-B".to_owned(),
                    Target::llmgate(*addr, stream),
                    vec![proc.pid()],
                ));
            }
            targets.push((
                "nginx".to_owned(),
                Target::nginx(nginx_addr, stream),
                nginx_pids.clone(),
            ));
            targets.push((
                "direct".to_owned(),
                Target::direct(direct_addr, stream),
                vec![if stream {
                    stack.paced.pid()
                } else {
                    stack.mock.pid()
                }],
            ));
            targets.extend(floors.iter().map(|floor| {
                let via = Via::floor(floor.floor);
                (
                    via.name().to_owned(),
                    Target::new(via, floor.addr, stream),
                    vec![floor.proc.pid()],
                )
            }));
            let mut line = format!("round {round} {}:", if stream { "stream" } else { "chat" });
            for (label, target, pids) in targets {
                let phase = measure(&target, 1, settings.seconds, &pids, ticks).await?;
                let _ = write!(line, " {label} {}", latency_summary(&phase));
                match results
                    .iter_mut()
                    .find(|(l, s, _)| *l == label && *s == stream)
                {
                    Some((_, _, phases)) => phases.push(phase),
                    None => results.push((label, stream, vec![phase])),
                }
            }
            stack.gateway.check_alive()?;
            println!("{line}");
        }
    }
    let figures: [(&str, bool, PhaseFigure); 5] = [
        ("chat c=1 p50 µs", false, |p| p.p50_us),
        ("chat c=1 p99 µs", false, |p| p.p99_us),
        ("chat c=1 CPU µs/req", false, |p| {
            p.server_cpu_us_per_request
        }),
        ("stream c=1 TTFB p50 µs", true, |p| p.ttfb_p50_us),
        ("stream c=1 TTFB p99 µs", true, |p| p.ttfb_p99_us),
    ];
    println!(
        "median of {rounds} rounds of {:.0} s (commit {}); in brackets: minus nginx's",
        settings.seconds.as_secs_f64(),
        machine.commit
    );
    for (name, stream, figure) in figures {
        let nginx = results
            .iter()
            .find(|(label, s, _)| label == "nginx" && *s == stream)
            .map(|(_, _, phases)| median(phases, figure));
        let mut line = format!("{name:<24}");
        for (label, _, phases) in results.iter().filter(|(_, s, _)| *s == stream) {
            let value = median(phases, figure);
            let _ = write!(line, " {label} {value:.0}");
            if let Some(nginx) = nginx.filter(|_| label != "nginx") {
                let _ = write!(line, " ({:+.0})", value - nginx);
            }
            line.push_str(" ·");
        }
        println!("{}", line.trim_end_matches([' ', '·']));
    }
    Ok(results
        .iter()
        .flat_map(|(_, _, phases)| phases)
        .all(|p| p.errors == 0))
}

/// One figure of a phase.
type PhaseFigure = fn(&Phase) -> f64;

/// The median of `figure` over `phases` (the upper one of an even count); at least one phase.
fn median(phases: &[Phase], figure: PhaseFigure) -> f64 {
    let mut values: Vec<f64> = phases.iter().map(figure).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One phase in a line of the latency run.
fn latency_summary(phase: &Phase) -> String {
    if phase.stream {
        format!(
            "ttfb {:.0}/{:.0}{}",
            phase.ttfb_p50_us,
            phase.ttfb_p99_us,
            if phase.errors > 0 { " ERR" } else { "" }
        )
    } else {
        format!(
            "{:.0}/{:.0} {:.0}cpu{}",
            phase.p50_us,
            phase.p99_us,
            phase.server_cpu_us_per_request,
            if phase.errors > 0 { " ERR" } else { "" }
        )
    }
}

/// One phase in a line of the quick run.
fn quick_summary(phase: &Phase) -> String {
    format!(
        "{} {:.0} req/s {:.1} µs CPU/req ({:.1} kernel){}",
        phase.via.name(),
        phase.rps,
        phase.server_cpu_us_per_request,
        phase.server_system_us_per_request,
        if phase.errors > 0 {
            format!(", {} errors", phase.errors)
        } else {
            String::new()
        }
    )
}

// ---------------------------------------------------------------------------------------------
// The profile

/// Runs the c=64 chat load against the gateway for `BENCH_SECONDS` while `perf record` samples
/// it (CPU clock, DWARF call graphs), then writes `perf report`'s flat and caller views.
async fn profile_run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let stack = Stack::start(&settings, false).await?;
    let gateway_pid = stack.gateway.pid();
    fs::create_dir_all(&settings.out_dir)?;
    let stamp = date.format("%Y%m%dT%H%M%SZ");
    let data = settings.out_dir.join(format!("profile-{stamp}.data"));
    let perf_log = stack.dir.path().join("perf.log");
    let mut perf = Proc::spawn(
        "perf",
        CLIENT_CORE,
        Path::new("perf"),
        &strings(&[
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "499",
            "--call-graph",
            "dwarf,16384",
            "-p",
            &gateway_pid.to_string(),
            "-o",
            &data.display().to_string(),
        ]),
        &[],
        perf_log,
    )
    .context("perf (Debian package linux-perf) is needed for the profile")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    perf.check_alive()?;
    let target = Target::llmgate(stack.gateway_addr, false);
    let phase = measure(
        &target,
        64,
        settings.seconds,
        &[gateway_pid],
        machine.clock_ticks_per_second,
    )
    .await?;
    // perf writes its file on SIGINT.
    signal(perf.pid(), "INT");
    if !perf.stop(Duration::from_secs(60)) {
        bail!("perf did not finish writing {}", data.display());
    }
    let report = |args: &[&str]| -> Result<String> {
        let output = Command::new("perf")
            .arg("report")
            .arg("-i")
            .arg(&data)
            .args(args)
            .stderr(Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let flat = report(&[
        "--stdio",
        "--no-children",
        "--sort",
        "dso,symbol",
        "-g",
        "none",
        "--percent-limit",
        "0.3",
    ])?;
    let inclusive = report(&[
        "--stdio",
        "--children",
        "--sort",
        "symbol",
        "-g",
        "none",
        "--percent-limit",
        "2",
    ])?;
    let text = format!(
        "llmgate profile · {} · commit {} · c=64 chat for {:.0} s: {:.0} req/s, {:.1} µs CPU/request ({:.1} in the kernel)\n\
         perf record -e cpu-clock -F 499 --call-graph dwarf -p <llmgate>\n\n\
         == self time by symbol ==\n{flat}\n== inclusive time (children) by symbol ==\n{inclusive}",
        date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine.commit,
        phase.seconds,
        phase.rps,
        phase.server_cpu_us_per_request,
        phase.server_system_us_per_request,
    );
    let path = settings.out_dir.join(format!("profile-{stamp}.txt"));
    fs::write(&path, &text)?;
    let top: Vec<&str> = flat
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .take(40)
        .collect();
    println!(
        "c=64 chat: {:.0} req/s, {:.1} µs CPU/request ({:.1} in the kernel)\n\n{}\n\nwritten: {} (and {})",
        phase.rps,
        phase.server_cpu_us_per_request,
        phase.server_system_us_per_request,
        top.join("\n"),
        path.display(),
        data.display()
    );
    drop(stack);
    Ok(true)
}
