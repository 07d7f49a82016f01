//! The budget table of shared/DESIGN.md, printed last by `make bench`: one line per limit, each
//! with llmgate's figure from this run, the limit, and met or not met. Beside a line not met it
//! prints the floor proxies' figure for the same line from the same run (`floor.rs`), so a
//! reader sees whether the bare axum + reqwest stack already misses it; the JSON under
//! `target/bench/budget-<UTC>.json` (and `budget-latest.json`) keeps the floors' figures of
//! every line. The contract floor (`floor_contract.rs`: the axum + reqwest floor doing the least
//! work the contract asks of a request) is judged by each line's limit too, so a line that no
//! implementation of the contract on this stack could meet says so.
//!
//! The design writes memory in MB; the table reads its limits as MiB, as every earlier run of
//! the bench did. "Back near idle" is read as at most `NEAR_IDLE_MIB` above idle, measured
//! once the upstream pool has surely closed its idle connections since the last phase (twice
//! its idle timeout and `AFTER_MARGIN`, see `pool_expiry`).

use super::streams::{StreamsPhase, StreamsReport};
use super::*;

/// The floors in the order they are printed; the first is the floor the budget names.
const FLOORS: [Via; 4] = [
    Via::FloorAxumReqwest,
    Via::FloorAxumHyper,
    Via::FloorHyper,
    Via::FloorContract,
];

/// RSS "back near idle": at most this much above idle once the pool's idle connections expired.
const NEAR_IDLE_MIB: f64 = 5.0;

/// One of a floor's memory figures.
type MemoryFigure = fn(&FloorMemory) -> f64;

/// One limit of the budget, judged against this run.
#[derive(Debug, Clone, Serialize)]
pub(super) struct BudgetLine {
    /// What the line limits, in the words of shared/DESIGN.md.
    pub(super) line: String,
    /// llmgate's figure as printed, and as a number in the unit of `limit_value`.
    pub(super) measured: String,
    pub(super) value: f64,
    pub(super) limit: String,
    pub(super) limit_value: f64,
    pub(super) met: bool,
    /// The floor proxies' figures for the same line in the same run, where the line has them.
    pub(super) floors: Option<String>,
    /// The axum + reqwest floor's figure in the unit of `value`, and whether it meets the same
    /// limit: where it does not, the stack itself prevents the line.
    pub(super) floor_value: Option<f64>,
    pub(super) floor_met: Option<bool>,
    /// The contract floor's figure in the unit of `value`, and whether it meets the limit:
    /// where it does not, the contract's own work on this stack prevents the line.
    pub(super) contract_value: Option<f64>,
    pub(super) contract_met: Option<bool>,
}

/// The floors' figures for one line: as printed, and the two that are judged.
struct FloorFigures {
    text: String,
    /// The axum + reqwest floor's.
    reference: Option<f64>,
    /// The contract floor's.
    contract: Option<f64>,
}

impl BudgetLine {
    /// A line met when `value` is at most `limit_value`.
    fn at_most(
        line: impl Into<String>,
        value: f64,
        measured: String,
        limit_value: f64,
        limit: impl Into<String>,
    ) -> Self {
        Self {
            line: line.into(),
            measured,
            value,
            limit: limit.into(),
            limit_value,
            met: value.is_finite() && value <= limit_value,
            floors: None,
            floor_value: None,
            floor_met: None,
            contract_value: None,
            contract_met: None,
        }
    }

    /// The floors' figures for this line; the axum + reqwest floor's and the contract
    /// floor's are judged by the same limit.
    fn with_floors(mut self, figures: FloorFigures) -> Self {
        self.floor_met = figures.reference.map(|value| self.within(value));
        self.floor_value = figures.reference;
        self.with_floor_text(figures.text)
            .with_contract(figures.contract)
    }

    /// The floors' figures for a line that compares llmgate with the floor itself, where the
    /// floor cannot be judged by the limit.
    fn with_floor_text(mut self, text: String) -> Self {
        self.floors = (!text.is_empty()).then_some(text);
        self
    }

    /// The contract floor's figure for this line, judged by the same limit.
    fn with_contract(mut self, value: Option<f64>) -> Self {
        self.contract_met = value.map(|value| self.within(value));
        self.contract_value = value;
        self
    }

    fn within(&self, value: f64) -> bool {
        value.is_finite() && value <= self.limit_value
    }
}

