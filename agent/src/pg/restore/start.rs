//! `restore --start`: starts PostgreSQL on the restored directory and watches recovery until
//! it reaches the target, then reports the last commit replayed.
//!
//! For this supervised start only, the server runs with its Unix socket in the data
//! directory, `hot_standby = on` (so that recovery can be watched) and its log in
//! [`START_LOG`]. With `--target-action shutdown` it pauses at the target instead, is
//! watched, and is then shut down cleanly: the same end state as a shutdown at the target,
//! since starting it again replays to the target again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use logship_protocol::archive::backup::BackupMeta;
use logship_protocol::pg::Lsn;

use crate::pg::localpg::LocalPostgres;
use crate::pg::restore::execute::Restored;
use crate::pg::restore::plan::RecoveryTarget;
use crate::pg::restore::recovery_conf::TargetAction;
use crate::pg::walfetch::ahead;
use crate::pg::walfetch::spool::Spool;

/// The server log of the supervised start, inside the data directory.
pub const START_LOG: &str = "logship-restore.log";

/// How often recovery is looked at.
const POLL: Duration = Duration::from_millis(500);

/// How long a server that has not come up yet is given before its absence counts as a failure.
const GRACE: Duration = Duration::from_secs(15);

/// How long the read-ahead worker is given to leave after the server stopped or promoted.
const WORKER_EXIT: Duration = Duration::from_secs(10);

/// The postmaster's last log line, which ends the wait for a server that exited early.
const SHUT_DOWN: &str = "database system is shut down";

/// The state of recovery, one row.
const STATE_SQL: &str = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), \
     extract(epoch FROM pg_last_xact_replay_timestamp()), \
     CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END";

/// Why the restored server did not reach the target.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("recovery failed: {reason}")]
    Failed { reason: String },
    #[error("cannot start the restored server: {reason}")]
    Tool { reason: String },
    #[error(
        "cannot read the recovery state: the server answered {answer:?}, not as PostgreSQL 15 does"
    )]
    Answer { answer: String },
}

/// A supervised start that failed, and what it left behind.
#[derive(Debug, thiserror::Error)]
#[error("{cause} ({left})")]
pub struct StartFailure {
    /// Why the server did not reach the target.
    pub cause: StartError,
    /// What is left of the restore.
    pub left: Leftover,
}

/// What a failed start leaves of the restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// The restore was undone; the server log, if the server wrote one, was moved here.
    Removed { log: Option<PathBuf> },
    /// The restored directory was kept (its server could not be stopped, or its log could
    /// not be moved out); the server log is this file in it.
    Kept { log: PathBuf },
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leftover::Removed { log: Some(log) } => write!(
                f,
                "the restored directory was removed; the server log is {}",
                log.display()
            ),
            Leftover::Removed { log: None } => write!(f, "the restored directory was removed"),
            Leftover::Kept { log } => write!(
                f,
                "the restored directory was kept; see the server log {}",
                log.display()
            ),
        }
    }
}

/// How the server was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Recovery ended; the server accepts writes on a new timeline.
    Promoted,
    /// Recovery is paused at the target; the server accepts read-only queries.
    Paused,
    /// The server was shut down at the target.
    ShutDown,
}

/// Where recovery stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The commit time of the last transaction replayed; `None` if none was.
    pub time: Option<Timestamp>,
    /// The end of the last WAL record replayed.
    pub lsn: Lsn,
    /// How the server was left.
    pub outcome: Outcome,
    /// The command that stops the server, when it is still running.
    pub stop_command: Option<String>,
    /// The server log.
    pub log: PathBuf,
}

