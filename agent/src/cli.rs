//! The command line (DESIGN.md §2): what the user typed, before anything is built from it.

use std::path::PathBuf;

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};
use logship_protocol::pg::TimelineId;

use crate::config::Overrides;
use crate::mysql::restore::target::BinlogTarget;
use crate::pg::restore::plan::{RecoveryTarget, TargetTimeline};
use crate::pg::restore::recovery_conf::TargetAction;
use crate::pg::restore::tablespace::TablespaceMapping;

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Streams PostgreSQL WAL and MySQL/MariaDB binlogs into object storage, continuously,
/// and restores from them.
#[derive(Debug, Parser)]
#[command(name = "logship", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (default: ./logship.toml if it exists).
    #[arg(long, env = "LOGSHIP_CONFIG", global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, help_heading = GLOBAL)]
    pub log_format: LogFormat,

    /// More log output (repeat for more).
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = GLOBAL)]
    pub verbose: u8,

    /// Less log output (repeat for less).
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = GLOBAL)]
    pub quiet: u8,

    /// A PostgreSQL source given inline (named "default"), instead of a config file.
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    pub postgres: Option<String>,

    /// A MySQL or MariaDB source given inline (named "default"), instead of a config file.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "postgres", help_heading = GLOBAL)]
    pub mysql: Option<String>,

    /// The store URL: file:///path or s3://bucket/prefix (default: file://./logship-data).
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
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
    /// Take one base backup now; prints its id once it is durable.
    Backup {
        /// The source to back up (may be left out when one is configured).
        #[arg(long)]
        source: Option<String>,
    },
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
        /// How many segments to read ahead into pg_wal/logship-spool/ (0: none).
        #[arg(long, value_name = "N", default_value_t = crate::pg::walfetch::DEFAULT_PREFETCH)]
        prefetch: usize,
        /// Run as the spool's read-ahead worker, which requests start themselves.
        #[arg(long = "read-ahead-worker", hide = true)]
        read_ahead_worker: bool,
    },
    /// Write archived binlog FILE, complete or in progress, byte for byte to DEST.
    ///
    /// Exit status: 0 when the file was found; 1 when the archive was read and
    /// does not hold it; 255 for any other failure.
    BinlogFetch {
        /// The binlog file name, such as binlog.000042.
        file: String,
        /// Where to write it.
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
    /// Restore a base backup and replay the archived log up to a target.
    ///
    /// The target must lie in the restorable window (see `logship list`). PostgreSQL: a
    /// new data directory, set to recover to the target; the restored server fetches WAL
    /// with `logship wal-fetch`, and with --start logship starts it and waits until the
    /// target is reached. MySQL/MariaDB: logship loads the backup into a server and
    /// replays the binlog to the target itself; with --start the server is left running.
    Restore(RestoreArgs),
    /// A guided first run: a throwaway PostgreSQL streamed into the embedded store.
    Quickstart,
}

/// `logship restore`'s flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["target_time", "target_lsn", "target_gtid", "target_position", "latest"])
))]
pub struct RestoreArgs {
    /// The source to restore (may be left out when the store holds one).
    #[arg(long)]
    pub source: Option<String>,
    /// PostgreSQL: the new data directory, which must not exist or be empty.
    /// MySQL/MariaDB: a directory where logship initializes a server (same rule), or
    /// the mysql:// URL of an empty server.
    #[arg(long, value_name = "DIR|URL")]
    pub to: PathBuf,
    /// Stop after the last commit at or before this time: RFC 3339, or
    /// "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub target_time: Option<jiff::Timestamp>,
    /// Stop at this WAL position, such as 0/3000100.
    #[arg(long, value_name = "LSN")]
    pub target_lsn: Option<logship_protocol::pg::Lsn>,
    /// MySQL/MariaDB: stop just past the transaction of this GTID, such as 0-1-42 (one
    /// per domain, comma-separated).
    #[arg(long, value_name = "GTID")]
    pub target_gtid: Option<logship_protocol::mysql::GtidPos>,
    /// MySQL/MariaDB: stop after the last transaction that ends at or before this binlog
    /// position, such as binlog.000042:1234.
    #[arg(long, value_name = "FILE:POS")]
    pub target_position: Option<logship_protocol::mysql::BinlogPos>,
    /// Replay all archived WAL or binlog.
    #[arg(long)]
    pub latest: bool,
    /// The timeline to follow: latest, or a timeline number.
    #[arg(long, value_name = "latest|N", default_value = "latest", value_parser = parse_timeline)]
    pub target_timeline: TargetTimeline,
    /// What the server does at the target.
    #[arg(long, value_enum, default_value_t = TargetAction::Promote)]
    pub target_action: TargetAction,
    /// Start the restored server and wait until it reaches the target.
    #[arg(long)]
    pub start: bool,
    /// The port the restored server listens on (default: the original's for PostgreSQL,
    /// 3306 for MySQL/MariaDB).
    #[arg(long)]
    pub port: Option<u16>,
    /// Empty DIR first if it is not empty.
    #[arg(long)]
    pub force: bool,
    /// Restore the tablespace that lived in OLDDIR on the original server into NEWDIR
    /// instead (both absolute; repeat for each tablespace to move).
    #[arg(long, value_name = "OLDDIR=NEWDIR")]
    pub tablespace_mapping: Vec<TablespaceMapping>,
}

