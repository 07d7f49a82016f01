//! The `llmgate` binary: parse the command line, set up telemetry, run the command.

use std::process::ExitCode;

use clap::Parser;

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
