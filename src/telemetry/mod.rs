//! Telemetry: metrics (see `metrics`) and logging, a tracing subscriber writing to stderr, filtered by `LLMGATE_LOG`, formatted as
//! `LLMGATE_LOG_FORMAT` (`pretty`, the default, or `json`).

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing),
/// which keeps tests that build several apps simple.
pub fn init(filter: Option<&str>, format: Option<&str>) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter.unwrap_or("info"))
        .map_err(|e| format!("LLMGATE_LOG: not a valid log filter ({e})"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format.unwrap_or("pretty") {
        "json" => builder.json().flatten_event(true).try_init(),
        "pretty" => builder.compact().try_init(),
        other => {
            return Err(format!(
                "LLMGATE_LOG_FORMAT: '{other}' is not a log format; use pretty or json"
            ));
        }
    };
    // An already installed subscriber (tests, embedding) is fine.
    let _ = installed;
    Ok(())
}