impl RestoreArgs {
    /// The PostgreSQL recovery target the flags name.
    pub fn target(&self) -> RecoveryTarget {
        match (self.target_time, self.target_lsn) {
            (Some(time), _) => RecoveryTarget::Time(time),
            (None, Some(lsn)) => RecoveryTarget::Lsn(lsn),
            (None, None) => RecoveryTarget::Latest,
        }
    }

    /// The MySQL/MariaDB target the flags name.
    pub fn binlog_target(&self) -> BinlogTarget {
        match (&self.target_time, &self.target_gtid, &self.target_position) {
            (Some(time), _, _) => BinlogTarget::Time(*time),
            (None, Some(gtids), _) => BinlogTarget::Gtid(gtids.clone()),
            (None, None, Some(pos)) => BinlogTarget::Position(pos.clone()),
            (None, None, None) => BinlogTarget::Latest,
        }
    }

    /// A flag given that only a MySQL/MariaDB restore takes.
    pub fn binlog_only_flag(&self) -> Option<&'static str> {
        if self.target_gtid.is_some() {
            Some("--target-gtid")
        } else if self.target_position.is_some() {
            Some("--target-position")
        } else {
            None
        }
    }

    /// A flag given that only a PostgreSQL restore takes.
    pub fn wal_only_flag(&self) -> Option<&'static str> {
        if self.target_lsn.is_some() {
            Some("--target-lsn")
        } else if self.target_timeline != TargetTimeline::Latest {
            Some("--target-timeline")
        } else if self.target_action != TargetAction::Promote {
            Some("--target-action")
        } else if !self.tablespace_mapping.is_empty() {
            Some("--tablespace-mapping")
        } else {
            None
        }
    }
}

fn parse_time_arg(text: &str) -> Result<jiff::Timestamp, String> {
    crate::timefmt::parse_time(text).map_err(|err| err.to_string())
}

fn parse_timeline(text: &str) -> Result<TargetTimeline, String> {
    if text == "latest" {
        return Ok(TargetTimeline::Latest);
    }
    text.parse()
        .ok()
        .and_then(TimelineId::new)
        .map(TargetTimeline::Id)
        .ok_or_else(|| {
            format!("invalid timeline {text:?} (use latest, or a timeline number from 1)")
        })
}

impl Cli {
    /// What the flags add to the configuration file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            postgres: self.postgres.clone(),
            mysql: self.mysql.clone(),
            store: self.store.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn subcommand_help_keeps_global_options_apart() {
        let mut cli = Cli::command();
        cli.build();
        let restore = cli.find_subcommand_mut("restore").unwrap();
        let help = restore.render_help().to_string();
        let (own, global) = help.split_once("Global options:").unwrap();
        assert!(
            own.contains("--target-time") && !own.contains("--config"),
            "{help}"
        );
        for flag in [
            "--config",
            "--log-format",
            "--postgres",
            "--mysql",
            "--store",
        ] {
            assert!(global.contains(flag), "{flag} missing from:\n{help}");
        }
    }
}
