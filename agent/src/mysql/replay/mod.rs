//! Replay: the restored MariaDB applies archived binlog with its own replication, from a
//! position up to a transaction boundary, with logship as its primary.
//!
//! [`replay`] runs it end to end on a server reached through a [`MysqlConnection`]:
//!
//! 1. checks the archive holds everything from `from` to `stop` of one server, and that the
//!    restored server's `server_id` differs from the original's (a replica skips the events
//!    of its own id);
//! 2. starts an [`ArchivePrimary`] on 127.0.0.1 with a fresh random password;
//! 3. runs `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=…, MASTER_LOG_FILE=…,
//!    MASTER_LOG_POS=…, MASTER_USE_GTID=no` and `START SLAVE` on the restored server;
//! 4. polls `SHOW SLAVE STATUS` until the SQL thread has executed up to `stop`
//!    (`Relay_Master_Log_File`, `Exec_Master_Log_Pos`), logging progress, failing with the
//!    thread's error as one line, or after [`ReplayOptions::stall_timeout`] without progress;
//! 5. `STOP SLAVE` and `RESET SLAVE ALL`, and stops the primary.
//!
//! The primary sends nothing past `stop`, so the server can never apply a transaction
//! beyond the target, whatever it does meanwhile.
//!
//! - `archive`: one server's archived files as checked events, one object at a time.
//! - `session`: the replica's setup statements and their answers.
//! - `primary`: the listener, the login and the dump stream.
//! - `error`: [`ReplayError`].

mod archive;
mod error;
mod primary;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::BinlogPos;
use logship_protocol::mysql::key::ServerNo;
use rand::Rng;

pub use archive::{FileEvents, ServerArchive};
pub use error::ReplayError;
pub use primary::{ArchivePrimary, PrimaryConfig, Progress};
pub use session::{PrimaryFacts, ReplicaSession, Reply};

use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::conn::MysqlConnection;
use crate::mysql::read::ArchivedFile;
use crate::store::Store;

/// The user the restored server logs in to the primary as.
const REPLAY_USER: &str = "logship_replay";
/// How often progress is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// How a replay presents the original server and how long it waits.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The original server's `server_id`, which the events carry (from the identity).
    pub server_id: u32,
    /// The original server's `gtid_domain_id`.
    pub domain_id: u32,
    /// How long the restored server may apply nothing before the replay fails.
    pub stall_timeout: Duration,
    /// How often `SHOW SLAVE STATUS` is read.
    pub poll_interval: Duration,
}

