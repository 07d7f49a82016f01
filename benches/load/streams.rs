//! Streams at scale (`make bench-streams`, and the last part of `make bench`): LLM traffic is
//! long streams, so this phase holds 1,000, then 10,000 concurrent streams open against a paced
//! mock (60 content frames, 100 ms apart), directly (which shows the load generator itself holds
//! them on its one core), through nginx and through llmgate, and reports for each: streams
//! whose frames all arrived in order, time to first byte (and what the proxy adds to the
//! mock's own), CPU per forwarded frame, RSS per open stream above the server's RSS before the
//! phase, and, for llmgate, that the request log has a row for every stream. The floor proxies
//! of `floor.rs` run each level too, so the budget table can say what the bare stack costs per
//! stream and per frame. Each server has a paced mock of its own (see `measure`).
//!
//! Each stream is its own connection, as each of many clients would hold one. The streams are
//! opened in steps (`RAMP_BATCH` every `RAMP_STEP`), all of them well before the first ends, so
//! every one is open at the peak. The bench raises its own open-file limit (two descriptors per
//! stream in each proxy, one in the client and in the mock) and says so; without the right to
//! raise it far enough it lowers a level to the most streams that fit, and says so.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Concurrent streams per level.
const LEVELS: [usize; 2] = [1_000, 10_000];
/// Content frames per stream, and the mock's pause before each.
pub(super) const FRAMES: usize = 60;
pub(super) const FRAME_DELAY_MS: u64 = 100;
/// Data lines of a whole stream: the role frame, the content frames, the finish frame, `[DONE]`.
const DATA_LINES: usize = FRAMES + 3;
/// Streams opened at once, and the pause between two such steps: 10,000 in 2 s.
pub(super) const RAMP_BATCH: usize = 500;
pub(super) const RAMP_STEP: Duration = Duration::from_millis(100);
/// A stream that has not ended by then counts as failed.
pub(super) const STREAM_DEADLINE: Duration = Duration::from_secs(60);
/// The model the streams ask for (the gateway's config names it).
pub(super) const MODEL: &str = "bench-long";
/// Descriptors a process needs besides the streams' own.
const FD_SPARE: u64 = 512;

#[derive(Debug, Serialize)]
pub(super) struct StreamsPhase {
    pub(super) via: Via,
    pub(super) streams: usize,
    /// Streams whose every frame arrived, in order, with a 200.
    pub(super) complete: usize,
    pub(super) failed: usize,
    pub(super) first_error: Option<String>,
    pub(super) ttfb_p50_ms: f64,
    pub(super) ttfb_p99_ms: f64,
    /// Data lines the client received, over every stream.
    pub(super) frames: u64,
    /// CPU time (user + system) of the server the client talks to, per frame it forwarded.
    pub(super) server_cpu_us_per_frame: f64,
    /// The server's RSS before the phase and at its peak, and the peak's growth per stream
    /// open at that moment.
    pub(super) server_rss_before_mib: f64,
    pub(super) server_rss_peak_mib: f64,
    pub(super) open_at_peak: usize,
    pub(super) rss_per_open_stream_kib: f64,
    /// Whole phase, from the first stream opened to the last ended.
    pub(super) seconds: f64,
    /// llmgate only: request-log rows written for the phase's streams.
    pub(super) request_log_rows: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(super) struct StreamsReport {
    pub(super) kind: &'static str,
    pub(super) date: String,
    pub(super) machine: Machine,
    pub(super) command: String,
    pub(super) open_file_limit: u64,
    pub(super) levels: Vec<usize>,
    pub(super) phases: Vec<StreamsPhase>,
    /// Whether llmgate stopped within its grace period at the end (usage drained).
    pub(super) clean_stop: bool,
    /// The streams lines of the budget table.
    pub(super) budget: Vec<BudgetLine>,
    pub(super) pass: bool,
}

/// What one stream saw.
pub(super) struct Seen {
    pub(super) ttfb: Option<Duration>,
    pub(super) lines: usize,
    pub(super) error: Option<String>,
}

/// The request every stream sends: the mock echoes the last user message, so the reply (and the
/// concatenated content of the stream) is `echo: ` and these numbered words, which shows any
/// frame lost, repeated or out of order.
pub(super) fn stream_body() -> (Bytes, String) {
    let words: Vec<String> = (0..FRAMES).map(|i| format!("w{i:02}")).collect();
    let prompt = words.join(" ");
    let body = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"{prompt}"}}],"max_tokens":128,"stream":true}}"#
    );
    (Bytes::from(body), format!("echo: {prompt}"))
}

