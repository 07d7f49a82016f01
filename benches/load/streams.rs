//! Streams at scale (`make bench-streams`, and the last part of `make bench`): LLM traffic is
//! long streams, so this phase holds 1,000, then 10,000 concurrent streams open against a paced
//! mock (60 content frames, 100 ms apart), directly (which shows the load generator itself holds
//! them on its one core), through nginx, through the bare axum + reqwest floor (what llmgate's
//! libraries alone hold per stream) and through llmgate, and reports for each: streams
//! whose frames all arrived in order, time to first byte (and what the proxy adds to the
//! mock's own), CPU per forwarded frame, RSS per open stream above the server's RSS before the
//! phase, and, for llmgate, that the request log has a row for every stream.
//!
//! Each stream is its own connection, as each of many clients would hold one. The streams are
//! opened in steps (`RAMP_BATCH` every `RAMP_STEP`), all of them well before the first ends, so
//! every one is open at the peak. The bench raises its own open-file limit (two descriptors per
//! stream in each proxy, one in the client and in the mock) and says so; without the right to
//! raise it far enough it lowers a level to the most streams that fit, and says so.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Concurrent streams per level; `BENCH_STREAM_LEVELS` (a comma-separated list) runs others,
/// e.g. one small level while investigating.
const LEVELS: [usize; 2] = [1_000, 10_000];
/// Content frames per stream, and the mock's pause before each.
const FRAMES: usize = 60;
const FRAME_DELAY_MS: u64 = 100;
/// Data lines of a whole stream: the role frame, the content frames, the finish frame, `[DONE]`.
const DATA_LINES: usize = FRAMES + 3;
/// Streams opened at once, and the pause between two such steps: 10,000 in 2 s.
const RAMP_BATCH: usize = 500;
const RAMP_STEP: Duration = Duration::from_millis(100);
/// A stream that has not ended by then counts as failed.
const STREAM_DEADLINE: Duration = Duration::from_secs(60);
/// The model the streams ask for (the gateway's config names it).
const MODEL: &str = "bench-long";
/// Descriptors a process needs besides the streams' own.
const FD_SPARE: u64 = 512;

#[derive(Debug, Serialize)]
pub(super) struct StreamsPhase {
    via: Via,
    streams: usize,
    /// Streams whose every frame arrived, in order, with a 200.
    complete: usize,
    failed: usize,
    first_error: Option<String>,
    ttfb_p50_ms: f64,
    ttfb_p99_ms: f64,
    /// Data lines the client received, over every stream.
    frames: u64,
    /// CPU time (user + system) of the server the client talks to, per frame it forwarded.
    server_cpu_us_per_frame: f64,
    /// The server's RSS before the phase and at its peak, and the peak's growth per stream
    /// open at that moment.
    server_rss_before_mib: f64,
    server_rss_peak_mib: f64,
    open_at_peak: usize,
    rss_per_open_stream_kib: f64,
    /// Whole phase, from the first stream opened to the last ended.
    seconds: f64,
    /// llmgate only: request-log rows written for the phase's streams.
    request_log_rows: Option<i64>,
}

#[derive(Debug, Serialize)]
struct StreamsReport {
    kind: &'static str,
    date: String,
    machine: Machine,
    command: String,
    open_file_limit: u64,
    levels: Vec<usize>,
    phases: Vec<StreamsPhase>,
    budget: Vec<Check>,
    pass: bool,
}

/// What one stream saw.
struct Seen {
    ttfb: Option<Duration>,
    lines: usize,
    error: Option<String>,
}