impl ReplayOptions {
    /// Options for an original server `server_id` of domain `domain_id`: a 2-minute stall
    /// timeout, status read every 200 ms.
    pub fn new(server_id: u32, domain_id: u32) -> ReplayOptions {
        ReplayOptions {
            server_id,
            domain_id,
            stall_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// What a replay reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The position the restored server executed up to (the stop position).
    pub reached: BinlogPos,
    /// The GTID of the last transaction applied, as the archive's index names it.
    pub last_gtid: Option<String>,
    /// `@@GLOBAL.gtid_slave_pos` of the restored server afterwards.
    pub gtid_slave_pos: String,
    /// How long the replay took, from the primary's start to the stop position applied.
    pub elapsed: Duration,
    /// Bytes of archived binlog events sent to the restored server.
    pub bytes_served: u64,
}

/// Replays the archived binlog of `server` of `source` from `from` up to `stop` (a
/// transaction boundary, such as an index entry's end) into the server behind `restored`;
/// see the module documentation for the steps.
pub async fn replay(
    store: Arc<dyn Store>,
    source: &SourceName,
    server: ServerNo,
    from: &BinlogPos,
    stop: &BinlogPos,
    restored: &mut MysqlConnection,
    options: &ReplayOptions,
) -> Result<Replayed, ReplayError> {
    let catalog = Arc::new(BinlogCatalog::load(store.as_ref(), source).await?);
    let archive = ServerArchive::new(store.clone(), source.clone(), server, catalog.clone());
    check_range(&archive, from, stop)?;
    let server_id = restored_server_id(restored).await?;
    if server_id == options.server_id {
        return Err(ReplayError::SameServerId { server_id });
    }
    let last_gtid = last_gtid(store.as_ref(), source, server, &catalog, stop).await?;
    let started = Instant::now();
    if from == stop {
        return Ok(Replayed {
            reached: stop.clone(),
            last_gtid,
            gtid_slave_pos: gtid_slave_pos(restored).await?,
            elapsed: started.elapsed(),
            bytes_served: 0,
        });
    }
    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let config = PrimaryConfig {
        server_id: options.server_id,
        domain_id: options.domain_id,
        user: REPLAY_USER.into(),
        password: password.clone(),
        stop: stop.clone(),
    };
    let mut primary = ArchivePrimary::start(archive, from.file(), config).await?;
    let result = run(restored, &mut primary, from, stop, &password, options).await;
    // Whatever happened, the restored server forgets this primary and the primary ends.
    let cleanup = restored
        .query("STOP SLAVE")
        .await
        .and(restored.query("RESET SLAVE ALL").await);
    let served = primary.stop().await;
    let reached = result?;
    cleanup?;
    let bytes_served = served?;
    let elapsed = started.elapsed();
    tracing::info!(
        %reached,
        bytes_served,
        elapsed_ms = elapsed.as_millis() as u64,
        "replay reached the stop position"
    );
    Ok(Replayed {
        reached,
        last_gtid,
        gtid_slave_pos: gtid_slave_pos(restored).await?,
        elapsed,
        bytes_served,
    })
}

/// Checks that the archive holds one stream from `from` to `stop`, with no file missing.
fn check_range(
    archive: &ServerArchive,
    from: &BinlogPos,
    stop: &BinlogPos,
) -> Result<(), ReplayError> {
    archive.check_reaches(from)?;
    archive.check_reaches(stop)?;
    if !matches!(
        from.partial_cmp(stop),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    ) {
        return Err(ReplayError::StopBeforeStart {
            from: from.clone(),
            stop: stop.clone(),
        });
    }
    let mut file = from.file().clone();
    while file != *stop.file() {
        file = archive.next_file(&file)?;
    }
    Ok(())
}

/// The GTID the index lists for the transaction that ends at `stop`, if any.
async fn last_gtid(
    store: &dyn Store,
    source: &SourceName,
    server: ServerNo,
    catalog: &BinlogCatalog,
    stop: &BinlogPos,
) -> Result<Option<String>, ReplayError> {
    let Some(objects) = catalog.file(server, stop.file()) else {
        return Ok(None);
    };
    let archived = ArchivedFile {
        source,
        server,
        file: stop.file(),
        objects,
    };
    let entries = archived.index(store).await?;
    let entry = entries
        .into_iter()
        .find(|entry| u64::from(entry.end) == stop.offset());
    if entry.is_none() {
        tracing::warn!(%stop, "the stop position ends no transaction of the archive's index");
    }
    Ok(entry.and_then(|entry| entry.gtid))
}

/// Configures and starts replication, and waits until `stop` is executed.
async fn run(
    restored: &mut MysqlConnection,
    primary: &mut ArchivePrimary,
    from: &BinlogPos,
    stop: &BinlogPos,
    password: &str,
    options: &ReplayOptions,
) -> Result<BinlogPos, ReplayError> {
    restored
        .query(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{REPLAY_USER}', \
             MASTER_PASSWORD='{password}', MASTER_LOG_FILE='{}', MASTER_LOG_POS={}, \
             MASTER_USE_GTID=no, MASTER_SSL=0, MASTER_CONNECT_RETRY=1",
            primary.port(),
            sql_string(from.file().as_str()),
            from.offset()
        ))
        .await?;
    restored.query("START SLAVE").await?;
    tracing::info!(%from, %stop, port = primary.port(), "replaying");
    let mut at = from.clone();
    let mut last_change = Instant::now();
    let mut last_log = Instant::now();
    loop {
        tokio::select! {
            err = primary.failure() => return Err(err),
            () = tokio::time::sleep(options.poll_interval) => {}
        }
        let status = slave_status(restored).await?;
        let field = |name: &str| status.get(name).map(String::as_str).unwrap_or("");
        let now_at = executed(&status)?;
        if now_at.partial_cmp(stop) != Some(std::cmp::Ordering::Less) {
            return Ok(now_at);
        }
        for (thread, errno, error) in [
            ("SQL", "last_sql_errno", "last_sql_error"),
            ("IO", "last_io_errno", "last_io_error"),
        ] {
            let running = field(&format!("slave_{}_running", thread.to_lowercase()));
            let fatal = thread == "SQL" || running == "No";
            if field(errno) != "0" && !field(errno).is_empty() && fatal {
                return Err(ReplayError::Replication {
                    at: now_at.to_string(),
                    error: format!("{thread} thread error {}: {}", field(errno), field(error)),
                });
            }
        }
        if field("slave_sql_running") == "No" {
            return Err(ReplayError::Replication {
                at: now_at.to_string(),
                error: "the SQL thread stopped without an error".into(),
            });
        }
        if now_at != at {
            at = now_at;
            last_change = Instant::now();
        } else if last_change.elapsed() >= options.stall_timeout {
            let io = match field("last_io_error") {
                "" => field("slave_io_running").to_owned(),
                error => format!("{} ({error})", field("slave_io_running")),
            };
            return Err(ReplayError::Stalled {
                waited: options.stall_timeout,
                at: at.to_string(),
                stop: stop.to_string(),
                threads: format!(
                    "IO thread running: {io}, SQL thread running: {}",
                    field("slave_sql_running")
                ),
            });
        }
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            tracing::info!(
                executed = %at,
                %stop,
                bytes_served = primary.progress().bytes(),
                "replay in progress"
            );
        }
    }
}