/// Each floor's figure (those it has), formatted, and the two judged ones as numbers.
fn floor_figures(
    figure: impl Fn(Via) -> Option<f64>,
    format: impl Fn(f64) -> String,
) -> FloorFigures {
    let text = FLOORS
        .iter()
        .filter_map(|via| figure(*via).map(|value| format!("{} {}", via.name(), format(value))))
        .collect::<Vec<_>>()
        .join(", ");
    FloorFigures {
        text,
        reference: figure(Via::FloorAxumReqwest),
        contract: figure(Via::FloorContract),
    }
}

/// Appends nginx's figure to the floors' text, where nginx has one.
fn and_nginx(mut figures: FloorFigures, nginx: Option<String>) -> FloorFigures {
    match nginx {
        Some(nginx) if figures.text.is_empty() => figures.text = format!("nginx {nginx}"),
        Some(nginx) => figures.text = format!("{}; nginx {nginx}", figures.text),
        None => {}
    }
    figures
}

/// The budget's lines measurable from the chat bench (`chat`) and from the streams at scale
/// (`streams`), whichever ran.
pub(super) fn lines(chat: Option<&Report>, streams: Option<&StreamsReport>) -> Vec<BudgetLine> {
    let mut lines = Vec::new();
    if let Some(report) = chat {
        chat_lines(report, &mut lines);
    }
    if let Some(report) = streams {
        streams_lines(report, &mut lines);
    }
    lines
}

