//! The command line (DESIGN.md §2): what the user typed, before anything is built from it.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

/// Streams PostgreSQL WAL into object storage, continuously, and restores from it.
#[derive(Debug, Parser)]
#[command(name = "logship", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (default: ./logship.toml if it exists).
    #[arg(long, env = "LOGSHIP_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// More log output (repeat for more).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output (repeat for less).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub quiet: u8,

    /// A PostgreSQL source given inline (named "default"), instead of a config file.
    #[arg(long, global = true, value_name = "URL")]
    pub postgres: Option<String>,

    /// The store URL: file:///path or s3://bucket/prefix (default: file://./logship-data).
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: stream every source into the store until SIGTERM.
    Run,
    /// PostgreSQL's restore_command helper: write archived FILE (%f) to DEST (%p).
    ///
    /// Exit status: 0 when the file was found; 1 when the archive was read and
    /// does not hold it; 255 for any other failure, so that PostgreSQL aborts
    /// recovery instead of ending it early.
    WalFetch {
        /// The WAL file name PostgreSQL asks for (%f).
        file: String,
        /// Where to write it (%p).
        dest: PathBuf,
        /// The source to read (may be left out when the store holds one).
        #[arg(long)]
        source: Option<String>,
    },
    /// List the backups, the archived WAL with any gaps, and the restorable window.
    List {
        /// Only this source (default: every source).
        #[arg(long)]
        source: Option<String>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// A guided first run: a throwaway PostgreSQL streamed into the embedded store.
    Quickstart,
}

impl Cli {
    /// What the flags add to the configuration file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            postgres: self.postgres.clone(),
            mysql: None,
            store: self.store.clone(),
        }
    }
}