/// Starts the restored server and waits until recovery reaches the target.
///
/// If recovery fails, or the server cannot be watched, the server is stopped, its log is
/// moved out of the data directory, and the restore is undone: a failed restore leaves no
/// data directory behind that looks like a recovered cluster.
pub async fn start(restored: &Restored, action: TargetAction) -> Result<Reached, StartFailure> {
    let dir = &restored.dir;
    let log = dir.join(START_LOG);
    let cause = match LocalPostgres::existing(dir, restored.port, dir) {
        Err(err) => tool_error(err),
        Ok(pg) => match watch(restored, action, &pg, &log).await {
            Ok(reached) => return Ok(reached),
            Err(cause) => {
                if let Err(err) = stop_if_running(&pg).await {
                    // Removing the directory under a running server would make things worse.
                    tracing::error!(err = %format!("{err:#}"), "cannot stop the restored server");
                    return Err(StartFailure {
                        cause,
                        left: Leftover::Kept { log },
                    });
                }
                cause
            }
        },
    };
    // The read-ahead worker leaves with the server; nothing may write into DIR any more.
    let spool = Spool::of_data_dir(dir, restored.plan.backup.wal_segment_size);
    if !ahead::wait_stopped(&spool, WORKER_EXIT).await {
        tracing::error!(dir = %spool.dir().display(), "the read-ahead worker is still running");
        return Err(StartFailure {
            cause,
            left: Leftover::Kept { log },
        });
    }
    let left = match keep_log(&log, dir) {
        Ok(log) => {
            restored.discard();
            Leftover::Removed { log }
        }
        Err(()) => Leftover::Kept { log },
    };
    Err(StartFailure { cause, left })
}

fn tool_error(err: anyhow::Error) -> StartError {
    StartError::Tool {
        reason: crate::config::one_line(&format!("{err:#}")),
    }
}

/// Runs the server and watches recovery until it reaches the target.
async fn watch(
    restored: &Restored,
    action: TargetAction,
    pg: &LocalPostgres,
    log: &Path,
) -> Result<Reached, StartError> {
    let dir = &restored.dir;
    let mut settings = vec![("hot_standby", "on".to_owned())];
    if action == TargetAction::Shutdown {
        settings.push(("recovery_target_action", "pause".to_owned()));
    }
    pg.spawn(log, &settings).await.map_err(tool_error)?;
    let started = Instant::now();
    let mut seen_running = false;
    loop {
        tokio::time::sleep(POLL).await;
        if !pg.is_running().await.map_err(tool_error)? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            // A server that exited before it was first seen says so in its log; one that has
            // not come up yet has not.
            if seen_running || started.elapsed() > GRACE || text.contains(SHUT_DOWN) {
                return Err(StartError::Failed {
                    reason: failure_reason(&text),
                });
            }
            continue;
        }
        seen_running = true;
        // Refused until recovery is consistent: keep watching.
        let Ok(row) = pg.query(STATE_SQL).await else {
            continue;
        };
        let state = parse_state(&row)?;
        let outcome = if !state.in_recovery {
            Outcome::Promoted
        } else if state.paused && restored.plan.target != RecoveryTarget::Latest {
            match action {
                TargetAction::Shutdown => Outcome::ShutDown,
                _ => Outcome::Paused,
            }
        } else {
            tracing::debug!(lsn = %state.lsn, "replaying");
            continue;
        };
        let stop_command = match outcome {
            Outcome::ShutDown => {
                pg.stop(true).await.map_err(tool_error)?;
                None
            }
            Outcome::Promoted | Outcome::Paused => Some(pg.pg_ctl_command("stop")),
        };
        if outcome == Outcome::Promoted {
            remove_spool(dir, &restored.plan.backup).await;
        }
        return Ok(Reached {
            time: state.time,
            lsn: state.lsn,
            outcome,
            stop_command,
            log: log.to_path_buf(),
        });
    }
}

/// Stops the server at once if it runs: its recovery failed or cannot be watched.
async fn stop_if_running(pg: &LocalPostgres) -> anyhow::Result<()> {
    if pg.is_running().await? {
        pg.stop(false).await?;
    }
    Ok(())
}

/// Moves the server log out of the data directory, to `DIR.logship-restore.log` beside it
/// or else into the temp directory. `Ok(None)` when there is no log; `Err` when it could be
/// put nowhere.
fn keep_log(log: &Path, dir: &Path) -> Result<Option<PathBuf>, ()> {
    if !log.exists() {
        return Ok(None);
    }
    let mut beside = dir.as_os_str().to_owned();
    beside.push(format!(".{START_LOG}"));
    let temp = std::env::temp_dir().join(format!("{}-{START_LOG}", std::process::id()));
    [PathBuf::from(beside), temp]
        .into_iter()
        .find(|to| std::fs::rename(log, to).is_ok() || std::fs::copy(log, to).is_ok())
        .map(Some)
        .ok_or(())
}