fn chat_lines(report: &Report, lines: &mut Vec<BudgetLine>) {
    let phases = &report.phases;
    let cpu = |via, c| find(phases, via, false, c).map(|p| p.server_cpu_us_per_request);

    if let (Some(gate), Some(floor)) = (cpu(Via::Llmgate, 64), cpu(Via::FloorAxumReqwest, 64)) {
        let times = ratio(gate, floor);
        let figures = and_nginx(
            floor_figures(|via| cpu(via, 64), |v| format!("{v:.1} µs")),
            cpu(Via::Nginx, 64).map(|v| format!("{v:.1} µs")),
        );
        lines.push(
            BudgetLine::at_most(
                "CPU per request at c=64 ÷ the axum+reqwest floor's",
                times,
                format!("{times:.2}× ({gate:.1} vs {floor:.1} µs)"),
                1.15,
                "≤ 1.15×",
            )
            .with_floor_text(figures.text)
            .with_contract(figures.contract.map(|contract| ratio(contract, floor))),
        );
    }
    if let (Some(at64), Some(at256)) = (cpu(Via::Llmgate, 64), cpu(Via::Llmgate, 256)) {
        let times = ratio(at256, at64);
        lines.push(
            BudgetLine::at_most(
                "CPU per request at c=256 ÷ llmgate's at c=64",
                times,
                format!("{times:.2}× ({at256:.1} vs {at64:.1} µs)"),
                1.15,
                "≤ 1.15×",
            )
            .with_floors(floor_figures(
                |via| Some(ratio(cpu(via, 256)?, cpu(via, 64)?)),
                |v| format!("{v:.2}×"),
            )),
        );
    }
    let p50: fn(&Phase) -> f64 = |p| p.p50_us;
    let p99: fn(&Phase) -> f64 = |p| p.p99_us;
    for (name, quantile, limit) in [("p50", p50, 50.0), ("p99", p99, 150.0)] {
        let (Some(gate), Some(nginx)) = (
            find(phases, Via::Llmgate, false, 1),
            find(phases, Via::Nginx, false, 1),
        ) else {
            continue;
        };
        let added = quantile(gate) - quantile(nginx);
        lines.push(
            BudgetLine::at_most(
                format!("c=1 {name} − nginx's {name}"),
                added,
                format!(
                    "{added:+.0} µs ({:.0} vs {:.0})",
                    quantile(gate),
                    quantile(nginx)
                ),
                limit,
                format!("≤ +{limit:.0} µs"),
            )
            .with_floors(floor_figures(
                |via| find(phases, via, false, 1).map(|p| quantile(p) - quantile(nginx)),
                |v| format!("{v:+.0} µs"),
            )),
        );
    }
    if let (Some(gate), Some(nginx)) = (
        find(phases, Via::Llmgate, true, 1),
        find(phases, Via::Nginx, true, 1),
    ) {
        // The floors run the paced c=1 stream phase too, through their own copies in front
        // of the paced mock.
        let added = gate.ttfb_p50_us - nginx.ttfb_p50_us;
        lines.push(
            BudgetLine::at_most(
                "stream c=1 first byte p50 − nginx's",
                added,
                format!(
                    "{added:+.0} µs ({:.0} vs {:.0})",
                    gate.ttfb_p50_us, nginx.ttfb_p50_us
                ),
                100.0,
                "≤ +100 µs",
            )
            .with_floors(floor_figures(
                |via| find(phases, via, true, 1).map(|p| p.ttfb_p50_us - nginx.ttfb_p50_us),
                |v| format!("{v:+.0} µs"),
            )),
        );
    }

    let memory = &report.memory;
    let floor_memory = |via: Via, figure: MemoryFigure| -> Option<f64> {
        memory.floors.iter().find(|f| f.via == via).map(figure)
    };
    let limits: [(&str, f64, f64, MemoryFigure); 2] = [
        ("idle RSS", memory.idle_mib, 20.0, |f| f.idle_mib),
        ("peak RSS at c=256", memory.peak_c256_mib, 48.0, |f| {
            f.peak_c256_mib
        }),
    ];
    for (name, value, limit, figure) in limits {
        lines.push(
            BudgetLine::at_most(
                name,
                value,
                format!("{value:.1} MiB"),
                limit,
                format!("≤ {limit:.0} MiB"),
            )
            .with_floors(floor_figures(
                |via| floor_memory(via, figure),
                |v| format!("{v:.1} MiB"),
            )),
        );
    }
    let above = memory.after_mib - memory.idle_mib;
    lines.push(
        BudgetLine::at_most(
            format!(
                "RSS {:.0} s after the load (pool idle timeout {:.0} s) − idle",
                memory.after_delay_s, memory.pool_idle_timeout_s
            ),
            above,
            format!("{above:+.1} MiB ({:.1} MiB)", memory.after_mib),
            NEAR_IDLE_MIB,
            format!("≤ +{NEAR_IDLE_MIB:.0} MiB"),
        )
        .with_floors(floor_figures(
            |via| floor_memory(via, |f| f.after_mib - f.idle_mib),
            |v| format!("{v:+.1} MiB"),
        )),
    );

    let errors = |via: Via| -> Option<f64> {
        let mut of_via = phases.iter().filter(|p| p.via == via).peekable();
        of_via.peek()?;
        Some(of_via.map(|p| p.errors).sum::<u64>() as f64)
    };
    let failed = errors(Via::Llmgate).unwrap_or(0.0);
    lines.push(
        BudgetLine::at_most(
            "failed requests (every llmgate phase)",
            failed,
            format!("{failed:.0}"),
            0.0,
            "0",
        )
        .with_floors(floor_figures(errors, |v| format!("{v:.0}"))),
    );
    let accounting = &report.accounting;
    let (value, measured) = match accounting.request_log_rows {
        Some(rows) => (
            (rows as f64 - accounting.served as f64).abs(),
            format!(
                "{rows} of {}{}",
                accounting.served,
                if accounting.clean_shutdown {
                    ""
                } else {
                    " (stop not clean)"
                }
            ),
        ),
        None => (f64::INFINITY, "no request_log table".to_owned()),
    };
    lines.push(BudgetLine::at_most(
        "request-log rows = requests served",
        value,
        measured,
        0.0,
        "equal",
    ));
}

