//! `cti-server [--config FILE] [--set section.key=value]... [--log-level LEVEL]`

use std::path::PathBuf;

use clap::Parser;
use cti_server::config::Config;

#[derive(Parser, Debug)]
#[command(version, about = "Softphone and CTI call-center agent server")]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "config/cti.toml")]
    config: PathBuf,
    /// Override a configuration key, e.g. --set sip.listen=127.0.0.1:5080 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Log filter (overrides log.level), e.g. info, debug, cti_server::sip=trace.
    #[arg(long)]
    log_level: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config, &args.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cti-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Broken IVR flows are a configuration error too: refused before anything starts.
    if let Err(e) = cti_server::app::load_ivr(&config) {
        eprintln!("cti-server: {e}");
        return std::process::ExitCode::from(2);
    }
    let level = args
        .log_level
        .clone()
        .unwrap_or_else(|| config.log.level.clone());
    let filter = match tracing_subscriber::EnvFilter::try_new(&level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cti-server: bad log level {level:?}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json || config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cti-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(cti_server::app::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cti-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