/// The request every stream sends: the mock echoes the last user message, so the reply (and the
/// concatenated content of the stream) is `echo: ` and these numbered words, which shows any
/// frame lost, repeated or out of order.
fn stream_body() -> (Bytes, String) {
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
async fn one_stream(
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
fn raise_open_file_limit(streams: usize) -> Result<u64> {
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
fn fds_for(streams: usize) -> u64 {
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

/// The gateway's config: the long paced mock behind one model, a key whose limits never refuse.
fn streams_config(mock: SocketAddr) -> String {
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

/// nginx in front of the long mock, with room for every stream on both sides.
fn streams_nginx_config(prefix: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let p = prefix.display();
    let connections = 2 * LEVELS[LEVELS.len() - 1] + FD_SPARE as usize;
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

/// Starts the long mock, llmgate and nginx, waits until each streams correctly, then runs
/// every level directly, through nginx and through llmgate; prints the table, writes
/// `target/bench/streams-<UTC>.json`, and returns whether every figure is within budget.
pub(super) async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let wanted_levels = wanted_levels()?;
    let vias = wanted_vias()?;
    let limit = raise_open_file_limit(wanted_levels.iter().copied().max().unwrap_or(0))?;
    let levels = levels_within(&wanted_levels, limit);

    let dir = tempfile::Builder::new()
        .prefix("llmgate-streams-")
        .tempdir()?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mock_addr = loopback(free_port()?);
    let gateway_addr = loopback(free_port()?);
    let nginx_addr = loopback(free_port()?);
    let mut mock = Proc::spawn(
        "long paced mock upstream",
        CLIENT_CORE,
        &settings.bin,
        &strings(&[
            "mock-upstream",
            "--listen",
            &mock_addr.to_string(),
            "--chunks",
            &FRAMES.to_string(),
            "--chunk-delay",
            &format!("{FRAME_DELAY_MS}ms"),
        ]),
        &[],
        dir.path().join("mock.log"),
    )?;
    let db = dir.path().join("llmgate.db");
    let mut gateway = spawn_gateway(
        &settings,
        dir.path(),
        &streams_config(mock_addr),
        gateway_addr,
        &db,
    )?;
    let prefix = dir.path().join("nginx");
    fs::create_dir(&prefix)?;
    let conf = prefix.join("nginx.conf");
    fs::write(&conf, streams_nginx_config(&prefix, nginx_addr, mock_addr))?;
    let mut nginx = spawn_nginx(&prefix, &conf)?;
    // The floor: a bare axum + reqwest relay of the same streams, what the stack alone holds
    // per open stream.
    let floor_addr = loopback(free_port()?);
    let mut floor = Proc::spawn(
        "floor proxy (axum + reqwest)",
        PROXY_CORE,
        &std::env::current_exe()?,
        &strings(&[
            "--floor-proxy",
            Floor::AxumReqwest.arg(),
            &floor_addr.to_string(),
            &mock_addr.to_string(),
        ]),
        &[],
        dir.path().join("floor.log"),
    )?;

    let deadline = Instant::now() + Duration::from_secs(30);
    for (via, addr, process) in [
        (Via::Direct, mock_addr, &mut mock),
        (Via::Llmgate, gateway_addr, &mut gateway),
        (Via::Nginx, nginx_addr, &mut nginx),
        (Via::FloorAxumReqwest, floor_addr, &mut floor),
    ] {
        wait_streaming(via, addr, process, deadline).await?;
    }
    let nginx_pids = {
        let mut pids = vec![nginx.pid()];
        pids.extend(child_pids(nginx.pid()));
        pids
    };

    let mut phases = Vec::new();
    for &streams in &levels {
        for (via, addr, pids) in [
            (Via::Direct, mock_addr, vec![mock.pid()]),
            (Via::Nginx, nginx_addr, nginx_pids.clone()),
            (Via::FloorAxumReqwest, floor_addr, vec![floor.pid()]),
            (Via::Llmgate, gateway_addr, vec![gateway.pid()]),
        ] {
            if !vias.contains(&via) {
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
    let clean = gateway.stop(Duration::from_secs(10));
    nginx.stop(Duration::from_secs(5));
    floor.stop(Duration::from_secs(5));
    mock.stop(Duration::from_secs(5));

    let budget = judge(&phases, clean);
    let pass = budget.iter().all(|check| check.pass);
    let report = StreamsReport {
        kind: "streams",
        date: date.to_rfc3339(),
        machine,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        open_file_limit: limit,
        levels: levels.clone(),
        phases,
        budget,
        pass,
    };
    print_streams(&report);
    fs::create_dir_all(&settings.out_dir)?;
    let path = settings
        .out_dir
        .join(format!("streams-{}.json", date.format("%Y%m%dT%H%M%SZ")));
    fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(pass)
}

/// The levels `BENCH_STREAM_LEVELS` names (comma-separated stream counts), else `LEVELS`.
fn wanted_levels() -> Result<Vec<usize>> {
    let Ok(text) = std::env::var("BENCH_STREAM_LEVELS") else {
        return Ok(LEVELS.to_vec());
    };
    parse_levels(&text)
}

fn parse_levels(text: &str) -> Result<Vec<usize>> {
    let levels = text
        .split(',')
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
        .collect::<Result<Vec<_>>>()?;
    Ok(levels)
}

/// The servers `BENCH_STREAM_VIA` names (comma-separated: direct, nginx, axum+reqwest,
/// llmgate), else all.
fn wanted_vias() -> Result<Vec<Via>> {
    let all = [Via::Direct, Via::Nginx, Via::FloorAxumReqwest, Via::Llmgate];
    let Ok(text) = std::env::var("BENCH_STREAM_VIA") else {
        return Ok(all.to_vec());
    };
    text.split(',')
        .map(|name| {
            all.into_iter()
                .find(|via| via.name() == name.trim())
                .with_context(|| {
                    format!("BENCH_STREAM_VIA={text}: {name:?} is not direct, nginx, axum+reqwest or llmgate")
                })
        })
        .collect()
}

/// Waits until one stream through `addr` arrives whole.
async fn wait_streaming(
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

/// The budget of the streams phase (shared/DESIGN.md): every frame delivered in order, CPU per
/// forwarded frame within 2× nginx's, at most 32 KiB per open stream, a request-log row for
/// every stream, and a clean stop.
fn judge(phases: &[StreamsPhase], clean_stop: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let find = |via: Via, streams: usize| {
        phases
            .iter()
            .find(|phase| phase.via == via && phase.streams == streams)
    };
    for phase in phases {
        checks.push(Check {
            name: format!(
                "{} × {}: streams whole and in order",
                phase.via.name(),
                phase.streams
            ),
            value: format!("{} of {}", phase.complete, phase.streams),
            limit: "all".into(),
            pass: phase.complete == phase.streams,
        });
    }
    for streams in phases
        .iter()
        .map(|phase| phase.streams)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (Some(llmgate), Some(nginx)) = (find(Via::Llmgate, streams), find(Via::Nginx, streams))
        else {
            continue;
        };
        let ratio = ratio(
            llmgate.server_cpu_us_per_frame,
            nginx.server_cpu_us_per_frame,
        );
        checks.push(Check {
            name: format!("{streams} streams: CPU per frame vs nginx"),
            value: format!(
                "{:.2} µs vs {:.2} µs ({ratio:.2}×)",
                llmgate.server_cpu_us_per_frame, nginx.server_cpu_us_per_frame
            ),
            limit: "≤ 2.00×".into(),
            pass: ratio <= 2.0,
        });
        checks.push(Check {
            name: format!("{streams} streams: llmgate RSS per open stream"),
            value: format!("{:.1} KiB", llmgate.rss_per_open_stream_kib),
            limit: "≤ 32 KiB".into(),
            pass: llmgate.rss_per_open_stream_kib <= 32.0,
        });
        let rows = llmgate.request_log_rows.unwrap_or(-1);
        checks.push(Check {
            name: format!("{streams} streams: request-log rows"),
            value: rows.to_string(),
            limit: format!("= {}", llmgate.streams),
            pass: usize::try_from(rows).is_ok_and(|rows| rows == llmgate.streams),
        });
    }
    checks.push(Check {
        name: "llmgate stopped within its grace".into(),
        value: clean_stop.to_string(),
        limit: "true".into(),
        pass: clean_stop,
    });
    checks
}

fn print_streams(report: &StreamsReport) {
    println!(
        "\nStreams at scale, {} ({} frames × {} ms each; open-file limit {})",
        report.date, FRAMES, FRAME_DELAY_MS, report.open_file_limit
    );
    println!(
        "{:<8} {:>7} {:>9} {:>10} {:>10} {:>10} {:>12} {:>11} {:>11} {:>9}",
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
            "{:<8} {:>7} {:>9} {:>7.1} ms {:>7.1} ms {:>7.2} µs {:>8.1} MiB {:>7.1} MiB {:>7.1} KiB {:>9}",
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
            println!("         first failure: {error}");
        }
    }
    println!("\nBudget (streams):");
    for check in &report.budget {
        println!(
            "  {} {:<50} {:>32}  (limit {})",
            if check.pass { "ok  " } else { "MISS" },
            check.name,
            check.value,
            check.limit
        );
    }
}