#[derive(serde::Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(serde::Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
}

#[derive(serde::Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// Reads a stream line by line as it arrives (nothing of it is kept but the content so far),
/// and checks that it carried every frame in order and ended with `[DONE]`.
pub(super) async fn one_stream(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    expected: &str,
    open: &AtomicUsize,
) -> Seen {
    let started = Instant::now();
    let mut seen = Seen {
        ttfb: None,
        lines: 0,
        error: None,
    };
    let result = tokio::time::timeout(STREAM_DEADLINE, async {
        let mut sender = connect(addr).await?;
        let response = sender.send_request(request).await?;
        if response.status() != StatusCode::OK {
            bail!("status {}", response.status());
        }
        open.fetch_add(1, Ordering::Relaxed);
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        let mut content = String::with_capacity(expected.len());
        let mut done = false;
        let outcome = async {
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                seen.ttfb.get_or_insert_with(|| started.elapsed());
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let Some(payload) = line.trim_ascii().strip_prefix(b"data:") else {
                        continue;
                    };
                    let payload = payload.trim_ascii();
                    seen.lines += 1;
                    if payload == b"[DONE]" {
                        done = true;
                        continue;
                    }
                    let chunk: Chunk = serde_json::from_slice(payload)
                        .with_context(|| format!("frame {} is not a chat chunk", seen.lines))?;
                    for choice in chunk.choices {
                        if let Some(piece) = choice.delta.content {
                            content.push_str(&piece);
                        }
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
        open.fetch_sub(1, Ordering::Relaxed);
        outcome?;
        if !done || seen.lines != DATA_LINES {
            bail!(
                "{} data lines{}, {DATA_LINES} expected",
                seen.lines,
                if done { "" } else { " and no [DONE]" }
            );
        }
        if content != expected {
            bail!("the content arrived out of order or incomplete: {content:?}");
        }
        Ok(())
    })
    .await;
    seen.error = match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(format!("{error:#}")),
        Err(_) => Some(format!("not ended within {} s", STREAM_DEADLINE.as_secs())),
    };
    seen
}

/// Holds `streams` streams open against `addr` and measures the server behind `server_pids`.
async fn phase(
    via: Via,
    addr: SocketAddr,
    streams: usize,
    server_pids: &[u32],
    ticks_per_second: u64,
) -> Result<StreamsPhase> {
    eprintln!("bench: {:<7} {streams} concurrent streams", via.name());
    let (body, expected) = stream_body();
    let expected: Arc<str> = Arc::from(expected);
    let target = Target {
        body,
        ..Target::new(via, addr, true)
    };
    let open = Arc::new(AtomicUsize::new(0));
    let rss_before = rss_kib(server_pids);
    let cpu_before = cpu_ticks_split(server_pids);

    // The server's RSS and the streams open at that moment, sampled through the phase.
    let samples: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let sampler = {
        let samples = Arc::clone(&samples);
        let open = Arc::clone(&open);
        let pids = server_pids.to_vec();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RSS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let sample = (rss_kib(&pids), open.load(Ordering::Relaxed));
                samples
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sample);
            }
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for index in 0..streams {
        if index > 0 && index % RAMP_BATCH == 0 {
            tokio::time::sleep(RAMP_STEP).await;
        }
        let request = target.request();
        let expected = Arc::clone(&expected);
        let open = Arc::clone(&open);
        tasks.push(tokio::spawn(async move {
            one_stream(addr, request, &expected, &open).await
        }));
    }
    let mut ttfbs = Vec::with_capacity(streams);
    let mut frames = 0u64;
    let mut complete = 0;
    let mut first_error = None;
    for task in tasks {
        let seen = task.await?;
        frames += seen.lines as u64;
        if let Some(ttfb) = seen.ttfb {
            ttfbs.push(nanos(ttfb));
        }
        match seen.error {
            None => complete += 1,
            Some(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    sampler.abort();
    let cpu_after = cpu_ticks_split(server_pids);
    ttfbs.sort_unstable();

    let tick_us = 1e6 / ticks_per_second as f64;
    let cpu_us = (cpu_after.0.saturating_sub(cpu_before.0)
        + cpu_after.1.saturating_sub(cpu_before.1)) as f64
        * tick_us;
    // The moment most streams were open (the highest RSS among equals) gives the per-stream
    // memory: what the server holds for the streams, above what it held before them.
    let (peak_rss, open_at_peak) = samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .copied()
        .max_by_key(|(rss, open)| (*open, *rss))
        .unwrap_or((rss_before, 0));
    Ok(StreamsPhase {
        via,
        streams,
        complete,
        failed: streams - complete,
        first_error,
        ttfb_p50_ms: quantile_us(&ttfbs, 0.50) / 1000.0,
        ttfb_p99_ms: quantile_us(&ttfbs, 0.99) / 1000.0,
        frames,
        server_cpu_us_per_frame: if frames == 0 {
            0.0
        } else {
            cpu_us / frames as f64
        },
        server_rss_before_mib: mib(rss_before),
        server_rss_peak_mib: mib(peak_rss),
        open_at_peak,
        rss_per_open_stream_kib: if open_at_peak == 0 {
            0.0
        } else {
            peak_rss.saturating_sub(rss_before) as f64 / open_at_peak as f64
        },
        seconds,
        request_log_rows: None,
    })
}

/// Raises this process's open-file limit (which the processes it starts inherit) to what
/// `streams` streams need, as far as it may; returns the limit now in force.
pub(super) fn raise_open_file_limit(streams: usize) -> Result<u64> {
    let wanted = fds_for(streams);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft >= wanted {
        return Ok(soft);
    }
    // Raising the hard limit needs the right to (CAP_SYS_RESOURCE, which a container's root may
    // lack); the soft one may always go up to the hard one.
    if rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted.max(hard)).is_err() {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)?;
    }
    let (now, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    eprintln!(
        "bench: open-file limit raised from {soft} to {now}; {wanted} wanted (two per stream in each proxy){}",
        if now < wanted {
            ", and this process may not raise its hard limit"
        } else {
            ""
        }
    );
    Ok(now)
}

/// Descriptors a proxy needs for `streams` streams: one toward the client and one upstream each.
pub(super) fn fds_for(streams: usize) -> u64 {
    2 * streams as u64 + FD_SPARE
}

/// The levels to run under `limit`: a level that does not fit is lowered to the most streams
/// that do, and named.
fn levels_within(wanted_levels: &[usize], limit: u64) -> Vec<usize> {
    let most = usize::try_from(limit.saturating_sub(FD_SPARE) / 2).unwrap_or(usize::MAX);
    let mut levels = Vec::new();
    for &wanted in wanted_levels {
        if wanted > most {
            eprintln!(
                "bench: {wanted} concurrent streams need {} open files per proxy, the limit is {limit}: running {most} instead",
                fds_for(wanted)
            );
        }
        let level = wanted.min(most);
        if !levels.contains(&level) {
            levels.push(level);
        }
    }
    levels
}

/// The levels `BENCH_STREAM_LEVELS` names (comma-separated stream counts, e.g. one small level
/// while investigating), else [`LEVELS`].
fn wanted_levels() -> Result<Vec<usize>> {
    let Ok(text) = std::env::var("BENCH_STREAM_LEVELS") else {
        return Ok(LEVELS.to_vec());
    };
    text.split(',')
        .map(|level| {
            level
                .trim()
                .replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|&level| level > 0)
                .with_context(|| {
                    format!("BENCH_STREAM_LEVELS={text}: {level:?} is not a positive stream count")
                })
        })
        .collect()
}

/// The servers `BENCH_STREAM_VIA` names (comma-separated: direct, nginx, llmgate, axum+reqwest,
/// axum+hyper, hyper, contract), else `None`: all of them.
fn wanted_vias() -> Result<Option<Vec<String>>> {
    let Ok(text) = std::env::var("BENCH_STREAM_VIA") else {
        return Ok(None);
    };
    let known = Via::ALL.map(Via::name);
    let names: Vec<String> = text.split(',').map(|name| name.trim().to_owned()).collect();
    if let Some(unknown) = names.iter().find(|name| !known.contains(&name.as_str())) {
        bail!(
            "BENCH_STREAM_VIA={text}: {unknown:?} is none of {}",
            known.join(", ")
        );
    }
    Ok(Some(names))
}

/// The gateway's config: the long paced mock behind one model, a key whose limits never refuse.
pub(super) fn streams_config(mock: SocketAddr) -> String {
    format!(
        r#"
[[providers]]
name = "mock-long"
kind = "openai"
base_url = "http://{mock}/v1"

  [[providers.accounts]]
  name = "l1"
  api_key = "{UPSTREAM_KEY}-long"

[[models]]
name = "{MODEL}"

  [[models.routes]]
  provider = "mock-long"
  model = "long-a"

[[keys]]
name = "bench"
key = "{KEY}"
rpm = {max}
tpm = {max}
"#,
        max = u32::MAX
    )
}

/// nginx in front of the long mock, with room for every stream on both sides. Its connection
/// slots are twice the two a stream takes: with exactly two, nginx logged "20512
/// worker_connections are not enough, reusing connections" at 9,744 streams and closed about
/// 130 of them (the slots are an array made at start, so the spare ones cost only its RSS
/// before the phase).
fn streams_nginx_config(prefix: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let p = prefix.display();
    let connections = 4 * LEVELS[LEVELS.len() - 1] + FD_SPARE as usize;
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nworker_rlimit_nofile {limit};\n\
         pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections {connections}; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/client_body;\n  \
         proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  \
         scgi_temp_path {p}/scgi;\n  upstream long {{\n    server {upstream};\n    keepalive 512;\n  }}\n  \
         server {{\n    listen {listen} backlog=4096;\n    location / {{\n      proxy_pass http://long;\n      \
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    \
         }}\n  }}\n}}\n",
        limit = connections + FD_SPARE as usize,
    )
}