/// Recovery no longer fetches WAL once promoted: segments read ahead are only in the way.
/// The read-ahead worker leaves once the server is out of recovery.
async fn remove_spool(dir: &Path, backup: &BackupMeta) {
    let spool = Spool::of_data_dir(dir, backup.wal_segment_size);
    if !ahead::wait_stopped(&spool, WORKER_EXIT).await {
        tracing::warn!(dir = %spool.dir().display(), "the read-ahead worker is still running; remove the spool by hand");
        return;
    }
    if let Err(err) = spool.remove() {
        tracing::warn!(dir = %spool.dir().display(), %err, "cannot remove the prefetch spool; remove it by hand");
    }
}

/// One row of [`STATE_SQL`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    in_recovery: bool,
    lsn: Lsn,
    time: Option<Timestamp>,
    paused: bool,
}

fn parse_state(row: &str) -> Result<State, StartError> {
    let bad = || StartError::Answer {
        answer: row.to_owned(),
    };
    let mut fields = row.split('|');
    let (Some(in_recovery), Some(lsn), Some(epoch), Some(pause), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(bad());
    };
    let time = match epoch {
        "" => None,
        epoch => Some(parse_epoch(epoch).ok_or_else(bad)?),
    };
    Ok(State {
        in_recovery: in_recovery == "t",
        lsn: lsn.parse().map_err(|_| bad())?,
        time,
        paused: pause == "paused",
    })
}

/// Seconds since 1970 with up to 6 decimals, as `extract(epoch …)` prints them.
fn parse_epoch(text: &str) -> Option<Timestamp> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{fraction:0<6}").parse().ok()?;
    let micros = if seconds < 0 { -micros } else { micros };
    Timestamp::from_microsecond(seconds.checked_mul(1_000_000)?.checked_add(micros)?).ok()
}

/// The line of the server log that says why the server stopped: the last FATAL or PANIC
/// that is not a refused connection, with what `wal-fetch` reported before it, if anything.
fn failure_reason(log: &str) -> String {
    const NOISE: [&str; 3] = [
        "the database system is starting up",
        "not yet accepting connections",
        "the database system is shutting down",
    ];
    let mut fetch_error = None;
    let mut fatal = None;
    for line in log.lines() {
        if let Some(error) = line.strip_prefix("error: ") {
            fetch_error = Some(error.trim());
        }
        for level in ["FATAL:", "PANIC:"] {
            if let Some((_, message)) = line.split_once(level)
                && !NOISE.iter().any(|noise| message.contains(noise))
            {
                fatal = Some(message.trim());
            }
        }
    }
    match (fatal, fetch_error) {
        (Some(fatal), Some(fetch)) => format!("{fatal}; the restore_command said: {fetch}"),
        (Some(fatal), None) => fatal.to_owned(),
        (None, Some(fetch)) => format!("the restore_command said: {fetch}"),
        (None, None) => log
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .map_or("the server exited without logging why".to_owned(), |line| {
                line.trim().to_owned()
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recovery_state_rows() {
        assert_eq!(
            parse_state("t|0/3000100|1763720100.123456|paused").unwrap(),
            State {
                in_recovery: true,
                lsn: "0/3000100".parse().unwrap(),
                time: Some("2025-11-21T10:15:00.123456Z".parse().unwrap()),
                paused: true,
            }
        );
        assert_eq!(parse_state("f|0/3000100||").unwrap().time, None);
        assert_eq!(
            parse_epoch("1763720100.5"),
            Some("2025-11-21T10:15:00.5Z".parse().unwrap())
        );
        assert!(parse_state("t|0/3000100").is_err());
        assert!(parse_epoch("1.1234567").is_none());
    }

    #[test]
    fn failure_reason_skips_refused_connections() {
        let log = "\
2026-11-21 10:00:00 UTC [1] LOG:  starting PostgreSQL 15
2026-11-21 10:00:01 UTC [2] FATAL:  the database system is starting up
error: object main/wal/00000001/000000010000000000000003 is corrupt: bad CRC (restore ...)
2026-11-21 10:00:02 UTC [3] FATAL:  could not restore file \"000000010000000000000003\" from archive: child process exited with exit code 255
2026-11-21 10:00:02 UTC [1] LOG:  startup process (PID 3) exited with exit code 1
";
        assert_eq!(
            failure_reason(log),
            "could not restore file \"000000010000000000000003\" from archive: child process exited with exit code 255; the restore_command said: object main/wal/00000001/000000010000000000000003 is corrupt: bad CRC (restore ...)"
        );
        assert_eq!(failure_reason("a\nlast words\n\n"), "last words");
    }
}
