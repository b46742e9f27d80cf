//! `cti-server [--config FILE] [--set section.key=value]... [--log-level LEVEL]`
//! `cti-server [--config FILE] backup --to DIR` / `restore --from DIR [--force]`

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Consistent backup of the database and the recordings and voicemails it lists, into a
    /// new directory (the server may be running).
    Backup {
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup: the database and every file at its original path (stop the server
    /// first). A database that holds calls is replaced only with --force.
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Move the center's SQLite database (storage.database_url) into an empty PostgreSQL
    /// database (stop the server first; then set storage.database_url to it).
    MoveDb {
        /// The PostgreSQL database, e.g. postgres://cti:secret@db.example/cti.
        #[arg(long)]
        to: String,
    },
}

/// Runs `backup` or `restore` and reports on stdout.
fn maintenance(config: &Config, command: Command) -> std::process::ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cti-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let url = config.storage.database_url();
    if let Command::MoveDb { to } = &command {
        return match rt.block_on(cti_server::move_db::move_db(&url, to)) {
            Ok(summary) => {
                let rows: i64 = summary.values().sum();
                println!(
                    "moved {rows} rows in {} tables to {}",
                    summary.len(),
                    redact_password(to)
                );
                for (table, n) in &summary {
                    println!("  {table}: {n}");
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cti-server: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let result = rt.block_on(async {
        match command {
            Command::Backup { to } => cti_server::backup::backup(&url, &to)
                .await
                .map(|m| ("backed up", m, to)),
            Command::Restore { from, force } => cti_server::backup::restore(&url, &from, force)
                .await
                .map(|m| ("restored", m, from)),
            Command::MoveDb { .. } => unreachable!("handled above"),
        }
    });
    match result {
        Ok((what, m, dir)) => {
            println!(
                "{what}: the database and {} files ({}){}",
                m.files.len(),
                dir.display(),
                if m.missing.is_empty() {
                    String::new()
                } else {
                    format!("; {} listed files were missing", m.missing.len())
                }
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cti-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A database URL for the screen: its password, if any, hidden.
fn redact_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let colon = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..colon], &url[at..])
        }
        _ => url.to_string(),
    }
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
    if let Some(command) = args.command {
        return maintenance(&config, command);
    }
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
