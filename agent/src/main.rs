//! The `logship` binary: the only place where errors become text and exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use logship::cli::{Cli, Command, LogFormat};
use logship::config::{Config, one_line};
use logship::pg::walfetch::Fetched;
use logship::{commands, quickstart};

/// Exit status of `wal-fetch` and `binlog-fetch` for anything but "not in the archive": above 125,
/// so that PostgreSQL aborts recovery rather than ending it early.
const FETCH_FAILURE: u8 = 255;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the async runtime: {err}"), 1),
    };
    let env = std::env::vars().collect();
    let config = match Config::load(&cli.overrides(), &env) {
        Ok(config) => config,
        Err(err) => {
            let code = if matches!(
                cli.command,
                Command::WalFetch { .. } | Command::BinlogFetch { .. }
            ) {
                FETCH_FAILURE
            } else {
                1
            };
            return fail(&err, code);
        }
    };
    match cli.command {
        Command::Run => match on_worker(&runtime, commands::run(config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err, 1),
        },
        Command::Backup { source } => {
            match on_worker(&runtime, async move {
                commands::backup(&config, source.as_deref()).await
            }) {
                Ok(id) => {
                    println!("{id}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&err, 1),
            }
        }
        Command::WalFetch {
            dest,
            source,
            prefetch,
            read_ahead_worker: true,
            ..
        } => match on_worker(&runtime, async move {
            commands::wal_fetch_worker(&config, source.as_deref(), &dest, prefetch).await
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err, 1),
        },
        Command::WalFetch {
            file,
            dest,
            source,
            prefetch,
            read_ahead_worker: false,
        } => {
            let fetched = on_worker(&runtime, async move {
                commands::wal_fetch(&config, source.as_deref(), &file, &dest, prefetch).await
            });
            match fetched {
                Ok(Fetched::Found) => ExitCode::SUCCESS,
                Ok(Fetched::NotInArchive) => ExitCode::from(1),
                Err(err) => fail(&err, FETCH_FAILURE),
            }
        }
        Command::BinlogFetch { file, dest, source } => {
            let fetched = on_worker(&runtime, async move {
                commands::binlog_fetch(&config, source.as_deref(), &file, &dest).await
            });
            match fetched {
                Ok(Fetched::Found) => ExitCode::SUCCESS,
                Ok(Fetched::NotInArchive) => ExitCode::from(1),
                Err(err) => fail(&err, FETCH_FAILURE),
            }
        }
        Command::List { source, json } => {
            // Small, and it writes through a stdout lock held across awaits.
            match runtime.block_on(commands::list(&config, source.as_deref(), json)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err, 1),
            }
        }
        Command::Restore(args) => {
            match on_worker(
                &runtime,
                async move { commands::restore(&config, &args).await },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err, 1),
            }
        }
        Command::Quickstart => match on_worker(&runtime, quickstart::run(config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err, 1),
        },
    }
}

/// Runs a command on a runtime worker thread. Driven from the main thread
/// instead, every socket wake-up would cross threads: a base backup measured
/// 110,000+ context switches that way against 30,000-63,000 on a worker.
fn on_worker<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    command: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    runtime.block_on(async {
        tokio::spawn(command)
            .await
            .map_err(|err| anyhow::anyhow!("the command's task failed: {err}"))?
    })
}

/// Prints the error as one line and returns `code`.
fn fail(err: &anyhow::Error, code: u8) -> ExitCode {
    eprintln!("error: {}", one_line(&format!("{err:#}")));
    ExitCode::from(code)
}

fn init_logging(cli: &Cli) {
    // The quickstart explains itself on stdout; its logs only matter when something is wrong.
    let quiet_by_default = i16::from(matches!(cli.command, Command::Quickstart));
    let level = match i16::from(cli.verbose) - i16::from(cli.quiet) - quiet_by_default {
        ..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGSHIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,logship={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