fn streams_lines(report: &StreamsReport, lines: &mut Vec<BudgetLine>) {
    for &streams in &report.levels {
        let at = |via: Via| {
            report
                .phases
                .iter()
                .find(|phase| phase.via == via && phase.streams == streams)
        };
        let Some(gate) = at(Via::Llmgate) else {
            continue;
        };
        lines.push(
            BudgetLine::at_most(
                format!("{streams} streams: every frame delivered, in order"),
                gate.failed as f64,
                format!("{} of {streams} whole", gate.complete),
                0.0,
                "all",
            )
            .with_floors(and_nginx(
                floor_figures(
                    |via| at(via).map(|p| p.failed as f64),
                    |v| format!("{v:.0} failed"),
                ),
                at(Via::Nginx).map(|p| format!("{} failed", p.failed)),
            )),
        );
        if let Some(direct) = at(Via::Direct) {
            let added = gate.ttfb_p99_ms - direct.ttfb_p99_ms;
            lines.push(
                BudgetLine::at_most(
                    format!("{streams} streams: first byte p99 − the mock's own"),
                    added,
                    format!(
                        "{added:+.1} ms ({:.1} vs {:.1})",
                        gate.ttfb_p99_ms, direct.ttfb_p99_ms
                    ),
                    5.0,
                    "≤ +5 ms",
                )
                .with_floors(and_nginx(
                    floor_figures(
                        |via| at(via).map(|p| p.ttfb_p99_ms - direct.ttfb_p99_ms),
                        |v| format!("{v:+.1} ms"),
                    ),
                    at(Via::Nginx)
                        .map(|p| format!("{:+.1} ms", p.ttfb_p99_ms - direct.ttfb_p99_ms)),
                )),
            );
        }
        if let Some(nginx) = at(Via::Nginx) {
            let times = ratio(gate.server_cpu_us_per_frame, nginx.server_cpu_us_per_frame);
            lines.push(
                BudgetLine::at_most(
                    format!("{streams} streams: CPU per forwarded frame ÷ nginx's"),
                    times,
                    format!(
                        "{times:.2}× ({:.2} vs {:.2} µs)",
                        gate.server_cpu_us_per_frame, nginx.server_cpu_us_per_frame
                    ),
                    2.0,
                    "≤ 2.00×",
                )
                .with_floors(floor_figures(
                    |via| {
                        at(via).map(|p| {
                            ratio(p.server_cpu_us_per_frame, nginx.server_cpu_us_per_frame)
                        })
                    },
                    |v| format!("{v:.2}×"),
                )),
            );
        }
        lines.push(
            BudgetLine::at_most(
                format!("{streams} streams: RSS per open stream above idle"),
                gate.rss_per_open_stream_kib,
                format!(
                    "{:.1} KiB ({} open at the peak)",
                    gate.rss_per_open_stream_kib, gate.open_at_peak
                ),
                32.0,
                "≤ 32 KiB",
            )
            .with_floors(and_nginx(
                floor_figures(
                    |via| at(via).map(|p| p.rss_per_open_stream_kib),
                    |v| format!("{v:.1} KiB"),
                ),
                at(Via::Nginx).map(|p| format!("{:.1} KiB", p.rss_per_open_stream_kib)),
            )),
        );
        let (value, measured) = match gate.request_log_rows {
            Some(rows) => (
                (rows as f64 - streams as f64).abs(),
                format!("{rows} of {streams}"),
            ),
            None => (f64::INFINITY, "not counted".to_owned()),
        };
        lines.push(BudgetLine::at_most(
            format!("{streams} streams: every stream recorded (request-log rows)"),
            value,
            measured,
            0.0,
            "all",
        ));
    }
}

/// Prints the table.
pub(super) fn print(lines: &[BudgetLine], machine: &Machine) {
    println!(
        "\nBudget of shared/DESIGN.md · every figure from this run · commit {} · MB read as MiB, \"near idle\" as ≤ idle + {NEAR_IDLE_MIB:.0} MiB",
        machine.commit
    );
    println!(
        "CPU and latency figures mean something only on a quiet machine (see the load average and the foreign load above)"
    );
    println!(
        "{:<62} {:<32} {:<10} {:<8} beside a line not met: the floor proxies' figure, same run",
        "line", "llmgate", "limit", "result"
    );
    for line in lines {
        let mut text = format!(
            "{:<62} {:<32} {:<10} {:<8}",
            line.line,
            line.measured,
            line.limit,
            if line.met { "met" } else { "NOT MET" }
        );
        if !line.met {
            match &line.floors {
                Some(floors) => {
                    let _ = write!(text, " floors: {floors}");
                    let verdict = match (line.floor_met, line.contract_met) {
                        (Some(false), _) => "the axum+reqwest floor misses it too",
                        (Some(true), Some(false)) => {
                            "the axum+reqwest floor meets it, the contract floor misses it too"
                        }
                        (Some(true), _) => "the axum+reqwest floor meets it",
                        (None, Some(false)) => "the contract floor misses it too",
                        (None, _) => "",
                    };
                    if !verdict.is_empty() {
                        let _ = write!(text, " ({verdict})");
                    }
                }
                None => text.push_str(" (no floor figure for this line)"),
            }
        }
        println!("{}", text.trim_end());
    }
    let met = lines.iter().filter(|line| line.met).count();
    let not_met = |floor: fn(&BudgetLine) -> Option<bool>| {
        lines
            .iter()
            .filter(|line| !line.met && floor(line) == Some(false))
            .count()
    };
    println!(
        "{met} of {} lines met; of the {} not met, {} the axum+reqwest floor misses too, {} the contract floor misses too",
        lines.len(),
        lines.len() - met,
        not_met(|line| line.floor_met),
        not_met(|line| line.contract_met),
    );
}