/// `SHOW SLAVE STATUS` by lower-case column name.
async fn slave_status(
    restored: &mut MysqlConnection,
) -> Result<HashMap<String, String>, ReplayError> {
    restored
        .query_named("SHOW SLAVE STATUS")
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ReplayError::Status {
            what: "SHOW SLAVE STATUS returned no row after CHANGE MASTER TO".into(),
        })
}

/// Where the SQL thread is: `Relay_Master_Log_File`:`Exec_Master_Log_Pos`.
fn executed(status: &HashMap<String, String>) -> Result<BinlogPos, ReplayError> {
    let file = status
        .get("relay_master_log_file")
        .and_then(|f| f.parse().ok());
    let pos = status
        .get("exec_master_log_pos")
        .and_then(|p| p.parse().ok());
    match (file, pos) {
        (Some(file), Some(pos)) => Ok(BinlogPos::new(file, pos)),
        _ => Err(ReplayError::Status {
            what: format!(
                "SHOW SLAVE STATUS has no Relay_Master_Log_File/Exec_Master_Log_Pos ({:?}, {:?})",
                status.get("relay_master_log_file"),
                status.get("exec_master_log_pos")
            ),
        }),
    }
}

async fn restored_server_id(restored: &mut MysqlConnection) -> Result<u32, ReplayError> {
    let value = single_value(restored, "SELECT @@server_id").await?;
    value.parse().map_err(|_| ReplayError::Status {
        what: format!("@@server_id is {value:?}, not a number"),
    })
}

async fn gtid_slave_pos(restored: &mut MysqlConnection) -> Result<String, ReplayError> {
    single_value(restored, "SELECT @@GLOBAL.gtid_slave_pos").await
}

async fn single_value(restored: &mut MysqlConnection, sql: &str) -> Result<String, ReplayError> {
    let rows = restored.query(sql).await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
        .unwrap_or_default())
}

/// `text` as the inside of a single-quoted SQL string.
fn sql_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "''")
}