/// `--streams`: the streams at scale alone; prints their table and their lines of the budget,
/// writes `target/bench/streams-<UTC>.json` and the budget's JSON, and returns whether every
/// line is met.
pub(super) async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let report = measure(&settings, &machine).await?;
    print_table(&report);
    let path = write(&settings, &report)?;
    println!("\nwritten: {}", path.display());
    budget::finish(&settings, &machine, &date, &report.budget)
}

/// Starts a long mock for each server, llmgate, nginx and the floors, waits until each streams
/// correctly, then runs every level directly, through nginx, through llmgate and through each
/// floor; returns the report with its budget lines (printed by the caller).
pub(super) async fn measure(settings: &Settings, machine: &Machine) -> Result<StreamsReport> {
    let date = chrono::Utc::now();
    let wanted_levels = wanted_levels()?;
    let wanted_vias = wanted_vias()?;
    let limit = raise_open_file_limit(wanted_levels.iter().copied().max().unwrap_or(0))?;
    let levels = levels_within(&wanted_levels, limit);

    let dir = tempfile::Builder::new()
        .prefix("llmgate-streams-")
        .tempdir()?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    // Each server streams from a paced mock of its own. After its phase a proxy's pool keeps
    // its idle upstream connections for up to twice its idle timeout (`pool_expiry`: three
    // minutes at llmgate's default), and a mock has one open-file limit, as each proxy has: with
    // one mock for all, the idle connections of the servers measured before left the mock unable
    // to accept the next server's largest level (its listen queue full, connections waiting
    // on SYN retries), and the order of the servers decided which of them failed.
    let mut mocks = Vec::new();
    for via in Via::ALL {
        let addr = loopback(free_port()?);
        let log = dir.path().join(format!("mock-for-{}.log", via.name()));
        mocks.push((via, addr, spawn_long_mock(settings, addr, log)?));
    }
    let mock_addrs: Vec<SocketAddr> = mocks.iter().map(|(_, addr, _)| *addr).collect();
    // `Via::ALL` is in the enum's order, so a server's mock is at its discriminant.
    let mock_for = |via: Via| mock_addrs[via as usize];
    let gateway_addr = loopback(free_port()?);
    let nginx_addr = loopback(free_port()?);
    let db = dir.path().join("llmgate.db");
    let mut gateway = spawn_gateway(
        settings,
        dir.path(),
        &streams_config(mock_for(Via::Llmgate)),
        gateway_addr,
        &db,
    )?;
    let prefix = dir.path().join("nginx");
    fs::create_dir(&prefix)?;
    let conf = prefix.join("nginx.conf");
    fs::write(
        &conf,
        streams_nginx_config(&prefix, nginx_addr, mock_for(Via::Nginx)),
    )?;
    let mut nginx = spawn_nginx(&prefix, &conf)?;
    let mut floors = spawn_floors(dir.path(), "", |floor| mock_for(Via::floor(floor)))?;

    // Each wait is one whole stream (six seconds): the mocks together, then the servers.
    let deadline = Instant::now() + Duration::from_secs(30);
    futures_util::future::try_join_all(
        mocks
            .iter_mut()
            .map(|(via, addr, mock)| wait_streaming(*via, *addr, mock, deadline)),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut servers = vec![
        (Via::Llmgate, gateway_addr, &mut gateway),
        (Via::Nginx, nginx_addr, &mut nginx),
    ];
    servers.extend(
        floors
            .iter_mut()
            .map(|floor| (Via::floor(floor.floor), floor.addr, &mut floor.proc)),
    );
    futures_util::future::try_join_all(
        servers
            .into_iter()
            .map(|(via, addr, process)| wait_streaming(via, addr, process, deadline)),
    )
    .await?;
    let nginx_pids = {
        let mut pids = vec![nginx.pid()];
        pids.extend(child_pids(nginx.pid()));
        pids
    };

    let direct_pids = vec![mocks[Via::Direct as usize].2.pid()];

    let mut phases = Vec::new();
    for &streams in &levels {
        let mut servers = vec![
            (Via::Direct, mock_for(Via::Direct), direct_pids.clone()),
            (Via::Nginx, nginx_addr, nginx_pids.clone()),
            (Via::Llmgate, gateway_addr, vec![gateway.pid()]),
        ];
        servers.extend(
            floors
                .iter()
                .map(|floor| (Via::floor(floor.floor), floor.addr, vec![floor.proc.pid()])),
        );
        for (via, addr, pids) in servers {
            if wanted_vias
                .as_ref()
                .is_some_and(|names| !names.iter().any(|name| name == via.name()))
            {
                continue;
            }
            let rows_before = count_usage(&db).await.0;
            let mut measured =
                phase(via, addr, streams, &pids, machine.clock_ticks_per_second).await?;
            if via == Via::Llmgate {
                // The request log is written by the usage writer about once a second.
                tokio::time::sleep(Duration::from_secs(3)).await;
                let rows_after = count_usage(&db).await.0;
                measured.request_log_rows = rows_after.zip(rows_before).map(|(a, b)| a - b);
            }
            phases.push(measured);
            // Let the connections of the phase close before the next one measures.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let clean_stop = gateway.stop(Duration::from_secs(10));
    nginx.stop(Duration::from_secs(5));
    drop(floors);
    for (_, _, mock) in &mut mocks {
        mock.stop(Duration::from_secs(5));
    }

    let mut report = StreamsReport {
        kind: "streams",
        date: date.to_rfc3339(),
        machine: machine.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        open_file_limit: limit,
        levels,
        phases,
        clean_stop,
        budget: Vec::new(),
        pass: false,
    };
    report.budget = budget::lines(None, Some(&report));
    report.pass = report.budget.iter().all(|line| line.met);
    Ok(report)
}

/// Writes the report as `target/bench/streams-<UTC>.json`.
pub(super) fn write(settings: &Settings, report: &StreamsReport) -> Result<PathBuf> {
    fs::create_dir_all(&settings.out_dir)?;
    let stamp = chrono::DateTime::parse_from_rfc3339(&report.date)
        .map(|date| date.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| report.date.clone());
    let path = settings.out_dir.join(format!("streams-{stamp}.json"));
    fs::write(&path, serde_json::to_vec_pretty(report)?)?;
    Ok(path)
}

/// The paced mock of the streams: `FRAMES` content frames, `FRAME_DELAY_MS` apart; its output
/// into `log`.
pub(super) fn spawn_long_mock(settings: &Settings, addr: SocketAddr, log: PathBuf) -> Result<Proc> {
    Proc::spawn(
        "long paced mock upstream",
        CLIENT_CORE,
        &settings.bin,
        &strings(&[
            "mock-upstream",
            "--listen",
            &addr.to_string(),
            "--chunks",
            &FRAMES.to_string(),
            "--chunk-delay",
            &format!("{FRAME_DELAY_MS}ms"),
        ]),
        &[],
        log,
    )
}

/// Waits until one stream through `addr` arrives whole.
pub(super) async fn wait_streaming(
    via: Via,
    addr: SocketAddr,
    process: &mut Proc,
    deadline: Instant,
) -> Result<()> {
    let (body, expected) = stream_body();
    let target = Target {
        body,
        ..Target::new(via, addr, true)
    };
    let open = AtomicUsize::new(0);
    loop {
        let seen = one_stream(addr, target.request(), &expected, &open).await;
        let Some(error) = seen.error else {
            return Ok(());
        };
        process.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} at {addr} does not stream after 30 s: {error}; the end of its log ({}):\n{}",
                process.name,
                process.log.display(),
                log_tail(&process.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn print_table(report: &StreamsReport) {
    println!(
        "\nStreams at scale, {} ({} frames × {} ms each; open-file limit {})",
        report.date, FRAMES, FRAME_DELAY_MS, report.open_file_limit
    );
    println!(
        "{:<12} {:>7} {:>9} {:>10} {:>10} {:>10} {:>12} {:>11} {:>11} {:>9}",
        "via",
        "streams",
        "whole",
        "TTFB p50",
        "TTFB p99",
        "CPU/frame",
        "RSS before",
        "RSS peak",
        "per stream",
        "log rows"
    );
    for phase in &report.phases {
        println!(
            "{:<12} {:>7} {:>9} {:>7.1} ms {:>7.1} ms {:>7.2} µs {:>8.1} MiB {:>7.1} MiB {:>7.1} KiB {:>9}",
            phase.via.name(),
            phase.streams,
            phase.complete,
            phase.ttfb_p50_ms,
            phase.ttfb_p99_ms,
            phase.server_cpu_us_per_frame,
            phase.server_rss_before_mib,
            phase.server_rss_peak_mib,
            phase.rss_per_open_stream_kib,
            phase
                .request_log_rows
                .map_or_else(|| "-".to_owned(), |rows| rows.to_string()),
        );
        if let Some(error) = &phase.first_error {
            println!("             first failure: {error}");
        }
    }
}