#[derive(Serialize)]
struct BudgetReport<'a> {
    kind: &'static str,
    date: String,
    machine: &'a Machine,
    /// How the table reads the design's words.
    memory_unit: &'static str,
    near_idle_mib: f64,
    lines: &'a [BudgetLine],
    met: usize,
    pass: bool,
}

/// Prints the table, writes it as `target/bench/budget-<UTC>.json` and `budget-latest.json`,
/// and returns whether every line is met.
pub(super) fn finish(
    settings: &Settings,
    machine: &Machine,
    date: &chrono::DateTime<chrono::Utc>,
    lines: &[BudgetLine],
) -> Result<bool> {
    print(lines, machine);
    let met = lines.iter().filter(|line| line.met).count();
    let pass = met == lines.len();
    let report = BudgetReport {
        kind: "budget",
        date: date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        memory_unit: "MiB (the design's MB read as MiB)",
        near_idle_mib: NEAR_IDLE_MIB,
        lines,
        met,
        pass,
    };
    let path = write_json(&settings.out_dir, "budget", date, &report)?;
    println!("written: {}", path.display());
    Ok(pass)
}

/// Checks the table's judgement on made-up figures, with no process started and nothing timed:
/// what `cargo test --all-targets` runs of this bench. Each line's met / not met, and whether the
/// axum + reqwest floor meets it, must come out as written here.
pub(super) fn self_check() -> Result<()> {
    let phase = |via, stream, concurrency, cpu: f64, p50: f64, p99: f64, peak: f64| Phase {
        via,
        stream,
        concurrency,
        requests: 1_000,
        seconds: 1.0,
        rps: 1_000.0,
        errors: 0,
        first_error: None,
        p50_us: p50,
        p99_us: p99,
        p999_us: p99,
        max_us: p99,
        ttfb_p50_us: p50,
        ttfb_p99_us: p99,
        bad_streams: 0,
        stalls: 0,
        max_gap_ms: 0.0,
        server_cpu_us_per_request: cpu,
        server_user_us_per_request: cpu,
        server_system_us_per_request: 0.0,
        server_peak_rss_mib: peak,
        answered: 1_000,
        core_busy: Vec::new(),
        proxy_core_foreign: 0.0,
    };
    let floor_memory = |via, idle_mib, peak_c256_mib, after_mib| FloorMemory {
        via,
        idle_mib,
        peak_c256_mib,
        after_mib,
    };
    let machine = Machine {
        cores: 2,
        cpu: String::new(),
        kernel: String::new(),
        hostname: String::new(),
        clock_ticks_per_second: 100,
        commit: "check".into(),
    };
    let chat = Report {
        kind: "bench",
        date: String::new(),
        machine: machine.clone(),
        seconds_per_phase: 1.0,
        warm_up_seconds: 1.0,
        load_average_before: 0.0,
        load_average_after: 0.0,
        command: String::new(),
        gateway_env: Vec::new(),
        phases: vec![
            phase(Via::Llmgate, false, 1, 100.0, 150.0, 400.0, 20.0),
            phase(Via::Nginx, false, 1, 50.0, 100.0, 200.0, 10.0),
            phase(Via::FloorAxumReqwest, false, 1, 60.0, 120.0, 300.0, 10.0),
            phase(Via::FloorContract, false, 1, 70.0, 140.0, 320.0, 12.0),
            phase(Via::Llmgate, false, 64, 50.0, 0.0, 0.0, 30.0),
            phase(Via::Nginx, false, 64, 20.0, 0.0, 0.0, 10.0),
            phase(Via::FloorAxumReqwest, false, 64, 40.0, 0.0, 0.0, 20.0),
            phase(Via::FloorContract, false, 64, 48.0, 0.0, 0.0, 22.0),
            phase(Via::Llmgate, false, 256, 60.0, 0.0, 0.0, 50.0),
            phase(Via::FloorAxumReqwest, false, 256, 48.0, 0.0, 0.0, 30.0),
            phase(Via::FloorContract, false, 256, 52.0, 0.0, 0.0, 33.0),
            phase(Via::Llmgate, true, 1, 0.0, 450.0, 500.0, 20.0),
            phase(Via::Nginx, true, 1, 0.0, 300.0, 400.0, 10.0),
            phase(Via::FloorAxumReqwest, true, 1, 0.0, 380.0, 450.0, 10.0),
            phase(Via::FloorContract, true, 1, 0.0, 440.0, 480.0, 12.0),
        ],
        memory: Memory {
            idle_mib: 17.0,
            idle_files_mib: 12.0,
            peak_mib: 50.0,
            peak_c256_mib: 50.0,
            after_mib: 21.0,
            after_delay_s: 95.0,
            pool_idle_timeout_s: 90.0,
            floors: vec![
                floor_memory(Via::FloorAxumReqwest, 7.0, 30.0, 9.0),
                floor_memory(Via::FloorContract, 9.0, 33.0, 11.0),
            ],
        },
        accounting: Accounting {
            served: 1_000,
            request_log_rows: Some(1_000),
            usage_daily_requests: Some(1_000),
            clean_shutdown: true,
        },
        budget: Vec::new(),
        pass: false,
    };
    let streams_phase = |via, complete: usize, cpu: f64, kib: f64, rows| StreamsPhase {
        via,
        streams: 1_000,
        complete,
        failed: 1_000 - complete,
        first_error: None,
        ttfb_p50_ms: 1.0,
        ttfb_p99_ms: 10.0,
        frames: 63_000,
        server_cpu_us_per_frame: cpu,
        server_rss_before_mib: 20.0,
        server_rss_peak_mib: 70.0,
        open_at_peak: 1_000,
        rss_per_open_stream_kib: kib,
        seconds: 7.0,
        request_log_rows: rows,
    };
    let streams = StreamsReport {
        kind: "streams",
        date: String::new(),
        machine,
        command: String::new(),
        open_file_limit: 20_000,
        levels: vec![1_000],
        phases: vec![
            streams_phase(Via::Direct, 1_000, 10.0, 45.0, None),
            streams_phase(Via::Nginx, 990, 10.0, 17.0, None),
            streams_phase(Via::Llmgate, 1_000, 20.0, 49.0, Some(999)),
            streams_phase(Via::FloorAxumReqwest, 1_000, 15.0, 40.0, None),
        ],
        clean_stop: true,
        budget: Vec::new(),
        pass: false,
    };
    // (the start of the line, met, the axum + reqwest floor meets it, the contract floor does)
    let expected: [(&str, bool, Option<bool>, Option<bool>); 15] = [
        ("CPU per request at c=64", false, None, Some(false)),
        ("CPU per request at c=256", false, Some(false), Some(true)),
        ("c=1 p50", true, Some(true), Some(true)),
        ("c=1 p99", false, Some(true), Some(true)),
        ("stream c=1 first byte", false, Some(true), Some(false)),
        ("idle RSS", true, Some(true), Some(true)),
        ("peak RSS at c=256", false, Some(true), Some(true)),
        ("RSS 95 s after the load", true, Some(true), Some(true)),
        ("failed requests", true, Some(true), Some(true)),
        ("request-log rows = requests served", true, None, None),
        ("1000 streams: every frame", true, Some(true), None),
        ("1000 streams: first byte p99", true, Some(true), None),
        (
            "1000 streams: CPU per forwarded frame",
            true,
            Some(true),
            None,
        ),
        (
            "1000 streams: RSS per open stream",
            false,
            Some(false),
            None,
        ),
        ("1000 streams: every stream recorded", false, None, None),
    ];
    let lines = lines(Some(&chat), Some(&streams));
    if lines.len() != expected.len() {
        bail!(
            "the budget table has {} lines, {} expected: {:?}",
            lines.len(),
            expected.len(),
            lines.iter().map(|line| &line.line).collect::<Vec<_>>()
        );
    }
    for (line, (start, met, floor_met, contract_met)) in lines.iter().zip(expected) {
        if !line.line.starts_with(start)
            || line.met != met
            || line.floor_met != floor_met
            || line.contract_met != contract_met
        {
            bail!(
                "budget line {:?} came out met {} (floor {:?}, contract floor {:?}), {start:?} met {met} (floor {floor_met:?}, contract floor {contract_met:?}) expected",
                line.line,
                line.met,
                line.floor_met,
                line.contract_met
            );
        }
    }
    serde_json::to_string(&lines)?;
    Ok(())
}
