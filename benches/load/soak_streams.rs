//! The soak with streams (`make soak-streams`, or `make soak SOAK_MODE=streams`): `SOAK_STREAMS`
//! (default 2,000) concurrent streams through llmgate against the long paced mock of
//! `streams.rs` (60 frames, 100 ms apart), each renewed on a new connection as it ends, for
//! `SOAK_SECONDS` (default 600). Every 30 s it prints llmgate's RSS, its open file descriptors
//! and the streams so far; at the end, a verdict on three criteria:
//!
//! - RSS flat: the mean RSS of the last window of the run at most `RSS_GROWTH_LIMIT` (2 %)
//!   above the mean of the window that opens its second half (windows of a quarter of the run,
//!   at most 60 s), so the warm-up of the first half is not counted as growth;
//! - descriptors back: once the last stream ended and the upstream pool surely closed its idle
//!   connections (twice its idle timeout, see `pool_expiry`), llmgate's open descriptors within
//!   `FD_SLACK` of their count before the first stream;
//! - every stream whole, in order, and recorded: no stream failed, and the request log has
//!   one row for each stream started.
//!
//! When llmgate is a `jemalloc-diagnostics` build (Cargo.toml), each printed line also carries
//! jemalloc's own figures from `/metrics` (allocated, active, resident), and the verdict an
//! information line comparing them over the second half: whether RSS climbs because the
//! allocator holds more, or because pages it already holds become resident.
//!
//! It is bounded in time and count: no stream starts after `SOAK_SECONDS`, the last ones end
//! within `STREAM_DEADLINE`, then it waits for the pool's expiry once and stops.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::streams::{
    FRAME_DELAY_MS, FRAMES, STREAM_DEADLINE, Seen, fds_for, one_stream, raise_open_file_limit,
    spawn_long_mock, stream_body, streams_config, wait_streaming,
};
use super::*;

/// Streams held open at once unless `SOAK_STREAMS` says otherwise.
const DEFAULT_STREAMS: usize = 2_000;
/// How often progress is printed.
const PRINT_EVERY: Duration = Duration::from_secs(30);
/// RSS growth over the second half that still counts as flat, in percent.
const RSS_GROWTH_LIMIT: f64 = 2.0;
/// Open descriptors at the end may differ from the start by this many (the database's and
/// the runtime's own come and go).
const FD_SLACK: i64 = 8;

/// Streams so far, shared by the renewing tasks and the progress printer.
#[derive(Default)]
struct Counts {
    started: AtomicU64,
    complete: AtomicU64,
    failed: AtomicU64,
    frames: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counts {
    fn record(&self, seen: Seen) {
        self.frames.fetch_add(seen.lines as u64, Ordering::Relaxed);
        match seen.error {
            None => {
                self.complete.fetch_add(1, Ordering::Relaxed);
            }
            Some(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
            }
        }
    }
}

/// One sample of llmgate: seconds since the first stream, RSS in MiB, open descriptors, and
/// streams open at that moment; jemalloc's figures with each printed line when llmgate is a
/// `jemalloc-diagnostics` build (Cargo.toml).
#[derive(Debug, Clone, Copy, Serialize)]
struct Sample {
    at_s: f64,
    rss_mib: f64,
    fds: usize,
    open_streams: usize,
    allocator: Option<Allocator>,
}

/// What jemalloc holds, in MiB, from `llmgate_allocator_bytes` on `/metrics`: live
/// allocations, the pages they occupy, and the pages it counts as resident (an upper bound:
/// it includes pages handed out but never touched).
#[derive(Debug, Clone, Copy, Serialize)]
struct Allocator {
    allocated_mib: f64,
    active_mib: f64,
    resident_mib: f64,
}

impl Allocator {
    /// Reads them from llmgate; `None` from a release build, which does not export them.
    async fn read(client: &reqwest::Client, addr: SocketAddr) -> Option<Self> {
        let text = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let figure = |kind: &str| {
            let prefix = format!("llmgate_allocator_bytes{{kind=\"{kind}\"}} ");
            text.lines()
                .find_map(|line| {
                    line.strip_prefix(prefix.as_str())?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .map(|bytes| bytes / 1_048_576.0)
        };
        Some(Self {
            allocated_mib: figure("allocated")?,
            active_mib: figure("active")?,
            resident_mib: figure("resident")?,
        })
    }
}

#[derive(Debug, Serialize)]
struct SoakStreamsReport {
    kind: &'static str,
    date: String,
    machine: Machine,
    seconds: f64,
    concurrent_streams: usize,
    frames_per_stream: usize,
    frame_delay_ms: u64,
    open_file_limit: u64,
    streams_started: u64,
    streams_complete: u64,
    streams_failed: u64,
    first_error: Option<String>,
    frames: u64,
    request_log_rows: Option<i64>,
    clean_stop: bool,
    cpu_us_per_frame: f64,
    samples: Vec<Sample>,
    window_s: f64,
    /// Mean RSS of the window that opens the second half, and of the last window.
    second_half_start_mib: f64,
    last_window_mib: f64,
    rss_growth_percent: f64,
    rss_flat: bool,
    fds_before: usize,
    /// Open descriptors over the second half, least and most.
    fds_second_half: (usize, usize),
    fds_after: usize,
    rss_after_mib: f64,
    /// Seconds between the last stream's end and the `after` readings.
    after_delay_s: f64,
    fds_back: bool,
    /// In a `jemalloc-diagnostics` build: the first sample of the second half with jemalloc's
    /// figures and the last one, to tell memory jemalloc holds from pages that became resident.
    allocator_second_half: Option<(Sample, Sample)>,
    pass: bool,
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=50_000).contains(n))
            .ok_or_else(|| anyhow!("{name}={text} must be a whole number from 1 to 50000")),
        Err(_) => Ok(default),
    }
}

