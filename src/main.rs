//! The `llmgate` binary: parse the command line, set up telemetry, run the command.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc rather than the system allocator: the request path allocates and frees many small
/// buffers, which glibc's malloc served at about a tenth of the gateway's CPU, and glibc kept the
/// peak of a load burst resident long after it (see OPTIMIZATION.md). Its options (a background
/// purging thread, 200 ms decay) are compiled in: see `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = llmgate::cli::Cli::parse();
    let filter = std::env::var("LLMGATE_LOG").ok();
    let format = std::env::var("LLMGATE_LOG_FORMAT").ok();
    let otlp = std::env::var("LLMGATE_OTLP_ENDPOINT").ok();
    let telemetry =
        match llmgate::telemetry::init(filter.as_deref(), format.as_deref(), otlp.as_deref()) {
            Ok(telemetry) => telemetry,
            Err(problem) => {
                #[expect(
                    clippy::print_stderr,
                    reason = "logging is not set up; stderr is all there is"
                )]
                {
                    eprintln!("llmgate: {problem}");
                }
                return ExitCode::from(2);
            }
        };
    let runtime = match runtime_builder().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(llmgate::cli::run(cli));
    // The batch exporter runs on its own thread; flush it once the runtime is gone.
    drop(runtime);
    telemetry.shutdown();
    code
}

/// A multi-thread runtime with a worker per usable core; on a single usable core (a pinned
/// process, a one-CPU container), a current-thread runtime. With one core the multi-thread
/// scheduler adds a worker thread beside the main one, and every accepted connection crosses
/// between the two; the load bench measured that hand-off (see OPTIMIZATION.md).
/// `TOKIO_WORKER_THREADS`, when set, still chooses the multi-thread runtime and its size.
fn runtime_builder() -> tokio::runtime::Builder {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cores == 1 && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
}