/// Renews a stream through `addr` each time one ends, until `end`.
async fn renewing(
    addr: SocketAddr,
    target: Arc<Target>,
    expected: Arc<str>,
    open: Arc<AtomicUsize>,
    counts: Arc<Counts>,
    first_at: Instant,
    end: Instant,
) {
    tokio::time::sleep_until(first_at).await;
    while Instant::now() < end {
        counts.started.fetch_add(1, Ordering::Relaxed);
        let seen = one_stream(addr, target.request(), &expected, &open).await;
        let failed = seen.error.is_some();
        counts.record(seen);
        if failed {
            // A gateway that refuses at once must not turn the soak into a busy loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(super) async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let seconds = env_seconds("SOAK_SECONDS", 600.0)?;
    let streams = env_count("SOAK_STREAMS", DEFAULT_STREAMS)?;
    let machine = Machine::read();
    let date = chrono::Utc::now();
    let pool_idle = pool_idle_timeout()?;
    let limit = raise_open_file_limit(streams)?;
    if limit < fds_for(streams) {
        bail!(
            "{streams} streams need {} open files in llmgate and the limit is {limit}; set SOAK_STREAMS lower",
            fds_for(streams)
        );
    }

    let dir = tempfile::Builder::new()
        .prefix("llmgate-soak-streams-")
        .tempdir()?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mock_addr = loopback(free_port()?);
    let gateway_addr = loopback(free_port()?);
    let mut mock = spawn_long_mock(&settings, mock_addr, dir.path().join("mock.log"))?;
    let db = dir.path().join("llmgate.db");
    let mut gateway = spawn_gateway(
        &settings,
        dir.path(),
        &streams_config(mock_addr),
        gateway_addr,
        &db,
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    wait_streaming(Via::Direct, mock_addr, &mut mock, deadline).await?;
    wait_streaming(Via::Llmgate, gateway_addr, &mut gateway, deadline).await?;
    // Let the readiness streams' rows reach the request log before counting from here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = gateway.pid();
    let rows_before = count_usage(&db).await.0;
    let fds_before = open_fds(pid);
    let rss_before = rss_kib(&[pid]);

    let stream_length = Duration::from_millis(FRAME_DELAY_MS * FRAMES as u64);
    eprintln!(
        "soak-streams: {streams} concurrent streams ({FRAMES} frames × {FRAME_DELAY_MS} ms, each renewed on a new connection as it ends) through llmgate for {:.0} s; RSS {:.1} MiB and {fds_before} open files before; a line every {} s",
        seconds.as_secs_f64(),
        mib(rss_before),
        PRINT_EVERY.as_secs()
    );
    let (body, expected) = stream_body();
    let target = Arc::new(Target {
        body,
        ..Target::new(Via::Llmgate, gateway_addr, true)
    });
    let expected: Arc<str> = Arc::from(expected);
    let open = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + seconds;
    let cpu_before = cpu_ticks(&[pid]);
    // The first streams start spread over one stream's length, so the renewals are spread too
    // and the number open stays near `streams` rather than moving in waves.
    let tasks: Vec<_> = (0..streams)
        .map(|index| {
            let first_at = start + stream_length.mul_f64(index as f64 / streams as f64);
            tokio::spawn(renewing(
                gateway_addr,
                Arc::clone(&target),
                Arc::clone(&expected),
                Arc::clone(&open),
                Arc::clone(&counts),
                first_at,
                end,
            ))
        })
        .collect();

    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SOAK_RSS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut printed = start;
    let metrics_client = reqwest::Client::new();
    while Instant::now() < end {
        tick.tick().await;
        let print = printed.elapsed() >= PRINT_EVERY || samples.is_empty();
        let allocator = if print {
            Allocator::read(&metrics_client, gateway_addr).await
        } else {
            None
        };
        let sample = Sample {
            at_s: start.elapsed().as_secs_f64(),
            rss_mib: mib(rss_kib(&[pid])),
            fds: open_fds(pid),
            open_streams: open.load(Ordering::Relaxed),
            allocator,
        };
        samples.push(sample);
        if print {
            printed = Instant::now();
            let jemalloc = allocator.map_or_else(String::new, |a| {
                format!(
                    "  jemalloc allocated {:.1}, active {:.1}, resident {:.1} MiB",
                    a.allocated_mib, a.active_mib, a.resident_mib
                )
            });
            println!(
                "soak-streams: {:>5.0} s  RSS {:>6.1} MiB  open files {:>5}  streams open {:>5}  ended {:>7} ({} failed){jemalloc}",
                sample.at_s,
                sample.rss_mib,
                sample.fds,
                sample.open_streams,
                counts.complete.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed),
                counts.failed.load(Ordering::Relaxed)
            );
        }
        gateway.check_alive()?;
    }
    eprintln!(
        "soak-streams: no new streams from now; waiting for the open ones to end (at most {} s)",
        STREAM_DEADLINE.as_secs()
    );
    for task in tasks {
        task.await?;
    }
    let cpu_after = cpu_ticks(&[pid]);
    let last_end = Instant::now();
    let after_at = last_end + pool_expiry(pool_idle);
    eprintln!(
        "soak-streams: every stream ended; waiting {:.0} s for the upstream pool to close its idle connections before reading open files again",
        (after_at - Instant::now()).as_secs_f64()
    );
    tokio::time::sleep_until(after_at).await;
    let fds_after = open_fds(pid);
    let rss_after = rss_kib(&[pid]);
    let after_delay = last_end.elapsed();
    let clean_stop = gateway.stop(Duration::from_secs(15));
    let rows_after = count_usage(&db).await.0;
    mock.stop(Duration::from_secs(5));

    let total = seconds.as_secs_f64();
    let window = 60.0_f64.min(total / 4.0);
    let mean = |from: f64, to: f64| {
        let inside: Vec<f64> = samples
            .iter()
            .filter(|s| s.at_s >= from && s.at_s <= to)
            .map(|s| s.rss_mib)
            .collect();
        if inside.is_empty() {
            0.0
        } else {
            inside.iter().sum::<f64>() / inside.len() as f64
        }
    };
    let half = total / 2.0;
    let second_half_start = mean(half, half + window);
    let last_window = mean(total - window, total + 1.0);
    let growth = if second_half_start > 0.0 {
        (last_window - second_half_start) / second_half_start * 100.0
    } else {
        f64::INFINITY
    };
    let rss_flat = growth <= RSS_GROWTH_LIMIT;
    let second_half_fds = samples
        .iter()
        .filter(|s| s.at_s >= half)
        .fold((usize::MAX, 0), |(least, most), s| {
            (least.min(s.fds), most.max(s.fds))
        });
    let fds_back = (fds_after as i64 - fds_before as i64).abs() <= FD_SLACK;
    let with_allocator = || {
        samples
            .iter()
            .filter(|s| s.at_s >= half && s.allocator.is_some())
    };
    let allocator_second_half = with_allocator()
        .next()
        .zip(with_allocator().next_back())
        .map(|(first, last)| (*first, *last));
    let started = counts.started.load(Ordering::Relaxed);
    let complete = counts.complete.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let frames = counts.frames.load(Ordering::Relaxed);
    let rows = rows_after
        .zip(rows_before)
        .map(|(after, before)| after - before);
    let recorded = rows.is_some_and(|rows| u64::try_from(rows).is_ok_and(|rows| rows == started));
    let pass = rss_flat && fds_back && failed == 0 && complete == started && recorded && clean_stop;
    let ticks = machine.clock_ticks_per_second as f64;
    let first_error = counts
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let report = SoakStreamsReport {
        kind: "soak-streams",
        date: date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        seconds: total,
        concurrent_streams: streams,
        frames_per_stream: FRAMES,
        frame_delay_ms: FRAME_DELAY_MS,
        open_file_limit: limit,
        streams_started: started,
        streams_complete: complete,
        streams_failed: failed,
        first_error,
        frames,
        request_log_rows: rows,
        clean_stop,
        cpu_us_per_frame: if frames == 0 {
            0.0
        } else {
            cpu_after.saturating_sub(cpu_before) as f64 * 1e6 / ticks / frames as f64
        },
        samples,
        window_s: window,
        second_half_start_mib: second_half_start,
        last_window_mib: last_window,
        rss_growth_percent: growth,
        rss_flat,
        fds_before,
        fds_second_half: second_half_fds,
        fds_after,
        rss_after_mib: mib(rss_after),
        after_delay_s: after_delay.as_secs_f64(),
        fds_back,
        allocator_second_half,
        pass,
    };
    print_verdict(&report);
    let path = write_json(&settings.out_dir, "soak-streams", &date, &report)?;
    println!("written: {}", path.display());
    Ok(pass)
}

fn print_verdict(report: &SoakStreamsReport) {
    let verdict = |ok: bool| if ok { "ok  " } else { "MISS" };
    println!(
        "\nllmgate soak with streams · {} · commit {} · {:.0} s, {} concurrent streams renewed as they end",
        report.date, report.machine.commit, report.seconds, report.concurrent_streams
    );
    println!(
        "streams: {} started, {} whole and in order, {} failed; {} frames; request-log rows {}; CPU {:.2} µs per frame",
        report.streams_started,
        report.streams_complete,
        report.streams_failed,
        report.frames,
        report
            .request_log_rows
            .map_or_else(|| "n/a".to_owned(), |rows| rows.to_string()),
        report.cpu_us_per_frame
    );
    if let Some(error) = &report.first_error {
        println!("first failure: {error}");
    }
    println!(
        "{} RSS flat: mean of the last {:.0} s {:.1} MiB vs {:.1} MiB at the start of the second half: {:+.2} % (limit +{RSS_GROWTH_LIMIT:.0} %)",
        verdict(report.rss_flat),
        report.window_s,
        report.last_window_mib,
        report.second_half_start_mib,
        report.rss_growth_percent
    );
    println!(
        "{} open files back: {} before, {}–{} over the second half, {} at {:.0} s after the last stream (twice the pool's idle timeout passed; limit ± {FD_SLACK}); RSS then {:.1} MiB",
        verdict(report.fds_back),
        report.fds_before,
        report.fds_second_half.0,
        report.fds_second_half.1,
        report.fds_after,
        report.after_delay_s,
        report.rss_after_mib
    );
    if let Some((first, last)) = &report.allocator_second_half
        && let (Some(a), Some(b)) = (first.allocator, last.allocator)
    {
        println!(
            "info jemalloc (diagnosis build), {:.0} s → {:.0} s: allocated {:.1} → {:.1} MiB, active {:.1} → {:.1}, resident {:.1} → {:.1}; RSS {:.1} → {:.1}",
            first.at_s,
            last.at_s,
            a.allocated_mib,
            b.allocated_mib,
            a.active_mib,
            b.active_mib,
            a.resident_mib,
            b.resident_mib,
            first.rss_mib,
            last.rss_mib
        );
    }
    let recorded = report.streams_failed == 0
        && report.streams_complete == report.streams_started
        && report.request_log_rows.is_some_and(|rows| {
            u64::try_from(rows).is_ok_and(|rows| rows == report.streams_started)
        });
    println!(
        "{} every stream whole, in order and recorded (request-log rows = streams started), llmgate stopped within its grace: {}",
        verdict(recorded && report.clean_stop),
        report.clean_stop
    );
    println!("result: {}", if report.pass { "PASS" } else { "FAIL" });
}
